"""The audit step: run every suite of `expectations/` with Great Expectations (GX Core 1.x, an ephemeral
context) against the raw landings, the ledger and the marts dbt built in the build schema; build the Data
Docs into `docs_dir`; keep one row per check in `quality.validation_results`; return a GateResult.

Every check runs on a scope (`quality/scope.py`): `full` (every row), or `since <time>` (the rows that changed
since the last gate that passed: an incremental gate). Results, Data Docs and messages say which.

Critical failures block publishing (`GateResult.raise_for_failures` raises QualityGateFailed); warnings
publish and alert.
"""

from __future__ import annotations

import json
import logging
import os
import re
import time
from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import psycopg
from psycopg import sql

from crm_warehouse.quality.scope import (
    GateScope,
    decide_scope,
    ensure_quality_tables,
    record_gate_run,
    written_since,
)
from crm_warehouse.quality.suites import (
    CheckSpec,
    SuiteFileError,
    SuiteSpec,
    load_suites,
    placeholders,
    quote_ident,
    referenced_columns,
    render,
)
from crm_warehouse.warehouse import redact

log = logging.getLogger(__name__)

DOCS_SITE = "crm_quality"
# dbt's own scratch relations (incremental temp tables, backups): never checked nor published
SCRATCH_SUFFIXES = ("__dbt_tmp", "__dbt_backup", "__dbt_new_data")
RESULTS_DDL = """
create table if not exists quality.validation_results (
    run_id            text not null,
    suite             text not null,
    table_name        text not null,
    expectation       text not null,
    expectation_type  text not null,
    severity          text not null check (severity in ('critical', 'warning')),
    success           boolean not null,
    unexpected_count  bigint,
    element_count     bigint,
    observed          jsonb not null default '{}'::jsonb,
    run_end           timestamptz not null,
    checked_at        timestamptz not null,
    scope             text,
    primary key (run_id, suite, expectation)
)
"""
# the rows a check read: every row, or the rows changed since the last passed gate (`since <time>`)
RESULTS_SCOPE_DDL = "alter table quality.validation_results add column if not exists scope text"
# an incremental gate copies each table's changed rows here for GX (dropped when the gate ends)
CHANGED_PREFIX = "changed__"


@dataclass(frozen=True)
class CheckOutcome:
    """The result of one check: no sample values, only counts and a small observed summary."""

    suite: str
    table: str  # schema-qualified, as validated in this run
    check: str
    expectation_type: str
    severity: str
    success: bool
    unexpected_count: int | None = None
    element_count: int | None = None
    observed: dict[str, Any] = field(default_factory=dict)
    error: str | None = None  # set when the check could not run (missing table or column, SQL error)
    scope: str = "full"  # the rows it read: `full`, or `since <time>` (changed since the last passed gate)

    def describe(self) -> str:
        """One line for messages and alerts: which check, on which table and scope, how many rows."""
        head = f"{self.suite}.{self.check} on {self.table}"
        if self.observed.get("waived"):
            head += " (critical, waived)"
        read = " (all rows)" if self.scope == "full" else f" (rows changed {self.scope})"
        if self.error:
            return f"{head}: {self.error}{read}"
        if self.unexpected_count is not None:
            rows = "row" if self.unexpected_count == 1 else "rows"
            of = f" of {self.element_count}" if self.element_count is not None else ""
            return f"{head}: {self.unexpected_count} unexpected {rows}{of}{read}"
        if "observed_value" in self.observed:
            return f"{head}: observed {self.observed['observed_value']!r}{read}"
        return f"{head}: failed{read}"


