"""Shared fixtures. Integration tests get a real PostgreSQL: `CRM_TEST_PG_URL` if set, else the
server on 127.0.0.1:5432 if one answers, else an embedded server started for the session."""

from __future__ import annotations

import os
import uuid
from pathlib import Path

import psycopg
import pytest
from psycopg import sql

ROOT = Path(__file__).resolve().parents[1]

for _k, _v in {
    "AIRFLOW__COSMOS__ENABLE_TELEMETRY": "false",
    "GX_ANALYTICS_ENABLED": "false",
    "DBT_SEND_ANONYMOUS_USAGE_STATS": "false",
    "DO_NOT_TRACK": "1",
}.items():
    os.environ.setdefault(_k, _v)


LAYERS = ("unit", "integration", "e2e")


def pytest_collection_modifyitems(items):
    """Tests without a layer marker get one from their folder (tests/unit, integration, e2e); then the
    layers run in that order (seconds, then minutes, then the slow ones), so a broken unit shows first.
    The sort is stable: within a layer, tests keep their files' order (module fixtures stay shared)."""
    for item in items:
        parts = Path(str(item.fspath)).parts
        for layer in LAYERS:
            if layer in parts and not item.get_closest_marker(layer):
                item.add_marker(getattr(pytest.mark, layer))
    items.sort(key=lambda item: next((i for i, layer in enumerate(LAYERS) if item.get_closest_marker(layer)),
                                     len(LAYERS)))


def _server_url() -> str:
    if os.environ.get("CRM_TEST_PG_URL"):
        return os.environ["CRM_TEST_PG_URL"]
    system = "postgresql://postgres@127.0.0.1:5432/postgres"
    try:
        with psycopg.connect(system, connect_timeout=2):
            return system
    except psycopg.OperationalError:
        from crm_warehouse.embedded import EmbeddedPostgres

        server = EmbeddedPostgres(ROOT / ".crm" / "test-pg")
        server.ensure_running()
        return server.url("postgres")


@pytest.fixture(scope="session")
def pg_server_url() -> str:
    return _server_url()


@pytest.fixture
def fresh_db(pg_server_url):
    """A new, empty database for one test, dropped afterwards. Yields its URL."""
    name = f"crm_test_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(pg_server_url, autocommit=True) as conn:
        conn.execute(sql.SQL("create database {}").format(sql.Identifier(name)))
    url = pg_server_url.rsplit("/", 1)[0] + f"/{name}"
    yield url
    with psycopg.connect(pg_server_url, autocommit=True) as conn:
        conn.execute(sql.SQL("drop database if exists {} with (force)").format(sql.Identifier(name)))


@pytest.fixture(scope="session")
def dbt_manifest() -> Path:
    """dbt_project/target/manifest.json, written by `dbt parse` (no database needed), from which Cosmos
    renders the transform DAG as it does in production."""
    import json as _json

    from crm_warehouse import runtime

    env = runtime.airflow_env({"warehouse": runtime.warehouse_connection("postgresql://postgres@127.0.0.1/crm")},
                              home=ROOT / ".crm" / "test-home")
    manifest = runtime.dbt_parse(env, ROOT / ".crm" / "test-home" / "dbt-parse.log")
    assert _json.loads(manifest.read_text())["nodes"], "dbt parse wrote an empty manifest"
    return manifest


@pytest.fixture
def dbt_run(tmp_path):
    """`dbt_run(url, *models)`: `dbt run --select <models>` of the project against the database at `url`
    (a postgresql:// URL), so a test can read what staging makes of what the loader landed."""
    import subprocess
    import sys

    dbt_dir = ROOT / "dbt_project"

    def run(url: str, *models: str) -> None:
        from crm_warehouse.bootstrap import bootstrap
        from crm_warehouse.settings import dbt_env

        with psycopg.connect(url) as conn:  # the schemas and roles a warehouse has before dbt runs
            bootstrap(conn)
        env = dbt_env(url)
        result = subprocess.run(
            [str(Path(sys.executable).parent / "dbt"), "run", "--select", *models, "--profiles-dir", str(dbt_dir),
             "--project-dir", str(dbt_dir), "--target-path", str(tmp_path / "dbt-target"),
             "--log-path", str(tmp_path / "dbt-logs")],
            env=env, capture_output=True, text=True, timeout=300)
        assert result.returncode == 0, f"dbt run failed:\n{result.stdout[-4000:]}\n{result.stderr[-2000:]}"

    return run
