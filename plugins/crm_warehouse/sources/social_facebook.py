"""Social Facebook (Graph API): page feed posts by `since`/`until`, then the comments of recent posts.

Posts: `/{page-id}/feed` from `post_lookback_days` (default 30) before the window to its end (unix
seconds; `until` is inclusive, so the window's last second), following `paging.next` until it is
absent, so every post whose comments are followed is landed (edits become new versions).
Comments: for each post landed in the last `post_lookback_days`, `/{post-id}/comments` (all comments
including replies, chronological) created in the window, following `paging.next`. The page's own
replies have `from.id == page_id`; `from` may be missing when a person's privacy hides it.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta

from crm_warehouse.http import HttpClient, NextUrlPaginator, RetryPolicy
from crm_warehouse.sources.base import Chunk, ConnInfo, Source, Stream, StreamContext, page_records

# --- settings --------------------------------------------------------------------------------------
DEFAULT_VERSION = "v21.0"
FEED_PATH = "/{version}/{page_id}/feed"
COMMENTS_PATH = "/{version}/{post_id}/comments"
RECORDS = "data"
NEXT = "paging.next"
LIMIT = 100
# Embedded comment summaries are left out: they change with every new comment and would make a new
# version of the post each time (comments are their own stream).
POST_FIELDS = "id,message,created_time,from,permalink_url"
COMMENT_FIELDS = "id,message,created_time,from,like_count,comment_count,parent,permalink_url"
DEFAULT_POST_LOOKBACK_DAYS = 30
DEFAULT_LOOKBACK_HOURS = 0


def make_client(conn: ConnInfo, policy: RetryPolicy | None) -> HttpClient:
    if not conn.password:
        raise ValueError(f"Airflow connection {conn.conn_id!r} needs the page access token as its password")
    return HttpClient(conn.base_url, conn_id=conn.conn_id, allow_insecure_http=conn.allow_insecure_http, policy=policy,
                      headers={"Authorization": f"Bearer {conn.password}"})


def _version(ctx: StreamContext) -> str:
    version = str(ctx.extra.get("api_version") or DEFAULT_VERSION)
    return version if version.startswith("v") else f"v{version}"


def _time_params(ctx: StreamContext) -> dict:
    lookback = timedelta(hours=float(ctx.extra.get("lookback_hours", DEFAULT_LOOKBACK_HOURS)))
    return {"since": int((ctx.window_start - lookback).timestamp()), "until": int(ctx.window_end.timestamp()) - 1}


def extract_posts(ctx: StreamContext) -> Iterator[Chunk]:
    page_id = str(ctx.conn.require("page_id"))
    lookback = timedelta(days=float(ctx.extra.get("post_lookback_days", DEFAULT_POST_LOOKBACK_DAYS)))
    params = {"fields": POST_FIELDS, "limit": int(ctx.extra.get("page_size", LIMIT)),
              "since": int((ctx.window_start - lookback).timestamp()), "until": int(ctx.window_end.timestamp()) - 1}
    pages = ctx.client.paginate(FEED_PATH.format(version=_version(ctx), page_id=page_id), params=params,
                                paginator=NextUrlPaginator(NEXT), records_path=RECORDS, resume=ctx.resume)
    for page in pages:
        yield Chunk({"posts": page_records(page.records, source_object=page_id, uri=page.url,
                                           number=page.number)}, page.next_position)


def recent_post_ids(ctx: StreamContext, table: str, created_sql: str, lookback_days: float) -> list[str]:
    """Ids of posts already landed whose creation time is in [window_end - lookback, window_end)."""
    from psycopg import sql

    query = sql.SQL(
        "select distinct record_key from {table} where ({created}) >= %s and ({created}) < %s order by 1"
    ).format(table=sql.Identifier("raw", table), created=sql.SQL(created_sql))
    since = ctx.window_end - timedelta(days=lookback_days)
    return [row[0] for row in ctx.warehouse.execute(query, (since, ctx.window_end)).fetchall()]


def extract_comments(ctx: StreamContext) -> Iterator[Chunk]:
    lookback = float(ctx.extra.get("post_lookback_days", DEFAULT_POST_LOOKBACK_DAYS))
    post_ids = recent_post_ids(
        ctx, "social_facebook__posts",
        "to_timestamp(payload->>'created_time', 'YYYY-MM-DD\"T\"HH24:MI:SS') at time zone 'UTC'", lookback)
    resume = ctx.resume or {}
    done_until = resume.get("after_post")
    params = {"fields": COMMENT_FIELDS, "limit": LIMIT, "filter": "stream", "order": "chronological",
              **_time_params(ctx)}
    for index, post_id in enumerate(post_ids):
        if done_until is not None and post_id <= done_until:
            continue
        page_resume = resume.get("page") if post_id == resume.get("post") else None
        pages = ctx.client.paginate(COMMENTS_PATH.format(version=_version(ctx), post_id=post_id),
                                    params=params, paginator=NextUrlPaginator(NEXT), records_path=RECORDS,
                                    resume=page_resume)
        for page in pages:
            if page.next_position:
                position = {"post": post_id, "page": page.next_position, "after_post": _prev(post_ids, index)}
            else:
                position = {"after_post": post_id} if index + 1 < len(post_ids) else None
            yield Chunk({"comments": page_records(page.records, source_object=post_id, uri=page.url,
                                                  number=page.number)}, position)


def _prev(ids: list[str], index: int) -> str | None:
    return ids[index - 1] if index > 0 else None


SOURCE = Source(
    name="social_facebook",
    make_client=make_client,
    stream_list=(
        Stream("posts", extract_posts, {"posts": "id"}),
        Stream("comments", extract_comments, {"comments": "id"}),
    ),
)
