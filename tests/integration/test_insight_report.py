"""The insight report (issue 5, point 7): built from published marts of a generated sandbox world, then
opened in a real headless browser (Chromium) to prove the charts render, with no script error, and that
the headline says what SQL on the marts says.

Chromium comes from Debian (`tools/ensure_chromium.sh`, called by `make setup`); a machine without it
fails these tests with the command that installs it: a report nobody saw render is not tested.
"""

from __future__ import annotations

import os
import re
import shutil
import sqlite3
import subprocess
import time
import uuid
from html.parser import HTMLParser
from pathlib import Path

import psycopg
import pytest
from crm_warehouse.bootstrap import bootstrap
from crm_warehouse.enrich import run_all
from crm_warehouse.quality.publish import publish
from crm_warehouse.report import MIN_OPPORTUNITIES, PLOTLY_JS, build_report
from psycopg import sql
from test_dbt_pipeline import dbt_build  # tests/integration is on sys.path
from test_dbt_truth import load_served_into_raw

from sandbox import world as world_module

CHROMIUM_CANDIDATES = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")
INSTALL_HINT = ("Chromium is needed to check the insight report in a real browser and is not installed. "
                "Install it with `tools/ensure_chromium.sh` (runs `apt-get install -y chromium` on Debian; "
                "`make setup` does it), or point CRM_CHROMIUM at a Chrome/Chromium binary.")


# ---------------------------------------------------------------------------------------- browser
def chromium_binary() -> str:
    configured = os.environ.get("CRM_CHROMIUM")
    if configured:
        if not (Path(configured).is_file() and os.access(configured, os.X_OK)):
            pytest.fail(f"CRM_CHROMIUM={configured} is not an executable file. {INSTALL_HINT}")
        return configured
    for name in CHROMIUM_CANDIDATES:
        found = shutil.which(name)
        if found:
            return found
    if Path("/usr/bin/chromium").exists():
        return "/usr/bin/chromium"
    pytest.fail(INSTALL_HINT)


def render_in_browser(page: Path, profile: Path) -> tuple[str, list[str]]:
    """The DOM after the page's scripts ran, and the console messages the page logged."""
    cmd = [chromium_binary(), "--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
           "--no-first-run", "--no-default-browser-check", "--disable-extensions", "--disable-sync",
           f"--user-data-dir={profile}", "--enable-logging=stderr", "--v=0", "--window-size=1280,3000",
           "--virtual-time-budget=20000", "--dump-dom", page.as_uri()]
    result = subprocess.run(cmd, capture_output=True, text=True, timeout=180)
    assert result.returncode == 0 and "<html" in result.stdout, (
        f"chromium could not render {page} (exit {result.returncode}):\n{result.stderr[-3000:]}")
    console = [line for line in result.stderr.splitlines() if ":CONSOLE" in line]
    return result.stdout, console


class Dom(HTMLParser):
    """What the tests look for in a page: chart divs and whether each holds a drawn SVG, the headline
    metrics, the sections, the scripts it loads."""

    def __init__(self, text: str):
        super().__init__()
        self.charts: dict[str, dict] = {}
        self.current: str | None = None
        self.metrics: dict[str, str] = {}
        self.sections: list[str] = []
        self.scripts: list[str] = []
        self.feed(text)

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        classes = (a.get("class") or "").split()
        if tag == "div" and (a.get("id") or "").startswith("chart-"):
            self.current = a["id"]
            self.charts[self.current] = {"plotly": "js-plotly-plot" in classes, "svg": 0, "marks": 0}
        elif tag == "section":
            self.current = None
            self.sections.append(a.get("id"))
        elif tag == "svg" and "main-svg" in classes and self.current:
            self.charts[self.current]["svg"] += 1
        elif tag in ("g", "path") and self.current and ("point" in classes or "box" in classes):  # a bar, a box
            self.charts[self.current]["marks"] += 1
        elif tag == "dd" and "data-metric" in a:
            self.metrics[a["data-metric"]] = a.get("data-value") or ""
        elif tag == "script" and a.get("src"):
            self.scripts.append(a["src"])