@dataclass
class GateResult:
    run_id: str
    run_end: datetime
    build_schema: str
    outcomes: list[CheckOutcome]
    docs_path: Path
    duration_seconds: float
    scope: str = "full"  # the gate's scope: `full`, or `since <time>`
    scope_reason: str = ""

    @property
    def critical_failures(self) -> list[CheckOutcome]:
        return [o for o in self.outcomes if not o.success and o.severity == "critical"]

    @property
    def warnings(self) -> list[CheckOutcome]:
        return [o for o in self.outcomes if not o.success and o.severity == "warning"]

    @property
    def passed(self) -> bool:
        """True when no critical check failed (warnings do not block)."""
        return not self.critical_failures

    @property
    def docs_url(self) -> str:
        return self.docs_path.resolve().as_uri()

    def report(self) -> str:
        """The gate's verdict as text: every failed check with its rows, and where the Data Docs are."""
        verdict = "passed" if self.passed else "FAILED"
        lines = [
            f"Quality gate {verdict} for run {self.run_id}: {len(self.outcomes)} checks, "
            f"{len(self.critical_failures)} critical failures, {len(self.warnings)} warnings "
            f"({self.duration_seconds:.1f}s). Scope: {self.scope_text()}."
        ]
        if self.critical_failures:
            lines.append("Critical (block publishing):")
            lines += [f"  - {o.describe()}" for o in self.critical_failures]
        if self.warnings:
            lines.append("Warnings (published, alerted):")
            lines += [f"  - {o.describe()}" for o in self.warnings]
        lines.append(f"Data Docs: {self.docs_url}")
        return "\n".join(lines)

    def raise_if_failed(self) -> None:
        """Raise QualityGateFailed when a critical check failed (warnings never raise)."""
        if not self.passed:
            raise QualityGateFailed(self)

    raise_for_failures = raise_if_failed

    def scope_text(self) -> str:
        if self.scope == "full":
            return f"full check ({self.scope_reason})" if self.scope_reason else "full check"
        return (f"rows changed {self.scope} ({self.scope_reason}; table-level checks on whole tables; "
                "old rows are checked by the next full check)")

    def summary(self) -> dict[str, Any]:
        """A small JSON-able summary (for XCom and alerts): verdict, failed checks, Data Docs."""
        return {
            "run_id": self.run_id,
            "passed": self.passed,
            "checks": len(self.outcomes),
            "critical_failures": [o.describe() for o in self.critical_failures],
            "warnings": [o.describe() for o in self.warnings],
            "docs": self.docs_url,
            "duration_seconds": round(self.duration_seconds, 2),
            "scope": self.scope,
            "scope_reason": self.scope_reason,
        }


try:  # Airflow fails the task without retrying it: the same data would fail the same checks again
    from airflow.sdk.exceptions import AirflowFailException as _GateFailureBase
except ImportError:  # pragma: no cover - the package also works without Airflow (CLI, tests)
    _GateFailureBase = RuntimeError  # type: ignore[misc,assignment]


class QualityGateFailed(_GateFailureBase):
    """Critical checks failed: nothing was published. The message lists the checks, rows and Data Docs.

    An AirflowFailException, so the gate task fails at once instead of retrying on unchanged data.
    """

    def __init__(self, result: GateResult):
        self.result = result
        failures = result.critical_failures
        lines = [
            f"Quality gate failed for run {result.run_id}: {len(failures)} critical "
            f"check{'s' if len(failures) != 1 else ''} failed, so nothing was published to the marts "
            f"(BI keeps reading the previous marts). Scope: {result.scope_text()}."
        ]
        lines += [f"  - {o.describe()}" for o in failures]
        if result.warnings:
            lines.append(f"Also {len(result.warnings)} warning(s):")
            lines += [f"  - {o.describe()}" for o in result.warnings]
        lines.append(f"Data Docs: {result.docs_url}")
        lines.append(
            "Fix the data or the dbt models that produced it, rebuild, and re-run the gate; "
            "suites are in expectations/."
        )
        super().__init__("\n".join(lines))


def _sqlalchemy_url(url: str) -> str:
    """GX talks to PostgreSQL through SQLAlchemy; use the psycopg 3 driver the project already has, and
    pin the session time zone to UTC so `::date` in the suites means the UTC day."""
    url = re.sub(r"^postgres(ql)?(\+\w+)?://", "postgresql+psycopg://", url)
    return url + ("&" if "?" in url else "?") + "options=-c%20TimeZone%3DUTC"


