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
- Incremental publish. At ten million interactions, rewriting every published row took 26 s of a day's run.
  So a table with a unique key (a unique index in the build schema) whose published copy has the same shape
  gets only what changed since the last publish: the build rows written by transactions that had not ended
  when the last publish began (their `xmin`, as the gate's scope finds the rows dbt wrote, `scope.py`) replace
  the published rows of the same keys, and when the row counts then differ, the published rows whose key the
  build no longer has are deleted. Each publish notes its transaction horizon in `quality.publishes`. Every
  row is copied again on the first publish into a schema, when asked (`full=True`: the DAG's conf
  `full_refresh` or `full_check`), and when the last publish is too many transactions ago.
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
from crm_warehouse.quality.scope import XID_HORIZON_LIMIT, ensure_quality_tables, written_since, xid_horizon

log = logging.getLogger(__name__)

READER_ROLE = "bi_reader"


class PublishError(RuntimeError):
    """Publishing could not start or finish; nothing in the target schema changed."""


@dataclass(frozen=True)
class PublishedTable:
    name: str
    rows: int
    method: str  # "replace rows", "replace changed rows" or "swap table"
    changed: int | None = None  # rows copied by "replace changed rows" (new or rewritten; deleted ones apart)


PUBLISHES_DDL = """
create table if not exists quality.publishes (
    published_at   timestamptz not null,
    build_schema   text not null,
    target_schema  text not null,
    xid_horizon    bigint not null,
    incremental    boolean not null
)
"""


@dataclass(frozen=True)
class _Since:
    """The transactions since the last publish into the same schema: a build row whose xmin is among them was
    written after that publish began (or was in flight then), so it is copied again."""

    start: int  # the last publish's horizon (64-bit transaction id)
    span: int  # transactions from it to this publish's next one

    def predicate(self) -> sql.Composable:
        return written_since(self.start, self.span)


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


def _unique_key(conn: psycopg.Connection, schema: str, name: str) -> list[str] | None:
    """The columns of the table's narrowest plain unique index (no expression, no predicate), or None."""
    row = conn.execute(
        "select array_agg(a.attname::text order by k.ord) from pg_index i"
        " join pg_class c on c.oid = i.indrelid join pg_namespace n on n.oid = c.relnamespace"
        " cross join lateral unnest(i.indkey) with ordinality as k (attnum, ord)"
        " join pg_attribute a on a.attrelid = c.oid and a.attnum = k.attnum"
        " where n.nspname = %s and c.relname = %s and i.indisunique and i.indpred is null and i.indexprs is null"
        " group by i.indexrelid order by count(*), i.indexrelid limit 1",
        (schema, name),
    ).fetchone()
    return list(row[0]) if row else None


def _ensure_key_index(conn: psycopg.Connection, schema: str, name: str, key: list[str]) -> None:
    """A unique index on `key` in the published table (BI's lookups use it too)."""
    if _unique_key(conn, schema, name) == key:
        return
    conn.execute(sql.SQL("create unique index if not exists {} on {} ({})").format(
        sql.Identifier(f"{name}__key"), sql.Identifier(schema, name),
        sql.SQL(", ").join(map(sql.Identifier, key))))


def _since_last_publish(conn: psycopg.Connection, build_schema: str, target_schema: str,
                        next_xid: int) -> _Since | None:
    last = conn.execute(
        "select xid_horizon from quality.publishes where build_schema = %s and target_schema = %s"
        " order by published_at desc limit 1", (build_schema, target_schema)).fetchone()
    if last is None or next_xid - last[0] > XID_HORIZON_LIMIT:
        return None
    return _Since(int(last[0]), int(next_xid - last[0]))


def _replace_changed_rows(conn: psycopg.Connection, source: sql.Identifier, target: sql.Identifier,
                          col_list: sql.Composable, key: list[str], since: _Since) -> tuple[int, int]:
    """Copy the build rows written since the last publish over the published rows of the same keys, then delete
    the published rows whose key is gone from the build. Returns (rows in the table, rows copied)."""
    conn.execute(sql.SQL("create temporary table publish_changed on commit drop as select {} from {} where {}")
                 .format(col_list, source, since.predicate()))
    conn.execute("analyze publish_changed")  # else the delete below plans for a guessed size, not the day's rows
    same_key = sql.SQL(" and ").join(
        sql.SQL("published.{} = changed.{}").format(sql.Identifier(k), sql.Identifier(k)) for k in key)
    conn.execute(sql.SQL("delete from {} as published using publish_changed as changed where {}")
                 .format(target, same_key))
    changed = conn.execute(sql.SQL("insert into {} ({}) select {} from publish_changed")
                           .format(target, col_list, col_list)).rowcount
    built = conn.execute(sql.SQL("select count(*) from {}").format(source)).fetchone()[0]
    published = conn.execute(sql.SQL("select count(*) from {}").format(target)).fetchone()[0]
    if published != built:
        # every key of the build is published now (the last publish copied all it saw, this one the rest), so
        # the surplus are rows the build deleted since
        in_build = sql.SQL(" and ").join(
            sql.SQL("built.{} = published.{}").format(sql.Identifier(k), sql.Identifier(k)) for k in key)
        conn.execute(sql.SQL("delete from {} as published where not exists (select from {} as built where {})")
                     .format(target, source, in_build))
    conn.execute("drop table publish_changed")  # the next mart of this transaction makes its own
    return built, changed


def _role_exists(conn: psycopg.Connection, role: str) -> bool:
    return conn.execute("select 1 from pg_roles where rolname = %s", (role,)).fetchone() is not None


def publish(
    conn: psycopg.Connection,
    build_schema: str = "marts_build",
    target_schema: str = "marts",
    *,
    reader_role: str = READER_ROLE,
    lock_timeout: str = "60s",
    full: bool = False,
) -> dict[str, Any]:
    """Publish every mart relation of `build_schema` into `target_schema` in one transaction.

    Tables with a unique key get the rows changed since the last publish (module docstring); `full=True`
    copies every row of every table (after a --full-refresh build, or to repair a published schema edited by
    hand).

    Call it only after the gate passed (`audit_and_publish` does both). Returns a small JSON-able
    summary: `{"target_schema", "tables": {name: rows}, "methods": {name: method}, "changed": {name: rows
    copied} (the marts published by their changed rows), "seconds"}`.
    """
    if build_schema == target_schema:
        raise PublishError(f"build schema and target schema are both {build_schema!r}; they must differ")
    started = time.monotonic()
    try:
        published = _publish(conn, build_schema, target_schema, reader_role, lock_timeout, full)
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
        ", ".join(f"{p.name} ({p.rows} rows, {p.method}"
                  + (f": {p.changed} copied" if p.changed is not None else "") + ")" for p in published),
    )
    return {
        "target_schema": target_schema,
        "tables": {p.name: p.rows for p in published},
        "methods": {p.name: p.method for p in published},
        "changed": {p.name: p.changed for p in published if p.changed is not None},
        "seconds": round(seconds, 3),
    }


