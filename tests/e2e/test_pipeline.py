"""End to end: every DAG run through Airflow (`airflow dags test`) against the sandbox vendors and a real
PostgreSQL, then the marts checked against the sandbox's ground truth, then the whole thing run again to
prove that a re-run changes nothing."""

from __future__ import annotations

import os
import re
import sqlite3
from datetime import UTC, datetime, timedelta

import psycopg
import pytest
from crm_warehouse import runtime
from psycopg import sql

# a failure drill (`make drills`), essential: also in `make test`
pytestmark = pytest.mark.drill

WORLD = {"seed": 11, "customers": 300, "days": 10, "start": "2026-09-01"}
START = datetime(2026, 9, 1, tzinfo=UTC)
END = START + timedelta(days=WORLD["days"])


@pytest.fixture(scope="module")
def pipeline(world_dir, warehouse, tmp_path_factory):
    """Runs every DAG once; yields a function that runs them all again."""
    from e2e_support import AirflowRunner

    from sandbox.serve import Sandbox

    home = tmp_path_factory.mktemp("crm-home")
    box = Sandbox(world_dir)
    box.start()
    airflow = AirflowRunner(box, warehouse, home)

    def run_all(tag: str) -> list[runtime.DagRunResult]:
        results = []
        for dag_id in runtime.ALL_DAGS:
            result = airflow.run(dag_id, logical_date=END, window=(START, END), tag=tag)
            assert result.ok, f"{dag_id} failed ({result.failed_tasks}); log {result.log}:\n{result.message}"
            results.append(result)
        return results

    first = run_all("first")
    try:
        yield {"first": first, "run_all": run_all, "home": home, "sandbox": box, "airflow": airflow}
    finally:
        box.stop()


def _truth(world_dir, query: str, params=()):
    with sqlite3.connect(world_dir / "world.db") as db:
        return db.execute(query, params).fetchall()


def _one(url: str, query: str, params=()):
    with psycopg.connect(url) as conn:
        return conn.execute(query, params).fetchone()


def test_every_served_record_landed_exactly_once_or_was_quarantined(pipeline, world_dir, warehouse):
    truth = _truth(world_dir, "select source, stream, count(*) from truth_records group by 1, 2")
    assert truth, "the sandbox wrote no ground truth"
    with psycopg.connect(warehouse) as conn:
        for source, stream, expected in truth:
            table = f"{source}__{stream}"
            exists = conn.execute("select to_regclass(%s) is not null", (f"raw.{table}",)).fetchone()[0]
            assert exists, f"raw.{table} was never created"
            distinct = conn.execute(f'select count(distinct record_key) from raw."{table}"').fetchone()[0]
            quarantined = conn.execute("select count(*) from ops.quarantine where source = %s and stream = %s",
                                       (source, stream)).fetchone()[0]
            assert distinct + quarantined == expected, f"{table}: {distinct} landed + {quarantined} quarantined " \
                                                       f"!= {expected} served"


def test_batch_ledger_balances(pipeline, warehouse):
    bad = _one(warehouse, "select count(*) from ops.batches where received <> loaded + duplicate + quarantined")
    assert bad == (0,)


def test_customers_resolved_close_to_the_truth(pipeline, world_dir, warehouse):
    people = _truth(world_dir, "select count(distinct person_id) from truth_records where person_id is not null")[0][0]
    customers = _one(warehouse, "select count(*) from marts.dim_customers")[0]
    # anonymous social accounts stay separate customers, so the count is at least the people reached...
    assert customers >= 0.9 * people, (customers, people)
    # ...and resolution merged most records: far fewer customers than source records
    records = _truth(world_dir, "select count(*) from truth_records")[0][0]
    assert customers < 0.5 * records, (customers, records)


# the world names channels after its vendors; the marts after the customer's channel
MART_CHANNEL = {"phone_outsourced": "call_center", "social_x": "x", "social_facebook": "facebook",
                "social_linkedin": "linkedin"}


