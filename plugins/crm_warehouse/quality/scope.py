"""What a gate run checks: everything (a full check), or what changed since the last gate that passed.

At ten million interactions a full gate takes twenty minutes; one more day must cost a tenth of a full build.
So, as write-audit-publish platforms do, an incremental gate checks row by row only the rows that changed:

- raw landings and the ledger: the rows of the ledger batches the last passed gate did not see. The gate keeps
  its ledger position (the highest batch id it saw, and the lower ids it could not see yet: loads still in
  progress, whose rows commit later) in `quality.gate_runs`; the batches since are every id above the
  position plus those gaps that have committed since. Raw tables are append-only, so a batch's rows are all
  new rows.
- tables dbt builds (marts, intermediate tables): the rows written since the last passed gate began, i.e.
  row versions (`xmin`) of transactions that had not ended in this database when it began. A table dbt
  rebuilt whole has only such rows; an incremental one only the rows its merge wrote.
- staging views (dbt tests): the records (natural keys) with a raw row in those batches, a condition that
  goes through the view's `distinct on` to the raw table's primary key.

Table-level checks (columns, row counts, volumes per day, freshness, reconciliation per batch) stay on the
whole table or are limited to the batches in scope; uniqueness is checked for the changed keys against the
whole table (a key probe). A full check runs on the first gate, after a --full-refresh build, when a run
asks for it (`{"full_check": true}`), and when the last passed gate is too old for the transaction horizon
(2^31 transactions): it finds an old bad row an incremental gate no longer looks at.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import psycopg
from psycopg import sql

# Ledger ids below the position the gate could not see (a load in progress commits later): kept this far back
GAP_WINDOW = 10_000
XID_WRAP = 2**32
XID_HORIZON_LIMIT = 2**31 - 10**8  # comparisons of 32-bit xmin stay exact well inside half the xid space

GATE_RUNS_DDL = """
create table if not exists quality.gate_runs (
    run_id           text primary key,
    scope            text not null,
    passed           boolean not null,
    ledger_position  bigint,
    ledger_gaps      bigint[] not null default '{}',
    xid_horizon      bigint,
    started_at       timestamptz not null,
    finished_at      timestamptz not null
)
"""


@dataclass(frozen=True)
class GateScope:
    """The rows a gate run checks. `full`: every row; otherwise the changes since the gate of `since_run`."""

    full: bool
    reason: str
    started_at: datetime
    ledger_position: int | None = None  # this run's, stored for the next run
    ledger_gaps: tuple[int, ...] = ()
    xid_horizon: int | None = None  # this run's oldest running transaction of the database (64-bit id)
    since: datetime | None = None  # when the last passed gate began
    since_run: str | None = None
    batches: tuple[int, ...] = ()  # ledger batches landed since (incremental only)
    xid_since: int | None = None  # the last passed gate's horizon
    xid_span: int | None = None  # transactions from xid_since to this run's next transaction id

    @property
    def label(self) -> str:
        """`full`, or `since <when the last passed gate began>` (the audit trail's wording)."""
        if self.full:
            return "full"
        return f"since {self.since.isoformat(timespec='seconds')}" if self.since else "since the last passed gate"

    def describe(self) -> str:
        if self.full:
            return f"full check ({self.reason})"
        return (f"changed rows {self.label} (gate of run {self.since_run}): {len(self.batches)} ledger "
                f"batch(es), rows dbt wrote since")

    def batch_predicate(self, column: str = "batch_id") -> str:
        """SQL: a row of a raw table or of the ledger belongs to a batch in scope (`true` in a full check)."""
        if self.full:
            return "true"
        if not self.batches:
            return "false"
        ids = ", ".join(str(int(b)) for b in self.batches)
        # the range lets PostgreSQL use the raw tables' BRIN index on batch_id; no braces (GX formats queries)
        return (f"({column} between {min(self.batches)} and {max(self.batches)}"
                f" and {column} = any(array[{ids}]::bigint[]))")

    def written_predicate(self) -> str:
        """SQL: a row of a table (not a view) was written by a transaction that had not ended when the last
        passed gate began (`true` in a full check). Exact while xid_span < 2^31."""
        if self.full:
            return "true"
        return written_since(self.xid_since, self.xid_span).as_string(None)


def written_since(start: int, span: int) -> sql.Composed:
    """SQL: a row's xmin is one of the `span` transactions from the 64-bit id `start` on, i.e. the row was written
    by a transaction that had not ended at `start` (32-bit xmin compared modulo 2^32: exact while span < 2^31).
    Its text has no braces, so the gate's GX queries can take it too."""
    return sql.SQL("((xmin::text::bigint - {} + {}) % {}) < {}").format(
        sql.Literal(int(start) % XID_WRAP), sql.Literal(XID_WRAP), sql.Literal(XID_WRAP), sql.Literal(int(span)))


def full_check_reason(conf: dict | None) -> str | None:
    """Why a DAG run's gate must check every row (its conf), or None: an incremental gate."""
    conf = conf or {}
    if conf.get("full_refresh"):
        return "the build was a --full-refresh (conf full_refresh)"
    if conf.get("full_check"):
        return "the run asked for it (conf full_check)"
    return None


def ensure_quality_tables(conn: psycopg.Connection, *ddl: str) -> None:
    """Schema `quality` and the tables of `ddl` (`create table if not exists` statements), in one transaction."""
    with conn.transaction():
        conn.execute("create schema if not exists quality")
        for statement in ddl:
            conn.execute(statement)


def ensure_gate_runs(conn: psycopg.Connection) -> None:
    ensure_quality_tables(conn, GATE_RUNS_DDL)


def xid_horizon(conn: psycopg.Connection, next_xid: int) -> int:
    """The oldest transaction of this database still running (it may write rows that commit later), else the
    next transaction id, as a 64-bit id. Not the snapshot's xmin: that is cluster-wide, and a long transaction
    in another database would hold it back for hours (every row since would count as changed)."""
    running = [int(r[0]) for r in conn.execute(
        "select backend_xid::text from pg_stat_activity where datname = current_database()"
        " and backend_xid is not null and pid <> pg_backend_pid()"
        " union all select transaction::text from pg_prepared_xacts where database = current_database()")]
    ages = [(next_xid - xid) % XID_WRAP for xid in running]  # 32-bit ids, as transactions ago
    return next_xid - max(ages, default=0)


def _ledger_position(conn: psycopg.Connection) -> tuple[int | None, tuple[int, ...]]:
    if conn.execute("select to_regclass('ops.batches')").fetchone()[0] is None:
        return None, ()
    position = conn.execute("select max(batch_id) from ops.batches").fetchone()[0]
    if position is None:
        return None, ()
    gaps = conn.execute(
        "select array_agg(id order by id) from generate_series(greatest(%s - %s, 1), %s) as id"
        " where not exists (select from ops.batches where batch_id = id)",
        (position, GAP_WINDOW, position)).fetchone()[0] or []
    return int(position), tuple(int(g) for g in gaps)


def decide_scope(conn: psycopg.Connection, *, full_check: bool = False, full_reason: str = "asked for") -> GateScope:
    """The scope of a gate starting now: full when asked (`full_check`, e.g. after a --full-refresh build, or
    the periodic full check), on the first gate and when the last passed gate is beyond the transaction
    horizon; else the changes since the last passed gate. Reads the state in `quality.gate_runs` and notes
    this run's ledger position and transaction horizon (stored by `record_gate_run`)."""
    ensure_gate_runs(conn)
    with conn.transaction():
        started_at, xmax = conn.execute(
            "select clock_timestamp(), pg_snapshot_xmax(pg_current_snapshot())::text::bigint").fetchone()
        horizon = xid_horizon(conn, xmax)
        position, gaps = _ledger_position(conn)
        own = {"started_at": started_at, "ledger_position": position, "ledger_gaps": gaps, "xid_horizon": horizon}
        if full_check:
            return GateScope(True, full_reason, **own)
        last = conn.execute(
            "select run_id, started_at, ledger_position, ledger_gaps, xid_horizon from quality.gate_runs"
            " where passed order by finished_at desc limit 1").fetchone()
        if last is None:
            return GateScope(True, "first gate: no gate has passed yet", **own)
        since_run, since, last_position, last_gaps, last_horizon = last
        if last_horizon is None or xmax - last_horizon > XID_HORIZON_LIMIT:
            return GateScope(True, f"the last passed gate (run {since_run}) is too many transactions ago", **own)
        batches: tuple[int, ...] = ()
        if position is not None:
            batches = tuple(r[0] for r in conn.execute(
                "select batch_id from ops.batches where batch_id > %s or batch_id = any(%s) order by batch_id",
                (last_position if last_position is not None else 0, list(last_gaps or []))))
    return GateScope(False, f"changes since the gate of run {since_run}", since=since, since_run=since_run,
                     batches=batches, xid_since=last_horizon, xid_span=xmax - last_horizon, **own)


def record_gate_run(conn: psycopg.Connection, run_id: str, scope: GateScope, passed: bool) -> None:
    """Keep this run's verdict and position: the next incremental gate checks what changed after it."""
    ensure_gate_runs(conn)
    with conn.transaction():
        conn.execute(
            "insert into quality.gate_runs (run_id, scope, passed, ledger_position, ledger_gaps, xid_horizon,"
            " started_at, finished_at) values (%s, %s, %s, %s, %s, %s, %s, clock_timestamp())"
            " on conflict (run_id) do update set scope = excluded.scope, passed = excluded.passed,"
            " ledger_position = excluded.ledger_position, ledger_gaps = excluded.ledger_gaps,"
            " xid_horizon = excluded.xid_horizon, started_at = excluded.started_at,"
            " finished_at = excluded.finished_at",
            (run_id, scope.label, passed, scope.ledger_position, list(scope.ledger_gaps), scope.xid_horizon,
             scope.started_at))
