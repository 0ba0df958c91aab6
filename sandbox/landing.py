"""Land a generated world's served records straight into the raw landing tables, without the extractors.

For tests and benchmarks that start at the warehouse (dbt, identity, the quality gate) and do not need to
go through the vendor APIs again: every record the world serves is `COPY`ed into the raw table its
extractor fills (`raw.<source>__<stream>`, the landing columns of ARCHITECTURE.md section 5), one ledger
batch per table and call (`ops.batches`, received = loaded), with `extracted_at` at the moment the record
became visible in world time. `available_before` / `available_from` cut the world by that moment, so a
benchmark can land all but the last day, build, then land the last day and build incrementally.

This knows the sandbox's served-record tables, so it lives with the sandbox; production code never
imports it.
"""

from __future__ import annotations

import hashlib
import sqlite3
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime

import psycopg
from psycopg import sql

from sandbox.world import X_USER_ID

# served-record table -> (source, stream, payload column, source_object expression)
SERVED: dict[str, tuple[str, str, str, str]] = {
    "s_calls": ("phone_system", "calls", "payload", "null"),
    "s_dispositions": ("phone_system", "dispositions", "payload", "null"),
    "s_survey_responses": ("survey_vendor", "responses", "payload", "survey_id"),
    "s_form_responses": ("web_forms", "responses", "payload", "form_id"),
    "s_x_mentions": ("social_x", "mentions", "payload", f"'{X_USER_ID}'"),
    "s_x_users": ("social_x", "users", "payload", f"'{X_USER_ID}'"),
    "s_fb_posts": ("social_facebook", "posts", "payload", "null"),
    "s_fb_comments": ("social_facebook", "comments", "payload", "post_id"),
    "s_li_posts": ("social_linkedin", "posts", "payload", "null"),
    "s_li_comments": ("social_linkedin", "comments", "payload", "post_urn"),
    "s_cc_calls": ("sftp_call_center", "calls", "row", "'call_center_cdr'"),
    "s_cc_dispositions": ("sftp_call_center", "dispositions", "row", "'call_center_dispositions'"),
    "s_sftp_survey": ("sftp_survey_vendor", "responses", "row", "'survey_vendor'"),
}
# tables without an availability moment (X user objects come with the mentions that expand them)
_TIMELESS = {"s_x_users"}


def world_start(world: sqlite3.Connection) -> int:
    import json

    return int(json.loads(world.execute("select value from meta where key = 'start_ts'").fetchone()[0]))


def world_end(world: sqlite3.Connection) -> int:
    import json

    return int(json.loads(world.execute("select value from meta where key = 'end_ts'").fetchone()[0]))


def land_served_records(conn: psycopg.Connection, world: sqlite3.Connection, *,
                        available_before: int | None = None, available_from: int | None = None,
                        tables: tuple[str, ...] = tuple(SERVED),
                        progress: Callable[[str, int], None] | None = None, workers: int = 2) -> dict[str, int]:
    """COPY the world's served records (optionally those visible in [available_from, available_before), epoch
    seconds) into their raw tables, each table as one succeeded ledger batch; returns rows per raw table.
    Timeless tables (X users) are landed only when no lower bound is given. Commits per table (a big world
    takes minutes per table: `progress(raw_table, rows)` is called as each one is committed).

    Bulk loading, as a restore would: `workers` tables are COPYed at once, each on its own connection (one
    PostgreSQL backend per core), and a table that is still empty gets its primary key after its rows (one
    sorted index build instead of an index insert per row, which at ten million rows no longer fits in the
    server's buffers); both in the table's transaction, so a failed table lands nothing."""
    from crm_warehouse.bootstrap import bootstrap
    from crm_warehouse.load.ddl import ensure_ops_tables, ensure_raw_table

    bootstrap(conn)
    ensure_ops_tables(conn)
    for served in tables:
        source, stream, _, _ = SERVED[served]
        ensure_raw_table(conn, source, stream)
    conn.commit()  # the DDL helpers may have opened a transaction: the tables must be visible to the workers
    start = world_start(world)
    world_path = world.execute("pragma database_list").fetchone()[2]
    jobs = [served for served in tables if not (served in _TIMELESS and available_from is not None)]
    # the biggest tables first, so the workers finish together
    sizes = {served: world.execute(f"select count(*) from {served}").fetchone()[0] for served in jobs}
    jobs.sort(key=lambda served: -sizes[served])

    def land_one(served: str) -> tuple[str, int]:
        with psycopg.connect(**_conninfo(conn)) as own, \
                sqlite3.connect(f"file:{world_path}?mode=ro", uri=True) as source_db:
            n = _land_table(own, source_db, served, start, available_before, available_from)
        source, stream, _, _ = SERVED[served]
        if progress:
            progress(f"raw.{source}__{stream}", n)
        return f"{source}__{stream}", n

    landed: dict[str, int] = {}
    with ThreadPoolExecutor(max_workers=max(1, workers)) as pool:
        for name, n in pool.map(land_one, jobs):
            landed[name] = landed.get(name, 0) + n
    return landed


