"""The sandbox's keyset paging resumes at the token: a page costs the same wherever it is in the window.

Cost is counted in SQLite virtual-machine steps (a progress handler), not in seconds, so the test is exact on
any machine. Before `_resume_after`, the calls listing bounded its index scan by the window's edge and skipped
to the token on every page: the last page of a window cost as many steps as the whole window.
"""

from __future__ import annotations

import sqlite3

import pytest

from sandbox.serve import _resume_after

ROWS = 60_000


@pytest.fixture(scope="module")
def db():
    db = sqlite3.connect(":memory:")
    db.execute("create table s_calls (key text, available_at integer, start_ts integer, payload text)")
    db.execute("create index s_calls_ts on s_calls(start_ts, key)")
    db.executemany("insert into s_calls values (?, ?, ?, ?)",
                   ((f"CA{i:08d}", i, i // 3, "{}") for i in range(ROWS)))
    return db


def page(db: sqlite3.Connection, forward: bool, last: tuple[int, str] | None) -> tuple[list[str], int]:
    """One page of 100 keys inside the window, as the calls and dispositions listings build it, and its cost."""
    where = ["available_at <= ?", "start_ts >= ?", "start_ts < ?", "start_ts <= ?"]
    args: list[object] = [ROWS, 10, ROWS // 3 - 10, ROWS]
    if last:
        _resume_after(where, args, "start_ts", "key", forward, last)
    order = "start_ts, key" if forward else "start_ts desc, key desc"
    steps = 0

    def count() -> int:
        nonlocal steps
        steps += 1
        return 0

    db.set_progress_handler(count, 100)
    try:
        keys = [k for k, in db.execute(f"select key from s_calls where {' and '.join(where)} order by {order} "
                                       "limit 100", args)]
    finally:
        db.set_progress_handler(None, 0)
    return keys, steps


@pytest.mark.parametrize("forward", [True, False], ids=["ascending", "descending"])
def test_every_page_resumes_at_its_token_and_costs_the_same(db, forward):
    inside = [k for k, in db.execute("select key from s_calls where start_ts >= 10 and start_ts < ? "
                                     f"order by start_ts {'' if forward else 'desc'}, key "
                                     f"{'' if forward else 'desc'}", (ROWS // 3 - 10,))]
    seen, costs, last = [], [], None
    while True:
        keys, steps = page(db, forward, last)
        if not keys:
            break
        seen += keys
        costs.append(steps)
        ts = db.execute("select start_ts from s_calls where key = ?", (keys[-1],)).fetchone()[0]
        last = (ts, keys[-1])
    assert seen == inside  # every row of the window once, in order
    assert len(costs) > 500
    # the last pages cost what the second page cost (give or take the handler's granularity), where a scan from
    # the window's edge would cost hundreds of times more
    assert max(costs[-5:]) <= 2 * costs[1] + 2, costs[:3] + costs[-3:]


def test_other_bounds_on_the_same_side_stay_as_filters(db):
    where = ["start_ts >= ?", "start_ts < ?", "start_ts <= ?", "available_at <= ?"]
    args: list[object] = [1, 2, 3, 4]
    _resume_after(where, args, "start_ts", "key", False, (100, "CA1"))
    assert where == ["start_ts >= ?", "+start_ts < ?", "+start_ts <= ?", "available_at <= ?",
                     "(start_ts, key) < (?, ?)"]
    assert args == [1, 2, 3, 4, 100, "CA1"]
    # a token beyond the window's edge still returns nothing beyond it
    keys, _ = page(db, False, (ROWS, "CA99999999"))
    assert keys and all(k < f"CA{(ROWS // 3 - 10) * 3:08d}" for k in keys)


def test_a_bound_it_cannot_read_is_refused():
    with pytest.raises(ValueError, match="start_ts <= 5"):
        _resume_after(["start_ts <= 5"], [], "start_ts", "key", False, (1, "CA1"))
