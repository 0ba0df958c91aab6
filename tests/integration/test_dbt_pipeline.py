"""The dbt project end to end on a hand-made world: raw landings faithful to the vendors' shapes
(VENDOR_APIS.md, CONTRACTS sections 2 to 7), enrichment in Python, `dbt build`, then the marts.

The world (people and the right answers):
- Maria Garcia: inbound Twilio call (complaint, billing) with two follow-up calls (responded, then
  rectified); a Qualtrics survey (API and SFTP copies, two versions) with a googlemail address, a
  plus-tag and a problem; a complaint form and a feedback form sharing the website customer_ref; an
  angry X mention (handle given on the form) answered by the company. One customer.
- John Smith: call-center CDR call wrapped up as complaint (never answered), a contact form with his
  number in another spelling, then a cancel_request call: not retained.
- Priya Patel: a negative Facebook comment, answered by the page, followed up by a phone call whose
  disposition names the comment (case_ref), rectified; then a happy survey from that phone.
- A LinkedIn member's negative comment answered by the organisation.
- Alice, Bob and Carol all typed the company's call-center number as their phone: three customers.
- Dan and Eve Lee share a home phone: Dan's form and a call from the home line form one customer in
  run 1; Eve's survey with the same phone arrives in run 2 and the phone is cut (a split).
- Kim: a survey file row from SFTP (CSV columns) with CSAT 1 and a delivery problem.
Run 1 loads most records; run 2 adds Maria's complaint form (merging her X identity into her
customer) and Eve's survey (splitting the household).
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import uuid
from datetime import UTC, datetime
from pathlib import Path

import psycopg
import pytest
from crm_warehouse.bootstrap import bootstrap
from crm_warehouse.enrich import run_all
from crm_warehouse.identity import canonical_email
from crm_warehouse.settings import dbt_env
from psycopg import sql

ROOT = Path(__file__).resolve().parents[2]
DBT_DIR = ROOT / "dbt_project"
DBT = Path(sys.executable).parent / "dbt"

RAW_TABLES = [
    "phone_system__calls",
    "phone_system__dispositions",
    "survey_vendor__responses",
    "web_forms__responses",
    "social_x__mentions",
    "social_x__users",
    "social_facebook__posts",
    "social_facebook__comments",
    "social_linkedin__posts",
    "social_linkedin__comments",
    "sftp_call_center__calls",
    "sftp_call_center__dispositions",
    "sftp_survey_vendor__responses",
]

RAW_DDL = """
create table if not exists raw.{table} (
    record_key      text not null,
    content_hash    text not null,
    payload         jsonb not null,
    source_object   text,
    batch_id        bigint not null,
    extracted_at    timestamptz not null,
    source_uri      text,
    source_position text,
    primary key (record_key, content_hash)
)
"""

COMPANY_LINE = "+14158675309"  # the phone system's own number
CALL_CENTER_NUMBER = "212-736-5000"  # the company's call-center number, typed by strangers
X_COMPANY_ID = "9990001"
FB_PAGE_ID = "555"
LI_ORG = "urn:li:organization:999"


def sid(prefix: str, n: int) -> str:
    return prefix + hashlib.md5(f"{prefix}{n}".encode()).hexdigest()


CA = {n: sid("CA", n) for n in range(1, 10)}
WU = {n: sid("WU", n) for n in range(1, 20)}


def rfc2822(ts: str) -> str:
    return datetime.fromisoformat(ts).strftime("%a, %d %b %Y %H:%M:%S +0000")


def twilio_call(n: int, direction: str, customer: str, start: str, caller_name: str | None = None) -> dict:
    frm, to = (customer, COMPANY_LINE) if direction == "inbound" else (COMPANY_LINE, customer)
    return {
        "sid": CA[n], "account_sid": "AC" + "0" * 32, "parent_call_sid": None, "from": frm, "to": to,
        "from_formatted": frm, "to_formatted": to, "caller_name": caller_name, "direction": direction,
        "status": "completed", "start_time": rfc2822(start), "end_time": rfc2822(start),
        "date_created": rfc2822(start), "date_updated": rfc2822(start), "duration": "245",
        "price": "-0.0130", "price_unit": "USD", "answered_by": None, "forwarded_from": None,
        "queue_time": "12", "annotation": None, "uri": f"/2010-04-01/Accounts/AC/Calls/{CA[n]}.json",
        "subresource_uris": {},
    }


def disposition(n: int, call: str, code: str, at: str, category=None, case_ref=None, case_status=None) -> dict:
    return {
        "disposition_id": WU[n], "call_sid": call, "agent_id": "agent_017", "wrapped_at": at, "code": code,
        "category": category, "case_ref": case_ref, "case_status": case_status, "notes": f"{code} wrap-up",
    }


def qualtrics(rid: str, at: str, email: str, first: str, last: str, csat: int, nps: int, problem: int,
              phone: str | None = None, handle: str | None = None, external: str = "", category=None,
              problem_text: str | None = None) -> dict:
    values = {
        "startDate": at, "endDate": at, "recordedDate": at, "status": 0, "progress": 100, "duration": 120,
        "finished": 1, "recipientEmail": email, "recipientFirstName": first, "recipientLastName": last,
        "externalDataReference": external, "distributionChannel": "email", "userLanguage": "EN",
        "QID1": csat, "QID2": nps, "QID3": problem,
    }
    for k, v in {"QID4_TEXT": problem_text, "QID5_TEXT": "a refund" if problem == 1 else None,
                 "QID8_TEXT": phone, "QID9_TEXT": handle, "QID10": category}.items():
        if v is not None:
            values[k] = v
    return {"responseId": rid, "values": values, "labels": {"QID1": str(csat)}}


def typeform(token: str, at: str | None, answers: list | None, customer_ref: str | None = None) -> dict:
    item = {
        "landing_id": token, "token": token, "response_id": token, "landed_at": at or "2026-09-01T00:00:00Z",
        "metadata": {"platform": "other", "browser": "default", "user_agent": "Mozilla/5.0"},
        "hidden": {"customer_ref": customer_ref} if customer_ref else {},
        "calculated": {"score": 0}, "variables": [], "answers": answers,
    }
    if at:
        item["submitted_at"] = at
    return item


def ans(ref: str, kind: str, value) -> dict:
    field_type = {"text": "short_text", "email": "email", "phone_number": "phone_number",
                  "choice": "multiple_choice", "number": "number", "boolean": "yes_no"}[kind]
    return {"field": {"id": "f_" + ref, "type": field_type, "ref": ref}, "type": kind, kind: value}


def x_mention(tid: str, author: str, text: str, at: str, replied_to: str | None = None) -> dict:
    m = {
        "id": tid, "text": text, "author_id": author, "created_at": at, "conversation_id": replied_to or tid,
        "lang": "en", "edit_history_tweet_ids": [tid],
        "public_metrics": {"retweet_count": 3, "reply_count": 1, "like_count": 7, "quote_count": 0},
    }
    if replied_to:
        m["referenced_tweets"] = [{"type": "replied_to", "id": replied_to}]
        m["in_reply_to_user_id"] = "u1"
    return m


def cdr(call_id: str, direction: str, customer: str, at: str) -> dict:
    caller, dialed = (customer, "8005550000") if direction == "inbound" else ("8005550000", customer)
    return {"call_id": call_id, "started_at": at, "ended_at": at, "direction": direction,
            "caller_number": caller, "dialed_number": dialed, "agent_id": "cc_agent_3",
            "duration_seconds": "181", "queue_seconds": "40", "status": "completed"}


def csv_disposition(n: int, call: str, code: str, at: str, category="", case_ref="", case_status="") -> dict:
    return {"disposition_id": WU[n], "call_sid": call, "agent_id": "cc_agent_3", "wrapped_at": at, "code": code,
            "category": category, "case_ref": case_ref, "case_status": case_status, "notes": ""}


FB_POST = f"{FB_PAGE_ID}_111"
LI_POST = "urn:li:activity:7001"
LI_COMMENT = f"urn:li:comment:({LI_POST},1001)"
MARIA_R1_V1 = qualtrics("R_maria1", "2026-09-02T09:00:00Z", "Maria.Garcia+survey@GoogleMail.com", "Maria",
                        "Garcia", 3, 5, 1, phone="(415) 555-2671", external=CA[1], category=1,
                        problem_text="I was billed twice")
MARIA_R1_V2 = qualtrics("R_maria1", "2026-09-02T09:00:00Z", "Maria.Garcia+survey@GoogleMail.com", "Maria",
                        "Garcia", 2, 5, 1, phone="(415) 555-2671", external=CA[1], category=1,
                        problem_text="I was billed twice")

# (table, key, payload, source_object); run 1
RUN1 = [
    # Maria: complaint call, two follow-ups (responded, rectified)
    ("phone_system__calls", CA[1], twilio_call(1, "inbound", "+14155552671", "2026-09-01T10:00:00",
                                               "GARCIA MARIA"), None),
    ("phone_system__dispositions", WU[1], disposition(1, CA[1], "complaint", "2026-09-01T10:06:00Z", "billing",
                                                      CA[1], "open"), None),
    ("phone_system__calls", CA[2], twilio_call(2, "outbound-api", "+14155552671", "2026-09-02T15:00:00"), None),
    ("phone_system__dispositions", WU[2], disposition(2, CA[2], "follow_up", "2026-09-02T15:05:00Z", None,
                                                      CA[1], "responded"), None),
    ("phone_system__calls", CA[3], twilio_call(3, "outbound-api", "+14155552671", "2026-09-04T11:00:00"), None),
    ("phone_system__dispositions", WU[3], disposition(3, CA[3], "follow_up", "2026-09-04T11:04:00Z", None,
                                                      CA[1], "rectified"), None),
    ("survey_vendor__responses", "R_maria1", MARIA_R1_V1, "SV_crmCsat01"),
    # Maria's X identity, not yet linked to her in run 1
    ("social_x__users", "u1", {"id": "u1", "username": "MariaG", "name": "Maria G", "verified": False,
                               "public_metrics": {"followers_count": 1500}}, X_COMPANY_ID),
    ("social_x__mentions", "1800000000000000001",
     x_mention("1800000000000000001", "u1", "@acme terrible service, my bill is wrong AGAIN. Furious!",
               "2026-09-03T12:00:00.000Z"), X_COMPANY_ID),
    ("social_x__mentions", "1800000000000000003",
     x_mention("1800000000000000003", X_COMPANY_ID, "@MariaG we are sorry, DM us and we will fix it",
               "2026-09-03T13:30:00.000Z", replied_to="1800000000000000001"), X_COMPANY_ID),
    # a happy X customer
    ("social_x__users", "u2", {"id": "u2", "username": "happy_hal", "name": "Hal", "verified": False,
                               "public_metrics": {"followers_count": 20}}, X_COMPANY_ID),
    ("social_x__mentions", "1800000000000000002",
     x_mention("1800000000000000002", "u2", "@acme thanks for the quick help, great team!",
               "2026-09-03T14:00:00.000Z"), X_COMPANY_ID),
    # John: call-center complaint, never answered; contact form; then a cancel request
    ("sftp_call_center__calls", "cc-1001", cdr("cc-1001", "inbound", "(312) 555-0182", "2026-09-01 08:30:00"),
     "call_center_cdr"),
    ("sftp_call_center__dispositions", WU[4], csv_disposition(4, "cc-1001", "complaint", "2026-09-01T08:35:00Z",
                                                              "delivery", "cc-1001", "open"),
     "call_center_dispositions"),
    ("web_forms__responses", "tf_john", typeform("tf_john", "2026-09-02T07:00:00Z", [
        ans("full_name", "text", "John Smith"), ans("email", "email", " JSmith@Example.com "),
        ans("phone", "phone_number", "+1 (312) 555-0182"), ans("message", "text", "Where is my parcel?")]),
     "cNtAcT01"),
    ("sftp_call_center__calls", "cc-1002", cdr("cc-1002", "inbound", "312.555.0182", "2026-09-06 09:00:00"),
     "call_center_cdr"),
    ("sftp_call_center__dispositions", WU[5], csv_disposition(5, "cc-1002", "cancel_request",
                                                              "2026-09-06T09:04:00Z"), "call_center_dispositions"),
    # Priya: negative Facebook comment, page reply, follow-up call naming the comment, happy survey
    ("social_facebook__posts", FB_POST, {"id": FB_POST, "message": "New product line!",
                                         "created_time": "2026-08-30T08:00:00+0000",
                                         "from": {"id": FB_PAGE_ID, "name": "Acme"}}, None),
    ("social_facebook__comments", f"{FB_POST}_1", {
        "id": f"{FB_POST}_1", "message": "This is the worst product I have ever bought. Very disappointed.",
        "created_time": "2026-09-05T08:00:00+0000", "from": {"id": "fbu_10", "name": "Priya Patel"},
        "like_count": 40, "comment_count": 1}, FB_POST),
    ("social_facebook__comments", f"{FB_POST}_2", {
        "id": f"{FB_POST}_2", "message": "Sorry to hear that, Priya. We will call you.",
        "created_time": "2026-09-05T09:00:00+0000", "from": {"id": FB_PAGE_ID, "name": "Acme"},
        "like_count": 0, "comment_count": 0, "parent": {"id": f"{FB_POST}_1"}}, FB_POST),
    ("phone_system__calls", CA[4], twilio_call(4, "outbound-api", "+12025550143", "2026-09-06T10:00:00"), None),
    ("phone_system__dispositions", WU[6], disposition(6, CA[4], "follow_up", "2026-09-06T10:10:00Z", None,
                                                      f"facebook:{FB_POST}_1", "rectified"), None),
    ("survey_vendor__responses", "R_priya", qualtrics("R_priya", "2026-09-07T10:00:00Z", "priya@example.com",
                                                      "Priya", "Patel", 5, 10, 2, phone="202-555-0143"),
     "SV_crmCsat01"),
    # LinkedIn member's negative comment, answered by the organisation
    ("social_linkedin__posts", LI_POST, {"id": LI_POST, "author": LI_ORG, "commentary": "We are hiring",
                                         "publishedAt": 1788000000000}, None),
    ("social_linkedin__comments", LI_COMMENT, {
        "$URN": LI_COMMENT, "id": "1001", "actor": "urn:li:person:abc", "object": LI_POST,
        "message": {"text": "Three weeks and still no answer from your team. Awful, rude and useless."},
        "created": {"time": 1788500000000}, "lastModified": {"time": 1788500000000},
        "likesSummary": {"totalLikes": 3}}, LI_POST),
    ("social_linkedin__comments", f"urn:li:comment:({LI_POST},1002)", {
        "$URN": f"urn:li:comment:({LI_POST},1002)", "id": "1002", "actor": LI_ORG, "object": LI_POST,
        "message": {"text": "We are sorry, please check your inbox."}, "parentComment": LI_COMMENT,
        "created": {"time": 1788510000000}, "lastModified": {"time": 1788510000000}}, LI_POST),
    # strangers who typed the company's call-center number
    ("web_forms__responses", "tf_alice", typeform("tf_alice", "2026-09-03T10:00:00Z", [
        ans("full_name", "text", "Alice Brown"), ans("email", "email", "alice@example.com"),
        ans("phone", "phone_number", CALL_CENTER_NUMBER)]), "cNtAcT01"),
    ("survey_vendor__responses", "R_bob", qualtrics("R_bob", "2026-09-04T10:00:00Z", "bob@example.net", "Bob",
                                                    "Stone", 4, 8, 2, phone="(212) 736-5000"), "SV_crmCsat01"),
    ("web_forms__responses", "tf_carol", typeform("tf_carol", "2026-09-05T10:00:00Z", [
        ans("full_name", "text", "Carol White"), ans("email", "email", "carol@example.com"),
        ans("phone", "phone_number", "+12127365000"), ans("category", "choice", {"label": "Delivery"}),
        ans("message", "text", "My order never arrived")]), "cMpLnT01"),
    # Dan's form and a call from the Lee home line
    ("web_forms__responses", "tf_dan", typeform("tf_dan", "2026-09-02T18:00:00Z", [
        ans("full_name", "text", "Dan Lee"), ans("email", "email", "dan.lee@gmail.com"),
        ans("phone", "phone_number", "617-555-1212")]), "cAlLbK01"),
    ("phone_system__calls", CA[5], twilio_call(5, "inbound", "+16175551212", "2026-09-03T19:00:00", "LEE DAN"),
     None),
    # Kim: a survey CSV row from SFTP (Qualtrics column ids, all text)
    ("sftp_survey_vendor__responses", "R_kim", {
        "StartDate": "2026-09-05 16:00:00", "EndDate": "2026-09-05 16:02:00", "Status": "0",
        "IPAddress": "", "Progress": "100", "Duration (in seconds)": "95", "Finished": "True",
        "RecordedDate": "2026-09-05 16:02:00", "ResponseId": "R_kim", "RecipientLastName": "Park",
        "RecipientFirstName": "Kim", "RecipientEmail": "Kim.Park@Example.com", "ExternalReference": "",
        "DistributionChannel": "email", "UserLanguage": "EN", "QID1": "1", "QID2": "0", "QID3": "1",
        "QID4_TEXT": "Parcel lost", "QID5_TEXT": "", "QID8_TEXT": "", "QID10": "4"}, "survey_vendor"),
    # Lena: a call and, after it, a survey reporting a problem; the call's wrap-up comes late (run 2)
    ("phone_system__calls", CA[6], twilio_call(6, "inbound", "+13125550199", "2026-09-07T09:00:00", "KOVAC LENA"),
     None),
    ("survey_vendor__responses", "R_lena", qualtrics("R_lena", "2026-09-07T18:00:00Z", "lena@example.com",
                                                     "Lena", "Kovac", 2, 3, 1, external=CA[6], category=3,
                                                     problem_text="Rude agent"), "SV_crmCsat01"),
    # a partial complaint form (answers null): a complaint nobody can answer
    ("web_forms__responses", "tf_partial", typeform("tf_partial", None, None), "cMpLnT01"),
]

RUN2 = [
    # a second version of Maria's survey (CSAT corrected 3 -> 2) and the same response via SFTP
    ("survey_vendor__responses", "R_maria1", MARIA_R1_V2, "SV_crmCsat01"),
    ("sftp_survey_vendor__responses", "R_maria1", {
        "StartDate": "2026-09-02 09:00:00", "RecordedDate": "2026-09-02 09:00:00", "ResponseId": "R_maria1",
        "RecipientEmail": "maria.garcia@gmail.com", "QID1": "4", "QID2": "9", "QID3": "2",
        "Finished": "1"}, "survey_vendor"),
    # Maria's complaint form: her phone and X handle (merges her X identity) and her customer_ref
    ("web_forms__responses", "tf_maria", typeform("tf_maria", "2026-09-08T10:00:00Z", [
        ans("full_name", "text", "Maria Garcia"), ans("email", "email", "mariagarcia@gmail.com"),
        ans("phone", "phone_number", "415.555.2671"), ans("social_handle", "text", "@MariaG "),
        ans("category", "choice", {"label": "Billing"}), ans("message", "text", "Still billed twice"),
        ans("wants_callback", "boolean", True)], customer_ref="cust-001"), "cMpLnT01"),
    ("web_forms__responses", "tf_maria_fb", typeform("tf_maria_fb", "2026-09-09T10:00:00Z", [
        ans("email", "email", "maria@work.example"), ans("satisfaction", "number", 4)],
        customer_ref="cust-001"), "fEeDbK01"),
    ("phone_system__dispositions", WU[7], disposition(7, CA[6], "complaint", "2026-09-07T09:20:00Z", "service",
                                                      CA[6], "open"), None),
    # Eve's survey with the Lee home phone: the phone now links people who disagree, so it is cut
    ("survey_vendor__responses", "R_eve", qualtrics("R_eve", "2026-09-09T12:00:00Z", "eve.lee@example.org",
                                                    "Eve", "Lee", 3, 7, 2, phone="6175551212"), "SV_crmCsat01"),
]


def load(conn: psycopg.Connection, rows: list, batch_id: int, extracted_at: str) -> None:
    for table, key, payload, source_object in rows:
        text = json.dumps(payload, sort_keys=True, separators=(",", ":"))
        conn.execute(
            sql.SQL(
                "insert into raw.{} (record_key, content_hash, payload, source_object, batch_id, extracted_at,"
                " source_uri, source_position) values (%s, %s, %s::jsonb, %s, %s, %s, %s, %s)"
                " on conflict do nothing"
            ).format(sql.Identifier(table)),
            (key, hashlib.sha256(text.encode()).hexdigest(), text, source_object, batch_id, extracted_at,
             f"test://{table}", "1"),
        )
    conn.commit()


def dbt_build(url: str, work: Path, *args: str) -> subprocess.CompletedProcess:
    """`dbt build` of the project into the database at `url` (more dbt arguments in `args`); fails the test with
    dbt's output when dbt fails."""
    env = dbt_env(url)
    result = subprocess.run(
        [str(DBT), "build", "--profiles-dir", str(DBT_DIR), "--project-dir", str(DBT_DIR),
         "--target-path", str(work / "target"), "--log-path", str(work / "logs"), *args],
        env=env, capture_output=True, text=True, timeout=600,
    )
    assert result.returncode == 0, f"dbt build failed:\n{result.stdout[-6000:]}\n{result.stderr[-2000:]}"
    return result


