"""The insight report: one static HTML page a manager reads, built from the published marts.

    build_report(conn, out_dir, schema="marts") -> out_dir/index.html
    write_insight_report()                      the transform DAG's task after `publish`

The page opens with a written headline (complaints, share rectified, retention after a rectified
complaint versus after one that was not, best and worst channel by service quality), then four chart
groups, each with a title and a one-line reading:

1. complaints by channel and by category over time (fct_complaints);
2. time to resolution per channel, and where complaints stand (fct_complaints);
3. retention of rectified versus unrectified complainants per channel (fct_complaints);
4. service quality by channel: sigma level and DPMO (fct_service_quality_daily), CSAT and NPS
   (fct_survey_feedback).

Rules: read-only SQL on the published schema only (identifiers quoted, values bound); aggregates only,
never a name, phone number, email, handle or free text; the same marts give the same page (no clock
in it: the period comes from the data). plotly.js is written next to the page, so it works offline
and `crm docs` serves it as it is.
"""

from __future__ import annotations

import hashlib
import html
import logging
import os
from dataclasses import dataclass, field
from datetime import date
from decimal import Decimal
from pathlib import Path
from statistics import NormalDist
from typing import Any

import psycopg
from psycopg import sql

log = logging.getLogger(__name__)

PLOTLY_JS = "plotly.min.js"
MIN_OPPORTUNITIES = 30  # a channel needs this many opportunities to be named best or worst (if any has)
CHANNEL_LABELS = {
    "phone": "Phone",
    "call_center": "Call center",
    "survey": "Surveys",
    "web_form": "Web forms",
    "x": "X",
    "facebook": "Facebook",
    "linkedin": "LinkedIn",
}
CHANNEL_COLORS = {
    "phone": "#1f77b4",
    "call_center": "#17becf",
    "survey": "#9467bd",
    "web_form": "#8c564b",
    "x": "#111111",
    "facebook": "#ff7f0e",
    "linkedin": "#bcbd22",
}
STATUS_LABELS = {"open": "Open", "responded": "Responded", "rectified": "Rectified",
                 "closed_unrectified": "Closed, not rectified"}
STATUS_COLORS = {"open": "#d62728", "responded": "#ff7f0e", "rectified": "#2ca02c",
                 "closed_unrectified": "#7f7f7f"}
RECTIFIED_COLOR, UNRECTIFIED_COLOR = "#2ca02c", "#d62728"
REQUIRED_MARTS = ("fct_complaints", "fct_service_quality_daily", "fct_survey_feedback")


# ------------------------------------------------------------------------------------------ queries
# Every query reads one published mart, named by {t}; values are bound. No personal column is selected.
Q_HEADLINE = """
    select
        count(*) as complaints,
        count(*) filter (where is_rectified) as rectified,
        count(*) filter (where is_rectified and is_retained_afterwards) as rectified_retained,
        count(*) filter (where not is_rectified) as unrectified,
        count(*) filter (where not is_rectified and is_retained_afterwards) as unrectified_retained,
        count(distinct customer_id) as complainants,
        (min(opened_at) at time zone 'UTC')::date as first_day,
        (max(opened_at) at time zone 'UTC')::date as last_day,
        percentile_cont(0.5) within group (order by hours_to_resolution) as median_hours_to_resolution,
        percentile_cont(0.5) within group (order by hours_to_first_response) as median_hours_to_first_response
    from {t}
"""
Q_BY_CHANNEL_OVER_TIME = """
    select date_trunc(%(grain)s, opened_at at time zone 'UTC')::date as period, channel, count(*)
    from {t}
    group by 1, 2
    order by 1, 2
"""
Q_BY_CATEGORY_OVER_TIME = """
    select date_trunc(%(grain)s, opened_at at time zone 'UTC')::date as period,
           coalesce(problem_category, 'unknown') as category, count(*)
    from {t}
    group by 1, 2
    order by 1, 2
"""
Q_RESOLUTION = """
    select
        channel,
        count(hours_to_resolution) as resolved,
        percentile_cont(array[0.05, 0.25, 0.5, 0.75, 0.95]::float8[])
            within group (order by hours_to_resolution) as hours_to_resolution,
        percentile_cont(0.5) within group (order by hours_to_first_response) as median_hours_to_first_response
    from {t}
    group by 1
    order by 1
"""
Q_STATUS = """
    select channel, complaint_status, count(*)
    from {t}
    group by 1, 2
    order by 1, 2
"""
Q_RETENTION = """
    select
        channel,
        count(*) filter (where is_rectified) as rectified,
        count(*) filter (where is_rectified and is_retained_afterwards) as rectified_retained,
        count(*) filter (where not is_rectified) as unrectified,
        count(*) filter (where not is_rectified and is_retained_afterwards) as unrectified_retained
    from {t}
    group by 1
    order by 1
"""
Q_SIGMA = """
    select channel, sum(opportunities_count) as opportunities, sum(complaints_count) as complaints,
           sum(interactions_count) as interactions, max(service_date) as last_day
    from {t}
    group by 1
    order by 1
"""
Q_SURVEYS = """
    select
        attributed_channel as channel,
        count(csat_score) as csat_responses,
        avg(csat_score) as csat_avg,
        count(nps_score) as nps_responses,
        100.0 * (count(*) filter (where nps_category = 'promoter') - count(*) filter (where nps_category = 'detractor'))
            / nullif(count(nps_score), 0) as nps
    from {t}
    group by 1
    order by 1
"""


