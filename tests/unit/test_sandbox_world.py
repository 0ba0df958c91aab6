"""The sandbox world: deterministic, messy where real data is messy, and its truth is consistent."""

from __future__ import annotations

import hashlib
import json
import re
import sqlite3
from email.utils import parsedate_to_datetime

import phonenumbers
import pytest

from sandbox import world as W

SERVED = {
    "s_calls": ("phone_system", "calls"), "s_dispositions": ("phone_system", "dispositions"),
    "s_survey_responses": ("survey_vendor", "responses"), "s_form_responses": ("web_forms", "responses"),
    "s_x_mentions": ("social_x", "mentions"), "s_fb_posts": ("social_facebook", "posts"),
    "s_fb_comments": ("social_facebook", "comments"), "s_li_posts": ("social_linkedin", "posts"),
    "s_li_comments": ("social_linkedin", "comments"), "s_cc_calls": ("sftp_call_center", "calls"),
    "s_cc_dispositions": ("sftp_call_center", "dispositions"),
    "s_sftp_survey": ("sftp_survey_vendor", "responses"),
}


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    d = tmp_path_factory.mktemp("world")
    summary = W.generate(d, seed=7, customers=2000, days=30)
    conn = sqlite3.connect(d / W.DB_NAME)
    yield conn, summary
    conn.close()


def _digest(path) -> str:
    conn = sqlite3.connect(path)
    h = hashlib.sha256()
    for table in [*SERVED, "truth_people", "truth_records", "truth_complaints"]:
        ncols = len(conn.execute(f"select * from {table} limit 0").description)
        order = ", ".join(str(i + 1) for i in range(ncols))
        for row in conn.execute(f"select * from {table} order by {order}"):
            h.update(repr(row).encode())
    conn.close()
    return h.hexdigest()


def test_same_seed_same_world_other_seed_other_world(tmp_path):
    a = W.generate(tmp_path / "a", seed=11, customers=300, days=7)
    b = W.generate(tmp_path / "b", seed=11, customers=300, days=7)
    c = W.generate(tmp_path / "c", seed=12, customers=300, days=7)
    assert a["counts"] == b["counts"]
    assert _digest(a["path"]) == _digest(b["path"])
    assert _digest(a["path"]) != _digest(c["path"])


def test_default_world_is_fast_and_has_every_stream(world):
    conn, summary = world
    assert summary["seconds"] < 10
    for table in SERVED:
        assert summary["counts"][table] > 0, f"{table} is empty"
    assert 5000 < summary["interactions"] < 20000


def test_every_served_record_has_exactly_one_truth_record(world):
    conn, _ = world
    for table, (source, stream) in SERVED.items():
        served = {r[0] for r in conn.execute(f"select key from {table}")}
        truth = {r[0] for r in conn.execute("select record_key from truth_records where source = ? and stream = ?",
                                            (source, stream))}
        assert served == truth, f"{table}: served and truth differ by {len(served ^ truth)} keys"


def test_complaints_point_at_real_records_and_people(world):
    conn, _ = world
    tables = {v: k for k, v in SERVED.items()}
    people = {r[0] for r in conn.execute("select person_id from truth_people")}
    for cid, pid, source, stream, key, opened, first, resolved in conn.execute(
            "select complaint_id, person_id, source, stream, record_key, opened_at, first_response_at, "
            "resolved_at from truth_complaints"):
        assert pid in people
        table = tables[(source, stream)]
        assert conn.execute(f"select 1 from {table} where key = ?", (key,)).fetchone(), cid
        if first:
            assert first >= opened[:19], cid
        if resolved:
            assert first and resolved >= first, cid


def test_follow_ups_name_the_original_record(world):
    conn, _ = world
    refs = [json.loads(p)["case_ref"] for (p,) in conn.execute("select payload from s_dispositions")
            if json.loads(p)["code"] == "follow_up"]
    assert len(refs) > 50
    prefixes = {r.split(":")[0] if ":" in r else "call" for r in refs}
    assert {"call", "typeform", "qualtrics"} <= prefixes
    sids = {r[0] for r in conn.execute("select key from s_calls")} | {
        r[0] for r in conn.execute("select key from s_cc_calls")}
    tokens = {r[0] for r in conn.execute("select key from s_form_responses")}
    for ref in refs:
        if ":" not in ref:
            assert ref in sids
        elif ref.startswith("typeform:"):
            assert ref.split(":", 1)[1] in tokens


