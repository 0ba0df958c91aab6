"""The connected-components function behind int_records_clustered (macro create_udfs), run directly:
right answers on a random graph, and 1M records in well under a minute."""

from __future__ import annotations

import random
import re
import time
from pathlib import Path

import psycopg
import pytest
from crm_warehouse.bootstrap import bootstrap

MACRO = Path(__file__).resolve().parents[2] / "dbt_project" / "macros" / "udf" / "create_udfs.sql"


def udf_sql() -> str:
    """The SQL the macro renders (it has one Jinja variable, the version comment)."""
    text = MACRO.read_text()
    version = re.search(r"set udf_version = '([^']+)'", text).group(1)
    body = text.split("{% macro create_udfs() %}", 1)[1].split("{% endmacro %}", 1)[0]
    body = re.sub(r"\{%-? set udf_version.*?-?%\}", "", body)
    return body.replace("{{ udf_version }}", version)


@pytest.fixture
def conn(fresh_db):
    with psycopg.connect(fresh_db, autocommit=True) as c:
        bootstrap(c)
        c.execute(udf_sql())
        yield c


def python_components(nodes: list[str], edges: list[tuple[str, str]]) -> dict[str, str]:
    parent = {n: n for n in nodes}

    def find(x: str) -> str:
        while parent[x] != x:
            parent[x] = parent[parent[x]]
            x = parent[x]
        return x

    for a, b in edges:
        ra, rb = find(a), find(b)
        if ra != rb:
            parent[max(ra, rb)] = min(ra, rb)
    return {n: find(n) for n in nodes}


def test_components_match_a_reference_union_find(conn):
    rng = random.Random(7)
    nodes = [f"rec:{i:05d}" for i in range(3000)]
    edges = [(rng.choice(nodes), rng.choice(nodes)) for _ in range(2200)]
    conn.execute("create table edges (node_a text, node_b text)")
    with conn.cursor().copy("copy edges from stdin") as copy:
        for n in nodes:
            copy.write_row((n, n))
        for e in edges:
            copy.write_row(e)
    got = dict(conn.execute(
        "select node, component from intermediate.crm_connected_components('edges'::regclass)").fetchall())
    assert got == python_components(nodes, edges)
    assert len(set(got.values())) < len(nodes)  # the graph does have merged components


def test_one_million_records_in_well_under_a_minute(conn):
    # people with 3 records each joined through an anchor record (identifier stars), chains of links
    # across people, and a self edge per record: 1M records, 2.1M edges
    conn.execute("""
        create table edges as
        with recs as (select g as r, g / 3 as person from generate_series(1, 1000000) as g)
        select 'rec' || r as node_a, 'rec' || min(r) over (partition by person) as node_b from recs
        union all
        select 'rec' || r, 'rec' || r from recs
        union all
        select 'rec' || g, 'rec' || (g + 3) from generate_series(1, 999997, 7) as g
    """)
    conn.execute("analyze edges")
    started = time.monotonic()
    nodes, components = conn.execute(
        "select count(*), count(distinct component)"
        " from intermediate.crm_connected_components('edges'::regclass)").fetchone()
    seconds = time.monotonic() - started
    assert nodes == 1_000_000 and components == 190_477
    assert seconds < 45, f"connected components of 1M records took {seconds:.1f} s"
