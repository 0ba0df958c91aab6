"""Run the project's DAGs through Airflow on this machine: the environment Airflow needs (home, DAG folder,
connections as `AIRFLOW_CONN_*`), and `airflow dags test` invocations with their logs kept on disk.

Used by the `crm` command (demo, airflow) and the end-to-end tests. Production deployments (docker-compose)
set the same variables in their own way.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from urllib.parse import unquote, urlsplit

from crm_warehouse.settings import PROJECT_ROOT, crm_home, dbt_env, dbt_project_dir

EXTRACT_DAGS = ["extract_phone_system", "extract_survey_vendor", "extract_web_forms", "extract_social",
                "extract_sftp_drops"]
TRANSFORM_DAG = "transform_warehouse"
ALL_DAGS = [*EXTRACT_DAGS, TRANSFORM_DAG]

QUIET = {
    "AIRFLOW__COSMOS__ENABLE_TELEMETRY": "false",
    "GX_ANALYTICS_ENABLED": "false",
    "DBT_SEND_ANONYMOUS_USAGE_STATS": "false",
    "DO_NOT_TRACK": "1",
    "SCARF_ANALYTICS": "false",
}


def warehouse_connection(url: str) -> dict:
    """Airflow connection JSON for a libpq URL. A password is always set because dbt's profile mapping
    requires one (the embedded server uses trust authentication on loopback and ignores it)."""
    parts = urlsplit(url)
    return {
        "conn_type": "postgres",
        "host": parts.hostname or "127.0.0.1",
        "port": parts.port or 5432,
        "login": unquote(parts.username or "postgres"),
        "password": unquote(parts.password or "") or "crm-local",
        "schema": (parts.path or "/crm").lstrip("/") or "crm",
    }


def airflow_env(connections: dict[str, dict], *, home: Path | None = None) -> dict[str, str]:
    """The environment for Airflow commands: our DAG folder, a local metadata database, the connections."""
    home = home or crm_home()
    airflow_home = home / "airflow"
    env = dict(os.environ)
    env.update(QUIET)
    env.update({
        "CRM_HOME": str(home),
        "AIRFLOW_HOME": str(airflow_home),
        "AIRFLOW__CORE__DAGS_FOLDER": str(PROJECT_ROOT / "dags"),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION": "True",
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": env.get("AIRFLOW__DATABASE__SQL_ALCHEMY_CONN")
        or f"sqlite:///{airflow_home / 'airflow.db'}",
        "AIRFLOW__SCHEDULER__CREATE_CRON_DATA_INTERVALS": "True",
        "AIRFLOW__LOGGING__BASE_LOG_FOLDER": str(airflow_home / "logs"),
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}",
    })
    for conn_id, conn in connections.items():
        env[f"AIRFLOW_CONN_{conn_id.upper()}"] = json.dumps(conn)
    return env


def airflow_bin() -> str:
    return str(Path(sys.executable).parent / "airflow")


def migrate_metadata(env: dict[str, str], log: Path) -> None:
    """Create or upgrade Airflow's metadata database (idempotent)."""
    Path(env["AIRFLOW_HOME"]).mkdir(parents=True, exist_ok=True)
    _run([airflow_bin(), "db", "migrate"], env, log, what="airflow db migrate")


def dbt_parse(env: dict[str, str], log: Path) -> Path:
    """Write dbt_project/target/manifest.json, from which Cosmos renders the transform DAG cheaply."""
    from psycopg.conninfo import make_conninfo

    conn = json.loads(env["AIRFLOW_CONN_WAREHOUSE"])
    conninfo = make_conninfo(host=conn["host"], port=conn["port"], user=conn["login"], password=conn["password"],
                             dbname=conn["schema"])
    project = dbt_project_dir()
    _run([str(Path(sys.executable).parent / "dbt"), "parse", "--project-dir", str(project), "--profiles-dir",
          str(project), "--quiet"], dbt_env(conninfo, env), log, what="dbt parse")
    return project / "target" / "manifest.json"


@dataclass
class DagRunResult:
    dag_id: str
    ok: bool
    seconds: float
    log: Path
    failed_tasks: list[str]
    message: str = ""


