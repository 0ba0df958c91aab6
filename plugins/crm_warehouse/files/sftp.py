"""Load the files a vendor drops on SFTP, feed by feed (connection `extra.feeds`, CONTRACTS section 5).

For each ready file in the feed's `incoming` folder (temporary upload names are ignored): stream it to
a local temp file while hashing (constant memory); check its `.sha256` sidecar when there is one; skip
content already loaded (ledger `ops.files`, keyed by sha256); read it (gzip/zip/bz2, encoding,
delimiter, Qualtrics three-header layout) and load its rows through the COPY loader in one transaction
with its ledger row; then move it to `archive`. A file that cannot be read is rolled back entirely,
moved to `rejected`, and a plain-text `<file>.rejected.txt` report for the vendor is written beside it.
"""

from __future__ import annotations

import errno
import hashlib
import logging
import os
import posixpath
import stat
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import paramiko
import psycopg

from crm_warehouse.files.ledger import loaded_before, record_file, set_archived
from crm_warehouse.files.readers import (
    REPORT_SUFFIX,
    SIDECAR_SUFFIX,
    Layout,
    UnreadableFile,
    is_data_file,
    is_safe_name,
    is_temporary,
    local_suffix,
    parse_sidecar,
    read_rows,
)
from crm_warehouse.load import Record, ensure_ops_tables, ensure_raw_table, write_batch
from crm_warehouse.load.loader import lineage_tail
from crm_warehouse.settings import download_dir

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Feed:
    name: str
    incoming: str
    archive: str
    rejected: str
    source: str  # raw table = raw.<source>__<stream>
    stream: str
    key: str


def feed_config(conn_id: str, feed: str, extra: dict) -> Feed:
    feeds = extra.get("feeds") or {}
    if feed not in feeds:
        raise KeyError(f"SFTP connection {conn_id!r} has no feed {feed!r} in extra.feeds (feeds: "
                       f"{', '.join(sorted(feeds)) or 'none'})")
    cfg = feeds[feed]
    missing = [k for k in ("incoming", "archive", "rejected", "stream", "key") if not cfg.get(k)]
    if missing:
        raise ValueError(f"Feed {feed!r} of SFTP connection {conn_id!r} lacks {', '.join(missing)} in extra.feeds")
    source, sep, stream = str(cfg["stream"]).partition("__")
    if not sep:
        raise ValueError(f"Feed {feed!r}: stream {cfg['stream']!r} must be '<source>__<stream>', e.g. "
                         "'sftp_survey_vendor__responses'")
    return Feed(feed, cfg["incoming"], cfg["archive"], cfg["rejected"], source, stream, cfg["key"])


def check_host_key_policy(conn_id: str, extra: dict) -> None:
    """Refuse connections that would accept an unknown host key."""
    if not extra.get("host_key"):
        raise ValueError(f"SFTP connection {conn_id!r} has no extra.host_key: add the server's public host key "
                         "(e.g. 'ssh-ed25519 AAAA...', from the vendor or `ssh-keyscan`); unknown keys are refused")
    if str(extra.get("no_host_key_check", "false")).lower() == "true" or \
            str(extra.get("allow_host_key_change", "false")).lower() == "true":
        raise ValueError(f"SFTP connection {conn_id!r} disables host key checking (no_host_key_check / "
                         "allow_host_key_change): remove that option; host keys are always verified")


class _HashingWriter:
    """A file-like sink that hashes what it writes (paramiko's getfo streams into it)."""

    def __init__(self, fh: Any) -> None:
        self.fh = fh
        self.sha = hashlib.sha256()
        self.size = 0

    def write(self, data: bytes) -> int:
        view = memoryview(data)
        while view:  # an unbuffered file may take part of it
            view = view[self.fh.write(view):]
        self.sha.update(data)
        self.size += len(data)
        return len(data)

    def flush(self) -> None:
        self.fh.flush()