def _existing_tables(conn: psycopg.Connection, suites: Iterable[SuiteSpec], build_schema: str) -> set[tuple]:
    pairs = [(s.schema(build_schema), s.table) for s in suites]
    rows = conn.execute(
        "select table_schema, table_name from information_schema.tables "
        "where (table_schema, table_name) in (select * from unnest(%s::text[], %s::text[]))",
        ([p[0] for p in pairs], [p[1] for p in pairs]),
    ).fetchall()
    return {(r[0], r[1]) for r in rows}


def _find_exception(info: Any) -> str | None:
    """GX nests exception info per metric; return the first message found."""
    if isinstance(info, dict):
        if info.get("raised_exception") and info.get("exception_message"):
            return str(info["exception_message"])
        for value in info.values():
            found = _find_exception(value)
            if found:
                return found
    return None


def _observed_summary(result: dict[str, Any]) -> dict[str, Any]:
    """Counts and aggregate observations only: never partial_unexpected_list or unexpected rows."""
    out: dict[str, Any] = {}
    for key in ("element_count", "unexpected_count", "unexpected_percent", "missing_count"):
        if isinstance(result.get(key), int | float):
            out[key] = result[key]
    observed = result.get("observed_value")
    if isinstance(observed, bool | int | float):
        out["observed_value"] = observed
    elif isinstance(observed, list) and all(isinstance(v, str) for v in observed) and len(observed) <= 200:
        out["observed_value"] = observed  # e.g. the column names of a table
    mismatched = (result.get("details") or {}).get("mismatched")
    if isinstance(mismatched, dict):
        out["mismatched_columns"] = {k: list(v) for k, v in mismatched.items() if isinstance(v, list)}
    return out


def _outcome(spec: SuiteSpec, check: CheckSpec, table: str, success: bool, result: dict, exc: str | None,
             missing_columns: set[str], scope: str = "full") -> CheckOutcome:
    summary = _observed_summary(result)
    unexpected = summary.get("unexpected_count")
    if unexpected is None and check.type == "unexpected_rows_expectation":
        unexpected = summary.get("observed_value")
    error = None
    if not success and exc:
        error = f"could not run ({exc.splitlines()[0][:300]})"
    elif not success and unexpected is None and "observed_value" not in summary and "mismatched_columns" not in summary:
        gone = [c for c in referenced_columns(check) if c in missing_columns]
        error = f"could not run: column {', '.join(gone)} is missing" if gone else "could not run (see Data Docs)"
    if error and "mismatched_columns" not in summary:
        summary["error"] = error.split(" (")[0]  # keep the kind, not a database message that may carry values
    return CheckOutcome(
        suite=spec.name,
        table=table,
        check=check.check,
        expectation_type=check.type,
        severity=check.severity,
        success=bool(success),
        unexpected_count=int(unexpected) if isinstance(unexpected, int | float) else None,
        element_count=summary.get("element_count"),
        observed=summary,
        error=error,
        scope=scope,
    )


def _build_context(docs_dir: Path):
    """An ephemeral GX context (stores in memory) whose only Data Docs site is `docs_dir` on disk."""
    import great_expectations as gx
    from great_expectations.data_context.types.base import (
        DataContextConfig,
        InMemoryStoreBackendDefaults,
        ProgressBarsConfig,
    )

    config = DataContextConfig(
        store_backend_defaults=InMemoryStoreBackendDefaults(init_temp_docs_sites=False),
        data_docs_sites={
            DOCS_SITE: {
                "class_name": "SiteBuilder",
                "store_backend": {"class_name": "TupleFilesystemStoreBackend", "base_directory": str(docs_dir)},
                "site_index_builder": {"class_name": "DefaultSiteIndexBuilder"},
            }
        },
        progress_bars=ProgressBarsConfig(globally=False),
        analytics_enabled=False,
    )
    return gx.get_context(mode="ephemeral", project_config=config)


