"""What is in the warehouse and what ran last: read by `crm status` and the demo's summary.
Every query tolerates a warehouse where some stage has not run yet."""

from __future__ import annotations

import psycopg
from psycopg import sql

from crm_warehouse.settings import docs_dir


def _exists(conn: psycopg.Connection, schema: str, table: str) -> bool:
    return conn.execute("select to_regclass(%s) is not null", (f"{schema}.{table}",)).fetchone()[0]


def _columns(conn: psycopg.Connection, schema: str, table: str) -> set[str]:
    rows = conn.execute("select column_name from information_schema.columns where table_schema = %s "
                        "and table_name = %s", (schema, table)).fetchall()
    return {r[0] for r in rows}


def raw_counts(conn: psycopg.Connection) -> list[dict]:
    tables = [r[0] for r in conn.execute(
        "select table_name from information_schema.tables where table_schema = 'raw' "
        "and table_type = 'BASE TABLE' order by table_name").fetchall()]
    quarantined: dict[str, int] = {}
    if _exists(conn, "ops", "quarantine"):
        cols = _columns(conn, "ops", "quarantine")
        if {"source", "stream"} <= cols:
            for source, stream, n in conn.execute(
                    "select source, stream, count(*) from ops.quarantine group by 1, 2").fetchall():
                quarantined[f"{source}__{stream}"] = n
    out = []
    for t in tables:
        n = conn.execute(sql.SQL("select count(*) from raw.{}").format(sql.Identifier(t))).fetchone()[0]
        out.append({"table": f"raw.{t}", "rows": n, "quarantined": quarantined.get(t, 0)})
    return out


def summary(url: str) -> dict:
    with psycopg.connect(url) as conn:
        result: dict = {"raw": raw_counts(conn), "customers": 0, "source_records": 0, "complaints": [],
                        "quality": {"outcome": "not run", "checks": 0, "failed_critical": 0, "warnings": 0}}
        if _exists(conn, "marts", "dim_customers"):
            result["customers"] = conn.execute("select count(*) from marts.dim_customers").fetchone()[0]
        result["source_records"] = sum(r["rows"] for r in result["raw"])
        if _exists(conn, "marts", "fct_complaints"):
            cols = _columns(conn, "marts", "fct_complaints")
            rect = next((c for c in ("is_rectified", "rectified") if c in cols), None)
            rect_expr = sql.SQL("count(*) filter (where {})").format(sql.Identifier(rect)) if rect else sql.SQL("0")
            q = sql.SQL("select channel, count(*), {} from marts.fct_complaints group by 1 order by 2 desc").format(
                rect_expr)
            result["complaints"] = [{"channel": c, "complaints": n, "rectified": r}
                                    for c, n, r in conn.execute(q).fetchall()]
        if _exists(conn, "quality", "validation_results"):
            row = conn.execute("""
                with last_run as (
                    select run_id from quality.validation_results order by checked_at desc limit 1
                )
                select count(*),
                       count(*) filter (where not success and severity = 'critical'),
                       count(*) filter (where not success and severity = 'warning')
                from quality.validation_results where run_id = (select run_id from last_run)
            """).fetchone()
            if row and row[0]:
                result["quality"] = {"outcome": "passed" if row[1] == 0 else "FAILED", "checks": row[0],
                                     "failed_critical": row[1], "warnings": row[2]}
    root = docs_dir()
    result["docs"] = {
        "dbt docs": str(root / "dbt" / "index.html"),
        "Data Docs": str(root / "data_docs" / "index.html"),
        "report": str(root / "report" / "index.html"),
    }
    return result


def last_runs(url: str) -> list[dict]:
    with psycopg.connect(url) as conn:
        if not _exists(conn, "ops", "batches"):
            return []
        rows = conn.execute("""
            select distinct on (source, stream)
                   source, stream, finished_at, window_start, window_end, received, loaded, duplicate,
                   quarantined, status
            from ops.batches
            order by source, stream, batch_id desc
        """).fetchall()
    out = []
    for r in rows:
        window = f"{r[3]:%Y-%m-%d %H:%M} .. {r[4]:%Y-%m-%d %H:%M}" if r[3] and r[4] else "-"
        out.append({"source": r[0], "stream": r[1], "finished_at": r[2], "window": window, "received": r[5],
                    "loaded": r[6], "duplicate": r[7], "quarantined": r[8], "status": r[9]})
    return out