def _conninfo(conn: psycopg.Connection) -> dict:
    info = conn.info.get_parameters()
    if conn.info.password:
        info["password"] = conn.info.password
    return info


def _land_table(conn: psycopg.Connection, world: sqlite3.Connection, served: str, start: int,
                available_before: int | None, available_from: int | None) -> int:
    source, stream, column, source_object = SERVED[served]
    if served in _TIMELESS:
        query, params = f"select key, {column}, {source_object}, {start} from {served}", []
    else:
        bounds, params = [], []
        if available_from is not None:
            bounds.append("available_at >= ?")
            params.append(available_from)
        if available_before is not None:
            bounds.append("available_at < ?")
            params.append(available_before)
        where = f" where {' and '.join(bounds)}" if bounds else ""
        query = f"select key, {column}, {source_object}, available_at from {served}{where}"
    name = f"raw.{source}__{stream}"
    table = sql.Identifier("raw", f"{source}__{stream}")
    with conn.transaction():
        key = None
        if conn.execute(sql.SQL("select not exists (select from {})").format(table)).fetchone()[0]:
            key = conn.execute(
                "select conname, pg_get_constraintdef(oid) from pg_constraint"
                " where conrelid = %s::regclass and contype = 'p'", (name,)).fetchone()
            if key:
                conn.execute(sql.SQL("alter table {} drop constraint {}").format(table, sql.Identifier(key[0])))
        batch_id = conn.execute(
            "insert into ops.batches (source, stream, status) values (%s, %s, 'running') returning batch_id",
            (source, stream)).fetchone()[0]
        n = 0
        with conn.cursor().copy(
            sql.SQL("copy {} (record_key, content_hash, payload, source_object, batch_id, extracted_at)"
                    " from stdin").format(table)) as copy:
            for record_key, payload, obj, available_at in world.execute(query, params):
                copy.write_row((record_key, hashlib.sha256(payload.encode()).hexdigest(), payload, obj, batch_id,
                                datetime.fromtimestamp(available_at, UTC)))
                n += 1
        if key:
            # the table was empty: its rows are laid out in extraction order, as the extractors' daily loads
            # append them (the world serves them in key order). The raw tables' BRIN index on extracted_at
            # finds what arrived since a mark only then; in key order every block range spans every day, and
            # each incremental run read the whole landing (ten million calls: 8 GB, several times a run)
            order = f"{source}__{stream}__landing_order"
            conn.execute(sql.SQL("create index {} on {} (extracted_at)").format(sql.Identifier(order), table))
            conn.execute(sql.SQL("cluster {} using {}").format(table, sql.Identifier(order)))
            conn.execute(sql.SQL("drop index {}").format(sql.Identifier("raw", order)))
            conn.execute(sql.SQL("alter table {} add constraint {} " + key[1]).format(table, sql.Identifier(key[0])))
        conn.execute(
            "update ops.batches set received = %s, loaded = %s, status = 'succeeded',"
            " finished_at = clock_timestamp() where batch_id = %s", (n, n, batch_id))
    return n
