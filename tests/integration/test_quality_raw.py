"""The raw-landing suites against what the real loader writes: a clean load reconciles with the ledger;
a row that vanished from raw, or a batch the ledger does not know, fails the gate critically."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import psycopg
from crm_warehouse.bootstrap import bootstrap
from crm_warehouse.load.ddl import ensure_ops_tables
from crm_warehouse.load.loader import Record, write_batch
from crm_warehouse.quality.gate import run_gate


def _calls(numbers, duration="42"):
    # the fields a real Twilio call carries and staging reads (a call missing one fails the gate critically)
    return [Record({"sid": f"CA{n:032x}", "duration": duration, "status": "completed", "direction": "inbound",
                    "from": "+14155550100", "to": "+14158675309",
                    "start_time": "Tue, 01 Sep 2026 10:00:00 +0000", "end_time": "Tue, 01 Sep 2026 10:00:42 +0000"},
                   source_uri="https://api.example/Calls.json", source_position="1") for n in numbers]


def test_raw_suites_reconcile_the_real_loader_with_its_ledger(fresh_db, tmp_path):
    with psycopg.connect(fresh_db) as conn:
        bootstrap(conn)
        ensure_ops_tables(conn)
        conn.commit()
        with conn.transaction():
            write_batch(conn, "phone_system", "calls", _calls(range(10)), key="sid")
        with conn.transaction():  # 5 re-delivered (duplicates), 5 new, one with a negative duration
            write_batch(conn, "phone_system", "calls", _calls(range(5, 15)) + _calls([99], "-3"), key="sid")
    run_end = datetime.now(UTC) + timedelta(hours=1)
    result = run_gate(fresh_db, run_id="raw-ok", run_end=run_end, docs_dir=tmp_path / "ok")
    raw = {o.check: o for o in result.outcomes if o.suite == "raw.phone_system__calls"}
    assert raw and all(o.success for o in raw.values() if o.severity == "critical"), result.report()
    assert raw["rows_reconcile_with_ledger"].unexpected_count == 0
    assert not raw["duration_not_negative"].success and raw["duration_not_negative"].unexpected_count == 1
    assert raw["duration_not_negative"].severity == "warning"
    ledger = {o.check: o for o in result.outcomes if o.suite == "ops.batches"}
    assert ledger["received_equals_loaded_duplicate_quarantined"].success

    with psycopg.connect(fresh_db, autocommit=True) as conn:
        # a landed row vanishes, and a row appears under a batch the ledger never recorded
        conn.execute("delete from raw.phone_system__calls where record_key = %s", (f"CA{3:032x}",))
        conn.execute("update raw.phone_system__calls set batch_id = 999 where record_key = %s",
                     (f"CA{12:032x}",))
    result = run_gate(fresh_db, run_id="raw-bad", run_end=run_end, docs_dir=tmp_path / "bad")
    failed = {(o.suite, o.check): o for o in result.critical_failures}
    reconcile = failed[("raw.phone_system__calls", "rows_reconcile_with_ledger")]
    assert reconcile.unexpected_count == 3  # batch 1 short by one, batch 2 short by one, batch 999 unknown
    assert "raw.phone_system__calls.rows_reconcile_with_ledger on raw.phone_system__calls: 3 unexpected rows" \
        in result.report()


def test_a_record_changed_back_passes_and_a_repeated_version_fails(fresh_db, tmp_path):
    """A, then B, then A again is three versions and passes the raw suites; a batch that lands for a key
    exactly what its previous batch landed (a re-delivery kept as a version) fails critically."""
    with psycopg.connect(fresh_db) as conn:
        bootstrap(conn)
        ensure_ops_tables(conn)
        conn.commit()
        for duration in ("42", "43", "42"):
            with conn.transaction():
                write_batch(conn, "phone_system", "calls", _calls([1], duration), key="sid")
    run_end = datetime.now(UTC) + timedelta(hours=1)
    result = run_gate(fresh_db, run_id="aba", run_end=run_end, docs_dir=tmp_path / "aba")
    raw = {o.check: o for o in result.outcomes if o.suite == "raw.phone_system__calls"}
    assert raw["redelivery_is_no_new_version"].success and raw["record_version_unique"].success, result.report()
    assert all(o.success for o in raw.values() if o.severity == "critical"), result.report()

    with psycopg.connect(fresh_db, autocommit=True) as conn:  # the last version landed once more, as batch 4
        conn.execute("insert into ops.batches (source, stream, received, loaded, status) values"
                     " ('phone_system', 'calls', 1, 1, 'succeeded')")
        conn.execute("insert into raw.phone_system__calls (record_key, content_hash, payload, batch_id, extracted_at)"
                     " select record_key, content_hash, payload, 4, clock_timestamp() from raw.phone_system__calls"
                     " where batch_id = 3")
    result = run_gate(fresh_db, run_id="repeated", run_end=run_end, docs_dir=tmp_path / "repeated")
    failed = {(o.suite, o.check): o for o in result.critical_failures}
    assert failed[("raw.phone_system__calls", "redelivery_is_no_new_version")].unexpected_count == 1
    assert ("raw.phone_system__calls", "rows_reconcile_with_ledger") not in failed
