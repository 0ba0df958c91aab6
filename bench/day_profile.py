"""Where one more day's dbt time goes, on a world of any size: a tool for working on issue 5 point 4 without
waiting for a ten-million run.

    python -m bench.day_profile [--customers 64000] [--pg-url URL] [--rebase] [--gate] [--explain-ms 200]

1. A world of `--customers` people over 60 days (`bench.warehouse.WORLD`'s other parameters: 64,000 people is a
   tenth of it, about a million interactions) is generated under `.crm/bench/` and kept.
2. **Base** (once, or again with `--rebase`, after a change of the models' tables): a fresh database
   `crm_profile_<customers>_base` gets everything but the last day, enriched and built in full
   (`bench.warehouse`'s own phases). It is kept as a template.
3. **Day** (every run): `crm_profile_<customers>_day` is copied from the base, the last day is landed, and
   enrich and `dbt build` run incrementally. With `--explain-ms N`, the day's statements that take over N ms
   are logged with their plans by `auto_explain` (`log_analyze`, nested statements) to the server's log: a plan
   node that reads a whole table, or loops hundreds of times, is a cost that grows with the warehouse rather
   than with the day.

With `--gate` both builds also run the quality gate and publish, as the DAG does (the base's gate is the full
check, the day's checks what changed since it): the day's whole cost beside the full build's, which is what
issue 5 point 4 compares. A base built without the gate is built again.

Prints the seconds and rows written of every model, full build beside the day, slowest first, and writes them
to `.crm/bench/day-profile-<customers>.json`. The two databases are left for inspection: drop them with
`--drop`. Figures are seconds of one run; compare runs made on the same quiet machine.
"""

from __future__ import annotations

import argparse
import json
import sqlite3
from pathlib import Path

from bench.extract_load import BENCH_DIR, ensure_world, fresh_database, log, pg_admin_url
from bench.warehouse import DAY, WORLD, _land, _phase


def _database_exists(admin: str, name: str) -> bool:
    import psycopg

    with psycopg.connect(admin, autocommit=True) as conn:
        return conn.execute("select exists (select from pg_database where datname = %s)", (name,)).fetchone()[0]


def _drop(admin: str, *names: str) -> None:
    import psycopg
    from psycopg import sql

    with psycopg.connect(admin, autocommit=True) as conn:
        for name in names:
            conn.execute(sql.SQL("drop database if exists {} with (force)").format(sql.Identifier(name)))


def _explain(admin: str, name: str, min_ms: int | None) -> None:
    """auto_explain for the sessions of database `name` (loaded per session: no server restart)."""
    import psycopg
    from psycopg import sql

    db = sql.Identifier(name)
    with psycopg.connect(admin, autocommit=True) as conn:
        if min_ms is None:
            conn.execute(sql.SQL("alter database {} reset all").format(db))
            return
        for setting, value in (("session_preload_libraries", "auto_explain"),
                               ("auto_explain.log_min_duration", f"{min_ms}ms"),
                               ("auto_explain.log_analyze", "on"), ("auto_explain.log_nested_statements", "on"),
                               ("auto_explain.log_timing", "off")):
            conn.execute(sql.SQL("alter database {} set {} = {}").format(db, sql.SQL(setting), sql.Literal(value)))


def _models(target: Path) -> dict[str, dict]:
    results = json.loads((target / "run_results.json").read_text())["results"]
    return {r["unique_id"].split(".")[-1]: {"seconds": round(float(r.get("execution_time") or 0.0), 1),
                                             "rows": (r.get("adapter_response") or {}).get("rows_affected")}
            for r in results if r["unique_id"].startswith(("model.", "snapshot."))}


