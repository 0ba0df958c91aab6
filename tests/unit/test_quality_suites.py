"""The suite files in expectations/ load, cover every raw table and mart, and map onto GX expectations."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest
from crm_warehouse.quality.suites import (
    SuiteFileError,
    load_suite,
    load_suites,
    placeholders,
    render,
)

RAW_TABLES = {
    "phone_system__calls", "phone_system__dispositions", "survey_vendor__responses", "web_forms__responses",
    "social_x__mentions", "social_x__users", "social_facebook__posts", "social_facebook__comments",
    "social_linkedin__posts", "social_linkedin__comments", "sftp_call_center__calls",
    "sftp_call_center__dispositions", "sftp_survey_vendor__responses",
}
MARTS = {"dim_customers", "fct_interactions", "fct_complaints", "fct_survey_feedback", "fct_service_quality_daily"}
RUN_END = datetime(2026, 10, 1, tzinfo=UTC)


def test_every_raw_table_and_mart_has_a_suite():
    suites = load_suites()
    assert {s.table for s in suites if s.layer == "raw"} == RAW_TABLES
    assert {s.table for s in suites if s.layer == "marts"} == MARTS
    assert all(s.required for s in suites if s.layer == "marts")
    assert not any(s.required for s in suites if s.layer == "raw")


def test_suites_hold_both_severities_and_the_required_kinds_of_check():
    suites = {s.name: s for s in load_suites()}
    for suite in suites.values():
        assert {c.severity for c in suite.checks} <= {"critical", "warning"}
    raw = suites["raw.phone_system__calls"]
    assert {"rows_reconcile_with_ledger", "record_version_unique", "landing_columns_present"} <= {
        c.check for c in raw.checks if c.severity == "critical"}
    complaints = {c.check: c for c in suites["marts.fct_complaints"].checks}
    assert complaints["has_customer"].severity == complaints["has_interaction"].severity == "critical"
    assert complaints["complaints_not_more_than_interactions"].severity == "critical"
    feedback = {c.check: c for c in suites["marts.fct_survey_feedback"].checks}
    assert feedback["csat_between_1_and_5"].kwargs == {"column": "csat_score", "min_value": 1, "max_value": 5}
    assert feedback["nps_between_0_and_10"].kwargs["max_value"] == 10
    daily = {c.check: c for c in suites["marts.fct_service_quality_daily"].checks}
    assert daily["complaint_rate_in_recent_range"].severity == "warning"


def test_placeholders_render_quoted_sql():
    suite = next(s for s in load_suites() if s.name == "raw.social_x__mentions")
    values = placeholders(suite, build_schema="marts_build", run_end=RUN_END)
    text = render({"q": ["from @ops.batches where source = @source and stream = @stream and x < @run_end "
                         "and y @> z"]}, values)["q"][0]
    assert text == ("from \"ops\".batches where source = 'social_x' and stream = 'mentions' and "
                    "x < timestamptz '2026-10-01T00:00:00+00:00' and y @> z")
    with pytest.raises(ValueError, match="timezone-aware"):
        placeholders(suite, build_schema="marts_build", run_end=datetime(2026, 10, 1))


def test_every_check_is_a_valid_gx_expectation():
    from crm_warehouse.quality.gate import _gx_expectations

    for suite in load_suites():
        built = _gx_expectations(suite, build_schema="marts_build", run_end=RUN_END)
        assert [e.meta["check"] for e in built] == [c.check for c in suite.checks]
        assert [e.severity.value for e in built] == [c.severity for c in suite.checks]
        for e in built:
            assert "@" not in str(getattr(e, "unexpected_rows_query", "")).replace("@>", ""), suite.name


@pytest.mark.parametrize(
    ("text", "error"),
    [
        ("suite: s\nlayer: marts\ntable: t\nchecks: [{check: a, type: x, severity: fatal}]", "severity must be"),
        ("suite: s\nlayer: nowhere\ntable: t\nchecks: []", "layer must be one of"),
        ("suite: s\nlayer: marts\ntable: t\nchecks:\n  - {check: a, type: x, severity: warning}\n"
         "  - {check: a, type: x, severity: warning}", "appears twice"),
        ("suite: s\nlayer: marts\ntable: t\nchecks: [{check: a, type: x, severity: warning, kwarg: 1}]",
         "unknown keys"),
        ("suite: [unclosed", "not valid YAML"),
        ("suite: s\nlayer: marts\ntable: t\nchecks: [{check: a, type: x, severity: warning, scope: some}]",
         "scope must be one of"),
    ],
)
def test_malformed_suite_files_name_the_file_and_the_fix(tmp_path: Path, text: str, error: str):
    path = tmp_path / "bad.yml"
    path.write_text(text)
    with pytest.raises(SuiteFileError, match=error) as raised:
        load_suite(path)
    assert str(path) in str(raised.value)


def test_an_invalid_expectation_type_is_reported_with_its_file(tmp_path: Path):
    from crm_warehouse.quality.gate import _gx_expectations

    path = tmp_path / "s.yml"
    path.write_text("suite: s\nlayer: marts\ntable: t\n"
                    "checks: [{check: a, type: expect_the_moon, severity: warning, kwargs: {column: c}}]")
    with pytest.raises(SuiteFileError, match="expect_the_moon") as raised:
        _gx_expectations(load_suite(path), build_schema="marts_build", run_end=RUN_END)
    assert str(path) in str(raised.value)


def test_sql_checks_use_only_the_batch_placeholder():
    """GX formats unexpected_rows_query with str.format: a regex quantifier like `\\d{4}` must be `{{4}}`,
    and a query that joins must alias `{batch}` itself."""
    from string import Formatter

    for suite in load_suites():
        for check in suite.checks:
            query = check.kwargs.get("unexpected_rows_query")
            if query is None:
                continue
            fields = {f[1] for f in Formatter().parse(query) if f[1] is not None}
            assert fields == {"batch"}, f"{suite.path}: {check.check} has placeholders {fields}"
            if " join " in query.lower():
                assert "{batch} as " in query, f"{suite.path}: {check.check} joins without aliasing {{batch}}"


def test_an_incremental_gate_reads_the_changed_rows_and_probes_keys():
    """Checks of values read the changed rows, uniqueness becomes a key probe of the changed keys against the
    whole table, SQL checks limit themselves with @changed / @batch_in_scope; a full gate reads every row."""
    from crm_warehouse.quality.gate import _gx_expectations

    suites = {s.name: s for s in load_suites()}
    raw = suites["raw.phone_system__calls"]
    scopes = {c.check: c.scope for c in raw.checks}
    assert scopes["record_key_not_null"] == scopes["sid_is_call_sid"] == "changed"
    assert scopes["record_version_unique"] == "keys" and scopes["landing_columns_present"] == "whole"
    changed = 'quality."changed__raw__phone_system__calls"'
    built = {e.meta["check"]: e for e in _gx_expectations(
        raw, build_schema="marts_build", run_end=RUN_END, changed=changed,
        batch_in_scope="batch_id = any(array[7, 9])", gate_scope="since 2026-10-01T00:00:00+00:00")}
    probe = built["record_version_unique"]
    assert type(probe).__name__ == "UnexpectedRowsExpectation"
    assert f"in (select \"record_key\", \"batch_id\", \"content_hash\" from {changed}" in probe.unexpected_rows_query
    assert "batch_id = any(array[7, 9])" in built["rows_reconcile_with_ledger"].unexpected_rows_query
    staging_fields = built["fields_staging_needs_present"].unexpected_rows_query
    assert f"record_key in (select record_key from {changed}" in staging_fields
    assert built["record_key_not_null"].meta["scope"] == "since 2026-10-01T00:00:00+00:00"
    assert built["landing_columns_present"].meta["scope"] == "full"
    assert built["rows_reconcile_with_ledger"].meta["scope"] == "since 2026-10-01T00:00:00+00:00"
    full = {e.meta["check"]: e for e in _gx_expectations(raw, build_schema="marts_build", run_end=RUN_END)}
    assert type(full["record_version_unique"]).__name__ == "ExpectCompoundColumnsToBeUnique"
    assert "where true" in full["fields_staging_needs_present"].unexpected_rows_query
    assert {e.meta["scope"] for e in full.values()} == {"full"}
