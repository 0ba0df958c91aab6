"""SFTP feeds end to end: the sandbox's real SFTP server (asyncssh) on loopback, the Airflow SFTP provider
and a real PostgreSQL. Every file loaded once, duplicates by content, re-uploads as new versions, broken
files rejected with a report for the vendor, host keys verified."""

from __future__ import annotations

import gzip
import json
import sqlite3
from datetime import UTC, datetime, timedelta

import psycopg
import pytest
from crm_warehouse.files import run_feed
from crm_warehouse.files.sftp import TransferError
from crm_warehouse.load.ddl import forget_ready

from sandbox import world as W
from sandbox.serve import Sandbox

DAYS = 6
START = datetime(2026, 9, 1, tzinfo=UTC)
FEEDS = ("survey_vendor", "call_center_cdr", "call_center_dispositions")


@pytest.fixture
def sb(tmp_path, monkeypatch):
    W.generate(tmp_path, seed=9, customers=1500, days=DAYS)
    sandbox = Sandbox(tmp_path, clock=START, sftp=True).start()
    forget_ready()
    monkeypatch.setenv("AIRFLOW_CONN_SURVEY_VENDOR_SFTP", json.dumps(sandbox.connections["survey_vendor_sftp"]))
    yield sandbox
    sandbox.stop()


def incoming(sb, feed: str):
    return sb.sftp_server.root / sb.connections["survey_vendor_sftp"]["extra"]["feeds"][feed]["incoming"].lstrip("/")


def folder(sb, feed: str, which: str):
    return sb.sftp_server.root / sb.connections["survey_vendor_sftp"]["extra"]["feeds"][feed][which].lstrip("/")


def served(sb, table: str) -> set[str]:
    with sqlite3.connect(sb.db_path) as db:
        return {r[0] for r in db.execute(f"select key from {table} where available_at <= ?", (sb.clock_ts,))}


def test_all_feeds_load_once_with_duplicates_versions_and_lineage(sb, fresh_db):
    sb.set_clock(START + timedelta(days=4, hours=1))  # day 3's survey file is out, its re-upload not yet
    first = {feed: run_feed(feed, warehouse_url=fresh_db) for feed in FEEDS}
    assert first["survey_vendor"]["files_loaded"] == 4
    sb.set_clock(START + timedelta(days=DAYS))
    second = {feed: run_feed(feed, warehouse_url=fresh_db) for feed in FEEDS}
    again = {feed: run_feed(feed, warehouse_url=fresh_db) for feed in FEEDS}
    assert all(s["files_seen"] == 0 for s in again.values()), "everything was archived"
    for feed in FEEDS:
        leftover = [p.name for p in incoming(sb, feed).iterdir() if not p.name.endswith(".filepart")]
        assert leftover == [], f"{feed}: {leftover} left in incoming"
    with psycopg.connect(fresh_db) as conn:
        files = conn.execute("select feed, path, status, rows, archived_to from ops.files order by file_id").fetchall()
        dup = [f for f in files if f[2] == "duplicate"]
        assert [(f[0], f[1].rsplit("/", 1)[1]) for f in dup] == [("call_center_cdr", "cdr_20260905_resend.csv")]
        assert all(f[4] and "/archive/" in f[4] for f in files)
        reuploads = [f for f in files if "responses_20260904" in f[1]]
        assert len(reuploads) == 2 and all(f[2] == "loaded" for f in reuploads)
        assert second["survey_vendor"]["loaded"] >= 1  # the corrected row is a new version
        for table, s_table in (("sftp_call_center__calls", "s_cc_calls"),
                               ("sftp_call_center__dispositions", "s_cc_dispositions"),
                               ("sftp_survey_vendor__responses", "s_sftp_survey")):
            keys = {r[0] for r in conn.execute(f"select record_key from raw.{table}")}
            assert keys == served(sb, s_table), table
        versions = conn.execute("select record_key, count(*) from raw.sftp_survey_vendor__responses group by 1 "
                                "having count(*) > 1").fetchall()
        assert len(versions) == 1
        changed = conn.execute("select payload->>'QID5_TEXT' from raw.sftp_survey_vendor__responses "
                               "where record_key = %s order by batch_id desc limit 1", (versions[0][0],)).fetchone()
        assert changed[0].endswith("(corrected by the vendor)")
        position, uri, obj = conn.execute(
            "select min(source_position::int), min(source_uri), min(source_object) "
            "from raw.sftp_survey_vendor__responses").fetchone()
        assert position >= 2 and uri.startswith("/survey_vendor/incoming/") and obj == "survey_vendor"
        assert conn.execute("select count(*) from ops.quarantine").fetchone()[0] == 0
        assert conn.execute("select count(*) from ops.batches where received <> loaded + duplicate + quarantined"
                            ).fetchone()[0] == 0


