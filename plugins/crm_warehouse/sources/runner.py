"""Run one stream over one half-open window: extract, load in chunks, move the cursor with the rows.

Chunks are committed every `flush_records` records (each commit a batch in the ledger with the resume
position saved in the same transaction), so a long window interrupted by a rate limit or a crash
resumes where it stopped. A rate-limit wait beyond the policy's `max_wait` commits what was received
and raises RateLimitDeferred carrying the saved position.
"""

from __future__ import annotations

import logging
import queue
import threading
from collections.abc import Iterator
from datetime import datetime
from typing import Any

import psycopg

from crm_warehouse.http import RateLimitDeferred, RetryPolicy
from crm_warehouse.load import (
    Record,
    ensure_ops_tables,
    ensure_raw_table,
    read_state,
    record_failed_batch,
    save_state,
    write_batch,
)
from crm_warehouse.sources.base import Chunk, ConnInfo, Source, StreamContext, connection_info, iso
from crm_warehouse.warehouse import WarehouseUnavailable

log = logging.getLogger(__name__)

FLUSH_RECORDS = 50_000
READ_AHEAD_RECORDS = 25_000  # records fetched ahead (in whole pages) while a batch loads
PROGRESS_EVERY = 20  # pages between progress lines in the task log


def _check_window(window_start: datetime, window_end: datetime) -> None:
    for name, value in (("window_start", window_start), ("window_end", window_end)):
        if not isinstance(value, datetime) or value.tzinfo is None:
            raise ValueError(f"{name} must be a timezone-aware datetime (UTC), got {value!r}")
    if not window_start < window_end:
        raise ValueError(f"Empty window [{iso(window_start)}, {iso(window_end)}): window_end must be after "
                         "window_start")


def run_source_stream(
    source: Source,
    stream: str,
    window_start: datetime,
    window_end: datetime,
    *,
    conn_id: str | None = None,
    warehouse_conn_id: str = "warehouse",
    warehouse_url: str | None = None,
    connection: ConnInfo | None = None,
    retry_policy: RetryPolicy | None = None,
    flush_records: int = FLUSH_RECORDS,
) -> dict[str, Any]:
    _check_window(window_start, window_end)
    spec = source.stream(stream)
    stats: dict[str, Any] = {
        "source": source.name, "stream": stream, "window_start": iso(window_start),
        "window_end": iso(window_end), "batches": [], "received": 0, "loaded": 0, "duplicate": 0,
        "quarantined": 0, "pages": 0, "requests": 0, "retries": 0,
    }
    if spec.extract is None:
        stats["note"] = f"landed by stream {spec.loaded_by!r} (same transaction as its rows)"
        return stats
    conn_info = connection or connection_info(conn_id or source.name)
    client = source.make_client(conn_info, retry_policy)
    from crm_warehouse.warehouse import connect

    window_key = [iso(window_start), iso(window_end)]
    try:
        conn = connect(warehouse_conn_id, url=warehouse_url, autocommit=True)
    except psycopg.OperationalError as exc:
        raise WarehouseUnavailable(
            f"{source.name}.{stream}: cannot connect to the warehouse ({_first_line(exc)}). Nothing was loaded. "
            f"Check that PostgreSQL is running and reachable (connection {warehouse_conn_id!r}), then re-run the "
            "task.") from exc
    with conn:
        ensure_ops_tables(conn)
        for table in spec.keys:
            ensure_raw_table(conn, source.name, table)
        state = read_state(conn, source.name, stream) or {}
        saved_resume = state.get("resume") or None
        resume = saved_resume["position"] if saved_resume and saved_resume.get("window") == window_key else None
        cursor = {k: v for k, v in state.items() if k not in ("resume",)}
        ctx = StreamContext(source.name, stream, conn_info, client, window_start, window_end, cursor, resume,
                            conn, new_cursor=dict(cursor))
        if resume:
            log.info("%s.%s: resuming window %s from saved position %s", source.name, stream, window_key, resume)
        buffer: dict[str, list[Record]] = {t: [] for t in spec.keys}
        buffered = 0
        last_position: dict | None = resume
        cursor_before: dict = state
        committed = 0  # batches committed by this run

        def flush(done: bool) -> None:
            nonlocal buffered, cursor_before, committed
            if done:
                previous = cursor.get("last_window")
                latest = previous if previous and previous[1] > window_key[1] else window_key
                after = {**ctx.new_cursor, "last_window": latest, "resume": None}
            else:
                after = {**cursor, "resume": {"window": window_key, "position": last_position}}
            with conn.transaction():
                batch_id = None
                for table, records in buffer.items():
                    if not records and table != stream:
                        continue
                    result = write_batch(
                        conn, source.name, table, records, key=spec.keys[table],
                        window=(window_start, window_end), cursor_before=cursor_before, cursor_after=after,
                        source_uri=conn_info.base_url,
                    )
                    batch_id = result.batch_id if table == stream else batch_id
                    stats["batches"].append(result.batch_id)
                    for k in ("received", "loaded", "duplicate", "quarantined"):
                        stats[k] += getattr(result, k)
                    if table != stream:
                        stats.setdefault("tables", {}).setdefault(table, {"received": 0, "loaded": 0})
                        stats["tables"][table]["received"] += result.received
                        stats["tables"][table]["loaded"] += result.loaded
                save_state(conn, source.name, stream, after, batch_id)
            committed += 1
            for records in buffer.values():
                records.clear()
            buffered = 0
            cursor_before = after
            stats["cursor"] = after

        ahead = read_ahead(spec.extract(ctx), READ_AHEAD_RECORDS)
        try:
            for chunk in ahead:
                stats["pages"] += 1
                for table, records in chunk.records.items():
                    buffer[table].extend(records)
                    buffered += len(records)
                last_position = chunk.position
                if stats["pages"] % PROGRESS_EVERY == 0:
                    log.info("%s.%s [%s, %s): %s pages, %s records received so far", source.name, stream,
                             *window_key, stats["pages"], stats["received"] + buffered)
                if buffered >= flush_records and chunk.position is not None:
                    flush(done=False)
            flush(done=True)
        except RateLimitDeferred as exc:
            if buffered or last_position != resume:  # save the position even when the pages were empty
                flush(done=False)
            exc.position = last_position
            exc.source, exc.stream = source.name, stream
            stats.update(requests=client.requests_made, retries=client.retries)
            log.warning("%s.%s deferred: %s (resume at %s)", source.name, stream, exc, exc.resume_at.isoformat())
            raise
        except psycopg.OperationalError as exc:
            if not conn.broken:
                _record_failure(conn, source.name, stream, (window_start, window_end), cursor_before, exc)
                raise
            # the server went away (restart, failover, network): its open transaction is rolled back
            lost = WarehouseUnavailable(
                f"{source.name}.{stream}: the connection to the warehouse was lost during the load "
                f"({_first_line(exc)}). PostgreSQL rolled back the batch being written; the "
                f"{committed} batch(es) committed before it in this run are kept with the "
                "position to resume from. Re-run the task once PostgreSQL answers again: it resumes there and "
                "loads nothing twice.")
            _record_failure_on_new_connection(warehouse_conn_id, warehouse_url, source.name, stream,
                                               (window_start, window_end), cursor_before, lost)
            raise lost from exc
        except Exception as exc:
            _record_failure(conn, source.name, stream, (window_start, window_end), cursor_before, exc)
            raise
        finally:
            ahead.close()  # stops the read-ahead thread when the load stopped early
        stats.update(requests=client.requests_made, retries=client.retries)
    log.info("%s.%s [%s, %s): received %s, loaded %s, duplicate %s, quarantined %s in %s pages (%s requests, "
             "%s retries)", source.name, stream, *window_key, stats["received"], stats["loaded"],
             stats["duplicate"], stats["quarantined"], stats["pages"], stats["requests"], stats["retries"])
    return stats


