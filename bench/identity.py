"""Identity resolution benchmark: about a million customer records of a generated sandbox world, resolved by
our dbt models in PostgreSQL and by Splink (DuckDB) on the same records, both scored against the world's truth.

Steps (each timed apart; see `section()` for what the report says):
1. a sandbox world (`WORLD`, cached under .crm/bench/), its served records COPYed into the raw landings of a
   fresh database, as the loader lands them (one batch; the extractors are benchmarked elsewhere);
2. enrichment (`crm_warehouse.enrich.run_all`: phone numbers to E.164, sentiment), then dbt builds staging
   and the unioned interactions ("prepare");
3. **ours**: `dbt run` of the identity models (models/intermediate/identity: identifiers, guard, links,
   edges, connected components, stable ids), timed from outside, with the dbt process's peak RSS and the
   peak private memory of the PostgreSQL backends serving the database (sampled);
4. **splink**: Splink 5 in its own virtualenv (`.crm/bench/splink-venv`, installed here with uv) in its
   own process (`bench/splink_identity.py`) on the same records, one row per record with the identifiers
   our normalisation produced (Splink does not parse phone numbers or canonicalise emails) and the
   direct links between records as a key; its wall time, CPU and peak RSS are measured from outside;
5. pairwise precision and recall of both against the truth (sandbox.world `link_groups`, the definition
   of tests/integration/test_dbt_truth.py::test_identity_precision_and_recall).
"""

from __future__ import annotations

import hashlib
import json
import os
import sqlite3
import sys
import threading
import time
from pathlib import Path

from crm_warehouse.settings import dbt_env

from bench.child import ChildResult, run_child
from bench.extract_load import BENCH_DIR, ROOT, ensure_tool_venv, ensure_world, fresh_database, log, pg_admin_url

WORLD = {"seed": 7, "customers": 150_000, "days": 60, "start": "2026-09-01", "activity": 1.0}
QUICK_WORLD = {"seed": 7, "customers": 2_000, "days": 30, "start": "2026-09-01", "activity": 1.0}
SPLINK_REQUIREMENTS = ["splink==5.0.0", "duckdb==2.0.0"]
# Splink needs blocking values that are not on thousands of records (every pair would be compared): values on
# more records than our guard's limit (var identity_max_records_per_identifier) are left out of its input
FREQUENT_VALUE_LIMIT = 1000
DBT = Path(sys.executable).parent / "dbt"
DBT_DIR = ROOT / "dbt_project"
IDENTITY_MODELS = "path:models/intermediate/identity"

# how the warehouse names a served record (int_interactions_unioned.record_id)
RECORD_PREFIX = {
    ("phone_system", "calls"): "twilio:", ("sftp_call_center", "calls"): "call_center:",
    ("survey_vendor", "responses"): "qualtrics:", ("sftp_survey_vendor", "responses"): "qualtrics:",
    ("web_forms", "responses"): "typeform:", ("social_x", "mentions"): "x:",
    ("social_facebook", "comments"): "facebook:", ("social_linkedin", "comments"): "linkedin:",
}

# Pairwise precision and recall of a record -> cluster mapping (`{mapping}`: record_id, cluster_id) against
# the truth: precision over the pairs put together, leaving out records whose only identifier is a
# household's shared line; recall over the pairs of the truth's link groups.
PAIRWISE_SQL = """
    with r as (
        select t.record_id, t.person_id, t.shared_line, t.link_group, m.cluster_id
        from public.truth_records as t
        inner join {mapping} as m on m.record_id = t.record_id
        where t.person_id is not null
    ),
    judged as (select * from r where not shared_line),
    by_cluster as (select cluster_id, count(*) as n from judged group by 1),
    by_both as (select cluster_id, person_id, count(*) as n from judged group by 1, 2),
    by_group as (select link_group, count(*) as n from r group by 1),
    group_found as (select link_group, cluster_id, count(*) as n from r group by 1, 2)
    select
        (select sum(n * (n - 1) / 2) from by_cluster),
        (select sum(n * (n - 1) / 2) from by_both),
        (select sum(n * (n - 1) / 2) from by_group),
        (select sum(n * (n - 1) / 2) from group_found),
        (select count(*) from r),
        (select count(distinct cluster_id) from r)
"""

