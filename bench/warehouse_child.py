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
        from crm_warehouse.quality.gate import run_gate

        result = run_gate(url, build_schema="marts_build", run_id=f"bench-{int(time.time())}",
                          run_end=datetime.fromtimestamp(int(run_end), UTC), docs_dir=f"{docs}/data_docs")
        report = result.summary()
        if not result.passed:
            print(json.dumps({"seconds": round(time.perf_counter() - started, 1), "gate": report}, default=str))
            return 1
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