def run_feed(
    feed: str,
    *,
    conn_id: str = "survey_vendor_sftp",
    warehouse_conn_id: str = "warehouse",
    warehouse_url: str | None = None,
) -> dict[str, Any]:
    """Load every ready file of `feed`; returns counts (files loaded / duplicate / rejected, rows)."""
    from airflow.providers.sftp.hooks.sftp import SFTPHook
    from airflow.sdk import BaseHook

    from crm_warehouse.warehouse import connect

    extra = dict(BaseHook.get_connection(conn_id).extra_dejson or {})
    check_host_key_policy(conn_id, extra)
    cfg = feed_config(conn_id, feed, extra)
    stats: dict[str, Any] = {"feed": feed, "files_seen": 0, "files_loaded": 0, "files_duplicate": 0,
                             "files_rejected": 0, "skipped_temporary": 0, "skipped_unsafe": 0, "received": 0,
                             "loaded": 0, "duplicate": 0, "quarantined": 0, "batches": []}
    hook = SFTPHook(ssh_conn_id=conn_id, conn_retry_attempts=int(extra.get("conn_retry_attempts", 3)))
    with connect(warehouse_conn_id, url=warehouse_url, autocommit=True) as conn:
        ensure_ops_tables(conn)
        ensure_raw_table(conn, cfg.source, cfg.stream)
        with _sftp_session(hook, conn_id) as sftp:
            for entry in _ready_files(sftp, cfg, stats):
                _process(sftp, conn, cfg, entry, stats)
    log.info("feed %s: %s", feed, stats)
    return stats


@contextmanager
def _sftp_session(hook: Any, conn_id: str) -> Iterator[Any]:
    """The hook's managed SFTP session, with connection failures explained."""
    try:
        session = hook.get_managed_conn()
        sftp = session.__enter__()
    except paramiko.BadHostKeyException as exc:
        raise ConnectionRefusedError(
            f"SFTP connection {conn_id!r}: the server presented a host key that differs from extra.host_key "
            f"({exc}). Do not connect: confirm the server's key with the vendor, then update extra.host_key"
        ) from exc
    except paramiko.AuthenticationException as exc:
        raise PermissionError(f"SFTP connection {conn_id!r}: the server refused the login; check the login and "
                              "password (or key_file) of the connection") from exc
    except paramiko.SSHException as exc:
        if "known_hosts" in str(exc) or "host key" in str(exc).lower():
            raise ConnectionRefusedError(
                f"SFTP connection {conn_id!r}: the server's host key is unknown ({exc}); it does not match "
                "extra.host_key. Confirm the key with the vendor, then update extra.host_key") from exc
        raise
    try:
        yield sftp
    finally:
        session.__exit__(None, None, None)


def _ready_files(sftp: Any, cfg: Feed, stats: dict) -> Iterator[Any]:
    try:
        entries = sftp.listdir_attr(cfg.incoming)
    except OSError as exc:
        raise FileNotFoundError(f"Feed {cfg.name!r}: cannot list {cfg.incoming!r} on the SFTP server ({exc}); "
                                "check extra.feeds and the account's permissions") from exc
    names = {e.filename for e in entries}
    ready = []
    for e in entries:
        if stat.S_ISDIR(e.st_mode or 0):
            continue
        if not is_safe_name(e.filename):
            stats["skipped_unsafe"] += 1
            log.error("feed %s: the SFTP server listed %r in %s, which is not a plain file name; it is neither "
                      "read nor moved (check the server)", cfg.name, e.filename, cfg.incoming)
            continue
        if is_temporary(e.filename):
            stats["skipped_temporary"] += 1
            continue
        if is_data_file(e.filename):
            e.sidecar = e.filename + SIDECAR_SUFFIX if e.filename + SIDECAR_SUFFIX in names else None
            ready.append(e)
    ready.sort(key=lambda e: (e.st_mtime or 0, e.filename))
    return iter(ready)


