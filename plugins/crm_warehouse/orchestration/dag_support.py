"""Helpers for the thin DAG files in dags/. Nothing here touches a database or the network at import."""

from __future__ import annotations

import os
from datetime import datetime, timedelta
from typing import Any

import pendulum
from airflow.sdk import Asset

from crm_warehouse.quality.notify import QualityAlertNotifier

START_DATE = pendulum.datetime(2026, 1, 1, tz="UTC")

DEFAULT_ARGS: dict[str, Any] = {
    "owner": "crm-warehouse",
    "retries": 2,
    "retry_delay": timedelta(minutes=2),
    "retry_exponential_backoff": True,
    "max_retry_delay": timedelta(minutes=30),
    "execution_timeout": timedelta(hours=2),
    # a task that fails for good (after its retries) is reported: logged always, and posted to
    # CRM_ALERT_WEBHOOK_URL / mailed via CRM_ALERT_SMTP_* when configured (see quality/notify.py)
    "on_failure_callback": QualityAlertNotifier(),
}


def scheduled(timetable):
    """The DAG's schedule, or None (runs only when triggered) when `CRM_SCHEDULES=off`: for environments
    where an operator or a test drives every run, e.g. a staging copy or the scale-out test."""
    return None if os.environ.get("CRM_SCHEDULES", "on").lower() in ("off", "false", "0") else timetable


def raw_asset(table: str) -> Asset:
    """The Asset of one raw landing table, e.g. `raw_asset("phone_system__calls")`."""
    return Asset(name=f"raw.{table}", uri=f"postgres://warehouse:5432/crm/raw/{table}", group="raw")


MARTS_ASSET = Asset(name="marts", uri="postgres://warehouse:5432/crm/marts/published", group="marts")


def _parse(value: Any, what: str) -> datetime:
    if isinstance(value, datetime):
        parsed = pendulum.instance(value)
    else:
        try:
            parsed = pendulum.parse(str(value))
        except Exception as exc:  # pendulum raises several types
            raise ValueError(f"dag_run.conf {what}={value!r} is not an ISO 8601 timestamp "
                             "(e.g. 2026-09-01T00:00:00Z)") from exc
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=pendulum.UTC)
    return parsed.in_timezone("UTC")


def window_from_context(context: dict) -> tuple[datetime, datetime]:
    """The half-open window [start, end) a run covers: `window_start`/`window_end` from the run's
    conf (backfills and re-runs of any range), else the run's data interval."""
    conf = (context.get("dag_run").conf if context.get("dag_run") else None) or {}
    start = conf.get("window_start") or context.get("data_interval_start")
    end = conf.get("window_end") or context.get("data_interval_end")
    if start is None or end is None:
        raise ValueError("This run has no data interval: trigger it with conf "
                         '{"window_start": "...", "window_end": "..."}')
    start, end = _parse(start, "window_start"), _parse(end, "window_end")
    if not start < end:
        raise ValueError(f"Empty window [{start.isoformat()}, {end.isoformat()}): window_end must be after "
                         "window_start. A cron-scheduled run needs a data-interval timetable.")
    return start, end


def run_end_from_context(context: dict) -> datetime:
    """The instant a transform run validates against ("no event after the run's end"): the end of
    its window if it has one, else the moment the run was due (`run_after`)."""
    try:
        return window_from_context(context)[1]
    except ValueError:
        return _parse(context["dag_run"].run_after, "run_after")
