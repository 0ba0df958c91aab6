"""Drill: the disk of the download folder fills up during an SFTP download.

The loader runs in a child process with a private mount namespace (`unshare -m`; `unshare -rm` where the
tests do not run as root), in which a small tmpfs is mounted as its download folder (CRM_DOWNLOAD_DIR),
filled with ballast until only half of the feed's smallest file fits. The download must fail with an
error that names the file, the folder and what to do; nothing of the file is loaded, rejected or moved.
Then the ballast is removed (space freed) and the re-run loads every file once, reconciled with what the
sandbox served. The mount disappears with the child process, whatever happens."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import textwrap
from datetime import UTC, datetime, timedelta

import psycopg
import pytest
from crm_warehouse.load.ddl import forget_ready

from sandbox import world as W
from sandbox.serve import Sandbox
from tests.drills.reconcile import ROOT, reconcile

pytestmark = [pytest.mark.drill, pytest.mark.integration]

DAYS = 4
START = datetime(2026, 9, 1, tzinfo=UTC)
FEED, SOURCE, STREAM = "call_center_cdr", "sftp_call_center", "calls"

CHILD = textwrap.dedent("""
    import json, os, sys, traceback
    from crm_warehouse.files import run_feed

    folder, feed, url, free = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])

    def say(**kw):
        print(json.dumps(kw), flush=True)

    ballast = os.path.join(folder, "ballast")
    with open(ballast, "wb") as fh:  # fill the tmpfs, then give back `free` bytes
        try:
            while True:
                fh.write(b"\\0" * 65536)
                fh.flush()
        except OSError:
            pass
    size = os.path.getsize(ballast)
    os.truncate(ballast, max(0, size - free))
    stat = os.statvfs(folder)
    try:
        stats = run_feed(feed, warehouse_url=url)
    except Exception as exc:
        say(step="full", free=stat.f_bavail * stat.f_frsize, error=type(exc).__name__, message=str(exc),
            left=sorted(os.listdir(folder)), trace=traceback.format_exc()[-3000:])
    else:
        say(step="full", free=stat.f_bavail * stat.f_frsize, error=None, stats=stats)
    sys.stdin.readline()  # the parent has checked the warehouse and the server
    os.remove(ballast)
    stats = run_feed(feed, warehouse_url=url)
    say(step="freed", stats={k: v for k, v in stats.items() if k != "batches"}, left=sorted(os.listdir(folder)))
""")


def namespace_command() -> list[str]:
    """A private mount namespace in which this process may mount a tmpfs."""
    if shutil.which("unshare") is None:
        pytest.fail("`unshare` (util-linux) is needed to mount a private tmpfs for this drill: install util-linux")
    return ["unshare", "-m", "--propagation", "private"] if os.geteuid() == 0 else ["unshare", "-rm"]


def test_download_folder_full_then_space_freed_loads_each_file_once(tmp_path, fresh_db):
    W.generate(tmp_path / "world", seed=9, customers=1500, days=DAYS)
    sb = Sandbox(tmp_path / "world", clock=START + timedelta(days=3, hours=1), sftp=True).start()
    forget_ready()
    try:
        feed_cfg = sb.connections["survey_vendor_sftp"]["extra"]["feeds"][FEED]
        incoming = sb.sftp_server.root / feed_cfg["incoming"].lstrip("/")
        files = sorted(p.name for p in incoming.iterdir() if not p.name.endswith((".sha256", ".filepart")))
        assert len(files) >= 3, files
        free = min((incoming / f).stat().st_size for f in files) // 2
        folder = tmp_path / "downloads"
        folder.mkdir()
        env = {**os.environ, "CRM_DOWNLOAD_DIR": str(folder),
               "AIRFLOW_CONN_SURVEY_VENDOR_SFTP": json.dumps(sb.connections["survey_vendor_sftp"]),
               "PYTHONPATH": os.pathsep.join([str(ROOT / "plugins"), str(ROOT), os.environ.get("PYTHONPATH", "")])}
        script = (f'mount -t tmpfs -o size=1m crm-drill-downloads "{folder}" && '
                  f'exec "{sys.executable}" -c "$0" "{folder}" {FEED} "{fresh_db}" {free}')
        log = (tmp_path / "loader.log").open("w")
        child = subprocess.Popen([*namespace_command(), "sh", "-c", script, CHILD], env=env, cwd=ROOT, text=True,
                                 stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=log)
        try:
            full = _read_step(child, tmp_path / "loader.log")
            assert full["free"] < 2 * free + 8192, f"the tmpfs was not filled: {full}"
            assert full["error"] == "DownloadFolderFull", full.get("trace", full)
            message = full["message"]
            assert any(f"{feed_cfg['incoming']}/{f}" in message for f in files), message
            assert str(folder) in message and "Free space in" in message and "re-run" in message, message
            assert full["left"] == ["ballast"], f"a partial download was left in the folder: {full['left']}"
            # nothing half-loaded, nothing rejected, nothing moved
            with psycopg.connect(fresh_db) as conn:
                assert conn.execute("select count(*) from ops.files").fetchone()[0] == 0
                assert conn.execute("select count(*) from raw.sftp_call_center__calls").fetchone()[0] == 0
                assert conn.execute("select count(*) from ops.batches where status = 'running'").fetchone()[0] == 0
            still = sorted(p.name for p in incoming.iterdir() if not p.name.endswith((".sha256", ".filepart")))
            assert still == files
            rejected = sb.sftp_server.root / feed_cfg["rejected"].lstrip("/")
            assert not rejected.exists() or list(rejected.iterdir()) == []

            child.stdin.write("free the space\n")
            child.stdin.flush()
            freed = _read_step(child, tmp_path / "loader.log")
        finally:
            if child.poll() is None:
                child.stdin.close()
                child.wait(60)
        assert child.returncode == 0, (tmp_path / "loader.log").read_text()[-3000:]
        assert freed["stats"]["files_loaded"] == len(files) and freed["stats"]["files_rejected"] == 0, freed
        assert freed["left"] == [], f"downloads left behind: {freed['left']}"
        assert sorted(p.name for p in incoming.iterdir() if not p.name.endswith(".filepart")) == []
        result = reconcile(fresh_db, sb.db_path, sb.clock_ts, SOURCE, STREAM)
        result.assert_exact("after the download folder was full")
        assert result.landed == result.served > 0 and result.quarantined == 0
        with psycopg.connect(fresh_db) as conn:
            loaded = conn.execute("select count(*) from ops.files where status = 'loaded'").fetchone()[0]
        assert loaded == len(files)
        print(f"DRILL download_disk_full: faults=1 files={len(files)} served={result.served} "
              f"lost={len(result.lost)} duplicated={result.duplicated} quarantined={result.quarantined}")
    finally:
        sb.stop()


def _read_step(child: subprocess.Popen, log) -> dict:
    for line in child.stdout:
        if line.startswith("{"):
            return json.loads(line)
    child.wait(30)
    raise AssertionError(f"the loader ended without reporting (exit {child.returncode}):\n{log.read_text()[-3000:]}")
