"""Every fault the sandbox can inject, on every HTTP source endpoint, and a loader killed with SIGKILL in the
middle of a batch; after each, every record the sandbox served (its ground truth, `world.db`) is in raw
exactly once or in ops.quarantine with a reason, the ledger balances and nothing is half-loaded.

One world, one sandbox and one database for the module (reset between cases), so the matrix stays fast.
Each fault is injected just before the stream's `at`-th request, so most land mid-stream, after a batch
was committed (flush_records=1 commits every page with its resume position)."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import textwrap
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import psycopg
import pytest
from crm_warehouse.http import AuthError, HttpClient, MalformedResponse, RateLimitDeferred, RetryPolicy
from crm_warehouse.load.ddl import forget_ready
from crm_warehouse.sources import run_stream
from psycopg import sql

from sandbox import world as W
from sandbox.serve import HTTP_FAULTS, Sandbox

# a failure drill (`make drills`), essential: also in `make test`
pytestmark = pytest.mark.drill

DAYS = 3
START = datetime(2026, 9, 1, tzinfo=UTC)
WINDOW = (START - timedelta(days=7), START + timedelta(days=DAYS))  # the whole world: a backfill
ROOT = Path(__file__).resolve().parents[2]

# endpoint -> source, stream, served table (ground truth), stream that must be landed first
ENDPOINTS = {
    "twilio.calls": ("phone_system", "calls", "s_calls", None),
    "twilio.dispositions": ("phone_system", "dispositions", "s_dispositions", None),
    "qualtrics.export": ("survey_vendor", "responses", "s_survey_responses", None),
    "typeform.responses": ("web_forms", "responses", "s_form_responses", None),
    "x.mentions": ("social_x", "mentions", "s_x_mentions", None),
    "facebook.feed": ("social_facebook", "posts", "s_fb_posts", None),
    "facebook.comments": ("social_facebook", "comments", "s_fb_comments", "posts"),
    "linkedin.posts": ("social_linkedin", "posts", "s_li_posts", None),
    "linkedin.comments": ("social_linkedin", "comments", "s_li_comments", "posts"),
}
# The request the fault lands on: the 2nd (a page after a committed one) unless the stream makes a single
# request in this world; Qualtrics' 4th is the download of the export file (start, poll, poll, file).
AT = {"qualtrics.export": 4, "x.mentions": 1, "facebook.feed": 1, "linkedin.posts": 1}
KEYS = {"calls": "sid", "dispositions": "disposition_id", "responses": ("responseId", "token", "response_id"),
        "mentions": "id", "posts": "id", "comments": ("$URN", "id")}
# fault case -> the sandbox faults injected together: (fault, count, options)
CASES = {
    "429": [("429", 1, {"retry_after": 0})],
    "5xx": [("500", 1, {}), ("503", 2, {})],
    "slow": [("slow", 1, {"seconds": 1.2})],
    "drop": [("drop", 1, {})],
    "malformed": [("malformed", 1, {})],
    "malformed_persistent": [("malformed", 50, {})],
    "drift_new_field": [("drift_new_field", 3, {})],
    "drift_missing_field": [("drift_missing_field", 3, {})],
    "drift_type_change": [("drift_type_change", 3, {})],
    "repeat": [("repeat", 3, {})],
    "bad_auth": [("bad_auth", 1, {})],
}
POLICY = RetryPolicy(backoff_base=0.01, backoff_cap=0.05, max_wait=5.0, max_attempts=4)
SLOW_TIMEOUT = (5.0, 0.6)  # connect, read: the 'slow' fault answers after 1.2 s


@pytest.fixture(scope="module")
def sb(tmp_path_factory):
    d = tmp_path_factory.mktemp("fault_world")
    W.generate(d, seed=11, customers=600, days=DAYS)
    sandbox = Sandbox(d, sftp=False).start()
    yield sandbox
    sandbox.stop()


@pytest.fixture(scope="module")
def db(pg_server_url):
    name = f"crm_test_faults_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(pg_server_url, autocommit=True) as conn:
        conn.execute(sql.SQL("create database {}").format(sql.Identifier(name)))
        # no wait for the WAL flush at each of the many small commits: durability is not under test here
        # (the SIGKILL test kills the client, not the server)
        conn.execute(sql.SQL("alter database {} set synchronous_commit = off").format(sql.Identifier(name)))
    forget_ready()
    yield pg_server_url.rsplit("/", 1)[0] + f"/{name}"
    with psycopg.connect(pg_server_url, autocommit=True) as conn:
        conn.execute(sql.SQL("drop database if exists {} with (force)").format(sql.Identifier(name)))


@pytest.fixture(autouse=True)
def env(sb, db, monkeypatch):
    sb.clear_faults()
    sb.set_clock(sb.end_ts)
    for conn_id, conn in sb.connections.items():
        conn = json.loads(json.dumps(conn))
        if conn_id in ("phone_system", "web_forms"):
            conn["extra"]["page_size"] = 25  # several pages per stream
        if conn_id == "social_facebook":
            conn["extra"]["page_size"] = 5
        monkeypatch.setenv(f"AIRFLOW_CONN_{conn_id.upper()}", json.dumps(conn))
    reset(db)
    yield
    sb.clear_faults()


def reset(url: str) -> None:
    """Empty every raw and ops table (cheaper than a new database per case; `delete` is cheaper than
    `truncate` on tables this small)."""
    with psycopg.connect(url) as conn:
        tables = conn.execute(
            "select table_schema, table_name from information_schema.tables where table_schema in ('raw', 'ops')"
            " and table_type = 'BASE TABLE' order by table_schema = 'ops'").fetchall()
        for schema, table in tables:
            conn.execute(sql.SQL("delete from {}").format(sql.Identifier(schema, table)))


def run(url, source, stream, **kw):
    return run_stream(source, stream, *WINDOW, warehouse_url=url, retry_policy=kw.pop("policy", POLICY),
                      flush_records=kw.pop("flush_records", 1), **kw)


def served_keys(sb, table: str) -> set[str]:
    with sqlite3.connect(sb.db_path) as world:
        return {r[0] for r in world.execute(f"select key from {table} where available_at <= ?", (sb.clock_ts,))}


def _key_of(original: str, key) -> str | None:
    try:
        payload = json.loads(original)
    except (TypeError, ValueError):
        return None
    if not isinstance(payload, dict):
        return None
    for name in (key,) if isinstance(key, str) else key:
        if isinstance(payload.get(name), str) and payload[name]:
            return payload[name]
    return None


def reconcile(url, sb, source: str, stream: str, table: str, *, versions_ok: bool = False,
              after_batch: int = 0) -> dict:
    """Every served record is in raw exactly once or quarantined with a reason; the ledger balances; every
    raw row belongs to a succeeded batch whose `loaded` counts it (nothing half-loaded); no batch is left
    running."""
    expected = served_keys(sb, table)
    with psycopg.connect(url) as conn:
        rows = [r[0] for r in conn.execute(sql.SQL("select record_key from {}").format(
            sql.Identifier("raw", f"{source}__{stream}")))]
        quarantined = conn.execute("select record_ref, reason, original from ops.quarantine where source = %s "
                                   "and stream = %s", (source, stream)).fetchall()
        unbalanced = conn.execute("select batch_id, status, received, loaded, duplicate, quarantined "
                                  "from ops.batches where status not in ('succeeded', 'failed') or "
                                  "received <> loaded + duplicate + quarantined or "
                                  "(status = 'failed' and received <> 0)").fetchall()
        per_batch = conn.execute(sql.SQL(
            "select b.batch_id, b.loaded, count(r.record_key) from ops.batches b left join {} r using (batch_id) "
            "where b.source = %s and b.stream = %s and b.status = 'succeeded' and b.batch_id > %s group by 1, 2 "
            "having b.loaded <> count(r.record_key)").format(sql.Identifier("raw", f"{source}__{stream}")),
            (source, stream, after_batch)).fetchall()
        orphans = conn.execute(sql.SQL(
            "select count(*) from {} r left join ops.batches b using (batch_id) "
            "where b.status is distinct from 'succeeded'").format(sql.Identifier("raw", f"{source}__{stream}"))
        ).fetchone()[0]
    assert unbalanced == [], f"{source}.{stream}: ledger rows that do not balance or were left running"
    assert per_batch == [] and orphans == 0, f"{source}.{stream}: raw rows not accounted for by their batch"
    assert all(reason for _, reason, _ in quarantined), "a quarantined record without its reason"
    q_keys = {_key_of(original, KEYS[stream]) for _, _, original in quarantined} - {None}
    keys = set(rows)
    assert not keys & q_keys, f"{source}.{stream}: records both loaded and quarantined: {sorted(keys & q_keys)[:5]}"
    assert keys | q_keys == expected, (f"{source}.{stream}: missing {sorted(expected - keys - q_keys)[:5]}, "
                                       f"not served {sorted((keys | q_keys) - expected)[:5]}")
    if not versions_ok:
        assert len(rows) == len(keys), f"{source}.{stream}: a record landed twice"
    return {"rows": len(rows), "keys": len(keys), "quarantined": len(quarantined)}


def inject_at(monkeypatch, sb, at: int, endpoint: str, faults: list[tuple[str, int, dict]]) -> None:
    """Inject the faults just before the `at`-th request of the run (retries are inside one request)."""
    original = HttpClient.request
    calls = {"n": 0}

    def request(self, *args, **kwargs):
        calls["n"] += 1
        if calls["n"] == at:
            for fault, count, opts in faults:
                sb.inject(endpoint, fault, count, **opts)
        return original(self, *args, **kwargs)

    monkeypatch.setattr(HttpClient, "request", request)


def test_the_matrix_covers_every_fault_the_sandbox_can_inject():
    assert {fault for faults in CASES.values() for fault, _, _ in faults} == set(HTTP_FAULTS)


@pytest.mark.parametrize("case", list(CASES))
@pytest.mark.parametrize("endpoint", list(ENDPOINTS))
def test_fault_on_every_source_reconciles_with_what_was_served(sb, db, monkeypatch, endpoint, case):
    source, stream, table, first = ENDPOINTS[endpoint]
    faults = CASES[case]
    fault = faults[0][0]
    if first:
        run(db, source, first)
    after_batch = 0
    if fault.startswith("drift_"):  # a clean run first, so the drifted one has a profile to differ from
        after_batch = max(run(db, source, stream)["batches"])
        with psycopg.connect(db, autocommit=True) as conn:
            conn.execute(sql.SQL("truncate {}").format(sql.Identifier("raw", f"{source}__{stream}")))
            conn.execute("delete from ops.stream_state where source = %s and stream = %s", (source, stream))
    if fault == "429" and endpoint.startswith("facebook"):
        faults = [("429", 1, {"code": 613, "retry_after_minutes": 1})]  # HTTP 400, error code 613, 60 s to wait
    if fault == "slow":
        monkeypatch.setitem(HttpClient.__init__.__kwdefaults__, "timeout", SLOW_TIMEOUT)
    inject_at(monkeypatch, sb, AT.get(endpoint, 2), endpoint, faults)

    expected_error = {"bad_auth": AuthError, "malformed_persistent": MalformedResponse}.get(case)
    if case == "429" and endpoint.split(".")[0] in ("facebook", "linkedin"):
        expected_error = RateLimitDeferred  # 60 s (Facebook) or until midnight UTC (LinkedIn): give the worker back
    if expected_error is not None:
        with pytest.raises(expected_error) as info:
            run(db, source, stream)
        assert source in str(info.value) or (getattr(info.value, "conn_id", None) == source)
        # a failed or deferred run leaves only whole, committed batches behind
        reconcile_partial(db, source, stream, after_batch)
        sb.clear_faults()
        stats = run(db, source, stream)  # resumes from the saved position
    else:
        stats = run(db, source, stream)
    served_faults = {f["fault"] for f in sb.faults.log if f["endpoint"] == endpoint}
    assert served_faults >= {f for f, _, _ in faults}, f"the {case} fault was never served"
    sb.faults.log.clear()
    assert stats["received"] == stats["loaded"] + stats["duplicate"] + stats["quarantined"]
    if case in ("429", "5xx", "slow", "drop", "malformed") and expected_error is None:
        # (a Qualtrics export file that cannot be read is exported again rather than retried)
        assert stats["retries"] >= 1 or (endpoint == "qualtrics.export" and stats["requests"] > 4)
    result = reconcile(db, sb, source, stream, table, after_batch=after_batch)
    assert result["rows"] > 0
    if fault == "repeat" and endpoint not in ("x.mentions", "facebook.feed", "linkedin.posts"):
        assert stats["duplicate"] >= 1 or stats["pages"] > 1
    if fault.startswith("drift_"):
        with psycopg.connect(db) as conn:
            drift = conn.execute("select field, change from ops.schema_drift where source = %s and stream = %s",
                                 (source, stream)).fetchall()
        change = {"drift_new_field": "appeared", "drift_missing_field": "disappeared",
                  "drift_type_change": "type_changed"}[fault]
        assert any(c == change for _, c in drift), f"{source}.{stream}: {fault} not recorded: {drift}"
        if fault == "drift_new_field":
            assert ("sandbox_new_field", "appeared") in drift or ("values.sandbox_new_field", "appeared") in drift


def reconcile_partial(url, source: str, stream: str, after_batch: int = 0) -> None:
    """After a failed or deferred run: no batch left running, every raw row is in a succeeded batch that
    counts it, the failed try is in the ledger with nothing received, and the saved resume position (if
    any) belongs to the last committed batch."""
    with psycopg.connect(url) as conn:
        statuses = dict(conn.execute("select status, count(*) from ops.batches where source = %s and stream = %s"
                                     " group by 1", (source, stream)).fetchall())
        assert "running" not in statuses
        loaded = conn.execute("select coalesce(sum(loaded), 0) from ops.batches where source = %s and stream = %s"
                              " and status = 'succeeded' and batch_id > %s", (source, stream, after_batch)
                              ).fetchone()[0]
        rows = conn.execute(sql.SQL("select count(*) from {}").format(
            sql.Identifier("raw", f"{source}__{stream}"))).fetchone()[0]
        assert rows == loaded
        state = conn.execute("select cursor, batch_id from ops.stream_state where source = %s and stream = %s",
                             (source, stream)).fetchone()
        if state is not None and state[1] is not None:
            last = conn.execute("select max(batch_id) from ops.batches where source = %s and stream = %s and "
                                "status = 'succeeded'", (source, stream)).fetchone()[0]
            assert state[1] == last
            assert state[0].get("resume") is None or state[0]["resume"]["position"] is not None


# ------------------------------------------------------------------------------------------ SIGKILL

KILLED_LOADER = textwrap.dedent("""
    import json, os, sys, time
    from datetime import datetime
    import crm_warehouse.sources.runner as runner
    from crm_warehouse.http import RetryPolicy
    from crm_warehouse.sources import run_stream
    from crm_warehouse.sources.base import ConnInfo, base_url_of

    def connection_info(conn_id):  # the env's Airflow connection, without importing Airflow (seconds)
        c = json.loads(os.environ["AIRFLOW_CONN_" + conn_id.upper()])
        return ConnInfo(conn_id, base_url_of(c.get("host"), c.get("schema"), c.get("port")), c.get("login"),
                        c.get("password"), c.get("extra") or {})

    runner.connection_info = connection_info
    pause_at, marker = int(sys.argv[1]), sys.argv[2]
    real_write_batch, batches = runner.write_batch, []

    def write_batch(conn, source, stream, records, **kw):
        batches.append(stream)
        if len(batches) != pause_at:
            return real_write_batch(conn, source, stream, records, **kw)

        def halfway():  # stop in the middle of the COPY of this batch, its transaction open
            records_list = list(records)
            for i, rec in enumerate(records_list):
                if i == len(records_list) // 2:
                    open(marker, "w").write(str(len(records_list)))
                    time.sleep(120)
                yield rec

        return real_write_batch(conn, source, stream, halfway(), **kw)

    if pause_at:
        runner.write_batch = write_batch
    start, end = (datetime.fromisoformat(a) for a in sys.argv[3:5])
    run_stream("phone_system", "calls", start, end, warehouse_url=sys.argv[5], flush_records=int(sys.argv[6]),
               retry_policy=RetryPolicy(backoff_base=0.01, max_wait=5.0))
