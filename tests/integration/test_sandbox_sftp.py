"""The sandbox SFTP drop over a real SSH connection (paramiko client, host key verified)."""

from __future__ import annotations

import base64
import csv
import gzip
import hashlib
import io
import json
import sqlite3
import time
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


def _unwrap(name: str, data: bytes) -> bytes:
    if name.endswith(".gz"):
        assert data[:2] == b"\x1f\x8b", name
        return gzip.decompress(data)
    if name.endswith(".zip"):
        assert data[:4] == b"PK\x03\x04", name
        with zipfile.ZipFile(io.BytesIO(data)) as zf:
            assert len(zf.namelist()) == 1
            return zf.read(zf.namelist()[0])
    return data


def test_each_variant_is_really_written_that_way(sb):
    """The bytes on the server, not only the manifest, carry each variant."""
    sb.set_clock(datetime(2026, 9, 11, tzinfo=UTC))
    drops = json.loads((sb.world_dir / "sftp_drops.json").read_text())["files"]
    client = _client(sb)
    sftp = client.open_sftp()
    checked = set()
    for i, d in enumerate(drops):
        if d["feed"] != "survey_vendor" or any(o["path"] == d["path"] for o in drops[i + 1:]):
            continue  # (an earlier version of a re-uploaded file is gone)
        name = d["path"].rsplit("/", 1)[1]
        raw = _unwrap(name, sftp.open(d["path"]).read())
        v = d["variant"]
        if v == "gzip":
            assert name.endswith(".csv.gz")
        elif v == "zip":
            assert name.endswith(".zip")
        else:
            assert name.endswith(".csv")
        if v == "bom":
            assert raw.startswith(b"\xef\xbb\xbf")
        elif v == "utf16":
            assert raw.startswith(b"\xff\xfe") and raw[3:4] == b"\x00"
            raw = raw.decode("utf-16").encode()
        elif v == "cp1252":
            assert any(b > 0x7F for b in raw), "no character outside ASCII to tell the encoding by"
            with pytest.raises(UnicodeDecodeError):
                raw.decode("utf-8")
            raw = raw.decode("cp1252").encode()
        else:
            assert not raw.startswith(b"\xef\xbb\xbf")
            raw.decode("utf-8")
        first = raw.split(b"\r\n", 1)[0].decode("utf-8-sig")
        delim = {"semicolon": ";", "tab": "\t"}.get(v, ",")
        assert first.startswith(f"StartDate{delim}EndDate{delim}") if v != "single_header" else \
            first.startswith("StartDate,EndDate,")
        rows = _decode(name, sftp.open(d["path"]).read())
        if v == "single_header":
            assert len(rows) == d["rows"] + 1 and not any("ImportId" in r[0] for r in rows)
        else:
            assert len(rows) == d["rows"] + 3 and json.loads(rows[2][0]) == {"ImportId": "startDate"}, v
        checked.add(v)
    assert checked == {"plain", "gzip", "bom", "zip", "utf16", "cp1252", "semicolon", "single_header", "tab"}
    cc = {d["variant"] for d in drops if d["feed"].startswith("call_center")}
    assert {"plain", "gzip", "tab"} <= cc and cc & {"semicolon", "bom"}, cc
    client.close()


def test_reupload_replaces_content_under_the_same_name_and_resend_repeats_content(sb):
    sb.set_clock(datetime(2026, 9, 11, tzinfo=UTC))
    drops = json.loads((sb.world_dir / "sftp_drops.json").read_text())["files"]
    by_path: dict[str, list[dict]] = {}
    for d in drops:
        by_path.setdefault(d["path"], []).append(d)
    again = [v for v in by_path.values() if len(v) > 1]
    assert again and all(len({d["sha256"] for d in v}) == len(v) for v in again), "same name, new content"
    client = _client(sb)
    sftp = client.open_sftp()
    latest = again[0][-1]
    assert hashlib.sha256(sftp.open(latest["path"]).read()).hexdigest() == latest["sha256"]
    resend = next(d for d in drops if d["path"].endswith("_resend.csv"))
    original = next(d for d in drops if d["sha256"] == resend["sha256"] and d is not resend)
    assert original["path"] != resend["path"]
    assert sftp.open(original["path"]).read() == sftp.open(resend["path"]).read()
    client.close()


def test_sftp_slow_fault_stalls_a_read(sb):
    sb.set_clock(datetime(2026, 9, 11, tzinfo=UTC))
    drops = json.loads((sb.world_dir / "sftp_drops.json").read_text())["files"]
    path = next(d["path"] for d in drops if d["feed"] == "survey_vendor")
    client = _client(sb)
    sftp = client.open_sftp()
    sb.inject("sftp", "slow", seconds=1.0)
    t0 = time.monotonic()
    with sftp.open(path) as f:
        f.read()
    assert time.monotonic() - t0 >= 1.0
    t0 = time.monotonic()
    with sftp.open(path) as f:
        f.read()
    assert time.monotonic() - t0 < 1.0
    client.close()
