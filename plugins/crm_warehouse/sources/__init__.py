"""HTTP sources: settings as data, stream extractors, and `run_stream`, the entry point the DAGs call."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from crm_warehouse.http import RetryPolicy


def run_stream(
    source: str,
    stream: str,
    window_start: datetime,
    window_end: datetime,
    *,
    conn_id: str | None = None,
    warehouse_conn_id: str = "warehouse",
    warehouse_url: str | None = None,
    retry_policy: RetryPolicy | None = None,
    flush_records: int | None = None,
) -> dict[str, Any]:
    """Extract `source`.`stream` over the half-open window [window_start, window_end) and land it in
    `raw.<source>__<stream>`. Returns a small stats dict (batches, received, loaded, duplicate,
    quarantined, pages, requests, retries).

    `conn_id` defaults to the source name; `warehouse_url` overrides the warehouse connection (tests,
    benchmarks). Raises `crm_warehouse.http.RateLimitDeferred` (with `.resume_at`) when the vendor asks
    for a long wait: what was received is committed and the next try resumes from the saved position.
    """
    from crm_warehouse.sources.registry import SOURCES
    from crm_warehouse.sources.runner import FLUSH_RECORDS, run_source_stream

    if source not in SOURCES:
        raise KeyError(f"Unknown source {source!r}; sources: {', '.join(SOURCES)}")
    return run_source_stream(
        SOURCES[source], stream, window_start, window_end, conn_id=conn_id,
        warehouse_conn_id=warehouse_conn_id, warehouse_url=warehouse_url, retry_policy=retry_policy,
        flush_records=flush_records or FLUSH_RECORDS,
    )


__all__ = ["run_stream"]
