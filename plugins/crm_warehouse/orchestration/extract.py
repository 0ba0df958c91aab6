"""Build an extract DAG's tasks: bootstrap the warehouse, then one task per stream, each publishing the
Asset of its raw table. Called from the DAG files, which only declare."""

from __future__ import annotations

import logging
from typing import Any

from airflow.sdk import TaskGroup, chain, task

from crm_warehouse.orchestration.dag_support import raw_asset, window_from_context

log = logging.getLogger(__name__)


@task(task_id="bootstrap_warehouse")
def bootstrap_warehouse() -> str:
    """Create schemas and roles if missing (idempotent)."""
    from crm_warehouse.bootstrap import bootstrap
    from crm_warehouse.warehouse import connect

    with connect() as conn:
        bootstrap(conn)
    return "ok"


def stream_tasks(source: str, streams: list[str], *, conn_id: str) -> list:
    """One task per stream of `source`, in order (later streams may read what earlier ones saved)."""
    tasks = []
    with TaskGroup(group_id=source):
        for stream in streams:
            @task(task_id=stream, outlets=[raw_asset(f"{source}__{stream}")])
            def extract_stream(source: str = source, stream: str = stream, conn_id: str = conn_id, **context):
                return run_stream_task(source, stream, conn_id=conn_id, context=context)

            tasks.append(extract_stream())
    chain(*tasks)
    return tasks


def run_stream_task(source: str, stream: str, *, conn_id: str, context: dict[str, Any]) -> dict:
    """Extract one stream over the run's window. When the vendor's quota is exhausted for longer than the
    HTTP policy waits in-process, what was received is committed with the position inside the stream,
    and the task gives its worker back: it is rescheduled (state `up_for_reschedule`, not a failed try)
    for when the quota resets, and the next try resumes from the saved position."""
    from airflow.sdk.exceptions import AirflowFailException, AirflowRescheduleException

    from crm_warehouse.http import RateLimitDeferred
    from crm_warehouse.http.errors import AuthError, InsecureTransport
    from crm_warehouse.sources import run_stream

    start, end = window_from_context(context)
    try:
        stats = run_stream(source, stream, start, end, conn_id=conn_id)
    except (AuthError, InsecureTransport) as exc:
        # wrong credentials or a refused plain-text URL: another try would send the same; fail at once (no
        # retry), with the message that names the connection and what to check
        raise AirflowFailException(str(exc)) from exc
    except RateLimitDeferred as exc:
        log.warning("%s.%s: %s; rescheduled for %s, resuming from %s", source, stream, exc,
                    exc.resume_at.isoformat(), exc.position)
        raise AirflowRescheduleException(reschedule_date=exc.resume_at) from exc
    log.info("%s.%s [%s, %s): %s", source, stream, start.isoformat(), end.isoformat(), stats)
    return stats
