"""Extract-and-load throughput: ours against dlt and against a plain COPY, on the same records.

Two data sets, each served by the sandbox (the benchmark may know the sandbox; production code never does):

- **calls**: about 1M Twilio call records of a generated world, paged through the sandbox's Calls API
  (1,000 per page, `next_page_uri`);
- **survey**: 1M survey rows (the vendor's Qualtrics CSV columns, taken from the world's own survey drops
  and repeated under new ResponseIds) written as 20 files into the sandbox's SFTP folder layout, in the
  variants vendors send (plain, gzip, BOM, zip, UTF-16, Windows-1252, semicolon, single header, tab).

Contenders, each in its own process, one after the other, each into a fresh database on the same server:

- **ours**: `crm_warehouse.sources.run_stream` / `crm_warehouse.files.run_feed`, exactly as the DAGs call them;
- **dlt**: `bench/dlt_pipeline.py` in its own environment (`.crm/bench/dlt-venv`, made here with uv);
- **COPY**: the same rows, already rendered with every column computed, `COPY`ed into the same raw
  table (same DDL, same primary key): what landing these rows costs at the least.

Worlds, survey files and the prepared COPY files are cached under `.crm/bench/` (keyed by their sizes).
"""

from __future__ import annotations

import contextlib
import gzip
import hashlib
import io
import json
import os
import shutil
import sqlite3
import subprocess
import sys
import time
import zipfile
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from bench.child import ChildResult, run_child
from bench.replay import Replay, record_calls

ROOT = Path(__file__).resolve().parent.parent
BENCH_DIR = ROOT / ".crm" / "bench"
UV = ROOT / ".tools" / "bin" / "uv"
DLT_REQUIREMENTS = ["dlt[postgres]==1.31.0", "paramiko==5.1.0"]

CALLS_WORLD = {"seed": 7, "customers": 128_000, "days": 60, "start": "2026-09-01", "activity": 3.0}
QUICK_CALLS_WORLD = {"seed": 7, "customers": 3_000, "days": 14, "start": "2026-09-01", "activity": 3.0}
SURVEY_ROWS, SURVEY_FILES = 1_000_000, 20
QUICK_SURVEY_ROWS, QUICK_SURVEY_FILES = 30_000, 3
SURVEY_VARIANTS = ["plain", "gzip", "bom", "zip", "utf16", "cp1252", "semicolon", "single_header", "tab"]
SURVEY_FEED = "survey_vendor"
DATASETS = ("calls", "survey")
CONTENDERS = ("ours", "dlt", "copy")
GOAL_VS_DLT = 10.0
GOAL_VS_COPY = 0.5


@dataclass
class Row:
    dataset: str
    contender: str
    result: ChildResult

    @property
    def records(self) -> int:
        return int(self.result.report.get("records", 0))

    @property
    def seconds(self) -> float:
        return float(self.result.report.get("seconds", 0.0))

    @property
    def rate(self) -> float:
        return self.records / self.seconds if self.seconds else 0.0


