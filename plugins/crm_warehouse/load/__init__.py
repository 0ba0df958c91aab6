"""Loading into the warehouse: COPY loader, batch ledger, quarantine, stream state, schema drift."""

from crm_warehouse.load.ddl import ensure_ops_tables, ensure_raw_table, raw_table_name
from crm_warehouse.load.hashing import canonical_json, content_hash
from crm_warehouse.load.loader import (
    BatchStats,
    Record,
    compare_profiles,
    read_state,
    record_failed_batch,
    save_state,
    write_batch,
)

__all__ = [
    "BatchStats",
    "Record",
    "canonical_json",
    "compare_profiles",
    "content_hash",
    "ensure_ops_tables",
    "ensure_raw_table",
    "raw_table_name",
    "read_state",
    "record_failed_batch",
    "save_state",
    "write_batch",
]
