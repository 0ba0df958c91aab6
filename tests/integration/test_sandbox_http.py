"""Each sandbox vendor over real HTTP on loopback: credentials, paging to the end, clock, faults."""

from __future__ import annotations

import json
import sqlite3
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime

import pytest
import requests

from sandbox import world as W
from sandbox.serve import Sandbox


@pytest.fixture(scope="module")
def sb(tmp_path_factory):
    d = tmp_path_factory.mktemp("sbworld")
    W.generate(d, seed=3, customers=400, days=10)
    sandbox = Sandbox(d, sftp=False).start()
    yield sandbox
    sandbox.stop()


@pytest.fixture(autouse=True)
def _reset(sb):
    sb.clear_faults()
    sb.set_clock(sb.end_ts)
    yield
    sb.clear_faults()


def _db(sb) -> sqlite3.Connection:
    return sqlite3.connect(sb.db_path)


# ------------------------------------------------------------------ connections

def test_connections_follow_the_contract(sb):
    c = sb.connections
    assert set(c) >= {"phone_system", "survey_vendor", "web_forms", "social_x", "social_facebook",
                      "social_linkedin"}
    ps = c["phone_system"]
    assert ps["conn_type"] == "http" and ps["host"].startswith("http://127.0.0.1:")
    assert ps["login"].startswith("AC") and ps["extra"]["account_sid"] == ps["login"]
    assert c["web_forms"]["extra"]["form_ids"] == ["cNtAcT01", "cMpLnT01", "fEeDbK01", "cAlLbK01"]
    assert c["social_linkedin"]["extra"]["organization_urn"].startswith("urn:li:organization:")
    assert c["social_facebook"]["extra"]["api_version"].startswith("v")
    ports = {v["host"] for v in c.values()}
    assert len(ports) == len(c), "one port per vendor"


def test_admin_port_controls_clock_and_faults(sb):
    admin = sb.url("admin")
    info = requests.get(admin + "/", timeout=5).json()
    assert info["connections"]["phone_system"]["login"] == sb.connections["phone_system"]["login"]
    r = requests.post(admin + "/clock", json={"clock": "2026-09-03T00:00:00Z"}, timeout=5)
    assert r.status_code == 200 and sb.clock == datetime(2026, 9, 3, tzinfo=UTC)
    r = requests.post(admin + "/faults", json={"endpoint": "twilio.calls", "fault": "503", "count": 1}, timeout=5)
    assert r.json()["twilio.calls"][0]["fault"] == "503"
    assert requests.post(admin + "/faults", json={"endpoint": "nope", "fault": "503"}, timeout=5).status_code == 400
    _calls(sb, expect=503)
    assert requests.post(admin + "/faults/clear", timeout=5).status_code == 200


# ------------------------------------------------------------------ Twilio

def _calls(sb, params=None, auth=None, expect=200, path_sid=None):
    ps = sb.connections["phone_system"]
    sid = path_sid or ps["login"]
    r = requests.get(f"{ps['host']}/2010-04-01/Accounts/{sid}/Calls.json", params=params or {},
                     auth=auth if auth is not None else (ps["login"], ps["password"]), timeout=10)
    assert r.status_code == expect, r.text[:300]
    return r


def test_twilio_rejects_bad_credentials_the_twilio_way(sb):
    ps = sb.connections["phone_system"]
    r = _calls(sb, auth=(ps["login"], "wrong"), expect=401)
    assert r.json()["code"] == 20003 and r.json()["status"] == 401
    r = requests.get(f"{ps['host']}/2010-04-01/Accounts/{ps['login']}/Calls.json", timeout=5)
    assert r.status_code == 401
    r = _calls(sb, path_sid="AC" + "0" * 32, expect=404)
    assert r.json()["code"] == 20404


def _walk_calls(sb, params):
    ps = sb.connections["phone_system"]
    r = _calls(sb, params)
    page = r.json()
    out = list(page["calls"])
    pages = 1
    while page["next_page_uri"]:
        assert "PageToken=" in page["next_page_uri"]
        page = requests.get(ps["host"] + page["next_page_uri"], auth=(ps["login"], ps["password"]),
                            timeout=10).json()
        out += page["calls"]
        pages += 1
    return out, pages


