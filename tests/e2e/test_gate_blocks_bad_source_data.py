"""End to end: the quality gate stops bad source data before BI sees it (issue 6, point 4).

Through Airflow (`airflow dags test`), against the sandbox vendors and a real PostgreSQL, with a small world:

1. a good run (phone system and survey extracts, then `transform_warehouse`) publishes the marts; a
   `bi_reader` session records a checksum and a row count of every published mart;
2. the vendors then serve bad data for the next window (the pipeline is not told): a CSAT of 9 on some
   survey responses, the same call key twice with two contents, the `from` field gone from every call,
   and no calls at all on one day;
3. the next run fails, at the gate and only there, with a message naming every failed check, its rows and
   the Data Docs; a `bi_reader` session opened before the run, polling during it, and a new one after it
   all read exactly the previous marts;
4. the vendors are fixed, the same window runs again and publishes: the marts change as the source did.

One bad run carries the four faults (the message must name all four), which keeps the test to three
transform runs.
"""

from __future__ import annotations

import json
import re
import sqlite3
import threading
from datetime import UTC, datetime, timedelta

import psycopg
import pytest
from crm_warehouse import runtime
from psycopg import sql

WORLD = {"seed": 11, "customers": 500, "days": 10, "start": "2026-09-01"}
START = datetime(2026, 9, 1, tzinfo=UTC)
MID = datetime(2026, 9, 8, tzinfo=UTC)  # good run: [START, MID); bad and fixed runs: [MID, END)
END = START + timedelta(days=WORLD["days"])
QUIET_DAY = "2026-09-09"  # inside the bad window, with days on both sides: a gap, not the edge
EXTRACTS = ["extract_phone_system", "extract_survey_vendor"]  # the sources the faults touch


def bi_snapshot(conn: psycopg.Connection) -> dict[str, tuple[str, int]]:
    """What BI reads now: per published relation (tables and views), an md5 of all its rows and its count."""
    names = [r[0] for r in conn.execute(
        "select table_name from information_schema.tables where table_schema = 'marts' order by 1")]
    out = {}
    for name in names:
        out[name] = tuple(conn.execute(sql.SQL(
            "select md5(coalesce(string_agg(m::text, '|' order by m::text), '')), count(*) from marts.{} as m"
        ).format(sql.Identifier(name))).fetchone())
    return out


def bi_reader(url: str) -> psycopg.Connection:
    conn = psycopg.connect(url, autocommit=True)
    conn.execute("set role bi_reader")
    return conn


class Watcher(threading.Thread):
    """A `bi_reader` session opened before a run that reads every mart again and again until stopped."""

    def __init__(self, url: str):
        super().__init__(daemon=True)
        self.conn = bi_reader(url)
        self.before = bi_snapshot(self.conn)
        self.seen: list[dict] = []
        self.errors: list[BaseException] = []
        self.stop = threading.Event()

    def run(self) -> None:
        try:
            while not self.stop.is_set():
                self.seen.append(bi_snapshot(self.conn))
                self.stop.wait(1)
        except BaseException as exc:  # reported by the test, not lost in the thread
            self.errors.append(exc)

    def finish(self) -> dict:
        self.stop.set()
        self.join()
        after = bi_snapshot(self.conn)
        self.conn.close()
        return after


def gate_message(log_text: str) -> str:
    """The QualityGateFailed message as the task log shows it: from its first line to the Data Docs line."""
    start = log_text.rfind("Quality gate failed for run")
    assert start >= 0, "the log does not carry the gate's failure message"
    end = log_text.find("Data Docs:", start)
    assert end >= 0, "the gate's message does not say where the Data Docs are"
    return log_text[start:log_text.find("\n", end)]


def latest_gate_results(url: str) -> tuple[str, list[tuple]]:
    with psycopg.connect(url) as conn:
        run_id = conn.execute("select run_id from quality.validation_results group by run_id "
                              "order by max(checked_at) desc limit 1").fetchone()[0]
        rows = conn.execute("select suite, expectation, severity, success, unexpected_count "
                            "from quality.validation_results where run_id = %s", (run_id,)).fetchall()
    return run_id, rows


