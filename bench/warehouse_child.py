"""One phase of the warehouse benchmark in its own process, as the `transform_warehouse` DAG's task runs it:
`python -m bench.warehouse_child enrich|gate|publish URL RUN_END_EPOCH DOCS_DIR`. Prints one JSON line."""

from __future__ import annotations

import json
import sys
import time
from datetime import UTC, datetime


def main(argv: list[str]) -> int:
    phase, url, run_end, docs = argv
    import psycopg

    started = time.perf_counter()
    report: dict = {}
    if phase == "enrich":
        from crm_warehouse.enrich import run_all

        with psycopg.connect(url) as conn:
            report = run_all(conn)
    elif phase == "gate":
        # as the DAG's quality_gate task: one scope (a full check on the first gate, else what changed since the
        # last passed one), dbt's data tests, then the suites, judged together
        from crm_warehouse.quality.dbt_tests import run_dbt_tests
        from crm_warehouse.quality.gate import run_gate
        from crm_warehouse.quality.scope import decide_scope

        with psycopg.connect(url) as conn:
            scope = decide_scope(conn)
        dbt_outcomes = run_dbt_tests(url, log_path=f"{docs}/dbt-test.log", scope=scope)
        dbt_seconds = round(time.perf_counter() - started, 1)
        result = run_gate(url, build_schema="marts_build", run_id=f"bench-{int(time.time())}",
                          run_end=datetime.fromtimestamp(int(run_end), UTC), docs_dir=f"{docs}/data_docs",
                          extra_outcomes=dbt_outcomes, scope=scope)
        report = result.summary()
        extra = {"dbt_tests": len(dbt_outcomes), "dbt_tests_seconds": dbt_seconds, "scope": scope.label}
        if not result.passed:
            print(json.dumps({"seconds": round(time.perf_counter() - started, 1), "gate": report, **extra},
                             default=str))
            return 1
        print(json.dumps({"seconds": round(time.perf_counter() - started, 1), "phase": report, **extra},
                         default=str))
        return 0
    elif phase == "publish":
        from crm_warehouse.quality.publish import publish

        with psycopg.connect(url) as conn:
            report = publish(conn, build_schema="marts_build", target_schema="marts")
    else:
        raise SystemExit(f"unknown phase {phase!r}: enrich, gate or publish")
    print(json.dumps({"seconds": round(time.perf_counter() - started, 1), "phase": report}, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