def dags_test(dag_id: str, *, logical_date: datetime, window: tuple[datetime, datetime] | None,
              env: dict[str, str], log: Path, timeout: float = 3600,
              on_task: Callable[[str], None] | None = None) -> DagRunResult:
    """Run one DAG through Airflow (`airflow dags test`: every task really executed by Airflow's task
    runner, in this process tree), its output kept in `log`; `on_task(task_id)` is called as each task
    starts (progress)."""
    import time

    conf = {}
    if window:
        conf = {"window_start": window[0].isoformat(), "window_end": window[1].isoformat()}
    cmd = [airflow_bin(), "dags", "test", dag_id, logical_date.isoformat()]
    if conf:
        cmd += ["-c", json.dumps(conf)]
    started = time.monotonic()
    last_run = _newest_run_id(env, dag_id)  # the run this call makes is newer
    log.parent.mkdir(parents=True, exist_ok=True)
    with log.open("w") as out:
        proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                                errors="replace")
        # a watchdog, not a check per line: a run that hangs without printing is stopped too
        watchdog = threading.Timer(timeout, proc.kill)
        watchdog.start()
        try:
            assert proc.stdout is not None
            for line in proc.stdout:
                out.write(line)
                if on_task and "[DAG TEST] starting task_id=" in line:
                    on_task(line.split("task_id=", 1)[1].split()[0])
        finally:
            watchdog.cancel()
            proc.wait()
        if time.monotonic() - started >= timeout:
            out.write(f"\n[crm] airflow dags test {dag_id} stopped after {timeout:.0f} s (timeout)\n")
    text = log.read_text(errors="replace")
    state, failed = _run_outcome(env, dag_id, after=last_run)
    # the metadata database says how the run ended; the exit code and the log are the fallback when it has
    # no run (airflow could not even start one)
    if state is None:
        succeeded = proc.returncode == 0 and "state=success" in text and "state=failed" not in text
    else:
        succeeded = proc.returncode == 0 and state == "success"
    message = "" if succeeded else _failure_excerpt(text)
    return DagRunResult(dag_id, succeeded, time.monotonic() - started, log, failed, message)


def _newest_run_id(env: dict[str, str], dag_id: str) -> str | None:
    """The run_id of the DAG's newest run in Airflow's metadata database (None: no run, or unreadable).
    `airflow dags test` replaces a run of the same logical date (its row id may be reused); its run_id, which
    carries the moment it was made, is new."""
    from sqlalchemy import create_engine, text

    try:
        engine = create_engine(env["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"])
        with engine.connect() as conn:
            newest = conn.execute(text("select run_id from dag_run where dag_id = :dag order by id desc limit 1"),
                                  {"dag": dag_id}).scalar()
        engine.dispose()
        return newest
    except Exception:  # noqa: BLE001 - not migrated yet: no run
        return None


def _run_outcome(env: dict[str, str], dag_id: str, *, after: str | None) -> tuple[str | None, list[str]]:
    """(state of the DAG's newest run, unless it is run `after`; its failed task ids) from Airflow's metadata
    database; (None, []) when there is no such run or the database cannot be read."""
    from sqlalchemy import create_engine, text

    try:
        engine = create_engine(env["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"])
        with engine.connect() as conn:
            row = conn.execute(text("select id, run_id, state from dag_run where dag_id = :dag "
                                    "order by id desc limit 1"), {"dag": dag_id}).first()
            if row is None or row[1] == after:
                return None, []
            failed = [r[0] for r in conn.execute(text(
                "select task_id from task_instance where dag_id = :dag and run_id = :run "
                "and state in ('failed', 'upstream_failed') order by task_id"),
                {"dag": dag_id, "run": row[1]})]
        engine.dispose()
        return row[2], failed
    except Exception:  # noqa: BLE001 - the log is still there to read
        return None, []


def _failure_excerpt(text: str, lines: int = 12) -> str:
    """The most telling lines of a failed run's log: the exception messages."""
    keep = [ln for ln in text.splitlines()
            if any(k in ln for k in ("Error", "Exception", "error", "failed", "Failed"))
            and "Skipping registering" not in ln]
    return "\n".join(keep[-lines:])