def _run(name: str, phases: tuple[str, ...], url: str, work: Path, run_end: int, full: bool) -> dict:
    out = {}
    for phase in phases:
        result = _phase(name, phase, url, work, run_end, full)
        if result.returncode != 0:
            raise SystemExit(f"{name} {phase} failed: see {work / 'logs' / (name + '-' + phase + '.log')}")
        out[phase] = round(result.wall, 1)
        detail = ""
        if phase == "gate":
            detail = (f" (scope {result.report.get('scope')}, {result.report.get('dbt_tests')} dbt tests in "
                      f"{result.report.get('dbt_tests_seconds')} s, then the suites)")
        log(f"{name}: {phase} {result.wall:.1f} s{detail}")
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.day_profile", description=__doc__.split("\n\n")[0])
    parser.add_argument("--customers", type=int, default=64_000)
    parser.add_argument("--pg-url", help="a server to use (its admin URL); default: the embedded one")
    parser.add_argument("--rebase", action="store_true", help="build the base (full build) again")
    parser.add_argument("--explain-ms", type=int, help="log the day's plans of statements over this many ms")
    parser.add_argument("--gate", action="store_true", help="also run the quality gate and publish (the whole day)")
    parser.add_argument("--drop", action="store_true", help="drop the two databases and stop")
    args = parser.parse_args(argv)

    from sandbox.landing import world_end

    admin = pg_admin_url(args.pg_url)
    base, day = f"crm_profile_{args.customers}_base", f"crm_profile_{args.customers}_day"
    if args.drop:
        _drop(admin, day, base)
        return 0
    params = {**WORLD, "customers": args.customers}
    world = ensure_world(f"world-profile-{args.customers}", params)
    with sqlite3.connect(world / "world.db") as w:
        end = world_end(w)
    work = BENCH_DIR / f"day-profile-{args.customers}"
    work.mkdir(parents=True, exist_ok=True)
    report_path = BENCH_DIR / f"day-profile-{args.customers}.json"
    report = json.loads(report_path.read_text()) if report_path.exists() and not args.rebase else {}
    phases_run = ("enrich", "dbt", "gate", "publish") if args.gate else ("enrich", "dbt")
    if (args.rebase or not _database_exists(admin, base) or "full" not in report
            or not set(phases_run) <= set(report["full"]["phases"])):
        url = fresh_database(admin, base)
        landed, seconds = _land(url, world, available_before=end - DAY)
        log(f"base: landed {sum(landed.values()):,} records in {seconds:.0f} s")
        phases = _run("full", phases_run, url, work, end - DAY, True)
        report = {"params": params, "full": {"phases": phases, "models": _models(work / "target-full")}}
        report_path.write_text(json.dumps(report, indent=1))
    url = fresh_database(admin, day, template=base)
    landed, seconds = _land(url, world, available_from=end - DAY)
    log(f"day: landed {sum(landed.values()):,} records in {seconds:.0f} s")
    _explain(admin, day, args.explain_ms)
    try:
        phases = _run("day", phases_run, url, work, end, False)
    finally:
        _explain(admin, day, None)
    report["day"] = {"phases": phases, "models": _models(work / "target-day")}
    report_path.write_text(json.dumps(report, indent=1))

    full, today = report["full"]["models"], report["day"]["models"]
    print(f"{'model':45} {'full s':>8} {'day s':>8} {'day rows':>10}")
    for model in sorted(today, key=lambda m: -today[m]["seconds"]):
        rows = today[model]["rows"]
        print(f"{model:45} {full.get(model, {}).get('seconds', 0):8.1f} {today[model]['seconds']:8.1f} "
              f"{'' if rows is None else f'{rows:,}':>10}")
    print(f"{'dbt (wall, whole run)':45} {report['full']['phases']['dbt']:8.1f} {phases['dbt']:8.1f}")
    for phase in phases:
        if phase != "dbt":
            print(f"{phase:45} {report['full']['phases'][phase]:8.1f} {phases[phase]:8.1f}")
    full_total = sum(report["full"]["phases"][phase] for phase in phases)
    print(f"{'total (' + ' + '.join(phases) + ')':45} {full_total:8.1f} {sum(phases.values()):8.1f}"
          f"   day share {sum(phases.values()) / full_total:.0%}")
    print(f"report: {report_path}; databases {base} and {day} (drop: --drop)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