def _process(sftp: Any, conn: psycopg.Connection, cfg: Feed, entry: Any, stats: dict) -> None:
    stats["files_seen"] += 1
    remote = posixpath.join(cfg.incoming, entry.filename)
    mtime = datetime.fromtimestamp(entry.st_mtime, UTC) if entry.st_mtime else None
    with _staging_file(cfg, remote, entry.filename) as tmp:
        sha256, size = _download(sftp, cfg, remote, entry.st_size, tmp)
        problem = None
        checked = False  # the bytes are known to be the vendor's (its sidecar matched)
        if entry.sidecar:
            with sftp.open(posixpath.join(cfg.incoming, entry.sidecar), "r") as fh:
                expected = parse_sidecar(fh.read(4096).decode("utf-8", "replace"))
            if expected is not None and expected != sha256:  # a damaged transfer? fetch once more
                sha256, size = _download(sftp, cfg, remote, entry.st_size, tmp)
            if expected is None:
                problem = f"the sidecar {entry.sidecar} holds no sha256 checksum"
            elif expected != sha256:
                problem = (f"the file's sha256 is {sha256} but its sidecar {entry.sidecar} says {expected}: "
                           "the upload is incomplete or the file was changed after the checksum was made")
            checked = problem is None

        def transfer_was_damaged() -> bool:
            """Without a sidecar, a file that reads badly is fetched once more before anything is decided:
            when the new copy differs, the first transfer was damaged and the new copy is used."""
            nonlocal sha256, size
            if checked:
                return False
            again, again_size = _download(sftp, cfg, remote, entry.st_size, tmp)
            if again == sha256:
                return False
            log.warning("feed %s: %s read badly and a second download differs (sha256 %s, then %s); loading the "
                        "second copy", cfg.name, remote, sha256, again)
            sha256, size = again, again_size
            return True

        for attempt in (1, 2):
            if problem is not None:
                break
            earlier = loaded_before(conn, sha256)
            if earlier is not None:
                with conn.transaction():
                    file_id = record_file(conn, feed=cfg.name, path=remote, size=size, mtime=mtime, sha256=sha256,
                                          status="duplicate", rows=0,
                                          error=f"same content as {earlier[1]} (feed {earlier[0]}), already loaded")
                stats["files_duplicate"] += 1
                _archive(sftp, conn, cfg, entry, sha256, file_id)
                return
            try:
                layout, result = _load(conn, cfg, remote, tmp.name, size, mtime, sha256,
                                       recheck=transfer_was_damaged if attempt == 1 else None)
            except _Refetched:
                continue
            except UnreadableFile as exc:
                if attempt == 1 and transfer_was_damaged():
                    continue
                problem = str(exc)
            else:
                stats["files_loaded"] += 1
                stats["batches"].append(result.batch_id)
                for k in ("received", "loaded", "duplicate", "quarantined"):
                    stats[k] += getattr(result, k)
                _archive(sftp, conn, cfg, entry, sha256, result.file_id)
                return
        if problem is None:
            raise TransferError(f"Feed {cfg.name!r}: two downloads of {remote} differ; nothing of it was loaded, "
                                "retry the task")
    _reject(sftp, conn, cfg, entry, remote, size, mtime, sha256, problem)
    stats["files_rejected"] += 1


class _Refetched(Exception):
    """Rolls back a file's load: its rows looked damaged and a second download differed."""


PREFETCH_REQUESTS = 64


class TransferError(RuntimeError):
    """A download did not complete; nothing of the file was loaded, the task can simply be retried."""


class DownloadFolderFull(TransferError):
    """The local folder downloads are staged in has no room left; nothing of the file was loaded."""


def _folder_full(cfg: Feed, remote: str, folder: str, written: int | None, size: int | None,
                 exc: OSError) -> DownloadFolderFull:
    progress = f" after {written} of {size} bytes" if written is not None else ""
    return DownloadFolderFull(
        f"Feed {cfg.name!r}: the download folder {folder} is full ({exc.strerror}){progress} while downloading "
        f"{remote}. Nothing of it was loaded and it stays in {cfg.incoming} on the server. Free space in {folder}, "
        "or set CRM_DOWNLOAD_DIR to a folder with room for the feed's largest file, then re-run the task.")


