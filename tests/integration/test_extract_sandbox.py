"""Every stream end to end against the sandbox vendors on loopback and a real PostgreSQL: successive
days, the same window twice, faults (429, 500, drop, malformed, long rate limits, bad credentials),
schema drift, and reconciliation with what the sandbox served."""

from __future__ import annotations

import json
import sqlite3
from datetime import UTC, datetime, timedelta

import psycopg
import pytest
from crm_warehouse.http import AuthError, MalformedResponse, RateLimitDeferred, RetryPolicy
from crm_warehouse.load.ddl import forget_ready
from crm_warehouse.sources import run_stream
from crm_warehouse.sources.registry import SOURCES

from sandbox import world as W
from sandbox.serve import Sandbox

DAYS = 4
START = datetime(2026, 9, 1, tzinfo=UTC)
# served table, its key column, raw table
SERVED = {
    ("phone_system", "calls"): "s_calls",
    ("phone_system", "dispositions"): "s_dispositions",
    ("survey_vendor", "responses"): "s_survey_responses",
    ("web_forms", "responses"): "s_form_responses",
    ("social_x", "mentions"): "s_x_mentions",
    ("social_facebook", "posts"): "s_fb_posts",
    ("social_facebook", "comments"): "s_fb_comments",
    ("social_linkedin", "posts"): "s_li_posts",
    ("social_linkedin", "comments"): "s_li_comments",
}


@pytest.fixture(scope="module")
def sb(tmp_path_factory):
    d = tmp_path_factory.mktemp("extract_world")
    W.generate(d, seed=5, customers=600, days=DAYS)
    sandbox = Sandbox(d, sftp=False).start()
    yield sandbox
    sandbox.stop()


@pytest.fixture(autouse=True)
def env(sb, monkeypatch):
    sb.clear_faults()
    sb.set_clock(sb.end_ts)
    forget_ready()
    for conn_id, conn in sb.connections.items():
        monkeypatch.setenv(f"AIRFLOW_CONN_{conn_id.upper()}", json.dumps(conn))
    yield
    sb.clear_faults()


FAST = RetryPolicy(backoff_base=0.01, backoff_cap=0.05, max_wait=5.0)


def day(i: int) -> tuple[datetime, datetime]:
    """Day i of the world; day 0 also covers the week before it (the initial backfill: posts made before
    the world starts are served too)."""
    return START + timedelta(days=i if i else -7), START + timedelta(days=i + 1)


def run(url, source, stream, i=0, **kw):
    ws, we = day(i)
    return run_stream(source, stream, ws, we, warehouse_url=url, retry_policy=kw.pop("policy", FAST), **kw)


def served_keys(sb, table: str) -> set[str]:
    with sqlite3.connect(sb.db_path) as db:
        return {r[0] for r in db.execute(f"select key from {table} where available_at <= ?", (sb.clock_ts,))}


def raw_rows(url, table: str) -> tuple[int, set[str]]:
    with psycopg.connect(url) as conn:
        rows = conn.execute(f"select record_key from raw.{table}").fetchall()
    return len(rows), {r[0] for r in rows}


def test_every_stream_over_successive_days_reconciles_with_what_was_served(sb, fresh_db):
    for i in range(DAYS):
        for source in SOURCES.values():
            for stream in source.streams:
                stats = run(fresh_db, source.name, stream, i)
                assert stats["received"] == stats["loaded"] + stats["duplicate"] + stats["quarantined"]
    for (source, stream), table in SERVED.items():
        count, keys = raw_rows(fresh_db, f"{source}__{stream}")
        expected = served_keys(sb, table)
        assert keys == expected, \
            f"{source}.{stream}: missing {sorted(expected - keys)[:5]}, extra {sorted(keys - expected)[:5]}"
        assert count == len(keys), f"{source}.{stream}: a record landed twice"
    with psycopg.connect(fresh_db) as conn:
        assert conn.execute("select count(*) from ops.quarantine").fetchone()[0] == 0
        bad = conn.execute("select count(*) from ops.batches where status <> 'succeeded' or "
                           "received <> loaded + duplicate + quarantined").fetchone()[0]
        assert bad == 0
        states = dict(conn.execute("select source || '.' || stream, cursor->'last_window' from ops.stream_state"
                                   ).fetchall())
        assert states["phone_system.calls"] == [f"{day(DAYS - 1)[0]:%Y-%m-%dT%H:%M:%SZ}",
                                                f"{day(DAYS - 1)[1]:%Y-%m-%dT%H:%M:%SZ}"]