def _num(value: Any) -> Any:
    return float(value) if isinstance(value, Decimal) else value


def _rows(conn: psycopg.Connection, query: str, schema: str, table: str, params: dict | None = None) -> list[dict]:
    stmt = sql.SQL(query).format(t=sql.Identifier(schema, table))
    cur = conn.execute(stmt, params or {})
    names = [d.name for d in cur.description]
    return [{n: _num(v) for n, v in zip(names, row, strict=True)} for row in cur.fetchall()]


def _existing(conn: psycopg.Connection, schema: str) -> set[str]:
    rows = conn.execute(
        "select c.relname from pg_class c join pg_namespace n on n.oid = c.relnamespace "
        "where n.nspname = %s and c.relkind in ('r', 'p', 'v', 'm')", (schema,)).fetchall()
    return {r[0] for r in rows}


# ------------------------------------------------------------------------------------------ figures
def sigma_level(complaints: int, opportunities: int) -> float | None:
    """Six Sigma level as the mart computes it: Phi^-1(1 - DPMO/10^6) + 1.5, clamped to [0, 6]."""
    if not opportunities:
        return None
    if not complaints:
        return 6.0
    level = NormalDist().inv_cdf(max(1e-9, 1 - complaints / opportunities)) + 1.5
    return round(max(0.0, min(6.0, level)), 2)


def pct(part: float, whole: float) -> float | None:
    return round(100.0 * part / whole, 1) if whole else None


def _label(channel: str) -> str:
    return CHANNEL_LABELS.get(channel, channel)


def _fmt_pct(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.1f}%"


def _fmt_hours(value: float | None) -> str:
    if value is None:
        return "n/a"
    return f"{value:.1f} h" if value < 48 else f"{value / 24:.1f} days"


@dataclass
class Section:
    anchor: str
    title: str
    reading: str
    figures: list[Any] = field(default_factory=list)  # plotly figures; none: the section says why


@dataclass
class Report:
    schema: str
    headline: dict[str, Any]
    sections: list[Section]

    @property
    def has_data(self) -> bool:
        return bool(self.headline.get("complaints"))


def _layout(fig, title: str, *, y_title: str = "", barmode: str | None = None, height: int = 380):
    fig.update_layout(title={"text": title, "x": 0, "font": {"size": 15}}, template="plotly_white",
                      height=height, margin={"l": 60, "r": 20, "t": 50, "b": 50},
                      legend={"orientation": "h", "y": -0.18}, yaxis_title=y_title)
    if barmode:
        fig.update_layout(barmode=barmode)
    return fig


def _grain(first: date | None, last: date | None) -> str:
    """Days for up to two months of data, weeks beyond."""
    return "day" if first and last and (last - first).days <= 62 else "week"


