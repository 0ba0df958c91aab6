"""A real SFTP server (asyncssh, own thread and event loop) on loopback, rooted at `world_dir/sftp_root`.

The survey vendor and the outsourced call center drop one file per feed per world day; a day's file
appears when the clock reaches the end of that day. The files vary the way real vendor files do
(gzip, zip, BOM, UTF-16, Windows-1252, semicolons, tabs, one or three header rows), some carry a
`.sha256` sidecar, some are first seen as `.filepart` while "uploading", one file is re-uploaded with
new content under the same name and one is uploaded twice under different names. What was dropped is
recorded in `world_dir/sftp_drops.json` (name, feed, day, variant, rows, sha256) for tests.
"""

from __future__ import annotations

import asyncio
import csv
import gzip
import hashlib
import io
import json
import os
import random
import sqlite3
import threading
import time
import zipfile
from pathlib import Path
from typing import TYPE_CHECKING

import asyncssh

from sandbox import world as W

if TYPE_CHECKING:
    from sandbox.serve import Sandbox

FEEDS = {
    "survey_vendor": {"incoming": "/survey_vendor/incoming", "archive": "/survey_vendor/archive",
                      "rejected": "/survey_vendor/rejected", "stream": "sftp_survey_vendor__responses",
                      "key": "ResponseId"},
    "call_center_cdr": {"incoming": "/call_center/incoming/cdr", "archive": "/call_center/archive/cdr",
                        "rejected": "/call_center/rejected/cdr", "stream": "sftp_call_center__calls",
                        "key": "call_id"},
    "call_center_dispositions": {"incoming": "/call_center/incoming/dispositions",
                                 "archive": "/call_center/archive/dispositions",
                                 "rejected": "/call_center/rejected/dispositions",
                                 "stream": "sftp_call_center__dispositions", "key": "disposition_id"},
}
CDR_COLUMNS = ["call_id", "started_at", "ended_at", "direction", "caller_number", "dialed_number", "agent_id",
               "duration_seconds", "queue_seconds", "status"]
DISPOSITION_COLUMNS = ["disposition_id", "call_sid", "agent_id", "wrapped_at", "code", "category", "case_ref",
                       "case_status", "notes"]
SURVEY_VARIANTS = ["plain", "gzip", "bom", "zip", "utf16", "cp1252", "semicolon", "single_header", "tab"]
UPLOAD_SECONDS = 20 * 60  # how long a `.filepart` upload takes


def _encode(text: str, variant: str) -> bytes:
    if variant == "bom":
        return text.encode("utf-8-sig")
    if variant == "utf16":
        return text.encode("utf-16")  # with its BOM, as Excel and Windows tools write it
    if variant == "cp1252":
        return text.encode("cp1252", errors="replace")
    return text.encode("utf-8")


def render_csv(columns: list[str], rows: list[dict], variant: str, three_headers: bool = False) -> bytes:
    """One vendor file's bytes for these rows in this variant (before gzip/zip wrapping)."""
    delim = {"semicolon": ";", "tab": "\t"}.get(variant, ",")
    out = io.StringIO()
    w = csv.writer(out, delimiter=delim, lineterminator="\r\n")
    if three_headers and variant != "single_header":
        for header in W.qualtrics_header_rows():
            w.writerow(header)
    else:
        w.writerow(columns)
    for r in rows:
        w.writerow(["" if r.get(c) is None else r.get(c) for c in columns])
    return _encode(out.getvalue(), variant)


def _wrap(name: str, data: bytes, variant: str) -> tuple[str, bytes]:
    if variant == "gzip":
        return name + ".gz", gzip.compress(data, mtime=0)
    if variant == "zip":
        buf = io.BytesIO()
        with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
            info = zipfile.ZipInfo(name, date_time=(2026, 1, 1, 0, 0, 0))
            zf.writestr(info, data)
        return name[:-4] + ".zip", buf.getvalue()
    return name, data


