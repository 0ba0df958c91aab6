"""Contenders that run in the project's environment, one per process:

    python -m bench.contenders ours-calls '<json>'   # crm_warehouse.sources.run_stream over the sandbox API
    python -m bench.contenders ours-feed '<json>'    # crm_warehouse.files.run_feed over the sandbox SFTP
    python -m bench.contenders copy '<json>'         # plain COPY of prepared rows into the same raw table

Each prints one JSON line last: records, seconds (its timed section) and what it counted. Imports that an
Airflow worker has already loaded (Airflow itself, the providers) are done before the clock starts.
"""

from __future__ import annotations

import json
import sys
import time
from datetime import UTC, datetime


def _warm_imports() -> None:
    import airflow.sdk  # noqa: F401  (an Airflow worker has these loaded before a task starts)
    import crm_warehouse.files.sftp  # noqa: F401
    import crm_warehouse.sources.runner  # noqa: F401
    from airflow.providers.sftp.hooks.sftp import SFTPHook  # noqa: F401


def ours_calls(args: dict) -> dict:
    from crm_warehouse.sources import run_stream

    _warm_imports()
    start = datetime.fromisoformat(args["start"]).astimezone(UTC)
    end = datetime.fromisoformat(args["end"]).astimezone(UTC)
    t0 = time.perf_counter()
    stats = run_stream("phone_system", "calls", start, end, conn_id="phone_system", warehouse_url=args["url"])
    seconds = time.perf_counter() - t0
    return {"records": stats["received"], "seconds": seconds, "loaded": stats["loaded"],
            "duplicate": stats["duplicate"], "quarantined": stats["quarantined"], "pages": stats["pages"],
            "requests": stats["requests"], "batches": len(stats["batches"])}


def ours_feed(args: dict) -> dict:
    from crm_warehouse.files import run_feed

    _warm_imports()
    t0 = time.perf_counter()
    stats = run_feed(args["feed"], conn_id="survey_vendor_sftp", warehouse_url=args["url"])
    seconds = time.perf_counter() - t0
    return {"records": stats["received"], "seconds": seconds, "loaded": stats["loaded"],
            "duplicate": stats["duplicate"], "quarantined": stats["quarantined"],
            "files": stats["files_loaded"], "rejected": stats["files_rejected"]}


def plain_copy(args: dict) -> dict:
    """`COPY ... FROM STDIN` of a prepared file (COPY text format, every column already computed) into
    `raw.<table>` created with the loader's own DDL: the ceiling of what landing these rows can cost."""
    import psycopg
    from crm_warehouse.load import ensure_ops_tables, ensure_raw_table
    from crm_warehouse.load.ddl import raw_table
    from psycopg import sql

    source, stream = args["source"], args["stream"]
    with psycopg.connect(args["url"], autocommit=True) as conn:
        ensure_ops_tables(conn)
        ensure_raw_table(conn, source, stream)
        t0 = time.perf_counter()
        with conn.transaction(), conn.cursor() as cur, cur.copy(
            sql.SQL("copy {} (record_key, content_hash, payload, source_object, batch_id, source_uri,"
                    " source_position) from stdin").format(raw_table(source, stream))
        ) as copy, open(args["file"], "rb") as fh:
            while block := fh.read(1 << 20):
                copy.write(block)
        seconds = time.perf_counter() - t0
        rows = conn.execute(sql.SQL("select count(*) from {}").format(raw_table(source, stream))).fetchone()[0]
    return {"records": rows, "seconds": seconds, "loaded": rows}


CONTENDERS = {"ours-calls": ours_calls, "ours-feed": ours_feed, "copy": plain_copy}


def main(argv: list[str]) -> int:
    if len(argv) != 2 or argv[0] not in CONTENDERS:
        print(f"usage: python -m bench.contenders {{{'|'.join(CONTENDERS)}}} '<json args>'", file=sys.stderr)
        return 2
    import logging

    logging.basicConfig(level=logging.INFO, stream=sys.stderr)  # per-batch "hash+copy / insert" seconds in the log
    result = CONTENDERS[argv[0]](json.loads(argv[1]))
    print(json.dumps(result), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