@contextmanager
def _staging_file(cfg: Feed, remote: str, name: str) -> Iterator[Any]:
    """A local temporary file in the download folder (CRM_DOWNLOAD_DIR or the system's), removed after."""
    folder = download_dir() or tempfile.gettempdir()
    try:
        # unbuffered: a full disk fails the write itself, not a flush again when the file is closed
        tmp = tempfile.NamedTemporaryFile(prefix="crm_sftp_", suffix=local_suffix(name), dir=folder, buffering=0)
    except OSError as exc:
        if exc.errno in _NO_SPACE:
            raise _folder_full(cfg, remote, folder, None, None, exc) from exc
        raise FileNotFoundError(f"Feed {cfg.name!r}: cannot create a file in the download folder {folder} to "
                                f"download {remote} ({exc}); set CRM_DOWNLOAD_DIR to a writable folder") from exc
    with tmp:
        yield tmp


_NO_SPACE = (errno.ENOSPC, errno.EDQUOT)


def _download(sftp: Any, cfg: Feed, remote: str, expected_size: int | None, tmp: Any,
              attempts: int = 3) -> tuple[str, int]:
    """Stream a remote file into `tmp` while hashing it (constant memory); checks the size."""
    sink = None
    for _ in range(attempts):
        tmp.seek(0)
        tmp.truncate()
        sink = _HashingWriter(tmp)
        try:
            # paramiko's prefetch holds every chunk it has asked for: bound the requests in flight
            # (64 x 32 KiB), or a 1 GB file would sit in memory before it reaches the disk
            sftp.getfo(remote, sink, max_concurrent_prefetch_requests=PREFETCH_REQUESTS)
            tmp.flush()
        except OSError as exc:
            if exc.errno in _NO_SPACE:  # the local disk, not the transfer
                folder = os.path.dirname(tmp.name) if isinstance(tmp.name, str) else tempfile.gettempdir()
                raise _folder_full(cfg, remote, folder, sink.size, expected_size, exc) from exc
            raise TransferError(f"Feed {cfg.name!r}: downloading {remote} failed ({type(exc).__name__}: {exc}); "
                                "nothing of it was loaded, retry the task") from exc
        except (EOFError, paramiko.SSHException) as exc:
            raise TransferError(f"Feed {cfg.name!r}: downloading {remote} failed ({type(exc).__name__}: {exc}); "
                                "nothing of it was loaded, retry the task") from exc
        if expected_size is None or sink.size == expected_size:
            return sink.sha.hexdigest(), sink.size
        log.warning("feed %s: %s arrived with %s of %s bytes; downloading again", cfg.name, remote, sink.size,
                    expected_size)
    raise TransferError(f"Feed {cfg.name!r}: {remote} arrived incomplete {attempts} times ({sink.size} of "
                        f"{expected_size} bytes); nothing of it was loaded, retry the task")


def _load(conn: psycopg.Connection, cfg: Feed, remote: str, local: str, size: int, mtime: datetime | None,
          sha256: str, recheck: Any = None) -> tuple[Layout, Any]:
    """Read and load one file in one transaction (rows, ledger batch, ops.files row); all or nothing.
    When rows had to be quarantined, `recheck()` may say the transfer was damaged: then nothing commits."""
    layout, rows = read_rows(local, required_column=cfg.key)

    lineage = lineage_tail(cfg.name, remote, "")  # the feed and path, escaped once per file

    def records() -> Iterator[Record]:
        for row in rows:
            position = str(row.line)  # digits: nothing to escape
            tail = lineage + position.encode()
            if row.error:
                yield Record(None, cfg.name, remote, position, error=row.error, raw_text=row.raw, tail=tail)
            else:
                yield Record(row.values, cfg.name, remote, position, tail=tail)

    with conn.transaction():
        result = write_batch(conn, cfg.source, cfg.stream, records(), key=cfg.key, source_uri=remote,
                             cursor_after={"file": remote, "sha256": sha256})
        if result.quarantined and recheck is not None and recheck():
            raise _Refetched(remote)
        result.file_id = record_file(conn, feed=cfg.name, path=remote, size=size, mtime=mtime, sha256=sha256,
                                     status="loaded", rows=result.received, batch_id=result.batch_id)
    log.info("feed %s: loaded %s (%s, %s, delimiter %r, %s header rows): %s", cfg.name, remote,
             layout.compression, layout.encoding, layout.delimiter, layout.header_rows, result.as_dict())
    return layout, result


