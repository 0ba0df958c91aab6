"""Create the warehouse's schemas and roles (idempotent). Called by every DAG's first task and the CLI."""

from __future__ import annotations

from importlib import resources

import psycopg

SCHEMAS = ("raw", "ops", "staging", "intermediate", "snapshots", "marts_build", "marts", "quality")


def bootstrap(conn: psycopg.Connection) -> None:
    """Run sql/bootstrap.sql under an advisory lock, so parallel tasks do not race on `create role`."""
    ddl = resources.files("crm_warehouse").joinpath("sql/bootstrap.sql").read_text()
    with conn.transaction():
        conn.execute("select pg_advisory_xact_lock(hashtext('crm_warehouse.bootstrap'))")
        conn.execute(ddl)
