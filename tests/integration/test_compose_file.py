"""docker-compose.yml cannot run here (no Docker engine): validate it against the Compose Specification's
JSON schema and check that what it runs matches the project."""

from __future__ import annotations

import json
import re
import zipfile
from pathlib import Path

import jsonschema
import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
WHEEL = ROOT / ".crm" / "cache" / "docker_compose-1.29.2-py2.py3-none-any.whl"


@pytest.fixture(scope="module")
def compose():
    return yaml.safe_load((ROOT / "docker-compose.yml").read_text())


def test_valid_against_the_compose_specification(compose):
    assert WHEEL.exists(), "run `make setup` (it downloads the schema's wheel from PyPI)"
    with zipfile.ZipFile(WHEEL) as wheel:
        schema = json.loads(wheel.read("compose/config/compose_spec.json"))
    jsonschema.validate(compose, schema)


def test_runs_every_airflow_component_with_celery(compose):
    services = compose["services"]
    commands = {name: str(svc.get("command", "")) for name, svc in services.items()}
    assert "api-server" in commands["airflow-apiserver"]
    assert commands["airflow-scheduler"] == "airflow scheduler"
    assert commands["airflow-dag-processor"] == "airflow dag-processor"
    assert commands["airflow-triggerer"] == "airflow triggerer"
    assert commands["airflow-worker"].startswith("airflow celery worker")
    env = compose["x-airflow-common"]["environment"]
    assert env["AIRFLOW__CORE__EXECUTOR"] == "CeleryExecutor"
    assert env["AIRFLOW__CELERY__BROKER_URL"].startswith("redis://redis:")
    for name in ("redis", "airflow-db", "warehouse", "sftp"):
        assert "healthcheck" in services[name], f"{name} has no healthcheck"
    assert services["sandbox"]["profiles"] == ["sandbox"]
    # workers scale with --scale: no fixed container name or host port on them
    assert "container_name" not in services["airflow-worker"] and "ports" not in services["airflow-worker"]


def test_points_at_the_project(compose):
    env = compose["x-airflow-common"]["environment"]
    dockerfile = (ROOT / "Dockerfile").read_text()
    assert env["AIRFLOW__CORE__DAGS_FOLDER"] == "/opt/crm/dags"
    assert "COPY dags ./dags" in dockerfile and "WORKDIR /opt/crm" in dockerfile
    assert "uv sync --frozen" in dockerfile and "COPY pyproject.toml uv.lock" in dockerfile
    for conn_id in ("WAREHOUSE", "SURVEY_VENDOR_SFTP", "PHONE_SYSTEM", "SURVEY_VENDOR", "WEB_FORMS", "SOCIAL_X",
                    "SOCIAL_FACEBOOK", "SOCIAL_LINKEDIN"):
        assert f"AIRFLOW_CONN_{conn_id}" in env, conn_id
    sftp = json.loads(re.sub(r"\$\{[^}]*\}", "x", env["AIRFLOW_CONN_SURVEY_VENDOR_SFTP"]))
    assert sftp["conn_type"] == "sftp" and sftp["extra"]["host_key"]
    assert {f["stream"] for f in sftp["extra"]["feeds"].values()} == {
        "sftp_survey_vendor__responses", "sftp_call_center__calls", "sftp_call_center__dispositions"}


def test_env_example_names_every_variable_the_file_requires(compose):
    text = (ROOT / "docker-compose.yml").read_text()
    required = set(re.findall(r"\$\{([A-Z_]+):\?", text))
    example = (ROOT / ".env.example").read_text()
    missing = [v for v in required if not re.search(rf"^{v}=", example, re.M)]
    assert not missing, f".env.example lacks {missing}"
