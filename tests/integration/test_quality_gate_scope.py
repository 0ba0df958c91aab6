"""An incremental quality gate checks what changed since the last gate that passed (issue 5 point 4: one more
day must cost a tenth of a full build), and a full check still sees everything.

A generated world is landed up to its last day (sandbox.landing), enriched and built with dbt; the first gate
(a full check: none has passed yet) passes. Then the last day is landed, enriched and built incrementally.
Each test works on its own copy of that warehouse:
(a) an incremental gate reads the day's raw rows only (its element counts are the day's rows, not the
    tables'), dbt's tests of the staging views and marts are scoped too, and the marts' checks read the rows
    dbt wrote since the last passed gate (none right after a passed gate, one after one row is rewritten);
(b) a bad row in the day's data fails it critically, naming the check, the table and the row count;
(c) a bad row in old data passes an incremental gate, which no longer reads it, and fails the full check.
"""

from __future__ import annotations

import json
import sqlite3
import uuid
from datetime import UTC, datetime
from pathlib import Path

import psycopg
import pytest
import test_dbt_pipeline as pipeline  # tests/integration is on sys.path
from crm_warehouse.enrich import run_all
from crm_warehouse.quality.dbt_tests import run_dbt_tests
from crm_warehouse.quality.gate import QualityGateFailed, run_gate
from crm_warehouse.quality.scope import decide_scope
from psycopg import sql

world_module = pytest.importorskip("sandbox.world")
landing = pytest.importorskip("sandbox.landing")

WORLD = {"seed": 23, "customers": 300, "days": 6}
DAY = 86_400
RAW_TABLES = ("phone_system__calls", "phone_system__dispositions", "survey_vendor__responses",
              "web_forms__responses", "sftp_call_center__calls", "social_facebook__posts")


def land_and_build(url: str, world_dir: Path, work: Path, **bounds) -> None:
    """Land the world's records within `bounds` into raw, enrich them and build the models (tests left to
    the gate), as the transform DAG does before its gate."""
    with psycopg.connect(url) as conn, sqlite3.connect(world_dir / "world.db") as world:
        landing.land_served_records(conn, world, **bounds)
        conn.commit()
        run_all(conn)
        conn.commit()
    pipeline.dbt_build(url, work, "--exclude-resource-type", "test", "unit_test")


def _admin(server_url: str) -> psycopg.Connection:
    return psycopg.connect(server_url, autocommit=True)


@pytest.fixture(scope="module")
def warehouse_after_the_day(pg_server_url, tmp_path_factory):
    """A warehouse whose first (full) gate passed before the last day landed and was built; yields
    (database name, run_end, the start of the last day)."""
    world_dir = tmp_path_factory.mktemp("world")
    world_module.generate(world_dir, **WORLD)
    with sqlite3.connect(world_dir / "world.db") as world:
        last_day = landing.world_end(world) - DAY
        run_end = datetime.fromtimestamp(landing.world_end(world), UTC)
    name = f"crm_test_gate_scope_{uuid.uuid4().hex[:8]}"
    url = pg_server_url.rsplit("/", 1)[0] + f"/{name}"
    with _admin(pg_server_url) as admin:
        admin.execute(sql.SQL("create database {}").format(sql.Identifier(name)))
    try:
        land_and_build(url, world_dir, tmp_path_factory.mktemp("dbt-1"), available_before=last_day)
        first = run_gate(url, run_id="first", run_end=run_end, docs_dir=tmp_path_factory.mktemp("docs-first"),
                         incremental=True)
        assert first.scope == "full" and "first gate" in first.scope_reason, first.report()
        assert first.passed, first.report()
        land_and_build(url, world_dir, tmp_path_factory.mktemp("dbt-2"), available_from=last_day)
        yield name, run_end, datetime.fromtimestamp(last_day, UTC)
    finally:
        with _admin(pg_server_url) as admin:
            admin.execute(sql.SQL("drop database if exists {} with (force)").format(sql.Identifier(name)))


@pytest.fixture
def copy(pg_server_url, warehouse_after_the_day):
    """A copy of the warehouse for one test (its gates change the gate's state); yields its URL."""
    base, _, _ = warehouse_after_the_day
    name = f"{base}_{uuid.uuid4().hex[:6]}"
    with _admin(pg_server_url) as admin:
        admin.execute(sql.SQL("create database {} template {}").format(sql.Identifier(name), sql.Identifier(base)))
    yield pg_server_url.rsplit("/", 1)[0] + f"/{name}"
    with _admin(pg_server_url) as admin:
        admin.execute(sql.SQL("drop database if exists {} with (force)").format(sql.Identifier(name)))


def _gate(url: str, run_id: str, run_end: datetime, docs: Path, *, full: bool = False, dbt: bool = False):
    with psycopg.connect(url) as conn:
        scope = decide_scope(conn, full_check=full, full_reason="the test asked for it")
    outcomes = run_dbt_tests(url, scope=scope, log_path=docs / "dbt.log") if dbt else []
    return run_gate(url, run_id=run_id, run_end=run_end, docs_dir=docs, scope=scope, extra_outcomes=outcomes)


