"""What the transform DAG's one `dbt build` task reports about each dbt node it built."""

from __future__ import annotations

import json
import logging
from collections import Counter
from pathlib import Path

log = logging.getLogger(__name__)


def summarise_run_results(run_results: dict) -> list[dict]:
    """One row per node of a dbt `run_results.json`: its name, type, status, rows and seconds."""
    rows = []
    for result in run_results.get("results", []):
        kind, _, rest = result["unique_id"].partition(".")  # model.<package>.<name>
        rows.append({"node": rest.partition(".")[2] or rest, "type": kind, "status": result.get("status"),
                     "rows": (result.get("adapter_response") or {}).get("rows_affected"),
                     "seconds": round(float(result.get("execution_time") or 0.0), 2)})
    return rows


def log_dbt_build_results(project_dir: str, **_: object) -> None:
    """Cosmos callback after the build: log one line per model, seed and snapshot (status, rows, seconds),
    so the task log says what each node did. A failed node never gets here: Cosmos fails the task first,
    naming every model that errored."""
    path = Path(project_dir) / "target" / "run_results.json"
    if not path.exists():
        raise FileNotFoundError(f"dbt build wrote no {path}: see the task log above")
    rows = summarise_run_results(json.loads(path.read_text()))
    for row in rows:
        log.info("dbt %-8s %-45s %-8s rows=%s %.2f s", row["type"], row["node"], row["status"], row["rows"],
                 row["seconds"])
    counts = Counter(row["status"] for row in rows)
    log.info("dbt build: %d nodes (%s)", len(rows), ", ".join(f"{n} {s}" for s, n in sorted(counts.items())))