def _run(cmd: list[str], env: dict[str, str], log: Path, *, what: str) -> None:
    log.parent.mkdir(parents=True, exist_ok=True)
    with log.open("a") as out:
        out.write(f"$ {' '.join(cmd)}\n")
        out.flush()
        proc = subprocess.run(cmd, env=env, stdout=out, stderr=subprocess.STDOUT)
    if proc.returncode != 0:
        tail = "\n".join(log.read_text(errors="replace").splitlines()[-25:])
        raise RuntimeError(f"{what} failed (exit {proc.returncode}); full log: {log}\n{tail}")


# ------------------------------------------------------------------------------------- scale-out
def free_port() -> int:
    """A TCP port free on loopback now (for the api-server of a cluster started here)."""
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def create_database(server_url: str, prefix: str) -> str:
    """Create a database named `<prefix>_<random>` on the server of `server_url` (a libpq URL); its URL."""
    import uuid

    import psycopg
    from psycopg import sql

    name = f"{prefix}_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(server_url, autocommit=True) as conn:
        conn.execute(sql.SQL("create database {}").format(sql.Identifier(name)))
    return server_url.rsplit("/", 1)[0] + f"/{name}"


def drop_database(server_url: str, url: str) -> None:
    """Drop the database of `url` (sessions still on it are ended), through the server of `server_url`."""
    import psycopg
    from psycopg import sql

    with psycopg.connect(server_url, autocommit=True) as conn:
        conn.execute(sql.SQL("drop database if exists {} with (force)").format(
            sql.Identifier(url.rsplit("/", 1)[1])))


def celery_env(base: dict[str, str], *, metadata_url: str, broker_url: str, api_port: int) -> dict[str, str]:
    """Settings for Airflow with the CeleryExecutor, as docker-compose.yml sets them, on this machine:
    metadata in PostgreSQL (`metadata_url`, a libpq URL), Redis as the broker, one api-server."""
    sqlalchemy = metadata_url.replace("postgresql://", "postgresql+psycopg2://", 1)
    env = dict(base)
    env.update({
        "AIRFLOW__CORE__EXECUTOR": "CeleryExecutor",
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": sqlalchemy,
        "AIRFLOW__CELERY__BROKER_URL": broker_url,
        "AIRFLOW__CELERY__RESULT_BACKEND": "db+" + sqlalchemy,
        "AIRFLOW__CELERY__WORKER_CONCURRENCY": "2",
        "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"http://127.0.0.1:{api_port}/execution/",
        "AIRFLOW__API__PORT": str(api_port),
        "AIRFLOW__API__HOST": "127.0.0.1",
        "AIRFLOW__API_AUTH__JWT_SECRET": "crm-local-scale-out-test",
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_ALL_ADMINS": "True",
        "AIRFLOW__CORE__HOSTNAME_CALLABLE": "crm_warehouse.orchestration.hostname.worker_hostname",
        "AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION": "True",
        "AIRFLOW__SCHEDULER__SCHEDULER_HEARTBEAT_SEC": "2",
        "AIRFLOW__DAG_PROCESSOR__REFRESH_INTERVAL": "5",
        "CRM_SCHEDULES": "off",
    })
    return env


