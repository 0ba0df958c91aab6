"""Alerts of the quality gate: an Airflow notifier for failures (and warnings) that always logs, and also
posts to a webhook and/or sends mail when configured in the environment:

- `CRM_ALERT_WEBHOOK_URL`: POST a JSON body `{"text", "subject", "body", "details"}` (Slack- and
  Teams-style incoming webhooks read `text`);
- `CRM_ALERT_SMTP_HOST` (+ `CRM_ALERT_SMTP_PORT`, default 25; `CRM_ALERT_SMTP_USER` /
  `CRM_ALERT_SMTP_PASSWORD`; `CRM_ALERT_SMTP_STARTTLS=true|false`, default true when a user is set;
  `CRM_ALERT_MAIL_FROM`, `CRM_ALERT_MAIL_TO` as a comma-separated list): send a plain-text mail.

Usage in a DAG: `on_failure_callback=QualityAlertNotifier()` on the gate task, and
`notify_gate_warnings(result.summary(), context)` inside it to alert on warnings without failing.
Secrets (webhook URL, SMTP password) are never logged.
"""

from __future__ import annotations

import logging
import os
import smtplib
from collections.abc import Mapping
from email.message import EmailMessage
from typing import Any

import requests
from airflow.sdk import BaseNotifier

log = logging.getLogger(__name__)

WEBHOOK_TIMEOUT_SECONDS = 10
SMTP_TIMEOUT_SECONDS = 15


def _truthy(value: str | None, default: bool) -> bool:
    if value is None or value == "":
        return default
    return value.strip().lower() in ("1", "true", "yes", "on")


def send_alert(
    subject: str,
    body: str,
    *,
    details: Mapping[str, Any] | None = None,
    env: Mapping[str, str] | None = None,
) -> list[str]:
    """Log the alert, then deliver it to every configured channel. Returns the channels that delivered.

    Delivery problems are logged (without secrets) and do not raise: an alert must never hide the
    failure it reports.
    """
    env = os.environ if env is None else env
    log.warning("%s\n%s", subject, body)
    delivered = ["log"]
    webhook = env.get("CRM_ALERT_WEBHOOK_URL")
    if webhook:
        try:
            response = requests.post(
                webhook,
                json={"text": f"{subject}\n{body}", "subject": subject, "body": body,
                      "details": dict(details or {})},
                timeout=WEBHOOK_TIMEOUT_SECONDS,
            )
            response.raise_for_status()
            delivered.append("webhook")
        except requests.RequestException as exc:
            status = getattr(getattr(exc, "response", None), "status_code", None)
            log.error("alert webhook (CRM_ALERT_WEBHOOK_URL) failed: %s%s; check the URL and the receiver",
                      type(exc).__name__, f" (HTTP {status})" if status else "")
    host = env.get("CRM_ALERT_SMTP_HOST")
    if host:
        recipients = [a.strip() for a in env.get("CRM_ALERT_MAIL_TO", "").split(",") if a.strip()]
        if not recipients:
            log.error("CRM_ALERT_SMTP_HOST is set but CRM_ALERT_MAIL_TO is empty: no mail sent")
        else:
            message = EmailMessage()
            message["Subject"] = subject
            message["From"] = env.get("CRM_ALERT_MAIL_FROM", "crm-warehouse@localhost")
            message["To"] = ", ".join(recipients)
            message.set_content(body)
            user = env.get("CRM_ALERT_SMTP_USER")
            try:
                port = int(env.get("CRM_ALERT_SMTP_PORT", "25"))
                with smtplib.SMTP(host, port, timeout=SMTP_TIMEOUT_SECONDS) as smtp:
                    if _truthy(env.get("CRM_ALERT_SMTP_STARTTLS"), default=bool(user)):
                        smtp.starttls()
                    if user:
                        smtp.login(user, env.get("CRM_ALERT_SMTP_PASSWORD", ""))
                    smtp.send_message(message)
                delivered.append("mail")
            except (OSError, smtplib.SMTPException, ValueError) as exc:
                log.error("alert mail via %s failed: %s; check CRM_ALERT_SMTP_* settings",
                          host, type(exc).__name__)
    return delivered


