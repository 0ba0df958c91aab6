"""Drill (heavy): an Airflow task process killed with SIGKILL on a Celery worker while its COPY runs.

The docker-compose deployment's processes on this machine (api-server, scheduler, dag-processor,
triggerer, one Celery worker; Redis broker; PostgreSQL metadata), `extract_phone_system` triggered over
the whole world. The test watches the warehouse: when a `COPY` of the calls task is running, it finds the
process on this machine that holds that database connection (a task process forked by the Celery worker)
and kills it with SIGKILL, its transaction open. Airflow must then retry the task by itself (the DAGs'
`retries`), the run succeed, and raw reconcile with what the sandbox served: nothing lost, nothing
twice, the killed batch nowhere."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
import uuid
from datetime import UTC, datetime, timedelta

import psutil
import psycopg
import pytest
from crm_warehouse import runtime

from tests.drills.reconcile import reconcile

pytestmark = [pytest.mark.drill, pytest.mark.heavy]

WORLD = {"seed": 31, "customers": 20000, "days": 5, "start": "2026-09-01"}  # thousands of calls: a long COPY
START = datetime(2026, 9, 1, tzinfo=UTC)
END = START + timedelta(days=WORLD["days"])
DAG = "extract_phone_system"
# the machine's Redis may be shared (the scale-out test uses db 7, the pipeline benchmark db 8): a database
# index of its own, and a queue of its own, so no other cluster's worker takes this drill's tasks
REDIS = "redis://127.0.0.1:6379/11"






def _copy_in_progress(warehouse: str) -> tuple[int, str] | None:
    """(client port, query) of a COPY into raw running now in the warehouse, if any."""
    with psycopg.connect(warehouse, autocommit=True) as conn:
        row = conn.execute("select client_port, query from pg_stat_activity where datname = current_database() "
                           "and pid <> pg_backend_pid() and state = 'active' and query ilike 'copy %%'").fetchone()
    return row


def _process_on_port(port: int) -> psutil.Process | None:
    for c in psutil.net_connections(kind="tcp"):
        if c.laddr and c.laddr.port == port and c.pid:
            return psutil.Process(c.pid)
    return None


def test_task_killed_mid_copy_on_a_celery_worker_is_retried_by_airflow(pg_server_url, tmp_path):
    import redis

    from sandbox.serve import Sandbox
    from sandbox.world import generate

    broker = redis.Redis.from_url(REDIS, socket_connect_timeout=3)
    try:
        broker.ping()
    except redis.exceptions.ConnectionError:
        pytest.fail("Redis is not answering on 127.0.0.1:6379: this drill needs the broker "
                    "(start it with `redis-server --daemonize yes`)")
    generate(tmp_path / "world", **WORLD)
    box = Sandbox(tmp_path / "world", sftp=False).start()
    metadata_url = runtime.create_database(pg_server_url, "crm_drill_meta")
    warehouse = runtime.create_database(pg_server_url, "crm_drill_wh")
    cluster = None
    try:
        connections = {**box.connections, "warehouse": runtime.warehouse_connection(warehouse)}
        base = runtime.airflow_env(connections, home=tmp_path / "home")
        env = runtime.celery_env(base, metadata_url=metadata_url, broker_url=REDIS, api_port=runtime.free_port())
        env["AIRFLOW__OPERATORS__DEFAULT_QUEUE"] = f"drill_{uuid.uuid4().hex[:8]}"  # the worker listens on it
        runtime.migrate_metadata(env, tmp_path / "logs" / "migrate.log")
        cluster = runtime.LocalCluster(env, tmp_path / "logs", workers=1).start()

        def airflow(*args: str) -> str:
            proc = subprocess.run([runtime.airflow_bin(), *args], env=env, capture_output=True, text=True,
                                  timeout=300)
            assert proc.returncode == 0, f"airflow {' '.join(args)}:\n{proc.stdout[-2000:]}\n{proc.stderr[-2000:]}"
            return proc.stdout

        deadline = time.monotonic() + 300
        while True:
            with psycopg.connect(metadata_url) as conn:
                if conn.execute("select 1 from serialized_dag where dag_id = %s", (DAG,)).fetchone():
                    break
            assert time.monotonic() < deadline, f"{DAG} not parsed; see {cluster.log_dir}/dag-processor.log"
            cluster.check_alive()
            time.sleep(2)

        run_id = f"drill_sigkill__{uuid.uuid4().hex[:6]}"
        airflow("dags", "unpause", DAG)
        airflow("dags", "trigger", DAG, "--run-id", run_id, "--logical-date", END.isoformat(), "--conf",
                json.dumps({"window_start": (START - timedelta(days=7)).isoformat(), "window_end": END.isoformat()}))

        # watch for the COPY of the calls task, then kill the process that holds its connection
        worker = psutil.Process(cluster.procs["worker1"].pid)
        killed = None
        deadline = time.monotonic() + 900
        while killed is None:
            assert time.monotonic() < deadline, f"no COPY seen in the warehouse; logs in {cluster.log_dir}"
            cluster.check_alive()
            try:
                copy = _copy_in_progress(warehouse)
            except psycopg.Error:
                copy = None
            if copy is None:  # (the first COPY of the run is the calls task's: dispositions wait for it)
                time.sleep(0.01)
                continue
            proc = _process_on_port(copy[0])
            if proc is None:
                continue
            assert worker.pid in [p.pid for p in proc.parents()], \
                f"the COPY's client {proc.pid} ({proc.cmdline()[:3]}) is not a process of the Celery worker"
            os.kill(proc.pid, signal.SIGKILL)
            killed = (proc.pid, copy[1])

        with psycopg.connect(warehouse) as conn:  # the killed try committed nothing
            deadline = time.monotonic() + 30
            while conn.execute("select count(*) from pg_stat_activity where datname = current_database() and "
                               "client_port = %s", (copy[0],)).fetchone()[0]:
                assert time.monotonic() < deadline, "the killed task's session never ended"
                time.sleep(0.1)
                conn.rollback()

        # Airflow retries the task by itself
        deadline = time.monotonic() + 900
        while True:
            cluster.check_alive()
            with psycopg.connect(metadata_url) as conn:
                state = conn.execute("select state from dag_run where run_id = %s", (run_id,)).fetchone()[0]
                tries = dict(conn.execute("select task_id, try_number from task_instance where run_id = %s",
                                          (run_id,)).fetchall())
            if state in ("success", "failed"):
                break
            assert time.monotonic() < deadline, f"run still {state}; tries {tries}; logs in {cluster.log_dir}"
            time.sleep(3)
        assert state == "success", f"the run {state} after the kill; tries {tries}; logs in {cluster.log_dir}"
        assert tries["phone_system.calls"] >= 2, f"the killed task was not retried: {tries}"

        with psycopg.connect(warehouse) as conn:
            batches = conn.execute("select status, count(*), sum(loaded) from ops.batches where stream = 'calls' "
                                   "group by 1").fetchall()
        assert {s for s, _, _ in batches} <= {"succeeded", "failed"}, batches
        results = {stream: reconcile(warehouse, box.db_path, box.clock_ts, "phone_system", stream)
                   for stream in ("calls", "dispositions")}
        for stream, result in results.items():
            result.assert_exact(f"phone_system.{stream} after the SIGKILL")
            assert result.landed == result.served > 0
        calls = results["calls"]
        assert calls.served > 2000, "too few calls for a COPY long enough to be caught"
        print(f"DRILL worker_sigkill: faults=1 killed_pid={killed[0]} tries={tries['phone_system.calls']} "
              f"served={calls.served + results['dispositions'].served} lost=0 duplicated=0 batches={batches}")
    finally:
        if cluster:
            cluster.stop()
        box.stop()
        runtime.drop_database(pg_server_url, warehouse)
        runtime.drop_database(pg_server_url, metadata_url)