def _key_probe_query(check: CheckSpec, changed: str) -> str:
    """Uniqueness of the changed keys against the whole table: the keys of `changed` that appear more than
    once in the table (`{batch}`), without a group-by over the whole table."""
    columns = [check.kwargs["column"]] if "column" in check.kwargs else list(check.kwargs["column_list"])
    cols = ", ".join(quote_ident(c) for c in columns)
    key = cols if len(columns) == 1 else f"({cols})"
    return (f"select {cols}, count(*) as n_rows from {{batch}}\n"
            f"where {key} in (select {cols} from {changed} as changed_rows)\n"
            f"group by {cols} having count(*) > 1")


def _reads_changes(check: CheckSpec) -> bool:
    """A whole-table SQL check that limits itself to the changes (@changed, @changed_record_key,
    @batch_in_scope)."""
    text = json.dumps(check.kwargs)
    return "@changed" in text or "@batch_in_scope" in text


def check_scope(check: CheckSpec, gate_scope: str, *, key_probe: bool) -> str:
    """The rows `check` reads in a gate of scope `gate_scope`: `full`, or the gate's `since <time>`."""
    if gate_scope == "full":
        return "full"
    if check.scope == "changed" or (check.scope == "keys" and key_probe) or _reads_changes(check):
        return gate_scope
    return "full"


def _gx_expectations(spec: SuiteSpec, *, build_schema: str, run_end: datetime, target_schema: str = "marts",
                     checks: Iterable[CheckSpec] | None = None, changed: str | None = None,
                     batch_in_scope: str = "true", gate_scope: str = "full") -> list:
    """GX expectations of `checks` (default: every check of `spec`). In an incremental gate (`changed`: the
    relation of the table's changed rows) uniqueness checks become key probes; each check's meta and notes
    say the rows it read."""
    from great_expectations.expectations.expectation_configuration import ExpectationConfiguration

    values = placeholders(spec, build_schema=build_schema, run_end=run_end, target_schema=target_schema,
                          changed=changed, batch_in_scope=batch_in_scope)
    key_probe = changed is not None
    out = []
    for check in spec.checks if checks is None else checks:
        etype, kwargs = check.type, render(check.kwargs, values)
        if key_probe and check.scope == "keys" and "mostly" not in kwargs:
            etype, kwargs = "unexpected_rows_expectation", {"unexpected_rows_query": _key_probe_query(check, changed)}
        scope = check_scope(check, gate_scope, key_probe=key_probe)
        try:
            config = ExpectationConfiguration(
                type=etype,
                kwargs=kwargs,
                meta={**check.meta, "check": check.check, "severity": check.severity,
                      "suite_file": spec.path.name, "scope": scope},
                description=check.description,
                notes=f"Rows checked: {'all' if scope == 'full' else 'changed ' + scope}.",
                severity=check.severity,
            )
            out.append(config.to_domain_obj())
        except Exception as exc:
            raise SuiteFileError(
                f"{spec.path}: check {check.check!r} ({check.type}) is not a valid GX expectation: {exc}"
            ) from exc
    return out


def ensure_results_table(conn: psycopg.Connection) -> None:
    ensure_quality_tables(conn, RESULTS_DDL, RESULTS_SCOPE_DDL)


def store_results(conn: psycopg.Connection, result: GateResult) -> None:
    """Replace this run's rows in quality.validation_results (a re-run of the same run_id overwrites)."""
    ensure_results_table(conn)
    with conn.transaction():
        conn.execute("delete from quality.validation_results where run_id = %s", (result.run_id,))
        with conn.cursor() as cur:
            cur.executemany(
                "insert into quality.validation_results (run_id, suite, table_name, expectation, "
                "expectation_type, severity, success, unexpected_count, element_count, observed, run_end, "
                "checked_at, scope) values (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, clock_timestamp(), %s)",
                [
                    (result.run_id, o.suite, o.table, o.check, o.expectation_type, o.severity, o.success,
                     o.unexpected_count, o.element_count, json.dumps(o.observed), result.run_end, o.scope)
                    for o in result.outcomes
                ],
            )


