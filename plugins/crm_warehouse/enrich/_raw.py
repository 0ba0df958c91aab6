"""Helpers shared by the enrichment steps."""

from __future__ import annotations

import psycopg


def existing_tables(conn: psycopg.Connection, names: list[str]) -> set[str]:
    """Which of the qualified table names (schema.table) exist; missing raw streams are skipped."""
    rows = conn.execute(
        "select n from unnest(%s::text[]) as n where to_regclass(n) is not null", (names,)
    ).fetchall()
    return {r[0] for r in rows}
