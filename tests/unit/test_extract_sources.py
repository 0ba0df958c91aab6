"""Unit tests of source settings: connection base URLs, windows, request parameters (no network)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from crm_warehouse.sources import phone_system, social_x, web_forms
from crm_warehouse.sources.base import ConnInfo, StreamContext, base_url_of, iso
from crm_warehouse.sources.registry import SOURCES
from crm_warehouse.sources.runner import _check_window

WS = datetime(2026, 9, 2, 10, tzinfo=UTC)
WE = datetime(2026, 9, 2, 11, tzinfo=UTC)


def ctx(extra: dict, cursor: dict | None = None, ws=WS, we=WE) -> StreamContext:
    conn = ConnInfo("c", "http://h", "AC1", "secret", extra)
    return StreamContext("s", "t", conn, None, ws, we, cursor or {}, None, None)  # type: ignore[arg-type]


def test_registry_lists_every_source_and_stream_in_order():
    assert {n: s.streams for n, s in SOURCES.items()} == {
        "phone_system": ["calls", "dispositions"], "survey_vendor": ["responses"], "web_forms": ["responses"],
        "social_x": ["mentions", "users"], "social_facebook": ["posts", "comments"],
        "social_linkedin": ["posts", "comments"]}


@pytest.mark.parametrize(("host", "schema", "port", "url"), [
    ("http://127.0.0.1:8080/", None, None, "http://127.0.0.1:8080"),
    ("api.twilio.com", None, None, "https://api.twilio.com"),
    ("127.0.0.1", "http", 9000, "http://127.0.0.1:9000"),
])
def test_base_url_rule(host, schema, port, url):
    assert base_url_of(host, schema, port) == url


def test_base_url_requires_a_host():
    with pytest.raises(ValueError, match="no host"):
        base_url_of("", None, None)


def test_secrets_stay_out_of_repr():
    assert "secret" not in repr(ConnInfo("c", "http://h", "AC1", "secret", {}))


def test_windows_must_be_aware_and_non_empty():
    with pytest.raises(ValueError, match="timezone-aware"):
        _check_window(datetime(2026, 9, 1), WE)
    with pytest.raises(ValueError, match="Empty window"):
        _check_window(WE, WS)
    _check_window(WS, WE)


def test_iso_is_utc_with_z():
    assert iso(datetime(2026, 9, 1, 12, tzinfo=UTC)) == "2026-09-01T12:00:00Z"
    assert iso(datetime(2026, 9, 1, 14, tzinfo=UTC).astimezone(__import__("zoneinfo").ZoneInfo("Europe/Paris"))) \
        == "2026-09-01T14:00:00Z"


def test_twilio_days_cover_the_window_and_the_lookback():
    params = phone_system.calls_params(ctx({"lookback_days": 1, "page_size": 5000}))
    assert params == {"StartTime>": "2026-09-01", "StartTime<": "2026-09-02", "PageSize": 1000}
    midnight = phone_system.calls_params(ctx({"lookback_days": 0}, ws=WS, we=datetime(2026, 9, 3, tzinfo=UTC)))
    assert midnight["StartTime<"] == "2026-09-02"  # half-open: the end instant's day is not asked for


def test_x_uses_since_id_forward_and_time_bounds_for_backfills():
    first = social_x.mentions_params(ctx({}))
    assert first["start_time"] == "2026-09-02T10:00:00Z" and "since_id" not in first
    forward = social_x.mentions_params(ctx({}, {"since_id": "99", "last_window": [iso(WS - timedelta(hours=1)),
                                                                                  iso(WS)]}))
    assert forward["since_id"] == "99" and "start_time" not in forward and forward["end_time"] == iso(WE)
    backfill = social_x.mentions_params(ctx({}, {"since_id": "99", "last_window": [iso(WE), iso(WE + timedelta(1))]}))
    assert "since_id" not in backfill and backfill["start_time"] == iso(WS)


def test_typeform_client_sends_a_bearer_token():
    client = web_forms.make_client(ConnInfo("web_forms", "http://h", None, "tok", {}), None)
    assert client.headers["Authorization"] == "Bearer tok"
    with pytest.raises(ValueError, match="'web_forms'"):
        web_forms.make_client(ConnInfo("web_forms", "http://h", None, None, {}), None)