def _free_name(sftp: Any, folder: str, name: str, sha256: str) -> str:
    target = posixpath.join(folder, name)
    try:
        sftp.stat(target)
    except OSError:
        return target
    return posixpath.join(folder, f"{sha256[:12]}_{name}")


def _ensure_dir(sftp: Any, folder: str) -> None:
    parts = [p for p in folder.split("/") if p]
    path = "/" if folder.startswith("/") else ""
    for part in parts:
        path = posixpath.join(path, part)
        try:
            sftp.stat(path)
        except OSError:
            sftp.mkdir(path)


def _move(sftp: Any, remote: str, folder: str, name: str, sha256: str) -> str:
    _ensure_dir(sftp, folder)
    target = _free_name(sftp, folder, name, sha256)
    sftp.rename(remote, target)
    return target


def _archive(sftp: Any, conn: psycopg.Connection, cfg: Feed, entry: Any, sha256: str, file_id: int) -> None:
    remote = posixpath.join(cfg.incoming, entry.filename)
    target = _move(sftp, remote, cfg.archive, entry.filename, sha256)
    if entry.sidecar:
        _move(sftp, posixpath.join(cfg.incoming, entry.sidecar), cfg.archive, entry.sidecar, sha256)
    set_archived(conn, file_id, target)


def _reject(sftp: Any, conn: psycopg.Connection, cfg: Feed, entry: Any, remote: str, size: int,
            mtime: datetime | None, sha256: str, problem: str) -> None:
    target = _move(sftp, remote, cfg.rejected, entry.filename, sha256)
    if entry.sidecar:
        _move(sftp, posixpath.join(cfg.incoming, entry.sidecar), cfg.rejected, entry.sidecar, sha256)
    report = target + REPORT_SUFFIX
    with sftp.open(report, "w") as fh:
        fh.write(rejection_report(entry.filename, size, sha256, mtime, problem, cfg).encode("utf-8"))
    with conn.transaction():
        record_file(conn, feed=cfg.name, path=remote, size=size, mtime=mtime, sha256=sha256, status="rejected",
                    error=problem, archived_to=target)
    log.warning("feed %s: rejected %s: %s (report %s)", cfg.name, remote, problem, report)


def rejection_report(name: str, size: int, sha256: str, mtime: datetime | None, problem: str, cfg: Feed) -> str:
    """A short plain-text report a vendor can read and act on."""
    uploaded = mtime.strftime("%Y-%m-%d %H:%M:%S UTC") if mtime else "unknown"
    return (
        f"File rejected: {name}\n"
        f"Feed: {cfg.name}\n"
        f"Uploaded (modification time): {uploaded}\n"
        f"Size: {size} bytes\n"
        f"SHA-256: {sha256}\n"
        "\n"
        f"Why: {problem}\n"
        "\n"
        "Nothing from this file was loaded.\n"
        "What to do: correct the file and upload it again into the incoming folder "
        f"({cfg.incoming}). We accept CSV (comma, semicolon or tab), optionally gzip, zip (one file) or bz2, "
        f"in UTF-8 (with or without BOM), UTF-16 or Windows-1252, with a header row naming the {cfg.key!r} "
        "column. Upload under a temporary name (.filepart/.tmp) and rename when complete; add a "
        "<file>.sha256 sidecar if you can.\n"
    )