def rows(conn: psycopg.Connection, query: str, params=None) -> list[tuple]:
    return conn.execute(query, params).fetchall()


def customer_of(conn: psycopg.Connection, record_id: str) -> str:
    found = rows(conn, "select customer_id from intermediate.int_customer_ids_assigned where record_id = %s",
                 (record_id,))
    assert found, f"record {record_id} has no customer"
    return found[0][0]


@pytest.fixture(scope="module")
def world(pg_server_url, tmp_path_factory):
    """Builds run 1 and run 2; yields the database URL and what run 1 looked like."""
    name = f"crm_test_dbt_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(pg_server_url, autocommit=True) as admin:
        admin.execute(sql.SQL("create database {}").format(sql.Identifier(name)))
    url = pg_server_url.rsplit("/", 1)[0] + f"/{name}"
    work = tmp_path_factory.mktemp("dbt")
    try:
        with psycopg.connect(url) as conn:
            bootstrap(conn)
            for table in RAW_TABLES:
                conn.execute(RAW_DDL.format(table=table))
            conn.commit()
            load(conn, RUN1, 1, "2026-09-10T00:00:00Z")
            enrich1 = run_all(conn)
            started = datetime.now(UTC)
            dbt_build(url, work)
            seconds1 = (datetime.now(UTC) - started).total_seconds()
            run1 = {
                "enrich": enrich1,
                "seconds": seconds1,
                "maria": customer_of(conn, f"twilio:{CA[1]}"),
                "maria_x": customer_of(conn, "x:1800000000000000001"),
                "dan": customer_of(conn, "typeform:tf_dan"),
                "dan_call": customer_of(conn, f"twilio:{CA[5]}"),
                "customers": rows(conn, "select customer_id from marts_build.dim_customers order by 1"),
                "lena_survey_complaint": rows(conn, "select is_complaint from marts_build.fct_interactions"
                                                    " where interaction_id = 'qualtrics:R_lena'"),
                "survey_csat": rows(conn, "select csat_score from marts_build.fct_survey_feedback"
                                          " where survey_response_id = 'qualtrics:R_maria1'"),
            }
            conn.commit()
            load(conn, RUN2, 2, "2026-09-12T00:00:00Z")
            run1["enrich2"] = run_all(conn)
            dbt_build(url, work)
            state = ("select (select array_agg(record_id || '=' || customer_id order by record_id)"
                     " from intermediate.int_customer_ids_assigned),"
                     " (select count(*) from intermediate.int_customer_merges),"
                     " (select count(*) from marts_build.fct_interactions)")
            run1["after_run2"] = conn.execute(state).fetchone()
            conn.commit()  # an open transaction would hold locks dbt needs
            run1["enrich3"] = run_all(conn)
            dbt_build(url, work)  # a re-run on the same data
            run1["after_run3"] = conn.execute(state).fetchone()
            yield url, run1
    finally:
        if os.environ.get("CRM_TEST_KEEP_DB"):  # debugging: keep the database and say where it is
            print(f"kept {url}")
        else:
            with psycopg.connect(pg_server_url, autocommit=True) as admin:
                admin.execute(sql.SQL("drop database if exists {} with (force)").format(sql.Identifier(name)))


