"""The COPY loader against a real PostgreSQL: idempotence, versions, quarantine, ledger, state, drift."""

from __future__ import annotations

from datetime import UTC, datetime

import psycopg
import pytest
from crm_warehouse.load import (
    Record,
    ensure_ops_tables,
    read_state,
    save_state,
    write_batch,
)
from crm_warehouse.load.ddl import forget_ready

W = (datetime(2026, 9, 1, tzinfo=UTC), datetime(2026, 9, 2, tzinfo=UTC))


@pytest.fixture
def conn(fresh_db):
    forget_ready()
    with psycopg.connect(fresh_db, autocommit=True) as c:
        ensure_ops_tables(c)
        yield c


def load(conn, records, stream="calls", key="sid", cursor=None):
    with conn.transaction():
        stats = write_batch(conn, "phone_system", stream, records, key=key, window=W, cursor_after=cursor)
        if cursor is not None:
            save_state(conn, "phone_system", stream, cursor, stats.batch_id)
    return stats


def calls(n, status="completed"):
    return [Record({"sid": f"CA{i:032x}", "status": status, "duration": str(i)}, None, "http://x/Calls.json", "1")
            for i in range(n)]


def test_redelivery_changes_nothing_and_changes_are_versions(conn):
    first = load(conn, calls(50))
    assert (first.received, first.loaded, first.duplicate, first.quarantined) == (50, 50, 0, 0)
    again = load(conn, calls(50))
    assert (again.received, again.loaded, again.duplicate) == (50, 0, 50)
    changed = load(conn, calls(10, status="canceled") + calls(5))
    assert (changed.loaded, changed.duplicate) == (10, 5)
    rows = conn.execute("select count(*), count(distinct record_key) from raw.phone_system__calls").fetchone()
    assert rows == (60, 50)
    ledger = conn.execute("select received, loaded, duplicate, quarantined, status from ops.batches "
                          "order by batch_id").fetchall()
    assert ledger == [(50, 50, 0, 0, "succeeded"), (50, 0, 50, 0, "succeeded"), (15, 10, 5, 0, "succeeded")]
    columns = conn.execute(
        "select record_key, length(content_hash), payload->>'status', batch_id, source_uri, source_position,"
        " extracted_at is not null from raw.phone_system__calls order by record_key, batch_id limit 1"
    ).fetchone()
    assert columns == (f"CA{0:032x}", 64, "completed", 1, "http://x/Calls.json", "1", True)


def test_duplicates_inside_one_batch_are_counted(conn):
    stats = load(conn, calls(3) + calls(3))
    assert (stats.received, stats.loaded, stats.duplicate) == (6, 3, 3)


def test_bad_records_are_quarantined_and_the_rest_loads(conn):
    records = calls(3) + [
        Record({"status": "completed"}, None, "u", "7"),  # no key
        Record({"sid": ""}, None, "u", "8"),  # empty key
        Record(["not", "an", "object"], None, "u", "9"),
        Record({"sid": "CAnul", "note": "a\x00b"}, None, "u", "10"),  # jsonb cannot store NUL
        Record(None, None, "u", "11", error="page item is not valid JSON", raw_text='{"sid": "CA'),
        Record({"sid": "CAtab", "note": "tab\there\nnewline \\ backslash"}, None, "u\tv", "12"),
    ]
    stats = load(conn, records)
    assert (stats.received, stats.loaded, stats.duplicate, stats.quarantined) == (9, 4, 0, 5)
    quarantined = conn.execute("select record_ref, reason, original from ops.quarantine order by quarantine_id"
                               ).fetchall()
    assert [q[0] for q in quarantined] == ["7", "8", "9", "CAnul", "11"]
    assert "missing natural key 'sid'" in quarantined[0][1]
    assert "NUL" in quarantined[3][1]
    assert quarantined[4] == ("11", "page item is not valid JSON", '{"sid": "CA')
    note, uri = conn.execute("select payload->>'note', source_uri from raw.phone_system__calls "
                             "where record_key = 'CAtab'").fetchone()
    assert note == "tab\there\nnewline \\ backslash" and uri == "u\tv"


def test_cursor_moves_with_rows_or_not_at_all(conn):
    load(conn, calls(5), cursor={"page": 1})
    assert read_state(conn, "phone_system", "calls") == {"page": 1}
    with pytest.raises(RuntimeError), conn.transaction():
        write_batch(conn, "phone_system", "calls", calls(20), key="sid", window=W)
        save_state(conn, "phone_system", "calls", {"page": 2}, None)
        raise RuntimeError("crash after the rows, before commit")
    assert read_state(conn, "phone_system", "calls") == {"page": 1}
    assert conn.execute("select count(*) from raw.phone_system__calls").fetchone()[0] == 5
    assert conn.execute("select count(*) from ops.batches").fetchone()[0] == 1


def test_schema_drift_is_recorded_not_raised(conn):
    load(conn, [Record({"sid": "CA1", "duration": "10", "price": "-0.01"})])
    stats = load(conn, [Record({"sid": "CA2", "duration": 10, "extra": {"x": 1}})])
    assert stats.loaded == 1
    drift = conn.execute("select field, change, old_type, new_type from ops.schema_drift order by field"
                         ).fetchall()
    assert drift == [("duration", "type_changed", "string", "number"), ("extra", "appeared", None, "object"),
                     ("extra.x", "appeared", None, "number"),
                     ("price", "disappeared", "string", None)]


def test_schema_drift_one_level_down(conn):
    load(conn, [Record({"sid": "CA1", "values": {"QID1": 5, "QID2": "x"}})], stream="responses")
    load(conn, [Record({"sid": "CA2", "values": {"QID1": "5", "QID3": 1}})], stream="responses")
    drift = conn.execute("select field, change from ops.schema_drift order by field").fetchall()
    assert drift == [("values.QID1", "type_changed"), ("values.QID2", "disappeared"), ("values.QID3", "appeared")]


def test_empty_batch_is_in_the_ledger(conn):
    stats = load(conn, [])
    assert (stats.received, stats.loaded) == (0, 0)
    assert conn.execute("select status from ops.batches").fetchone()[0] == "succeeded"


def test_ops_ddl_is_idempotent(conn):
    forget_ready()
    ensure_ops_tables(conn)
    ensure_ops_tables(conn)
    tables = {r[0] for r in conn.execute(
        "select table_name from information_schema.tables where table_schema = 'ops'")}
    assert {"batches", "files", "quarantine", "stream_state", "schema_drift"} <= tables