@pytest.fixture(scope="module")
def story(world_dir, warehouse, tmp_path_factory):
    """Good run, bad run (four faults at the source), fixed run; what each left behind."""
    from e2e_support import AirflowRunner

    from sandbox.serve import Sandbox

    home = tmp_path_factory.mktemp("crm-home")
    box = Sandbox(world_dir, sftp=False).start()
    try:
        airflow = AirflowRunner(box, warehouse, home)
        # Calls are asked for from a day before the window by default (lookback); here each run asks for its
        # own days only, so the bad data lands on calls the warehouse never had. With the lookback, the day
        # before the bad window would be served good (good run), bad, then good again, and that last delivery
        # is a version the warehouse already holds, so it is a duplicate and the bad version stays the latest:
        # a limit of (key, content hash) deduplication, reported, not hidden by this test.
        phone = box.connections["phone_system"]
        airflow.env["AIRFLOW_CONN_PHONE_SYSTEM"] = json.dumps(
            {**phone, "extra": {**phone["extra"], "lookback_days": 0}})
        out: dict = {"home": home, "seconds": {}, "states": {}}

        def run(tag: str, logical_date: datetime, window: tuple[datetime, datetime]) -> dict:
            box.set_clock(window[1])
            results = {}
            for dag_id in [*EXTRACTS, runtime.TRANSFORM_DAG]:
                results[dag_id] = airflow.run(dag_id, logical_date=logical_date, window=window, tag=tag)
                out["states"][f"{tag} {dag_id}"] = airflow.task_states(results[dag_id])
                out["seconds"][f"{tag} {dag_id}"] = round(results[dag_id].seconds, 1)
            return results

        # 1. a good run publishes
        out["good"] = run("good", MID, (START, MID))
        for dag_id, result in out["good"].items():
            assert result.ok, f"good run: {dag_id} failed ({result.failed_tasks}); log {result.log}:\n{result.message}"
        with bi_reader(warehouse) as conn:
            out["published"] = bi_snapshot(conn)

        # 2. the vendors serve bad data for the next window
        box.inject_data("qualtrics.export", "set_field", field="values.QID1", value="9", every=2)
        box.inject_data("twilio.calls", "drop_field", field="from")
        box.inject_data("twilio.calls", "duplicate_key", field="price_unit", values=["EUR", "GBP"], every=5)
        box.inject_data("twilio.calls", "skip_day", day=QUIET_DAY, time_field="start_time")
        box.inject_data("twilio.dispositions", "skip_day", day=QUIET_DAY, time_field="wrapped_at")

        # 3. the next run fails at the gate while BI reads on
        watcher = Watcher(warehouse)
        watcher.start()
        out["bad"] = run("bad", END, (MID, END))
        out["during"] = watcher.seen
        out["watcher_errors"] = watcher.errors
        out["same_session_after"] = watcher.finish()
        out["before_bad"] = watcher.before
        with bi_reader(warehouse) as conn:
            out["new_session_after"] = bi_snapshot(conn)
        out["bad_results"] = latest_gate_results(warehouse)
        out["touched"] = {(e, f): box.data_faults.touched(e, f) for e, f in (
            ("qualtrics.export", "set_field"), ("twilio.calls", "drop_field"),
            ("twilio.calls", "duplicate_key"), ("twilio.calls", "skip_day"))}

        # 4. the vendors are fixed; the same window again publishes
        box.clear_faults()
        out["fixed"] = run("fixed", END + timedelta(hours=1), (MID, END))
        with bi_reader(warehouse) as conn:
            out["republished"] = bi_snapshot(conn)
        out["fixed_results"] = latest_gate_results(warehouse)
        print("seconds per DAG run:", json.dumps(out["seconds"], indent=1))
        yield out
    finally:
        box.stop()


def test_good_run_publishes_every_mart(story):
    published = story["published"]
    assert {"dim_customers", "fct_interactions", "fct_complaints", "fct_survey_feedback",
            "fct_service_quality_daily"} <= set(published)
    assert all(rows > 0 for _, rows in published.values()), published


def test_bad_source_data_fails_the_run_at_the_gate_only(story):
    bad, states = story["bad"], story["states"]
    for dag_id in EXTRACTS:  # the pipeline does not know the data is bad: extracts succeed
        assert bad[dag_id].ok, f"{dag_id} failed ({bad[dag_id].failed_tasks}); log {bad[dag_id].log}"
    transform = bad[runtime.TRANSFORM_DAG]
    assert not transform.ok, f"the transform published bad data; log {transform.log}"
    gate_states = states[f"bad {runtime.TRANSFORM_DAG}"]
    failed = sorted(t for t, state in gate_states.items() if state == "failed")
    assert failed == ["quality_gate"], f"{failed}; log {transform.log}"
    assert gate_states["publish"] != "success"
    assert gate_states["dbt_build"] == "success", gate_states  # the models built; only the checks failed
    log = transform.log.read_text(errors="replace")
    assert "starting task_id=quality_gate" in log
    assert "starting task_id=publish" not in log, "publish ran after a failed gate"