def test_enrichment_normalises_phones_and_scores_social_texts(world):
    url, run1 = world
    assert run1["enrich"]["phones"] >= 10 and run1["enrich"]["sentiment"] == 7  # 3 X, 2 Facebook, 2 LinkedIn texts
    assert run1["enrich2"]["sentiment"] == 0  # nothing new to score in run 2
    with psycopg.connect(url) as conn:
        phones = dict(rows(conn, "select raw_phone, e164 from intermediate.phone_numbers_normalized"))
        assert phones["(415) 555-2671"] == phones["415.555.2671"] == "+14155552671"
        assert phones["312.555.0182"] == phones["+1 (312) 555-0182"] == "+13125550182"
        scores = dict(rows(conn, "select text_id, compound from intermediate.social_sentiment"))
        assert scores["x:1800000000000000001"] <= -0.05
        assert scores["x:1800000000000000002"] > 0.05
        assert scores[f"facebook:{FB_POST}_1"] <= -0.05


def test_staging_keeps_the_latest_version_and_one_copy_per_response(world):
    url, run1 = world
    assert run1["survey_csat"] == [(3,)]
    with psycopg.connect(url) as conn:
        assert rows(conn, "select csat_score, delivered_by from marts_build.fct_survey_feedback"
                          " where survey_response_id = 'qualtrics:R_maria1'") == [(2, "api")]
        kim = rows(conn, "select csat_score, nps_score, nps_category, problem_category, has_reported_problem"
                         " from marts_build.fct_survey_feedback where survey_response_id = 'qualtrics:R_kim'")
        assert kim == [(1, 0, "detractor", "delivery", True)]
        calls = rows(conn, "select started_at, duration_seconds, price from staging.stg_phone_system__calls"
                           " where call_sid = %s", (CA[1],))
        assert calls[0][0] == datetime(2026, 9, 1, 10, 0, tzinfo=UTC) and calls[0][1] == 245
        assert float(calls[0][2]) == -0.013