def test_rectified_complainants_stay_unrectified_mostly_leave(world):
    conn, _ = world
    rows = conn.execute("select rectified, avg(retained), count(*) from truth_complaints "
                        "where retained is not null group by rectified").fetchall()
    rates = {r[0]: (r[1], r[2]) for r in rows}
    assert rates[1][1] > 50 and rates[0][1] > 50
    assert rates[1][0] > 0.75
    assert 0.2 < rates[0][0] < 0.5
    # leavers call in with a cancel request
    cancels = sum(1 for (p,) in conn.execute("select payload from s_dispositions")
                  if json.loads(p)["code"] == "cancel_request")
    cancels += sum(1 for (p,) in conn.execute("select row from s_cc_dispositions")
                   if json.loads(p)["code"] == "cancel_request")
    churned = conn.execute("select count(*) from truth_people where churned_at is not null").fetchone()[0]
    assert cancels == churned > 0


def test_twilio_calls_look_like_twilio(world):
    conn, _ = world
    for (p,) in conn.execute("select payload from s_calls limit 500"):
        call = json.loads(p)
        assert re.fullmatch(r"CA[0-9a-f]{32}", call["sid"])
        assert re.fullmatch(r"AC[0-9a-f]{32}", call["account_sid"])
        assert parsedate_to_datetime(call["start_time"]).utcoffset().total_seconds() == 0
        assert call["start_time"].endswith("+0000")
        assert isinstance(call["duration"], str) and call["duration"].isdigit()
        assert call["price"] is None or (isinstance(call["price"], str) and call["price"].startswith("-"))
        assert call["direction"] in ("inbound", "outbound-api", "outbound-dial")
        assert call["uri"].endswith(call["sid"] + ".json")
    legs = [json.loads(p) for (p,) in conn.execute("select payload from s_calls where direction = 'outbound-dial'")]
    assert legs and all(leg["parent_call_sid"] and leg["to"].split(":")[0] in ("client", "sip") for leg in legs)
    parents = {r[0] for r in conn.execute("select key from s_calls")}
    assert all(leg["parent_call_sid"] in parents for leg in legs)


def _form_phones(conn):
    out = []
    for (pl,) in conn.execute("select payload from s_form_responses"):
        item = json.loads(pl)
        for a in item["answers"] or []:
            if a["field"]["ref"] == "phone":
                out.append((item["token"], a["phone_number"]))
    return out


def test_phones_are_written_many_ways_and_still_mean_the_person(world):
    conn, _ = world
    owner = dict(conn.execute("select r.record_key, p.phone_e164 || '|' || p.country from truth_records r "
                              "join truth_people p using (person_id) where r.source = 'web_forms'"))
    shapes = set()
    company = 0
    local_forms = 0
    for token, written in _form_phones(conn):
        e164, country = owner[token].split("|")
        if re.sub(r"\D", "", written).endswith("8005550199"):
            company += 1
            continue
        parsed = phonenumbers.format_number(phonenumbers.parse(written, country),
                                            phonenumbers.PhoneNumberFormat.E164)
        if parsed == W.COMPANY_NUMBER:
            company += 1
            continue
        assert parsed == e164, (written, e164)
        shapes.add(re.sub(r"\d", "9", written))
        if country != "US" and written.startswith("0"):
            local_forms += 1
    assert {"(999) 999-9999", "+9 999 999 9999", "9999999999", "999.999.9999"} <= shapes
    assert local_forms > 0, "no non-US numbers written in local form"
    assert company > 0, "nobody typed the call-center number into a form"