def _publish(conn: psycopg.Connection, build_schema: str, target_schema: str, reader_role: str,
             lock_timeout: str, full: bool) -> list[PublishedTable]:
    published: list[PublishedTable] = []
    ensure_quality_tables(conn, PUBLISHES_DDL)
    with conn.transaction():
        conn.execute(sql.SQL("set local lock_timeout = {}").format(sql.Literal(lock_timeout)))
        # one publisher at a time (two runs finishing together would otherwise interleave)
        conn.execute("select pg_advisory_xact_lock(hashtext('crm_warehouse.quality.publish'))")
        # before any row is read: a build row written by a transaction not ended now is copied next time
        next_xid = conn.execute("select pg_snapshot_xmax(pg_current_snapshot())::text::bigint").fetchone()[0]
        horizon = xid_horizon(conn, next_xid)
        since = None if full else _since_last_publish(conn, build_schema, target_schema, next_xid)
        relations = _relations(conn, build_schema)
        if not relations:
            raise PublishError(
                f"nothing to publish: schema {build_schema!r} holds no tables or views; run dbt first "
                "(dbt build) so the marts exist in the build schema"
            )
        conn.execute(sql.SQL("create schema if not exists {}").format(sql.Identifier(target_schema)))
        existing = dict(_relations(conn, target_schema))
        for name, kind in relations:
            source = sql.Identifier(build_schema, name)
            target = sql.Identifier(target_schema, name)
            build_cols = _columns(conn, build_schema, name)
            col_list = sql.SQL(", ").join(sql.Identifier(c) for c, _ in build_cols)
            same_shape = existing.get(name) in ("r", "p") and _columns(conn, target_schema, name) == build_cols
            key = _unique_key(conn, build_schema, name) if kind in ("r", "p") else None
            if same_shape and key and since is not None:
                _ensure_key_index(conn, target_schema, name, key)
                rows, changed = _replace_changed_rows(conn, source, target, col_list, key, since)
                published.append(PublishedTable(name, rows, "replace changed rows", changed))
            elif same_shape:
                conn.execute(sql.SQL("delete from {}").format(target))
                cur = conn.execute(
                    sql.SQL("insert into {} ({}) select {} from {}").format(target, col_list, col_list, source)
                )
                published.append(PublishedTable(name, cur.rowcount, "replace rows"))
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
                if key:
                    _ensure_key_index(conn, target_schema, name, key)
                published.append(PublishedTable(name, cur.rowcount, "swap table"))
            if _role_exists(conn, reader_role):
                conn.execute(sql.SQL("grant select on {} to {}").format(target, sql.Identifier(reader_role)))
        conn.execute("insert into quality.publishes (published_at, build_schema, target_schema, xid_horizon,"
                     " incremental) values (clock_timestamp(), %s, %s, %s, %s)",
                     (build_schema, target_schema, horizon, since is not None))
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