# One row per customer record for Splink: the identifiers our staging and enrichment normalised, a name
# key, and the direct-link component (a survey and the call it names share it).
SPLINK_INPUT_SQL = """
    with ids as (
        select i.record_id, i.identifier_type, i.identifier_value
        from intermediate.int_identifiers_unioned as i
        inner join (
            select identifier_type, identifier_value from intermediate.int_identifiers_unioned
            group by 1, 2 having count(*) <= {limit}
        ) as usual using (identifier_type, identifier_value)
    ),
    wide as (
        select
            record_id,
            min(identifier_value) filter (where identifier_type = 'phone') as phone,
            min(identifier_value) filter (where identifier_type = 'email') as email,
            min(identifier_value) filter (where identifier_type = 'x_handle') as x_handle,
            min(identifier_value) filter (where identifier_type = 'facebook_user_id') as facebook_user_id,
            min(identifier_value) filter (where identifier_type = 'linkedin_member_urn') as linkedin_member_urn,
            min(identifier_value) filter (where identifier_type = 'customer_ref') as customer_ref,
            min(identifier_value) filter (where identifier_type = 'name') as name
        from ids
        group by record_id
    )
    select
        c.record_id as unique_id, w.phone, w.email, w.x_handle, w.facebook_user_id, w.linkedin_member_urn,
        w.customer_ref, w.name, l.link_key
    from intermediate.int_records_clustered as c
    left join wide as w on w.record_id = c.record_id
    left join bench_link_keys as l on l.record_id = c.record_id
"""


# --- inputs ----------------------------------------------------------------------------------------
def ensure_splink_venv() -> Path:
    return ensure_tool_venv("splink-venv", SPLINK_REQUIREMENTS)


def ensure_generated_world(name: str, params: dict) -> Path:
    """bench.extract_load.ensure_world, also generated again when the generator (sandbox/world.py) changed:
    the truth the figures are measured against must be the current one."""
    world = BENCH_DIR / name
    digest = hashlib.sha256((ROOT / "sandbox" / "world.py").read_bytes()).hexdigest()
    stamp = world / "generator.sha256"
    if not stamp.exists() or stamp.read_text() != digest:
        (world / "bench_world.json").unlink(missing_ok=True)
    path = ensure_world(name, params)
    stamp.write_text(digest)
    return path


def load_world(conn, world_db: Path) -> dict[str, int]:
    """Land every served record into its raw table (sandbox.landing, as the loader lands them) and the truth
    into public.truth_records; returns rows per raw table."""
    from sandbox.landing import land_served_records

    with sqlite3.connect(f"file:{world_db}?mode=ro", uri=True) as world:
        counts = land_served_records(conn, world)
        conn.execute("create table public.truth_records (record_id text primary key, person_id text,"
                     " shared_line boolean, link_group text)")
        with conn.cursor().copy("copy public.truth_records from stdin") as copy:
            for source, stream, key, person, shared, group in world.execute(
                    "select source, stream, record_key, person_id, shared_line, link_group from truth_records"):
                prefix = RECORD_PREFIX.get((source, stream))
                if prefix:
                    copy.write_row((prefix + key, person, bool(shared), group))
    conn.commit()
    return counts


# --- measuring -------------------------------------------------------------------------------------
class BackendUsage:
    """The PostgreSQL processes serving one database, sampled every 0.1 s from /proc: the peak of their summed
    private memory (Pss_Anon; the server's shared buffers are not counted) and the CPU seconds they used
    (utime + stime, last sample per process): the work, whatever else the machine was doing. Zeros when /proc
    cannot be read."""

    def __init__(self, dbname: str) -> None:
        self.dbname = dbname
        self.peak_mb = 0.0
        self._cpu: dict[str, float] = {}
        self._tick = os.sysconf("SC_CLK_TCK")
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    @property
    def cpu_seconds(self) -> float:
        return sum(self._cpu.values())

    def _sample(self) -> float:
        total = 0
        for pid in os.listdir("/proc"):
            if not pid.isdigit():
                continue
            try:
                with open(f"/proc/{pid}/cmdline", "rb") as fh:
                    cmd = fh.read().replace(b"\0", b" ").decode(errors="replace")
                if not cmd.startswith("postgres: ") or f" {self.dbname} " not in cmd + " ":
                    continue
                with open(f"/proc/{pid}/stat") as fh:
                    fields = fh.read().rsplit(")", 1)[1].split()
                self._cpu[pid] = (int(fields[11]) + int(fields[12])) / self._tick
                with open(f"/proc/{pid}/smaps_rollup") as fh:
                    for line in fh:
                        if line.startswith("Pss_Anon:"):
                            total += int(line.split()[1])
            except (OSError, IndexError, ValueError):
                continue
        return total / 1024

    def _run(self) -> None:
        while not self._stop.wait(0.1):
            self.peak_mb = max(self.peak_mb, self._sample())

    def __enter__(self) -> BackendUsage:
        self._cpu_before = {}
        self._sample()  # backends that were already there: count only what they use from now on
        self._cpu_before = dict(self._cpu)
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()
        for pid, before in self._cpu_before.items():
            self._cpu[pid] = self._cpu.get(pid, before) - before


