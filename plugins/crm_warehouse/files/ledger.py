"""The SFTP file ledger (`ops.files`), keyed by sha256: same content under a new name is a duplicate,
new content under an old name is a new version."""

from __future__ import annotations

from datetime import datetime

import psycopg


def loaded_before(conn: psycopg.Connection, sha256: str) -> tuple[str, str, datetime] | None:
    """(feed, path, recorded_at) of an earlier load of the same content, or None."""
    return conn.execute(
        "select feed, path, recorded_at from ops.files where sha256 = %s and status = 'loaded'", (sha256,)
    ).fetchone()


def record_file(
    conn: psycopg.Connection,
    *,
    feed: str,
    path: str,
    size: int | None,
    mtime: datetime | None,
    sha256: str,
    status: str,
    rows: int | None = None,
    error: str | None = None,
    archived_to: str | None = None,
    batch_id: int | None = None,
) -> int:
    return conn.execute(
        "insert into ops.files (feed, path, size, mtime, sha256, status, rows, error, archived_to, batch_id)"
        " values (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s) returning file_id",
        (feed, path, size, mtime, sha256, status, rows, error, archived_to, batch_id),
    ).fetchone()[0]


def set_archived(conn: psycopg.Connection, file_id: int, archived_to: str) -> None:
    conn.execute("update ops.files set archived_to = %s where file_id = %s", (archived_to, file_id))