def log(msg: str) -> None:
    print(f"[bench {datetime.now().strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


# --- inputs ----------------------------------------------------------------------------------------
def _world_readable(path: Path) -> bool:
    import sqlite3

    try:
        with sqlite3.connect(f"file:{path}?mode=ro", uri=True) as db:
            tables = db.execute("select count(*) from sqlite_master").fetchone()[0]
            pages = db.execute("pragma page_count").fetchone()[0]
            page_size = db.execute("pragma page_size").fetchone()[0]
    except sqlite3.DatabaseError:
        return False
    # the header's page count against the file: a file cut short holds fewer pages than it says
    return tables > 0 and path.stat().st_size >= pages * page_size


def ensure_world(name: str, params: dict) -> Path:
    """A generated sandbox world under .crm/bench/<name>, reused while its parameters are unchanged."""
    from sandbox.world import generate

    world = BENCH_DIR / name
    marker = world / "bench_world.json"
    # a world.db emptied or cut short (truncated to free disk) is generated again
    if marker.exists() and (world / "world.db").exists() and _world_readable(world / "world.db"):
        meta = json.loads(marker.read_text())
        if meta.get("params") == params:
            log(f"reusing world {world} ({meta['counts']['s_calls']:,} calls)")
            return world
    log(f"generating world {world} {params} (a minute or a few)")
    t0 = time.perf_counter()
    summary = generate(world, **params)
    marker.write_text(json.dumps({"params": params, "counts": summary["counts"],
                                  "seconds": round(time.perf_counter() - t0, 1)}))
    return world


def ensure_tool_venv(name: str, requirements: list[str]) -> Path:
    """A tool the benchmarks compare against (dlt, Splink) in its own virtualenv `.crm/bench/<name>`, never in
    the project's lock, pinned to `requirements`; made again when they change. Returns its python."""
    venv = BENCH_DIR / name
    python = venv / "bin" / "python"
    stamp = venv / "bench-requirements.txt"
    wanted = "\n".join(requirements)
    if python.exists() and stamp.exists() and stamp.read_text() == wanted:
        return python
    log(f"installing {', '.join(requirements)} into {venv}")
    if venv.exists():
        shutil.rmtree(venv)
    env = {**os.environ, "UV_PYTHON_DOWNLOADS": "never"}
    subprocess.run([str(UV), "venv", "--quiet", "--python", sys.executable, str(venv)], check=True, env=env)
    subprocess.run([str(UV), "pip", "install", "--quiet", "--python", str(python), *requirements],
                   check=True, env=env)
    stamp.write_text(wanted)
    return python


def ensure_dlt_venv() -> Path:
    return ensure_tool_venv("dlt-venv", DLT_REQUIREMENTS)


def _survey_base_rows(world: Path) -> list[dict]:
    with sqlite3.connect(f"file:{world / 'world.db'}?mode=ro", uri=True) as db:
        rows = [json.loads(r[0]) for r in db.execute("select row from s_sftp_survey order by key")]
    if not rows:
        raise RuntimeError(f"the world {world} has no survey drop rows to build the survey files from")
    return rows


def _wrap(name: str, data: bytes, variant: str) -> tuple[str, bytes]:
    if variant == "gzip":
        return name + ".gz", gzip.compress(data, compresslevel=6, mtime=0)
    if variant == "zip":
        buf = io.BytesIO()
        with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
            zf.writestr(zipfile.ZipInfo(name, date_time=(2026, 1, 1, 0, 0, 0)), data)
        return name[:-4] + ".zip", buf.getvalue()
    return name, data


def ensure_survey_files(world: Path, rows: int, files: int) -> Path:
    """`files` vendor files holding `rows` survey rows in all, rotating through the vendors' variants."""
    from sandbox.sftp import render_csv
    from sandbox.world import QUALTRICS_COLUMNS

    folder = BENCH_DIR / f"survey-{rows}x{files}"
    manifest = folder / "manifest.json"
    if manifest.exists():
        return folder
    log(f"writing {rows:,} survey rows as {files} files into {folder}")
    if folder.exists():
        shutil.rmtree(folder)
    (folder / "files").mkdir(parents=True)
    base = _survey_base_rows(world)
    per_file = -(-rows // files)
    written, entries = 0, []
    for f in range(files):
        n = min(per_file, rows - written)
        variant = SURVEY_VARIANTS[f % len(SURVEY_VARIANTS)]
        chunk = []
        for i in range(written, written + n):
            row = dict(base[i % len(base)])
            row["ResponseId"] = f"R_bench{i:010d}"
            chunk.append(row)
        data = render_csv(list(QUALTRICS_COLUMNS), chunk, variant, three_headers=True)
        name, data = _wrap(f"responses_bench_{f + 1:03d}.csv", data, variant)
        (folder / "files" / name).write_bytes(data)
        entries.append({"name": name, "variant": variant, "rows": n, "bytes": len(data)})
        written += n
    manifest.write_text(json.dumps({"rows": rows, "files": entries}, indent=1))
    return folder


def stage_survey_files(sandbox, survey: Path) -> None:
    """Empty the survey vendor's SFTP folders and put the benchmark's files into incoming/."""
    from sandbox.sftp import FEEDS

    feed = FEEDS[SURVEY_FEED]
    root = sandbox.sftp_server.root
    for key in ("incoming", "archive", "rejected"):
        folder = root / feed[key].lstrip("/")
        shutil.rmtree(folder, ignore_errors=True)
        folder.mkdir(parents=True)
    incoming = root / feed["incoming"].lstrip("/")
    for i, path in enumerate(sorted((survey / "files").iterdir())):
        target = incoming / path.name
        shutil.copyfile(path, target)
        os.utime(target, (1_700_000_000 + i, 1_700_000_000 + i))


def _copy_line(key: str, payload: object, source_object: str | None, uri: str, position: str) -> bytes:
    from crm_warehouse.load.hashing import canonical_json_bytes
    from crm_warehouse.load.loader import _esc

    data = canonical_json_bytes(payload)
    digest = hashlib.sha256(data).hexdigest()
    data = data.replace(b"\\", b"\\\\")
    return b"%s\t%s\t%s\t%s\t1\t%s\t%s\n" % (_esc(key).encode(), digest.encode(), data,
                                            _esc(source_object).encode(), _esc(uri).encode(), position.encode())


def calls_window(sandbox) -> tuple[datetime, datetime, str, str]:
    """The window ours runs (the whole world), and the days Twilio is asked for (one day of lookback)."""
    start = datetime.fromtimestamp(sandbox.start_ts, UTC)
    end = datetime.fromtimestamp(sandbox.end_ts, UTC)
    first_day = (start - timedelta(days=1)).date().isoformat()
    last_day = (end - timedelta(microseconds=1)).date().isoformat()
    return start, end, first_day, last_day


def ensure_calls_copy_file(world: Path, sandbox) -> tuple[Path, int]:
    """The calls the API serves for that window, as COPY text (payload canonical JSON, hash, lineage)."""
    import msgspec

    start, end, first_day, last_day = calls_window(sandbox)
    path = BENCH_DIR / f"{world.name}.calls.copy"
    count_path = path.with_suffix(".count")
    if path.exists() and count_path.exists():
        return path, int(count_path.read_text())
    log(f"preparing the COPY file of the served calls: {path}")
    lo = int(datetime.fromisoformat(first_day).replace(tzinfo=UTC).timestamp())
    hi = int(datetime.fromisoformat(last_day).replace(tzinfo=UTC).timestamp()) + 86_400
    decode = msgspec.json.decode
    n = 0
    with sqlite3.connect(f"file:{world / 'world.db'}?mode=ro", uri=True) as db, open(path, "wb") as out:
        cur = db.execute("select key, payload from s_calls where available_at <= ? and start_ts <= ?"
                         " and start_ts >= ? and start_ts < ? order by start_ts desc, key desc",
                         (sandbox.clock_ts, sandbox.clock_ts, lo, hi))
        buf = []
        for key, payload in cur:
            n += 1
            buf.append(_copy_line(key, decode(payload), None, "/Calls.json", str(n // 1000)))
            if len(buf) >= 10_000:
                out.write(b"".join(buf))
                buf.clear()
        out.write(b"".join(buf))
    count_path.write_text(str(n))
    return path, n


def ensure_survey_copy_file(survey: Path) -> tuple[Path, int]:
    """The survey rows as our reader sees them ({header: text}), as COPY text."""
    from crm_warehouse.files.readers import read_rows

    path = survey / "rows.copy"
    count_path = survey / "rows.count"
    if path.exists() and count_path.exists():
        return path, int(count_path.read_text())
    log(f"preparing the COPY file of the survey rows: {path}")
    n = 0
    with open(path, "wb") as out:
        for file in sorted((survey / "files").iterdir()):
            remote = f"/survey_vendor/incoming/{file.name}"
            _, rows = read_rows(file, required_column="ResponseId")
            buf = []
            for row in rows:
                if row.error:
                    continue
                n += 1
                buf.append(_copy_line(row.values["ResponseId"], row.values, SURVEY_FEED, remote, str(row.line)))
                if len(buf) >= 10_000:
                    out.write(b"".join(buf))
                    buf.clear()
            out.write(b"".join(buf))
    count_path.write_text(str(n))
    return path, n


# --- databases -------------------------------------------------------------------------------------
def pg_admin_url(explicit: str | None) -> str:
    """The server to benchmark on: --pg-url, CRM_BENCH_PG_URL, CRM_WAREHOUSE_URL, else the embedded one."""
    url = explicit or os.environ.get("CRM_BENCH_PG_URL") or os.environ.get("CRM_WAREHOUSE_URL")
    if url:
        return url
    from crm_warehouse.embedded import EmbeddedPostgres

    return EmbeddedPostgres(ROOT / ".crm" / "pg").ensure_running()


def fresh_database(admin_url: str, name: str, template: str | None = None) -> str:
    """Drop and create database `name` on the server of `admin_url` (a postgresql:// URL), as a copy of database
    `template` when given; its URL."""
    from urllib.parse import urlsplit, urlunsplit

    import psycopg
    from psycopg import sql

    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(sql.SQL("drop database if exists {} with (force)").format(sql.Identifier(name)))
        conn.execute(sql.SQL("create database {}").format(sql.Identifier(name)) + (
            sql.SQL(" template {}").format(sql.Identifier(template)) if template else sql.SQL("")))
    return urlunsplit(urlsplit(admin_url)._replace(path=f"/{name}"))


# --- the run ---------------------------------------------------------------------------------------
def run(*, quick: bool = False, pg_url: str | None = None, datasets: tuple[str, ...] = DATASETS,
        contenders: tuple[str, ...] = CONTENDERS) -> dict:
    from sandbox.serve import Sandbox

    BENCH_DIR.mkdir(parents=True, exist_ok=True)
    admin = pg_admin_url(pg_url)
    world = ensure_world("world-calls-quick" if quick else "world-calls", QUICK_CALLS_WORLD if quick else CALLS_WORLD)
    survey = ensure_survey_files(world, *((QUICK_SURVEY_ROWS, QUICK_SURVEY_FILES) if quick
                                          else (SURVEY_ROWS, SURVEY_FILES)))
    dlt_python = ensure_dlt_venv() if "dlt" in contenders else None
    logs = BENCH_DIR / ("logs-quick" if quick else "logs")
    db_prefix = "bench_elq" if quick else "bench_el"  # a quick run never drops a full run's databases
    project_python = sys.executable
    rows: list[Row] = []
    recorded: dict = {}
    sandbox = Sandbox(world).start()
    stack = contextlib.ExitStack()
    try:
        conns = sandbox.connections
        start, end, first_day, last_day = calls_window(sandbox)
        if "calls" in datasets:
            pc = conns["phone_system"]
            log("recording the sandbox's Calls API answers (once per world)")
            recorded = record_calls(pc["host"], pc["login"], pc["password"], first_day, last_day,
                                    BENCH_DIR / f"{world.name}.calls-replay")
            log(f"sandbox served {recorded['records']:,} calls in {len(recorded['pages'])} pages in "
                f"{recorded['seconds']:.1f} s when recorded")
            replay = stack.enter_context(Replay(BENCH_DIR / f"{world.name}.calls-replay", pc["login"],
                                                pc["password"]))
            conns["phone_system"] = {**pc, "host": replay.url}
        env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT / "plugins"), str(ROOT)]),
               "AIRFLOW_CONN_PHONE_SYSTEM": json.dumps(conns["phone_system"]),
               "AIRFLOW_CONN_SURVEY_VENDOR_SFTP": json.dumps(conns["survey_vendor_sftp"]),
               "RUNTIME__DLTHUB_TELEMETRY": "false"}
        for dataset in datasets:
            if dataset == "calls":
                copy_file, expected = ensure_calls_copy_file(world, sandbox)
                source, stream = "phone_system", "calls"
            else:
                copy_file, expected = ensure_survey_copy_file(survey)
                source, stream = "sftp_survey_vendor", "responses"
            log(f"{dataset}: {expected:,} records")
            for contender in contenders:
                db = fresh_database(admin, f"{db_prefix}_{dataset}_{contender}")
                if dataset == "survey":
                    stage_survey_files(sandbox, survey)
                if contender == "ours":
                    kind = "ours-calls" if dataset == "calls" else "ours-feed"
                    args = {"url": db, "start": start.isoformat(), "end": end.isoformat(), "feed": SURVEY_FEED}
                    argv = [project_python, "-m", "bench.contenders", kind, json.dumps(args)]
                elif contender == "dlt":
                    pc = conns["phone_system"]
                    sc = conns["survey_vendor_sftp"]
                    from sandbox.sftp import FEEDS

                    args = {"url": db, "dataset": "bench_dlt", "pipelines_dir": str(logs / "dlt-pipelines"),
                            "base_url": pc["host"], "login": pc["login"], "password": pc["password"],
                            "first_day": first_day, "last_day": last_day,
                            "host": sc["host"], "port": sc["port"], "host_key": sc["extra"]["host_key"],
                            "incoming": FEEDS[SURVEY_FEED]["incoming"]}
                    if dataset == "survey":
                        args["login"], args["password"] = sc["login"], sc["password"]
                    shutil.rmtree(logs / "dlt-pipelines", ignore_errors=True)
                    argv = [str(dlt_python), str(ROOT / "bench" / "dlt_pipeline.py"),
                            "calls" if dataset == "calls" else "survey", json.dumps(args)]
                else:
                    args = {"url": db, "source": source, "stream": stream, "file": str(copy_file)}
                    argv = [project_python, "-m", "bench.contenders", "copy", json.dumps(args)]
                log(f"{dataset}: {contender} ... (load average {os.getloadavg()[0]:.2f})")
                result = run_child(f"{dataset}-{contender}", argv, env, logs)
                row = Row(dataset, contender, result)
                rows.append(row)
                if not result.ok:
                    log(f"{dataset}: {contender} FAILED (exit {result.returncode}); see {result.log}")
                else:
                    log(f"{dataset}: {contender}: {row.records:,} records in {row.seconds:.1f} s = "
                        f"{row.rate:,.0f}/s, peak RSS {result.peak_rss_mb:.0f} MB, load {result.load}")
                    if row.records != expected:
                        log(f"{dataset}: {contender} landed {row.records:,} records, expected {expected:,}")
    finally:
        stack.close()
        sandbox.stop()
    return {"rows": rows, "world": world, "survey": survey, "quick": quick, "admin": admin,
            "recorded": {k: v for k, v in recorded.items() if k != "pages"}}


# --- the report ------------------------------------------------------------------------------------
def _ratios(rows: list[Row]) -> dict[str, dict[str, float]]:
    out: dict[str, dict[str, float]] = {}
    for dataset in DATASETS:
        by = {r.contender: r for r in rows if r.dataset == dataset and r.result.ok}
        if "ours" in by:
            out[dataset] = {}
            if "dlt" in by and by["dlt"].rate:
                out[dataset]["vs_dlt"] = by["ours"].rate / by["dlt"].rate
            if "copy" in by and by["copy"].rate:
                out[dataset]["vs_copy"] = by["ours"].rate / by["copy"].rate
    return out


def table(rows: list[Row]) -> str:
    lines = ["| data set | contender | records | seconds | records/s | peak RSS | CPU (child) | sandbox CPU | "
             "load average after |",
             "|---|---|---:|---:|---:|---:|---:|---:|---|"]
    for r in rows:
        res = r.result
        if not res.ok:
            lines.append(f"| {r.dataset} | {r.contender} | failed (exit {res.returncode}) | | | "
                         f"{res.peak_rss_mb:.0f} MB | | | {res.load} |")
            continue
        lines.append(f"| {r.dataset} | {r.contender} | {r.records:,} | {r.seconds:.1f} | {r.rate:,.0f} | "
                     f"{res.peak_rss_mb:.0f} MB | {res.cpu:.1f} s | {res.parent_cpu:.1f} s | {res.load} |")
    return "\n".join(lines)


def goals(rows: list[Row]) -> str:
    lines = []
    for dataset, ratio in _ratios(rows).items():
        parts = []
        if "vs_dlt" in ratio:
            ok = "met" if ratio["vs_dlt"] >= GOAL_VS_DLT else "MISSED"
            parts.append(f"{ratio['vs_dlt']:.1f}x dlt (goal {GOAL_VS_DLT:.0f}x: {ok})")
        if "vs_copy" in ratio:
            ok = "met" if ratio["vs_copy"] >= GOAL_VS_COPY else "MISSED"
            parts.append(f"{ratio['vs_copy']:.2f}x plain COPY (goal {GOAL_VS_COPY}x: {ok})")
        line = f"- **{dataset}**: ours at " + ", ".join(parts)
        by = {r.contender: r for r in rows if r.dataset == dataset and r.result.ok}
        if "copy" in by and "dlt" in by and by["dlt"].rate:
            line += (f"; the plain COPY itself lands {by['copy'].rate / by['dlt'].rate:.1f}x dlt's records/s, so "
                     f"{GOAL_VS_DLT:.0f}x dlt would ask for {GOAL_VS_DLT * by['dlt'].rate / by['copy'].rate:.1f}x "
                     "the plain COPY")
        lines.append(line)
    return "\n".join(lines)
