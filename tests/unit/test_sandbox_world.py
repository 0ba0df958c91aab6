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


# ------------------------------------------------------------------ point 1: the customers' story

def test_people_reach_us_through_every_channel_and_complain_through_every_channel(world):
    conn, _ = world
    channels = {r[0] for r in conn.execute("select distinct channel from truth_complaints")}
    assert channels == {"phone", "phone_outsourced", "web_form", "survey", "social_x", "social_facebook",
                        "social_linkedin"}
    kinds = dict(conn.execute("select kind, count(*) from truth_records group by 1").fetchall())
    for kind in ("inbound_call", "form_contact", "form_feedback", "form_callback", "survey", "social_post",
                 "complaint_call", "form_complaint", "survey_complaint", "social_complaint"):
        assert kinds.get(kind, 0) > 0, kind


def test_complaints_get_responses_and_resolutions_or_not(world):
    conn, _ = world
    n, responded, resolved, rectified, unresolved = conn.execute(
        "select count(*), sum(first_response_at is not null), sum(resolved_at is not null), sum(rectified), "
        "sum(resolved_at is null) from truth_complaints").fetchone()
    assert n > 300
    assert 0.5 * n < responded < n, "some complaints get a response, not all"
    assert 0.3 * n < resolved < responded
    assert 0 < rectified < resolved, "some resolutions rectify the problem, some do not"
    assert unresolved > 0.1 * n
    # a complaint closed unrectified says so in the wrap-up of the follow-up call
    outcomes = {json.loads(p)["case_status"] for (p,) in conn.execute(
        "select payload from s_dispositions where json_extract(payload, '$.code') = 'follow_up'")}
    assert {"responded", "rectified", "closed_unrectified"} <= outcomes


