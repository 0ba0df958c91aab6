"""`python -m bench [--quick] [--only NAME ...] [--pg-url URL]`: run the benchmarks, print the figures and
write them into BENCHMARKS.md (full runs only; `--quick` is a smoke run of the harness and writes nothing,
nor does a run of some `--datasets` or `--contenders` only)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from bench import extract_load
from bench.report import machine_facts, replace_section

BENCHMARKS_MD = Path(__file__).resolve().parent.parent / "BENCHMARKS.md"
SECTION = "Extract and load"


def extract_section(result: dict, facts: dict) -> str:
    rows = result["rows"]
    return f"""Measured {facts['date']} by `make bench` (`python -m bench --only extract`).
Machine: {facts['cpus']}; {facts['ram']} RAM; {facts['postgres']}; Python {facts['python']}.
Load average (1, 5, 15 min) when the report was written: {facts['load']}; each row gives the load average
right after its contender finished. The machine was shared with other work, so figures are noisy.

{extract_load.table(rows)}

{extract_load.goals(rows)}

What is measured:
- **calls**: {_records(rows, 'calls')} Twilio call records of a generated sandbox world
  (`{extract_load.CALLS_WORLD}`), paged through the Calls API, 1,000 per page via `next_page_uri`. The
  sandbox builds each page in Python on demand ({_sandbox_rate(result)}), slower than
  the contenders, so its answers are recorded once and replayed byte for byte over HTTP (`bench/replay.py`:
  same URLs, bodies and `next_page_uri` chain, Basic auth, keep-alive) to every contender.
- **survey**: {_records(rows, 'survey')} survey rows (Qualtrics CSV columns) in {extract_load.SURVEY_FILES} files on
  the sandbox's SFTP server, rotating through plain, gzip, BOM, zip, UTF-16, Windows-1252, semicolon,
  single-header and tab variants.
- **ours**: `crm_warehouse.sources.run_stream("phone_system", "calls", ...)` over the world's whole window, and
  `crm_warehouse.files.run_feed("survey_vendor")`, as the DAGs call them: canonical JSON, sha256 content hash,
  schema profile, each key compared with its latest version (a probe of a sample of the batch's keys; when
  none is in the table yet, `COPY` straight into `raw.<source>__<stream>` and one index probe per key
  afterwards, else `COPY` into a temporary table and an insert of the new versions), ledger and cursor in
  the same transaction (calls: a commit every 50,000 records, the next pages fetched by a thread meanwhile).
- **dlt**: dlt {_dlt_version(rows)} in its own virtualenv (`bench/dlt_pipeline.py`): a `requests` generator paging
  the same API (survey: paramiko download, decompression, decoding and `csv` parsing of the same files) as a
  dlt resource, each record as one `json` column (jsonb) beside its key, `write_disposition="append"` (no
  deduplication, dlt's cheapest) and dlt's default PostgreSQL loader file format.
- **copy**: the same records, prepared beforehand with every column computed (canonical JSON, hash, lineage),
  streamed by one `COPY ... FROM STDIN` into the same raw table (same DDL and primary key). No extraction, no
  parsing: the floor of what landing these rows costs.
- records/s = records landed / seconds of the contender's timed section (imports that an Airflow worker or a
  dlt user has already loaded are done before the clock starts); peak RSS is `ru_maxrss` of the contender's
  process; "sandbox CPU" is what the vendor stand-in (same process as the benchmark) spent serving it. Every
  contender runs alone, one after the other, into a fresh database on the same server.