def _complaints_over_time(conn, schema: str, headline: dict) -> Section:
    import plotly.graph_objects as go

    grain = _grain(headline["first_day"], headline["last_day"])
    by_channel = _rows(conn, Q_BY_CHANNEL_OVER_TIME, schema, "fct_complaints", {"grain": grain})
    by_category = _rows(conn, Q_BY_CATEGORY_OVER_TIME, schema, "fct_complaints", {"grain": grain})
    section = Section("complaints", "Complaints by channel and category over time", "")
    if not by_channel:
        section.reading = "No complaints in the published marts yet."
        return section
    per = "day" if grain == "day" else "week"

    fig = go.Figure()
    totals: dict[str, int] = {}
    for channel in sorted({r["channel"] for r in by_channel}):
        rows = [r for r in by_channel if r["channel"] == channel]
        totals[channel] = sum(r["count"] for r in rows)
        fig.add_bar(x=[r["period"].isoformat() for r in rows], y=[r["count"] for r in rows], name=_label(channel),
                    marker_color=CHANNEL_COLORS.get(channel))
    section.figures.append(_layout(fig, f"Complaints per {per}, by channel", y_title="complaints",
                                   barmode="stack"))

    fig = go.Figure()
    categories: dict[str, int] = {}
    for category in sorted({r["category"] for r in by_category}):
        rows = [r for r in by_category if r["category"] == category]
        categories[category] = sum(r["count"] for r in rows)
        fig.add_bar(x=[r["period"].isoformat() for r in rows], y=[r["count"] for r in rows], name=category)
    section.figures.append(_layout(fig, f"Complaints per {per}, by problem category", y_title="complaints",
                                   barmode="stack"))

    total = sum(totals.values())
    top_channel = max(totals, key=lambda c: (totals[c], c))
    top_category = max(categories, key=lambda c: (categories[c], c))
    section.reading = (f"{_label(top_channel)} brings the most complaints ({pct(totals[top_channel], total):.0f}% "
                       f"of {total:,}); the most common problem is {top_category} "
                       f"({pct(categories[top_category], total):.0f}%).")
    return section


def _time_to_resolution(conn, schema: str, headline: dict) -> Section:
    import plotly.graph_objects as go

    rows = _rows(conn, Q_RESOLUTION, schema, "fct_complaints")
    status = _rows(conn, Q_STATUS, schema, "fct_complaints")
    section = Section("resolution", "Time to resolution", "")
    resolved = [r for r in rows if r["resolved"]]
    if resolved:
        quantiles = [r["hours_to_resolution"] for r in resolved]
        fig = go.Figure(go.Box(
            x=[_label(r["channel"]) for r in resolved],
            lowerfence=[q[0] for q in quantiles], q1=[q[1] for q in quantiles], median=[q[2] for q in quantiles],
            q3=[q[3] for q in quantiles], upperfence=[q[4] for q in quantiles],
            marker_color="#1f77b4", name="hours to resolution", hoverinfo="x+y",
        ))
        section.figures.append(_layout(fig, "Hours from complaint to resolution, per channel "
                                       "(box: middle half; whiskers: 5th to 95th percentile)",
                                       y_title="hours"))
    if status:
        fig = go.Figure()
        channels = sorted({r["channel"] for r in status})
        totals = {c: sum(r["count"] for r in status if r["channel"] == c) for c in channels}
        for state in STATUS_LABELS:
            counts = {r["channel"]: r["count"] for r in status if r["complaint_status"] == state}
            fig.add_bar(x=[_label(c) for c in channels], y=[pct(counts.get(c, 0), totals[c]) for c in channels],
                        name=STATUS_LABELS[state], marker_color=STATUS_COLORS[state])
        section.figures.append(_layout(fig, "Where complaints stand, per channel (% of the channel's complaints)",
                                       y_title="% of complaints", barmode="stack"))
    if not resolved:
        section.reading = "No complaint has been resolved yet."
        return section
    slowest = max(resolved, key=lambda r: (r["hours_to_resolution"][2], r["channel"]))
    fastest = min(resolved, key=lambda r: (r["hours_to_resolution"][2], r["channel"]))
    section.reading = (f"Half of the resolved complaints are closed within "
                       f"{_fmt_hours(headline['median_hours_to_resolution'])} (first response: "
                       f"{_fmt_hours(headline['median_hours_to_first_response'])}); {_label(fastest['channel'])} "
                       f"is the fastest ({_fmt_hours(fastest['hours_to_resolution'][2])}), "
                       f"{_label(slowest['channel'])} the slowest ({_fmt_hours(slowest['hours_to_resolution'][2])}).")
    return section