def test_x_mentions_and_users(sb, fresh_db):
    stats = run(fresh_db, "social_x", "mentions", 0)
    assert stats["loaded"] > 0 and stats["tables"]["users"]["loaded"] > 0
    assert run(fresh_db, "social_x", "users", 0)["note"].startswith("landed by stream")
    with psycopg.connect(fresh_db) as conn:
        cursor = conn.execute("select cursor from ops.stream_state where stream = 'mentions'").fetchone()[0]
    assert cursor["since_id"]


def test_same_window_twice_adds_nothing(sb, fresh_db):
    for source, stream in (("phone_system", "calls"), ("web_forms", "responses"),
                           ("survey_vendor", "responses"), ("social_facebook", "posts")):
        first = run(fresh_db, source, stream, 1)
        before = raw_rows(fresh_db, f"{source}__{stream}")[0]
        second = run(fresh_db, source, stream, 1)
        assert second["loaded"] == 0 and second["duplicate"] == second["received"] == first["received"]
        assert raw_rows(fresh_db, f"{source}__{stream}")[0] == before


def test_a_call_changed_back_by_the_vendor_is_current_again_in_staging(sb, fresh_db, dbt_run):
    """The Calls API serves a call as A, then changed (B), then as A again: three versions land and
    staging shows A; the same window once more adds nothing."""
    lo, hi = (int(t.timestamp()) for t in day(1))
    with sqlite3.connect(sb.db_path) as db:
        sid, original = db.execute("select key, payload from s_calls where start_ts >= ? and start_ts < ?"
                                   " and available_at <= ? order by key limit 1", (lo, hi, sb.clock_ts)).fetchone()
    a = json.loads(original)
    b = {**a, "status": "canceled" if a["status"] != "canceled" else "completed", "duration": "0"}

    def serve(payload: dict) -> None:
        with sqlite3.connect(sb.db_path) as db:
            db.execute("update s_calls set payload = ? where key = ?", (json.dumps(payload), sid))

    try:
        loaded = []
        for payload in (a, b, a, a):
            serve(payload)
            loaded.append(run(fresh_db, "phone_system", "calls", 1)["loaded"])
    finally:
        serve(a)
        with sqlite3.connect(sb.db_path) as db:
            db.execute("update s_calls set payload = ? where key = ?", (original, sid))
    assert loaded[1:] == [1, 1, 0] and loaded[0] > 1
    with psycopg.connect(fresh_db) as conn:
        versions = conn.execute("select payload->>'status' from raw.phone_system__calls where record_key = %s"
                                " order by extracted_at, batch_id", (sid,)).fetchall()
        assert [v[0] for v in versions] == [a["status"], b["status"], a["status"]]
    dbt_run(fresh_db, "stg_phone_system__calls")
    with psycopg.connect(fresh_db) as conn:
        staged = conn.execute("select call_status, duration_seconds from staging.stg_phone_system__calls"
                              " where call_sid = %s", (sid,)).fetchall()
    assert staged == [(a["status"], int(a["duration"]) if a.get("duration") else None)]


@pytest.mark.parametrize(("endpoint", "source", "stream"), [
    ("twilio.calls", "phone_system", "calls"),
    ("typeform.responses", "web_forms", "responses"),
    ("linkedin.posts", "social_linkedin", "posts"),
    ("qualtrics.export", "survey_vendor", "responses"),
])
def test_transient_faults_are_retried(sb, fresh_db, endpoint, source, stream):
    clean = run(fresh_db, source, stream, 2)
    faults = ("500", "drop", "malformed", "503") if source == "social_linkedin" else ("429", "500", "drop",
                                                                                      "malformed", "503")
    for fault in faults:
        sb.inject(endpoint, fault, 1)
    stats = run(fresh_db, source, stream, 2)
    assert stats["retries"] >= len(faults)
    assert stats["received"] == clean["received"] and stats["loaded"] == 0


