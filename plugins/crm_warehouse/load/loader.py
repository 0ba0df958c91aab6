"""The COPY loader: one batch of records of one stream into `raw.<source>__<stream>`.

A batch is written inside the caller's transaction, so the stream's cursor (`ops.stream_state`) moves
in the same commit as the rows it covers. Steps: quarantine records without their natural key or that
PostgreSQL cannot store; hash the rest (sha256 of canonical JSON); `COPY` them into a temporary table;
`insert ... on conflict (record_key, content_hash) do nothing` into the raw table. A record delivered
again changes nothing (duplicate); a changed record is a new version. The ledger row in `ops.batches`
proves received = loaded + duplicate + quarantined.
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from itertools import count
from typing import Any

import msgspec
import psycopg
from psycopg import sql
from psycopg.types.json import Jsonb

from crm_warehouse.load.ddl import ensure_ops_tables, ensure_raw_table, raw_table
from crm_warehouse.load.hashing import _JSON_TYPES, canonical_json_bytes

log = logging.getLogger(__name__)

COPY_CHUNK = 5000  # rows per copy.write call
# Schema profiling (for drift) looks at every record of the first SCHEMA_FULL_SCAN of a batch, then at one
# in SCHEMA_STRIDE: HTTP batches (flushed every 50k records) are profiled almost entirely, and a 1M-row
# file keeps its load speed.
SCHEMA_FULL_SCAN = 20_000
SCHEMA_STRIDE = 4


@dataclass(slots=True)
class Record:
    """One record as received: `payload` is the decoded vendor record (a JSON object, or a CSV row as
    {header: text}); `raw_text` is what arrived when it could not be decoded (then `error` says why)."""

    payload: Any
    source_object: str | None = None
    source_uri: str | None = None
    source_position: str | None = None
    error: str | None = None
    raw_text: str | None = None
    tail: bytes | None = None  # the lineage columns already in COPY form (set by `lineage_tail`)


def lineage_tail(source_object: str | None, source_uri: str | None, source_position: str | None) -> bytes:
    """The lineage columns of a record in COPY text form; share one among the records of a page."""
    return f"{_esc(source_object)}\t{_esc(source_uri)}\t{_esc(source_position)}".encode()


def _tail(rec: Record) -> bytes:
    return lineage_tail(rec.source_object, rec.source_uri, rec.source_position)


KeySpec = str | Sequence[str] | Callable[[dict], Any]


@dataclass
class BatchStats:
    source: str
    stream: str
    batch_id: int
    received: int = 0
    loaded: int = 0
    duplicate: int = 0
    quarantined: int = 0
    drift: list[dict] = field(default_factory=list)

    def as_dict(self) -> dict:
        return {
            "batch_id": self.batch_id,
            "received": self.received,
            "loaded": self.loaded,
            "duplicate": self.duplicate,
            "quarantined": self.quarantined,
            "schema_drift": len(self.drift),
        }


def key_getter(key: KeySpec) -> Callable[[dict], Any]:
    """A function returning the natural key of a payload: a field name, the first present of several
    field names, or a callable."""
    if callable(key):
        return key
    fields = (key,) if isinstance(key, str) else tuple(key)
    if len(fields) == 1:
        only = fields[0]
        return lambda payload: payload.get(only)

    def first(payload: dict) -> Any:
        for name in fields:
            value = payload.get(name)
            if value not in (None, ""):
                return value
        return None

    return first


def _esc(value: str | None) -> str:
    """A value in PostgreSQL COPY text format."""
    if value is None:
        return "\\N"
    if "\\" in value:
        value = value.replace("\\", "\\\\")
    if "\t" in value or "\n" in value or "\r" in value:
        value = value.replace("\t", "\\t").replace("\n", "\\n").replace("\r", "\\r")
    return value


def _safe_text(value: Any) -> str:
    """Text that PostgreSQL can hold (no NUL, valid UTF-8), for quarantine and error messages."""
    if value is None:
        return ""
    if not isinstance(value, str):
        try:
            value = json.dumps(value, ensure_ascii=False, default=str)
        except (ValueError, RecursionError):  # RecursionError: nested too deeply for the encoder
            try:
                value = repr(value)
            except RecursionError:
                value = f"<a {type(value).__name__} nested too deeply to print>"
    return value.replace("\x00", "\\u0000").encode("utf-8", "backslashreplace").decode("utf-8")


_tmp_counter = count(1)


def write_batch(
    conn: psycopg.Connection,
    source: str,
    stream: str,
    records: Iterable[Record],
    *,
    key: KeySpec,
    window: tuple[datetime | None, datetime | None] = (None, None),
    cursor_before: Any = None,
    cursor_after: Any = None,
    source_uri: str | None = None,
    track_schema: bool = True,
) -> BatchStats:
    """Write one batch inside the caller's open transaction; returns its counts.

    The ledger row is inserted as `running` and set to `succeeded` at the end of this function, so if
    the caller's transaction fails nothing of the batch remains (the caller records the failure).
    """
    ensure_raw_table(conn, source, stream)
    get_key = key_getter(key)
    batch_id = conn.execute(
        "insert into ops.batches (source, stream, window_start, window_end, cursor_before, source_uri)"
        " values (%s, %s, %s, %s, %s, %s) returning batch_id",
        (source, stream, window[0], window[1], Jsonb(cursor_before), source_uri),
    ).fetchone()[0]
    stats = BatchStats(source, stream, batch_id)

    started = time.perf_counter()
    tmp = f"_crm_load_{next(_tmp_counter)}"
    # payload is jsonb already in the temporary table: PostgreSQL parses it while the COPY streams (on its
    # own core, overlapping this loop's hashing) instead of afterwards in the insert, while Python waits.
    conn.execute(
        sql.SQL(
            "create temp table {} (record_key text, content_hash text, payload jsonb,"
            " source_object text, source_uri text, source_position text) on commit drop"
        ).format(sql.Identifier(tmp))
    )
    quarantine: list[tuple[str | None, str, str]] = []
    seen: set[bytes] = set()
    profile: dict[str, set[str]] = {}
    pairs: set[tuple[str, type]] = set()
    pairs_seen = 0
    nested: list[str] = []
    nested_pairs: dict[str, set[tuple[str, type]]] = {}
    sha256 = hashlib.sha256
    received = 0
    duplicates_in_batch = 0
    buffer: list[bytes] = []
    encode = canonical_json_bytes
    with conn.cursor().copy(
        sql.SQL(
            "copy {} (record_key, content_hash, payload, source_object, source_uri, source_position)"
            " from stdin"
        ).format(sql.Identifier(tmp))
    ) as copy:
        for rec in records:
            received += 1
            payload = rec.payload
            if rec.error is not None:
                quarantine.append((rec.source_position, rec.error, _safe_text(rec.raw_text or payload)))
                continue
            if not isinstance(payload, dict):
                quarantine.append(
                    (rec.source_position, f"record is a JSON {type(payload).__name__}, not an object",
                     _safe_text(rec.raw_text or payload))
                )
                continue
            try:
                record_key = get_key(payload)
            except Exception as exc:  # a key function failing on a malformed record
                record_key = None
                key_error = f"natural key could not be read: {exc}"
            else:
                key_error = f"missing natural key {key!r}" if not callable(key) else "missing natural key"
            if record_key is None or record_key == "":
                quarantine.append((rec.source_position, key_error, _safe_text(rec.raw_text or payload)))
                continue
            try:
                data = encode(payload)
            except (TypeError, ValueError, RecursionError, msgspec.EncodeError) as exc:
                quarantine.append(
                    (f"{record_key}", f"payload cannot be stored as JSON: {exc}", _safe_text(payload))
                )
                continue
            if b"\\u0000" in data:
                quarantine.append(
                    (f"{record_key}", "payload contains a NUL character (\\u0000), which PostgreSQL jsonb "
                     "cannot store", _safe_text(payload))
                )
                continue
            record_key = record_key if isinstance(record_key, str) else str(record_key)
            raw_digest = sha256(data).digest()
            # The key is a function of the payload, so equal payloads are equal records: the digest alone
            # identifies a (key, hash) pair; 16 of its bytes keep memory small on million-row files.
            ident = raw_digest[:16]
            if ident in seen:
                duplicates_in_batch += 1
                continue
            seen.add(ident)
            digest = raw_digest.hex()
            if track_schema and (received <= SCHEMA_FULL_SCAN or not received % SCHEMA_STRIDE):
                pairs.update(zip(payload.keys(), map(type, payload.values()), strict=True))
                if len(pairs) != pairs_seen:  # a new (field, type): look for new nested objects
                    pairs_seen = len(pairs)
                    nested = [name for name, typ in pairs if typ is dict]
                for name in nested:  # one level down (e.g. Qualtrics `values`, Typeform `hidden`)
                    inner = payload.get(name)
                    if type(inner) is dict:
                        nested_pairs.setdefault(name, set()).update(
                            zip(inner.keys(), map(type, inner.values()), strict=True))
            if b"\\" in data:
                data = data.replace(b"\\", b"\\\\")
            buffer.append(
                b"%s\t%s\t%s\t%s\n" % (_esc(record_key).encode(), digest.encode(), data,
                                         (rec.tail if rec.tail is not None else _tail(rec)))
            )
            if len(buffer) >= COPY_CHUNK:
                copy.write(b"".join(buffer))
                buffer.clear()
        if buffer:
            copy.write(b"".join(buffer))
            buffer.clear()

    copied_at = time.perf_counter()
    cur = conn.execute(
        sql.SQL(
            "insert into {raw} (record_key, content_hash, payload, source_object, batch_id, source_uri,"
            " source_position) select record_key, content_hash, payload, source_object, %s,"
            " source_uri, source_position from {tmp} on conflict (record_key, content_hash) do nothing"
        ).format(raw=raw_table(source, stream), tmp=sql.Identifier(tmp)),
        (batch_id,),
    )
    loaded = cur.rowcount
    inserted_at = time.perf_counter()
    stats.received = received
    stats.loaded = loaded
    stats.quarantined = len(quarantine)
    stats.duplicate = received - loaded - len(quarantine)
    assert stats.duplicate >= duplicates_in_batch, "loader count mismatch"

    if quarantine:
        with conn.cursor().copy(
            "copy ops.quarantine (batch_id, source, stream, record_ref, reason, original) from stdin"
        ) as copy:
            for ref, reason, original in quarantine:
                copy.write_row((batch_id, source, stream, ref, reason, original))

    schema_profile = None
    if track_schema and seen:
        for name, typ in pairs:
            profile.setdefault(name, set()).add(_JSON_TYPES.get(typ, typ.__name__))
        for parent, inner_pairs in nested_pairs.items():
            for name, typ in inner_pairs:
                profile.setdefault(f"{parent}.{name}", set()).add(_JSON_TYPES.get(typ, typ.__name__))
        schema_profile = {name: sorted(types) for name, types in sorted(profile.items())}
        stats.drift = record_schema_drift(conn, source, stream, batch_id, schema_profile)

    conn.execute(
        "update ops.batches set received = %s, loaded = %s, duplicate = %s, quarantined = %s,"
        " cursor_after = %s, status = 'succeeded', finished_at = clock_timestamp(), schema_profile = %s"
        " where batch_id = %s",
        (stats.received, stats.loaded, stats.duplicate, stats.quarantined, Jsonb(cursor_after),
         Jsonb(schema_profile) if schema_profile is not None else None, batch_id),
    )
    log.info(
        "%s.%s batch %s: received %s, loaded %s, duplicate %s, quarantined %s (hash+copy %.1fs, insert %.1fs)",
        source, stream, batch_id, stats.received, stats.loaded, stats.duplicate, stats.quarantined,
        copied_at - started, inserted_at - copied_at,
    )
    return stats


def _non_null(types: list[str]) -> list[str]:
    return [t for t in types if t != "null"]


def compare_profiles(old: dict[str, list[str]], new: dict[str, list[str]]) -> list[dict]:
    """Fields that appeared, disappeared or changed JSON type between two batch profiles.

    A field seen only as null on one side is compatible with any type (optional fields are often null).
    """
    changes = []
    for name in sorted(set(old) | set(new)):
        if name not in old:
            changes.append({"field": name, "change": "appeared", "old_type": None,
                            "new_type": "|".join(new[name])})
        elif name not in new:
            changes.append({"field": name, "change": "disappeared", "old_type": "|".join(old[name]),
                            "new_type": None})
        else:
            before, after = _non_null(old[name]), _non_null(new[name])
            if before and after and not set(after) <= set(before):
                changes.append({"field": name, "change": "type_changed", "old_type": "|".join(before),
                                "new_type": "|".join(after)})
    return changes


def record_schema_drift(
    conn: psycopg.Connection, source: str, stream: str, batch_id: int, profile: dict[str, list[str]]
) -> list[dict]:
    """Compare with the stream's previous batch that had records; write the changes to ops.schema_drift.
    Never raises for drift itself: drift is information, not an error."""
    row = conn.execute(
        "select schema_profile from ops.batches where source = %s and stream = %s and batch_id < %s"
        " and status = 'succeeded' and schema_profile is not null order by batch_id desc limit 1",
        (source, stream, batch_id),
    ).fetchone()
    if row is None:
        return []
    changes = compare_profiles(row[0], profile)
    if changes:
        with conn.cursor() as cur:
            cur.executemany(
                "insert into ops.schema_drift (batch_id, source, stream, field, change, old_type, new_type)"
                " values (%s, %s, %s, %s, %s, %s, %s)",
                [(batch_id, source, stream, c["field"], c["change"], c["old_type"], c["new_type"])
                 for c in changes],
            )
        log.warning("%s.%s batch %s: schema drift %s", source, stream, batch_id,
                    ", ".join(f"{c['field']} {c['change']}" for c in changes))
    return changes


def read_state(conn: psycopg.Connection, source: str, stream: str) -> dict | None:
    """The saved cursor of a stream (None before its first batch)."""
    row = conn.execute(
        "select cursor from ops.stream_state where source = %s and stream = %s", (source, stream)
    ).fetchone()
    return row[0] if row else None


def save_state(
    conn: psycopg.Connection, source: str, stream: str, cursor: Any, batch_id: int | None
) -> None:
    """Move a stream's cursor; call inside the transaction that commits the rows it covers."""
    conn.execute(
        "insert into ops.stream_state (source, stream, cursor, batch_id) values (%s, %s, %s, %s)"
        " on conflict (source, stream) do update set cursor = excluded.cursor,"
        " batch_id = coalesce(excluded.batch_id, ops.stream_state.batch_id), updated_at = clock_timestamp()",
        (source, stream, Jsonb(cursor), batch_id),
    )


def record_failed_batch(
    conn: psycopg.Connection,
    source: str,
    stream: str,
    *,
    window: tuple[datetime | None, datetime | None],
    cursor_before: Any,
    error: str,
) -> int:
    """A ledger row for a batch that failed (its own transaction, after the failed one rolled back)."""
    with conn.transaction():
        return conn.execute(
            "insert into ops.batches (source, stream, window_start, window_end, cursor_before, status,"
            " finished_at, error) values (%s, %s, %s, %s, %s, 'failed', clock_timestamp(), %s)"
            " returning batch_id",
            (source, stream, window[0], window[1], Jsonb(cursor_before), _safe_text(error)[:4000]),
        ).fetchone()[0]


def prepare(conn: psycopg.Connection) -> None:
    """Create the ops tables (idempotent)."""
    ensure_ops_tables(conn)