def _changed_filter(spec: SuiteSpec, scope: GateScope) -> sql.Composable:
    """The condition selecting the changed rows of the table of `spec` (values as literals, no text pasted)."""
    if spec.layer in ("raw", "ops"):
        if not scope.batches:
            return sql.SQL("false")
        # the range lets PostgreSQL use the raw tables' BRIN index on batch_id
        return sql.SQL("batch_id between {} and {} and batch_id = any({}::bigint[])").format(
            sql.Literal(min(scope.batches)), sql.Literal(max(scope.batches)), sql.Literal(list(scope.batches)))
    return written_since(scope.xid_since, scope.xid_span)


def _changed_relations(conn: psycopg.Connection, suites: list[SuiteSpec], build_schema: str,
                       scope: GateScope) -> dict[str, str]:
    """For an incremental gate: copy each table's changed rows into an unlogged table of schema `quality`
    (GX then reads them once per check without scanning the table again); returns suite name -> relation.
    A table every row of which changed (dbt rebuilt it) is its own relation: nothing is copied."""
    out: dict[str, str] = {}
    with conn.transaction():
        for spec in suites:
            schema = spec.schema(build_schema)
            table = sql.Identifier(schema, spec.table)
            where = _changed_filter(spec, scope)
            if spec.layer == "marts" and not conn.execute(
                    sql.SQL("select exists (select from {} where not ({}))").format(table, where)).fetchone()[0]:
                out[spec.name] = f"{quote_ident(schema)}.{quote_ident(spec.table)}"  # rebuilt whole by dbt
                continue
            name = (CHANGED_PREFIX + schema + "__" + spec.table)[:63]
            copy = sql.Identifier("quality", name)
            conn.execute(sql.SQL("drop table if exists {}").format(copy))
            conn.execute(sql.SQL("create unlogged table {} as select * from {} where {}").format(copy, table, where))
            conn.execute(sql.SQL("analyze {}").format(copy))
            out[spec.name] = f"quality.{quote_ident(name)}"
    return out


def _drop_changed_relations(url: str, relations: Iterable[str]) -> None:
    names = [r.split(".", 1)[1].strip('"') for r in relations if r.startswith("quality.")]
    if names:
        with psycopg.connect(url, application_name="crm_quality_gate") as conn:
            conn.execute(sql.SQL("drop table if exists {}").format(
                sql.SQL(", ").join(sql.Identifier("quality", n) for n in names)))


