"""Social LinkedIn (Community Management API): organisation posts, then the comments of recent posts.

Posts: `/rest/posts?q=author&author=<organization urn>` paged by `start`/`count`, newest first; the walk
stops at the first page entirely older than `post_lookback_days` (default 30) before the window. Comments have no time
filter: for every post landed in the last `post_lookback_days`, page through
`/rest/socialActions/{post urn}/comments` and keep those created before the window's end; the loader
deduplicates what earlier windows already landed. Headers `LinkedIn-Version` and
`X-Restli-Protocol-Version: 2.0.0` go on every call.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from urllib.parse import quote

from crm_warehouse.http import HttpClient, OffsetPaginator, RetryPolicy
from crm_warehouse.sources.base import Chunk, ConnInfo, Source, Stream, StreamContext, page_records
from crm_warehouse.sources.social_facebook import recent_post_ids

# --- settings --------------------------------------------------------------------------------------
DEFAULT_VERSION = "202510"
POSTS_PATH = "/rest/posts"
COMMENTS_PATH = "/rest/socialActions/{post_urn}/comments"
RECORDS = "elements"
TOTAL = "paging.total"
COUNT = 100
DEFAULT_POST_LOOKBACK_DAYS = 30


def until_midnight_utc(now: float) -> float:
    """LinkedIn's daily quotas reset at midnight UTC: a 429 without a hint waits until then."""
    return 86400.0 - (now % 86400.0) + 1.0


def make_client(conn: ConnInfo, policy: RetryPolicy | None) -> HttpClient:
    if not conn.password:
        raise ValueError(f"Airflow connection {conn.conn_id!r} needs the LinkedIn bearer token as its password")
    version = str(conn.extra.get("linkedin_version") or DEFAULT_VERSION)
    return HttpClient(conn.base_url, conn_id=conn.conn_id, policy=policy, rate_limit_fallback=until_midnight_utc,
                      allow_insecure_http=conn.allow_insecure_http,
                      headers={
        "Authorization": f"Bearer {conn.password}", "LinkedIn-Version": version,
        "X-Restli-Protocol-Version": "2.0.0"})


def _ms(dt) -> int:  # noqa: ANN001
    return int(dt.timestamp() * 1000)


def _created_ms(record: dict) -> int | None:
    for path in (("createdAt",), ("publishedAt",), ("created", "time")):
        node = record
        for step in path:
            node = node.get(step) if isinstance(node, dict) else None
        if isinstance(node, int | float):
            return int(node)
    return None


def extract_posts(ctx: StreamContext) -> Iterator[Chunk]:
    org = str(ctx.conn.require("organization_urn"))
    lookback = timedelta(days=float(ctx.extra.get("post_lookback_days", DEFAULT_POST_LOOKBACK_DAYS)))
    low, high = _ms(ctx.window_start - lookback), _ms(ctx.window_end)
    pages = ctx.client.paginate(POSTS_PATH, params={"q": "author", "author": org},
                                paginator=OffsetPaginator(COUNT, total_path=TOTAL), records_path=RECORDS,
                                resume=ctx.resume)
    for page in pages:
        keep = [p for p in page.records if not isinstance(p, dict) or (_created_ms(p) or high) < high]
        created = [c for c in (_created_ms(p) for p in page.records if isinstance(p, dict)) if c is not None]
        older = bool(created) and max(created) < low
        in_window = [p for p in keep if not isinstance(p, dict) or (_created_ms(p) or low) >= low]
        yield Chunk({"posts": page_records(in_window, source_object=org, uri=page.url, number=page.number)},
                    None if older else page.next_position)
        if older:  # newest first: every later page is older still
            return


def extract_comments(ctx: StreamContext) -> Iterator[Chunk]:
    lookback = float(ctx.extra.get("post_lookback_days", DEFAULT_POST_LOOKBACK_DAYS))
    post_urns = recent_post_ids(
        ctx, "social_linkedin__posts",
        "to_timestamp(coalesce(payload->>'createdAt', payload->>'publishedAt')::double precision / 1000)",
        lookback)
    high = _ms(ctx.window_end)
    resume = ctx.resume or {}
    done_until = resume.get("after_post")
    for index, urn in enumerate(post_urns):
        if done_until is not None and urn <= done_until:
            continue
        page_resume = resume.get("page") if urn == resume.get("post") else None
        pages = ctx.client.paginate(COMMENTS_PATH.format(post_urn=quote(urn, safe="")), params={},
                                    paginator=OffsetPaginator(COUNT, total_path=TOTAL), records_path=RECORDS,
                                    resume=page_resume)
        for page in pages:
            keep = [c for c in page.records if not isinstance(c, dict) or (_created_ms(c) or 0) < high]
            if page.next_position:
                position = {"post": urn, "page": page.next_position,
                            "after_post": post_urns[index - 1] if index else None}
            else:
                position = {"after_post": urn} if index + 1 < len(post_urns) else None
            yield Chunk({"comments": page_records(keep, source_object=urn, uri=page.url, number=page.number)},
                        position)


SOURCE = Source(
    name="social_linkedin",
    make_client=make_client,
    stream_list=(
        Stream("posts", extract_posts, {"posts": "id"}),
        Stream("comments", extract_comments, {"comments": ("$URN", "id")}),
    ),
)
