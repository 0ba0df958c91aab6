"""Alert texts of the quality gate, built from Airflow callback contexts (no network)."""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from pathlib import Path
from types import SimpleNamespace

from crm_warehouse.quality.gate import CheckOutcome, GateResult, QualityGateFailed
from crm_warehouse.quality.notify import QualityAlertNotifier, build_alert, notify_gate_warnings, send_alert


def _result() -> GateResult:
    outcomes = [
        CheckOutcome("marts.fct_survey_feedback", "marts_build.fct_survey_feedback", "csat_between_1_and_5",
                     "expect_column_values_to_be_between", "critical", False, 3, 120),
        CheckOutcome("marts.fct_service_quality_daily", "marts_build.fct_service_quality_daily",
                     "complaint_rate_in_recent_range", "unexpected_rows_expectation", "warning", False, 1),
        CheckOutcome("marts.dim_customers", "marts_build.dim_customers", "customer_id_unique",
                     "expect_column_values_to_be_unique", "critical", True, 0, 50),
    ]
    return GateResult("scheduled__2026-10-01", datetime(2026, 10, 1, tzinfo=UTC), "marts_build", outcomes,
                      Path("/srv/docs/data_docs/index.html"), 1.5)


def test_gate_failure_message_names_checks_rows_and_docs():
    message = str(QualityGateFailed(_result()))
    assert "1 critical check failed" in message
    assert ("marts.fct_survey_feedback.csat_between_1_and_5 on marts_build.fct_survey_feedback: "
            "3 unexpected rows of 120") in message
    assert "complaint_rate_in_recent_range" in message  # warnings are listed too
    assert "customer_id_unique" not in message  # passed checks are not
    assert "Data Docs: file:///srv/docs/data_docs/index.html" in message


def test_gate_failure_is_not_retried_by_airflow():
    from airflow.sdk.exceptions import AirflowFailException

    assert isinstance(QualityGateFailed(_result()), AirflowFailException)


def test_failure_alert_from_an_airflow_context():
    ti = SimpleNamespace(dag_id="transform_warehouse", task_id="quality_gate", run_id="r1")
    subject, body, details = build_alert({"ti": ti, "run_id": "r1", "exception": QualityGateFailed(_result())})
    assert subject == "[crm-warehouse] transform_warehouse.quality_gate failed (run r1)"
    assert "3 unexpected rows of 120" in body and "file:///srv/docs/data_docs/index.html" in body
    assert details["gate"]["critical_failures"] == [_result().critical_failures[0].describe()]


def test_warnings_alert_only_when_there_are_warnings(caplog):
    caplog.set_level(logging.WARNING, logger="crm_warehouse.quality.notify")
    summary = _result().summary()
    assert notify_gate_warnings(summary, {"run_id": "r1"}) == ["log"]
    assert "1 quality warning(s)" in caplog.text and "complaint_rate_in_recent_range" in caplog.text
    assert notify_gate_warnings({**summary, "warnings": []}) == []


def test_notifier_logs_without_channels(monkeypatch, caplog):
    for var in ("CRM_ALERT_WEBHOOK_URL", "CRM_ALERT_SMTP_HOST"):
        monkeypatch.delenv(var, raising=False)
    caplog.set_level(logging.WARNING, logger="crm_warehouse.quality.notify")
    notifier = QualityAlertNotifier(message="gate of {{ run_id }}")
    notifier.notify({"run_id": "r9", "ti": SimpleNamespace(dag_id="d", task_id="t", run_id="r9")})
    assert "[crm-warehouse] d.t (run r9)" in caplog.text
    assert send_alert("s", "b", env={}) == ["log"]