class SftpDrop:
    """The SFTP server plus the drops that materialise as the sandbox clock advances."""

    def __init__(self, sandbox: Sandbox, host: str | None = None, port: int = 0) -> None:
        self.sb = sandbox
        self.host = host or sandbox.host
        self.want_port = port
        self.root = sandbox.world_dir / "sftp_root"
        self.state_path = sandbox.world_dir / "sftp_drops.json"
        self.login = "vendor"
        self.password = W_secret(sandbox.seed, "sftp")
        self.port = 0
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._server: asyncssh.SSHAcceptor | None = None
        self._lock = threading.Lock()
        self.key_path = sandbox.world_dir / "sftp_host_key"
        if not self.key_path.exists():
            key = asyncssh.generate_private_key("ssh-ed25519")
            key.write_private_key(str(self.key_path))
            os.chmod(self.key_path, 0o600)
        self.host_key = asyncssh.read_private_key(str(self.key_path))
        pub = self.host_key.export_public_key().decode().split()
        self.host_key_line = f"{pub[0]} {pub[1]}"
        for feed in FEEDS.values():
            for folder in ("incoming", "archive", "rejected"):
                (self.root / feed[folder].lstrip("/")).mkdir(parents=True, exist_ok=True)
        self.state = json.loads(self.state_path.read_text()) if self.state_path.exists() else {"done": {}}

    # ---- server
    def start(self) -> None:
        ready = threading.Event()
        errors: list[BaseException] = []

        def run() -> None:
            loop = asyncio.new_event_loop()
            self._loop = loop
            asyncio.set_event_loop(loop)
            try:
                self._server = loop.run_until_complete(asyncssh.listen(
                    self.host, self.want_port, server_host_keys=[self.host_key],
                    server_factory=self._server_factory, sftp_factory=self._sftp_factory,
                    allow_scp=False, process_factory=None))
                self.port = self._server.sockets[0].getsockname()[1]
            except BaseException as exc:  # noqa: BLE001 - reported to the starting thread
                errors.append(exc)
                ready.set()
                return
            ready.set()
            loop.run_forever()
            self._server.close()
            loop.run_until_complete(self._server.wait_closed())
            loop.close()

        self._thread = threading.Thread(target=run, name="sandbox-sftp", daemon=True)
        self._thread.start()
        ready.wait(30)
        if errors:
            raise RuntimeError(f"sandbox SFTP server could not start on {self.host}:{self.want_port}: "
                               f"{errors[0]}")

    def stop(self) -> None:
        if self._loop is not None:
            self._loop.call_soon_threadsafe(self._loop.stop)
        if self._thread is not None:
            self._thread.join(10)
        self._loop = None

    def _server_factory(self) -> asyncssh.SSHServer:
        drop = self

        class Server(asyncssh.SSHServer):
            def begin_auth(self, username: str) -> bool:
                return True

            def password_auth_supported(self) -> bool:
                return True

            def validate_password(self, username: str, password: str) -> bool:
                if drop.sb.faults.take("sftp", ("bad_auth",)):
                    return False
                return username == drop.login and password == drop.password

        return Server()

    def _sftp_factory(self, chan: asyncssh.SSHServerChannel) -> asyncssh.SFTPServer:
        drop = self

        class Server(asyncssh.SFTPServer):
            def __init__(self, chan: asyncssh.SSHServerChannel) -> None:
                super().__init__(chan, chroot=str(drop.root).encode())
                self._faulty: dict[int, dict] = {}

            def open(self, path: bytes, pflags: int, attrs: asyncssh.SFTPAttrs) -> object:
                f = super().open(path, pflags, attrs)
                if pflags & asyncssh.FXF_READ and not pflags & asyncssh.FXF_WRITE:
                    fault = drop.sb.faults.take("sftp", ("truncated", "corrupt", "drop", "slow"))
                    if fault:
                        self._faulty[id(f)] = fault
                return f

            def close(self, file_obj: object) -> None:
                self._faulty.pop(id(file_obj), None)
                return super().close(file_obj)

            def read(self, file_obj: object, offset: int, size: int) -> bytes:
                data = super().read(file_obj, offset, size)
                fault = self._faulty.get(id(file_obj))
                if not fault or not isinstance(data, bytes):
                    return data
                kind = fault["fault"]
                total = os.fstat(file_obj.fileno()).st_size  # type: ignore[attr-defined]
                half = total // 2
                if kind == "slow":
                    time.sleep(float(fault.get("seconds", 5)))
                    self._faulty.pop(id(file_obj), None)
                    return data
                if kind == "truncated":
                    return data[: max(0, half - offset)] if offset < half else b""
                if kind == "drop" and offset + len(data) >= half:
                    self.channel.get_connection().abort()
                    return data[: max(0, half - offset)]
                if kind == "corrupt":
                    out = bytearray(data)
                    lo, hi = max(offset, half - 64), min(offset + len(data), half + 64)
                    for i in range(lo, hi):
                        out[i - offset] ^= 0x5A
                    return bytes(out)
                return data

        return Server(chan)

    def connection(self) -> dict:
        host = self.sb.public_host if self.host == self.sb.host else self.host
        return {"conn_type": "sftp", "host": host, "port": self.port, "login": self.login,
                "password": self.password,
                "extra": {"host_key": self.host_key_line, "feeds": FEEDS, "no_host_key_check": False}}

    # ---- drops
    def plan(self) -> list[dict]:
        """Every drop of the world, in time order: what file, when, which variant."""
        start, end = self.sb.start_ts, self.sb.end_ts
        rng = random.Random(self.sb.seed * 7919 + 17)
        days = (end - start) // W.DAY
        out: list[dict] = []
        for d in range(days):
            day0 = start + d * W.DAY
            ymd = time.strftime("%Y%m%d", time.gmtime(day0))
            at = day0 + W.DAY
            last = d == days - 1
            sv = SURVEY_VARIANTS[d % len(SURVEY_VARIANTS)]
            out.append({"feed": "survey_vendor", "day": day0, "at": at, "variant": sv,
                        "name": f"responses_{ymd}.csv", "sha256": d % 3 == 0,
                        "filepart": (d % 5 == 2) and not last})
            cv = rng.choice(["plain", "plain", "plain", "gzip", "semicolon", "bom"])
            out.append({"feed": "call_center_cdr", "day": day0, "at": at, "variant": cv,
                        "name": f"cdr_{ymd}.csv", "sha256": d % 2 == 0, "filepart": (d % 7 == 3) and not last})
            out.append({"feed": "call_center_dispositions", "day": day0, "at": at,
                        "variant": rng.choice(["plain", "plain", "tab", "gzip"]),
                        "name": f"wrapup_{ymd}.csv", "sha256": d % 2 == 0, "filepart": False})
            if d == 3 and not last:
                out.append({"feed": "survey_vendor", "day": day0, "at": at + 6 * 3600, "variant": sv,
                            "name": f"responses_{ymd}.csv", "sha256": d % 3 == 0, "filepart": False,
                            "reupload": True})
            if d == 4 and not last:
                out.append({"feed": "call_center_cdr", "day": day0, "at": at + 2 * 3600, "variant": cv,
                            "name": f"cdr_{ymd}_resend.csv", "sha256": False, "filepart": False})
        return sorted(out, key=lambda x: x["at"])

    def _rows(self, feed: str, day0: int) -> tuple[list[str], list[dict]]:
        table, cols = {"survey_vendor": ("s_sftp_survey", W.QUALTRICS_COLUMNS),
                       "call_center_cdr": ("s_cc_calls", CDR_COLUMNS),
                       "call_center_dispositions": ("s_cc_dispositions", DISPOSITION_COLUMNS)}[feed]
        with sqlite3.connect(f"file:{self.sb.db_path}?mode=ro", uri=True) as db:
            rows = db.execute(f"select row from {table} where day = ? order by available_at, key",
                              (time.strftime("%Y-%m-%d", time.gmtime(day0)),)).fetchall()
        return list(cols), [json.loads(r[0]) for r in rows]

    def content(self, drop: dict) -> tuple[str, bytes, int]:
        cols, rows = self._rows(drop["feed"], drop["day"])
        if drop.get("reupload") and rows:
            rows[0] = dict(rows[0])
            rows[0]["QID5_TEXT"] = (rows[0].get("QID5_TEXT") or "") + " (corrected by the vendor)"
        data = render_csv(cols, rows, drop["variant"], three_headers=drop["feed"] == "survey_vendor")
        name, data = _wrap(drop["name"], data, drop["variant"])
        return name, data, len(rows)

    def materialise(self, clock: int) -> list[str]:
        """Write every drop due by `clock` into incoming/ (once each). Returns the paths written."""
        written: list[str] = []
        with self._lock:
            done = self.state["done"]
            for i, drop in enumerate(self.plan()):
                if drop["at"] > clock:
                    break
                key = f"{i}:{drop['name']}"
                finished = clock >= drop["at"] + UPLOAD_SECONDS or not drop["filepart"]
                status = done.get(key)
                if status == "final" or (status == "partial" and not finished):
                    continue
                name, data, nrows = self.content(drop)
                folder = self.root / FEEDS[drop["feed"]]["incoming"].lstrip("/")
                target = folder / name
                part = folder / (name + ".filepart")
                if not finished:
                    part.write_bytes(data[: len(data) // 3])
                    done[key] = "partial"
                    written.append(str(part))
                    continue
                tmp = folder / (name + ".sandbox-tmp")
                tmp.write_bytes(data)
                os.utime(tmp, (drop["at"], drop["at"]))
                if part.exists():
                    part.unlink()
                tmp.replace(target)
                sha = hashlib.sha256(data).hexdigest()
                if drop["sha256"]:
                    (folder / (name + ".sha256")).write_text(f"{sha}  {name}\n")
                done[key] = "final"
                self.state.setdefault("files", []).append(
                    {"path": f"{FEEDS[drop['feed']]['incoming']}/{name}", "feed": drop["feed"],
                     "day": time.strftime("%Y-%m-%d", time.gmtime(drop["day"])), "variant": drop["variant"],
                     "rows": nrows, "sha256": sha, "size": len(data), "reupload": bool(drop.get("reupload")),
                     "sidecar": drop["sha256"]})
                written.append(str(target))
            self.state_path.write_text(json.dumps(self.state, indent=1))
        return written


def W_secret(seed: int, name: str) -> str:  # noqa: N802
    return hashlib.sha256(f"crm-sandbox:{seed}:{name}".encode()).hexdigest()[:24]


def damage(path: str | Path, how: str = "corrupt") -> None:
    """Damage a file in place (tests of the loader's reject path): 'truncated' or 'corrupt'."""
    p = Path(path)
    data = p.read_bytes()
    if how == "truncated":
        p.write_bytes(data[: len(data) // 2])
    else:
        mid = len(data) // 2
        p.write_bytes(data[:mid] + bytes(b ^ 0x5A for b in data[mid:mid + 128]) + data[mid + 128:])
