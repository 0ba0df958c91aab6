"""The COPY loader against a real PostgreSQL: idempotence, versions, quarantine, ledger, state, drift."""

from __future__ import annotations

import threading
from datetime import UTC, datetime

import psycopg
import pytest
from crm_warehouse.load import (
    Record,
    ensure_ops_tables,
    ensure_raw_table,
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
    changed = load(conn, calls(10, status="canceled") + calls(10, status="canceled")[5:] + calls(15)[10:])
    assert (changed.loaded, changed.duplicate) == (10, 10)
    rows = conn.execute("select count(*), count(distinct record_key) from raw.phone_system__calls").fetchone()
    assert rows == (60, 50)
    ledger = conn.execute("select received, loaded, duplicate, quarantined, status from ops.batches "
                          "order by batch_id").fetchall()
    assert ledger == [(50, 50, 0, 0, "succeeded"), (50, 0, 50, 0, "succeeded"), (20, 10, 10, 0, "succeeded")]
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


# --- versions: a delivery is a duplicate only when it equals the key's latest version ----------------
def call(sid: str, status: str) -> Record:
    return Record({"sid": sid, "status": status}, None, "http://x/Calls.json", "1")


def latest(conn, key: str) -> str:
    """The version staging keeps (macro latest_version: extracted_at desc, batch_id desc)."""
    return conn.execute(
        "select payload->>'status' from raw.phone_system__calls where record_key = %s"
        " order by extracted_at desc, batch_id desc, content_hash limit 1", (key,)).fetchone()[0]


def test_a_record_changed_back_is_a_new_version_and_staging_keeps_it(conn):
    a, b = call("CA1", "in-progress"), call("CA1", "completed")
    assert load(conn, [a]).loaded == 1
    assert load(conn, [b]).loaded == 1
    back = load(conn, [a])  # the vendor changed it back: A is current again
    assert (back.received, back.loaded, back.duplicate) == (1, 1, 0)
    assert latest(conn, "CA1") == "in-progress"
    again = load(conn, [a])  # the same delivery again changes nothing
    assert (again.loaded, again.duplicate) == (0, 1)
    versions = conn.execute("select payload->>'status' from raw.phone_system__calls order by extracted_at, batch_id"
                            ).fetchall()
    assert [v[0] for v in versions] == ["in-progress", "completed", "in-progress"]
    assert conn.execute("select count(*) from ops.batches where received <> loaded + duplicate + quarantined"
                        ).fetchone()[0] == 0


def test_two_versions_in_one_batch_redelivered_change_nothing(conn):
    both = [call("CA2", "ringing"), call("CA2", "busy")]
    assert load(conn, both).loaded == 2  # ambiguous: both land (the raw suite flags the key)
    assert load(conn, list(reversed(both))).loaded == 0  # the same batch again
    only = load(conn, [call("CA2", "busy")])  # now unambiguous: a new version
    assert (only.loaded, only.duplicate) == (1, 0)
    assert latest(conn, "CA2") == "busy"


def test_a_big_batch_changing_some_keys_back_lands_exactly_those(conn):
    """Batches large enough for the loader's fast path (no key of the batch in raw yet) and batches where
    only a few keys, far into the batch, exist already: both give the same versions."""
    first = [call(f"CB{i:05d}", "queued") for i in range(3000)]
    assert load(conn, iter(first)).loaded == 3000
    changed = [call(f"CB{i:05d}", "completed") for i in range(2990, 3000)]
    assert load(conn, changed).loaded == 10
    # new keys first, then the 10 changed keys back at their first content and 5 unchanged ones
    mixed = [call(f"CC{i:05d}", "queued") for i in range(3000)] + first[2985:]
    for records in (iter(mixed), mixed):
        stats = load(conn, records)
        assert stats.received == 3015
        if records is mixed:  # the second time everything is a duplicate
            assert (stats.loaded, stats.duplicate) == (0, 3015)
        else:
            assert (stats.loaded, stats.duplicate) == (3010, 5)
    assert latest(conn, "CB02995") == "queued" and latest(conn, "CB02980") == "queued"
    assert conn.execute("select count(*) from raw.phone_system__calls").fetchone()[0] == 3000 + 10 + 3010


def test_an_old_layout_raw_table_is_migrated_in_place(conn):
    """Tables created before versions could repeat had primary key (record_key, content_hash)."""
    conn.execute("""
        create table raw.phone_system__calls (
            record_key text not null, content_hash text not null, payload jsonb not null, source_object text,
            batch_id bigint not null, extracted_at timestamptz not null default now(), source_uri text,
            source_position text, primary key (record_key, content_hash))""")
    conn.execute("insert into raw.phone_system__calls (record_key, content_hash, payload, batch_id, extracted_at)"
                 " values ('CA1', repeat('a', 64), '{\"sid\": \"CA1\", \"status\": \"in-progress\"}', 1,"
                 " '2026-09-01'), ('CA1', repeat('b', 64), '{\"sid\": \"CA1\", \"status\": \"completed\"}', 2,"
                 " '2026-09-02'), ('CA9', repeat('c', 64), '{\"sid\": \"CA9\"}', 2, '2026-09-02')")
    before = conn.execute("select * from raw.phone_system__calls order by record_key, batch_id").fetchall()
    forget_ready()
    ensure_raw_table(conn, "phone_system", "calls")
    assert conn.execute("select * from raw.phone_system__calls order by record_key, batch_id").fetchall() == before
    pk = conn.execute(
        "select array_agg(a.attname order by k.ord) from pg_index i"
        " cross join lateral unnest(i.indkey) with ordinality as k(attnum, ord)"
        " join pg_attribute a on a.attrelid = i.indrelid and a.attnum = k.attnum"
        " where i.indrelid = 'raw.phone_system__calls'::regclass and i.indisprimary").fetchone()[0]
    assert pk == ["record_key", "batch_id", "content_hash"]
    assert load(conn, [call("CA1", "in-progress")]).loaded == 1  # back to its first content: a version
    assert latest(conn, "CA1") == "in-progress"
    forget_ready()
    ensure_raw_table(conn, "phone_system", "calls")  # idempotent


def test_concurrent_loaders_of_one_stream_take_turns(conn, fresh_db):
    """Two loaders delivering the same changed record at once: the second waits for the first and then
    sees its version, so the change lands once."""
    load(conn, [call("CA5", "ringing")])
    with psycopg.connect(fresh_db, autocommit=True) as other:
        with other.transaction():
            first = write_batch(other, "phone_system", "calls", [call("CA5", "completed")], key="sid", window=W)
            done: list = []
            worker = threading.Thread(target=lambda: done.append(load(conn, [call("CA5", "completed")])))
            worker.start()
            worker.join(1.0)
            assert worker.is_alive(), "the second loader did not wait for the first"
        worker.join(30)
    assert (first.loaded, done[0].loaded, done[0].duplicate) == (1, 0, 1)
    assert conn.execute("select count(*) from raw.phone_system__calls").fetchone()[0] == 2