def dbt(url: str, work: Path, name: str, *args: str) -> tuple[ChildResult, dict[str, float]]:
    """One dbt invocation in its own process, measured from outside; the models' own execution times."""
    result = run_child(name, [str(DBT), *args, "--profiles-dir", str(DBT_DIR), "--project-dir", str(DBT_DIR),
                              "--target-path", str(work / "target"), "--log-path", str(work / "logs")],
                       dbt_env(url), work, timeout=7200)
    if result.returncode != 0:
        raise RuntimeError(f"dbt {' '.join(args)} failed: see {result.log} and {work / name}.out")
    if args[0] == "parse":
        return result, {}
    results = json.loads((work / "target" / "run_results.json").read_text())
    models = {r["unique_id"].rsplit(".", 1)[-1]: r["execution_time"] for r in results["results"]}
    return result, models


def pairwise(conn, mapping: str) -> dict:
    predicted, true_pos, linkable, found, records, clusters = conn.execute(
        PAIRWISE_SQL.format(mapping=mapping)).fetchone()
    return {"precision": float(true_pos) / float(predicted) if predicted else 0.0,
            "recall": float(found) / float(linkable) if linkable else 0.0,
            "predicted_pairs": int(predicted or 0), "linkable_pairs": int(linkable or 0),
            "records": int(records), "clusters": int(clusters)}


def export_for_splink(conn, path: Path) -> int:
    """The Splink input as CSV: one row per customer record (see SPLINK_INPUT_SQL)."""
    conn.execute("drop table if exists bench_link_edges")
    conn.execute("create table bench_link_edges as select record_id as node_a, linked_record_id as node_b"
                 " from intermediate.int_record_links_unioned")
    conn.execute("drop table if exists bench_link_keys")
    conn.execute("create table bench_link_keys as select node as record_id, component as link_key"
                 " from intermediate.crm_connected_components('bench_link_edges'::regclass)")
    n = 0
    with open(path, "wb") as fh, conn.cursor().copy(
            f"copy ({SPLINK_INPUT_SQL.format(limit=FREQUENT_VALUE_LIMIT)}) to stdout with (format csv, header)"
    ) as copy:
        for block in copy:
            fh.write(block)
            n += bytes(block).count(b"\n")
    conn.commit()
    return n - 1


def load_splink_clusters(conn, path: Path) -> None:
    conn.execute("drop table if exists public.splink_clusters")
    conn.execute("create table public.splink_clusters (record_id text primary key, cluster_id text)")
    with open(path, "rb") as fh, conn.cursor().copy(
            "copy public.splink_clusters from stdin with (format csv, header)") as copy:
        while block := fh.read(1 << 20):
            copy.write(block)
    conn.commit()