def test_twilio_pages_to_the_end_of_a_day_window(sb):
    calls, pages = _walk_calls(sb, {"StartTime>": "2026-09-02", "StartTime<": "2026-09-03", "PageSize": 10})
    with _db(sb) as db:
        expected = {r[0] for r in db.execute(
            "select key from s_calls where start_day between '2026-09-02' and '2026-09-03'")}
    assert pages > 2
    assert {c["sid"] for c in calls} == expected
    assert len(calls) == len(expected)
    days = {parsedate_to_datetime(c["start_time"]).date().isoformat() for c in calls}
    assert days == {"2026-09-02", "2026-09-03"}


def test_twilio_serves_only_what_the_clock_allows(sb):
    sb.set_clock(datetime(2026, 9, 4, 12, tzinfo=UTC))
    calls, _ = _walk_calls(sb, {"StartTime>": "2026-09-04", "PageSize": 1000})
    assert calls
    limit = datetime(2026, 9, 4, 12, tzinfo=UTC)
    assert all(parsedate_to_datetime(c["end_time"]) <= limit for c in calls)
    sb.set_clock(datetime(2026, 9, 5, tzinfo=UTC))
    later, _ = _walk_calls(sb, {"StartTime>": "2026-09-04", "PageSize": 1000})
    assert len(later) > len(calls)


def test_dispositions_window_is_half_open_and_pages(sb):
    ps = sb.connections["phone_system"]
    url = f"{ps['host']}/v1/Accounts/{ps['login']}/Dispositions.json"
    params = {"WrappedAfter": "2026-09-02T00:00:00Z", "WrappedBefore": "2026-09-03T00:00:00Z", "PageSize": 5}
    page = requests.get(url, params=params, auth=(ps["login"], ps["password"]), timeout=10).json()
    got = list(page["dispositions"])
    while page["meta"]["next_page_url"]:
        assert page["meta"]["next_page_url"].startswith("http://127.0.0.1:")
        page = requests.get(page["meta"]["next_page_url"], auth=(ps["login"], ps["password"]), timeout=10).json()
        got += page["dispositions"]
    lo, hi = "2026-09-02T00:00:00Z", "2026-09-03T00:00:00Z"
    assert got and all(lo <= d["wrapped_at"] < hi for d in got)
    with _db(sb) as db:
        n = db.execute("select count(*) from s_dispositions where wrapped_at >= ? and wrapped_at < ?",
                       (1788307200, 1788393600)).fetchone()[0]
    assert len({d["disposition_id"] for d in got}) == len(got) == n
    codes = {d["code"] for d in got}
    assert "inquiry" in codes
    r = requests.get(url, params=params, auth=(ps["login"], "bad"), timeout=10)
    assert r.status_code == 401


# ------------------------------------------------------------------ Typeform

def _tf(sb, form="cMpLnT01", params=None, token=None, expect=200):
    wf = sb.connections["web_forms"]
    r = requests.get(f"{wf['host']}/forms/{form}/responses", params=params or {},
                     headers={"Authorization": f"Bearer {token or wf['password']}"}, timeout=10)
    assert r.status_code == expect, r.text[:300]
    return r


def test_typeform_credentials(sb):
    wf = sb.connections["web_forms"]
    r = requests.get(f"{wf['host']}/forms/cMpLnT01/responses", timeout=5)
    assert r.status_code == 401 and "code" in r.json()
    assert _tf(sb, token="nope", expect=403).json()["code"] == "AUTHENTICATION_FAILED"
    assert _tf(sb, form="zzz", expect=404).json()["code"] == "FORM_NOT_FOUND"


