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


def test_transform_dag_builds_every_dbt_model_in_one_task_and_no_test(dagbag, dbt_manifest, tmp_path):
    """One `dbt build` task builds every model, seed and snapshot of the project (dbt's own selection, `dbt ls`
    with the task's flags, against the manifest) and no data or unit test (those are the gate's), between
    `enrich` and `quality_gate`; `full_refresh` comes from the run's conf."""
    import copy
    import json
    import subprocess
    import sys

    from cosmos.operators.local import DbtBuildLocalOperator

    dag = dagbag.dags["transform_warehouse"]
    build = dag.get_task("dbt_build")
    assert isinstance(build, DbtBuildLocalOperator)
    assert not (getattr(build, "select", None) or getattr(build, "exclude", None) or getattr(build, "selector", None))
    assert build.upstream_task_ids == {"enrich"} and build.downstream_task_ids == {"quality_gate"}
    dbt_tasks = [t.task_id for t in dag.tasks if t.task_id != "dbt_docs" and type(t).__module__.startswith("cosmos.")]
    assert dbt_tasks == ["dbt_build"], f"one dbt task builds the project, not {dbt_tasks}"
    for step in ("enrich", "quality_gate", "publish", "dbt_docs"):
        assert step in dag.task_ids

    manifest = json.loads(dbt_manifest.read_text())
    nodes = [*manifest["nodes"].values(), *manifest["unit_tests"].values()]
    project = {(n["resource_type"], n["name"]) for n in nodes if n["package_name"] == "crm_warehouse"}
    expected = {(kind, name) for kind, name in project if kind in {"model", "seed", "snapshot"}}
    assert {kind for kind, _ in expected} == {"model", "seed", "snapshot"}, expected
    assert any(kind == "test" for kind, _ in project) and any(kind == "unit_test" for kind, _ in project)
    dbt_dir = ROOT / "dbt_project"
    listed = subprocess.run(
        [str(Path(sys.executable).parent / "dbt"), "ls", "--project-dir", str(dbt_dir), "--profiles-dir",
         str(dbt_dir), "--target-path", str(tmp_path / "target"), "--log-path", str(tmp_path),
         "--output", "json", "--output-keys", "resource_type", "name", "package_name", "--quiet", *build.dbt_cmd_flags],
        capture_output=True, text=True, timeout=300, env={**os.environ, "DO_NOT_TRACK": "1"},
    )
    assert listed.returncode == 0, listed.stdout[-3000:] + listed.stderr[-2000:]
    built = {(n["resource_type"], n["name"]) for n in map(json.loads, listed.stdout.splitlines())
             if n["package_name"] == "crm_warehouse"}
    assert built == expected, f"built but not expected: {built - expected}; not built: {expected - built}"

    for conf, flagged in (({}, False), ({"full_refresh": True}, True)):
        run = copy.copy(build)
        run.full_refresh = build.render_template(build.full_refresh, {"dag_run": type("Run", (), {"conf": conf})()})
        assert ("--full-refresh" in run.add_cmd_flags()) == flagged, (conf, run.full_refresh)


def test_extract_dags_cover_every_registered_stream(dagbag):
    from crm_warehouse.sources.registry import SOURCES

    task_ids = {t.task_id for dag_id, d in dagbag.dags.items() if dag_id.startswith("extract_") for t in d.tasks}
    for source, spec in SOURCES.items():
        for stream in spec.streams:
            assert f"{source}.{stream}" in task_ids, f"{source}.{stream} is extracted by no DAG"
