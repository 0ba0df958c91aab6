"""The reconciliation every failure drill ends with: what the sandbox served (its ground truth, world.db)
against raw and ops.quarantine: every served record in raw exactly once or quarantined with a reason,
nothing duplicated, nothing half-loaded.

Markers: every drill is `drill` (`make drills` runs `-m drill`); the slow ones are also `heavy`, which the
pytest configuration deselects by default, so `make test` runs only the essential drills.
"""

from __future__ import annotations

import json
import sqlite3
from dataclasses import dataclass
from pathlib import Path

import psycopg
from psycopg import sql

ROOT = Path(__file__).resolve().parents[2]

# raw stream -> the world table of what the vendor served, and the payload fields holding its key
SERVED = {
    ("phone_system", "calls"): ("s_calls", ("sid",)),
    ("phone_system", "dispositions"): ("s_dispositions", ("disposition_id",)),
    ("sftp_survey_vendor", "responses"): ("s_sftp_survey", ("ResponseId",)),
    ("sftp_call_center", "calls"): ("s_cc_calls", ("call_id",)),
    ("sftp_call_center", "dispositions"): ("s_cc_dispositions", ("disposition_id",)),
}


@dataclass
class Reconciliation:
    served: int
    landed: int  # distinct records in raw
    quarantined: int
    lost: list[str]
    duplicated: int  # raw rows beyond one per record, and records both landed and quarantined
    unknown: list[str]  # in raw but never served

    def assert_exact(self, what: str) -> None:
        assert not self.lost, f"{what}: {len(self.lost)} served records lost, e.g. {self.lost[:5]}"
        assert self.duplicated == 0, f"{what}: {self.duplicated} records landed twice"
        assert not self.unknown, f"{what}: rows that were never served: {self.unknown[:5]}"


def served_keys(world_db: Path, table: str, clock_ts: int) -> set[str]:
    with sqlite3.connect(world_db) as world:
        return {r[0] for r in world.execute(f"select key from {table} where available_at <= ?", (clock_ts,))}


def reconcile(url: str, world_db: Path, clock_ts: int, source: str, stream: str) -> Reconciliation:
    """Compare raw.<source>__<stream> and its quarantined records with what the sandbox served by
    `clock_ts`. Also checks the ledger: no batch left running, every batch balances, every raw row
    belongs to a succeeded batch."""
    table, key_fields = SERVED[(source, stream)]
    expected = served_keys(world_db, table, clock_ts)
    raw = sql.Identifier("raw", f"{source}__{stream}")
    with psycopg.connect(url) as conn:
        rows = conn.execute(sql.SQL("select record_key, count(*) - 1 from {} group by 1").format(raw)).fetchall()
        quarantined = conn.execute("select reason, original from ops.quarantine where source = %s and stream = %s",
                                   (source, stream)).fetchall()
        ledger = conn.execute("select count(*) filter (where status not in ('succeeded', 'failed')), count(*) "
                              "filter (where received <> loaded + duplicate + quarantined) from ops.batches "
                              "where source = %s and stream = %s", (source, stream)).fetchone()
        orphans = conn.execute(sql.SQL("select count(*) from {} r left join ops.batches b using (batch_id) "
                                       "where b.status is distinct from 'succeeded'").format(raw)).fetchone()[0]
    assert ledger == (0, 0), f"{source}.{stream}: batches left running or not balancing: {ledger}"
    assert orphans == 0, f"{source}.{stream}: {orphans} raw rows outside a succeeded batch (half-loaded)"
    assert all(reason for reason, _ in quarantined), f"{source}.{stream}: a quarantined record without a reason"
    q_keys = {_key_of(original, key_fields) for _, original in quarantined} - {None}
    keys = {k for k, _ in rows}
    return Reconciliation(
        served=len(expected), landed=len(keys & expected), quarantined=len(q_keys & expected),
        lost=sorted(expected - keys - q_keys), duplicated=sum(d for _, d in rows) + len(keys & q_keys),
        unknown=sorted(keys - expected))


def _key_of(original: str | None, fields: tuple[str, ...]) -> str | None:
    try:
        payload = json.loads(original or "")
    except ValueError:
        return None
    if isinstance(payload, dict):
        for name in fields:
            if isinstance(payload.get(name), str) and payload[name]:
                return payload[name]
    return None