class LocalCluster:
    """api-server, scheduler, dag-processor, triggerer and N Celery workers as processes on this machine:
    the docker-compose deployment without containers. Logs in `log_dir/<component>.log`."""

    def __init__(self, env: dict[str, str], log_dir: Path, workers: int = 2):
        self.env = env
        self.log_dir = log_dir
        self.workers = workers
        self.procs: dict[str, subprocess.Popen] = {}

    def _start(self, name: str, args: list[str], extra_env: dict[str, str] | None = None) -> None:
        self.log_dir.mkdir(parents=True, exist_ok=True)
        env = {**self.env, **(extra_env or {})}
        out = (self.log_dir / f"{name}.log").open("w")
        self.procs[name] = subprocess.Popen([airflow_bin(), *args], env=env, stdout=out, stderr=subprocess.STDOUT,
                                            start_new_session=True)

    def start(self) -> LocalCluster:
        self._start("api-server", ["api-server", "--port", self.env["AIRFLOW__API__PORT"], "--host", "127.0.0.1"])
        self._start("scheduler", ["scheduler"])
        self._start("dag-processor", ["dag-processor"])
        self._start("triggerer", ["triggerer"])
        for i in range(1, self.workers + 1):
            name = f"worker{i}"
            self._start(name, ["celery", "worker", "--concurrency", "2", "--celery-hostname", f"{name}@%h"],
                        {"CRM_WORKER_NAME": name})
        return self

    def airflow(self, *args: str, timeout: float = 300) -> str:
        """Run an `airflow` CLI command against this cluster; its stdout (raises with its output on failure)."""
        proc = subprocess.run([airflow_bin(), *args], env=self.env, capture_output=True, text=True, timeout=timeout)
        if proc.returncode != 0:
            raise RuntimeError(f"airflow {' '.join(args)} failed (exit {proc.returncode}):\n"
                               f"{proc.stdout[-2000:]}\n{proc.stderr[-2000:]}")
        return proc.stdout

    def _metadata(self):
        import psycopg

        return psycopg.connect(self.env["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"].replace(
            "postgresql+psycopg2://", "postgresql://", 1))

    def wait_for_dags(self, dag_ids: list[str], timeout: float = 240) -> None:
        """Until the dag-processor has serialized every one of `dag_ids`."""
        import time

        deadline = time.monotonic() + timeout
        while True:
            with self._metadata() as conn:
                known = {r[0] for r in conn.execute("select dag_id from serialized_dag").fetchall()}
            if set(dag_ids) <= known:
                return
            if time.monotonic() > deadline:
                raise RuntimeError(f"DAGs not parsed after {timeout:.0f} s: {sorted(set(dag_ids) - known)} "
                                   f"missing; see {self.log_dir}/dag-processor.log")
            self.check_alive()
            time.sleep(3)

    def trigger(self, dag_ids: list[str], *, run_prefix: str, conf: dict, logical_date: datetime) -> dict[str, str]:
        """Unpause and trigger each DAG (run id `<run_prefix>__<dag_id>`); {dag_id: run_id}."""
        runs = {}
        for dag_id in dag_ids:
            run_id = f"{run_prefix}__{dag_id}"
            self.airflow("dags", "unpause", dag_id)
            self.airflow("dags", "trigger", dag_id, "--run-id", run_id, "--conf", json.dumps(conf),
                         "--logical-date", logical_date.isoformat())
            runs[dag_id] = run_id
        return runs

    def wait_runs(self, runs: dict[str, str], timeout: float) -> dict[str, str]:
        """Until every run of {dag_id: run_id} is success or failed; {dag_id: state}."""
        import time

        deadline = time.monotonic() + timeout
        states: dict[str, str] = {}
        while time.monotonic() < deadline:
            self.check_alive()
            with self._metadata() as conn:
                rows = conn.execute("select dag_id, state from dag_run where run_id = any(%s)",
                                    (list(runs.values()),)).fetchall()
            states = dict(rows)
            if len(states) == len(runs) and all(s in ("success", "failed") for s in states.values()):
                return states
            time.sleep(3)
        raise RuntimeError(f"runs did not finish in {timeout:.0f} s: {states}; logs in {self.log_dir}")

    def tasks_per_worker(self, run_prefix: str) -> tuple[dict[str, int], dict[str, int]]:
        """({state: task count}, {worker hostname: successful task count}) of the runs named `<run_prefix>__*`."""
        like = f"{run_prefix}__%"
        with self._metadata() as conn:
            by_state = dict(conn.execute(
                "select state, count(*) from task_instance where run_id like %s group by 1", (like,)).fetchall())
            hosts = dict(conn.execute(
                "select hostname, count(*) from task_instance where run_id like %s and state = 'success' "
                "group by 1", (like,)).fetchall())
        return by_state, hosts

    def check_alive(self) -> None:
        dead = {n: p.returncode for n, p in self.procs.items() if p.poll() is not None}
        if dead:
            raise RuntimeError(f"Airflow components exited: {dead}; logs in {self.log_dir}")

    def stop(self) -> None:
        import signal

        for proc in self.procs.values():
            if proc.poll() is None:
                try:
                    os.killpg(proc.pid, signal.SIGTERM)
                except ProcessLookupError:
                    pass
        for proc in self.procs.values():
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