def run_gate(
    url: str,
    *,
    build_schema: str = "marts_build",
    run_id: str,
    run_end: datetime,
    docs_dir: str | Path,
    suites_dir: str | Path | None = None,
    store: bool = True,
    target_schema: str = "marts",
    waive: Iterable[str] = (),
    extra_outcomes: Iterable[CheckOutcome] = (),
    incremental: bool = False,
    scope: GateScope | None = None,
) -> GateResult:
    """Validate raw landings, the ledger and the marts in `build_schema` against every suite.

    `run_end` (timezone-aware; the DAG run's data_interval_end) bounds event times: nothing may happen
    after it. Data Docs are written to `docs_dir` (open `GateResult.docs_path`). Nothing is published here;
    `target_schema` is only read, to compare the build with what BI sees now.

    Scope: a full check by default. `incremental=True` checks row by row only what changed since the last gate
    that passed (a full check when none has passed yet); `scope` (`crm_warehouse.quality.scope.decide_scope`)
    gives the scope decided by the caller, e.g. for dbt's tests of the same run. With `store`, the verdict and
    the ledger position are kept in `quality.gate_runs` for the next incremental gate.

    `extra_outcomes`: checks run elsewhere on the same build, judged, stored and reported with these (the
    transform DAG passes dbt's data tests, `crm_warehouse.quality.dbt_tests.run_dbt_tests`).

    `waive` (and env `CRM_QUALITY_WAIVE`, comma-separated) names critical checks (`suite.check`) an operator
    accepts for this run, e.g. after a deliberate deletion; they are reported as warnings marked waived.
    """
    import great_expectations as gx
    from sqlalchemy.pool import NullPool

    started = time.monotonic()
    gx_log = logging.getLogger("great_expectations")
    if gx_log.level == logging.NOTSET:  # GX logs every metric at INFO; keep task logs readable
        gx_log.setLevel(logging.WARNING)
    if run_end.tzinfo is None:
        raise ValueError("run_end must be timezone-aware (UTC), e.g. the DAG run's data_interval_end")
    docs_dir = Path(docs_dir)
    docs_dir.mkdir(parents=True, exist_ok=True)
    chosen = suites_dir or os.environ.get("CRM_EXPECTATIONS_DIR")
    suites = load_suites(Path(chosen) if chosen else None)

    with psycopg.connect(url, application_name="crm_quality_gate") as conn:
        if scope is None:
            scope = decide_scope(conn, full_check=not incremental, full_reason="a full check was asked for")
        existing = _existing_tables(conn, suites, build_schema)
        columns = {
            (r[0], r[1], r[2])
            for r in conn.execute(
                "select table_schema, table_name, column_name from information_schema.columns "
                "where table_schema = any(%s)",
                (["raw", "ops", build_schema],),
            )
        }
        built = [r[0] for r in conn.execute(
            "select table_name from information_schema.tables where table_schema = %s order by 1",
            (build_schema,))]
        present = [spec for spec in suites if (spec.schema(build_schema), spec.table) in existing]
        changed = {} if scope.full else _changed_relations(conn, present, build_schema, scope)
    log.info("quality gate scope: %s", scope.describe())

    outcomes: list[CheckOutcome] = list(extra_outcomes)
    for spec in suites:
        qualified = f"{spec.schema(build_schema)}.{spec.table}"
        if spec in present:
            continue
        severity = "critical" if spec.required else "warning"
        what = "dbt did not build it" if spec.layer == "marts" else "nothing has landed yet"
        outcomes.append(CheckOutcome(spec.name, qualified, "table_exists", "table_exists", severity, False,
                                     observed={"error": "table missing"},
                                     error=f"table {qualified} does not exist ({what})"))
    # a mart dbt builds without a suite would be published unchecked: say so
    covered = {s.table for s in suites if s.layer == "marts"}
    for name in built:
        if name not in covered and not name.endswith(SCRATCH_SUFFIXES):
            outcomes.append(CheckOutcome(
                f"marts.{name}", f"{build_schema}.{name}", "suite_exists", "suite_exists", "warning", False,
                observed={"error": "no suite"},
                error=f"no suite in expectations/marts/ checks {build_schema}.{name}; it is published "
                      "unchecked: add expectations/marts/" + name + ".yml"))

    context = _build_context(docs_dir)
    docs_scope = "full_check" if scope.full or scope.since is None else \
        f"since_{scope.since.astimezone(UTC).strftime('%Y%m%dT%H%M%SZ')}"
    try:
        if present:
            try:
                # NullPool: every GX connection closes when GX is done with it (no idle sessions left behind)
                datasource = context.data_sources.add_postgres(
                    "warehouse", connection_string=_sqlalchemy_url(url), kwargs={"poolclass": NullPool})
            except Exception as exc:
                raise RuntimeError(f"GX could not connect to the warehouse {redact(url)}: {exc}") from exc
            definitions = []
            by_suite: dict[str, SuiteSpec] = {}
            for spec in present:
                # (GX suite name, table, checks, changed relation): a full gate validates each table once; an
                # incremental one validates the whole table for table-level checks and key probes, and its
                # changed rows (copied by _changed_relations) for the checks of single values
                relation = changed.get(spec.name)
                if relation == f"{quote_ident(spec.schema(build_schema))}.{quote_ident(spec.table)}":
                    relation = None  # dbt rebuilt it whole: every check reads every (changed) row as it is
                parts = [(spec.name, spec.table, spec.schema(build_schema), list(spec.checks))]
                if relation is not None and relation.startswith("quality."):
                    on_changes = [c for c in spec.checks if c.scope == "changed"]
                    parts = [(spec.name, spec.table, spec.schema(build_schema),
                              [c for c in spec.checks if c.scope != "changed"])]
                    if on_changes:
                        parts.append((f"{spec.name}.changed_rows_{docs_scope}", relation.split(".", 1)[1].strip('"'),
                                      "quality", on_changes))
                for gx_name, table, schema, checks in parts:
                    if not checks:
                        continue
                    asset = datasource.add_table_asset(gx_name, table_name=table, schema_name=schema)
                    batch = asset.add_batch_definition_whole_table("whole_table")
                    suite = context.suites.add(gx.ExpectationSuite(name=gx_name, expectations=_gx_expectations(
                        spec, build_schema=build_schema, run_end=run_end, target_schema=target_schema,
                        checks=checks, changed=relation, batch_in_scope=scope.batch_predicate(),
                        gate_scope=scope.label if spec.name in changed else "full")))
                    if len(suite.expectations) != len(checks):
                        raise SuiteFileError(f"{spec.path}: GX dropped some checks as invalid; see the log above")
                    definitions.append(context.validation_definitions.add(
                        gx.ValidationDefinition(name=gx_name, data=batch, suite=suite)))
                    by_suite[gx_name] = spec
            # no UpdateDataDocsAction: it builds the site again after each of the ~40 validations (its index and
            # templates included), about half of an incremental gate; the site is built once, below
            checkpoint = context.checkpoints.add(gx.Checkpoint(
                name="quality_gate",
                validation_definitions=definitions,
                actions=[],
                # no sample values anywhere (Data Docs included): counts only
                result_format={"result_format": "SUMMARY", "partial_unexpected_count": 0},
            ))
            run = checkpoint.run(
                expectation_parameters={"run_end": run_end.isoformat()},
                # Data Docs say the scope: in the run's name, and in the changed rows' suites and every check's notes
                run_id=gx.RunIdentifier(run_name=f"{run_id}__{docs_scope}"),
            )
            for validation in run.run_results.values():
                spec = by_suite[validation.suite_name]
                schema = spec.schema(build_schema)
                missing = {c for c in referenced_columns_all(spec) if (schema, spec.table, c) not in columns}
                checks = {c.check: c for c in spec.checks}
                for r in validation.results:
                    meta = r.expectation_config.meta or {}
                    check = checks[meta["check"]]
                    outcomes.append(_outcome(spec, check, f"{schema}.{spec.table}", r.success,
                                             r.result or {}, _find_exception(r.exception_info), missing,
                                             meta.get("scope", "full")))
        # every suite and validation result of this run (the context's stores are in memory), and the index
        context.build_data_docs(site_names=[DOCS_SITE])
    finally:
        _drop_changed_relations(url, changed.values())

    waived = set(waive) | {w.strip() for w in os.environ.get("CRM_QUALITY_WAIVE", "").split(",") if w.strip()}
    unknown = waived - {f"{o.suite}.{o.check}" for o in outcomes}
    if unknown:
        log.warning("waivers name no check of this run: %s (format suite.check, e.g. "
                    "marts.fct_interactions.not_shrunk_vs_published)", sorted(unknown))
    outcomes = [
        replace(o, severity="warning", observed={**o.observed, "waived": True})
        if f"{o.suite}.{o.check}" in waived and o.severity == "critical" else o
        for o in outcomes
    ]
    order = {s.name: i for i, s in enumerate(suites)}
    outcomes.sort(key=lambda o: (order.get(o.suite, len(order)), o.suite, o.check))
    result = GateResult(run_id, run_end, build_schema, outcomes, docs_dir / "index.html",
                        time.monotonic() - started, scope=scope.label, scope_reason=scope.reason)
    if store:
        with psycopg.connect(url, application_name="crm_quality_gate") as conn:
            store_results(conn, result)
            record_gate_run(conn, run_id, scope, result.passed)
    log.info("%s", result.report())
    return result


def referenced_columns_all(spec: SuiteSpec) -> set[str]:
    return {c for check in spec.checks for c in referenced_columns(check)}
