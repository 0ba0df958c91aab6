"""The whole pipeline end to end on the CeleryExecutor, with one worker and with two.

For each world and worker count: a fresh Airflow metadata database and warehouse on the benchmark server,
the sandbox's vendors on loopback, and the docker-compose deployment's processes started on this machine
(`crm_warehouse.runtime.LocalCluster`: api-server, scheduler, dag-processor, triggerer, N Celery workers with
concurrency 2, Redis as the broker). The five extract DAGs are triggered together over the world's whole
window; when all succeed, `transform_warehouse` is triggered. Timed: the extract DAG runs (trigger to the
last success), the transform run, and the whole; counted: tasks per worker.
"""

from __future__ import annotations

import json
import os
import shutil
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

from bench.extract_load import BENCH_DIR, ensure_world, log, pg_admin_url

# the demo's world (`crm demo`) and the ten-million-interaction world of the warehouse benchmark
WORLDS = {
    "default": {"seed": 7, "customers": 2_000, "days": 30, "start": "2026-09-01", "activity": 1.0},
    "10m": {"seed": 11, "customers": 640_000, "days": 60, "start": "2026-09-01", "activity": 3.0},
}
QUICK_WORLD = {"seed": 5, "customers": 150, "days": 5, "start": "2026-09-01", "activity": 1.0}
WORKERS = (1, 2)
# every measured (world, workers) row, kept across runs: a ten-million run takes hours per worker count, so each
# row is written as soon as it is measured and a later run of other worlds or worker counts keeps it
RESULTS = Path(__file__).resolve().parent / "results" / "pipeline.json"


def load_results(path: Path = RESULTS) -> list[dict]:
    return json.loads(path.read_text()) if path.exists() else []


def save_result(row: dict, path: Path = RESULTS) -> list[dict]:
    """Store `row`, replacing an earlier measurement of the same world and worker count; returns all rows."""
    rows = [r for r in load_results(path) if (r["world"], r["workers"]) != (row["world"], row["workers"])]
    rows.append(row)
    rows.sort(key=lambda r: (list(WORLDS).index(r["world"]) if r["world"] in WORLDS else 99, r["workers"]))
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(rows, indent=1, sort_keys=True) + "\n")
    return rows


def run_one(world: Path, params: dict, workers: int, admin: str, redis_url: str, work: Path) -> dict:
    import psycopg
    import redis
    from crm_warehouse import runtime

    from sandbox.serve import Sandbox

    start = datetime.fromisoformat(params["start"]).replace(tzinfo=UTC)
    end = start + timedelta(days=params["days"])
    redis.Redis.from_url(redis_url).flushdb()
    # the SFTP server's drops live in the world's folder and the extractors archive them: each run starts with
    # the vendors' files as first delivered (else the second run finds nothing to load)
    shutil.rmtree(world / "sftp_root", ignore_errors=True)
    (world / "sftp_drops.json").unlink(missing_ok=True)
    box = Sandbox(world)
    box.start()
    metadata_url = runtime.create_database(admin, "crm_bench_meta")
    warehouse_url = runtime.create_database(admin, "crm_bench_pipeline")
    cluster = None
    try:
        connections = {**box.connections, "warehouse": runtime.warehouse_connection(warehouse_url)}
        base = runtime.airflow_env(connections, home=work / "home")
        env = runtime.celery_env(base, metadata_url=metadata_url, broker_url=redis_url, api_port=runtime.free_port())
        runtime.migrate_metadata(env, work / "logs" / "migrate.log")
        runtime.dbt_parse(env, work / "logs" / "dbt-parse.log")
        cluster = runtime.LocalCluster(env, work / "logs", workers=workers).start()
        cluster.wait_for_dags(runtime.ALL_DAGS)
        conf = {"window_start": start.isoformat(), "window_end": end.isoformat()}
        t0 = time.perf_counter()
        extract = cluster.trigger(runtime.EXTRACT_DAGS, run_prefix="bench", conf=conf, logical_date=end)
        states = cluster.wait_runs(extract, timeout=24 * 3600)
        t1 = time.perf_counter()
        if set(states.values()) != {"success"}:
            raise RuntimeError(f"extract runs: {states}; logs in {cluster.log_dir}")
        transform = cluster.trigger([runtime.TRANSFORM_DAG], run_prefix="bench", conf=conf, logical_date=end)
        states = cluster.wait_runs(transform, timeout=24 * 3600)
        t2 = time.perf_counter()
        if states != {runtime.TRANSFORM_DAG: "success"}:
            raise RuntimeError(f"transform run: {states}; logs in {cluster.log_dir}")
        by_state, hosts = cluster.tasks_per_worker("bench")
        with psycopg.connect(warehouse_url) as conn:
            interactions = conn.execute("select count(*) from marts.fct_interactions").fetchone()[0]
            raw = conn.execute("select coalesce(sum(loaded), 0) from ops.batches").fetchone()[0]
        return {"workers": workers, "extract_s": t1 - t0, "transform_s": t2 - t1, "total_s": t2 - t0,
                "tasks": by_state, "hosts": hosts, "interactions": interactions, "raw": raw,
                "load": ", ".join(f"{x:.2f}" for x in os.getloadavg())}
    finally:
        if cluster:
            cluster.stop()
        box.stop()
        runtime.drop_database(admin, warehouse_url)
        runtime.drop_database(admin, metadata_url)


