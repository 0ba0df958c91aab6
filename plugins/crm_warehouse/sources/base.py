"""What a source is: settings as data, a client factory and stream extractors that yield chunks of
records with the position to resume from. The runner (`crm_warehouse.sources.runner`) loads them."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import psycopg

from crm_warehouse.http import HttpClient, RetryPolicy
from crm_warehouse.load import Record
from crm_warehouse.load.loader import KeySpec


@dataclass(frozen=True)
class ConnInfo:
    """The parts of an Airflow connection a source needs."""

    conn_id: str
    base_url: str
    login: str | None
    password: str | None
    extra: dict

    def require(self, name: str) -> Any:
        value = self.extra.get(name)
        if value in (None, "", []):
            raise ValueError(f"Airflow connection {self.conn_id!r} has no extra.{name}: add it to the "
                             "connection's extra JSON (docs/CONTRACTS.md section 1)")
        return value

    @property
    def allow_insecure_http(self) -> bool:
        """`extra.allow_insecure_http`: send credentials over plain http:// to a non-loopback host."""
        from crm_warehouse.http.client import allows_insecure_http

        return allows_insecure_http(self.extra)

    def __repr__(self) -> str:  # never print secrets
        return f"ConnInfo(conn_id={self.conn_id!r}, base_url={self.base_url!r}, login={self.login!r})"


def base_url_of(host: str | None, schema: str | None, port: int | None) -> str:
    """HTTP base URL: `host` when it carries a scheme, else `{schema or https}://{host}[:{port}]`."""
    host = (host or "").strip()
    if not host:
        raise ValueError("the connection has no host (base URL)")
    if "://" in host:
        return host.rstrip("/")
    scheme = (schema or "https").strip() or "https"
    return f"{scheme}://{host}{f':{port}' if port else ''}"


def connection_info(conn_id: str) -> ConnInfo:
    """Read an Airflow connection (env `AIRFLOW_CONN_<ID>`, a secrets backend or the metadata DB)."""
    from airflow.sdk import BaseHook  # late: importing Airflow costs seconds

    conn = BaseHook.get_connection(conn_id)
    try:
        base = base_url_of(conn.host, conn.schema, conn.port)
    except ValueError as exc:
        raise ValueError(f"Airflow connection {conn_id!r}: {exc}; set host to the vendor's base URL") from exc
    return ConnInfo(conn_id, base, conn.login, conn.password, dict(conn.extra_dejson or {}))


@dataclass
class Chunk:
    """Records received since the previous chunk, per stream (table), and where the stream would resume
    after them (None when the window is complete)."""

    records: dict[str, list[Record]]
    position: dict | None


@dataclass
class StreamContext:
    source: str
    stream: str
    conn: ConnInfo
    client: HttpClient
    window_start: datetime
    window_end: datetime
    cursor: dict  # the stream's cursor after its last complete window (stream-specific keys)
    resume: dict | None  # position saved by an interrupted try of this same window
    warehouse: psycopg.Connection  # to read what earlier streams landed (e.g. posts for comments)
    new_cursor: dict = field(default_factory=dict)  # stream-specific cursor to save at completion

    @property
    def extra(self) -> dict:
        return self.conn.extra


Extractor = Callable[[StreamContext], Iterator[Chunk]]


@dataclass(frozen=True)
class Stream:
    name: str
    extract: Extractor | None
    keys: dict[str, KeySpec]  # table stream name -> natural key; the first is the stream itself
    loaded_by: str | None = None  # e.g. X users are landed by the mentions stream


@dataclass(frozen=True)
class Source:
    name: str
    make_client: Callable[[ConnInfo, RetryPolicy | None], HttpClient]
    stream_list: tuple[Stream, ...]

    @property
    def streams(self) -> list[str]:
        """Stream names, in the order they should run."""
        return [s.name for s in self.stream_list]

    def stream(self, name: str) -> Stream:
        for s in self.stream_list:
            if s.name == name:
                return s
        raise KeyError(f"Source {self.name!r} has no stream {name!r}; streams: {', '.join(self.streams)}")


def iso(dt: datetime) -> str:
    """ISO 8601 in UTC with a Z, seconds precision when exact."""
    dt = dt.astimezone(UTC)
    text = dt.isoformat(timespec="microseconds" if dt.microsecond else "seconds")
    return text.replace("+00:00", "Z")


def page_records(page_records: list, *, source_object: str | None, uri: str, number: int) -> list[Record]:
    """Wrap the records of one page with their lineage (the page URL and number)."""
    from crm_warehouse.load.loader import lineage_tail

    position = str(number)
    tail = lineage_tail(source_object, uri, position)
    return [Record(r, source_object, uri, position, tail=tail) for r in page_records]
