"""Helpers of the end-to-end tests (importable as `e2e_support`: pytest puts tests/e2e on sys.path)."""

from __future__ import annotations

import re
import sqlite3
from datetime import datetime
from pathlib import Path

from crm_warehouse import runtime


class AirflowRunner:
    """Airflow's environment for one sandbox and one warehouse (metadata migrated, dbt manifest parsed);
    `run(dag_id, ...)` is one `airflow dags test` over a window, its log in `home/logs/<tag>-<dag_id>.log`."""

    def __init__(self, box, warehouse: str, home: Path):
        self.home = home
        connections = {**box.connections, "warehouse": runtime.warehouse_connection(warehouse)}
        self.env = runtime.airflow_env(connections, home=home)
        self.env["CRM_DOCS_DIR"] = str(home / "docs")
        runtime.migrate_metadata(self.env, home / "logs" / "migrate.log")
        runtime.dbt_parse(self.env, home / "logs" / "dbt-parse.log")

    def run(self, dag_id: str, *, logical_date: datetime, window: tuple[datetime, datetime],
            tag: str) -> runtime.DagRunResult:
        return runtime.dags_test(dag_id, logical_date=logical_date, window=window, env=self.env,
                                 log=self.home / "logs" / f"{tag}-{dag_id}.log")

    def task_states(self, result: runtime.DagRunResult) -> dict[str, str]:
        """Each task's final state in that run, from Airflow's metadata database (SQLite here)."""
        found = re.findall(r"DagRun Finished: dag_id=\S+, logical_date=[^,]+, run_id=([^,\s]+)",
                           result.log.read_text(errors="replace"))
        assert found, f"no finished run in {result.log}"
        conn = self.env["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"]
        assert conn.startswith("sqlite:///"), conn
        with sqlite3.connect(conn.removeprefix("sqlite:///")) as db:
            return dict(db.execute("select task_id, state from task_instance where dag_id = ? and run_id = ?",
                                   (result.dag_id, found[-1])).fetchall())
