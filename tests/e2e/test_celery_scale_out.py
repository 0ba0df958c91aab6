"""Scale-out for real: the docker-compose deployment's processes started on this machine (api-server,
scheduler, dag-processor, triggerer, two Celery workers, Redis as broker, PostgreSQL for metadata), the
whole pipeline triggered, every task succeeds, and tasks ran on both workers."""

from __future__ import annotations

import json
import socket
import subprocess
import time
import uuid
from datetime import UTC, datetime, timedelta

import psycopg
import pytest
from crm_warehouse import runtime
from psycopg import sql

WORLD = {"seed": 5, "customers": 150, "days": 5, "start": "2026-09-01"}
START = datetime(2026, 9, 1, tzinfo=UTC)
END = START + timedelta(days=WORLD["days"])
REDIS = ("127.0.0.1", 6379)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def redis_db():
    """A Redis database index of our own, emptied first (the machine's Redis is shared)."""
    import redis

    client = redis.Redis(*REDIS, db=7, socket_connect_timeout=3)
    try:
        client.ping()
    except redis.exceptions.ConnectionError:
        pytest.fail("Redis is not answering on 127.0.0.1:6379: the scale-out test needs the broker "
                    "(start it with `redis-server --daemonize yes`)")
    client.flushdb()
    yield f"redis://{REDIS[0]}:{REDIS[1]}/7"
    client.flushdb()


def _new_db(server_url: str, prefix: str) -> str:
    name = f"{prefix}_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(server_url, autocommit=True) as conn:
        conn.execute(sql.SQL("create database {}").format(sql.Identifier(name)))
    return server_url.rsplit("/", 1)[0] + f"/{name}"


def _drop_db(server_url: str, url: str) -> None:
    with psycopg.connect(server_url, autocommit=True) as conn:
        conn.execute(sql.SQL("drop database if exists {} with (force)").format(sql.Identifier(url.rsplit("/", 1)[1])))


def _wait_runs(metadata_url: str, runs: dict[str, str], cluster: runtime.LocalCluster, timeout: float) -> dict:
    deadline = time.monotonic() + timeout
    states: dict[str, str] = {}
    while time.monotonic() < deadline:
        cluster.check_alive()
        with psycopg.connect(metadata_url) as conn:
            rows = conn.execute("select dag_id, state from dag_run where run_id = any(%s)",
                                (list(runs.values()),)).fetchall()
        states = dict(rows)
        if len(states) == len(runs) and all(s in ("success", "failed") for s in states.values()):
            return states
        time.sleep(3)
    raise AssertionError(f"runs did not finish in {timeout:.0f} s: {states}; logs in {cluster.log_dir}")


def test_pipeline_on_two_celery_workers(pg_server_url, redis_db, tmp_path):
    from sandbox.serve import Sandbox
    from sandbox.world import generate

    generate(tmp_path / "world", **WORLD)
    box = Sandbox(tmp_path / "world")
    box.start()
    metadata_url = _new_db(pg_server_url, "crm_airflow_meta")
    warehouse_url = _new_db(pg_server_url, "crm_celery_wh")
    cluster = None
    try:
        connections = {**box.connections, "warehouse": runtime.warehouse_connection(warehouse_url)}
        base = runtime.airflow_env(connections, home=tmp_path / "home")
        env = runtime.celery_env(base, metadata_url=metadata_url, broker_url=redis_db, api_port=_free_port())
        runtime.migrate_metadata(env, tmp_path / "logs" / "migrate.log")
        runtime.dbt_parse(env, tmp_path / "logs" / "dbt-parse.log")
        cluster = runtime.LocalCluster(env, tmp_path / "logs", workers=2).start()

        def airflow(*args: str) -> str:
            proc = subprocess.run([runtime.airflow_bin(), *args], env=env, capture_output=True, text=True,
                                  timeout=300)
            assert proc.returncode == 0, f"airflow {' '.join(args)}:\n{proc.stdout[-2000:]}\n{proc.stderr[-2000:]}"
            return proc.stdout

        # wait until the dag-processor has serialized every DAG
        deadline = time.monotonic() + 240
        while True:
            with psycopg.connect(metadata_url) as conn:
                known = {r[0] for r in conn.execute("select dag_id from serialized_dag").fetchall()}
            if set(runtime.ALL_DAGS) <= known:
                break
            assert time.monotonic() < deadline, f"DAGs not parsed: {known}; see {cluster.log_dir}/dag-processor.log"
            cluster.check_alive()
            time.sleep(3)

        conf = json.dumps({"window_start": START.isoformat(), "window_end": END.isoformat()})

        def trigger(dag_ids: list[str]) -> dict[str, str]:
            runs = {}
            for dag_id in dag_ids:
                run_id = f"scale_out__{dag_id}"
                airflow("dags", "unpause", dag_id)
                airflow("dags", "trigger", dag_id, "--run-id", run_id, "--conf", conf,
                        "--logical-date", END.isoformat())
                runs[dag_id] = run_id
            return runs

        extract = trigger(runtime.EXTRACT_DAGS)
        states = _wait_runs(metadata_url, extract, cluster, timeout=900)
        assert set(states.values()) == {"success"}, states
        transform = trigger([runtime.TRANSFORM_DAG])
        states = _wait_runs(metadata_url, transform, cluster, timeout=1200)
        assert states == {runtime.TRANSFORM_DAG: "success"}, f"{states}; logs in {cluster.log_dir}"

        with psycopg.connect(metadata_url) as conn:
            by_state = dict(conn.execute(
                "select state, count(*) from task_instance where run_id like 'scale_out__%%' group by 1").fetchall())
            hosts = dict(conn.execute(
                "select hostname, count(*) from task_instance where run_id like 'scale_out__%%' "
                "and state = 'success' group by 1").fetchall())
        assert set(by_state) <= {"success", "skipped"}, by_state
        assert {"worker1", "worker2"} <= set(hosts), f"tasks per worker: {hosts}"
        with psycopg.connect(warehouse_url) as conn:
            assert conn.execute("select count(*) from marts.fct_interactions").fetchone()[0] > 0
        print(f"tasks per worker: {hosts}")
    finally:
        if cluster:
            cluster.stop()
        box.stop()
        _drop_db(pg_server_url, warehouse_url)
        _drop_db(pg_server_url, metadata_url)