def read_ahead(chunks: Iterator[Chunk], records: int) -> Iterator[Chunk]:
    """The chunks of an extractor, fetched by a thread up to about `records` records ahead (as many pages as
    the first page's size makes that, at least two), so the HTTP requests and their decoding overlap the
    loading of the batch before them (PostgreSQL and the vendor work meanwhile).

    The extractor's first chunk is taken here, in the caller's thread: whatever an extractor reads from the
    warehouse before its first page (e.g. the posts whose comments it fetches) is read before any batch is
    written. An exception of the extractor (a rate limit that defers, an error) is raised here after the
    chunks fetched before it, as if there were no thread. Stopping early (the consumer failed) stops the
    thread after the request it is in."""
    try:
        first = next(chunks)
    except StopIteration:
        return
    page_size = sum(len(r) for r in first.records.values())
    pages: queue.Queue = queue.Queue(maxsize=max(2, records // max(1, page_size)))
    stop = threading.Event()

    def put(item: tuple) -> bool:
        while not stop.is_set():
            try:
                pages.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def fetch() -> None:
        try:
            for chunk in chunks:
                if not put((chunk, None)):
                    break
            else:
                put((None, None))
        except BaseException as exc:  # handed to the consumer, raised there in order
            put((None, exc))
        finally:
            chunks.close()

    worker = threading.Thread(target=fetch, name="crm-read-ahead", daemon=True)
    worker.start()
    try:
        yield first
        while True:
            chunk, error = pages.get()
            if error is not None:
                raise error
            if chunk is None:
                return
            yield chunk
    finally:
        stop.set()
        worker.join()


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return f"{type(exc).__name__}: {text.splitlines()[0] if text else ''}"


def _record_failure_on_new_connection(conn_id: str, url: str | None, source: str, stream: str, window: tuple,
                                      cursor: Any, exc: BaseException) -> None:
    """The failed try in the ledger, when the warehouse already answers again (else only in the task log)."""
    from crm_warehouse.warehouse import connect

    try:
        with connect(conn_id, url=url, autocommit=True, connect_timeout=5) as conn:
            record_failed_batch(conn, source, stream, window=window, cursor_before=cursor, error=str(exc))
    except psycopg.Error as again:
        log.warning("%s.%s: the failed try is not in ops.batches (the warehouse does not answer yet: %s)", source,
                    stream, _first_line(again))


def _record_failure(conn: psycopg.Connection, source: str, stream: str, window: tuple, cursor: Any,
                    exc: BaseException) -> None:
    try:
        if conn.info.transaction_status != psycopg.pq.TransactionStatus.IDLE:
            conn.rollback()
        record_failed_batch(conn, source, stream, window=window, cursor_before=cursor,
                            error=f"{type(exc).__name__}: {exc}")
    except Exception:  # the original error matters more than the ledger row
        log.exception("could not record the failed batch of %s.%s", source, stream)
