"""Scale-out for real: the docker-compose deployment's processes started on this machine (api-server,
scheduler, dag-processor, triggerer, two Celery workers, Redis as broker, PostgreSQL for metadata), the
whole pipeline triggered, every task succeeds, and tasks ran on both workers."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import psycopg
import pytest
from crm_warehouse import runtime

WORLD = {"seed": 5, "customers": 150, "days": 5, "start": "2026-09-01"}
START = datetime(2026, 9, 1, tzinfo=UTC)
END = START + timedelta(days=WORLD["days"])
REDIS = ("127.0.0.1", 6379)




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






def test_pipeline_on_two_celery_workers(pg_server_url, redis_db, tmp_path):
    from sandbox.serve import Sandbox
    from sandbox.world import generate

    generate(tmp_path / "world", **WORLD)
    box = Sandbox(tmp_path / "world")
    box.start()
    metadata_url = runtime.create_database(pg_server_url, "crm_airflow_meta")
    warehouse_url = runtime.create_database(pg_server_url, "crm_celery_wh")
    cluster = None
    try:
        connections = {**box.connections, "warehouse": runtime.warehouse_connection(warehouse_url)}
        base = runtime.airflow_env(connections, home=tmp_path / "home")
        env = runtime.celery_env(base, metadata_url=metadata_url, broker_url=redis_db, api_port=runtime.free_port())
        runtime.migrate_metadata(env, tmp_path / "logs" / "migrate.log")
        runtime.dbt_parse(env, tmp_path / "logs" / "dbt-parse.log")
        cluster = runtime.LocalCluster(env, tmp_path / "logs", workers=2).start()

        cluster.wait_for_dags(runtime.ALL_DAGS)
        conf = {"window_start": START.isoformat(), "window_end": END.isoformat()}
        extract = cluster.trigger(runtime.EXTRACT_DAGS, run_prefix="scale_out", conf=conf, logical_date=END)
        states = cluster.wait_runs(extract, timeout=900)
        assert set(states.values()) == {"success"}, states
        transform = cluster.trigger([runtime.TRANSFORM_DAG], run_prefix="scale_out", conf=conf, logical_date=END)
        states = cluster.wait_runs(transform, timeout=1200)
        assert states == {runtime.TRANSFORM_DAG: "success"}, f"{states}; logs in {cluster.log_dir}"

        by_state, hosts = cluster.tasks_per_worker("scale_out")
        assert set(by_state) <= {"success", "skipped"}, by_state
        assert {"worker1", "worker2"} <= set(hosts), f"tasks per worker: {hosts}"
        with psycopg.connect(warehouse_url) as conn:
            assert conn.execute("select count(*) from marts.fct_interactions").fetchone()[0] > 0
        print(f"tasks per worker: {hosts}")
    finally:
        if cluster:
            cluster.stop()
        box.stop()
        runtime.drop_database(pg_server_url, warehouse_url)
        runtime.drop_database(pg_server_url, metadata_url)