def test_emails_vary_in_case_space_dots_and_tags(world):
    conn, _ = world
    emails = []
    for (pl,) in conn.execute("select payload from s_form_responses"):
        for a in json.loads(pl)["answers"] or []:
            if a["field"]["ref"] == "email":
                emails.append(a["email"])
    assert any(e != e.strip() for e in emails)
    assert any(e.strip() != e.strip().lower() for e in emails)
    assert any("+" in e.split("@")[0] for e in emails)
    assert any("+" in e.split("@")[0] and "gmail" not in e.lower() for e in emails)
    dotless = [e for e in emails if "gmail" in e.lower() and "." not in e.split("@")[0].split("+")[0]]
    assert dotless, "gmail dot variants missing"


def test_households_share_a_phone_and_some_people_change_email(world):
    conn, _ = world
    shared = conn.execute("select phone_e164, count(*) from truth_people group by 1 having count(*) > 1").fetchall()
    assert shared, "no household shares a phone"
    assert all(n <= 3 for _, n in shared)
    changed = [json.loads(r[0]) for r in conn.execute("select emails from truth_people")]
    assert sum(1 for es in changed if len(es) == 2) > 20
    intl = conn.execute("select count(*) from truth_people where country != 'US'").fetchone()[0]
    assert intl > 100


def test_social_linkability_is_recorded(world):
    conn, _ = world
    rows = dict(((r[0], r[1]), r[2]) for r in conn.execute(
        "select source, coalesce(link_via, 'none'), count(*) from truth_records "
        "where source like 'social_%' and person_id is not null and kind != 'company_post' group by 1, 2"))
    assert rows.get(("social_x", "handle"), 0) > 0
    assert rows.get(("social_x", "none"), 0) > 0
    assert rows.get(("social_facebook", "none"), 0) > 0
    # non-customers mention us too
    assert conn.execute("select count(*) from truth_records where source = 'social_x' and person_id is null"
                        ).fetchone()[0] > 0
    # complaints on social networks are worded negatively, others mostly not
    neg = re.compile(r"worst|disappointed|unacceptable|terrible|angry|frustrated", re.I)
    texts = conn.execute("select json_extract(m.payload, '$.text'), r.complaint_id from s_x_mentions m "
                         "join truth_records r on r.source = 'social_x' and r.record_key = m.key").fetchall()
    complaint_hits = [bool(neg.search(t)) for t, c in texts if c]
    other_hits = [bool(neg.search(t)) for t, c in texts if not c]
    assert complaint_hits and all(complaint_hits)
    assert not any(other_hits)


def test_phone_variant_forms_parse_back():
    import random
    rng = random.Random(1)
    for e164, country in (("+14155550123", "US"), ("+447911123456", "GB"), ("+4915112345678", "DE"),
                          ("+33612345678", "FR")):
        for _ in range(30):
            v = W.phone_variant(rng, e164, country)
            got = phonenumbers.format_number(phonenumbers.parse(v, country), phonenumbers.PhoneNumberFormat.E164)
            assert got == e164, (v, e164)


def test_world_does_not_depend_on_the_number_of_worker_processes(tmp_path, monkeypatch):
    monkeypatch.setattr(W, "CHUNK", 150)  # 4 chunks
    one = W.generate(tmp_path / "one", seed=21, customers=520, days=4, workers=1)
    two = W.generate(tmp_path / "two", seed=21, customers=520, days=4, workers=2)
    assert one["counts"] == two["counts"]
    assert _digest(one["path"]) == _digest(two["path"])
    assert "merge" in two["phases"] and "merge" not in one["phases"]
    assert not list((tmp_path / "two").glob("*.chunk*")), "chunk files left behind"


def test_forms_have_partials_without_answers_and_logged_in_visitors(world):
    conn, _ = world
    rows = dict(((r[0], r[1]), r[2]) for r in conn.execute(
        "select response_type, json_type(payload, '$.answers'), count(*) from s_form_responses group by 1, 2"))
    assert rows.get(("partial", "null"), 0) > 0
    assert rows.get(("completed", "null"), 0) == 0
    assert conn.execute("select count(*) from s_form_responses where json_extract(payload, '$.submitted_at') "
                        "is not null and response_type = 'partial'").fetchone()[0] == 0
    refs = conn.execute("select count(*) from s_form_responses where "
                        "json_extract(payload, '$.hidden.customer_ref') like 'CUST-%'").fetchone()[0]
    assert refs > 100
