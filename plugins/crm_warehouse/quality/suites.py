"""Expectation suites as YAML files under version control (`expectations/`), loaded into GX at run time.

A suite file names one table and lists its checks:

```yaml
suite: marts.fct_complaints      # the suite's name (Data Docs, quality.validation_results)
layer: marts                     # raw | ops | marts (marts = the build schema dbt writes, e.g. marts_build)
table: fct_complaints
required: true                   # a missing table is a critical failure (false: a warning)
include: [_common.yml]           # optional: checks shared by several suites, same folder
checks:
  - check: complaint_id_unique   # stable name, unique in the suite
    type: expect_column_values_to_be_unique   # any GX Core 1.x expectation type
    severity: critical           # critical blocks publishing; warning publishes and alerts
    kwargs: {column: complaint_id}
    description: ...             # optional, shown in Data Docs
    scope: changed               # optional: changed | whole (default by type, see below)
```

Scope (an incremental gate checks what changed since the last gate that passed, `quality/scope.py`): column
value checks (not null, in set, between, regex) default to `changed`, i.e. they run on the changed rows only;
uniqueness checks become a key probe (the changed keys against the whole table); every other check (columns,
types, row counts, SQL checks) defaults to `whole`. A SQL check marked `changed` reads the changed rows as
`{batch}`; a `whole` one may still limit itself with `@changed` (the changed rows, as a relation) and
`@batch_in_scope` (a condition on a `batch_id` column: the ledger batches in scope) or `@changed_record_key`
(a condition on `record_key`: the raw records with a changed row). In a full check every check reads every
row (the relation is the table, the conditions `true`).

Strings in `kwargs` may use placeholders, replaced before GX sees them: `@build`, `@raw`, `@ops` (quoted
schema names), `@run_end` (a `timestamptz` literal of the run's end), `@source`, `@stream` (quoted text
literals from a `<source>__<stream>` table name), `@table` (the quoted table name), `@published_schema`
(the published schema's quoted name as a text literal, for `to_regclass` and `quality.row_count`).
`@changed`, `@batch_in_scope` and `@changed_record_key` (above). GX's own `{batch}` is the validated table.
A kwarg may also be `{$PARAMETER: run_end}` (a GX suite parameter, given at run time).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import yaml

SEVERITIES = ("critical", "warning")
LAYERS = ("raw", "ops", "marts")
SUITE_KEYS = {"suite", "layer", "table", "required", "include", "checks", "description"}
CHECK_KEYS = {"check", "type", "severity", "kwargs", "description", "meta", "scope"}
SCOPES = ("changed", "whole")
_PLACEHOLDER = re.compile(
    r"@(build|raw|ops|run_end|source|stream|table|published_schema|changed_record_key|changed|batch_in_scope)\b")
# checks of single values: an incremental gate runs them on the changed rows only
ROW_TYPES = frozenset({
    "expect_column_values_to_not_be_null", "expect_column_values_to_be_null", "expect_column_values_to_be_in_set",
    "expect_column_values_to_not_be_in_set", "expect_column_values_to_be_between",
    "expect_column_values_to_match_regex", "expect_column_values_to_not_match_regex",
})
# uniqueness: an incremental gate checks the changed keys against the whole table (a key probe)
UNIQUE_TYPES = frozenset({"expect_column_values_to_be_unique", "expect_compound_columns_to_be_unique"})
_NAME = re.compile(r"^[a-z_][a-z0-9_]*$")


class SuiteFileError(ValueError):
    """A suite file is malformed; the message names the file and what to fix."""


@dataclass(frozen=True)
class CheckSpec:
    check: str
    type: str
    severity: str
    kwargs: dict[str, Any]
    description: str | None = None
    meta: dict[str, Any] = field(default_factory=dict)
    scope: str = "whole"  # changed | whole | keys (uniqueness: a key probe)


@dataclass(frozen=True)
class SuiteSpec:
    name: str
    layer: str
    table: str
    required: bool
    checks: tuple[CheckSpec, ...]
    path: Path
    description: str | None = None

    def schema(self, build_schema: str) -> str:
        """The schema the table lives in for this run."""
        return build_schema if self.layer == "marts" else self.layer

    @property
    def source_stream(self) -> tuple[str, str]:
        """(source, stream) of a `raw.<source>__<stream>` table; ("", "") for other tables."""
        source, sep, stream = self.table.partition("__")
        return (source, stream) if sep else ("", "")


def default_suites_dir() -> Path:
    """`expectations/` at the repository root (plugins/crm_warehouse/quality/ is three levels down)."""
    return Path(__file__).resolve().parents[3] / "expectations"


def _read_yaml(path: Path) -> Any:
    try:
        return yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        raise SuiteFileError(f"{path}: not valid YAML ({exc}); fix the file") from exc


def _parse_check(raw: Any, path: Path, index: int) -> CheckSpec:
    where = f"{path}: checks[{index}]"
    if not isinstance(raw, dict):
        raise SuiteFileError(f"{where}: expected a mapping with check, type, severity, kwargs")
    unknown = set(raw) - CHECK_KEYS
    if unknown:
        raise SuiteFileError(f"{where}: unknown keys {sorted(unknown)}; allowed: {sorted(CHECK_KEYS)}")
    name = raw.get("check")
    if not isinstance(name, str) or not _NAME.match(name):
        raise SuiteFileError(f"{where}: `check` must be a snake_case name, got {name!r}")
    meta = dict(raw.get("meta") or {})
    severity = raw.get("severity", meta.get("severity"))
    if severity not in SEVERITIES:
        raise SuiteFileError(f"{where} ({name}): severity must be one of {SEVERITIES}, got {severity!r}")
    etype = raw.get("type")
    if not isinstance(etype, str) or not etype:
        raise SuiteFileError(f"{where} ({name}): `type` (a GX expectation type) is required")
    kwargs = raw.get("kwargs") or {}
    if not isinstance(kwargs, dict):
        raise SuiteFileError(f"{where} ({name}): `kwargs` must be a mapping")
    scope = raw.get("scope")
    if scope is not None and scope not in SCOPES:
        raise SuiteFileError(f"{where} ({name}): scope must be one of {SCOPES}, got {scope!r}")
    if scope is None:
        scope = "changed" if etype in ROW_TYPES else "keys" if etype in UNIQUE_TYPES else "whole"
    elif scope == "changed" and etype in UNIQUE_TYPES:
        scope = "keys"
    return CheckSpec(name, etype, severity, kwargs, raw.get("description"), meta, scope)


def load_suite(path: Path) -> SuiteSpec:
    """Read one suite file (and its includes) into a SuiteSpec, validating its shape."""
    path = Path(path)
    doc = _read_yaml(path)
    if not isinstance(doc, dict):
        raise SuiteFileError(f"{path}: expected a mapping with suite, layer, table, checks")
    unknown = set(doc) - SUITE_KEYS
    if unknown:
        raise SuiteFileError(f"{path}: unknown keys {sorted(unknown)}; allowed: {sorted(SUITE_KEYS)}")
    for key in ("suite", "layer", "table"):
        if not isinstance(doc.get(key), str) or not doc[key]:
            raise SuiteFileError(f"{path}: `{key}` is required")
    if doc["layer"] not in LAYERS:
        raise SuiteFileError(f"{path}: layer must be one of {LAYERS}, got {doc['layer']!r}")
    if not _NAME.match(doc["table"]):
        raise SuiteFileError(f"{path}: table must be a plain lowercase name, got {doc['table']!r}")
    raw_checks: list[tuple[Any, Path]] = []
    for include in doc.get("include") or []:
        inc_path = path.parent / include
        if not inc_path.is_file():
            raise SuiteFileError(f"{path}: included file {inc_path} does not exist")
        inc = _read_yaml(inc_path)
        if not isinstance(inc, dict) or not isinstance(inc.get("checks"), list):
            raise SuiteFileError(f"{inc_path}: an include file holds a mapping with a `checks` list")
        raw_checks += [(c, inc_path) for c in inc["checks"]]
    raw_checks += [(c, path) for c in doc.get("checks") or []]
    checks = tuple(_parse_check(c, p, i) for i, (c, p) in enumerate(raw_checks))
    seen: set[str] = set()
    for c in checks:
        if c.check in seen:
            raise SuiteFileError(f"{path}: check name {c.check!r} appears twice; names must be unique")
        seen.add(c.check)
    if not checks:
        raise SuiteFileError(f"{path}: a suite needs at least one check")
    return SuiteSpec(
        name=doc["suite"],
        layer=doc["layer"],
        table=doc["table"],
        required=bool(doc.get("required", True)),
        checks=checks,
        path=path,
        description=doc.get("description"),
    )


def load_suites(directory: Path | None = None) -> list[SuiteSpec]:
    """Every `*.yml` suite under `directory` (default `expectations/`); files starting `_` are includes."""
    directory = Path(directory) if directory else default_suites_dir()
    if not directory.is_dir():
        raise SuiteFileError(f"suites directory {directory} does not exist; set suites_dir or CRM_EXPECTATIONS_DIR")
    files = sorted(p for p in directory.rglob("*.yml") if not p.name.startswith("_"))
    suites = [load_suite(p) for p in files]
    names = [s.name for s in suites]
    dupes = sorted({n for n in names if names.count(n) > 1})
    if dupes:
        raise SuiteFileError(f"{directory}: suite names used twice: {dupes}")
    return suites


def quote_ident(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def quote_literal(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def placeholders(spec: SuiteSpec, *, build_schema: str, run_end: datetime, target_schema: str = "marts",
                 changed: str | None = None, batch_in_scope: str = "true") -> dict[str, str]:
    """The SQL text each `@name` placeholder of `spec` stands for in this run. `changed`: the relation of
    the table's changed rows (default: the whole table, a full check); `batch_in_scope`: a condition on
    `batch_id` (default `true`)."""
    if run_end.tzinfo is None:
        raise ValueError("run_end must be timezone-aware (UTC), e.g. the DAG run's data_interval_end")
    source, stream = spec.source_stream
    return {
        "build": quote_ident(build_schema),
        "raw": quote_ident("raw"),
        "ops": quote_ident("ops"),
        "run_end": f"timestamptz {quote_literal(run_end.isoformat())}",
        "source": quote_literal(source),
        "stream": quote_literal(stream),
        "table": quote_ident(spec.table),
        # the published schema as a text literal (for to_regclass / dynamic SQL: it may not exist yet)
        "published_schema": quote_literal(quote_ident(target_schema)),
        "changed": changed or f"{quote_ident(spec.schema(build_schema))}.{quote_ident(spec.table)}",
        "changed_record_key": f"record_key in (select record_key from {changed} as changed_rows)" if changed
        else "true",
        "batch_in_scope": f"({batch_in_scope})",
    }


def render(value: Any, values: dict[str, str]) -> Any:
    """`value` with every `@name` placeholder in its strings replaced (recursively through lists/dicts)."""
    if isinstance(value, str):
        return _PLACEHOLDER.sub(lambda m: values[m.group(1)], value)
    if isinstance(value, list):
        return [render(v, values) for v in value]
    if isinstance(value, dict):
        return {k: render(v, values) for k, v in value.items()}
    return value


def referenced_columns(check: CheckSpec) -> list[str]:
    """Columns a check names in its kwargs (used to explain checks that could not run)."""
    cols: list[str] = []
    for key in ("column", "column_A", "column_B"):
        if isinstance(check.kwargs.get(key), str):
            cols.append(check.kwargs[key])
    for key in ("column_list",):
        if isinstance(check.kwargs.get(key), list):
            cols += [c for c in check.kwargs[key] if isinstance(c, str)]
    return cols
