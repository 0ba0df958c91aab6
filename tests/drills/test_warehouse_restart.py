"""Drill: the warehouse PostgreSQL restarted, or stopped, in the middle of a load.

The test owns its PostgreSQL server (the `pgserver` binaries the embedded warehouse uses, in a temporary
folder), never the shared one. The loader pulls Twilio calls from the sandbox in batches of 40 records
(pages of 25); halfway through the COPY of its 3rd batch, with the batch's transaction open, the server
is restarted (`pg_ctl restart -m fast`) or stopped (`pg_ctl stop -m fast`). The load must fail with an
error that names the stream and says what to do, keep the batches committed before, and a re-run must
reconcile with what the sandbox served: nothing lost, nothing twice."""

from __future__ import annotations

import json
import subprocess
from datetime import UTC, datetime, timedelta

import psycopg
import pytest
from crm_warehouse import embedded
from crm_warehouse.load.ddl import forget_ready
from crm_warehouse.sources import run_stream
from crm_warehouse.warehouse import WarehouseUnavailable

from sandbox import world as W
from sandbox.serve import Sandbox
from tests.drills.reconcile import reconcile

pytestmark = [pytest.mark.drill, pytest.mark.integration]

DAYS = 3
START = datetime(2026, 9, 1, tzinfo=UTC)
WINDOW = (START - timedelta(days=7), START + timedelta(days=DAYS))  # the whole world
FLUSH = 40


@pytest.fixture(scope="module")
def sb(tmp_path_factory):
    d = tmp_path_factory.mktemp("restart_world")
    W.generate(d, seed=23, customers=1500, days=DAYS)  # 185 calls
    box = Sandbox(d, sftp=False).start()
    yield box
    box.stop()


@pytest.fixture
def server(tmp_path):
    """A PostgreSQL server of this test's own, on a free loopback port."""
    pg = embedded.EmbeddedPostgres(tmp_path / "pg")
    pg.ensure_running()
    forget_ready()
    yield pg
    pg.stop()


def pg_ctl(pg: embedded.EmbeddedPostgres, *args: str) -> None:
    """`pg_ctl` as the server's user; the restarted postmaster logs to its log file (a pipe of ours would
    stay open as long as it runs)."""
    result = subprocess.run([embedded._bin("pg_ctl"), "-D", str(pg.pgdata), "-w", "-t", "60", "-l", str(pg.log),
                             *args], stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, timeout=120, **embedded._run_as())
    assert result.returncode == 0, f"pg_ctl {' '.join(args)} failed (exit {result.returncode}); see {pg.log}"


def _succeeded(url: str) -> list[tuple]:
    with psycopg.connect(url) as conn:
        return conn.execute("select batch_id, received, loaded from ops.batches where stream = 'calls' and "
                            "status = 'succeeded' order by 1").fetchall()


@pytest.mark.parametrize("mode", ["restart", "stop"])
def test_warehouse_restarted_mid_copy_then_rerun_reconciles(sb, server, monkeypatch, mode):
    import crm_warehouse.sources.runner as runner

    conn = json.loads(json.dumps(sb.connections["phone_system"]))
    conn["extra"]["page_size"] = 25
    monkeypatch.setenv("AIRFLOW_CONN_PHONE_SYSTEM", json.dumps(conn))
    url = server.url()
    real_write_batch, seen, faults = runner.write_batch, {"batches": 0}, []

    def write_batch(conn, source, stream, records, **kw):
        seen["batches"] += 1
        if seen["batches"] != 3:
            return real_write_batch(conn, source, stream, records, **kw)

        def halfway():
            records_list = list(records)
            for i, rec in enumerate(records_list):
                if i == len(records_list) // 2:  # half of this batch is in the COPY, its transaction open
                    pg_ctl(server, "-m", "fast", "restart" if mode == "restart" else "stop")
                    faults.append(mode)
                yield rec

        return real_write_batch(conn, source, stream, halfway(), **kw)

    monkeypatch.setattr(runner, "write_batch", write_batch)
    with pytest.raises(WarehouseUnavailable) as info:
        run_stream("phone_system", "calls", *WINDOW, warehouse_url=url, flush_records=FLUSH)
    assert faults == [mode], "the server was not restarted during the load"
    message = str(info.value)
    assert "phone_system.calls" in message and "lost during the load" in message and "Re-run" in message
    assert "2 batch(es) committed before it" in message
    monkeypatch.setattr(runner, "write_batch", real_write_batch)

    if mode == "stop":  # while it is down, a run fails at once, and says so
        with pytest.raises(WarehouseUnavailable, match=r"phone_system\.calls: cannot connect to the warehouse"):
            run_stream("phone_system", "calls", *WINDOW, warehouse_url=url, flush_records=FLUSH)
        server.ensure_running()
        assert server.url() == url, "the server came back on another port"

    before = _succeeded(url)
    assert len(before) == 2 and all(received == FLUSH or received > 0 for _, received, _ in before), before
    with psycopg.connect(url) as c:
        failed = c.execute("select error from ops.batches where stream = 'calls' and status = 'failed'").fetchall()
        half = reconcile(url, sb.db_path, sb.clock_ts, "phone_system", "calls")  # no half-loaded batch
    assert half.landed == sum(loaded for *_, loaded in before), "the batch cut by the restart left rows behind"
    if mode == "restart":  # the server answered again at once: the failed try is in the ledger
        assert len(failed) == 1 and "lost during the load" in failed[0][0]

    stats = run_stream("phone_system", "calls", *WINDOW, warehouse_url=url, flush_records=FLUSH)
    assert stats["loaded"] > 0 and stats["duplicate"] == 0, stats  # resumed after the committed batches
    assert _succeeded(url)[: len(before)] == before
    result = reconcile(url, sb.db_path, sb.clock_ts, "phone_system", "calls")
    result.assert_exact(f"after the warehouse {mode}")
    assert result.landed == result.served > 3 * FLUSH
    again = run_stream("phone_system", "calls", *WINDOW, warehouse_url=url, flush_records=FLUSH)
    assert again["loaded"] == 0 and again["duplicate"] == again["received"] == result.served
    print(f"DRILL warehouse_{mode}: faults=1 served={result.served} lost={len(result.lost)} "
          f"duplicated={result.duplicated} quarantined={result.quarantined}")