def run(*, quick: bool = False, pg_url: str | None = None, worlds: tuple[str, ...] = ("default",),
        workers_list: tuple[int, ...] = WORKERS, on_row=None) -> dict:
    """Measure each world on each worker count; `on_row(row)` is called as each one is measured."""
    admin = pg_admin_url(pg_url)
    redis_url = os.environ.get("CRM_BENCH_REDIS_URL", "redis://127.0.0.1:6379/8")
    rows = []
    for name in (("quick",) if quick else worlds):
        params = QUICK_WORLD if quick else WORLDS[name]
        world = ensure_world(f"world-pipeline-{name}" if name != "10m" else "world-warehouse-10m", params)
        for workers in workers_list:
            log(f"pipeline: world {name}, {workers} Celery worker(s)")
            work = BENCH_DIR / "pipeline" / f"{name}-{workers}w"
            result = run_one(world, params, workers, admin, redis_url, work)
            log(f"pipeline: {result['total_s']:.0f} s (extract {result['extract_s']:.0f} s, transform "
                f"{result['transform_s']:.0f} s), tasks per worker {result['hosts']}")
            first = next((r for r in rows if r["world"] == name), None) or next(
                (r for r in ([] if quick else load_results()) if r["world"] == name and r["params"] == params), None)
            if first and (first["raw"], first["interactions"]) != (result["raw"], result["interactions"]):
                raise RuntimeError(
                    f"world {name}: {workers} workers landed {result['raw']:,} raw records and built "
                    f"{result['interactions']:,} interactions, {first['workers']} worker(s) "
                    f"{first['raw']:,} and {first['interactions']:,}: the same world must give the same "
                    f"warehouse; logs in {work}")
            row = {"world": name, "params": params, **result,
                   "measured": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")}
            rows.append(row)
            if on_row:
                on_row(row)
    return {"admin": admin, "rows": rows}


def section(rows: list[dict], facts: dict) -> str:
    """The report from every stored row (`load_results`), whichever run measured it."""
    lines = []
    for r in rows:
        hosts = ", ".join(f"{h} {n}" for h, n in sorted(r["hosts"].items()))
        lines.append(f"| {r['world']} | {r['raw']:,} | {r['interactions']:,} | {r['workers']} "
                     f"| {r['extract_s']:,.0f} s | {r['transform_s']:,.0f} s | {r['total_s']:,.0f} s "
                     f"| {hosts} | {r['load']} | {r.get('measured', '')} |")
    missing = [f"{w} on {n} worker(s)" for w in WORLDS for n in WORKERS
               if not any((r["world"], r["workers"]) == (w, n) for r in rows)]
    note = ("" if not missing else
            f"\nNot measured yet: {', '.join(missing)} (`python -m bench --only pipeline --pipeline-worlds "
            f"{','.join(WORLDS)}`; `--pipeline-workers 1` or `2` measures one worker count).\n")
    worlds = "\n".join(f"- `{k}`: `{v}`" for k, v in WORLDS.items())
    return f"""Measured by `make bench` (`python -m bench --only pipeline`); each row when the last column says, kept in
`bench/results/pipeline.json` so that a run of one world or worker count keeps the others' rows.
Machine: {facts['cpus']}; {facts['ram']} RAM; {facts['postgres']}; Python {facts['python']}.

The docker-compose deployment's processes on this machine (api-server, scheduler, dag-processor, triggerer,
N Celery workers with concurrency 2, Redis, PostgreSQL for metadata and the warehouse, the sandbox's vendors
on loopback). The five extract DAGs are triggered together over the world's window; `transform_warehouse`
when they have all succeeded. Wall times from the first trigger.

| world | raw records | interactions | workers | extract | transform | total | tasks per worker | load after | when |
|---|---:|---:|---:|---:|---:|---:|---|---|---|
{chr(10).join(lines)}
{note}
Worlds:
{worlds}
"""