def test_repeated_page_overlap_is_deduplicated(sb, fresh_db, monkeypatch):
    conn = sb.connections["phone_system"]
    conn["extra"]["page_size"] = 5
    monkeypatch.setenv("AIRFLOW_CONN_PHONE_SYSTEM", json.dumps(conn))
    sb.inject("twilio.calls", "repeat", 3)
    stats = run(fresh_db, "phone_system", "calls", 0)
    count, keys = raw_rows(fresh_db, "phone_system__calls")
    assert stats["pages"] > 3 and stats["duplicate"] > 0
    assert count == len(keys)


def test_long_rate_limit_defers_with_saved_position_and_the_next_try_resumes(sb, fresh_db, monkeypatch):
    conn = sb.connections["phone_system"]
    conn["extra"]["page_size"] = 5
    monkeypatch.setenv("AIRFLOW_CONN_PHONE_SYSTEM", json.dumps(conn))
    sb.inject("twilio.calls", "repeat", 1)  # consumed by page 1 (harmless overlap)
    sb.inject("twilio.calls", "429", 1, retry_after=900)  # page 2: wait 15 minutes
    with pytest.raises(RateLimitDeferred) as info:
        run(fresh_db, "phone_system", "calls", 0, flush_records=1)
    deferred = info.value
    assert deferred.wait_seconds >= 900 and deferred.position and deferred.position["page"] == 1
    assert "phone_system" in str(deferred)
    landed, _ = raw_rows(fresh_db, "phone_system__calls")
    assert landed == 5
    with psycopg.connect(fresh_db) as c:
        state = c.execute("select cursor from ops.stream_state where stream = 'calls'").fetchone()[0]
    assert state["resume"]["position"] == deferred.position
    resumed = run(fresh_db, "phone_system", "calls", 0)
    assert resumed["requests"] < resumed["pages"] + 1 + 1  # started at page 2, not page 1
    count, keys = raw_rows(fresh_db, "phone_system__calls")
    assert count == len(keys) and keys >= {k for k in keys}
    with psycopg.connect(fresh_db) as c:
        state = c.execute("select cursor from ops.stream_state where stream = 'calls'").fetchone()[0]
    assert state["resume"] is None
    full = run(fresh_db, "phone_system", "calls", 0)
    assert full["loaded"] == 0 and full["received"] == count


def test_facebook_rate_limit_error_code_defers(sb, fresh_db):
    sb.inject("facebook.feed", "429", 1, code=613, retry_after_minutes=30)
    with pytest.raises(RateLimitDeferred) as info:
        run(fresh_db, "social_facebook", "posts", 0)
    assert info.value.wait_seconds == 1800
    assert run(fresh_db, "social_facebook", "posts", 0)["received"] >= 0


def test_bad_credentials_fail_at_once_naming_the_connection(sb, fresh_db, monkeypatch):
    conn = dict(sb.connections["web_forms"], password="wrong-token")
    monkeypatch.setenv("AIRFLOW_CONN_WEB_FORMS", json.dumps(conn))
    with pytest.raises(AuthError, match="connection 'web_forms'") as info:
        run(fresh_db, "web_forms", "responses", 0)
    assert "wrong-token" not in str(info.value)
    with psycopg.connect(fresh_db) as c:
        status, error = c.execute("select status, error from ops.batches").fetchone()
    assert status == "failed" and "AuthError" in error


def test_persistently_malformed_pages_fail_clearly(sb, fresh_db):
    sb.inject("twilio.dispositions", "malformed", 20)
    with pytest.raises(MalformedResponse, match="not valid JSON"):
        run(fresh_db, "phone_system", "dispositions", 0, policy=RetryPolicy(backoff_base=0.01, max_attempts=3))


def test_schema_drift_is_recorded(sb, fresh_db):
    run(fresh_db, "phone_system", "dispositions", 0)
    sb.inject("twilio.dispositions", "drift_new_field", 5)
    stats = run(fresh_db, "phone_system", "dispositions", 1)
    assert stats["loaded"] > 0
    with psycopg.connect(fresh_db) as c:
        drift = c.execute("select field, change from ops.schema_drift").fetchall()
    assert ("sandbox_new_field", "appeared") in drift


