"""dbt's data tests as checks of the quality gate: `dbt test` runs once, inside the gate task, on what dbt
just built (staging views, intermediate tables, the marts in the build schema), and every test becomes a
CheckOutcome next to the Great Expectations checks.

Why in the gate and not in the dbt tasks: a failing test inside a model's task fails that task, so the
gate never runs and the operator gets no verdict (which checks, how many rows, where the Data Docs are).
The transform DAG therefore only builds (one `dbt build` of models, seeds and snapshots) and the gate runs
every test at once.

Severity: a test whose dbt severity is `error` (the project's default) is critical and blocks publishing;
`warn` is a warning (published, alerted). dbt unit tests check model logic on fixtures, not data: they run
in CI (`tests/integration`), not here.

Scope: given an incremental GateScope, the tests of single values and of uniqueness read only what changed
since the last passed gate (vars `gate_batch_in_scope` and `gate_written`, read by
dbt_project/macros/tests/gate_scope.sql); each outcome says the rows it read.
"""

from __future__ import annotations

import json
import logging
import subprocess
import sys
import tempfile
from pathlib import Path

from crm_warehouse.quality.gate import CheckOutcome
from crm_warehouse.quality.scope import GateScope
from crm_warehouse.settings import dbt_env, dbt_project_dir

log = logging.getLogger(__name__)

SUITE_PREFIX = "dbt"
# written by dbt_project/macros/tests/gate_scope.sql (macro gate_scope_marker) into the compiled SQL of every
# test it limited to the changed rows
GATE_SCOPE_MARKER = "crm_gate_scope: changed rows"


class DbtTestsFailedToRun(RuntimeError):
    """dbt itself could not run the tests (bad project, unreachable warehouse): no verdict at all."""


def _relation(node: dict | None) -> str:
    if not node:
        return "?"
    return f"{node.get('schema')}.{node.get('alias') or node.get('name')}"


def outcomes_from_results(run_results: dict, manifest: dict, scope: str = "full") -> list[CheckOutcome]:
    """One CheckOutcome per dbt data test of `run_results.json`, named `dbt.<model>.<test name>`; `scope` is
    the gate's (`full` or `since <time>`), said of each test it limited."""
    nodes = manifest.get("nodes", {})
    sources = manifest.get("sources", {})
    out = []
    for result in run_results.get("results", []):
        uid = result.get("unique_id", "")
        node = nodes.get(uid) or {}
        if not uid.startswith("test.") or node.get("resource_type", "test") != "test":
            continue  # hooks (on-run-start) and anything else dbt reports besides data tests
        parent_id = node.get("attached_node") or next(iter((node.get("depends_on") or {}).get("nodes") or []), "")
        parent = nodes.get(parent_id) or sources.get(parent_id)
        model = (parent or {}).get("name", "unknown")
        severity = "warning" if str((node.get("config") or {}).get("severity", "error")).lower() == "warn" \
            else "critical"
        status = result.get("status")
        failures = result.get("failures")
        error = None
        observed: dict = {}
        if status == "error":
            first = str(result.get("message") or "dbt error").strip().splitlines()[0][:300]
            error = f"could not run ({first})"
            observed["error"] = "could not run"
        elif status == "skipped":
            error = "skipped by dbt (an upstream model failed)"
            observed["error"] = "skipped"
        test_type = (node.get("test_metadata") or {}).get("name") or "singular"
        out.append(CheckOutcome(
            suite=f"{SUITE_PREFIX}.{model}",
            table=_relation(parent),
            check=node.get("name") or uid.split(".")[-1],
            expectation_type=f"dbt:{test_type}",
            severity=severity,
            success=status == "pass",
            unexpected_count=int(failures) if isinstance(failures, int) and status in ("pass", "fail", "warn")
            else None,
            observed=observed,
            error=error,
            scope=scope if GATE_SCOPE_MARKER in (result.get("compiled_code") or "") else "full",
        ))
    return out


def run_dbt_tests(url: str, *, log_path: str | Path | None = None, project_dir: str | Path | None = None,
                  select: str | None = None, scope: GateScope | None = None) -> list[CheckOutcome]:
    """Run every dbt data test of the project against the warehouse at `url`; return their outcomes.
    `scope`: the gate's; an incremental one limits the tests of values to the changed rows (a full check when
    not given).

    dbt's output goes to `log_path` (default: a file next to the temporary target). Raises
    DbtTestsFailedToRun when dbt could not produce results at all.
    """
    project = Path(project_dir or dbt_project_dir())
    dbt = str(Path(sys.executable).parent / "dbt")
    with tempfile.TemporaryDirectory(prefix="crm-gate-dbt-") as tmp:
        target = Path(tmp) / "target"
        output = Path(log_path) if log_path else Path(tmp) / "dbt-test.log"
        output.parent.mkdir(parents=True, exist_ok=True)
        cmd = [dbt, "test", "--project-dir", str(project), "--profiles-dir", str(project),
               "--target-path", str(target), "--log-path", tmp, "--exclude-resource-type", "unit_test"]
        if select:
            cmd += ["--select", select]
        if scope is not None and not scope.full:
            cmd += ["--vars", json.dumps({"gate_batch_in_scope": scope.batch_predicate(),
                                          "gate_written": scope.written_predicate()})]
        with output.open("w") as out:
            proc = subprocess.run(cmd, env=dbt_env(url), stdout=out, stderr=subprocess.STDOUT, cwd=project)
        results_file = target / "run_results.json"
        if proc.returncode not in (0, 1) or not results_file.exists():
            tail = "\n".join(output.read_text(errors="replace").splitlines()[-20:])
            raise DbtTestsFailedToRun(f"dbt test could not run (exit {proc.returncode}); log {output}:\n{tail}")
        done = [ln for ln in output.read_text(errors="replace").splitlines() if "Done. PASS=" in ln]
        if done:
            log.info("dbt test: %s", done[-1].strip())
        outcomes = outcomes_from_results(json.loads(results_file.read_text()),
                                         json.loads((target / "manifest.json").read_text()),
                                         scope.label if scope is not None else "full")
    failed = [o for o in outcomes if not o.success]
    log.info("dbt tests: %s run, %s failed (%s critical)", len(outcomes), len(failed),
             sum(o.severity == "critical" for o in failed))
    return outcomes