def _outcome(result, suite: str, check: str):
    found = [o for o in result.outcomes if o.suite == suite and o.check == check]
    assert len(found) == 1, f"{suite}.{check} not among the outcomes"
    return found[0]


def _counts(url: str, table: str, day: datetime) -> tuple[int, int]:
    """(rows of the last day, all rows) of raw.`table`: the day's rows are those extracted from its start."""
    with psycopg.connect(url) as conn:
        return conn.execute(
            sql.SQL("select count(*) filter (where extracted_at >= %s), count(*) from {}").format(
                sql.Identifier("raw", table)), (day,)).fetchone()


def test_an_incremental_gate_checks_the_days_rows(copy, warehouse_after_the_day, tmp_path):
    _, run_end, day = warehouse_after_the_day
    result = _gate(copy, "day", run_end, tmp_path / "day", dbt=True)
    assert result.scope.startswith("since ") and result.passed, result.report()
    assert "rows changed since" in result.report()

    smaller = 0
    for table in RAW_TABLES:
        day_rows, all_rows = _counts(copy, table, day)
        for check in ("record_key_not_null", "content_hash_is_sha256"):
            outcome = _outcome(result, f"raw.{table}", check)
            assert (outcome.element_count or 0) == day_rows, (table, check, outcome, all_rows)
            assert outcome.scope == result.scope
        assert _outcome(result, f"raw.{table}", "landing_columns_present").scope == "full"
        smaller += day_rows < all_rows
    assert smaller == len(RAW_TABLES), "the day's rows are fewer than the tables' in every raw table"

    # dbt's tests: the staging views and the tables dbt built read the changes; the stored rows say so
    staging = _outcome(result, "dbt.stg_phone_system__calls", "unique_stg_phone_system__calls_call_sid")
    assert staging.scope == result.scope and staging.success
    assert _outcome(result, "dbt.fct_interactions", "not_null_fct_interactions_interaction_id").scope == result.scope
    with psycopg.connect(copy) as conn:
        stored = dict(conn.execute(
            "select table_name || '.' || expectation, scope from quality.validation_results where run_id = 'day'"
        ).fetchall())
    assert stored["raw.phone_system__calls.record_key_not_null"] == result.scope
    assert stored["raw.phone_system__calls.landing_columns_present"] == "full"
    assert stored["staging.stg_phone_system__calls.unique_stg_phone_system__calls_call_sid"] == result.scope
    # the Data Docs too: the run's name and the changed rows' suites, and every check's notes
    pages = [p.relative_to(tmp_path / "day").as_posix() for p in (tmp_path / "day" / "validations").rglob("*.html")]
    assert any(p.startswith("validations/raw/phone_system__calls/changed_rows_since_") for p in pages), pages
    assert all("/day__since_" in p for p in pages)
    notes = (tmp_path / "day" / "expectations" / "raw" / "phone_system__calls.html").read_text()
    assert "Rows checked: all." in notes
    changed_notes = next((tmp_path / "day" / "expectations" / "raw" / "phone_system__calls").glob("*.html"))
    assert f"Rows checked: changed {result.scope}." in changed_notes.read_text()

    # right after a passed gate nothing changed: no row is read; then dbt rewrites one row of a mart
    again = _gate(copy, "nothing-new", run_end, tmp_path / "again")
    assert again.passed, again.report()
    assert _outcome(again, "raw.phone_system__calls", "record_key_not_null").element_count == 0
    assert _outcome(again, "marts.fct_interactions", "interaction_id_not_null").element_count == 0
    with psycopg.connect(copy) as conn:
        total = conn.execute("select count(*) from marts_build.fct_interactions").fetchone()[0]
        conn.execute("update marts_build.fct_interactions set duration_seconds = duration_seconds"
                     " where interaction_id = (select min(interaction_id) from marts_build.fct_interactions)")
    one = _gate(copy, "one-row", run_end, tmp_path / "one")
    assert one.passed, one.report()
    rewritten = _outcome(one, "marts.fct_interactions", "interaction_id_not_null")
    assert (rewritten.element_count, rewritten.scope) == (1, one.scope) and total > 1
    assert _outcome(one, "marts.fct_interactions", "interaction_id_unique").success  # a key probe, against all


def _land_bad_call(url: str) -> str:
    """Land, as a new ledger batch, a call of the day whose content hash is not a sha256; returns its key."""
    with psycopg.connect(url) as conn:
        payload = conn.execute("select payload from raw.phone_system__calls order by batch_id desc, record_key"
                               " limit 1").fetchone()[0]
        key = "CA" + "e" * 32
        payload["sid"] = key
        batch = conn.execute("insert into ops.batches (source, stream, status, received, loaded)"
                             " values ('phone_system', 'calls', 'succeeded', 1, 1) returning batch_id").fetchone()[0]
        conn.execute("insert into raw.phone_system__calls (record_key, content_hash, payload, batch_id)"
                     " values (%s, 'not-a-sha256', %s, %s)", (key, json.dumps(payload), batch))
    return key


