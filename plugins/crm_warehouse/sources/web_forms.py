"""Web forms (Typeform Responses API): responses per form id in `extra.form_ids`, partial and completed.

Each form is read with `since` (inclusive) / `until` over the window (Typeform has second precision,
so `until` is the window's last second) and paged backwards with `before=<token of the oldest item>`.
Overlap at the window boundary is deduplicated by the loader on (token, content hash).
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta

from crm_warehouse.http import HttpClient, ItemTokenPaginator, RetryPolicy
from crm_warehouse.sources.base import Chunk, ConnInfo, Source, Stream, StreamContext, iso, page_records

# --- settings --------------------------------------------------------------------------------------
RESPONSES_PATH = "/forms/{form_id}/responses"
RECORDS = "items"
PAGE_SIZE = 1000
RESPONSE_TYPES = "partial,completed"


def make_client(conn: ConnInfo, policy: RetryPolicy | None) -> HttpClient:
    if not conn.password:
        raise ValueError(f"Airflow connection {conn.conn_id!r} needs the Typeform personal access token as "
                         "its password")
    return HttpClient(conn.base_url, conn_id=conn.conn_id, allow_insecure_http=conn.allow_insecure_http, policy=policy,
                      headers={"Authorization": f"Bearer {conn.password}", "Accept": "application/json"})


def extract_responses(ctx: StreamContext) -> Iterator[Chunk]:
    form_ids = [str(f) for f in ctx.conn.require("form_ids")]
    page_size = max(1, min(PAGE_SIZE, int(ctx.extra.get("page_size", PAGE_SIZE))))
    resume = ctx.resume or {}
    first = int(resume.get("form_index", 0))
    for index in range(first, len(form_ids)):
        form_id = form_ids[index]
        params = {"page_size": page_size, "since": iso(ctx.window_start),
                  "until": iso(ctx.window_end - timedelta(seconds=1)), "response_type": RESPONSE_TYPES}
        pages = ctx.client.paginate(
            RESPONSES_PATH.format(form_id=form_id), params=params,
            paginator=ItemTokenPaginator("token", "before", page_size), records_path=RECORDS,
            resume=resume.get("page") if index == first else None,
        )
        for page in pages:
            if page.next_position is not None:
                position = {"form_index": index, "page": page.next_position}
            elif index + 1 < len(form_ids):
                position = {"form_index": index + 1}
            else:
                position = None
            yield Chunk({"responses": page_records(page.records, source_object=form_id, uri=page.url,
                                                   number=page.number)}, position)


SOURCE = Source(
    name="web_forms",
    make_client=make_client,
    stream_list=(Stream("responses", extract_responses, {"responses": ("token", "response_id")}),),
)
