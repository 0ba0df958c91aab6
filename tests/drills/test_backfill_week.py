"""Drill (heavy): the whole pipeline re-run for a past week.

Every DAG runs through Airflow (`airflow dags test`) over the whole world: the clean run. Then the whole
pipeline is run again for the past 7 days of world time, the way an operator backfills (each DAG with
conf `window_start`/`window_end`). Afterwards: every published mart is identical to the clean run's (a
deterministic checksum of each `marts` table's rows, ordered), the backfill loaded nothing new, and raw
still reconciles with the sandbox's ground truth: every served record once or quarantined."""

from __future__ import annotations

import sqlite3
from datetime import UTC, datetime, timedelta

import psycopg
import pytest
from crm_warehouse import runtime
from psycopg import sql

pytestmark = [pytest.mark.drill, pytest.mark.heavy]

WORLD = {"seed": 17, "customers": 150, "days": 10, "start": "2026-09-01"}
START = datetime(2026, 9, 1, tzinfo=UTC)
END = START + timedelta(days=WORLD["days"])
WEEK = (END - timedelta(days=7), END)


def marts_checksums(url: str) -> dict[str, tuple[int, str]]:
    """Rows and an md5 of every row's text, in order, per table of the published `marts` schema."""
    with psycopg.connect(url) as conn:
        tables = [t for (t,) in conn.execute(
            "select table_name from information_schema.tables where table_schema = 'marts' order by 1")]
        return {t: conn.execute(sql.SQL("select count(*), md5(coalesce(string_agg(r::text, E'\\n' order by "
                                        "r::text), '')) from {} r").format(sql.Identifier("marts", t))).fetchone()
                for t in tables}


def raw_counts(url: str) -> dict[str, tuple[int, int]]:
    with psycopg.connect(url) as conn:
        tables = [t for (t,) in conn.execute(
            "select table_name from information_schema.tables where table_schema = 'raw' order by 1")]
        return {t: conn.execute(sql.SQL("select count(*), count(distinct record_key) from {}").format(
            sql.Identifier("raw", t))).fetchone() for t in tables}


def test_pipeline_rerun_for_a_past_week_leaves_every_mart_identical(tmp_path, fresh_db):
    from sandbox.serve import Sandbox
    from sandbox.world import generate

    generate(tmp_path / "world", **WORLD)
    box = Sandbox(tmp_path / "world").start()
    home = tmp_path / "home"
    try:
        env = runtime.airflow_env({**box.connections, "warehouse": runtime.warehouse_connection(fresh_db)},
                                  home=home)
        env["CRM_DOCS_DIR"] = str(home / "docs")
        runtime.migrate_metadata(env, home / "logs" / "migrate.log")
        runtime.dbt_parse(env, home / "logs" / "dbt-parse.log")

        def run_all(tag: str, window: tuple[datetime, datetime]) -> None:
            for dag_id in runtime.ALL_DAGS:
                result = runtime.dags_test(dag_id, logical_date=window[1], window=window, env=env,
                                           log=home / "logs" / f"{tag}-{dag_id}.log")
                assert result.ok, f"{tag}: {dag_id} failed ({result.failed_tasks}); log {result.log}:\n" \
                                  f"{result.message}"

        run_all("clean", (START, END))
        clean, clean_raw = marts_checksums(fresh_db), raw_counts(fresh_db)
        assert {"dim_customers", "fct_complaints", "fct_interactions"} <= set(clean), sorted(clean)
        assert all(rows > 0 for rows, _ in clean.values()), clean
        with psycopg.connect(fresh_db) as conn:
            last_batch = conn.execute("select max(batch_id) from ops.batches").fetchone()[0]

        run_all("backfill", WEEK)
        backfilled = marts_checksums(fresh_db)
        differ = {t: (clean.get(t), backfilled.get(t)) for t in set(clean) | set(backfilled)
                  if clean.get(t) != backfilled.get(t)}
        assert differ == {}, f"marts changed by the backfill of {WEEK[0]:%Y-%m-%d}..{WEEK[1]:%Y-%m-%d}: {differ}"
        assert raw_counts(fresh_db) == clean_raw, "the backfill added raw rows"
        with psycopg.connect(fresh_db) as conn:
            backfill = conn.execute("select count(*), coalesce(sum(received), 0), coalesce(sum(loaded), 0), "
                                    "count(*) filter (where status <> 'succeeded') from ops.batches "
                                    "where batch_id > %s", (last_batch,)).fetchone()
            unbalanced = conn.execute("select count(*) from ops.batches where received <> loaded + duplicate + "
                                      "quarantined").fetchone()[0]
            truth = _truth(box.db_path)
            lost = {}
            for (source, stream), expected in truth.items():
                table = sql.Identifier("raw", f"{source}__{stream}")
                landed = conn.execute(sql.SQL("select count(distinct record_key) from {}").format(table)).fetchone()[0]
                quarantined = conn.execute("select count(*) from ops.quarantine where source = %s and stream = %s",
                                           (source, stream)).fetchone()[0]
                if landed + quarantined != expected:
                    lost[f"{source}__{stream}"] = (landed, quarantined, expected)
        batches, received, loaded, not_ok = backfill
        assert batches > 0 and received > 0, "the backfill extracted nothing: it did not run"
        assert (loaded, not_ok, unbalanced) == (0, 0, 0), backfill
        assert lost == {}, f"raw does not match what was served (landed, quarantined, served): {lost}"
        duplicated = sum(rows - keys for rows, keys in clean_raw.values())
        print(f"DRILL backfill_week: marts={len(clean)} identical rows={sum(r for r, _ in clean.values())} "
              f"backfill_received={received} loaded={loaded} served={sum(truth.values())} lost=0 "
              f"versions={duplicated}")
    finally:
        box.stop()


def _truth(world_db) -> dict[tuple[str, str], int]:
    with sqlite3.connect(world_db) as db:
        return {(s, t): n for s, t, n in db.execute(
            "select source, stream, count(*) from truth_records group by 1, 2")}