def _gate_summary(context: Mapping[str, Any]) -> Mapping[str, Any] | None:
    """The gate's summary for this run: the exception's result, or the gate task's XCom."""
    exc = context.get("exception")
    result = getattr(exc, "result", None)
    if result is not None and hasattr(result, "summary"):
        return result.summary()
    ti = context.get("ti") or context.get("task_instance")
    if ti is not None:
        try:
            value = ti.xcom_pull(task_ids=getattr(ti, "task_id", None))
        except Exception:  # no XCom backend reachable (e.g. a callback outside a task): alert anyway
            value = None
        if isinstance(value, Mapping) and "critical_failures" in value:
            return value
    return None


def build_alert(context: Mapping[str, Any], *, subject: str | None = None,
                message: str | None = None) -> tuple[str, str, dict[str, Any]]:
    """(subject, body, details) of an alert from an Airflow callback context."""
    ti = context.get("ti") or context.get("task_instance")
    dag_id = getattr(ti, "dag_id", None) or getattr(context.get("dag"), "dag_id", "?")
    task_id = getattr(ti, "task_id", "?")
    run_id = context.get("run_id") or getattr(ti, "run_id", "?")
    summary = _gate_summary(context)
    exc = context.get("exception")
    if subject is None:
        if exc is not None:
            subject = f"[crm-warehouse] {dag_id}.{task_id} failed (run {run_id})"
        elif summary and summary.get("warnings"):
            subject = f"[crm-warehouse] quality warnings in {dag_id} (run {run_id}): published anyway"
        else:
            subject = f"[crm-warehouse] {dag_id}.{task_id} (run {run_id})"
    lines = [message] if message else []
    if exc is not None:
        lines.append(str(exc))
    elif summary:
        for key, title in (("critical_failures", "Critical"), ("warnings", "Warnings")):
            if summary.get(key):
                lines.append(f"{title}:")
                lines += [f"  - {item}" for item in summary[key]]
        lines.append(f"Data Docs: {summary.get('docs')}")
    details = {"dag_id": dag_id, "task_id": task_id, "run_id": run_id}
    if summary:
        details["gate"] = dict(summary)
    return subject, "\n".join(lines) or subject, details


class QualityAlertNotifier(BaseNotifier):
    """Airflow notifier for the quality gate: `on_failure_callback=QualityAlertNotifier()`.

    Logs always; posts to `CRM_ALERT_WEBHOOK_URL` and/or mails via `CRM_ALERT_SMTP_*` when set.
    `subject` and `message` are Jinja-templated with the task context.
    """

    template_fields = ("subject", "message")

    def __init__(self, *, subject: str | None = None, message: str | None = None):
        super().__init__()
        self.subject = subject
        self.message = message

    def notify(self, context: Any) -> None:
        subject, body, details = build_alert(context, subject=self.subject, message=self.message)
        send_alert(subject, body, details=details)


def notify_gate_warnings(summary: Mapping[str, Any], context: Mapping[str, Any] | None = None) -> list[str]:
    """Alert on the warnings of a passed gate (`GateResult.summary()`); nothing happens without warnings."""
    if not summary.get("warnings"):
        return []
    ctx = dict(context or {})
    ctx.pop("exception", None)
    ti = ctx.get("ti") or ctx.get("task_instance")
    dag_id = getattr(ti, "dag_id", "quality gate")
    run_id = ctx.get("run_id") or summary.get("run_id")
    subject = (f"[crm-warehouse] {len(summary['warnings'])} quality warning(s) in {dag_id} "
               f"(run {run_id}): published anyway")
    lines = ["Warnings:"] + [f"  - {w}" for w in summary["warnings"]] + [f"Data Docs: {summary.get('docs')}"]
    return send_alert(subject, "\n".join(lines), details={"run_id": run_id, "gate": dict(summary)})