def script_errors(console: list[str]) -> list[str]:
    return [line for line in console if re.search(r"Uncaught|Error|error", line)]


# ------------------------------------------------------------------------------------------ world
@pytest.fixture(scope="module")
def published(pg_server_url, tmp_path_factory):
    """A small sandbox world loaded into raw, built with dbt and published into `marts`."""
    chromium_binary()  # no browser: fail now, not after building the marts
    world_dir = tmp_path_factory.mktemp("world")
    world_module.generate(world_dir, seed=7, customers=600, days=30)
    world = sqlite3.connect(world_dir / "world.db")
    name = f"crm_test_report_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(pg_server_url, autocommit=True) as admin:
        admin.execute(sql.SQL("create database {}").format(sql.Identifier(name)))
    url = pg_server_url.rsplit("/", 1)[0] + f"/{name}"
    try:
        with psycopg.connect(url) as conn:
            load_served_into_raw(conn, world)
            conn.commit()
            run_all(conn)
            dbt_build(url, tmp_path_factory.mktemp("dbt"))
            publish(conn, build_schema="marts_build", target_schema="marts")
            yield conn
    finally:
        world.close()
        with psycopg.connect(pg_server_url, autocommit=True) as admin:
            admin.execute(sql.SQL("drop database if exists {} with (force)").format(sql.Identifier(name)))


@pytest.fixture(scope="module")
def report(published, tmp_path_factory):
    """The report written from the published marts, and what the browser made of it."""
    out = tmp_path_factory.mktemp("report")
    started = time.monotonic()
    page = build_report(published, out)
    built_in = time.monotonic() - started
    started = time.monotonic()
    dom, console = render_in_browser(page, tmp_path_factory.mktemp("chromium-profile"))
    print(f"report built in {built_in:.1f} s, rendered by chromium in {time.monotonic() - started:.1f} s")
    return page, dom, console


# ------------------------------------------------------------------------------------------ tests
def test_every_chart_renders_in_a_headless_browser_without_script_errors(report):
    page, dom, console = report
    before, after = Dom(page.read_text()), Dom(dom)
    assert not script_errors(console), "the page logged script errors:\n" + "\n".join(console)
    assert after.sections == ["complaints", "resolution", "retention", "service-quality"]
    assert len(after.charts) >= 4 and set(after.charts) == set(before.charts)
    not_drawn = {cid: c for cid, c in after.charts.items() if not (c["plotly"] and c["svg"] and c["marks"])}
    assert not not_drawn, f"charts that plotly did not draw: {not_drawn}"
    rendered = len(re.findall(r'class="[^"]*js-plotly-plot', dom))
    assert rendered == len(after.charts) >= 4
    for title in ("Complaints by channel and category over time", "Time to resolution",
                  "Retention of rectified versus unrectified complainants", "Service quality by channel"):
        assert title in dom
    assert dom.count('class="reading"') == 4


def test_the_page_works_offline(report):
    page, _, _ = report
    scripts = Dom(page.read_text()).scripts
    assert scripts == [PLOTLY_JS], f"the page must load only its own copy of plotly.js, not {scripts}"
    assert (page.parent / PLOTLY_JS).stat().st_size > 1_000_000
    assert not re.search(r"""(src|href)=["']?(https?:)?//""", page.read_text())


