"""Social X (API v2 user mentions): mentions of our account and their authors (`includes.users`).

Incremental by `since_id`: a forward run asks for everything newer than the newest mention already
landed, up to the window's end; the newest id of the run becomes the next `since_id` when the window
completes. A run over a window that ends before the last completed window (a backfill) reads by
`start_time`/`end_time` instead. Only the latest 800 mentions are reachable, so the DAG runs often.
Authors land in `raw.social_x__users` in the same transaction as the mentions.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator

from crm_warehouse.http import HttpClient, MalformedResponse, RetryPolicy, TokenParamPaginator
from crm_warehouse.load import Record
from crm_warehouse.sources.base import Chunk, ConnInfo, Source, Stream, StreamContext, iso

log = logging.getLogger(__name__)

# --- settings --------------------------------------------------------------------------------------
MENTIONS_PATH = "/2/users/{user_id}/mentions"
RECORDS = "data"
USERS = "includes.users"
NEXT_TOKEN = "meta.next_token"
MAX_RESULTS = 100
REACHABLE = 800  # only the latest 800 mentions can be read
TWEET_FIELDS = "created_at,author_id,conversation_id,in_reply_to_user_id,lang,public_metrics,referenced_tweets"
USER_FIELDS = "username,name,public_metrics,verified,description"


def make_client(conn: ConnInfo, policy: RetryPolicy | None) -> HttpClient:
    if not conn.password:
        raise ValueError(f"Airflow connection {conn.conn_id!r} needs the X bearer token as its password")
    return HttpClient(conn.base_url, conn_id=conn.conn_id, allow_insecure_http=conn.allow_insecure_http, policy=policy,
                      headers={"Authorization": f"Bearer {conn.password}"})


def _newer(a: str | None, b: str | None) -> str | None:
    """The larger of two tweet ids (snowflakes compare as integers)."""
    if not a:
        return b
    if not b:
        return a
    return a if int(a) >= int(b) else b


def _tweet_id(value: object, conn_id: str, where: str) -> str | None:
    """A tweet id from the vendor (a string of digits), or None when absent; anything else is malformed."""
    if value in (None, ""):
        return None
    text = str(value) if isinstance(value, int | str) and not isinstance(value, bool) else ""
    if not (text.isascii() and text.isdigit() and len(text) <= 30):
        raise MalformedResponse(f"X mentions (connection {conn_id!r}): {where} is {str(value)[:80]!r}, not a tweet "
                                "id (a string of digits)", conn_id=conn_id)
    return text


def mentions_params(ctx: StreamContext) -> dict:
    params = {"max_results": MAX_RESULTS, "tweet.fields": TWEET_FIELDS, "expansions": "author_id",
              "user.fields": USER_FIELDS, "end_time": iso(ctx.window_end)}
    last_window = ctx.cursor.get("last_window")
    since_id = ctx.cursor.get("since_id")
    backfill = last_window is not None and iso(ctx.window_end) < last_window[1]
    if since_id and not backfill:
        params["since_id"] = since_id
    else:
        params["start_time"] = iso(ctx.window_start)
    return params


def extract_mentions(ctx: StreamContext) -> Iterator[Chunk]:
    user_id = str(ctx.conn.require("user_id"))
    resume = ctx.resume or {}
    params = resume.get("params") or mentions_params(ctx)
    newest = resume.get("newest_id")
    received = 0
    pages = ctx.client.paginate(MENTIONS_PATH.format(user_id=user_id), params=params,
                                paginator=TokenParamPaginator(NEXT_TOKEN, "pagination_token"),
                                records_path=RECORDS, resume=resume.get("page"))
    for page in pages:
        errors = page.data.get("errors") if isinstance(page.data, dict) else None
        if errors and not page.records:
            first_error = errors[0] if isinstance(errors, list) else errors
            detail = first_error.get("detail") if isinstance(first_error, dict) else first_error
            raise RuntimeError(f"X mentions of user {user_id} (connection {ctx.conn.conn_id!r}): {detail}; "
                               "check extra.user_id")
        meta = page.data.get("meta") if isinstance(page.data, dict) else None
        newest = _newer(newest, _tweet_id(meta.get("newest_id") if isinstance(meta, dict) else None,
                                          ctx.conn.conn_id, "meta.newest_id"))
        uri, number = page.url, str(page.number)
        mentions = [Record(t, user_id, uri, number) for t in page.records]
        received += len(mentions)
        users = [Record(u, user_id, uri, number) for u in (_users(page.data))]
        position = {"params": params, "newest_id": newest, "page": page.next_position} \
            if page.next_position else None
        yield Chunk({"mentions": mentions, "users": users}, position)
    if received >= REACHABLE and "since_id" in params:
        log.warning("X mentions of user %s: %s mentions since since_id=%s, at X's reachable limit of %s: older "
                    "mentions may be out of reach. Run the social DAG more often.", user_id, received,
                    params["since_id"], REACHABLE)
    if "since_id" in params or "start_time" in params:
        current = ctx.cursor.get("since_id")
        last_window = ctx.cursor.get("last_window")
        backfill = last_window is not None and iso(ctx.window_end) < last_window[1]
        ctx.new_cursor["since_id"] = current if backfill else _newer(current, newest)


def _users(data: dict) -> list:
    includes = data.get("includes") if isinstance(data, dict) else None
    users = includes.get("users") if isinstance(includes, dict) else None
    return users if isinstance(users, list) else []


SOURCE = Source(
    name="social_x",
    make_client=make_client,
    stream_list=(
        Stream("mentions", extract_mentions, {"mentions": "id", "users": "id"}),
        Stream("users", None, {"users": "id"}, loaded_by="mentions"),
    ),
)
