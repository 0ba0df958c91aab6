"""DDL of the loader's control tables (schema `ops`) and raw landing tables (schema `raw`). Idempotent.

Run under a transaction-scoped advisory lock, so parallel tasks creating the same table do not race
(`create table if not exists` alone can fail with a duplicate pg_type row when two sessions race).
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable

import psycopg
from psycopg import sql

OPS_DDL = """
-- `create schema if not exists` needs the CREATE privilege on the database even when the schema exists,
-- which the least-privilege loader role (crm_loader) does not have: create them only when missing.
do $$
begin
    if not exists (select from pg_namespace where nspname = 'ops') then
        create schema ops;
    end if;
    if not exists (select from pg_namespace where nspname = 'raw') then
        create schema raw;
    end if;
end
$$;

create table if not exists ops.batches (
    batch_id        bigserial primary key,
    source          text not null,
    stream          text not null,
    window_start    timestamptz,
    window_end      timestamptz,
    cursor_before   jsonb,
    cursor_after    jsonb,
    received        integer not null default 0,
    loaded          integer not null default 0,
    duplicate       integer not null default 0,
    quarantined     integer not null default 0,
    status          text not null default 'running',
    started_at      timestamptz not null default clock_timestamp(),
    finished_at     timestamptz,
    error           text,
    source_uri      text,
    schema_profile  jsonb,
    constraint batches_status_known check (status in ('running', 'succeeded', 'failed')),
    constraint batches_counts_add_up check (
        status <> 'succeeded' or received = loaded + duplicate + quarantined)
);
create index if not exists batches_stream_idx on ops.batches (source, stream, batch_id);

create table if not exists ops.files (
    file_id         bigserial primary key,
    feed            text not null,
    path            text not null,
    size            bigint,
    mtime           timestamptz,
    sha256          text not null,
    status          text not null,
    rows            integer,
    error           text,
    archived_to     text,
    batch_id        bigint,
    recorded_at     timestamptz not null default clock_timestamp(),
    constraint files_status_known check (status in ('loaded', 'duplicate', 'rejected'))
);
create unique index if not exists files_loaded_sha256_uq on ops.files (sha256) where status = 'loaded';
create index if not exists files_feed_path_idx on ops.files (feed, path);

create table if not exists ops.quarantine (
    quarantine_id   bigserial primary key,
    batch_id        bigint not null,
    source          text not null,
    stream          text not null,
    record_ref      text,
    reason          text not null,
    original        text,
    quarantined_at  timestamptz not null default clock_timestamp()
);
create index if not exists quarantine_batch_idx on ops.quarantine (batch_id);

create table if not exists ops.stream_state (
    source          text not null,
    stream          text not null,
    cursor          jsonb,
    updated_at      timestamptz not null default clock_timestamp(),
    batch_id        bigint,
    primary key (source, stream)
);

