"""`python -m sandbox up [--world DIR] [--seed N] [--customers N] [--days N] [--host ADDR] [--json]`

Generates the world if absent, starts every vendor, the SFTP drop and the admin port on loopback,
prints endpoints, ports and credentials, and serves until Ctrl-C.
"""

from __future__ import annotations

import argparse
import faulthandler
import json
import signal
import sys
import threading
from pathlib import Path

from sandbox import world as W
from sandbox.serve import ENDPOINTS, Sandbox


def _world_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--world", default=".crm/sandbox", help="world directory (default .crm/sandbox)")
    p.add_argument("--seed", type=int, default=7)
    p.add_argument("--customers", type=int, default=2000)
    p.add_argument("--days", type=int, default=30)
    p.add_argument("--start", default="2026-09-01", help="first world day (UTC)")
    p.add_argument("--activity", type=float, default=1.0)


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m sandbox", description="Local stand-ins for every CRM vendor.")
    sub = p.add_subparsers(dest="command", required=True)
    up = sub.add_parser("up", help="generate the world if absent and serve it until Ctrl-C")
    _world_args(up)
    up.add_argument("--clock", default=None, help="world time to start at (ISO 8601; default: end of world)")
    up.add_argument("--regenerate", action="store_true", help="generate the world even if it exists")
    up.add_argument("--host", default="127.0.0.1",
                    help="address to listen on (default 127.0.0.1; 0.0.0.0 for every interface, as in Docker)")
    up.add_argument("--advertise", default=None, metavar="HOST",
                    help="host name the printed connections use (default: --host, or this machine's name "
                         "when listening on every interface)")
    up.add_argument("--live-calls", action="store_true",
                    help="serve calls from their start (in-progress, then unpriced for 10 minutes), as Twilio does")
    up.add_argument("--json", action="store_true", help="print one JSON document instead of text")
    gen = sub.add_parser("generate", help="only generate the world and print its summary")
    _world_args(gen)
    return p


def _ensure_world(args: argparse.Namespace, quiet: bool) -> Path:
    world_dir = Path(args.world)
    db = world_dir / W.DB_NAME
    if db.exists() and not getattr(args, "regenerate", False):
        import sqlite3

        with sqlite3.connect(db) as conn:
            meta = {k: json.loads(v) for k, v in conn.execute("select key, value from meta")}
        wanted = {"seed": args.seed, "customers": args.customers, "days": args.days}
        if any(meta.get(k) != v for k, v in wanted.items()) and not quiet:
            print(f"note: reusing the world in {world_dir} (seed {meta['seed']}, {meta['customers']} customers, "
                  f"{meta['days']} days); pass --regenerate to rebuild it", file=sys.stderr)
        return world_dir
    if not quiet:
        print(f"generating the world in {world_dir} ...", file=sys.stderr)
    summary = W.generate(world_dir, seed=args.seed, customers=args.customers, days=args.days,
                         start=args.start, activity=args.activity)
    if not quiet:
        print(f"  {summary['interactions']} records in {summary['seconds']} s", file=sys.stderr)
    return world_dir


def _print_text(info: dict) -> None:
    print(f"CRM sandbox: world {info['world']} (seed {info['seed']}), clock {info['clock']}")
    print(f"  world time {info['world_start']} .. {info['world_end']}")
    for conn_id, c in info["connections"].items():
        where = c["host"] + (f":{c['port']}" if c.get("port") else "")
        print(f"  {conn_id:<20} {where}")
        print(f"  {'':<20} login={c.get('login')!s} password={c.get('password')}")
        extra = {k: v for k, v in c.get("extra", {}).items() if k != "feeds"}
        print(f"  {'':<20} extra={json.dumps(extra)}")
    if info.get("admin"):
        print(f"  admin                {info['admin']}  (GET /, POST /clock, POST /faults, POST /faults/clear)")
        print(f"  fault endpoints: {', '.join(ENDPOINTS)}")
    print("  Airflow: export AIRFLOW_CONN_<ID>='<the connection JSON>' (see --json). Ctrl-C to stop.")


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.command == "generate":
        summary = W.generate(args.world, seed=args.seed, customers=args.customers, days=args.days,
                             start=args.start, activity=args.activity)
        print(json.dumps(summary, indent=2))
        return 0
    world_dir = _ensure_world(args, quiet=args.json)
    sb = Sandbox(world_dir, host=args.host, clock=None, live_calls=args.live_calls, advertise=args.advertise)
    if args.clock:
        sb.set_clock(args.clock)
    sb.start()
    info = sb.describe()
    if args.json:
        print(json.dumps(info, indent=2), flush=True)
    else:
        _print_text(info)
        sys.stdout.flush()
    stop = threading.Event()
    # Ctrl-C and SIGTERM (docker stop) both stop it. SIGINT gets a handler of its own: a process started in
    # the background by a non-interactive shell (`make test &`, CI runners) inherits SIGINT *ignored*, and
    # Python then never raises KeyboardInterrupt, so the sandbox would not stop on Ctrl-C there.
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    faulthandler.register(signal.SIGUSR1, all_threads=True)  # `kill -USR1 <pid>`: every thread's stack to stderr
    try:
        while not stop.wait(0.5):
            pass
    finally:
        sb.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
