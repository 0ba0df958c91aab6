"""The COPY loader: one batch of records of one stream into `raw.<source>__<stream>`.

A batch is written inside the caller's transaction, so the stream's cursor (`ops.stream_state`) moves
in the same commit as the rows it covers. Steps: quarantine records without their natural key or that
PostgreSQL cannot store; hash the rest (sha256 of canonical JSON); `COPY` them into the raw table. A
record whose key's latest version has the same content is a duplicate and changes nothing; any other
record lands as a new version (A, then B, then A again: three versions, A current). When none of the
batch's keys is in the raw table yet (checked on a sample, put right after the COPY for keys the sample
missed) the COPY goes straight into the raw table; otherwise into a temporary table and from there the
new versions only. Loaders of one raw table take turns under an advisory lock. The ledger row in
`ops.batches` proves received = loaded + duplicate + quarantined.
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from itertools import chain, count, islice
from typing import Any

import msgspec
import psycopg
from psycopg import sql
from psycopg.types.json import Jsonb

from crm_warehouse.load.ddl import ensure_ops_tables, ensure_raw_table, raw_table, raw_table_name
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

# Fast path: a batch none of whose keys is in the raw table yet is COPYed straight into it (no temporary
# table, no second copy of every row). Decided on a sample of its keys (the first PEEK_RECORDS, and for a
# batch held in a list, PEEK_RECORDS spread over all of it); keys that turn out to exist after all are put
# right after the COPY (their rows are removed again where the delivery equals the latest version).
PEEK_RECORDS = 1000

# The version a key's delivery is compared with: all the versions of its latest batch, in the order
# staging picks the latest (macro latest_version: extracted_at desc, batch_id desc). A batch normally
# carries one version of a key; when it carries several (ambiguous, flagged by the raw suites), the set of
# them is the delivery. `{incoming}` yields (record_key, hashes); `{other}` excludes the batch itself.
_UNCHANGED_KEYS = """
select incoming.record_key
from ({incoming}) as incoming
cross join lateral (
    select array_agg(versions.content_hash order by versions.content_hash) as hashes
    from (
        select landed.content_hash, rank() over (order by landed.extracted_at desc, landed.batch_id desc) as recency
        from {raw} as landed
        where landed.record_key = incoming.record_key {other}
    ) as versions
    where versions.recency = 1
) as latest
where latest.hashes = incoming.hashes
"""


def _unchanged_keys(raw: sql.Composable, incoming: sql.Composable, other: sql.Composable) -> sql.Composed:
    return sql.SQL(_UNCHANGED_KEYS).format(raw=raw, incoming=incoming, other=other)


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

    A record is a duplicate when its key's latest version (extracted_at, then batch_id) has the same
    content; otherwise it lands as a new version (A, then B, then A again: three versions, A current).
    Loaders of one raw table take turns (a transaction-scoped advisory lock, held to the caller's commit),
    so each compares with what the one before it committed, and `extracted_at` is taken after the lock.

    The ledger row is inserted as `running` and set to `succeeded` at the end of this function, so if
    the caller's transaction fails nothing of the batch remains (the caller records the failure).
    """
    ensure_raw_table(conn, source, stream)
    raw = raw_table(source, stream)
    conn.execute("select pg_advisory_xact_lock(hashtext('crm_warehouse.load'), hashtext(%s))",
                 (raw_table_name(source, stream),))
    batch_id, extracted_at = conn.execute(
        "insert into ops.batches (source, stream, window_start, window_end, cursor_before, source_uri)"
        " values (%s, %s, %s, %s, %s, %s) returning batch_id, clock_timestamp()",
        (source, stream, window[0], window[1], Jsonb(cursor_before), source_uri),
    ).fetchone()
    stats = BatchStats(source, stream, batch_id)
    started = time.perf_counter()

    quarantine: list[tuple[str | None, str, str]] = []
    seen: set[bytes] = set()
    pairs: set[tuple[str, type]] = set()
    nested_pairs: dict[str, set[tuple[str, type]]] = {}
    counts = {"received": 0}
    get_key = key_getter(key)

    def prepared(records: Iterable[Record]) -> Iterator[tuple[str, bytes, bytes]]:
        """(record_key, the key in COPY form, COPY line without its end) of every storable record not seen
        before in the batch; quarantines the others and profiles the schema."""
        sha256 = hashlib.sha256
        encode = canonical_json_bytes
        received = 0
        pairs_seen = 0
        nested: list[str] = []
        for rec in records:
            received += 1
            counts["received"] = received
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
                continue
            seen.add(ident)
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
            copy_key = _esc(record_key).encode()
            yield record_key, copy_key, b"%s\t%s\t%s\t%s" % (
                copy_key, raw_digest.hex().encode(), data, (rec.tail if rec.tail is not None else _tail(rec)))

    lines = prepared(records)
    peeked = list(islice(lines, PEEK_RECORDS))
    sample = [k for k, _, _ in peeked]
    if isinstance(records, Sequence) and len(records) > PEEK_RECORDS:
        sample += _sample_keys(records, get_key)
    fast = not sample or not _existing_keys(conn, raw, sample, limit=1)

    copy_columns = "record_key, content_hash, payload, source_object, source_uri, source_position"
    if fast:
        target = raw
        copy_columns += ", batch_id, extracted_at"
        end = b"\t%d\t%s\n" % (batch_id, extracted_at.isoformat().encode())
        keys: list[bytes] | None = []
    else:
        target = sql.Identifier(f"_crm_load_{next(_tmp_counter)}")
        # payload is jsonb already in the temporary table: PostgreSQL parses it while the COPY streams (on its
        # own core, overlapping this loop's hashing) instead of afterwards in the insert, while Python waits.
        conn.execute(
            sql.SQL(
                "create temp table {} (record_key text, content_hash text, payload jsonb,"
                " source_object text, source_uri text, source_position text) on commit drop"
            ).format(target)
        )
        end = b"\n"
        keys = None

    copied = 0
    with conn.cursor().copy(sql.SQL("copy {} ({}) from stdin").format(target, sql.SQL(copy_columns))) as copy:
        buffer: list[bytes] = []
        for _, copy_key, line in chain(peeked, lines):
            buffer.append(line)
            buffer.append(end)
            if keys is not None:
                keys.append(copy_key)
            if len(buffer) >= 2 * COPY_CHUNK:
                copy.write(b"".join(buffer))
                copied += len(buffer) // 2
                buffer.clear()
        if buffer:
            copy.write(b"".join(buffer))
            copied += len(buffer) // 2
    sampled_all = copied == len(peeked)  # every key of the batch was in the probed sample
    del peeked

    copied_at = time.perf_counter()
    if fast:
        loaded = copied if sampled_all else copied - _put_right(conn, raw, batch_id, keys or [])
    else:
        unchanged = _unchanged_keys(
            raw,
            sql.SQL("select record_key, array_agg(content_hash order by content_hash) as hashes from {} "
                    "group by record_key").format(target),
            sql.SQL(""))
        loaded = conn.execute(
            sql.SQL(
                "with unchanged as materialized ({unchanged}) insert into {raw} (record_key, content_hash, payload,"
                " source_object, batch_id, extracted_at, source_uri, source_position) select record_key,"
                " content_hash, payload, source_object, %s, %s, source_uri, source_position from {tmp} as incoming"
                " where not exists (select from unchanged where unchanged.record_key = incoming.record_key)"
            ).format(raw=raw, tmp=target, unchanged=unchanged),
            (batch_id, extracted_at),
        ).rowcount
    inserted_at = time.perf_counter()
    stats.received = counts["received"]
    stats.loaded = loaded
    stats.quarantined = len(quarantine)
    stats.duplicate = stats.received - loaded - len(quarantine)
    assert stats.duplicate >= stats.received - len(quarantine) - copied, "loader count mismatch"

    if quarantine:
        with conn.cursor().copy(
            "copy ops.quarantine (batch_id, source, stream, record_ref, reason, original) from stdin"
        ) as copy:
            for ref, reason, original in quarantine:
                copy.write_row((batch_id, source, stream, ref, reason, original))

    schema_profile = None
    if track_schema and seen:
        profile: dict[str, set[str]] = {}
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
        "%s.%s batch %s: received %s, loaded %s, duplicate %s, quarantined %s (%s: hash+copy %.1fs, %s %.1fs)",
        source, stream, batch_id, stats.received, stats.loaded, stats.duplicate, stats.quarantined,
        "straight into raw" if fast else "via a temporary table", copied_at - started,
        "check" if fast else "insert", inserted_at - copied_at,
    )
    return stats


