"""The sandbox SFTP drop over a real SSH connection (paramiko client, host key verified)."""

from __future__ import annotations

import base64
import csv
import gzip
import hashlib
import io
import json
import sqlite3
import zipfile
import zlib
from datetime import UTC, datetime

import paramiko
import pytest

from sandbox import world as W
from sandbox.serve import Sandbox
from sandbox.sftp import FEEDS, UPLOAD_SECONDS


@pytest.fixture(scope="module")
def sb(tmp_path_factory):
    d = tmp_path_factory.mktemp("sftpworld")
    W.generate(d, seed=9, customers=500, days=12)
    sandbox = Sandbox(d, clock=datetime(2026, 9, 1, tzinfo=UTC), admin=False).start()
    yield sandbox
    sandbox.stop()


@pytest.fixture(autouse=True)
def _reset(sb):
    sb.clear_faults()
    yield
    sb.clear_faults()


def _client(sb, password=None, host_key=None) -> paramiko.SSHClient:
    conn = sb.connections["survey_vendor_sftp"]
    kind, b64 = (host_key or conn["extra"]["host_key"]).split()[:2]
    assert kind == "ssh-ed25519"
    client = paramiko.SSHClient()
    client.get_host_keys().add(f"[{conn['host']}]:{conn['port']}", kind,
                               paramiko.Ed25519Key(data=base64.b64decode(b64)))
    client.set_missing_host_key_policy(paramiko.RejectPolicy())
    client.connect(conn["host"], port=conn["port"], username=conn["login"],
                   password=password or conn["password"], look_for_keys=False, allow_agent=False, timeout=10)
    return client


def _decode(name: str, data: bytes) -> list[list[str]]:
    if name.endswith(".gz"):
        data = gzip.decompress(data)
    elif name.endswith(".zip"):
        with zipfile.ZipFile(io.BytesIO(data)) as zf:
            data = zf.read(zf.namelist()[0])
    if data.startswith(b"\xff\xfe") or data.startswith(b"\xfe\xff"):
        text = data.decode("utf-16")
    else:
        try:
            text = data.decode("utf-8-sig")
        except UnicodeDecodeError:
            text = data.decode("cp1252")
    first = text.split("\r\n", 1)[0]
    delim = max([",", ";", "\t"], key=first.count)
    return list(csv.reader(io.StringIO(text), delimiter=delim))


def test_connection_carries_host_key_and_feeds(sb):
    conn = sb.connections["survey_vendor_sftp"]
    assert conn["conn_type"] == "sftp" and conn["host"] == "127.0.0.1" and conn["port"] > 0
    assert conn["extra"]["host_key"].startswith("ssh-ed25519 AAAA")
    assert set(conn["extra"]["feeds"]) == {"survey_vendor", "call_center_cdr", "call_center_dispositions"}
    assert conn["extra"]["feeds"]["call_center_cdr"]["key"] == "call_id"


def test_wrong_host_key_and_wrong_password_are_refused(sb):
    other = paramiko.Ed25519Key.from_private_key(io.StringIO(_other_key()))
    with pytest.raises(paramiko.BadHostKeyException):
        _client(sb, host_key=f"ssh-ed25519 {other.get_base64()}")
    with pytest.raises(paramiko.AuthenticationException):
        _client(sb, password="wrong")
    sb.inject("sftp", "bad_auth")
    with pytest.raises(paramiko.AuthenticationException):
        _client(sb)
    _client(sb).close()


def _other_key() -> str:
    import asyncssh

    return asyncssh.generate_private_key("ssh-ed25519").export_private_key("openssh").decode()