def test_sql_and_python_email_rules_agree(world):
    url, _ = world
    with psycopg.connect(url) as conn:
        pairs = rows(conn, "select recipient_email_raw, email from staging.stg_survey_vendor__responses"
                           " union all select email_raw, email from staging.stg_web_forms__responses"
                           " union all select recipient_email_raw, email from"
                           " staging.stg_sftp_survey_vendor__responses")
    assert len(pairs) >= 8
    for raw, canonical in pairs:
        assert canonical == canonical_email(raw), raw


def test_one_customer_per_person_and_company_number_merges_nobody(world):
    url, _ = world
    with psycopg.connect(url) as conn:
        maria = {customer_of(conn, r) for r in (
            f"twilio:{CA[1]}", f"twilio:{CA[2]}", f"twilio:{CA[3]}", "qualtrics:R_maria1", "typeform:tf_maria",
            "typeform:tf_maria_fb", "x:1800000000000000001")}
        john = {customer_of(conn, r) for r in ("call_center:cc-1001", "call_center:cc-1002", "typeform:tf_john")}
        priya = {customer_of(conn, r) for r in (f"facebook:{FB_POST}_1", f"twilio:{CA[4]}", "qualtrics:R_priya")}
        strangers = {customer_of(conn, r) for r in ("typeform:tf_alice", "qualtrics:R_bob", "typeform:tf_carol")}
        lees = {customer_of(conn, r) for r in ("typeform:tf_dan", "qualtrics:R_eve")}
        assert len(maria) == 1 and len(john) == 1 and len(priya) == 1
        assert len(strangers) == 3, "the company's call-center number merged strangers"
        assert len(lees) == 2, "a shared home phone merged two people"
        assert len(maria | john | priya | strangers | lees) == 8
        lena = {customer_of(conn, r) for r in (f"twilio:{CA[6]}", "qualtrics:R_lena")}
        assert len(lena) == 1, "a survey is linked to the call it followed (externalDataReference)"
        cut = dict(rows(conn, "select identifier_value, cut_reason from intermediate.int_identifiers_guarded"
                              " where is_cut"))
        assert "+12127365000" in cut and "+16175551212" in cut and "+14155552671" not in cut
        dim = rows(conn, "select primary_email, primary_phone, x_handle, channels, complaints_count"
                         " from marts_build.dim_customers where customer_id = %s", (maria.pop(),))
        assert dim[0][0] == "mariagarcia@gmail.com" and dim[0][1] == "+14155552671" and dim[0][2] == "mariag"
        assert set(dim[0][3].split(",")) == {"phone", "survey", "web_form", "x"} and dim[0][4] == 3
        n_dim, n_distinct = rows(conn, "select count(*), count(distinct customer_id) from"
                                       " marts_build.dim_customers")[0]
        assert n_dim == n_distinct


