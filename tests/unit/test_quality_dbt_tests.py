"""dbt's test results as quality-gate checks: names, severities, row counts, errors; and how the gate's
message carries them."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

from crm_warehouse.quality.dbt_tests import GATE_SCOPE_MARKER, outcomes_from_results
from crm_warehouse.quality.gate import GateResult, QualityGateFailed

MANIFEST = {
    "nodes": {
        "model.crm_warehouse.stg_survey_vendor__responses": {
            "resource_type": "model", "name": "stg_survey_vendor__responses", "schema": "staging",
            "alias": "stg_survey_vendor__responses"},
        "model.crm_warehouse.fct_complaints": {
            "resource_type": "model", "name": "fct_complaints", "schema": "marts_build", "alias": "fct_complaints"},
        "test.crm_warehouse.accepted_range_csat.1": {
            "resource_type": "test", "name": "accepted_range_stg_survey_csat_score__5__1",
            "attached_node": "model.crm_warehouse.stg_survey_vendor__responses",
            "test_metadata": {"name": "accepted_range"}, "config": {"severity": "ERROR"}},
        "test.crm_warehouse.rectified_warn.2": {
            "resource_type": "test", "name": "expression_is_true_fct_complaints_rectified",
            "attached_node": "model.crm_warehouse.fct_complaints",
            "test_metadata": {"name": "expression_is_true"}, "config": {"severity": "warn"}},
        "test.crm_warehouse.unique_complaint.3": {
            "resource_type": "test", "name": "unique_fct_complaints_complaint_id",
            "attached_node": "model.crm_warehouse.fct_complaints",
            "test_metadata": {"name": "unique"}, "config": {"severity": "error"}},
        "test.crm_warehouse.broken.4": {
            "resource_type": "test", "name": "not_null_fct_complaints_gone",
            "depends_on": {"nodes": ["model.crm_warehouse.fct_complaints"]},
            "test_metadata": {"name": "not_null"}, "config": {"severity": "error"}},
    },
    "sources": {},
}
RESULTS = {"results": [
    {"unique_id": "test.crm_warehouse.accepted_range_csat.1", "status": "fail", "failures": 3,
     "message": "Got 3 results, configured to fail if != 0"},
    {"unique_id": "test.crm_warehouse.rectified_warn.2", "status": "warn", "failures": 2},
    {"unique_id": "test.crm_warehouse.unique_complaint.3", "status": "pass", "failures": 0},
    {"unique_id": "test.crm_warehouse.broken.4", "status": "error", "failures": None,
     "message": 'Database Error in test not_null_fct_complaints_gone\n  column "gone" does not exist'},
]}


def test_each_dbt_test_becomes_a_named_check_with_severity_and_rows():
    by_check = {o.check: o for o in outcomes_from_results(RESULTS, MANIFEST)}
    assert set(by_check) == {"accepted_range_stg_survey_csat_score__5__1",
                             "expression_is_true_fct_complaints_rectified", "unique_fct_complaints_complaint_id",
                             "not_null_fct_complaints_gone"}
    csat = by_check["accepted_range_stg_survey_csat_score__5__1"]
    assert (csat.suite, csat.table, csat.severity, csat.success, csat.unexpected_count) == \
           ("dbt.stg_survey_vendor__responses", "staging.stg_survey_vendor__responses", "critical", False, 3)
    assert csat.expectation_type == "dbt:accepted_range"
    warn = by_check["expression_is_true_fct_complaints_rectified"]
    assert (warn.severity, warn.success, warn.unexpected_count) == ("warning", False, 2)
    unique = by_check["unique_fct_complaints_complaint_id"]
    assert unique.success and unique.unexpected_count == 0 and unique.table == "marts_build.fct_complaints"
    broken = by_check["not_null_fct_complaints_gone"]
    assert not broken.success and broken.severity == "critical" and broken.unexpected_count is None
    assert "could not run (Database Error in test not_null_fct_complaints_gone)" == broken.error
    assert broken.observed == {"error": "could not run"}, "the database's message stays out of the stored results"


def test_a_test_is_labelled_with_the_gates_scope_when_its_sql_read_only_the_changed_rows():
    """gate_scope.sql marks the compiled SQL of the tests it limited; the others checked every row."""
    results = {"results": [
        dict(RESULTS["results"][0], compiled_code="select * from (select * from staging.stg_survey_vendor__responses"
             f" /* {GATE_SCOPE_MARKER} */ where record_key = any(array[]::text[])) dbt_subquery"),
        dict(RESULTS["results"][2], compiled_code="select complaint_id from marts_build.fct_complaints"),
    ]}
    scopes = {o.check: o.scope for o in outcomes_from_results(results, MANIFEST, scope="since 2026-12-05 09:00")}
    assert scopes == {"accepted_range_stg_survey_csat_score__5__1": "since 2026-12-05 09:00",
                      "unique_fct_complaints_complaint_id": "full"}


def test_the_gate_message_names_failed_dbt_tests_with_their_rows():
    outcomes = outcomes_from_results(RESULTS, MANIFEST)
    result = GateResult("manual__2026-09-11", datetime(2026, 9, 11, tzinfo=UTC), "marts_build", outcomes,
                        Path("/tmp/docs/index.html"), 1.0)
    assert not result.passed
    message = str(QualityGateFailed(result))
    assert ("dbt.stg_survey_vendor__responses.accepted_range_stg_survey_csat_score__5__1 on "
            "staging.stg_survey_vendor__responses: 3 unexpected rows") in message
    assert "dbt.fct_complaints.not_null_fct_complaints_gone on marts_build.fct_complaints: could not run" in message
    assert "2 critical checks failed" in message
    assert "Also 1 warning(s):" in message and "expression_is_true_fct_complaints_rectified" in message
    assert "unique_fct_complaints_complaint_id" not in message
    assert "Data Docs: file:///tmp/docs/index.html" in message