def test_complaints_per_channel_match_the_truth(pipeline, world_dir, warehouse):
    truth: dict[str, int] = {}
    for channel, n in _truth(world_dir, "select channel, count(*) from truth_complaints "
                                        "where opened_at < ? group by 1", (END.isoformat(),)):
        truth[MART_CHANNEL.get(channel, channel)] = truth.get(MART_CHANNEL.get(channel, channel), 0) + n
    with psycopg.connect(warehouse) as conn:
        found = dict(conn.execute("select channel, count(*) from marts.fct_complaints group by 1").fetchall())
    assert set(found) >= {c for c, n in truth.items() if n > 0}, (found, truth)
    total_truth, total_found = sum(truth.values()), sum(found.values())
    assert abs(total_found - total_truth) <= 0.1 * total_truth, (found, truth)
    for channel, n in truth.items():
        if n >= 10:  # per channel too, where there are enough to compare
            assert abs(found.get(channel, 0) - n) <= max(2, 0.2 * n), (channel, found, truth)


def test_bi_reader_reads_marts_and_nothing_else(pipeline, warehouse):
    with psycopg.connect(warehouse) as conn:
        conn.execute("set role bi_reader")
        assert conn.execute("select count(*) from marts.fct_complaints").fetchone()[0] > 0
        for relation in ("raw.phone_system__calls", "ops.batches"):
            with pytest.raises(psycopg.errors.InsufficientPrivilege):
                with conn.transaction():
                    conn.execute(f"select 1 from {relation} limit 1")


def test_second_run_changes_nothing(pipeline, warehouse):
    def snapshot():
        with psycopg.connect(warehouse) as conn:
            raw = conn.execute("""
                select table_name from information_schema.tables where table_schema = 'raw' order by 1
            """).fetchall()
            counts = {t: conn.execute(f'select count(*) from raw."{t}"').fetchone()[0] for (t,) in raw}
            counts["customers"] = conn.execute("select count(*) from marts.dim_customers").fetchone()[0]
            counts["complaints"] = conn.execute("select count(*) from marts.fct_complaints").fetchone()[0]
            counts["customer_ids"] = conn.execute(
                "select md5(string_agg(customer_id::text, ',' order by customer_id)) from marts.dim_customers"
            ).fetchone()[0]
            return counts

    before = snapshot()
    last_batch = _one(warehouse, "select max(batch_id) from ops.batches")[0]
    pipeline["run_all"]("second")
    assert snapshot() == before
    loaded_again = _one(warehouse, "select coalesce(sum(loaded), 0) from ops.batches where batch_id > %s",
                        (last_batch,))[0]
    assert loaded_again == 0


def test_docs_are_built(pipeline):
    docs = pipeline["home"] / "docs"
    assert (docs / "data_docs" / "index.html").exists()
    assert (docs / "dbt" / "index.html").exists()
    assert "fct_complaints" in (docs / "dbt" / "index.html").read_text()
    report = (docs / "report" / "index.html").read_text()
    assert "Complaints" in report and "plotly" in report.lower()