def test_typeform_pages_with_before_tokens_to_the_end(sb):
    for form in ("cNtAcT01", "cMpLnT01"):
        params = {"page_size": 7, "response_type": "completed,partial"}
        page = _tf(sb, form, params).json()
        total = page["total_items"]
        seen = list(page["items"])
        while page["items"]:
            page = _tf(sb, form, {**params, "before": page["items"][-1]["token"]}).json()
            seen += page["items"]
        with _db(sb) as db:
            n = db.execute("select count(*) from s_form_responses where form_id = ?", (form,)).fetchone()[0]
        assert len(seen) == len({i["token"] for i in seen}) == total == n
        assert any(i["response_type"] == "partial" for i in seen) or form == "cNtAcT01"


def test_typeform_default_is_completed_and_partials_may_have_no_answers(sb):
    default = _tf(sb, params={"page_size": 1000}).json()["items"]
    assert default and all("submitted_at" in i for i in default)
    partial = _tf(sb, params={"page_size": 1000, "completed": "false"}).json()["items"]
    assert partial and all(i["response_type"] == "partial" and "submitted_at" not in i for i in partial)
    for item in default[:50]:
        for a in item["answers"] or []:
            assert a["type"] in a and {"id", "type", "ref"} <= set(a["field"])


def test_typeform_since_until_and_after(sb):
    items = _tf(sb, "cNtAcT01", params={"page_size": 1000, "since": "2026-09-03T00:00:00Z",
                            "until": "2026-09-07T00:00:00"}).json()["items"]
    assert len(items) > 1
    assert all("2026-09-03T00:00:00Z" <= i["submitted_at"] <= "2026-09-07T00:00:00Z" for i in items)
    oldest = items[-1]["token"]
    newer = _tf(sb, "cNtAcT01", params={"page_size": 1000, "after": oldest,
                                         "until": "2026-09-07T00:00:00Z"}).json()["items"]
    assert len(newer) == len(items) - 1
    assert _tf(sb, params={"page_size": 5000}, expect=400).json()["code"] == "VALIDATION_ERROR"


def test_typeform_clock(sb):
    sb.set_clock(datetime(2026, 9, 2, tzinfo=UTC))
    items = _tf(sb, params={"page_size": 1000}).json()["items"]
    assert all(i["submitted_at"] <= "2026-09-02T00:00:00Z" for i in items)


def test_typeform_totals_are_the_listings_at_every_clock(sb):
    """Totals are remembered per listing (counting a window again for every page was quadratic); the clock and
    the filters are part of what is remembered, so a total is never another listing's."""
    params = {"page_size": 1000, "response_type": "completed,partial"}
    with _db(sb) as db:
        for clock in (datetime(2026, 9, 4, tzinfo=UTC), sb.end_ts, datetime(2026, 9, 4, tzinfo=UTC)):
            sb.set_clock(clock)
            for form, extra in (("cNtAcT01", {}), ("cNtAcT01", {"since": "2026-09-03T00:00:00Z"}),
                                ("cMpLnT01", {})):
                page = _tf(sb, form, {**params, **extra}).json()
                since = int(datetime(2026, 9, 3, tzinfo=UTC).timestamp()) if extra else 0
                n = db.execute("select count(*) from s_form_responses where form_id = ? and available_at <= ?"
                               " and ts <= ? and ts >= ?", (form, sb.clock_ts, sb.clock_ts, since)).fetchone()[0]
                assert page["total_items"] == len(page["items"]) == n > 0, (clock, form, extra)


# ------------------------------------------------------------------ faults (Twilio as the carrier)

def test_fault_429_carries_retry_after_and_then_recovers(sb):
    sb.inject("twilio.calls", "429", count=2)
    for _ in range(2):
        r = _calls(sb, {"PageSize": 5}, expect=429)
        assert r.headers["Retry-After"] == "1" and r.json()["code"] == 20429
    _calls(sb, {"PageSize": 5})


def test_fault_500_and_503(sb):
    sb.inject("twilio.dispositions", "500")
    sb.inject("twilio.dispositions", "503")
    ps = sb.connections["phone_system"]
    url = f"{ps['host']}/v1/Accounts/{ps['login']}/Dispositions.json"
    codes = [requests.get(url, auth=(ps["login"], ps["password"]), timeout=5).status_code for _ in range(3)]
    assert codes == [500, 503, 200]