"""


def _records(rows, dataset: str) -> str:
    for r in rows:
        if r.dataset == dataset and r.contender == "copy" and r.result.ok:
            return f"{r.records:,}"
    return "about 1M"


def _sandbox_rate(result: dict) -> str:
    rec = result.get("recorded") or {}
    if not rec.get("seconds"):
        return "recorded earlier"
    return (f"when recorded it served {rec['records']:,} calls in {rec['seconds']:.0f} s, "
            f"{rec['records'] / rec['seconds']:,.0f}/s")


def _dlt_version(rows) -> str:
    for r in rows:
        if r.contender == "dlt" and r.result.report.get("dlt"):
            return r.result.report["dlt"]
    return extract_load.DLT_REQUIREMENTS[0]


def run_extract(args) -> int:
    result = extract_load.run(quick=args.quick, pg_url=args.pg_url,
                              datasets=tuple(args.datasets.split(",")),
                              contenders=tuple(args.contenders.split(",")))
    facts = machine_facts(result["admin"])
    body = extract_section(result, facts)
    print(body)
    failed = [r for r in result["rows"] if not r.result.ok]
    partial = (set(args.datasets.split(",")) != set(extract_load.DATASETS)
               or set(args.contenders.split(",")) != set(extract_load.CONTENDERS))
    if args.quick or partial:
        print("(--quick or a subset of data sets/contenders: BENCHMARKS.md left as it was)", file=sys.stderr)
    elif failed:
        print(f"{len(failed)} contender(s) failed: BENCHMARKS.md left as it was", file=sys.stderr)
    else:
        replace_section(BENCHMARKS_MD, SECTION, body)
        print(f"wrote section {SECTION!r} of {BENCHMARKS_MD}", file=sys.stderr)
    return 1 if failed else 0


# Each benchmark: name -> callable(args) returning an exit code. A benchmark writes its own section of
# BENCHMARKS.md (bench.report.replace_section) on a full run and leaves the others alone.
def _report(args, title: str, body: str) -> int:
    """Print a benchmark's section; write it into BENCHMARKS.md unless the run was --quick."""
    print(body)
    if args.quick:
        print("(--quick: BENCHMARKS.md left as it was)", file=sys.stderr)
    else:
        replace_section(BENCHMARKS_MD, title, body)
    return 0


def run_warehouse(args) -> int:
    from bench import warehouse

    result = warehouse.run(quick=args.quick, pg_url=args.pg_url)
    if not warehouse.ok(result):
        print("a phase failed (see the logs named above): BENCHMARKS.md left as it was", file=sys.stderr)
        return 1
    return _report(args, "Warehouse at ten million interactions",
                   warehouse.section(result, machine_facts(result["admin"])))


def run_pipeline(args) -> int:
    from bench import pipeline
    from bench.extract_load import pg_admin_url

    title = "Pipeline end to end on Celery"
    admin = pg_admin_url(args.pg_url)

    def write(row: dict) -> None:
        # each (world, workers) row is stored and the section rewritten as soon as it is measured: a
        # ten-million run takes hours per worker count and must not lose the first if the second fails
        if args.quick:
            return
        rows = pipeline.save_result(row)
        replace_section(BENCHMARKS_MD, title, pipeline.section(rows, machine_facts(admin)))
        print(f"wrote row {row['world']}/{row['workers']}w into {pipeline.RESULTS} and section {title!r}",
              file=sys.stderr)

    result = pipeline.run(quick=args.quick, pg_url=admin, worlds=tuple(args.pipeline_worlds.split(",")),
                          workers_list=tuple(int(n) for n in args.pipeline_workers.split(",")), on_row=write)
    rows = result["rows"] if args.quick else pipeline.load_results()
    print(pipeline.section(rows, machine_facts(result["admin"])))
    return 0


BENCHMARKS = {
    "extract": run_extract,
    "warehouse": run_warehouse,
    "pipeline": run_pipeline,
    "identity": lambda args: __import__("bench.identity").identity.bench_main(args, BENCHMARKS_MD),
}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="small data: checks the harness in a minute")
    parser.add_argument("--only", choices=sorted(BENCHMARKS), action="append",
                        help="run this benchmark (repeatable; default: all, in order)")
    parser.add_argument("--pg-url", help="PostgreSQL server URL (default: $CRM_BENCH_PG_URL, "
                        "$CRM_WAREHOUSE_URL, else the embedded server)")
    parser.add_argument("--datasets", default=",".join(extract_load.DATASETS), help="calls,survey")
    parser.add_argument("--contenders", default=",".join(extract_load.CONTENDERS), help="ours,dlt,copy")
    parser.add_argument("--pipeline-worlds", default="default",
                        help="worlds of the pipeline benchmark: default,10m (10m: hours)")
    parser.add_argument("--pipeline-workers", default="1,2",
                        help="Celery worker counts of the pipeline benchmark (default 1,2)")
    args = parser.parse_args(argv)

    rc = 0
    for name in args.only or list(BENCHMARKS):
        print(f"== benchmark {name}", file=sys.stderr)
        rc = max(rc, BENCHMARKS[name](args))
    return rc


if __name__ == "__main__":
    sys.exit(main())