def test_a_failing_model_fails_the_run_naming_the_model(pipeline, warehouse, tmp_path):
    """The whole project is one `dbt build` task: a model that fails fails that task and the run, the log
    names the model, and nothing downstream runs (BI keeps the marts). The fault: a column added by hand to
    an incremental model that refuses schema changes (`on_schema_change='fail'`)."""
    import json

    from crm_warehouse.settings import dbt_project_dir

    manifest = json.loads((dbt_project_dir() / "target" / "manifest.json").read_text())
    strict = sorted((n["schema"], n["name"]) for n in manifest["nodes"].values()
                    if n["resource_type"] == "model" and n["config"].get("on_schema_change") == "fail")
    assert strict, "no incremental model with on_schema_change='fail' to break"
    schema, model = strict[0]
    table = sql.Identifier(schema, model)
    complaints = _one(warehouse, "select count(*) from marts.fct_complaints")
    with psycopg.connect(warehouse, autocommit=True) as conn:
        conn.execute(sql.SQL("alter table {} add column added_by_hand int").format(table))
    # no retries in this run (a cluster policy of Airflow's): the DAG's retries would rebuild twice more,
    # minutes apart, before the run fails
    airflow = pipeline["airflow"]
    (tmp_path / "airflow_local_settings.py").write_text("def task_policy(task):\n    task.retries = 0\n")
    env = {**airflow.env, "PYTHONPATH": os.pathsep.join(filter(None, [str(tmp_path), airflow.env.get("PYTHONPATH")]))}
    try:
        result = runtime.dags_test(runtime.TRANSFORM_DAG, logical_date=END, window=(START, END), env=env,
                                   log=airflow.home / "logs" / f"broken-model-{runtime.TRANSFORM_DAG}.log")
    finally:
        with psycopg.connect(warehouse, autocommit=True) as conn:
            conn.execute(sql.SQL("alter table {} drop column added_by_hand").format(table))
    assert not result.ok, f"the run succeeded with a failing model; log {result.log}"
    states = airflow.task_states(result)
    assert states["dbt_build"] == "failed", states
    assert states["enrich"] == "success" and states["quality_gate"] != "success" and states["publish"] != "success"
    log = result.log.read_text(errors="replace")
    assert re.search(rf"dbt invocation completed with errors: .*\b{model}\b", log), \
        f"the failure does not name {model}; log {result.log}:\n{result.message}"
    assert _one(warehouse, "select count(*) from marts.fct_complaints") == complaints


def _secrets_of(connections: dict[str, dict]) -> dict[str, str]:
    """Every credential the sandbox hands out, by kind, from its connection config; with the forms it
    travels in (Basic auth header, URL-encoded query parameter)."""
    import base64
    from urllib.parse import quote

    found: dict[str, str] = {}
    for conn_id, conn in connections.items():
        kind = "SFTP password" if conn.get("conn_type") == "sftp" else \
            "API password (auth token)" if conn.get("login") else "API token"
        values = {"password": conn.get("password")}
        values.update({k: v for k, v in (conn.get("extra") or {}).items()
                       if any(w in k.lower() for w in ("token", "secret", "password", "api_key"))})
        for field, secret in values.items():
            if not isinstance(secret, str) or len(secret) < 8:
                continue
            name = f"{conn_id} {kind if field == 'password' else field}"
            found[name] = secret
            if quote(secret, safe="") != secret:
                found[f"{name}, URL-encoded"] = quote(secret, safe="")
            if conn.get("login"):
                basic = base64.b64encode(f"{conn['login']}:{secret}".encode()).decode()
                found[f"{name}, in a Basic auth header"] = basic
    return found


def test_no_credential_of_the_sandbox_appears_in_any_log(pipeline):
    """Runs last: scans the logs of both full runs (each DAG's `airflow dags test` output with every task's
    log, and whatever Airflow wrote under its home) for every credential the sandbox uses."""
    secrets = _secrets_of(pipeline["sandbox"].connections)
    assert any("SFTP password" in k for k in secrets) and len(secrets) >= 7, sorted(secrets)
    home = pipeline["home"]
    logs = [p for p in home.rglob("*") if p.is_file() and (p.suffix == ".log" or "logs" in p.relative_to(home).parts)]
    text_of = {p: p.read_text(errors="replace") for p in logs}
    # the scan covers the tasks' own log lines, not only Airflow's
    assert any("phone_system.calls [" in t for t in text_of.values()), f"no task log among {len(logs)} files"
    assert any("feed call_center_cdr" in t for t in text_of.values()), "the SFTP task's log is not scanned"
    leaks = [f"{p} holds the {kind}" for p, t in text_of.items() for kind, secret in secrets.items() if secret in t]
    assert leaks == [], "credentials in the logs:\n" + "\n".join(leaks)
