"""The warehouse at scale: a full build of ten million interactions, then one more day built incrementally,
and what the quality gate costs at that size.

Steps, into a fresh database on the benchmark server (`--pg-url`, else the embedded one):
1. a generated world (`WORLD`, cached under `.crm/bench/`) is landed straight into the raw tables
   (`sandbox.landing`: COPY, one ledger batch per table), all but its last day;
2. **full build**, each phase as the `transform_warehouse` DAG runs it, each in its own process (wall time and
   peak memory measured from outside): `enrich`, `dbt build --full-refresh` of the models, seeds and
   snapshots (into `marts_build`), the quality gate (dbt's data tests, then every Great Expectations suite),
   `publish` into `marts`;
3. the last day is landed (one more batch per table);
4. **incremental build**: the same phases without `--full-refresh`.

Goals (issue 5 point 4, issue 6 point 7): the day added costs at most a tenth of the full build; the gate's
cost at ten million interactions is reported.
"""

from __future__ import annotations

import json
import sqlite3
import sys
import time
from pathlib import Path

from crm_warehouse.settings import dbt_env

from bench.child import ChildResult, run_child
from bench.extract_load import BENCH_DIR, ROOT, ensure_world, fresh_database, log, pg_admin_url

# 640,000 customers over 60 days: about ten million fct_interactions rows (calls, call-center CDRs, surveys,
# forms and social mentions), fifteen million raw records with the dispositions
WORLD = {"seed": 11, "customers": 640_000, "days": 60, "start": "2026-09-01", "activity": 3.0}
QUICK_WORLD = {"seed": 11, "customers": 3_000, "days": 14, "start": "2026-09-01", "activity": 3.0}
DAY = 86_400
DATABASE = "crm_bench_warehouse"
GOAL_INCREMENTAL_SHARE = 0.10
PHASES = ("enrich", "dbt", "gate", "publish")
DBT_DIR = ROOT / "dbt_project"


def _phase(name: str, phase: str, url: str, work: Path, run_end: int, full: bool) -> ChildResult:
    env = dbt_env(url) | {"CRM_WAREHOUSE_URL": url, "GX_ANALYTICS_ENABLED": "false"}
    if phase == "dbt":
        dbt = str(Path(sys.executable).parent / "dbt")
        # the DAG's dbt task group builds models, seeds and snapshots; dbt's tests run in the gate
        argv = [dbt, "build", "--exclude-resource-type", "test", "unit_test", "--profiles-dir", str(DBT_DIR),
                "--project-dir", str(DBT_DIR), "--target-path", str(work / f"target-{name}"),
                "--log-path", str(work / "logs")]
        if full:
            argv.append("--full-refresh")
        # dbt prints no JSON report line: the child's own wall time is the figure
        result = run_child(f"{name}-dbt", argv, env, work / "logs", timeout=6 * 3600)
        if result.returncode == 0:
            result.report = {"seconds": round(result.wall, 1), **_dbt_breakdown(work / f"target-{name}")}
        return result
    argv = [sys.executable, "-m", "bench.warehouse_child", phase, url, str(run_end), str(work / "docs")]
    return run_child(f"{name}-{phase}", argv, env, work / "logs", timeout=6 * 3600)


def _dbt_breakdown(target: Path) -> dict:
    """Seconds of models and of tests, and the slowest nodes, from dbt's run_results.json."""
    path = target / "run_results.json"
    if not path.exists():
        return {}
    results = json.loads(path.read_text())["results"]
    by_kind: dict[str, float] = {}
    slowest = []
    for r in results:
        kind = r["unique_id"].split(".")[0]
        by_kind[kind] = by_kind.get(kind, 0.0) + float(r.get("execution_time") or 0.0)
        slowest.append((float(r.get("execution_time") or 0.0), r["unique_id"].split(".")[-1], kind))
    slowest.sort(reverse=True)
    return {"by_kind": {k: round(v, 1) for k, v in by_kind.items()}, "nodes": len(results),
            "slowest": [{"node": n, "kind": k, "seconds": round(s, 1)} for s, n, k in slowest[:8]]}


def _counts(url: str) -> dict[str, int]:
    import psycopg

    out = {}
    with psycopg.connect(url) as conn:
        for table in ("fct_interactions", "fct_complaints", "dim_customers", "fct_survey_feedback",
                      "fct_service_quality_daily"):
            out[table] = conn.execute(f"select count(*) from marts.{table}").fetchone()[0]
        out["raw records"] = conn.execute("select coalesce(sum(loaded), 0) from ops.batches").fetchone()[0]
    return out


def _land(url: str, world: Path, **bounds) -> tuple[dict[str, int], float]:
    import psycopg

    from sandbox.landing import land_served_records

    started = time.perf_counter()
    with psycopg.connect(url) as conn, sqlite3.connect(world / "world.db") as w:
        landed = land_served_records(conn, w, **bounds,
                                     progress=lambda table, n: log(f"landed {n:,} records into {table}"))
        conn.execute("analyze")
    return landed, time.perf_counter() - started