def test_deferred_multi_form_run_resumes_at_the_next_form(sb, fresh_db):
    sb.inject("typeform.responses", "repeat", 1)  # form 1 answers (with a harmless repeat)
    sb.inject("typeform.responses", "429", 1, retry_after=900)  # form 2: wait 15 minutes
    with pytest.raises(RateLimitDeferred) as info:
        run(fresh_db, "web_forms", "responses", 0)
    assert info.value.position == {"form_index": 1}
    resumed = run(fresh_db, "web_forms", "responses", 0)
    assert resumed["requests"] == 3  # forms 2, 3 and 4 only
    fresh = run(fresh_db, "web_forms", "responses", 0)
    assert fresh["requests"] == 4 and fresh["loaded"] == 0


def test_deferred_comments_resume_after_the_last_finished_post(sb, fresh_db):
    run(fresh_db, "social_facebook", "posts", 0)
    full = run(fresh_db, "social_facebook", "comments", 0)
    assert full["requests"] >= 3
    sb.inject("facebook.comments", "repeat", 1)
    sb.inject("facebook.comments", "429", 1, code=32, retry_after_minutes=20)
    with pytest.raises(RateLimitDeferred) as info:
        run(fresh_db, "social_facebook", "comments", 0)
    assert info.value.position and "after_post" in info.value.position
    resumed = run(fresh_db, "social_facebook", "comments", 0)
    assert resumed["requests"] == full["requests"] - 1


def test_linkedin_daily_quota_defers_until_midnight_utc(sb, fresh_db):
    sb.inject("linkedin.posts", "429", 1)
    with pytest.raises(RateLimitDeferred) as info:
        run(fresh_db, "social_linkedin", "posts", 0)
    resume_at = info.value.resume_at
    assert (resume_at.hour, resume_at.minute) == (0, 0) and resume_at > datetime.now(UTC)


def test_extract_task_gives_its_worker_back_on_a_long_rate_limit(sb, fresh_db, monkeypatch):
    """The DAG layer turns a long quota wait into a reschedule (not a sleeping worker, not a failed try),
    and the rescheduled try resumes from the saved position."""
    from airflow.sdk.exceptions import AirflowRescheduleException
    from crm_warehouse.orchestration.extract import run_stream_task
    from crm_warehouse.runtime import warehouse_connection

    monkeypatch.setenv("AIRFLOW_CONN_WAREHOUSE", json.dumps(warehouse_connection(fresh_db)))
    ws, we = day(0)
    context = {"dag_run": None, "data_interval_start": ws, "data_interval_end": we}
    sb.inject("twilio.calls", "429", 1, retry_after=900)
    with pytest.raises(AirflowRescheduleException) as info:
        run_stream_task("phone_system", "calls", conn_id="phone_system", context=context)
    waited = (info.value.reschedule_date - datetime.now(UTC)).total_seconds()
    assert 800 < waited <= 900
    assert isinstance(info.value.__cause__, RateLimitDeferred)
    stats = run_stream_task("phone_system", "calls", conn_id="phone_system", context=context)
    count, keys = raw_rows(fresh_db, "phone_system__calls")
    assert stats["loaded"] == count == len(keys) > 0


def test_wrong_credentials_fail_the_airflow_task_at_once_naming_the_connection(sb, fresh_db, tmp_path):
    """Through Airflow (`airflow dags test`): a rejected token fails the task on its first try (no retries:
    another try would send the same token), and the failure names the connection to fix."""
    from crm_warehouse import runtime

    bad = dict(sb.connections["web_forms"], password="not-the-token")
    env = runtime.airflow_env({**sb.connections, "web_forms": bad, "warehouse": runtime.warehouse_connection(fresh_db)},
                              home=tmp_path / "home")
    runtime.migrate_metadata(env, tmp_path / "migrate.log")
    ws, we = day(0)
    result = runtime.dags_test("extract_web_forms", logical_date=we, window=(ws, we), env=env,
                               log=tmp_path / "run.log", timeout=600)
    text = result.log.read_text(errors="replace")
    assert not result.ok
    assert result.failed_tasks == ["web_forms.responses"], result.failed_tasks
    assert "up_for_retry" not in text, "an authentication failure was retried"
    assert "AirflowFailException" in text and "Airflow connection 'web_forms'" in text, result.message
    assert "not-the-token" not in text