def test_unreadable_file_is_rejected_with_a_report_and_nothing_loads(sb, fresh_db):
    sb.set_clock(START + timedelta(days=DAYS))
    bad = incoming(sb, "call_center_cdr") / "cdr_broken.csv.gz"
    body = ("call_id,started_at,status\n" + "".join(f"OC{i:06d},2026-09-02,completed\n" for i in range(5000)))
    data = gzip.compress(body.encode())
    bad.write_bytes(data[: len(data) * 2 // 3])
    mismatch = incoming(sb, "call_center_cdr") / "cdr_checked.csv"
    mismatch.write_text("call_id,status\nOC9,completed\n")
    (incoming(sb, "call_center_cdr") / "cdr_checked.csv.sha256").write_text("0" * 64 + "  cdr_checked.csv\n")
    stats = run_feed("call_center_cdr", warehouse_url=fresh_db)
    assert stats["files_rejected"] == 2
    rejected = folder(sb, "call_center_cdr", "rejected")
    assert (rejected / "cdr_broken.csv.gz").exists() and not bad.exists()
    report = (rejected / "cdr_broken.csv.gz.rejected.txt").read_text()
    assert "truncated or damaged" in report and "Nothing from this file was loaded" in report
    assert "sidecar" in (rejected / "cdr_checked.csv.rejected.txt").read_text()
    with psycopg.connect(fresh_db) as conn:
        assert conn.execute("select count(*) from raw.sftp_call_center__calls where record_key like 'OC0%' "
                            "or record_key = 'OC9'").fetchone()[0] == 0
        errors = conn.execute("select error from ops.files where status = 'rejected'").fetchall()
        assert len(errors) == 2


def test_temporary_upload_names_are_left_alone(sb, fresh_db):
    (incoming(sb, "survey_vendor") / "responses_next.csv.filepart").write_bytes(b"ResponseId\nR_1")
    stats = run_feed("survey_vendor", warehouse_url=fresh_db)
    assert stats["skipped_temporary"] >= 1
    assert (incoming(sb, "survey_vendor") / "responses_next.csv.filepart").exists()


def test_unknown_host_key_is_refused(sb, fresh_db, monkeypatch):
    conn = sb.connections["survey_vendor_sftp"]
    wrong = dict(conn, extra=dict(conn["extra"], conn_retry_attempts=1, host_key="ssh-ed25519 "
                                  "AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl"))
    monkeypatch.setenv("AIRFLOW_CONN_SURVEY_VENDOR_SFTP", json.dumps(wrong))
    with pytest.raises(ConnectionRefusedError, match="'survey_vendor_sftp'.*host key"):
        run_feed("survey_vendor", warehouse_url=fresh_db)
    bad_login = dict(conn, password="wrong", extra=dict(conn["extra"], conn_retry_attempts=1))
    monkeypatch.setenv("AIRFLOW_CONN_SURVEY_VENDOR_SFTP", json.dumps(bad_login))
    with pytest.raises(PermissionError, match="refused the login"):
        run_feed("survey_vendor", warehouse_url=fresh_db)
    missing = dict(conn, extra={k: v for k, v in conn["extra"].items() if k != "host_key"})
    monkeypatch.setenv("AIRFLOW_CONN_SURVEY_VENDOR_SFTP", json.dumps(missing))
    with pytest.raises(ValueError, match="no extra.host_key"):
        run_feed("survey_vendor", warehouse_url=fresh_db)


@pytest.mark.drill
def test_interrupted_download_fails_the_task_without_rejecting(sb, fresh_db):
    sb.set_clock(START + timedelta(days=2))
    sb.inject("sftp", "truncated", 10)
    with pytest.raises(TransferError, match="arrived incomplete"):
        run_feed("call_center_dispositions", warehouse_url=fresh_db)
    assert list(folder(sb, "call_center_dispositions", "rejected").iterdir()) == []
    sb.clear_faults()
    assert run_feed("call_center_dispositions", warehouse_url=fresh_db)["files_loaded"] >= 1


@pytest.mark.drill
def test_corrupted_transfer_is_fetched_again_before_the_sidecar_rejects(sb, fresh_db):
    sb.set_clock(START + timedelta(days=1))  # day 0's CDR file comes with a .sha256 sidecar
    assert any(p.name.endswith(".sha256") for p in incoming(sb, "call_center_cdr").iterdir())
    sb.inject("sftp", "corrupt", 1)
    stats = run_feed("call_center_cdr", warehouse_url=fresh_db)
    assert (stats["files_loaded"], stats["files_rejected"]) == (1, 0)
    assert [f["fault"] for f in sb.faults.log if f["endpoint"] == "sftp"] == ["corrupt"]
    assert list(folder(sb, "call_center_cdr", "rejected").iterdir()) == []


SFTP_TABLES = {"survey_vendor": ("sftp_survey_vendor__responses", "s_sftp_survey"),
               "call_center_cdr": ("sftp_call_center__calls", "s_cc_calls"),
               "call_center_dispositions": ("sftp_call_center__dispositions", "s_cc_dispositions")}


@pytest.mark.drill
@pytest.mark.parametrize("fault", ["truncated", "corrupt", "drop", "slow", "bad_auth"])
def test_each_sftp_fault_on_each_feed_reconciles_with_what_was_served(sb, fresh_db, monkeypatch, fault):
    """Every fault the sandbox's SFTP server can inject, on the first file read of each feed. A fault that
    stops the run leaves nothing of the file loaded and nothing rejected; a re-run loads it. Afterwards
    every served row is in raw exactly once, every file is archived, none is rejected (the files are
    good: only their transfer was not)."""
    from sandbox.serve import SFTP_FAULTS

    assert fault in SFTP_FAULTS
    sb.set_clock(START + timedelta(days=3, hours=1))  # three files per feed (a gzip, a zip, a sidecar...)
    opts = {"seconds": 0.5} if fault == "slow" else {}
    if fault == "bad_auth":  # fail at the refused login instead of the hook's retries with waits
        conn = sb.connections["survey_vendor_sftp"]
        monkeypatch.setenv("AIRFLOW_CONN_SURVEY_VENDOR_SFTP",
                           json.dumps(dict(conn, extra=dict(conn["extra"], conn_retry_attempts=1))))
    for feed in FEEDS:
        sb.inject("sftp", fault, 1, **opts)
        try:
            run_feed(feed, warehouse_url=fresh_db)
        except (TransferError, PermissionError, ConnectionError, EOFError, OSError) as exc:
            assert fault in ("drop", "bad_auth"), f"{feed}: {fault} failed the run: {exc!r}"
            with psycopg.connect(fresh_db) as conn:
                assert conn.execute("select count(*) from ops.batches where status = 'running'").fetchone()[0] == 0
            sb.clear_faults()
            run_feed(feed, warehouse_url=fresh_db)
        assert sb.faults.pending().get("sftp", []) == [], f"{feed}: the {fault} fault was never served"
        assert list(folder(sb, feed, "rejected").iterdir()) == [], f"{feed}: a good file was rejected after {fault}"
        leftover = [p.name for p in incoming(sb, feed).iterdir() if not p.name.endswith(".filepart")]
        assert leftover == [], f"{feed}: {leftover} left in incoming"
    assert_raw_matches_truth(sb, fresh_db)
    with psycopg.connect(fresh_db) as conn:
        assert conn.execute("select count(*) from ops.quarantine").fetchone()[0] == 0
        assert conn.execute("select count(*) from ops.batches where status <> 'succeeded' or "
                            "received <> loaded + duplicate + quarantined").fetchone()[0] == 0
        statuses = conn.execute("select status, count(*) from ops.files group by 1").fetchall()
        assert dict(statuses).keys() <= {"loaded", "duplicate"}


@pytest.mark.drill
def test_transfer_damaged_without_a_sidecar_is_fetched_again_not_rejected_or_loaded_damaged(sb, fresh_db):
    """Day 2's files have no sidecar (a gzip, a plain CSV): bytes flipped in the transfer make the gzip
    unreadable and break rows of the CSV. Before rejecting the file or quarantining its rows, the loader
    downloads it again; the copies differ, so the second one is loaded. The vendor's good file is neither
    rejected nor loaded damaged."""
    sb.set_clock(START + timedelta(days=1, hours=1))
    for feed in FEEDS:
        run_feed(feed, warehouse_url=fresh_db)
    sb.set_clock(START + timedelta(days=2, hours=1))
    for feed in FEEDS:
        sb.inject("sftp", "corrupt", 1)
        stats = run_feed(feed, warehouse_url=fresh_db)
        assert (stats["files_loaded"], stats["files_rejected"], stats["quarantined"]) == (1, 0, 0), stats
        assert list(folder(sb, feed, "rejected").iterdir()) == []
    assert [f["fault"] for f in sb.faults.log if f["endpoint"] == "sftp"] == ["corrupt"] * 3
    assert_raw_matches_truth(sb, fresh_db)


def assert_raw_matches_truth(sb, url) -> None:
    """Every served row is in raw exactly once, with the values the vendor wrote."""
    with psycopg.connect(url) as conn, sqlite3.connect(sb.db_path) as world:
        for feed, (table, s_table) in SFTP_TABLES.items():
            truth = {k: json.loads(r) for k, r in world.execute(
                f"select key, row from {s_table} where available_at <= ?", (sb.clock_ts,))}
            rows = conn.execute(f"select record_key, payload from raw.{table}").fetchall()
            assert sorted(k for k, _ in rows) == sorted(truth), f"{feed}: rows missing, extra or twice"
            for key, payload in rows:
                want = {k: "" if v is None else str(v) for k, v in truth[key].items()}
                assert {k: payload.get(k) for k in want} == want, f"{feed}: {key} loaded with damaged values"


def test_download_is_streamed_with_bounded_memory(sb, tmp_path):
    """A 16 MB file crosses the SFTP connection into a local temp file, hashed on the way, while Python's
    allocations stay a small fraction of its size."""
    import hashlib
    import os
    import tempfile
    import tracemalloc

    from airflow.providers.sftp.hooks.sftp import SFTPHook
    from crm_warehouse.files.sftp import _download, _sftp_session, feed_config

    data = os.urandom(16 * 1024 * 1024)
    (incoming(sb, "call_center_cdr") / "big.csv").write_bytes(data)
    extra = sb.connections["survey_vendor_sftp"]["extra"]
    cfg = feed_config("survey_vendor_sftp", "call_center_cdr", extra)
    with _sftp_session(SFTPHook(ssh_conn_id="survey_vendor_sftp"), "survey_vendor_sftp") as sftp, \
            tempfile.TemporaryFile() as tmp:
        tracemalloc.start()
        try:
            sha256, size = _download(sftp, cfg, f"{cfg.incoming}/big.csv", len(data), tmp)
            peak = tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()
    assert (sha256, size) == (hashlib.sha256(data).hexdigest(), len(data))
    assert peak < 4 * 1024 * 1024, f"peak {peak / 1e6:.1f} MB for a 16 MB download"


def test_a_response_changed_back_in_a_later_file_is_current_again_in_staging(sb, fresh_db, dbt_run):
    """Three drops carry response R_aba as A (CSAT 5), then B (CSAT 1), then A again (beside another row,
    so the file is new): three versions, staging shows A; a fourth file repeating the third's rows adds
    nothing."""
    header = "ResponseId,QID1,Finished\n"
    drops = [header + "R_aba,5,1\n", header + "R_aba,1,1\n", header + "R_aba,5,1\nR_other,3,1\n",
             header + "R_other,3,1\nR_aba,5,1\n"]
    loaded = []
    for n, body in enumerate(drops):
        (incoming(sb, "survey_vendor") / f"responses_aba_{n}.csv").write_text(body)
        loaded.append(run_feed("survey_vendor", warehouse_url=fresh_db)["loaded"])
    assert loaded == [1, 1, 2, 0]
    with psycopg.connect(fresh_db) as conn:
        versions = conn.execute("select payload->>'QID1' from raw.sftp_survey_vendor__responses"
                                " where record_key = 'R_aba' order by extracted_at, batch_id").fetchall()
        assert [v[0] for v in versions] == ["5", "1", "5"]
        assert conn.execute("select count(*) from ops.batches where received <> loaded + duplicate + quarantined"
                            ).fetchone()[0] == 0
    dbt_run(fresh_db, "stg_sftp_survey_vendor__responses")
    with psycopg.connect(fresh_db) as conn:
        staged = conn.execute("select csat_score, source_file from staging.stg_sftp_survey_vendor__responses"
                              " where response_id = 'R_aba'").fetchall()
    assert staged == [(5, "/survey_vendor/incoming/responses_aba_2.csv")]
