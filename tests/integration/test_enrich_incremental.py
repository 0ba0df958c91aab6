"""Enrichment reads only what landed since its last run (issue 5 point 4: one more day must not cost a pass
over every raw row), with a look-back for loads that committed late, and everything again when asked (a full
refresh) or when its rules change.

Raw rows are written with chosen extraction times around a mark T0 (the latest row the first run read):
- 48 hours before T0, after the first run (a row the look-back does not reach: an incremental run must
  not see it, a full one must);
- 12 hours before T0, after the first run (a load that committed late: within the 24-hour look-back);
- an hour after T0 (what the next day brings).
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest
from crm_warehouse.bootstrap import bootstrap
from crm_warehouse.enrich import phones, run_all
from crm_warehouse.load.ddl import ensure_raw_table, forget_ready

T0 = datetime(2026, 10, 1, 12, tzinfo=UTC)


def land(conn, table: str, key: str, payload: dict, at: datetime, batch: int) -> None:
    conn.execute(
        f"insert into raw.{table} (record_key, content_hash, payload, batch_id, extracted_at)"
        " values (%s, md5(%s), %s, %s, %s)",
        (key, json.dumps(payload), json.dumps(payload), batch, at),
    )


def normalised(conn) -> set[str]:
    return {r[0] for r in conn.execute("select raw_phone from intermediate.phone_numbers_normalized")}


def scored(conn) -> dict[str, str]:
    return dict(conn.execute("select text_id, text_md5 from intermediate.social_sentiment").fetchall())


@pytest.fixture
def warehouse(fresh_db):
    import psycopg

    forget_ready()
    with psycopg.connect(fresh_db) as conn:
        bootstrap(conn)
        ensure_raw_table(conn, "phone_system", "calls")
        ensure_raw_table(conn, "social_x", "mentions")
        land(conn, "phone_system__calls", "CA1", {"from": "+1 415 555 0100", "to": "+1 415 555 0101"}, T0, 1)
        land(conn, "social_x__mentions", "1", {"text": "Thanks, great help today!"}, T0, 1)
        conn.commit()
        first = run_all(conn)
        conn.commit()
        assert first["phones"] == 2 and first["sentiment"] == 1
        assert dict(conn.execute("select raw_table, through from intermediate.enrich_marks"
                                 " where step = 'phones'").fetchall()) == {"raw.phone_system__calls": T0}
        yield conn


def test_an_incremental_run_reads_the_rows_since_its_mark_less_the_look_back(warehouse):
    conn = warehouse
    land(conn, "phone_system__calls", "CA2", {"from": "415-555-0199", "to": "+1 415 555 0101"},
         T0 - timedelta(hours=48), 2)
    land(conn, "phone_system__calls", "CA3", {"from": "415-555-0177", "to": "+1 415 555 0101"},
         T0 - timedelta(hours=12), 2)
    land(conn, "phone_system__calls", "CA4", {"from": "415-555-0166", "to": "+1 415 555 0101"},
         T0 + timedelta(hours=1), 3)
    land(conn, "social_x__mentions", "2", {"text": "Worst service ever, I am furious."},
         T0 - timedelta(hours=48), 2)
    # a new version of the first mention: its text changed, so it is scored again
    land(conn, "social_x__mentions", "1", {"text": "Actually it broke again. Terrible."},
         T0 + timedelta(hours=1), 3)
    conn.commit()
    before = scored(conn)

    stats = run_all(conn)
    conn.commit()
    assert stats["phones"] == 2 and "415-555-0177" in normalised(conn) and "415-555-0166" in normalised(conn)
    assert "415-555-0199" not in normalised(conn), "a row older than the mark less the look-back was read"
    assert stats["sentiment"] == 1 and scored(conn)["x:1"] != before["x:1"] and "x:2" not in scored(conn)
    through = conn.execute("select through from intermediate.enrich_marks where step = 'phones'").fetchone()[0]
    assert through == T0 + timedelta(hours=1)

    # nothing new: nothing read is new, nothing enriched
    assert run_all(conn) | {"seconds": 0} == {"phones": 0, "sentiment": 0, "seconds": 0}
    conn.commit()

    # a full run (the transform DAG's full refresh) reads every row again and finds what was missed
    stats = run_all(conn, full=True)
    conn.commit()
    assert stats["phones"] == 1 and "415-555-0199" in normalised(conn)
    assert stats["sentiment"] == 1 and "x:2" in scored(conn)


def test_new_rules_read_every_row_again(warehouse, monkeypatch):
    conn = warehouse
    land(conn, "phone_system__calls", "CA2", {"from": "415-555-0199", "to": "+1 415 555 0101"},
         T0 - timedelta(hours=48), 2)
    conn.commit()
    assert run_all(conn)["phones"] == 0
    conn.commit()
    monkeypatch.setattr(phones, "RULES_VERSION", phones.RULES_VERSION + 1)
    # every string is normalised again under the new rules, the old row's too
    assert run_all(conn)["phones"] == 3 and "415-555-0199" in normalised(conn)