def _retention(conn, schema: str, headline: dict) -> Section:
    import plotly.graph_objects as go

    rows = _rows(conn, Q_RETENTION, schema, "fct_complaints")
    section = Section("retention", "Retention of rectified versus unrectified complainants", "")
    if not rows:
        section.reading = "No complaints in the published marts yet."
        return section
    everything = {"channel": "all", **{k: sum(r[k] for r in rows) for k in rows[0] if k != "channel"}}
    groups = [everything, *rows]
    names = ["All channels", *[_label(r["channel"]) for r in rows]]
    fig = go.Figure()
    for kind, label, color in (("rectified", "Rectified", RECTIFIED_COLOR),
                               ("unrectified", "Not rectified", UNRECTIFIED_COLOR)):
        values = [pct(g[f"{kind}_retained"], g[kind]) for g in groups]
        fig.add_bar(x=names, y=values, name=label, marker_color=color,
                    text=[f"{v:.0f}%<br>n={g[kind]:,}" if v is not None else "" for v, g in zip(values, groups,
                                                                                                 strict=True)],
                    textposition="outside")
    _layout(fig, "Customers who stayed after their complaint (% of complaints, n = complaints)",
            y_title="% retained", barmode="group", height=420)
    fig.update_yaxes(range=[0, 115])
    section.figures.append(fig)
    gap = headline["retention_gap_points"]
    if gap is None:
        section.reading = ("Retention can be compared once complaints have been both rectified and not: "
                           f"{_fmt_pct(headline['retention_rectified_pct'])} stayed after a rectified complaint, "
                           f"{_fmt_pct(headline['retention_unrectified_pct'])} after one that was not.")
    else:
        section.reading = (f"Customers stayed after {_fmt_pct(headline['retention_rectified_pct'])} of rectified "
                           f"complaints against {_fmt_pct(headline['retention_unrectified_pct'])} of the others: "
                           f"rectifying is worth {gap:+.1f} points of retention.")
    return section


def _service_quality(conn, schema: str, channels: list[dict]) -> Section:
    import plotly.graph_objects as go
    from plotly.subplots import make_subplots

    surveys = _rows(conn, Q_SURVEYS, schema, "fct_survey_feedback")
    section = Section("service-quality", "Service quality by channel", "")
    measured = [c for c in channels if c["opportunities"]]
    if measured:
        fig = go.Figure(go.Bar(
            x=[_label(c["channel"]) for c in measured], y=[c["sigma"] for c in measured],
            marker_color=[CHANNEL_COLORS.get(c["channel"]) for c in measured],
            text=[f"σ {c['sigma']:.2f}<br>{c['dpmo']:,.0f} DPMO" for c in measured], textposition="outside",
            name="sigma level",
        ))
        _layout(fig, "Six Sigma level per channel over the period (complaints are the defects, inbound "
                "touchpoints the opportunities)", y_title="sigma level", height=420)
        fig.update_yaxes(range=[0, 6.9])
        section.figures.append(fig)
    rated = [s for s in surveys if s["csat_responses"] or s["nps_responses"]]
    if rated:
        fig = make_subplots(rows=1, cols=2, subplot_titles=("CSAT (1 to 5)", "NPS (-100 to 100)"))
        fig.add_bar(x=[_label(s["channel"]) for s in rated], y=[s["csat_avg"] for s in rated], name="CSAT",
                    marker_color="#2ca02c", text=[f"{s['csat_avg']:.2f}" if s["csat_avg"] is not None else ""
                                                  for s in rated], textposition="outside", row=1, col=1)
        fig.add_bar(x=[_label(s["channel"]) for s in rated], y=[s["nps"] for s in rated], name="NPS",
                    marker_color="#9467bd", text=[f"{s['nps']:.0f}" if s["nps"] is not None else ""
                                                  for s in rated], textposition="outside", row=1, col=2)
        _layout(fig, "Survey ratings of the service each channel gave", height=400)
        fig.update_yaxes(range=[0, 5.6], row=1, col=1)
        fig.update_yaxes(range=[-110, 110], row=1, col=2)
        fig.update_layout(showlegend=False)
        section.figures.append(fig)
    if not measured:
        section.reading = "No touchpoints in the published marts yet."
        return section
    best, worst = _best_and_worst(channels)
    csat = {s["channel"]: s["csat_avg"] for s in rated}
    section.reading = (f"{_label(best['channel'])} gives the best service ({best['dpmo']:,.0f} complaints per "
                       f"million opportunities, sigma {best['sigma']:.2f}) and {_label(worst['channel'])} the "
                       f"worst ({worst['dpmo']:,.0f}, sigma {worst['sigma']:.2f})"
                       + (f"; surveys rate {_label(worst['channel'])} {csat[worst['channel']]:.2f} of 5."
                          if csat.get(worst["channel"]) is not None else "."))
    return section


