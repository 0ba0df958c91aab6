"""The publish step: copy every mart dbt built in the build schema into `marts`, in ONE transaction.

Design (write, audit, publish):
- dbt keeps building into `marts_build`, whose incremental models are never moved or renamed, so the next
  run's incremental merge finds them intact.
- Publishing copies each table (or view, materialised as a table) into `marts` inside one transaction. When
  the published table already has the same columns and types, its rows are replaced with `delete` +
  `insert`: MVCC-safe, so a concurrent reader (any isolation level) sees either all the old rows or all the
  new ones, is never blocked, and grants and dependent views stay. When the shape changed (or the mart is
  new), a fresh table is built and swapped in by drop + rename in the same transaction; readers wait for the
  commit and then read the new table.
- `bi_reader` keeps `usage` on `marts` and `select` on every published table.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import psycopg
from psycopg import sql

from crm_warehouse.quality.gate import SCRATCH_SUFFIXES, GateResult, QualityGateFailed, run_gate

log = logging.getLogger(__name__)

READER_ROLE = "bi_reader"


class PublishError(RuntimeError):
    """Publishing could not start or finish; nothing in the target schema changed."""


@dataclass(frozen=True)
class PublishedTable:
    name: str
    rows: int
    method: str  # "replace rows" or "swap table"


def _relations(conn: psycopg.Connection, schema: str) -> list[tuple[str, str]]:
    """(name, relkind) of the tables, views and materialised views in `schema`."""
    rows = conn.execute(
        "select c.relname, c.relkind from pg_class c join pg_namespace n on n.oid = c.relnamespace "
        "where n.nspname = %s and c.relkind in ('r', 'p', 'v', 'm') order by c.relname",
        (schema,),
    ).fetchall()
    return [(name, kind) for name, kind in rows if not name.endswith(SCRATCH_SUFFIXES)]


def _columns(conn: psycopg.Connection, schema: str, name: str) -> list[tuple[str, str]]:
    return conn.execute(
        "select a.attname, format_type(a.atttypid, a.atttypmod) from pg_attribute a "
        "join pg_class c on c.oid = a.attrelid join pg_namespace n on n.oid = c.relnamespace "
        "where n.nspname = %s and c.relname = %s and a.attnum > 0 and not a.attisdropped order by a.attnum",
        (schema, name),
    ).fetchall()


def _role_exists(conn: psycopg.Connection, role: str) -> bool:
    return conn.execute("select 1 from pg_roles where rolname = %s", (role,)).fetchone() is not None


def publish(
    conn: psycopg.Connection,
    build_schema: str = "marts_build",
    target_schema: str = "marts",
    *,
    reader_role: str = READER_ROLE,
    lock_timeout: str = "60s",
) -> dict[str, Any]:
    """Publish every mart relation of `build_schema` into `target_schema` in one transaction.

    Call it only after the gate passed (`audit_and_publish` does both). Returns a small JSON-able
    summary: `{"target_schema", "tables": {name: rows}, "methods": {name: method}, "seconds"}`.
    """
    if build_schema == target_schema:
        raise PublishError(f"build schema and target schema are both {build_schema!r}; they must differ")
    started = time.monotonic()
    try:
        published = _publish(conn, build_schema, target_schema, reader_role, lock_timeout)
    except psycopg.errors.LockNotAvailable as exc:
        raise PublishError(
            f"publishing {build_schema} into {target_schema} waited more than {lock_timeout} for a lock "
            "(a long BI query on a mart whose columns changed?); nothing was published: retry the task, "
            "or end the blocking session (see pg_stat_activity)"
        ) from exc
    seconds = time.monotonic() - started
    log.info(
        "published %d marts from %s to %s in %.1fs: %s",
        len(published), build_schema, target_schema, seconds,
        ", ".join(f"{p.name} ({p.rows} rows, {p.method})" for p in published),
    )
    return {
        "target_schema": target_schema,
        "tables": {p.name: p.rows for p in published},
        "methods": {p.name: p.method for p in published},
        "seconds": round(seconds, 3),
    }


def _publish(conn: psycopg.Connection, build_schema: str, target_schema: str, reader_role: str,
             lock_timeout: str) -> list[PublishedTable]:
    published: list[PublishedTable] = []
    with conn.transaction():
        conn.execute(sql.SQL("set local lock_timeout = {}").format(sql.Literal(lock_timeout)))
        # one publisher at a time (two runs finishing together would otherwise interleave)
        conn.execute("select pg_advisory_xact_lock(hashtext('crm_warehouse.quality.publish'))")
        relations = _relations(conn, build_schema)
        if not relations:
            raise PublishError(
                f"nothing to publish: schema {build_schema!r} holds no tables or views; run dbt first "
                "(dbt build) so the marts exist in the build schema"
            )
        conn.execute(sql.SQL("create schema if not exists {}").format(sql.Identifier(target_schema)))
        existing = dict(_relations(conn, target_schema))
        for name, _kind in relations:
            source = sql.Identifier(build_schema, name)
            target = sql.Identifier(target_schema, name)
            build_cols = _columns(conn, build_schema, name)
            col_list = sql.SQL(", ").join(sql.Identifier(c) for c, _ in build_cols)
            same_shape = existing.get(name) in ("r", "p") and _columns(conn, target_schema, name) == build_cols
            if same_shape:
                conn.execute(sql.SQL("delete from {}").format(target))
                cur = conn.execute(
                    sql.SQL("insert into {} ({}) select {} from {}").format(target, col_list, col_list, source)
                )
                method = "replace rows"
            else:
                staging = sql.Identifier(target_schema, f"{name}__publishing")
                conn.execute(sql.SQL("drop table if exists {}").format(staging))
                cur = conn.execute(
                    sql.SQL("create table {} as select {} from {}").format(staging, col_list, source)
                )
                if name in existing:
                    drop = "drop view" if existing[name] == "v" else (
                        "drop materialized view" if existing[name] == "m" else "drop table")
                    conn.execute(sql.SQL(drop + " {}").format(target))
                conn.execute(
                    sql.SQL("alter table {} rename to {}").format(staging, sql.Identifier(name))
                )
                method = "swap table"
            published.append(PublishedTable(name, cur.rowcount, method))
            if _role_exists(conn, reader_role):
                conn.execute(sql.SQL("grant select on {} to {}").format(target, sql.Identifier(reader_role)))
        if _role_exists(conn, reader_role):
            conn.execute(
                sql.SQL("grant usage on schema {} to {}").format(
                    sql.Identifier(target_schema), sql.Identifier(reader_role)
                )
            )
    return published


def audit_and_publish(
    url: str,
    *,
    run_id: str,
    run_end: datetime,
    docs_dir: str | Path,
    build_schema: str = "marts_build",
    target_schema: str = "marts",
    suites_dir: str | Path | None = None,
    waive: tuple[str, ...] = (),
) -> tuple[GateResult, dict[str, Any]]:
    """Audit with the gate, then publish only if no critical check failed.

    Raises QualityGateFailed (listing the failed checks, their unexpected row counts and the Data Docs)
    and leaves `target_schema` untouched when a critical check fails.
    """
    result = run_gate(url, build_schema=build_schema, run_id=run_id, run_end=run_end, docs_dir=docs_dir,
                      suites_dir=suites_dir, target_schema=target_schema, waive=waive)
    if not result.passed:
        raise QualityGateFailed(result)
    with psycopg.connect(url, application_name="crm_quality_publish") as conn:
        published = publish(conn, build_schema=build_schema, target_schema=target_schema)
    return result, published