def run(*, quick: bool = False, pg_url: str | None = None) -> dict:
    from sandbox.landing import world_end

    BENCH_DIR.mkdir(parents=True, exist_ok=True)
    admin = pg_admin_url(pg_url)
    world = ensure_world("world-warehouse-quick" if quick else "world-warehouse-10m",
                         QUICK_WORLD if quick else WORLD)
    with sqlite3.connect(world / "world.db") as w:
        end = world_end(w)
    last_day = end - DAY
    work = BENCH_DIR / ("warehouse-quick" if quick else "warehouse")
    work.mkdir(parents=True, exist_ok=True)
    url = fresh_database(admin, DATABASE + ("_quick" if quick else ""))

    log("landing all but the last day into raw")
    landed_before, land_before_s = _land(url, world, available_before=last_day)
    log(f"landed {sum(landed_before.values()):,} records in {land_before_s:.0f} s")
    runs: dict[str, dict] = {}
    landed_after: dict[str, int] = {}
    land_after_s = 0.0
    for name, full, run_end in (("full", True, last_day), ("incremental", False, end)):
        if name == "incremental":
            log("landing the last day")
            landed_after, land_after_s = _land(url, world, available_from=last_day)
            log(f"landed {sum(landed_after.values()):,} records in {land_after_s:.0f} s")
        phases: dict[str, ChildResult] = {}
        for phase in PHASES:
            log(f"{name}: {phase}")
            result = _phase(name, phase, url, work, run_end, full)
            phases[phase] = result
            log(f"{name}: {phase} {'ok' if result.returncode == 0 else 'FAILED'} in {result.wall:.1f} s, "
                f"peak {result.peak_rss_mb:.0f} MB (log: {work / 'logs' / (name + '-' + phase + '.log')})")
            if result.returncode != 0:
                break
        runs[name] = {"phases": phases, "counts": _counts(url) if all(
            p.returncode == 0 for p in phases.values()) and len(phases) == len(PHASES) else {}}
        if not runs[name]["counts"]:
            log(f"{name} build failed: no incremental run on top of it")
            break
    return {"admin": admin, "world": world, "params": QUICK_WORLD if quick else WORLD, "runs": runs,
            "landed_before": sum(landed_before.values()), "land_before_s": land_before_s,
            "landed_after": sum(landed_after.values()), "land_after_s": land_after_s}


def ok(result: dict) -> bool:
    return all(len(r["phases"]) == len(PHASES) and all(p.returncode == 0 for p in r["phases"].values())
               for r in result["runs"].values())


def _gate(run: dict) -> str:
    rep = run["phases"]["gate"].report
    gate = rep.get("phase") or rep.get("gate") or {}
    return (f"{gate.get('checks', '?')} checks, of which {rep.get('dbt_tests', '?')} dbt tests "
            f"({rep.get('dbt_tests_seconds', '?')} s); GX suites {gate.get('duration_seconds', '?')} s")


def section(result: dict, facts: dict) -> str:
    full, inc = result["runs"]["full"], result["runs"]["incremental"]
    rows = []
    totals = {}
    for name, r in (("full build", full), ("one more day, incremental", inc)):
        total = sum(p.wall for p in r["phases"].values())
        totals[name] = total
        cells = " | ".join(f"{r['phases'][ph].wall:,.1f} s, {r['phases'][ph].peak_rss_mb:,.0f} MB"
                           if ph in r["phases"] else "-" for ph in PHASES)
        load = r["phases"][PHASES[-1]].load if PHASES[-1] in r["phases"] else ""
        rows.append(f"| {name} | {cells} | {total:,.1f} s | {load} |")
    share = totals["one more day, incremental"] / totals["full build"] if totals["full build"] else 0.0
    counts = inc["counts"]
    dbt_full = full["phases"]["dbt"].report
    dbt_inc = inc["phases"]["dbt"].report
    slow = lambda rep: ", ".join(f"{s['node']} {s['seconds']:.0f} s" for s in rep.get("slowest", [])[:6])  # noqa: E731
    verdict = "met" if share <= GOAL_INCREMENTAL_SHARE else "MISSED"
    return f"""Measured {facts['date']} by `make bench` (`python -m bench --only warehouse`).
Machine: {facts['cpus']}; {facts['ram']} RAM; {facts['postgres']}; Python {facts['python']}.
Load average (1, 5, 15 min) when the report was written: {facts['load']}.

World: `{result['params']}` landed straight into raw (`sandbox.landing`, COPY): {result['landed_before']:,} records
(all but the last day) in {result['land_before_s']:.0f} s, then the last day, {result['landed_after']:,} records, in
{result['land_after_s']:.0f} s. After the incremental run the published marts hold {counts.get('fct_interactions', 0):,}
interactions, {counts.get('fct_complaints', 0):,} complaints, {counts.get('dim_customers', 0):,} customers and
{counts.get('fct_survey_feedback', 0):,} survey answers.

Each phase is what the `transform_warehouse` DAG runs, in its own process (wall time, peak RSS of that process;
PostgreSQL's own memory is not in it):

| run | enrich | dbt build (models) | quality gate (dbt tests + GX suites) | publish | total | load average after |
|---|---:|---:|---:|---:|---:|---|
{chr(10).join(rows)}

- **One more day costs {share:.1%} of the full build** (goal at most {GOAL_INCREMENTAL_SHARE:.0%}: {verdict}).
- dbt, full: {dbt_full.get('nodes', 0)} nodes, {dbt_full.get('by_kind', {}).get('model', 0):,.0f} s of model time
  (summed over two dbt threads). Slowest: {slow(dbt_full)}.
- dbt, incremental: {dbt_inc.get('by_kind', {}).get('model', 0):,.0f} s of model time. Slowest: {slow(dbt_inc)}.
- **The quality gate at this size**: {full['phases']['gate'].wall:,.1f} s on the full build
  ({_gate(full)}), {inc['phases']['gate'].wall:,.1f} s on the incremental one ({_gate(inc)}).

Reproduce: `make bench` (all benchmarks) or `.venv/bin/python -m bench --only warehouse` (`--quick`: a
3,000-customer world, to check the harness). The world is generated once and cached under `.crm/bench/`;
the database `{DATABASE}` is dropped and re-created on the benchmark server. Logs of every phase:
`.crm/bench/warehouse/logs/`.
"""
