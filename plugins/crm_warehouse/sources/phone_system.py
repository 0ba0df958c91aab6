"""Phone system (Twilio Voice REST): calls, and the contact center's wrap-up dispositions feed.

Calls are filtered by Twilio's day-granular `StartTime>=` / `StartTime<=`, so every window asks for
whole days, from `lookback_days` before the window (calls that were still in progress change later)
to the window's last day; the loader deduplicates by (sid, content hash) and keeps changed calls as new
versions. Dispositions are filtered by a half-open `[WrappedAfter, WrappedBefore)`.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta

from crm_warehouse.http import HttpClient, NextUrlPaginator, RetryPolicy
from crm_warehouse.sources.base import Chunk, ConnInfo, Source, Stream, StreamContext, iso, page_records

# --- settings --------------------------------------------------------------------------------------
CALLS_PATH = "/2010-04-01/Accounts/{account_sid}/Calls.json"
CALLS_RECORDS = "calls"
CALLS_NEXT = "next_page_uri"  # relative, carries PageToken
DISPOSITIONS_PATH = "/v1/Accounts/{account_sid}/Dispositions.json"
DISPOSITIONS_RECORDS = "dispositions"
DISPOSITIONS_NEXT = "meta.next_page_url"  # absolute
MAX_PAGE_SIZE = 1000
DEFAULT_LOOKBACK_DAYS = 1


def make_client(conn: ConnInfo, policy: RetryPolicy | None) -> HttpClient:
    if not conn.login or not conn.password:
        raise ValueError(f"Airflow connection {conn.conn_id!r} needs login (AccountSid or API key SID) and "
                         "password (AuthToken or secret) for Twilio's Basic auth")
    return HttpClient(conn.base_url, conn_id=conn.conn_id, auth=(conn.login, conn.password), policy=policy,
                      allow_insecure_http=conn.allow_insecure_http,
                      headers={"Accept": "application/json"})


def _account(ctx: StreamContext) -> str:
    return str(ctx.extra.get("account_sid") or ctx.conn.login)


def _page_size(ctx: StreamContext) -> int:
    return max(1, min(MAX_PAGE_SIZE, int(ctx.extra.get("page_size", MAX_PAGE_SIZE))))


def calls_params(ctx: StreamContext) -> dict:
    lookback = int(ctx.extra.get("lookback_days", DEFAULT_LOOKBACK_DAYS))
    first_day = (ctx.window_start - timedelta(days=lookback)).date()
    last_day = (ctx.window_end - timedelta(microseconds=1)).date()
    return {"StartTime>": first_day.isoformat(), "StartTime<": last_day.isoformat(),
            "PageSize": _page_size(ctx)}


def extract_calls(ctx: StreamContext) -> Iterator[Chunk]:
    path = CALLS_PATH.format(account_sid=_account(ctx))
    pages = ctx.client.paginate(path, params=calls_params(ctx),
                                paginator=NextUrlPaginator(CALLS_NEXT, base_url=ctx.conn.base_url),
                                records_path=CALLS_RECORDS, resume=ctx.resume)
    for page in pages:
        yield Chunk({"calls": page_records(page.records, source_object=None, uri=page.url, number=page.number)},
                    page.next_position)


def extract_dispositions(ctx: StreamContext) -> Iterator[Chunk]:
    path = DISPOSITIONS_PATH.format(account_sid=_account(ctx))
    params = {"WrappedAfter": iso(ctx.window_start), "WrappedBefore": iso(ctx.window_end),
              "PageSize": _page_size(ctx)}
    pages = ctx.client.paginate(path, params=params, paginator=NextUrlPaginator(DISPOSITIONS_NEXT),
                                records_path=DISPOSITIONS_RECORDS, resume=ctx.resume)
    for page in pages:
        yield Chunk(
            {"dispositions": page_records(page.records, source_object=None, uri=page.url, number=page.number)},
            page.next_position,
        )


SOURCE = Source(
    name="phone_system",
    make_client=make_client,
    stream_list=(
        Stream("calls", extract_calls, {"calls": "sid"}),
        Stream("dispositions", extract_dispositions, {"dispositions": "disposition_id"}),
    ),
)