def _channel_quality(conn, schema: str) -> list[dict]:
    out = []
    for r in _rows(conn, Q_SIGMA, schema, "fct_service_quality_daily"):
        opp, comp = int(r["opportunities"] or 0), int(r["complaints"] or 0)
        out.append({"channel": r["channel"], "opportunities": opp, "complaints": comp,
                    "dpmo": 1e6 * comp / opp if opp else None, "sigma": sigma_level(comp, opp),
                    "last_day": r["last_day"]})
    return out


def _best_and_worst(channels: list[dict]) -> tuple[dict, dict]:
    """Best and worst channel by DPMO (the sigma level follows it), among channels with at least
    MIN_OPPORTUNITIES opportunities when any has that many; ties go to the channel name."""
    measured = [c for c in channels if c["opportunities"]]
    enough = [c for c in measured if c["opportunities"] >= MIN_OPPORTUNITIES] or measured
    ranked = sorted(enough, key=lambda c: (c["complaints"] / c["opportunities"], c["channel"]))
    return ranked[0], ranked[-1]


def collect(conn: psycopg.Connection, schema: str = "marts") -> Report:
    """Query the published marts (read only) into the numbers and figures of the report."""
    missing = [m for m in REQUIRED_MARTS if m not in _existing(conn, schema)]
    if missing:
        return Report(schema, {"complaints": 0, "missing": missing}, [])
    (head,) = _rows(conn, Q_HEADLINE, schema, "fct_complaints")
    channels = _channel_quality(conn, schema)
    headline = dict(head)
    headline["rectified_pct"] = pct(head["rectified"], head["complaints"])
    headline["retention_rectified_pct"] = pct(head["rectified_retained"], head["rectified"])
    headline["retention_unrectified_pct"] = pct(head["unrectified_retained"], head["unrectified"])
    both = headline["retention_rectified_pct"] is not None and headline["retention_unrectified_pct"] is not None
    headline["retention_gap_points"] = (round(headline["retention_rectified_pct"]
                                              - headline["retention_unrectified_pct"], 1) if both else None)
    if any(c["opportunities"] for c in channels):
        best, worst = _best_and_worst(channels)
        headline.update(best_channel=best["channel"], best_sigma=best["sigma"], best_dpmo=best["dpmo"],
                        worst_channel=worst["channel"], worst_sigma=worst["sigma"], worst_dpmo=worst["dpmo"])
    if not head["complaints"]:
        return Report(schema, headline, [])
    sections = [
        _complaints_over_time(conn, schema, headline),
        _time_to_resolution(conn, schema, headline),
        _retention(conn, schema, headline),
        _service_quality(conn, schema, channels),
    ]
    return Report(schema, headline, sections)