def _sample_keys(records: Sequence[Record], get_key: Callable[[dict], Any]) -> list[str]:
    """Keys of PEEK_RECORDS records spread over a batch held in memory."""
    keys = []
    for rec in records[:: max(1, len(records) // PEEK_RECORDS)]:
        if rec.error is None and isinstance(rec.payload, dict):
            try:
                value = get_key(rec.payload)
            except Exception:  # quarantined by the loop
                continue
            if value not in (None, ""):
                keys.append(value if isinstance(value, str) else str(value))
    return keys


PROBE_CHUNK = 10_000  # keys per probe query (small enough that PostgreSQL does not JIT-compile it)


def _existing_keys(conn: psycopg.Connection, raw: sql.Composable, keys: list[str], *, before_batch: int | None = None,
                   limit: int | None = None) -> list[str]:
    """Which of `keys` have a row in the raw table (in a batch before `before_batch`). One probe of the
    primary key's index per key (a lateral subquery with `limit` is never turned into a join, which the
    planner would answer with a scan of the whole table)."""
    unique = sorted(set(keys))
    found: list[str] = []
    for at in range(0, len(unique), PROBE_CHUNK):
        found += [row[0] for row in conn.execute(
            sql.SQL(
                "select key from unnest(%(keys)b::text[]) as keys (key) cross join lateral (select from {} as landed"
                " where landed.record_key = keys.key{} limit 1) as found{}"
            ).format(raw, sql.SQL(" and landed.batch_id < %(batch)s" if before_batch is not None else ""),
                     sql.SQL(" limit %(limit)s" if limit is not None else "")),
            {"keys": unique[at:at + PROBE_CHUNK], "batch": before_batch, "limit": limit})]
        if limit is not None and len(found) >= limit:
            break
    return found


def _put_right(conn: psycopg.Connection, raw: sql.Composable, batch_id: int, copy_keys: list[bytes]) -> int:
    """After a COPY straight into raw: the keys of the batch that were there before after all get the
    treatment of the temporary-table path (their rows go again where the delivery equals the latest
    version). Returns the rows removed. The batch's keys are COPYed into a temporary table (`copy_keys`
    are in COPY form already) and probed one by one in the primary key's index: earlier versions have
    lower batch ids (ids are taken under the loader's lock), so `batch_id < batch` stays inside it."""
    if not copy_keys:
        return 0
    keys_table = sql.Identifier(f"_crm_keys_{next(_tmp_counter)}")
    conn.execute(sql.SQL("create temp table {} (record_key text) on commit drop").format(keys_table))
    with conn.cursor().copy(sql.SQL("copy {} (record_key) from stdin").format(keys_table)) as copy:
        for at in range(0, len(copy_keys), 10 * COPY_CHUNK):
            copy.write(b"\n".join(copy_keys[at:at + 10 * COPY_CHUNK]) + b"\n")
    # one probe per key is cheap; compiling the query with JIT (its estimated cost is high) is not
    jit = conn.execute("select current_setting('jit'), set_config('jit', 'off', true)").fetchone()[0]
    existed = [row[0] for row in conn.execute(
        sql.SQL("select distinct keys.record_key from {keys} as keys cross join lateral (select from {raw} as"
                " landed where landed.record_key = keys.record_key and landed.batch_id < %s limit 1) as found"
                ).format(keys=keys_table, raw=raw), (batch_id,))]
    conn.execute("select set_config('jit', %s, true)", (jit,))
    if not existed:
        return 0
    unchanged = _unchanged_keys(
        raw,
        sql.SQL("select keys.record_key, batch.hashes from unnest(%(existed)s::text[]) as keys (record_key)"
                " cross join lateral (select array_agg(content_hash order by content_hash) as hashes from {}"
                " as landed where landed.record_key = keys.record_key and landed.batch_id = %(batch)s) as batch"
                ).format(raw),
        sql.SQL("and landed.batch_id <> %(batch)s"))
    removed = conn.execute(
        sql.SQL("delete from {raw} where ctid = any(array(select landed.ctid from ({unchanged}) as unchanged"
                " cross join lateral (select ctid from {raw} as landed where landed.record_key = unchanged.record_key"
                " and landed.batch_id = %(batch)s) as landed))").format(raw=raw, unchanged=unchanged),
        {"existed": existed, "batch": batch_id},
    ).rowcount
    log.info("batch %s: %s of its keys were in raw already (not in the sample); %s re-delivered rows removed",
             batch_id, len(existed), removed)
    return removed


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