def test_customer_ids_are_stable_and_merges_and_splits_are_recorded(world):
    url, run1 = world
    with psycopg.connect(url) as conn:
        assert run1["maria"] != run1["maria_x"], "run 1 had no link between Maria and her X account"
        assert customer_of(conn, f"twilio:{CA[1]}") == run1["maria"], "the larger customer keeps its id"
        assert customer_of(conn, "x:1800000000000000001") == run1["maria"]
        assert run1["dan"] == run1["dan_call"], "run 1: Dan's form and the home call were one customer"
        events = rows(conn, "select event_type, from_customer_id, to_customer_id from"
                            " intermediate.int_customer_merges order by event_type")
        assert ("merge", run1["maria_x"], run1["maria"]) in events
        assert any(e[0] == "split" and e[1] == run1["dan"] for e in events)
        gone = rows(conn, "select 1 from marts_build.dim_customers where customer_id = %s", (run1["maria_x"],))
        assert gone == []
        history = rows(conn, "select dbt_valid_to is not null from snapshots.customers_snapshot"
                             " where customer_id = %s", (run1["maria_x"],))
        assert history == [(True,)], "the snapshot closes the version of a customer merged away"
        # customers untouched by run 2 kept their ids
        john = customer_of(conn, "call_center:cc-1001")
        assert (john,) in run1["customers"]


