"""DAG integrity: the whole DagBag imports cleanly, with the conventions operators rely on."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
EXPECTED = {"extract_phone_system", "extract_survey_vendor", "extract_web_forms", "extract_social",
            "extract_sftp_drops", "transform_warehouse"}


@pytest.fixture(scope="module")
def dagbag(tmp_path_factory, dbt_manifest):
    os.environ.setdefault("AIRFLOW_HOME", str(tmp_path_factory.mktemp("airflow-home")))
    os.environ["AIRFLOW__CORE__LOAD_EXAMPLES"] = "False"
    from airflow.dag_processing.dagbag import DagBag

    return DagBag(dag_folder=str(ROOT / "dags"))


def test_no_import_errors(dagbag):
    assert dagbag.import_errors == {}, "\n".join(f"{f}: {e}" for f, e in dagbag.import_errors.items())


def test_the_stable_dag_ids_exist(dagbag):
    assert set(dagbag.dag_ids) == EXPECTED


def test_dag_conventions(dagbag):
    for dag_id, dag in dagbag.dags.items():
        assert dag.tags, f"{dag_id} has no tags"
        assert dag.catchup is False, f"{dag_id} must not catch up"
        assert dag.doc_md, f"{dag_id} has no doc_md"
        assert dag.max_active_runs == 1, f"{dag_id} may run concurrently with itself"
        for task in dag.tasks:
            assert task.retries >= 2, f"{dag_id}.{task.task_id} has retries={task.retries}"


def test_parse_time_per_file_is_reported(dagbag, record_property):
    """Each file's parse time from the DagBag's own statistics (first load of the folder), printed (-s)
    and recorded in the JUnit properties."""
    stats = {Path(stat.file).name: stat.duration for stat in dagbag.dagbag_stats}
    assert set(stats) == {p.name for p in (ROOT / "dags").glob("*.py")}
    for name, duration in sorted(stats.items()):
        seconds = duration.total_seconds() if hasattr(duration, "total_seconds") else float(duration)
        print(f"parse {name}: {seconds:.2f} s")
        record_property(f"parse_seconds[{name}]", round(seconds, 3))


def test_transform_dag_renders_every_dbt_model_as_a_task(dagbag, dbt_manifest):
    import json

    models = {n["name"] for n in json.loads(dbt_manifest.read_text())["nodes"].values()
              if n["resource_type"] == "model" and n["package_name"] == "crm_warehouse"}
    task_ids = {t.task_id for t in dagbag.dags["transform_warehouse"].tasks}
    missing = {m for m in models if not any(f".{m}" in t for t in task_ids)}
    assert not missing, f"models without a task: {sorted(missing)}"
    for step in ("enrich", "quality_gate", "publish", "dbt_docs"):
        assert step in task_ids


def test_extract_dags_cover_every_registered_stream(dagbag):
    from crm_warehouse.sources.registry import SOURCES

    task_ids = {t.task_id for dag_id, d in dagbag.dags.items() if dag_id.startswith("extract_") for t in d.tasks}
    for source, spec in SOURCES.items():
        for stream in spec.streams:
            assert f"{source}.{stream}" in task_ids, f"{source}.{stream} is extracted by no DAG"
