"""The `crm` command: run the demo, find the warehouse, serve the sandbox, see what ran.

    crm demo                 the whole pipeline on a seeded sandbox world, through Airflow
    crm warehouse url        a PostgreSQL URL where the demo warehouse answers (starts it if stopped)
    crm sandbox up [--json]  serve the sandbox vendors until Ctrl-C and print their endpoints
    crm status               per source and stream: last run, records, outcome
    crm docs                 serve dbt docs, Data Docs and the insight report
    crm airflow              Airflow standalone (UI) on this project, pointed at the same warehouse
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import time
import warnings
from datetime import UTC, datetime, timedelta
from pathlib import Path

from crm_warehouse.settings import crm_home, docs_dir

# platformdirs warns when XDG_RUNTIME_DIR is unset (containers, CI); its fallback is fine for us
warnings.filterwarnings("ignore", message=".*XDG_RUNTIME_DIR.*")

DEMO_WORLD = {"seed": 7, "customers": 2000, "days": 30, "start": "2026-09-01"}


def _console():
    from rich.console import Console

    return Console(stderr=True, highlight=False)


# --------------------------------------------------------------------------------------- warehouse
def warehouse_url(*, start: bool = True) -> str:
    """`CRM_WAREHOUSE_URL` if set, else the embedded server under `.crm/pg` (started if stopped)."""
    configured = os.environ.get("CRM_WAREHOUSE_URL")
    if configured:
        return configured
    from crm_warehouse.embedded import EmbeddedPostgres

    server = EmbeddedPostgres(crm_home() / "pg")
    return server.ensure_running() if start else server.url()


def cmd_warehouse(args) -> int:
    if args.action == "url":
        print(warehouse_url())
        return 0
    if args.action == "stop":
        from crm_warehouse.embedded import EmbeddedPostgres

        EmbeddedPostgres(crm_home() / "pg").stop()
        return 0
    return 2


# ----------------------------------------------------------------------------------------- sandbox
def _world_dir() -> Path:
    return crm_home() / "world"


def _ensure_world(world: dict, console) -> Path:
    """Generate the sandbox world once (deterministic by seed); re-used by later runs."""
    from sandbox.world import generate  # the sandbox is a dev tool: imported only by these commands

    world_dir = _world_dir()
    marker = world_dir / "demo-world.json"
    if not (marker.exists() and json.loads(marker.read_text()) == world and (world_dir / "world.db").exists()):
        with console.status(f"Generating the sandbox world ({world['customers']} customers, "
                            f"{world['days']} days, seed {world['seed']})..."):
            world_dir.mkdir(parents=True, exist_ok=True)
            generate(world_dir, **world)
            marker.write_text(json.dumps(world))
    return world_dir


def cmd_sandbox(args) -> int:
    console = _console()
    world = {**DEMO_WORLD, **{k: v for k, v in (("seed", args.seed), ("customers", args.customers),
                                                  ("days", args.days)) if v is not None}}
    world_dir = _ensure_world(world, console)
    from sandbox.serve import Sandbox

    box = Sandbox(world_dir, host=args.host)
    box.start()
    try:
        described = box.describe() if hasattr(box, "describe") else {"connections": box.connections}
        if args.json:
            print(json.dumps(described, indent=2, default=str), flush=True)
        else:
            console.print(f"[bold]Sandbox vendors serving world {world_dir}[/bold] (Ctrl-C to stop)")
            for conn_id, conn in box.connections.items():
                where = conn["host"] if "://" in str(conn.get("host")) else f"{conn.get('host')}:{conn.get('port')}"
                console.print(f"  {conn_id:20} {conn['conn_type']:5} {where}  login={conn.get('login') or '-'}  "
                              f"password={conn.get('password') or '-'}  extra={json.dumps(conn.get('extra', {}))}")
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        return 0
    finally:
        box.stop()


# -------------------------------------------------------------------------------------------- demo
def cmd_demo(args) -> int:
    from crm_warehouse import runtime

    console = _console()
    home = crm_home()
    logs = home / "logs"
    t0 = time.monotonic()
    console.rule("[bold]CRM Warehouse demo")

    with console.status("Starting the warehouse (PostgreSQL)..."):
        url = warehouse_url()
    from crm_warehouse.warehouse import redact

    console.print(f"[green]✓[/green] warehouse at {redact(url)}"
                  + ("" if os.environ.get("CRM_WAREHOUSE_URL") else " (embedded; `crm warehouse url`)"))

    world = dict(DEMO_WORLD)
    world_dir = _ensure_world(world, console)
    console.print(f"[green]✓[/green] sandbox world in {world_dir}")

    from sandbox.serve import Sandbox

    box = Sandbox(world_dir)
    box.start()
    try:
        console.print(f"[green]✓[/green] sandbox vendors on loopback: {', '.join(sorted(box.connections))}")
        connections = {**box.connections, "warehouse": runtime.warehouse_connection(url)}
        env = runtime.airflow_env(connections, home=home)
        with console.status("Preparing Airflow's metadata database and the dbt manifest..."):
            runtime.migrate_metadata(env, logs / "airflow-db-migrate.log")
            runtime.dbt_parse(env, logs / "dbt-parse.log")
        console.print("[green]✓[/green] Airflow metadata and dbt manifest ready")

        start = datetime.fromisoformat(world["start"]).replace(tzinfo=UTC)
        end = start + timedelta(days=world["days"])
        results = []
        for dag_id in runtime.ALL_DAGS:
            window = (start, end)
            what = f"Running {dag_id} through Airflow (window {start:%Y-%m-%d} .. {end:%Y-%m-%d})"
            with console.status(what + "...") as status:
                done = [0]

                def progress(task_id: str, status=status, what=what, done=done) -> None:
                    done[0] += 1
                    status.update(f"{what}: task {done[0]} {task_id}")

                result = runtime.dags_test(dag_id, logical_date=end, window=window, env=env,
                                           log=logs / f"{dag_id}.log", on_task=progress)
            results.append(result)
            mark = "[green]✓[/green]" if result.ok else "[red]✗[/red]"
            console.print(f"{mark} {dag_id:24} {result.seconds:6.1f} s   log: {result.log}")
            if not result.ok:
                console.print(f"[red]{dag_id} failed[/red] (tasks: {', '.join(result.failed_tasks) or '?'}):\n"
                              f"{result.message}\nSee the full log above, fix, and run `make demo` again: "
                              "finished work is kept and nothing is loaded twice.")
                return 1
    finally:
        box.stop()

    print_summary(url, console)
    console.print(f"\nDone in {time.monotonic() - t0:.0f} s. Run `crm docs` to browse the docs, "
                  "`crm status` for the last runs.")
    return 0


def print_summary(url: str, console) -> None:
    from rich.table import Table

    from crm_warehouse.status import summary

    s = summary(url)
    raw = Table(title="Rows landed per raw table", show_edge=False)
    raw.add_column("table")
    raw.add_column("rows", justify="right")
    raw.add_column("quarantined", justify="right")
    for row in s["raw"]:
        raw.add_row(row["table"], f"{row['rows']:,}", f"{row['quarantined']:,}")
    console.print(raw)
    console.print(f"Customers resolved: [bold]{s['customers']:,}[/bold] from {s['source_records']:,} source records")
    comp = Table(title="Complaints per channel", show_edge=False)
    comp.add_column("channel")
    comp.add_column("complaints", justify="right")
    comp.add_column("rectified", justify="right")
    for row in s["complaints"]:
        comp.add_row(row["channel"], f"{row['complaints']:,}", f"{row['rectified']:,}")
    console.print(comp)
    q = s["quality"]
    console.print(f"Quality gate: [bold]{q['outcome']}[/bold] ({q['checks']} checks, {q['failed_critical']} critical "
                  f"failures, {q['warnings']} warnings)")
    for name, path in s["docs"].items():
        console.print(f"  {name:12} {path}")


# ------------------------------------------------------------------------------------------ status
def cmd_status(args) -> int:
    from rich.table import Table

    from crm_warehouse.status import last_runs

    console = _console()
    rows = last_runs(warehouse_url())
    if args.json:
        print(json.dumps(rows, indent=2, default=str))
        return 0
    if not rows:
        console.print("Nothing has run yet: `make demo` runs every DAG once.")
        return 0
    table = Table(title="Last run per source and stream (UTC)", box=None, pad_edge=False)
    for col, justify in (("source", "left"), ("stream", "left"), ("finished", "left"), ("window", "left"),
                         ("received", "right"), ("loaded", "right"), ("dup", "right"), ("quar", "right"),
                         ("outcome", "left")):
        table.add_column(col, justify=justify, no_wrap=True)
    for r in rows:
        finished = r["finished_at"].strftime("%m-%d %H:%M") if r["finished_at"] else "-"
        outcome = r["status"] if r["status"] == "succeeded" else f"[red]{r['status']}[/red]"
        table.add_row(r["source"], r["stream"], finished, _short_window(r["window"]), f"{r['received']:,}",
                      f"{r['loaded']:,}", f"{r['duplicate']:,}", f"{r['quarantined']:,}", outcome)
    if not console.is_terminal:
        console.width = max(console.width, 140)
    console.print(table)
    return 0


def _short_window(window: str) -> str:
    """'2026-09-01 00:00 .. 2026-10-01 00:00' -> '09-01..10-01' (midnights), else as given."""
    parts = [p.strip() for p in window.split("..")] if window and ".." in window else []
    if len(parts) == 2 and all(p.endswith("00:00") and len(p) >= 16 for p in parts):
        return f"{parts[0][5:10]}..{parts[1][5:10]}"
    return window or "-"


# -------------------------------------------------------------------------------------------- docs
def cmd_docs(args) -> int:
    import functools
    import http.server

    console = _console()
    root = docs_dir()
    if not root.exists():
        console.print(f"No docs in {root} yet: `make demo` builds them.")
        return 1
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(root))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", args.port), handler)
    base = f"http://127.0.0.1:{server.server_address[1]}"
    for name in sorted(p.name for p in root.iterdir() if p.is_dir()):
        console.print(f"  {name:12} {base}/{name}/")
    console.print("Serving until Ctrl-C.")
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    return 0


# ----------------------------------------------------------------------------------------- airflow
def cmd_airflow(args) -> int:
    """`airflow standalone` on this project: UI, scheduler, triggerer, with the sandbox vendors."""
    from crm_warehouse import runtime

    console = _console()
    url = warehouse_url()
    connections = {"warehouse": runtime.warehouse_connection(url)}
    box = None
    if not args.no_sandbox:
        from sandbox.serve import Sandbox

        box = Sandbox(_ensure_world(dict(DEMO_WORLD), console))
        box.start()
        connections.update(box.connections)
    env = runtime.airflow_env(connections)
    env["AIRFLOW__API__PORT"] = str(args.port)
    runtime.dbt_parse(env, crm_home() / "logs" / "dbt-parse.log")
    console.print(f"Airflow UI on http://127.0.0.1:{args.port} (admin password printed by Airflow below)")
    import subprocess

    try:
        return subprocess.call([runtime.airflow_bin(), "standalone"], env=env)
    except KeyboardInterrupt:
        return 0
    finally:
        if box:
            box.stop()


# -------------------------------------------------------------------------------------------- main
def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="crm", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)

    sub.add_parser("demo", help="run the whole pipeline on a sandbox world").set_defaults(func=cmd_demo)

    wh = sub.add_parser("warehouse", help="the demo warehouse")
    wh.add_argument("action", choices=["url", "stop"])
    wh.set_defaults(func=cmd_warehouse)

    sb = sub.add_parser("sandbox", help="the sandbox vendors")
    sb.add_argument("action", choices=["up"])
    sb.add_argument("--json", action="store_true", help="print endpoints and credentials as JSON")
    sb.add_argument("--seed", type=int)
    sb.add_argument("--customers", type=int)
    sb.add_argument("--days", type=int)
    sb.add_argument("--host", default="127.0.0.1", help="address to listen on (0.0.0.0: every interface)")
    sb.set_defaults(func=cmd_sandbox)

    st = sub.add_parser("status", help="what ran last, per source")
    st.add_argument("--json", action="store_true")
    st.set_defaults(func=cmd_status)

    dc = sub.add_parser("docs", help="serve dbt docs, Data Docs and the insight report")
    dc.add_argument("--port", type=int, default=8089)
    dc.set_defaults(func=cmd_docs)

    af = sub.add_parser("airflow", help="Airflow standalone with the UI on this project")
    af.add_argument("--port", type=int, default=8080)
    af.add_argument("--no-sandbox", action="store_true", help="use the connections you configured instead")
    af.set_defaults(func=cmd_airflow)
    return parser


def main(argv: list[str] | None = None) -> int:
    for key, value in {"AIRFLOW__COSMOS__ENABLE_TELEMETRY": "false", "GX_ANALYTICS_ENABLED": "false",
                       "DBT_SEND_ANONYMOUS_USAGE_STATS": "false", "DO_NOT_TRACK": "1"}.items():
        os.environ.setdefault(key, value)
    args = build_parser().parse_args(argv)
    # Ctrl-C stops every command, even one started in the background by a non-interactive shell, which
    # starts it with SIGINT ignored (Python then never raises KeyboardInterrupt)
    signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        return args.func(args)
    except RuntimeError as exc:
        _console().print(f"[red]error:[/red] {exc}")
        return 1


if __name__ == "__main__":
    sys.exit(main())