def test_headline_numbers_equal_sql_on_the_marts(published, report):
    page, dom, _ = report
    metrics = Dom(dom).metrics
    complaints, rectified, rect_kept, unrect, unrect_kept = published.execute("""
        select count(*), count(*) filter (where is_rectified),
               count(*) filter (where is_rectified and is_retained_afterwards),
               count(*) filter (where not is_rectified),
               count(*) filter (where not is_rectified and is_retained_afterwards)
        from marts.fct_complaints
    """).fetchone()
    assert complaints > 100 and rectified and unrect
    assert int(metrics["complaints"]) == complaints
    assert float(metrics["rectified_pct"]) == round(100 * rectified / complaints, 1)
    rect_pct, unrect_pct = round(100 * rect_kept / rectified, 1), round(100 * unrect_kept / unrect, 1)
    assert float(metrics["retention_rectified_pct"]) == rect_pct
    assert float(metrics["retention_unrectified_pct"]) == unrect_pct
    assert float(metrics["retention_gap_points"]) == round(rect_pct - unrect_pct, 1)
    assert rect_pct > unrect_pct  # the world's rectified complainants stay more often, and the page says so
    ranked = published.execute("""
        with per_channel as (
            select channel, sum(complaints_count)::float8 / sum(opportunities_count) as defect_rate,
                   sum(opportunities_count) as opportunities
            from marts.fct_service_quality_daily group by 1 having sum(opportunities_count) > 0
        )
        select channel from per_channel
        where opportunities >= %(min)s
           or not exists (select from per_channel where opportunities >= %(min)s)
        order by defect_rate, channel
    """, {"min": MIN_OPPORTUNITIES}).fetchall()
    assert len(ranked) >= 3
    assert metrics["best_channel"] == ranked[0][0]
    assert metrics["worst_channel"] == ranked[-1][0]
    summary = re.search(r'<p class="summary" id="summary">(.*?)</p>', dom, re.S).group(1)
    assert f"{complaints:,}" in summary and f"{rect_pct:.1f}%" in summary and f"{unrect_pct:.1f}%" in summary


def test_the_page_shows_no_personal_data(published, report):
    page, _, _ = report
    text = page.read_text()
    personal = published.execute("""
        select value from marts.dim_customers,
            lateral (values (full_name), (primary_email), (primary_phone), (x_handle)) as v(value)
        where value is not null and length(value) >= 5
        union
        select complaint_text from marts.fct_complaints where length(complaint_text) >= 12
    """).fetchall()
    assert len(personal) > 100
    leaked = [v for (v,) in personal if v in text]
    assert not leaked, f"the report shows personal data: {leaked[:5]}"
    assert not re.search(r"[\w.+-]+@[\w-]+\.[\w.]+", text), "an email address is in the page"
    assert not re.search(r"\+\d{10,}", text), "a phone number is in the page"


def test_the_same_marts_give_the_same_page(published, report, tmp_path):
    page, _, _ = report
    again = build_report(published, tmp_path)
    assert again.read_bytes() == page.read_bytes()


def test_empty_marts_give_a_page_that_says_there_is_no_data_yet(fresh_db, tmp_path):
    with psycopg.connect(fresh_db) as conn:
        bootstrap(conn)  # schema marts exists, nothing published into it
        page = build_report(conn, tmp_path / "nothing")
        assert "No data yet" in page.read_text()
        conn.execute("create table marts.fct_complaints as select * from (values "
                     "(null::text, null::text, null::text, null::text, null::timestamptz, false, true, "
                     "null::numeric, null::numeric, null::text)) as t(complaint_id, customer_id, channel, "
                     "problem_category, opened_at, is_rectified, is_retained_afterwards, hours_to_resolution, "
                     "hours_to_first_response, complaint_status) where false")
        conn.execute("create table marts.fct_service_quality_daily (service_date date, channel text, "
                     "opportunities_count int, complaints_count int, interactions_count int)")
        conn.execute("create table marts.fct_survey_feedback (attributed_channel text, csat_score int, "
                     "nps_score int, nps_category text)")
        conn.commit()
        empty = build_report(conn, tmp_path / "empty")
    dom, console = render_in_browser(empty, tmp_path / "profile")
    assert "No data yet: the published marts hold no complaints yet" in dom
    assert not script_errors(console), "\n".join(console)
    assert Dom(dom).charts == {}