""")


def _batches(url) -> list[tuple]:
    with psycopg.connect(url) as conn:
        return conn.execute("select batch_id, status, received, loaded from ops.batches where stream = 'calls' "
                            "order by batch_id").fetchall()


@pytest.mark.parametrize("mode", ["in_copy", "between_pages"])
def test_loader_killed_with_sigkill_mid_batch_then_rerun_loses_and_duplicates_nothing(sb, db, tmp_path, monkeypatch,
                                                                                     mode):
    """The loader runs in its own process over the whole world (pages of 10 calls, a batch every 20
    records). `in_copy`: it is killed while half of its 3rd batch has been sent by COPY (transaction open).
    `between_pages`: killed once two batches are committed, wherever it then is (pages are slowed down).
    The re-run resumes from the last committed position; nothing is lost, nothing lands twice, no batch
    is left 'running' (the ledger row is written in the batch's own transaction)."""
    marker = tmp_path / "paused"
    conn = json.loads(os.environ["AIRFLOW_CONN_PHONE_SYSTEM"])
    conn["extra"]["page_size"] = 10
    monkeypatch.setenv("AIRFLOW_CONN_PHONE_SYSTEM", json.dumps(conn))
    pause_at = 3 if mode == "in_copy" else 0
    if mode == "between_pages":
        sb.inject("twilio.calls", "slow", 50, seconds=0.3)
    proc = subprocess.Popen(
        [sys.executable, "-c", KILLED_LOADER, str(pause_at), str(marker), WINDOW[0].isoformat(),
         WINDOW[1].isoformat(), db, "20"],
        cwd=ROOT, env={**os.environ, "PYTHONPATH": os.pathsep.join(
            [str(ROOT / "plugins"), str(ROOT), os.environ.get("PYTHONPATH", "")])},
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and proc.poll() is None:
            if mode == "in_copy" and marker.exists():
                break
            if mode == "between_pages" and _has_batches(db, 2):
                break
            time.sleep(0.02)
        assert proc.poll() is None, f"the loader ended before it was killed: {proc.stdout.read().decode()[-2000:]}"
        if mode == "in_copy":
            assert marker.exists(), "the loader never reached its 3rd batch"
        proc.send_signal(signal.SIGKILL)
        proc.wait(10)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    sb.clear_faults()
    assert proc.returncode == -signal.SIGKILL
    _wait_for_backend_gone(db)

    before = _batches(db)
    assert before and all(status == "succeeded" for _, status, _, _ in before), before
    if mode == "in_copy":
        assert len(before) == 2, "the batch being copied when the loader was killed must not be committed"
    reconcile_partial(db, "phone_system", "calls")
    with psycopg.connect(db) as conn:
        resume = conn.execute("select cursor->'resume' from ops.stream_state where stream = 'calls'").fetchone()[0]
    assert resume and resume["window"] == [f"{WINDOW[0]:%Y-%m-%dT%H:%M:%SZ}", f"{WINDOW[1]:%Y-%m-%dT%H:%M:%SZ}"]

    stats = run(db, "phone_system", "calls", flush_records=20)
    after = _batches(db)
    assert after[: len(before)] == before, "the re-run changed what the killed run had committed"
    assert stats["loaded"] > 0
    result = reconcile(db, sb, "phone_system", "calls", "s_calls")
    assert result["rows"] == sum(loaded for *_, loaded in after)
    again = run(db, "phone_system", "calls")
    assert again["loaded"] == 0 and again["duplicate"] == again["received"] == result["rows"]


def _has_batches(url, n: int) -> bool:
    try:
        with psycopg.connect(url) as conn:
            return conn.execute("select count(*) from ops.batches where stream = 'calls' and status = 'succeeded'"
                                ).fetchone()[0] >= n
    except psycopg.Error:  # the ops tables are not created yet
        return False


def _wait_for_backend_gone(url, timeout: float = 10.0) -> None:
    """The killed loader's PostgreSQL backend rolls back when it sees the closed socket."""
    name = url.rsplit("/", 1)[1]
    deadline = time.monotonic() + timeout
    with psycopg.connect(url, autocommit=True) as conn:
        while time.monotonic() < deadline:
            busy = conn.execute("select count(*) from pg_stat_activity where datname = %s and pid <> "
                                "pg_backend_pid() and application_name = 'crm_warehouse'", (name,)).fetchone()[0]
            if not busy:
                return
            time.sleep(0.05)
    raise AssertionError("the killed loader's database session is still open")