# --- the run ---------------------------------------------------------------------------------------
def run(*, quick: bool = False, pg_url: str | None = None) -> dict:
    import psycopg
    from crm_warehouse.enrich import run_all

    BENCH_DIR.mkdir(parents=True, exist_ok=True)
    admin = pg_admin_url(pg_url)
    params = QUICK_WORLD if quick else WORLD
    world = ensure_generated_world("world-identity-quick" if quick else "world-identity", params)
    splink_python = ensure_splink_venv()
    work = BENCH_DIR / ("identity-quick" if quick else "identity")
    work.mkdir(parents=True, exist_ok=True)
    dbname = "bench_idq" if quick else "bench_id"  # a quick run never drops a full run's database
    url = fresh_database(admin, dbname)
    out: dict = {"admin": admin, "world": params, "quick": quick}
    with psycopg.connect(url) as conn:
        log(f"loading the served records of {world} into {dbname}")
        t0 = time.perf_counter()
        out["raw"] = load_world(conn, world / "world.db")
        out["load_seconds"] = time.perf_counter() - t0
        log(f"loaded {sum(out['raw'].values()):,} raw rows in {out['load_seconds']:.1f} s; enriching")
        t0 = time.perf_counter()
        out["enrich"] = run_all(conn)
        out["enrich_seconds"] = time.perf_counter() - t0
        conn.commit()
    log("dbt: seeds, staging and the unioned interactions")
    dbt(url, work, "dbt-parse", "parse")
    prep, prep_models = dbt(url, work, "dbt-prepare", "build", "--select", f"+{IDENTITY_MODELS}",
                            "--exclude", IDENTITY_MODELS, "--exclude-resource-type", "test", "unit_test")
    out["prepare"] = {"wall": prep.wall, "models": prep_models}
    log(f"prepared in {prep.wall:.1f} s; resolving (dbt run of the identity models)")
    with BackendUsage(dbname) as usage:
        ours, ours_models = dbt(url, work, "dbt-identity", "run", "--select", IDENTITY_MODELS)
    out["ours"] = {"wall": ours.wall, "models": ours_models, "models_seconds": sum(ours_models.values()),
                   "dbt_peak_rss_mb": ours.peak_rss_mb, "dbt_cpu": ours.cpu, "pg_peak_mb": usage.peak_mb,
                   "pg_cpu": usage.cpu_seconds, "load": ours.load}
    log(f"ours: {ours.wall:.1f} s wall, models {out['ours']['models_seconds']:.1f} s")
    with psycopg.connect(url) as conn:
        conn.execute("create view public.ours_clusters as select record_id, customer_id as cluster_id"
                     " from intermediate.int_customer_ids_assigned")
        conn.commit()
        out["ours"].update(pairwise(conn, "public.ours_clusters"))
        log(f"ours: precision {out['ours']['precision']:.4f}, recall {out['ours']['recall']:.4f}")
        input_csv = work / "splink_input.csv"
        out["splink_records"] = export_for_splink(conn, input_csv)
    log(f"splink: {out['splink_records']:,} records")
    clusters_csv = work / "splink_clusters.csv"
    args = {"input": str(input_csv), "output": str(clusters_csv), "threads": os.cpu_count() or 1,
            "tmp": str(work / "duckdb-tmp")}
    splink = run_child("splink", [str(splink_python), str(ROOT / "bench" / "splink_identity.py"), json.dumps(args)],
                       {**os.environ, "PYTHONPATH": ""}, work, timeout=7200)
    out["splink"] = {"wall": splink.wall, "cpu": splink.cpu, "peak_rss_mb": splink.peak_rss_mb,
                     "report": splink.report, "load": splink.load, "ok": splink.ok, "log": splink.log}
    if splink.ok:
        with psycopg.connect(url) as conn:
            load_splink_clusters(conn, clusters_csv)
            out["splink"].update(pairwise(conn, "public.splink_clusters"))
        log(f"splink: {splink.wall:.1f} s, precision {out['splink']['precision']:.4f},"
            f" recall {out['splink']['recall']:.4f}")
    else:
        log(f"splink failed (exit {splink.returncode}): see {splink.log}")
    return out


def _mb(v: float) -> str:
    return f"{v:,.0f} MB"


def table(out: dict) -> str:
    o, s = out["ours"], out["splink"]
    rep = s.get("report", {})
    rows = [
        "| | records scored | clusters | precision | recall | seconds | CPU seconds | peak memory |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
        f"| ours (dbt + PostgreSQL) | {o['records']:,} | {o['clusters']:,} | {o['precision']:.4f} |"
        f" {o['recall']:.4f} | {o['wall']:.1f} (models {o['models_seconds']:.1f}) |"
        f" PostgreSQL {o.get('pg_cpu', 0):.1f}, dbt {o.get('dbt_cpu', 0):.1f} |"
        f" PostgreSQL backends {_mb(o['pg_peak_mb'])}, dbt {_mb(o['dbt_peak_rss_mb'])} |",
    ]
    if s.get("ok"):
        rows.append(
            f"| Splink {rep.get('splink', '')} (DuckDB {rep.get('duckdb', '')}) | {s['records']:,} |"
            f" {s['clusters']:,} | {s['precision']:.4f} | {s['recall']:.4f} | {s['wall']:.1f}"
            f" (train {rep.get('train_seconds', 0):.1f}, predict {rep.get('predict_seconds', 0):.1f},"
            f" cluster {rep.get('cluster_seconds', 0):.1f}) | {s['cpu']:.1f} | {_mb(s['peak_rss_mb'])} |")
    else:
        rows.append(f"| Splink | failed: see `{s.get('log')}` | | | | | | |")
    return "\n".join(rows)


def models_line(models: dict[str, float]) -> str:
    return ", ".join(f"{k} {v:.1f} s" for k, v in sorted(models.items(), key=lambda kv: -kv[1]) if v >= 0.05)