def test_a_rerun_on_the_same_data_changes_nothing(world):
    _, run1 = world
    assert run1["enrich3"]["phones"] == 0 and run1["enrich3"]["sentiment"] == 0
    assert run1["after_run3"] == run1["after_run2"]


def test_incremental_interactions_follow_merges(world):
    url, _ = world
    with psycopg.connect(url) as conn:
        stale = rows(conn, """
            select f.interaction_id, f.customer_id, m.customer_id
            from marts_build.fct_interactions as f
            inner join intermediate.int_customer_ids_assigned as m on m.record_id = f.interaction_id
            where f.customer_id is distinct from m.customer_id""")
        assert stale == [], "an incremental run kept the customer of before a merge or split"
        n_fct, n_int = rows(conn, "select (select count(*) from marts_build.fct_interactions),"
                                  " (select count(*) from intermediate.int_interactions_unioned)")[0]
        assert n_fct == n_int


def test_a_survey_becomes_feedback_when_the_complaint_wrap_up_arrives_later(world):
    """Lena's survey follows a call whose complaint wrap-up only lands in run 2: in run 1 the survey is a
    complaint of its own, in run 2 it is the call complaint's feedback (the incremental fact follows)."""
    url, run1 = world
    assert run1["lena_survey_complaint"] == [(True,)]
    with psycopg.connect(url) as conn:
        flags = dict(rows(conn, "select interaction_id, is_complaint from marts_build.fct_interactions"
                                " where interaction_id in (%s, %s)", (f"twilio:{CA[6]}", "qualtrics:R_lena")))
        assert flags == {f"twilio:{CA[6]}": True, "qualtrics:R_lena": False}


