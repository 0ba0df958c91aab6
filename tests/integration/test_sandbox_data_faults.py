"""The sandbox's data faults over real HTTP: bad data served on every request until cleared (an out-of-range
score, a vanished field, a key served twice with two contents, a day with nothing), reconciled with the
world's own records; and their admin endpoints."""

from __future__ import annotations

import io
import json
import sqlite3
import time
import zipfile
from email.utils import parsedate_to_datetime

import pytest
import requests

from sandbox import world as W
from sandbox.serve import Sandbox


@pytest.fixture(scope="module")
def sb(tmp_path_factory):
    d = tmp_path_factory.mktemp("sbworld")
    W.generate(d, seed=5, customers=200, days=6)
    sandbox = Sandbox(d, sftp=False).start()
    yield sandbox
    sandbox.stop()


@pytest.fixture(autouse=True)
def _reset(sb):
    sb.clear_faults()
    yield
    sb.clear_faults()


def _world(sb, query: str, params=()) -> list:
    with sqlite3.connect(sb.db_path) as db:
        return db.execute(query, params).fetchall()


def _calls(sb) -> list[dict]:
    """Every call the phone system serves now, page after page."""
    conn = sb.connections["phone_system"]
    auth = (conn["login"], conn["password"])
    url = f"{conn['host']}/2010-04-01/Accounts/{conn['login']}/Calls.json?PageSize=100"
    calls = []
    while url:
        page = requests.get(url, auth=auth, timeout=10)
        assert page.status_code == 200, page.text
        body = page.json()
        calls += body["calls"]
        url = conn["host"] + body["next_page_uri"] if body["next_page_uri"] else None
    return calls


def _survey_export(sb) -> list[dict]:
    """One Qualtrics JSON export of every response: start, poll until complete, download the zip."""
    conn = sb.connections["survey_vendor"]
    headers = {"X-API-TOKEN": conn["password"]}
    base = f"{conn['host']}/API/v3/surveys/{conn['extra']['survey_ids'][0]}/export-responses"
    progress = requests.post(base, json={"format": "json"}, headers=headers, timeout=10).json()["result"]["progressId"]
    for _ in range(600):  # the file is prepared while the export is in progress
        result = requests.get(f"{base}/{progress}", headers=headers, timeout=10).json()["result"]
        if result["status"] == "complete":
            break
        time.sleep(0.05)
    data = requests.get(f"{base}/{result['fileId']}/file", headers=headers, timeout=10).content
    with zipfile.ZipFile(io.BytesIO(data)) as zf:
        return json.loads(zf.read(zf.namelist()[0]))["responses"]


def _day(call: dict) -> str:
    return parsedate_to_datetime(call["start_time"]).date().isoformat()


def test_out_of_range_score_on_chosen_responses_only(sb):
    clean = {r["responseId"]: r for r in _survey_export(sb)}
    assert len(clean) >= 5
    sb.inject_data("qualtrics.export", "set_field", field="values.QID1", value="9", every=2)
    served = _survey_export(sb)
    assert _survey_export(sb) == served, "the fault stays until cleared (every export serves it)"
    assert {r["responseId"] for r in served} == set(clean), "the same responses, only some values changed"
    nine = {r["responseId"] for r in served if r["values"].get("QID1") == "9"}
    assert nine == sb.data_faults.touched("qualtrics.export", "set_field")
    assert 0 < len(nine) < len(clean), "every=2 picks some responses, not all"
    for r in served:  # every other field of every response is what the world holds
        expected = clean[r["responseId"]]
        if r["responseId"] in nine:
            r["values"]["QID1"] = expected["values"].get("QID1")
            if "QID1" not in expected["values"]:
                del r["values"]["QID1"]
        assert r == expected
    sb.clear_faults()
    assert {r["responseId"]: r for r in _survey_export(sb)} == clean


