"""Errors of the HTTP layer. Each names the connection and says what to do."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any


class HttpSourceError(RuntimeError):
    """A request to a source failed for good."""

    def __init__(self, message: str, *, conn_id: str | None = None, url: str | None = None,
                 status: int | None = None) -> None:
        super().__init__(message)
        self.conn_id = conn_id
        self.url = url
        self.status = status


class AuthError(HttpSourceError):
    """401/403: credentials or permissions are wrong. Retrying cannot help."""


class MalformedResponse(HttpSourceError):
    """The body was not the JSON the vendor documents, even after retries."""


class InsecureTransport(HttpSourceError):
    """Credentials would travel in plain text (http://) to a host that is not this machine."""


class RetriesExhausted(HttpSourceError):
    """Server errors, timeouts or dropped connections persisted through every retry."""


class RateLimitDeferred(Exception):
    """The vendor asked us to wait longer than is reasonable inside a task.

    Carries when to try again and the saved position of the stream (its cursor is committed), so the
    DAG layer can reschedule or defer the task and the next try resumes where this one stopped.
    """

    def __init__(self, message: str, *, conn_id: str | None, wait_seconds: float, now: float,
                 position: Any = None, source: str | None = None, stream: str | None = None) -> None:
        super().__init__(message)
        self.conn_id = conn_id
        self.wait_seconds = wait_seconds
        self.resume_at = datetime.fromtimestamp(now, UTC) + timedelta(seconds=wait_seconds)
        self.position = position
        self.source = source
        self.stream = stream
