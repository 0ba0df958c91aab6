"""Files dropped by vendors on SFTP: listing, download, decompression, encoding, CSV dialects, ledger."""

from __future__ import annotations

from typing import Any


def run_feed(
    feed: str,
    *,
    conn_id: str = "survey_vendor_sftp",
    warehouse_conn_id: str = "warehouse",
    warehouse_url: str | None = None,
) -> dict[str, Any]:
    """Load every ready file of SFTP feed `feed` (see crm_warehouse.files.sftp); returns small counts."""
    from crm_warehouse.files.sftp import run_feed as _run_feed

    return _run_feed(feed, conn_id=conn_id, warehouse_conn_id=warehouse_conn_id, warehouse_url=warehouse_url)


__all__ = ["run_feed"]