def test_fault_slow_trips_a_client_timeout(sb):
    sb.inject("typeform.responses", "slow", seconds=1.5)
    wf = sb.connections["web_forms"]
    with pytest.raises(requests.Timeout):
        requests.get(f"{wf['host']}/forms/cMpLnT01/responses",
                     headers={"Authorization": f"Bearer {wf['password']}"}, timeout=0.5)
    _tf(sb)


def test_fault_drop_closes_mid_body(sb):
    sb.inject("twilio.calls", "drop")
    ps = sb.connections["phone_system"]
    with pytest.raises(requests.exceptions.RequestException):
        r = requests.get(f"{ps['host']}/2010-04-01/Accounts/{ps['login']}/Calls.json",
                         auth=(ps["login"], ps["password"]), params={"PageSize": 200}, timeout=5)
        r.json()
    _calls(sb)


def test_fault_malformed_is_invalid_json(sb):
    sb.inject("typeform.responses", "malformed")
    r = _tf(sb)
    with pytest.raises(ValueError):
        json.loads(r.content)
    assert _tf(sb).json()["items"]


def test_fault_drift(sb):
    sb.inject("twilio.calls", "drift_new_field")
    calls = _calls(sb, {"PageSize": 5}).json()["calls"]
    assert all("sandbox_new_field" in c for c in calls)
    normal = _calls(sb, {"PageSize": 5}).json()["calls"][0]
    sb.inject("twilio.calls", "drift_missing_field")
    missing = _calls(sb, {"PageSize": 5}).json()["calls"][0]
    assert missing["sid"] == normal["sid"] and len(missing) == len(normal) - 1
    sb.inject("twilio.calls", "drift_type_change")
    changed = _calls(sb, {"PageSize": 5}).json()["calls"][0]
    assert any(isinstance(v, dict) and k != "subresource_uris" for k, v in changed.items())


def test_fault_repeat_repeats_records_across_pages(sb):
    params = {"StartTime>": "2026-09-02", "StartTime<": "2026-09-02", "PageSize": 5}
    clean, _ = _walk_calls(sb, params)
    sb.inject("twilio.calls", "repeat")
    repeated, _ = _walk_calls(sb, params)
    assert len(repeated) == len(clean) + 2
    assert {c["sid"] for c in repeated} == {c["sid"] for c in clean}


def test_fault_bad_auth_rejects_good_credentials_once(sb):
    sb.inject("typeform.responses", "bad_auth")
    assert _tf(sb, expect=401).json()["code"] == "UNAUTHORIZED"
    _tf(sb)


def test_inject_rejects_unknown_names(sb):
    with pytest.raises(ValueError, match="unknown sandbox endpoint"):
        sb.inject("twilio.nope", "500")
    with pytest.raises(ValueError, match="unknown fault"):
        sb.inject("twilio.calls", "explode")


def test_live_calls_are_in_progress_then_completed_then_priced(sb):
    with _db(sb) as db:
        sid, begin, ended, day = db.execute(
            "select key, start_ts, available_at, start_day from s_calls where available_at - start_ts > 300 "
            "and json_extract(payload, '$.price') is not null order by key limit 1").fetchone()

    def the_call():
        calls, _ = _walk_calls(sb, {"StartTime": day, "PageSize": 1000})
        return next((c for c in calls if c["sid"] == sid), None)

    sb.live_calls = True
    try:
        sb.set_clock(begin + 60)
        call = the_call()
        assert call["status"] == "in-progress" and call["duration"] is None and call["end_time"] is None
        sb.set_clock(ended + 60)
        call = the_call()
        assert call["status"] == "completed" and call["duration"].isdigit() and call["price"] is None
        sb.set_clock(ended + 3600)
        assert the_call()["price"].startswith("-")
    finally:
        sb.live_calls = False
    sb.set_clock(begin + 60)
    assert the_call() is None, "without live_calls a call appears only once it has ended"