# ------------------------------------------------------------------------------------------- render
CSS = """
body { font-family: -apple-system, "Segoe UI", Roboto, Helvetica, Arial, sans-serif; margin: 0; color: #222;
       background: #f6f7f9; }
header, main, footer { max-width: 1100px; margin: 0 auto; padding: 0 24px; }
header { padding-top: 28px; }
h1 { font-size: 26px; margin: 0 0 4px; }
.period { color: #666; margin: 0 0 16px; }
.summary { background: #fff; border-left: 4px solid #1f77b4; padding: 14px 18px; font-size: 17px;
           line-height: 1.5; }
.kpis { display: grid; grid-template-columns: repeat(auto-fit, minmax(170px, 1fr)); gap: 12px; margin: 16px 0 0;
        padding: 0; }
.kpis div { background: #fff; padding: 12px 14px; border-radius: 6px; }
.kpis dt { color: #666; font-size: 13px; }
.kpis dd { margin: 4px 0 0; font-size: 22px; font-weight: 600; }
section { background: #fff; margin: 22px 0; padding: 16px 18px 6px; border-radius: 6px; }
section h2 { font-size: 19px; margin: 0 0 4px; }
.reading { color: #333; margin: 0 0 8px; }
.empty { color: #666; font-style: italic; }
footer { color: #777; font-size: 13px; padding-bottom: 30px; }
"""


def _kpi(metric: str, label: str, value: Any, shown: str) -> str:
    raw = "" if value is None else str(value)
    return (f'<div><dt>{html.escape(label)}</dt><dd data-metric="{html.escape(metric)}" '
            f'data-value="{html.escape(raw)}">{html.escape(shown)}</dd></div>')


def _summary(h: dict) -> str:
    parts = [f"Customers made <b>{h['complaints']:,}</b> complaints; <b>{_fmt_pct(h['rectified_pct'])}</b> "
             "were rectified."]
    if h["retention_gap_points"] is not None:
        parts.append(f"Customers stayed after <b>{_fmt_pct(h['retention_rectified_pct'])}</b> of rectified "
                     f"complaints against <b>{_fmt_pct(h['retention_unrectified_pct'])}</b> of the others, "
                     f"a difference of <b>{h['retention_gap_points']:+.1f} points</b>.")
    if h.get("best_channel"):
        parts.append(f"Best service quality: <b>{html.escape(_label(h['best_channel']))}</b> "
                     f"(sigma {h['best_sigma']:.2f}); worst: <b>{html.escape(_label(h['worst_channel']))}</b> "
                     f"(sigma {h['worst_sigma']:.2f}).")
    return " ".join(parts)


def render(report: Report) -> str:
    """The page as HTML text (plotly.js is referenced as a file next to it)."""
    import plotly.io as pio

    h = report.headline
    title = "Customer complaints and service quality"
    if report.has_data:
        period = f"{h['first_day']:%d %b %Y} to {h['last_day']:%d %b %Y}"
        kpis = "".join([
            _kpi("complaints", "Complaints", h["complaints"], f"{h['complaints']:,}"),
            _kpi("rectified_pct", "Rectified", h["rectified_pct"], _fmt_pct(h["rectified_pct"])),
            _kpi("retention_rectified_pct", "Stayed after a rectified complaint", h["retention_rectified_pct"],
                 _fmt_pct(h["retention_rectified_pct"])),
            _kpi("retention_unrectified_pct", "Stayed after an unrectified one", h["retention_unrectified_pct"],
                 _fmt_pct(h["retention_unrectified_pct"])),
            _kpi("retention_gap_points", "Retention gap", h["retention_gap_points"],
                 "n/a" if h["retention_gap_points"] is None else f"{h['retention_gap_points']:+.1f} pts"),
            _kpi("best_channel", "Best channel (service quality)", h.get("best_channel"),
                 _label(h["best_channel"]) if h.get("best_channel") else "n/a"),
            _kpi("worst_channel", "Worst channel (service quality)", h.get("worst_channel"),
                 _label(h["worst_channel"]) if h.get("worst_channel") else "n/a"),
        ])
        top = (f'<p class="period">{html.escape(period)} · from the published marts (schema '
               f'<code>{html.escape(report.schema)}</code>)</p>'
               f'<p class="summary" id="summary">{_summary(h)}</p><dl class="kpis" id="headline">{kpis}</dl>')
    else:
        why = (f"the published schema <code>{html.escape(report.schema)}</code> has no "
               f"{', '.join(html.escape(m) for m in h['missing'])} yet" if h.get("missing")
               else "the published marts hold no complaints yet")
        top = (f'<p class="summary" id="no-data">No data yet: {why}. Run the pipeline (<code>make demo</code>, or '
               "the transform_warehouse DAG) and this page fills in after the next publish.</p>")
    config = {"displaylogo": False, "responsive": True}
    body = []
    for section in report.sections:
        charts = "".join(
            pio.to_html(fig, full_html=False, include_plotlyjs=False, config=config,
                        div_id=f"chart-{section.anchor}-{i}")
            for i, fig in enumerate(section.figures, start=1))
        charts = charts or '<p class="empty">Nothing to chart yet.</p>'
        body.append(f'<section id="{section.anchor}"><h2>{html.escape(section.title)}</h2>'
                    f'<p class="reading">{html.escape(section.reading)}</p>{charts}</section>')
    notes = ("Definitions: a complaint is rectified when the company explicitly fixed it; a customer stayed when "
             "they made no cancel request on or after the complaint. Service quality follows Six Sigma: every "
             "inbound touchpoint is an opportunity, every complaint a defect; DPMO = defects per million "
             f"opportunities, sigma = Φ⁻¹(1 − DPMO/10⁶) + 1.5. Best and worst channels are ranked by DPMO among "
             f"channels with at least {MIN_OPPORTUNITIES} opportunities. CSAT and NPS come from surveys, "
             "attributed to the channel of the contact they followed. Only aggregates are shown: no customer "
             "can be identified from this page.")
    return f"""<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{title}</title>
<style>{CSS}</style>
<script src="{PLOTLY_JS}"></script>
</head>
<body>
<header><h1>{title}</h1>{top}</header>
<main>
{chr(10).join(body)}
</main>
<footer><p>{html.escape(notes)}</p></footer>
</body>
</html>
"""