def _dbt_test_name(model: str, column: str, test: str) -> str:
    from crm_warehouse.settings import dbt_project_dir

    manifest = json.loads((dbt_project_dir() / "target" / "manifest.json").read_text())
    names = [n["name"] for n in manifest["nodes"].values()
             if n["resource_type"] == "test" and n.get("attached_node") == f"model.crm_warehouse.{model}"
             and n.get("column_name") == column and (n.get("test_metadata") or {}).get("name") == test]
    assert len(names) == 1, names
    return names[0]


def test_gate_message_names_each_fault_its_rows_and_the_data_docs(story):
    touched = story["touched"]
    log = story["bad"][runtime.TRANSFORM_DAG].log.read_text(errors="replace")
    message = gate_message(log)
    csat = touched[("qualtrics.export", "set_field")]
    no_from = touched[("twilio.calls", "drop_field")]
    twice = touched[("twilio.calls", "duplicate_key")]
    assert csat and no_from and twice and touched[("twilio.calls", "skip_day")], touched

    def rows(check: str) -> int:
        found = re.search(re.escape(check) + r" on \S+: (\d+) unexpected rows?", message)
        assert found, f"{check} is not in the gate's message:\n{message}"
        return int(found.group(1))

    # an out-of-range score: dbt's range test on staging, and the mart's range check
    assert rows(f"dbt.stg_survey_vendor__responses."
                f"{_dbt_test_name('stg_survey_vendor__responses', 'csat_score', 'accepted_range')}") == len(csat)
    assert 0 < rows("marts.fct_survey_feedback.csat_between_1_and_5") <= len(csat)
    # a duplicated key: two contents under one key in one delivery
    assert rows("raw.phone_system__calls.one_version_per_key_per_batch") == len(twice)
    # a vanished column: every call served in the bad window lost `from`
    assert rows("raw.phone_system__calls.fields_staging_needs_present") == len(no_from)
    # a day with no calls: exactly that day of the phone channel
    assert rows("marts.fct_interactions.no_day_without_interactions") == 1

    docs = re.search(r"Data Docs: file://(\S+)", message)
    assert docs, message
    assert (story["home"] / "docs" / "data_docs" / "index.html").exists()
    assert docs.group(1).endswith("data_docs/index.html")
    # the message lists every critical failure the gate stored for the run, with the same row counts
    run_id, results = story["bad_results"]
    assert run_id in message
    failed = [(s, e, n) for s, e, sev, ok, n in results if sev == "critical" and not ok]
    assert failed
    for suite, check, n in failed:
        line = f"{suite}.{check} on "
        assert line in message, f"{line} stored as failed but not in the message"
        if n is not None:
            assert rows(f"{suite}.{check}") == n


def test_bi_reader_reads_the_previous_marts_during_and_after_the_failed_run(story):
    published = story["published"]
    assert not story["watcher_errors"], story["watcher_errors"]
    assert story["before_bad"] == published
    assert story["during"], "the watcher never read during the run"
    assert all(seen == published for seen in story["during"]), "BI saw something else during the failed run"
    assert story["same_session_after"] == published
    assert story["new_session_after"] == published


def test_fixed_source_publishes_and_the_marts_follow_it(story, world_dir, warehouse):
    fixed = story["fixed"]
    for dag_id, result in fixed.items():
        assert result.ok, f"fixed run: {dag_id} failed ({result.failed_tasks}); log {result.log}:\n{result.message}"
    _, results = story["fixed_results"]
    assert results and not [r for r in results if r[2] == "critical" and not r[3]], "critical checks still fail"

    republished, published = story["republished"], story["published"]
    assert republished["fct_interactions"][1] > published["fct_interactions"][1]
    assert republished["fct_survey_feedback"][1] > published["fct_survey_feedback"][1]
    with sqlite3.connect(world_dir / "world.db") as world:
        calls_that_day = world.execute("select count(*) from s_calls where start_day = ?", (QUIET_DAY,)).fetchone()[0]
        scores = {json.loads(p)["responseId"]: json.loads(p)["values"].get("QID1")
                  for (p,) in world.execute("select payload from s_survey_responses")}
    with bi_reader(warehouse) as conn:
        phone_that_day = conn.execute("select count(*) from marts.fct_interactions where channel = 'phone' "
                                      "and occurred_date = %s", (QUIET_DAY,)).fetchone()[0]
        feedback = dict(conn.execute("select survey_response_id, csat_score from marts.fct_survey_feedback"))
    assert phone_that_day == calls_that_day > 0
    csat = story["touched"][("qualtrics.export", "set_field")]
    back = {rid: feedback[f"qualtrics:{rid}"] for rid in csat if f"qualtrics:{rid}" in feedback}
    assert back, "none of the corrected responses is in the marts"
    assert all(score == (int(scores[rid]) if scores[rid] not in (None, "") else None) for rid, score in back.items())