def test_vanished_field_duplicated_key_and_a_day_without_calls(sb):
    world = {json.loads(p)["sid"]: json.loads(p) for (p,) in _world(sb, "select payload from s_calls")}
    clean = _calls(sb)
    assert {c["sid"] for c in clean} == set(world)
    days = sorted({_day(c) for c in clean})
    quiet_day = days[len(days) // 2]
    on_quiet_day = {c["sid"] for c in clean if _day(c) == quiet_day}
    assert on_quiet_day, "the world has calls on that day"

    sb.inject_data("twilio.calls", "drop_field", field="from")
    sb.inject_data("twilio.calls", "duplicate_key", field="price_unit", values=["EUR", "GBP"], every=10)
    sb.inject_data("twilio.calls", "skip_day", day=quiet_day, time_field="start_time")
    served = _calls(sb)

    assert not [c for c in served if "from" in c], "the field vanished from every call"
    assert not [c for c in served if _day(c) == quiet_day], "nothing served for the quiet day"
    assert sb.data_faults.touched("twilio.calls", "skip_day") == on_quiet_day
    by_sid: dict[str, list[dict]] = {}
    for c in served:
        by_sid.setdefault(c["sid"], []).append(c)
    assert set(by_sid) == set(world) - on_quiet_day
    twice = {sid for sid, copies in by_sid.items() if len(copies) > 1}
    assert twice and twice == sb.data_faults.touched("twilio.calls", "duplicate_key") - on_quiet_day
    for sid in twice:
        copies = by_sid[sid]
        assert len(copies) == 2 and sorted(c["price_unit"] for c in copies) == ["EUR", "GBP"]
        assert {k: v for k, v in copies[0].items() if k != "price_unit"} == \
               {k: v for k, v in copies[1].items() if k != "price_unit"}, "the copies differ in that field only"
    for sid, copies in by_sid.items():
        expected = {k: v for k, v in world[sid].items() if k != "from"}
        for c in copies:
            assert {k: v for k, v in c.items() if k != "price_unit"} == \
                   {k: v for k, v in expected.items() if k != "price_unit"}
    assert sb.data_faults.touched("twilio.calls", "drop_field") == set(by_sid)

    sb.clear_faults()
    fixed = _calls(sb)
    assert sorted(fixed, key=lambda c: c["sid"]) == sorted(world.values(), key=lambda c: c["sid"])


def test_admin_endpoints_inject_list_and_clear_data_faults(sb):
    admin = sb.url("admin")
    r = requests.post(admin + "/data-faults", json={"endpoint": "twilio.calls", "fault": "drop_field",
                                                    "field": "to"}, timeout=5)
    assert r.status_code == 200, r.text
    assert r.json() == {"twilio.calls": [{"fault": "drop_field", "field": "to"}]}
    assert requests.get(admin + "/data-faults", timeout=5).json() == r.json()
    assert all("to" not in c for c in _calls(sb))

    for bad, says in (({"endpoint": "twilio.calls", "fault": "explode"}, "unknown data fault"),
                      ({"endpoint": "sftp", "fault": "drop_field", "field": "x"}, "HTTP endpoints"),
                      ({"endpoint": "twilio.calls", "fault": "set_field", "field": "status"}, "needs value"),
                      ({"endpoint": "twilio.calls", "fault": "skip_day", "day": "9/9/2026",
                        "time_field": "start_time"}, "YYYY-MM-DD"),
                      ({"endpoint": "twilio.calls", "fault": "duplicate_key", "field": "status",
                        "values": ["a"]}, "two values")):
        r = requests.post(admin + "/data-faults", json=bad, timeout=5)
        assert r.status_code == 400 and says in r.json()["error"], (bad, r.text)

    assert requests.post(admin + "/faults/clear", timeout=5).status_code == 200
    assert requests.get(admin + "/data-faults", timeout=5).json() == {}
    assert all("to" in c for c in _calls(sb))