def _write(path: Path, data: bytes) -> None:
    """Write atomically (a reader never sees half a page); leave an identical file alone."""
    if path.exists() and path.stat().st_size == len(data) and \
            hashlib.sha256(path.read_bytes()).digest() == hashlib.sha256(data).digest():
        return
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_bytes(data)
    os.replace(tmp, path)


def _build(conn: psycopg.Connection, out_dir: Path, schema: str) -> tuple[Path, Report]:
    idle = conn.info.transaction_status == psycopg.pq.TransactionStatus.IDLE
    with conn.transaction():
        if idle:  # our own transaction: make it read only (inside a caller's transaction, just read)
            conn.execute("set transaction read only")
        report = collect(conn, schema)
    from plotly.offline import get_plotlyjs

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    _write(out_dir / PLOTLY_JS, get_plotlyjs().encode())
    page = out_dir / "index.html"
    _write(page, render(report).encode())
    log.info("insight report written to %s (%s complaints)", page, report.headline.get("complaints", 0))
    return page, report


def build_report(conn: psycopg.Connection, out_dir: Path, schema: str = "marts") -> Path:
    """Write `out_dir/index.html` (and plotly.min.js next to it) from the marts published in `schema`.

    Read only; marts that are missing or empty give a page that says there is no data yet."""
    return _build(conn, Path(out_dir), schema)[0]


def write_insight_report(*, warehouse_conn_id: str = "warehouse", marts_schema: str = "marts",
                         report_dir: str | Path | None = None, **_context: Any) -> dict[str, Any]:
    """Airflow task body, after `publish`: the report from the published marts into `<docs>/report/`.

    Returns a small summary (path and headline figures) for XCom."""
    from crm_warehouse.settings import docs_dir
    from crm_warehouse.warehouse import connect

    out_dir = Path(report_dir) if report_dir else docs_dir() / "report"
    with connect(warehouse_conn_id) as conn:
        page, report = _build(conn, out_dir, marts_schema)
    h = report.headline
    print(f"insight report published to {page}")
    return {"path": str(page), "complaints": h.get("complaints", 0), "rectified_pct": h.get("rectified_pct"),
            "retention_gap_points": h.get("retention_gap_points"), "best_channel": h.get("best_channel"),
            "worst_channel": h.get("worst_channel")}
