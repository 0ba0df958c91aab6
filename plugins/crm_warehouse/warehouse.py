"""Connections to the warehouse (PostgreSQL), from the Airflow connection `warehouse` or a URL."""

from __future__ import annotations

from urllib.parse import quote, urlsplit

import psycopg

WAREHOUSE_CONN_ID = "warehouse"


class WarehouseUnavailable(ConnectionError):
    """The warehouse could not be reached, or the connection was lost in the middle of a load (a restart,
    a failover, the network). PostgreSQL rolled back the transaction in progress; what was committed before
    it is kept. Re-running the task once the server answers again is safe."""


def url_from_connection(conn_id: str = WAREHOUSE_CONN_ID) -> str:
    """The libpq URL of an Airflow connection (env `AIRFLOW_CONN_*` or the metadata database)."""
    from airflow.sdk import BaseHook  # imported late: tests and the CLI use this without Airflow config

    conn = BaseHook.get_connection(conn_id)
    user = quote(conn.login or "", safe="")
    password = f":{quote(conn.password, safe='')}" if conn.password else ""
    auth = f"{user}{password}@" if user else ""
    port = f":{conn.port}" if conn.port else ""
    return f"postgresql://{auth}{conn.host or ''}{port}/{conn.schema or 'postgres'}"


def connect(conn_id: str = WAREHOUSE_CONN_ID, *, url: str | None = None, **kwargs) -> psycopg.Connection:
    """Open a psycopg 3 connection to `url`, or else to the Airflow connection `conn_id`."""
    target = url or url_from_connection(conn_id)
    kwargs.setdefault("application_name", "crm_warehouse")
    return psycopg.connect(target, **kwargs)


def redact(url: str) -> str:
    """A URL with its password replaced, for logs and messages."""
    parts = urlsplit(url)
    if parts.password:
        netloc = parts.netloc.replace(f":{parts.password}@", ":***@")
        return parts._replace(netloc=netloc).geturl()
    return url