def test_complaints_per_channel_and_lifecycle(world):
    url, _ = world
    with psycopg.connect(url) as conn:
        by_channel = dict(rows(conn, "select channel, count(*) from marts_build.fct_complaints group by 1"))
        # Maria's survey followed her complaint call: it is that complaint's feedback, not a new complaint;
        # the partial complaint form is a complaint (a started complaint)
        assert by_channel == {"phone": 2, "call_center": 1, "survey": 1, "web_form": 3, "x": 1, "facebook": 1,
                              "linkedin": 1}
        c = {r[0]: r[1:] for r in rows(conn, """
            select complaint_id, complaint_status, first_response_at, resolved_at, is_rectified,
                   is_retained_afterwards, is_repeat, social_reach, stance, problem_category
            from marts_build.fct_complaints""")}
        maria_call = c[f"twilio:{CA[1]}"]
        assert maria_call[0] == "rectified" and maria_call[3] is True and maria_call[4] is True
        assert maria_call[1] == datetime(2026, 9, 2, 15, 5, tzinfo=UTC)
        assert maria_call[2] == datetime(2026, 9, 4, 11, 4, tzinfo=UTC)
        assert maria_call[7] == "reactive" and maria_call[8] == "billing"
        assert c["x:1800000000000000001"][0] == "responded" and c["x:1800000000000000001"][5] is True
        assert c["x:1800000000000000001"][6] == 1500 + 3 + 1 + 7
        john = c["call_center:cc-1001"]
        assert john[0] == "open" and john[4] is False, "John asked to cancel after his complaint"
        priya = c[f"facebook:{FB_POST}_1"]
        assert priya[0] == "rectified" and priya[4] is True
        assert priya[1] == datetime(2026, 9, 5, 9, 0, tzinfo=UTC)  # the page's reply came first
        assert c[f"linkedin:{LI_COMMENT}"][0] == "responded"
        assert c["qualtrics:R_kim"][0] == "open" and c["qualtrics:R_kim"][8] == "delivery"
        assert c["typeform:tf_carol"][8] == "delivery"
        assert "qualtrics:R_bob" not in c and "qualtrics:R_maria1" not in c
        assert c["typeform:tf_partial"][0] == "open"
        feedback = rows(conn, "select csat_score, required_to_satisfy from marts_build.fct_complaints"
                              " where complaint_id = %s", (f"twilio:{CA[1]}",))
        assert feedback == [(2, "a refund")], "the survey after the call tells what would satisfy the customer"


