"""The benchmarks reuse a generated world only when its file is whole: a world.db emptied or cut short (to free
disk in the middle of a run) is generated again instead of serving nothing."""

from __future__ import annotations

import os
import sqlite3

from bench.extract_load import _world_readable


def _world(path):
    with sqlite3.connect(path) as db:
        db.execute("create table s_calls (sid text, body text)")
        db.executemany("insert into s_calls values (?, ?)", [(f"CA{i}", "x" * 400) for i in range(3000)])
    return path


def test_a_whole_world_is_reused(tmp_path):
    assert _world_readable(_world(tmp_path / "world.db"))


def test_a_world_cut_short_is_not(tmp_path):
    path = _world(tmp_path / "world.db")
    os.truncate(path, path.stat().st_size // 2)
    assert not _world_readable(path)


def test_an_empty_or_foreign_file_is_not(tmp_path):
    empty = tmp_path / "empty.db"
    empty.write_bytes(b"")
    foreign = tmp_path / "foreign.db"
    foreign.write_bytes(b"not a database" * 100)
    assert not _world_readable(empty)
    assert not _world_readable(foreign)
