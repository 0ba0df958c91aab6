"""Helpers shared by the enrichment steps: which raw tables exist, and how far each step has read them.

Each step reads, per raw table, only the rows extracted since its mark, the latest `extracted_at` it has read
there (the BRIN index on `extracted_at` finds them without scanning the table), less a look-back: a load whose
transaction began before the last enrichment and committed after it carries extraction times older than the
mark, so the step re-reads LOOKBACK before it (the same 24 hours as dbt's `incremental_lookback_hours`).
Re-reading is harmless: each step keeps only the values it has not enriched yet. A mark is kept per step, raw
table and version of the step's rules; when the rules change (or on `full=True`, which the transform DAG
passes on a full refresh) the whole table is read again.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from datetime import datetime, timedelta

import psycopg
from psycopg import sql

MARKS_TABLE = "intermediate.enrich_marks"
MARKS_DDL = f"""
create table if not exists {MARKS_TABLE} (
    step        text not null,          -- phones | sentiment
    raw_table   text not null,          -- raw.<source>__<stream>
    version     text not null,          -- the step's rules the rows were read under
    through     timestamptz not null,   -- the latest extracted_at read from the table
    primary key (step, raw_table)
)
"""
LOOKBACK = timedelta(hours=24)
# values enriched per round trip: memory stays flat whatever the number of new values
CHUNK = 20_000


def existing_tables(conn: psycopg.Connection, names: list[str]) -> set[str]:
    """Which of the qualified table names (schema.table) exist; missing raw streams are skipped."""
    rows = conn.execute(
        "select n from unnest(%s::text[]) as n where to_regclass(n) is not null", (names,)
    ).fetchall()
    return {r[0] for r in rows}


def read_since(conn: psycopg.Connection, step: str, tables: list[str], version: str,
               full: bool = False) -> dict[str, datetime | None]:
    """Per raw table, the extraction time to read from (None: the whole table, as on the first run)."""
    conn.execute(MARKS_DDL)
    if full:
        return dict.fromkeys(tables)
    marks = dict(conn.execute(
        f"select raw_table, through from {MARKS_TABLE} where step = %s and version = %s",
        (step, version),
    ).fetchall())
    return {t: (marks[t] - LOOKBACK if t in marks else None) for t in tables}


def advance_marks(conn: psycopg.Connection, step: str, since: dict[str, datetime | None], version: str) -> None:
    """Move each table's mark to the latest `extracted_at` among the rows read from `since` (call in the
    reading transaction); a table with no row newer keeps its mark."""
    for table, start in since.items():
        schema, name = table.split(".")
        latest = conn.execute(
            sql.SQL("select max(extracted_at) from {} where extracted_at > coalesce(%s::timestamptz, '-infinity')")
            .format(sql.Identifier(schema, name)),
            (start,),
        ).fetchone()[0]
        if latest is None:
            continue
        conn.execute(
            f"""
            insert into {MARKS_TABLE} (step, raw_table, version, through) values (%s, %s, %s, %s)
            on conflict (step, raw_table) do update set
                through = case when {MARKS_TABLE}.version = excluded.version
                               then greatest({MARKS_TABLE}.through, excluded.through) else excluded.through end,
                version = excluded.version
            """,
            (step, table, version, latest),
        )


def copy_in_chunks(source: psycopg.Cursor, target: psycopg.Cursor, copy: str,
                   rows: Callable[[list[tuple]], Iterable[tuple]]) -> int:
    """Fetch what `source` (a server-side cursor, its query executed) yields, CHUNK rows at a time, and write
    `rows(chunk)` through the `COPY ... FROM STDIN` statement `copy` on `target`; returns the rows fetched.
    Ten million raw records hold millions of new values: a fetchall would hold them all in memory at once."""
    count = 0
    while chunk := source.fetchmany(CHUNK):
        count += len(chunk)
        with target.copy(copy) as out:
            for row in rows(chunk):
                out.write_row(row)
    return count