create table if not exists ops.schema_drift (
    drift_id        bigserial primary key,
    batch_id        bigint not null,
    source          text not null,
    stream          text not null,
    field           text not null,
    change          text not null,
    old_type        text,
    new_type        text,
    detected_at     timestamptz not null default clock_timestamp(),
    constraint schema_drift_change_known check (change in ('appeared', 'disappeared', 'type_changed'))
);
"""

RAW_DDL = """
create table if not exists {table} (
    record_key      text not null,
    content_hash    text not null,
    payload         jsonb not null,
    source_object   text,
    batch_id        bigint not null,
    extracted_at    timestamptz not null default now(),
    source_uri      text,
    source_position text,
    primary key (record_key, batch_id, content_hash)
);
-- what arrived since a time (the incremental models' and enrichment's high-water marks) or since a batch (the
-- quality gate's scope): rows are appended in extraction and batch order, so one BRIN index on both columns (a
-- few pages per million rows, next to nothing to maintain while loading) skips every block range older than
-- the mark, whichever column the condition is on; the ranges the newest loads fill are summarised as they fill
create index if not exists {brin} on {table} using brin (extracted_at, batch_id) with (autosummarize = on)
"""

# Before versions could repeat (A, then B, then A again is three versions), the key was (record_key,
# content_hash), which made the third delivery a "duplicate" of the first. Tables made then are migrated
# in place (the rows stay; the new key is wider, so they all satisfy it).
PRIMARY_KEY_COLUMNS = """
select array_agg(a.attname::text order by k.ord), min(c.conname)
from pg_constraint as c
cross join lateral unnest(c.conkey) with ordinality as k (attnum, ord)
join pg_attribute as a on a.attrelid = c.conrelid and a.attnum = k.attnum
where c.conrelid = %s::regclass and c.contype = 'p'
"""
OLD_PRIMARY_KEY = ["record_key", "content_hash"]

log = logging.getLogger(__name__)
_NAME = re.compile(r"^[a-z][a-z0-9_]{0,62}$")
_LOCK = "select pg_advisory_xact_lock(hashtext('crm_warehouse.load.ddl'))"
_ready: set[tuple[str, str]] = set()


def raw_table_name(source: str, stream: str) -> str:
    """`<source>__<stream>`, checked to be a plain identifier (names are never built from untrusted text)."""
    name = f"{source}__{stream}"
    if not _NAME.match(name):
        raise ValueError(f"Invalid raw table name {name!r}: source and stream must be lowercase identifiers")
    return name


def raw_table(source: str, stream: str) -> sql.Composed:
    return sql.Identifier("raw", raw_table_name(source, stream))


def _key(conn: psycopg.Connection, what: str) -> tuple[str, str]:
    """Which database (server, name and oid: a dropped and re-created database is a new one) and table."""
    info = conn.info
    oid = getattr(conn, "_crm_db_oid", None)
    if oid is None:
        oid = conn.execute("select oid from pg_database where datname = current_database()").fetchone()[0]
        conn._crm_db_oid = oid  # type: ignore[attr-defined]
    return (f"{info.host}:{info.port}/{info.dbname}/{oid}", what)


def ensure_ops_tables(conn: psycopg.Connection) -> None:
    """Create the `ops` control tables if missing (idempotent, safe under concurrency)."""
    key = _key(conn, "ops")
    if key in _ready:
        return
    _run_locked(conn, key, OPS_DDL)


def ensure_raw_table(conn: psycopg.Connection, source: str, stream: str) -> None:
    """Create `raw.<source>__<stream>` with the landing columns (CONTRACTS section 2) if missing."""
    name = raw_table_name(source, stream)
    key = _key(conn, name)
    if key in _ready:
        return
    table = raw_table(source, stream)

    def migrate() -> None:
        columns, constraint = conn.execute(PRIMARY_KEY_COLUMNS, (f"raw.{name}",)).fetchone()
        if columns == OLD_PRIMARY_KEY:
            conn.execute(
                sql.SQL(
                    "alter table {} drop constraint {}, add primary key (record_key, batch_id, content_hash)"
                ).format(table, sql.Identifier(constraint))
            )
            log.warning(
                "raw.%s: primary key migrated from (record_key, content_hash) to (record_key, batch_id, "
                "content_hash), rows kept",
                name,
            )

    brin = sql.Identifier(f"{name}__landing_brin")
    _run_locked(conn, key, sql.SQL(RAW_DDL).format(table=table, brin=brin), then=migrate)


def _run_locked(conn: psycopg.Connection, key: tuple[str, str], ddl, then: Callable[[], None] | None = None) -> None:
    # Remember the table only when this call committed it (inside a caller's transaction it may roll back;
    # call these before opening the load transaction, so the advisory lock is not held during the load).
    outside = conn.info.transaction_status == psycopg.pq.TransactionStatus.IDLE
    with conn.transaction():
        conn.execute(_LOCK)
        conn.execute(ddl)
        if then is not None:
            then()
    if outside:
        _ready.add(key)


def forget_ready() -> None:
    """Forget which tables were created (tests that drop databases between runs)."""
    _ready.clear()