def test_a_bad_row_in_the_days_data_fails_the_incremental_gate_critically(copy, warehouse_after_the_day, tmp_path):
    _, run_end, day = warehouse_after_the_day
    _land_bad_call(copy)
    with psycopg.connect(copy) as conn:  # and dbt wrote a day's interaction with an unknown direction
        conn.execute("update marts_build.fct_interactions set direction = 'sideways' where interaction_id ="
                     " (select min(interaction_id) from marts_build.fct_interactions where occurred_at >= %s)",
                     (day,))
        # a day's identifier of a record that does not exist, and a day's record given a second customer id: dbt's
        # relationships and unique tests probe the whole tables through their indexes for the changed rows' keys
        conn.execute("update intermediate.int_identifiers_unioned set record_id = 'twilio:CA' || repeat('0', 32)"
                     " where ctid = (select ctid from intermediate.int_identifiers_unioned where record_id ="
                     " (select min(record_id) from intermediate.int_interactions_unioned where occurred_at >= %s)"
                     " limit 1)", (day,))
        conn.execute("insert into intermediate.int_customer_ids_assigned select * from"
                     " intermediate.int_customer_ids_assigned where record_id = (select min(record_id)"
                     " from intermediate.int_interactions_unioned where occurred_at >= %s)", (day,))
    result = _gate(copy, "bad-day", run_end, tmp_path, dbt=True)
    assert result.scope.startswith("since ")
    failed = {f"{o.suite}.{o.check}": o for o in result.critical_failures}
    dbt_direction = "dbt.fct_interactions.accepted_values_fct_interactions_direction__inbound__outbound"
    dbt_orphan = ("dbt.int_identifiers_unioned."
                  "relationships_int_identifiers_unioned_record_id__record_id__ref_int_interactions_unioned_")
    dbt_twice = "dbt.int_customer_ids_assigned.unique_int_customer_ids_assigned_record_id"
    assert set(failed) == {"raw.phone_system__calls.content_hash_is_sha256",
                           "marts.fct_interactions.direction_accepted", dbt_direction, dbt_orphan, dbt_twice}, \
        result.report()
    # dbt's tests read the tables' changed rows from the copies their test run made (and dropped)
    for name in (dbt_direction, dbt_orphan, dbt_twice):
        assert (failed[name].unexpected_count, failed[name].scope) == (1, result.scope), name
    with psycopg.connect(copy) as conn:
        assert not conn.execute("select relname from pg_class where relname like 'gate\\_changed\\_\\_%'").fetchall()
    bad_hash = failed["raw.phone_system__calls.content_hash_is_sha256"]
    day_rows, _ = _counts(copy, "phone_system__calls", day)
    assert (bad_hash.unexpected_count, bad_hash.element_count) == (1, day_rows)  # the bad row was landed now
    assert failed["marts.fct_interactions.direction_accepted"].unexpected_count == 1
    with pytest.raises(QualityGateFailed) as raised:
        result.raise_if_failed()
    message = str(raised.value)
    assert (f"raw.phone_system__calls.content_hash_is_sha256 on raw.phone_system__calls: 1 unexpected row of "
            f"{day_rows} (rows changed {result.scope})") in message
    assert "marts.fct_interactions.direction_accepted" in message


def test_an_old_bad_row_is_caught_by_the_full_check_only(copy, warehouse_after_the_day, tmp_path):
    _, run_end, day = warehouse_after_the_day
    with psycopg.connect(copy) as conn:  # a row of the first load that is wrong (e.g. a check added since)
        conn.execute("update raw.phone_system__calls set content_hash = 'not-a-sha256'"
                     " where (record_key, batch_id) = (select record_key, batch_id from raw.phone_system__calls"
                     " where extracted_at < %s order by batch_id, record_key limit 1)", (day,))
    incremental = _gate(copy, "old-bad-incremental", run_end, tmp_path / "incremental")
    assert incremental.scope.startswith("since ") and incremental.passed, incremental.report()
    day_rows, all_rows = _counts(copy, "phone_system__calls", day)
    assert _outcome(incremental, "raw.phone_system__calls", "content_hash_is_sha256").element_count == day_rows

    full = _gate(copy, "old-bad-full", run_end, tmp_path / "full", full=True)
    assert full.scope == "full" and not full.passed
    assert [f"{o.suite}.{o.check}" for o in full.critical_failures] == [
        "raw.phone_system__calls.content_hash_is_sha256"], full.report()
    caught = full.critical_failures[0]
    assert (caught.unexpected_count, caught.element_count, caught.scope) == (1, all_rows, "full")
    assert "Scope: full check (the test asked for it)" in full.report()
    assert f"content_hash_is_sha256 on raw.phone_system__calls: 1 unexpected row of {all_rows} (all rows)" in \
        full.report()