def test_service_quality_and_customer_segments(world):
    url, _ = world
    with psycopg.connect(url) as conn:
        day = rows(conn, """
            select interactions_count, complaints_count, dpmo, sigma_level, rectified_complainants,
                   rectified_retention_rate
            from marts_build.fct_service_quality_daily
            where channel = 'facebook' and service_date = '2026-09-05'""")
        # the customer's comment (inbound) and the page's reply (outbound): 1 defect, 1 opportunity
        assert [tuple(float(v) for v in r) for r in day] == [(2, 1, 1000000.0, 0, 1, 1)]
        john = rows(conn, "select segment, is_at_risk, has_requested_cancel from marts_build.dim_customers"
                          " where customer_id = %s", (customer_of(conn, "call_center:cc-1001"),))
        assert john == [("churned", False, True)]
        priya = rows(conn, "select segment, latest_nps_category from marts_build.dim_customers"
                           " where customer_id = %s", (customer_of(conn, f"facebook:{FB_POST}_1"),))
        assert priya == [("promoter", "promoter")]
        maria = rows(conn, "select is_at_risk from marts_build.dim_customers where customer_id = %s",
                     (customer_of(conn, f"twilio:{CA[1]}"),))
        assert maria == [(True,)]
        stance = dict(rows(conn, "select interaction_id, stance from marts_build.fct_interactions"
                                 " where interaction_id in (%s, %s)", (f"twilio:{CA[1]}", f"twilio:{CA[2]}")))
        assert stance == {f"twilio:{CA[1]}": "reactive", f"twilio:{CA[2]}": "proactive"}


def test_every_model_and_column_is_documented(world):
    """Every relation dbt built has a "One row per ..." description and every column a description."""
    import yaml

    documented: dict[str, dict] = {}
    for path in (DBT_DIR / "models").rglob("_*__models.yml"):
        for model in yaml.safe_load(path.read_text()).get("models", []):
            documented[model["name"]] = model
    url, _ = world
    with psycopg.connect(url) as conn:
        built = rows(conn, """
            select table_name, array_agg(column_name::text order by ordinal_position)
            from information_schema.columns
            where table_schema in ('staging', 'intermediate', 'marts_build')
              and (table_name like 'stg\\_%' or table_name like 'int\\_%' or table_name like 'dim\\_%'
                   or table_name like 'fct\\_%')
            group by table_name""")
    assert len(built) >= 30
    for name, columns in built:
        assert name in documented, f"model {name} has no entry in a _<folder>__models.yml"
        assert documented[name]["description"].startswith("One row per"), name
        described = {c["name"] for c in documented[name].get("columns", []) if c.get("description")}
        missing = [c for c in columns if c not in described]
        assert not missing, f"{name}: undocumented columns {missing}"