def test_drops_appear_with_the_clock_in_every_variant(sb):
    sb.set_clock(datetime(2026, 9, 1, tzinfo=UTC))
    client = _client(sb)
    sftp = client.open_sftp()
    assert sftp.listdir(FEEDS["survey_vendor"]["incoming"]) == []
    sb.set_clock(datetime(2026, 9, 11, tzinfo=UTC))
    drops = json.loads((sb.world_dir / "sftp_drops.json").read_text())["files"]
    db = sqlite3.connect(sb.db_path)
    variants = set()
    for d in drops:
        folder, name = d["path"].rsplit("/", 1)
        assert name in sftp.listdir(folder)
        data = sftp.open(d["path"]).read()
        assert hashlib.sha256(data).hexdigest() == d["sha256"] or d["reupload"] or _later_version(drops, d)
        rows = _decode(name, data)
        table, key = {"survey_vendor": ("s_sftp_survey", "ResponseId"),
                      "call_center_cdr": ("s_cc_calls", "call_id"),
                      "call_center_dispositions": ("s_cc_dispositions", "disposition_id")}[d["feed"]]
        header_rows = 3 if d["feed"] == "survey_vendor" and d["variant"] != "single_header" else 1
        body = rows[header_rows:]
        assert len(body) == d["rows"] == db.execute(f"select count(*) from {table} where day = ?",
                                                     (d["day"],)).fetchone()[0]
        keys = {r[rows[0].index(key)] for r in body}
        assert keys == {r[0] for r in db.execute(f"select key from {table} where day = ?", (d["day"],))}
        if d["sidecar"]:
            side = sftp.open(d["path"] + ".sha256").read().decode()
            assert side.split()[0] == hashlib.sha256(data).hexdigest() and side.split()[1] == name
        variants.add((d["feed"], d["variant"]))
    assert {v for f, v in variants if f == "survey_vendor"} >= {"plain", "gzip", "bom", "zip", "utf16", "cp1252",
                                                                "semicolon", "single_header", "tab"}
    names = [d["path"] for d in drops]
    resend = [d for d in drops if d["path"].endswith("_resend.csv")]
    assert resend and any(d["sha256"] == resend[0]["sha256"] for d in drops if d is not resend[0])
    assert any(d["reupload"] for d in drops) and len(names) > len(set(names))
    client.close()


def _later_version(drops, d) -> bool:
    return any(o["path"] == d["path"] and o is not d for o in drops)


def test_upload_in_progress_is_a_filepart_then_renamed(sb):
    drop = next(d for d in sb.sftp_server.plan() if d["filepart"] and d["at"] > sb.clock_ts)
    folder = FEEDS[drop["feed"]]["incoming"]
    sb.set_clock(drop["at"] + 60)
    client = _client(sb)
    sftp = client.open_sftp()
    listing = sftp.listdir(folder)
    assert any(n.endswith(".filepart") and n.startswith(drop["name"].split(".")[0]) for n in listing)
    sb.set_clock(drop["at"] + UPLOAD_SECONDS + 1)
    listing = sftp.listdir(folder)
    assert not any(n.endswith(".filepart") for n in listing)
    assert any(n.startswith(drop["name"].split(".")[0]) for n in listing)
    client.close()


def test_loader_can_move_files_to_archive(sb):
    sb.set_clock(datetime(2026, 9, 4, tzinfo=UTC))
    client = _client(sb)
    sftp = client.open_sftp()
    inc, arc = FEEDS["call_center_dispositions"]["incoming"], FEEDS["call_center_dispositions"]["archive"]
    name = sorted(n for n in sftp.listdir(inc) if not n.endswith(".sha256"))[0]
    sftp.rename(f"{inc}/{name}", f"{arc}/{name}")
    assert name in sftp.listdir(arc) and name not in sftp.listdir(inc)
    client.close()


def test_sftp_faults_truncate_corrupt_and_drop(sb):
    sb.set_clock(datetime(2026, 9, 11, tzinfo=UTC))
    drops = json.loads((sb.world_dir / "sftp_drops.json").read_text())["files"]
    gz = next(d for d in drops if d["path"].endswith(".csv.gz") and d["size"] > 300
              and d["feed"] != "call_center_dispositions")  # (another test archives a dispositions file)
    client = _client(sb)
    sftp = client.open_sftp()
    sb.inject("sftp", "truncated")
    with sftp.open(gz["path"]) as f:
        short = f.read()
    assert len(short) < gz["size"]
    sb.inject("sftp", "corrupt")
    with sftp.open(gz["path"]) as f:
        damaged = f.read()
    assert len(damaged) == gz["size"] and hashlib.sha256(damaged).hexdigest() != gz["sha256"]
    with pytest.raises((OSError, EOFError, zlib.error)):
        gzip.decompress(damaged)
    with sftp.open(gz["path"]) as f:
        assert hashlib.sha256(f.read()).hexdigest() == gz["sha256"]
    sb.inject("sftp", "drop")
    with pytest.raises((OSError, EOFError, paramiko.SSHException)):
        with sftp.open(gz["path"]) as f:
            f.read()
    client.close()
    _client(sb).close()


def test_regenerating_the_world_clears_old_drops(tmp_path):
    W.generate(tmp_path, seed=1, customers=100, days=3)
    sandbox = Sandbox(tmp_path, admin=False).start()
    sandbox.stop()
    assert list((tmp_path / "sftp_root" / "survey_vendor" / "incoming").iterdir())
    W.generate(tmp_path, seed=2, customers=100, days=3)
    assert not (tmp_path / "sftp_root").exists() and not (tmp_path / "sftp_drops.json").exists()
    assert (tmp_path / "sftp_host_key").exists(), "the server keeps its host key across worlds"