def section(out: dict, facts: dict) -> str:
    w = out["world"]
    raw_rows = sum(out["raw"].values())
    rep = out["splink"].get("report", {})
    goal = "met" if out["ours"]["wall"] < 60 else "not met"
    return f"""Measured {facts['date']} by `python -m bench --only identity` (part of `make bench`).
Machine: {facts['cpus']}; {facts['ram']} RAM; {facts['postgres']}; Python {facts['python']}.
Load average (1, 5, 15 min) when the report was written: {facts['load']}; right after ours: {out['ours']['load']},
after Splink: {out['splink'].get('load', '')}. The machine was shared with other work, so figures are noisy.

World: sandbox seed {w['seed']}, {w['customers']:,} customers, {w['days']} days, activity {w['activity']}:
{raw_rows:,} raw rows, of which **{out.get('splink_records', 0):,} customer records** (calls, survey responses,
form responses, social comments and mentions) go through identity resolution; {out['ours']['records']:,} of them
belong to a customer in the truth and are scored (the others are strangers mentioning the company).

{table(out)}

Goal: one million source records resolved in under a minute: **{goal}** ({out['ours']['wall']:.1f} s for
{out.get('splink_records', 0):,} records).

What is timed:
- **ours**: the `dbt run --select path:models/intermediate/identity` process, start to end (dbt start-up and
  manifest loading included; "models" is the sum of the models' own execution times): identifiers of every
  record, the guard against shared identifiers, direct links, the edges, connected components in the database
  and the stable customer ids. Per model: {models_line(out['ours']['models'])}.
  Not in it, and measured apart: loading the raw rows ({out['load_seconds']:.0f} s), enrichment (phone numbers to
  E.164 with `phonenumbers`, sentiment: {out['enrich_seconds']:.0f} s) and building staging and the unioned
  interactions ({out['prepare']['wall']:.0f} s), which the marts need whatever resolves identities.
  CPU and memory: the CPU seconds of the PostgreSQL backends serving the database (what the resolution costs
  whatever else the machine does: on a quiet machine the wall time is about that divided by the cores dbt's
  two threads can use, plus dbt's start-up) and of the dbt process; the peak of the summed private memory
  (Pss_Anon) of those backends, sampled every 0.1 s, and the dbt process's own peak RSS.
- **Splink**: its process, start to end: reading the CSV of the same {out.get('splink_records', 0):,} records into
  DuckDB, estimating the model (probability two random records match from deterministic rules, u by random
  sampling, m by EM), predicting pairs above match probability {rep.get('predict_threshold', '')} and clustering
  at {rep.get('cluster_threshold', '')}; peak RSS of that process (DuckDB runs inside it). Input: one row per
  record with the identifiers our staging and enrichment normalised (phone in E.164, canonical email, X handle,
  Facebook user, LinkedIn member, customer_ref, a name key) and the key of its direct links (a survey and the
  call it names); values on more than {FREQUENT_VALUE_LIMIT:,} records (the company's own number typed into forms)
  are left out, as our guard cuts them, because blocking on them would compare every pair. Blocking: exact
  equality on each identifier and on the link key; comparisons: exact match, Splink's email comparison, and
  Splink's name comparison.
- precision and recall are pairwise, against the world's truth, as in
  `tests/integration/test_dbt_truth.py::test_identity_precision_and_recall`: precision over the pairs put
  together (records carrying nothing but a household's shared line are left out: nothing served tells the
  household's people apart), recall over the pairs of records the truth's link groups connect (a chain of
  identifiers or references the served records carry).

Reproduce: `make setup`, then `.venv/bin/python -m bench --only identity` (add `--pg-url
postgresql://user@host:port/postgres` to use a server of your own; `--quick` is a small smoke run that writes
nothing). The world is generated once into `.crm/bench/world-identity/` (seed fixed), Splink is installed once
into `.crm/bench/splink-venv/`, logs and the Splink input are in `.crm/bench/identity/`.
"""



def bench_main(args, benchmarks_md: Path) -> int:
    """`python -m bench --only identity`: run, print the section, and write it into BENCHMARKS.md (full runs
    where both contenders finished)."""
    from bench.report import machine_facts, replace_section

    result = run(quick=args.quick, pg_url=args.pg_url)
    body = section(result, machine_facts(result["admin"]))
    print(body)
    if args.quick:
        print("(--quick: BENCHMARKS.md left as it was)", file=sys.stderr)
    elif not result["splink"].get("ok"):
        print("Splink failed: BENCHMARKS.md left as it was", file=sys.stderr)
    else:
        replace_section(benchmarks_md, "Identity resolution", body)
        print(f"wrote section 'Identity resolution' of {benchmarks_md}", file=sys.stderr)
    return 0 if result["splink"].get("ok") else 1