def test_disgruntled_customers_post_and_their_reach_matters(world):
    conn, _ = world
    rows = conn.execute(
        "select c.social_reach, exists(select 1 from truth_records r where r.complaint_id = c.complaint_id "
        "and r.kind = 'follow_up_call') from truth_complaints c where c.channel like 'social_%' "
        "order by c.social_reach, c.complaint_id").fetchall()
    assert len(rows) > 60 and all(reach is not None for reach, _ in rows)
    assert all(reach is None for (reach,) in conn.execute(
        "select social_reach from truth_complaints where channel not like 'social_%'"))
    low, high = rows[: len(rows) // 2], rows[len(rows) // 2:]
    called_low = sum(c for _, c in low) / len(low)
    called_high = sum(c for _, c in high) / len(high)
    assert called_high > called_low + 0.2, (called_low, called_high)
    # the reach is what the network shows: X followers of the author
    for reach, followers in conn.execute(
            "select c.social_reach, json_extract(u.payload, '$.public_metrics.followers_count') "
            "from truth_complaints c join s_x_mentions m on m.key = c.record_key "
            "join s_x_users u on u.key = m.author_id where c.channel = 'social_x'"):
        assert reach == followers


def test_surveys_follow_interactions_and_ask_the_seven_questions(world):
    conn, _ = world
    responses = [json.loads(p) for (p,) in conn.execute("select payload from s_survey_responses")]
    assert len(responses) > 300
    with_problem = 0
    for r in responses:
        v = r["values"]
        assert v["QID1"] in range(1, 6) and v["QID2"] in range(0, 11) and v["QID3"] in (1, 2)
        texts = ("QID4_TEXT", "QID5_TEXT", "QID6_TEXT", "QID7_TEXT")
        if v["QID3"] == 1:
            with_problem += 1
            assert all(v[q] for q in texts), r["responseId"]
        else:
            assert not any(q in v for q in texts)
    assert 0.1 * len(responses) < with_problem < 0.9 * len(responses)
    # a survey follows an interaction: its external reference names the call or form response
    refs = {json.loads(p)["values"]["externalDataReference"] for (p,) in conn.execute(
        "select payload from s_survey_responses")} - {""}
    known = {r[0] for r in conn.execute("select key from s_calls union all select key from s_form_responses")}
    assert refs and refs <= known
    # the survey comes after the interaction it asks about
    for rec, start in conn.execute(
            "select s.recorded_at, c.start_ts from s_survey_responses s join s_calls c "
            "on c.key = json_extract(s.payload, '$.values.externalDataReference')"):
        assert rec > start


def test_some_channels_are_proactive_some_reactive(world):
    conn, _ = world
    kinds = dict(conn.execute(
        "select r.kind, count(*) from truth_records r join s_calls c on c.key = r.record_key "
        "where r.source = 'phone_system' and json_extract(c.payload, '$.direction') = 'outbound-api' "
        "group by 1").fetchall())
    assert kinds.get("proactive_call", 0) > 50, "the company calls customers unprompted"
    assert kinds.get("follow_up_call", 0) > 50 and kinds.get("callback_call", 0) > 50
    inbound = dict(conn.execute(
        "select r.kind, count(*) from truth_records r join s_calls c on c.key = r.record_key "
        "where json_extract(c.payload, '$.direction') = 'inbound' group by 1").fetchall())
    assert "proactive_call" not in inbound and inbound.get("inbound_call", 0) > 500


# ------------------------------------------------------------------ point 2: messy identities

def _norm_email(e: str) -> str:
    local, _, domain = e.strip().lower().partition("@")
    local = local.split("+", 1)[0]
    if domain in ("gmail.com", "googlemail.com"):
        local, domain = local.replace(".", ""), "gmail.com"
    return f"{local}@{domain}"


def _served_emails(conn):
    """(record key, person, email as written) from forms and surveys."""
    owner = dict(conn.execute("select record_key, person_id from truth_records where person_id is not null"))
    for key, pl in conn.execute("select key, payload from s_form_responses"):
        for a in json.loads(pl)["answers"] or []:
            if a["field"]["ref"] == "email":
                yield key, owner[key], a["email"]
    for key, pl in conn.execute("select key, payload from s_survey_responses"):
        e = json.loads(pl)["values"]["recipientEmail"]
        if e:
            yield key, owner[key], e


def test_emails_mean_the_person_except_for_typos_and_changers_use_both(world):
    conn, _ = world
    truth = {pid: [_norm_email(e) for e in json.loads(es)]
             for pid, es in conn.execute("select person_id, emails from truth_people")}
    matched, typos, used = 0, [], {}
    for _key, pid, written in _served_emails(conn):
        n = _norm_email(written)
        if n in truth[pid]:
            matched += 1
            used.setdefault(pid, set()).add(n)
        else:
            typos.append((written, truth[pid]))
    assert typos, "no typos in emails"
    assert len(typos) < 0.05 * matched
    for written, _ in typos:  # a typo is close to a true address, not another address
        assert not any(_norm_email(written) in es for es in truth.values())
    changers = [pid for pid, es in truth.items() if len(es) == 2]
    new_address = [pid for pid in changers if truth[pid][1] in used.get(pid, ())]
    both = [pid for pid in changers if len(used.get(pid, ())) == 2]
    assert len(new_address) > 20, "people who changed email should be seen with their new address"
    assert len(both) >= 3, "some people should be seen with their old and their new address"


def test_foreign_numbers_carry_their_own_country_code(world):
    conn, _ = world
    written = [w for _, w in _form_phones(conn)]
    codes = {c for c in ("+44", "+49", "+33", "0044", "0049", "0033") if any(w.startswith(c) for w in written)}
    assert {"+44", "+49", "+33"} <= codes | {c.replace("00", "+", 1) for c in codes}


def test_the_company_number_is_on_many_records(world):
    conn, _ = world
    digits = W.COMPANY_NUMBER[-10:]
    forms = [t for t, w in _form_phones(conn) if re.sub(r"\D", "", w).endswith(digits)]
    people = {r[0] for r in conn.execute(
        f"select person_id from truth_records where record_key in ({','.join('?' * len(forms))})", forms)}
    assert len(forms) > 20 and len(people) > 20, "the company number typed into forms by many people"
    calls = conn.execute("select count(*), sum(json_extract(payload, '$.from') = ? or json_extract(payload, '$.to')"
                         " = ?) from s_calls", (W.COMPANY_NUMBER, W.COMPANY_NUMBER)).fetchone()
    assert calls[1] > 0.9 * calls[0]


def test_households_share_a_phone_across_served_records(world):
    conn, _ = world
    households = conn.execute("select phone_e164, group_concat(person_id) from truth_people "
                              "where household_id is not null group by 1 having count(*) > 1").fetchall()
    assert len(households) > 10
    callers: dict[str, set[str]] = {}
    for frm, pid in conn.execute(
            "select json_extract(c.payload, '$.from'), r.person_id from s_calls c join truth_records r "
            "on r.source = 'phone_system' and r.record_key = c.key where c.direction = 'inbound'"):
        callers.setdefault(frm, set()).add(pid)
    shared = [phone for phone, _ in households if len(callers.get(phone, ())) > 1]
    assert shared, "two people of one household should call from the same phone"


def _given_handles(conn) -> set[str]:
    out = set()
    for (pl,) in conn.execute("select payload from s_form_responses"):
        for a in json.loads(pl)["answers"] or []:
            if a["field"]["ref"] == "social_handle":
                out.add(a["text"].lstrip("@").lower())
    for (pl,) in conn.execute("select payload from s_survey_responses"):
        h = json.loads(pl)["values"].get("QID9_TEXT")
        if h:
            out.add(h.lstrip("@").lower())
    for (row,) in conn.execute("select row from s_sftp_survey"):
        h = json.loads(row).get("QID9_TEXT")
        if h:
            out.add(h.lstrip("@").lower())
    return out


def test_social_accounts_link_only_through_handles_given_in_forms_or_surveys(world):
    conn, _ = world
    given = _given_handles(conn)
    assert given
    seen = {"handle": 0, "none": 0}
    for via, username in conn.execute(
            "select coalesce(r.link_via, 'none'), json_extract(u.payload, '$.username') from s_x_mentions m "
            "join truth_records r on r.source = 'social_x' and r.record_key = m.key "
            "join s_x_users u on u.key = m.author_id where r.person_id is not null and r.link_via is not 'case_ref'"):
        assert (via == "handle") == (username.lower() in given), (via, username)
        seen[via] += 1
    assert seen["handle"] > 20 and seen["none"] > 20
    # Facebook and LinkedIn authors never gave an identifier: only the company's follow-up can tie them
    assert {r[0] for r in conn.execute(
        "select distinct coalesce(link_via, 'none') from truth_records "
        "where source in ('social_facebook', 'social_linkedin') and person_id is not null")} == {"none", "case_ref"}
    # social posts carry no phone or email
    texts = conn.execute("select json_extract(payload, '$.text') from s_x_mentions union all "
                         "select json_extract(payload, '$.message') from s_fb_comments union all "
                         "select json_extract(payload, '$.message.text') from s_li_comments").fetchall()
    assert len(texts) > 500 and all(t for (t,) in texts)
    for (text,) in texts:
        assert not re.search(r"[\w.+-]+@[\w-]+\.[a-z]{2,}", text), text
        assert not re.search(r"\+?\d[\d .()-]{7,}\d", text), text


# ------------------------------------------------------------------ point 6: the truth is complete

def test_truth_covers_every_complaint_and_its_records(world):
    conn, _ = world
    in_records = {r[0] for r in conn.execute(
        "select distinct complaint_id from truth_records where complaint_id is not null")}
    complaints = {r[0] for r in conn.execute("select complaint_id from truth_complaints")}
    assert in_records == complaints
    for cid, source, stream, key in conn.execute(
            "select complaint_id, source, stream, record_key from truth_complaints"):
        got = conn.execute("select complaint_id from truth_records where source = ? and stream = ? and "
                           "record_key = ?", (source, stream, key)).fetchone()
        assert got == (cid,), cid
    # every complaint's lifecycle: opened always; retained known only when the outcome falls inside the world
    assert conn.execute("select count(*) from truth_complaints where opened_at is null or category is null "
                        "or rectified is null").fetchone()[0] == 0
    assert conn.execute("select count(*) from truth_complaints where resolved_at is null and rectified = 1"
                        ).fetchone()[0] == 0
    # every person behind a record is a known person; the company's own posts have none
    assert conn.execute("select count(*) from truth_records r left join truth_people p using (person_id) "
                        "where r.person_id is not null and p.person_id is null").fetchone()[0] == 0
    assert conn.execute("select count(*) from truth_records where kind in ('company_post', 'company_reply') "
                        "and person_id is not null").fetchone()[0] == 0


def test_served_records_do_not_leak_the_truth(world):
    conn, _ = world
    people = {r[0] for r in conn.execute("select person_id from truth_people")}
    complaints = {r[0] for r in conn.execute("select complaint_id from truth_complaints")}
    for table in SERVED:
        col = "row" if table in ("s_cc_calls", "s_cc_dispositions", "s_sftp_survey") else "payload"
        for (text,) in conn.execute(f"select {col} from {table}"):
            assert "person_id" not in text and "complaint_id" not in text, table
            ids = set(re.findall(r"\b[PC]\d{6,10}\b", text))
            assert not ids & (people | complaints), (table, ids)


def test_link_groups_follow_the_evidence_the_served_records_carry(world):
    conn, _ = world
    # a group never spans two people
    assert conn.execute("select count(*) from (select link_group from truth_records where person_id is not null"
                        " group by 1 having count(distinct person_id) > 1)").fetchone()[0] == 0
    # every call of someone living alone from or to their own line is in one group with their other calls
    alone = conn.execute("""
        select count(distinct r.link_group) from truth_records r join truth_people p using (person_id)
        join s_calls c on c.key = r.record_key and r.source = 'phone_system'
        where p.household_id is null and p.person_id = (
            select person_id from truth_records where source = 'phone_system' and kind = 'inbound_call'
            and person_id in (select person_id from truth_people where household_id is null)
            group by 1 order by count(*) desc limit 1)
          and (json_extract(c.payload, '$.from') = p.phone_e164 or json_extract(c.payload, '$.to') = p.phone_e164)
    """).fetchone()[0]
    assert alone == 1
    # a survey naming the call it followed is in that call's group
    pairs = conn.execute("""
        select s.link_group = c.link_group from s_survey_responses v
        join truth_records s on s.source = 'survey_vendor' and s.record_key = v.key
        join truth_records c on c.source = 'phone_system' and c.stream = 'calls'
            and c.record_key = json_extract(v.payload, '$.values.externalDataReference')
    """).fetchall()
    assert len(pairs) > 50 and all(same for (same,) in pairs)
    # a call carrying nothing but a household's shared line is marked, and is nobody's evidence
    shared = conn.execute("""
        select p.household_id is not null, json_extract(c.payload, '$.from') = p.phone_e164
        from truth_records r join truth_people p using (person_id)
        join s_calls c on c.key = r.record_key and r.source = 'phone_system'
        where r.shared_line and c.direction = 'inbound'
    """).fetchall()
    assert len(shared) > 10 and all(h and own for h, own in shared)
