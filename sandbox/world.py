"""The sandbox world: a seeded population of customers and everything they did, as each vendor serves it.

`generate(world_dir, seed=7, ...)` writes `world_dir/world.db` (SQLite). Every served stream has a table
`s_<stream>` with the record as the vendor serves it (`payload`, JSON text), the world time at which the
record becomes visible (`available_at`, epoch seconds UTC), its natural key, and the columns the vendor
filters on. The truth tables say who really was behind each record and what happened to each complaint;
only tests and benchmarks read them.

The model (per person, in time order): episodes arrive as a Poisson process; an episode is an inbound
call (in-house phone system, or the outsourced call center whose records only reach us by SFTP), a web
form, a social post, or a complaint through one of those channels or a survey. Interactions are followed
by surveys some of the time. Complaints get follow-up calls (and public replies on Facebook / LinkedIn)
and are rectified or not; complainants churn far more often when unrectified, and leavers call in with a
cancel request. Identifiers are written the messy ways real systems write them.
"""

from __future__ import annotations

import base64
import calendar
import json
import math
import multiprocessing
import os
import random
import shutil
import sqlite3
import time
import unicodedata
from collections.abc import Iterable
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import msgspec

DB_NAME = "world.db"
COMPANY_NUMBER = "+18005550199"
COMPANY_NUMBER_FORMS = ["1-800-555-0199", "(800) 555-0199", "8005550199", "+1 800 555 0199"]
X_USER_ID = "1500000000000000001"
X_USERNAME = "AcmeCare"
FB_PAGE_ID = "104857600012345"
FB_PAGE_NAME = "Acme Co"
LI_ORG_URN = "urn:li:organization:7654321"
SURVEY_ID = "SV_crmCsat01"
SFTP_SURVEY_ID = "SV_crmCsat02"
FORMS = {"contact": "cNtAcT01", "complaint": "cMpLnT01", "feedback": "fEeDbK01", "callback": "cAlLbK01"}
CATEGORIES = ["billing", "product", "service", "delivery", "technical", "other"]
AGENTS = [f"agent_{i:03d}" for i in range(1, 41)]
CC_AGENTS = [f"oc_{i:03d}" for i in range(1, 21)]
X_EPOCH_MS = 1288834974657
DAY = 86400

# Sizes of the model: rates per customer-day at activity 1.0.
EPISODE_RATE = 0.085

FIRST = ("James Mary Robert Patricia John Jennifer Michael Linda David Elizabeth William Barbara Richard Susan "
         "Joseph Jessica Thomas Sarah Charles Karen Chris Lisa Daniel Nancy Matthew Betty Anthony Sandra Mark "
         "Ashley Paul Emily Steven Donna Andrew Michelle Kenneth Carol Joshua Amanda Kevin Melissa Brian "
         "Deborah George Stephanie Oliver Amelia Harry Isla Lukas Mia Leon Hannah Hugo Chloe Louis Camille "
         "Noah Emma Liam Sophie Ethan Zoe Mateo Lucia François Zoë José Björn").split()
LAST = ("Smith Johnson Williams Brown Jones Garcia Miller Davis Rodriguez Martinez Hernandez Lopez Gonzalez "
        "Wilson Anderson Thomas Taylor Moore Jackson Martin Lee Perez Thompson White Harris Sanchez Clark "
        "Ramirez Lewis Robinson Walker Young Allen King Wright Scott Torres Nguyen Hill Flores Green Adams "
        "Nelson Baker Hall Rivera Campbell Mitchell Carter Roberts Evans Turner Parker Collins Edwards "
        "Stewart Morris Murphy Cook Rogers Muller Schmidt Schneider Fischer Weber Dubois Bernard Moreau "
        "Patel Shah Khan Okafor Kowalski Novak Rossi Bianchi Müller Núñez Lefèvre O'Brien").split()
US_AREAS = [415, 212, 312, 617, 206, 303, 512, 404, 305, 702, 213, 646, 718, 773, 602, 503, 612, 214, 713,
            919, 704, 615, 801, 816, 412, 216, 313, 314, 858, 510]
DOMAINS = (["gmail.com"] * 38 + ["googlemail.com"] * 2 + ["yahoo.com"] * 14 + ["outlook.com"] * 12
           + ["hotmail.com"] * 10 + ["icloud.com"] * 8 + ["proton.me"] * 4 + ["acme-mail.net"] * 4
           + ["comcast.net"] * 4 + ["aol.com"] * 4)
TYPO_DOMAINS = {"gmail.com": ["gmial.com", "gmail.con", "gamil.com"], "yahoo.com": ["yaho.com", "yahoo.co"],
                "outlook.com": ["outlok.com"], "hotmail.com": ["hotmial.com", "hotmail.co"]}
COUNTRIES = ["US"] * 88 + ["GB"] * 5 + ["DE"] * 4 + ["FR"] * 3
BROWSERS = [("default", "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 Chrome/131.0 Safari/537.36",
             "other"),
            ("default", "Mozilla/5.0 (iPhone; CPU iPhone OS 18_1 like Mac OS X) AppleWebKit/605.1.15 Mobile/15E148",
             "mobile"),
            ("default", "Mozilla/5.0 (Macintosh; Intel Mac OS X 14_6) AppleWebKit/605.1.15 Version/18.1 Safari",
             "other")]

PROBLEMS = {
    "billing": ["I was charged twice for my subscription", "my invoice shows a fee I never agreed to",
                "the refund I was promised never arrived"],
    "product": ["the device stopped working after a week", "the item arrived broken",
                "the product does not do what the page said"],
    "service": ["the agent was rude and hung up on me", "I waited 50 minutes on hold",
                "nobody called me back as promised"],
    "delivery": ["my order is two weeks late", "the parcel was left in the rain and damaged",
                 "the delivery went to the wrong address",
                 "the courier said \"delivered\" – it wasn't.\nI called twice and still nothing"],
    "technical": ["the app crashes every time I log in", "I cannot reset my password",
                  "the website keeps showing an error at checkout"],
    "other": ["your store closed early without notice", "I keep getting marketing emails after unsubscribing",
              "the terms changed without telling me"],
}
SATISFY = ["a full refund", "a replacement sent this week", "an apology and a credit on my account",
           "someone who actually calls me back", "my money back and the fee removed"]
RECTIFY = ["refund the double charge", "send a working replacement", "fix the bug in the app",
           "train your agents", "update my address and resend"]
AVOID = ["check the order before shipping", "answer the phone faster", "test the update before release",
         "tell customers about changes in advance", "put the right price on the website"]
NEG_SOCIAL = [
    "{at} worst customer service ever. {problem}. Still waiting. #fail",
    "Really disappointed with {at}: {problem}. Never again.",
    "{at} this is unacceptable, {problem} and nobody helps",
    "Third time contacting {at} and {problem}. Absolutely terrible.",
    "Angry at {at} today. {problem}. Fix this!",
    "{at} I am so frustrated, {problem}. Thinking of cancelling.",
    "{at} terrible experience 🙄 {problem}",
]
POS_SOCIAL = [
    "Thanks {at} for the quick help today, great service!",
    "Love my new order from {at}, arrived early and works perfectly",
    "Shout out to the {at} team, super friendly support",
    "{at} you guys are awesome, problem solved in five minutes",
    "Great experience with {at} again. Recommended!",
    "{at} the café-style packaging is lovely 👍",
]
NEU_SOCIAL = [
    "{at} what are your opening hours on Sunday?",
    "{at} do you ship to Canada?",
    "Anyone tried the new plan from {at}? Thinking about it",
    "{at} is the summer sale still on?",
    "Not bad {at}, delivery could be a bit faster though",
    "{at} how do I change my delivery address?",
]
NOISE_SOCIAL = [
    "Win a free phone! Follow and RT {at} #giveaway",
    "{at} check out my channel for reviews",
    "lol {at} ad on tv again",
]
PAGE_POSTS = ["Our autumn collection is here!", "Service update: new opening hours for the holidays.",
              "Tell us how we are doing: take our 2-minute survey.", "Tip of the week: track your order in the app.",
              "We are hiring customer care agents!", "Behind the scenes at our warehouse."]
REPLY_TEXT = ["We are sorry to hear this. Please send us a private message with your phone number and we will "
              "call you.", "Sorry about this! Our care team will reach out to you today.",
              "Thanks for letting us know, we are looking into it now."]
INQUIRY_NOTES = ["asked about opening hours", "order status check", "updated address", "plan question",
                 "password reset walk-through", "asked about returns policy"]


# A Twilio call resource, as the Calls list serves it (values are plain ASCII, no escaping needed).
_TWILIO_CALL = (
    '{{"sid":"{sid}","account_sid":"{acct}","parent_call_sid":{parent},"phone_number_sid":null,'
    '"from":"{frm}","from_formatted":"{frm_f}","to":"{to}","to_formatted":"{to_f}","caller_name":{caller},'
    '"direction":"{direction}","status":"{status}","start_time":"{start}","end_time":"{end}",'
    '"date_created":"{created}","date_updated":"{updated}","duration":"{duration}","price":{price},'
    '"price_unit":"USD","answered_by":{answered},"forwarded_from":null,"group_sid":null,'
    '"queue_time":"{queue}","trunk_sid":null,"annotation":null,"api_version":"2010-04-01",'
    '"uri":"/2010-04-01/Accounts/{acct}/Calls/{sid}.json","subresource_uris":{{'
    '"notifications":"/2010-04-01/Accounts/{acct}/Calls/{sid}/Notifications.json",'
    '"recordings":"/2010-04-01/Accounts/{acct}/Calls/{sid}/Recordings.json",'
    '"events":"/2010-04-01/Accounts/{acct}/Calls/{sid}/Events.json",'
    '"user_defined_messages":"/2010-04-01/Accounts/{acct}/Calls/{sid}/UserDefinedMessages.json"}}}}'
)


def _js(v: str | None) -> str:
    return "null" if v is None else f'"{v}"'


def _us_formatted(n: str) -> str:
    if n.startswith("+1") and len(n) == 12:
        return f"({n[2:5]}) {n[5:8]}-{n[8:]}"
    return n


_encode = msgspec.json.Encoder().encode


def _dumps(obj: object) -> str:
    """Compact JSON, UTF-8 kept as is (msgspec: several times faster than json for these records)."""
    return _encode(obj).decode()


class _FastRandom(random.Random):
    """random.Random with cheaper randint/choice (one random() call each). Deterministic by seed."""

    def randint(self, a: int, b: int) -> int:  # type: ignore[override]
        return a + int(self.random() * (b - a + 1))

    def choice(self, seq):  # type: ignore[override]  # noqa: ANN001, ANN201
        return seq[int(self.random() * len(seq))]


_DATE_CACHE: dict[int, tuple[str, str]] = {}


def _dates(day: int) -> tuple[str, str]:
    """('2026-09-01', 'Tue, 01 Sep 2026') for a day number since the epoch, cached."""
    got = _DATE_CACHE.get(day)
    if got is None:
        tm = time.gmtime(day * DAY)
        got = _DATE_CACHE[day] = (time.strftime("%Y-%m-%d", tm), time.strftime("%a, %d %b %Y", tm))
    return got


_HMS = [f"{s // 3600:02d}:{s // 60 % 60:02d}:{s % 60:02d}" for s in range(DAY)]


def _hms(t: int) -> str:
    return _HMS[t % DAY]


def _iso(t: float) -> str:
    t = int(t)
    return f"{_dates(t // DAY)[0]}T{_hms(t)}Z"


def _rfc2822(t: float) -> str:
    t = int(t)
    return f"{_dates(t // DAY)[1]} {_hms(t)} +0000"


def _day(t: float) -> str:
    return _dates(int(t) // DAY)[0]


# numbers on calls that are nobody's own line: the company's, Twilio's anonymous-caller stand-in
_NOT_A_PERSON_LINE = frozenset({COMPANY_NUMBER, "+266696687"})
# a disposition's case_ref names a record as the warehouse does ("typeform:<token>"); a bare key otherwise
_REF_PREFIXES = ("typeform:", "qualtrics:", "x:", "facebook:", "linkedin:", "twilio:", "call_center:")


def _ref_key(case_ref: str) -> str:
    for prefix in _REF_PREFIXES:
        if case_ref.startswith(prefix):
            return case_ref[len(prefix):]
    return case_ref


def parse_start(start: str) -> int:
    return calendar.timegm(time.strptime(start[:10], "%Y-%m-%d"))


# ---------------------------------------------------------------- identifiers, written the messy ways

def phone_variant(rng: random.Random, e164: str, country: str) -> str:
    """The same number as people and systems write it."""
    if country == "US":
        a, b, c = e164[2:5], e164[5:8], e164[8:]
        return rng.choice([f"({a}) {b}-{c}", f"+1 {a} {b} {c}", f"{a}{b}{c}", f"{a}.{b}.{c}", e164,
                           f"1-{a}-{b}-{c}", f"{a}-{b}-{c}", f"({a}) {b}-{c}"])
    cc = {"GB": "44", "DE": "49", "FR": "33"}[country]
    national = e164[1 + len(cc):]
    if country == "FR":
        local = "0" + national
        spaced = " ".join(local[i:i + 2] for i in range(0, 10, 2))
        return rng.choice([e164, spaced, local, f"+33 {national[0]} {national[1:3]} {national[3:5]} "
                           f"{national[5:7]} {national[7:]}", "0033" + national])
    if country == "GB":
        return rng.choice([e164, f"0{national[:4]} {national[4:]}", f"+44 {national[:4]} {national[4:]}",
                           f"0{national}", f"(0{national[:4]}) {national[4:]}"])
    return rng.choice([e164, f"0{national[:3]} {national[3:]}", f"+49 {national[:3]} {national[3:]}",
                       f"0{national[:3]}/{national[3:]}", f"0049{national}"])


def email_variant(rng: random.Random, email: str, typo_rate: float = 0.02) -> str:
    """Case, whitespace, gmail dots and +tags (gmail/googlemail only for dots), rare typos."""
    return email_variant_typo(rng, email, typo_rate)[0]


def email_variant_typo(rng: random.Random, email: str, typo_rate: float = 0.02) -> tuple[str, bool]:
    """email_variant, and whether a typo made it another address (no longer evidence of the person)."""
    local, domain = email.split("@")
    r = rng.random()
    if r < typo_rate:
        if domain in TYPO_DOMAINS and rng.random() < 0.6:
            domain = rng.choice(TYPO_DOMAINS[domain])
        elif len(local) > 3:
            i = rng.randrange(len(local) - 1)
            local = local[:i] + local[i + 1] + local[i] + local[i + 2:]
    typo = f"{local}@{domain}" != email
    gmail = domain in ("gmail.com", "googlemail.com")
    if gmail and rng.random() < 0.25:
        bare = local.replace(".", "")
        if rng.random() < 0.5 or len(bare) < 3:
            local = bare
        else:
            i = rng.randrange(1, len(bare) - 1)
            local = bare[:i] + "." + bare[i:]
    if gmail and rng.random() < 0.12:
        domain = "googlemail.com" if domain == "gmail.com" else "gmail.com"
    if rng.random() < 0.12:
        local = local + "+" + rng.choice(["shop", "acme", "orders", "crm", "news"])
    out = f"{local}@{domain}"
    r = rng.random()
    if r < 0.15:
        out = out.upper() if rng.random() < 0.3 else out[0].upper() + out[1:]
    elif r < 0.22:
        out = local.capitalize() + "@" + domain.capitalize()
    if rng.random() < 0.06:
        out = rng.choice([" ", "  ", "\t"]) + out + rng.choice(["", " ", " \n"])
    return out, typo


@dataclass
class Person:
    pid: str
    idx: int
    first: str
    last: str
    country: str
    phone: str
    household: str | None
    email: str
    email2: str | None
    email_change_at: int | None
    customer_ref: str
    x_id: str | None
    x_username: str | None
    x_followers: int
    fb_id: str | None
    fb_name: str | None
    li_urn: str | None
    li_connections: int
    gives_handle: bool
    grumpiness: float
    joined_at: int
    churned_at: int | None = None
    gave_handle_on: list[str] = field(default_factory=list)


# ---------------------------------------------------------------- writer

SCHEMA = """
create table meta (key text, value text);
create table s_calls (key text, available_at integer, start_day text, end_day text,
    start_ts integer, direction text, payload text);
create table s_dispositions (key text, available_at integer, wrapped_at integer, call_sid text,
    payload text);
create table s_survey_responses (key text, available_at integer, survey_id text,
    recorded_at integer, payload text);
create table s_form_responses (key text, available_at integer, form_id text, ts integer,
    response_type text, payload text);
create table s_x_mentions (key text, id_num integer, available_at integer, created_at integer,
    author_id text, payload text);
create table s_x_users (key text, payload text);
create table s_fb_posts (key text, available_at integer, created_at integer, payload text);
create table s_fb_comments (key text, post_id text, available_at integer, created_at integer,
    seq integer, payload text);
create table s_li_posts (key text, available_at integer, created_at integer, payload text);
create table s_li_comments (key text, post_urn text, available_at integer, created_at integer,
    payload text);
create table s_cc_calls (key text, available_at integer, day text, row text);
create table s_cc_dispositions (key text, available_at integer, day text, row text);
create table s_sftp_survey (key text, available_at integer, day text, row text);
create table truth_people (person_id text, customer_ref text, first_name text, last_name text,
    country text, phone_e164 text, household_id text, emails text, x_user_id text, x_username text,
    x_followers integer, fb_user_id text, li_person_urn text, joined_at text, churned_at text);
create table truth_records (source text, stream text, record_key text, person_id text, complaint_id text,
    kind text, linkable integer, link_via text, evidence text, shared_line integer, link_group text);
create table truth_complaints (complaint_id text, person_id text, channel text, source text,
    stream text, record_key text, category text, opened_at text, first_response_at text, resolved_at text,
    rectified integer, retained integer, social_reach integer);
"""
INDEXES = """
create index s_calls_ts on s_calls(start_ts, key);
create index s_dispositions_w on s_dispositions(wrapped_at, key);
create index s_survey_rec on s_survey_responses(survey_id, recorded_at);
create index s_form_ts on s_form_responses(form_id, ts, key);
create index s_x_id on s_x_mentions(id_num);
create index s_fb_posts_c on s_fb_posts(created_at);
create index s_fb_comments_p on s_fb_comments(post_id, created_at, seq);
create index s_li_posts_c on s_li_posts(created_at);
create index s_li_comments_p on s_li_comments(post_urn, created_at, key);
create index s_cc_calls_d on s_cc_calls(day);
create index s_cc_disp_d on s_cc_dispositions(day);
create index s_sftp_survey_d on s_sftp_survey(day);
create unique index meta_pk on meta(key);
create unique index s_calls_pk on s_calls(key);
create unique index s_dispositions_pk on s_dispositions(key);
create unique index s_survey_responses_pk on s_survey_responses(key);
create unique index s_form_responses_pk on s_form_responses(key);
create unique index s_x_mentions_pk on s_x_mentions(key);
create unique index s_x_users_pk on s_x_users(key);
create unique index s_fb_posts_pk on s_fb_posts(key);
create unique index s_fb_comments_pk on s_fb_comments(key);
create unique index s_li_posts_pk on s_li_posts(key);
create unique index s_li_comments_pk on s_li_comments(key);
create unique index s_cc_calls_pk on s_cc_calls(key);
create unique index s_cc_dispositions_pk on s_cc_dispositions(key);
create unique index s_sftp_survey_pk on s_sftp_survey(key);
create unique index truth_people_pk on truth_people(person_id);
create unique index truth_complaints_pk on truth_complaints(complaint_id);
create unique index truth_records_pk on truth_records(source, stream, record_key);
create index truth_records_person on truth_records(person_id);
"""

TABLE_COLS = {
    "s_calls": 7, "s_dispositions": 5, "s_survey_responses": 5, "s_form_responses": 6, "s_x_mentions": 6,
    "s_x_users": 2, "s_fb_posts": 4, "s_fb_comments": 6, "s_li_posts": 4, "s_li_comments": 5, "s_cc_calls": 4,
    "s_cc_dispositions": 4, "s_sftp_survey": 4, "truth_people": 15, "truth_records": 11, "truth_complaints": 13,
}


class _Sink:
    def __init__(self, conn: sqlite3.Connection) -> None:
        self.conn = conn
        self.rows: dict[str, list[tuple]] = {t: [] for t in TABLE_COLS}
        self.counts: dict[str, int] = dict.fromkeys(TABLE_COLS, 0)

    def add(self, table: str, row: tuple) -> None:
        self.rows[table].append(row)

    def flush(self) -> None:
        for table, rows in self.rows.items():
            if rows:
                marks = ",".join("?" * TABLE_COLS[table])
                self.conn.executemany(f"insert into {table} values ({marks})", rows)
                self.counts[table] += len(rows)
                rows.clear()


# ---------------------------------------------------------------- the world

class _World:
    def __init__(self, rng: random.Random, start: int, end: int, sink: _Sink, chunk: int = 0) -> None:
        self.rng = rng
        self.start = start
        self.end = end
        self.sink = sink
        self.chunk = chunk  # ids made here carry the chunk number, so chunks never collide
        self.tweet_seq = 0
        self.complaint_seq = 0
        self.cc_seq = 0
        self.fb_comment_seq = 0
        self.li_comment_seq = 0
        self.account_sid = "AC" + f"{rng.getrandbits(128):032x}"
        self.dumps = _dumps
        self.fb_posts: list[tuple[int, str]] = []
        self.li_posts: list[tuple[int, str, str]] = []
        self.x_users_written: set[str] = set()
        self.cc_anonymous = False
        self.linkable = True
        # what the last record written carries that identifies its person or references another record
        # ("phone:+1...", "email:...", "x:<user id>", "fb:<id>", "li:<urn>", "cust:<ref>", "ref:<record key>")
        self.evidence: list[str] = []
        self.last_likes = 0
        self.stored = False  # whether the last record written fell inside the world (truth follows it)

    # ---- ids
    def hex32(self) -> str:
        return f"{self.rng.getrandbits(128):032x}"

    def record(self, source: str, stream: str, key: str, person: Person | None, complaint: str | None,
               kind: str, linkable: bool, link_via: str | None) -> None:
        if not self.stored:
            return
        tokens = [*self.evidence, "ref:" + key] if person is not None else []
        shared_line = False
        if person is not None and person.household:
            # a line the whole household shares identifies the household, not one of its people
            line = "phone:" + person.phone
            shared_line = line in tokens
            tokens = [t for t in tokens if t != line]
            shared_line = shared_line and not any(not t.startswith("ref:") for t in tokens)
        self.sink.add("truth_records", (source, stream, key, person.pid if person else None, complaint, kind,
                                        int(linkable), link_via, " ".join(dict.fromkeys(tokens)),
                                        int(shared_line), None))

    # ---- company content
    def company_posts(self) -> None:
        rng = self.rng
        t = self.start - 3 * DAY
        n = 0
        while t < self.end:
            for _ in range(rng.choice([1, 1, 2])):
                ts = t + rng.randint(9 * 3600, 17 * 3600)
                if ts >= self.end:
                    continue
                n += 1
                pid = f"{FB_PAGE_ID}_{900000000000000 + n * 7919}"
                payload = {"id": pid, "message": rng.choice(PAGE_POSTS),
                           "created_time": time.strftime("%Y-%m-%dT%H:%M:%S+0000", time.gmtime(ts)),
                           "from": {"name": FB_PAGE_NAME, "id": FB_PAGE_ID},
                           "permalink_url": f"https://www.facebook.com/{FB_PAGE_ID}/posts/{pid.split('_')[1]}"}
                self.fb_posts.append((ts, pid))
                self.sink.add("s_fb_posts", (pid, ts, ts, self.dumps(payload)))
                self.stored = True
                self.record("social_facebook", "posts", pid, None, None, "company_post", False, None)
            if rng.random() < 0.6:
                ts = t + rng.randint(8 * 3600, 18 * 3600)
                if ts < self.end:
                    n += 1
                    act = 7300000000000000000 + n * 104729
                    urn = f"urn:li:share:{act}"
                    payload = {"id": urn, "author": LI_ORG_URN, "commentary": rng.choice(PAGE_POSTS),
                               "visibility": "PUBLIC", "lifecycleState": "PUBLISHED",
                               "distribution": {"feedDistribution": "MAIN_FEED", "targetEntities": [],
                                                "thirdPartyDistributionChannels": []},
                               "isReshareDisabledByAuthor": False,
                               "createdAt": ts * 1000, "publishedAt": ts * 1000, "lastModifiedAt": ts * 1000}
                    self.li_posts.append((ts, urn, f"urn:li:activity:{act + 1}"))
                    self.sink.add("s_li_posts", (urn, ts, ts * 1000, self.dumps(payload)))
                    self.stored = True
                    self.record("social_linkedin", "posts", urn, None, None, "company_post", False, None)
            t += DAY
        self.fb_posts.sort()
        self.li_posts.sort()

    # ---- phone system
    def twilio_call(self, t: int, frm: str, to: str, direction: str, status: str, duration: int,
                    caller_name: str | None = None, parent: str | None = None) -> tuple[str, int]:
        rng = self.rng
        sid = "CA" + self.hex32()
        queue = rng.randint(0, 240) if direction == "inbound" else 0
        begin = t + queue
        end = begin + duration
        completed = status == "completed"
        price = None if rng.random() < 0.04 else "-%.5f" % (0.0085 * max(1, math.ceil(duration / 60)) +
                                                           (0.013 if direction != "inbound" else 0))
        self.stored = end < self.end
        self.evidence = [f"phone:{n}" for n in (frm, to) if n.startswith("+") and n not in _NOT_A_PERSON_LINE]
        if self.stored:
            date_updated = end + rng.randint(1, 60)
            self.sink.add("s_calls", (sid, end, _day(begin), _day(end), begin, direction, _TWILIO_CALL.format(
                sid=sid, acct=self.account_sid, parent=_js(parent), frm=frm, frm_f=_us_formatted(frm), to=to,
                to_f=_us_formatted(to),
                caller=_js(caller_name), direction=direction, status=status, start=_rfc2822(begin),
                end=_rfc2822(end), created=_rfc2822(t), updated=_rfc2822(date_updated),
                duration=duration if completed else 0, price=_js(price),
                answered=_js(None if direction == "inbound" else ("human" if completed else None)),
                queue=queue * 1000)))
        return sid, end

    def disposition(self, call_sid: str, call_end: int, code: str, category: str | None, case_ref: str | None,
                    case_status: str | None, notes: str, outsourced: bool) -> str | None:
        rng = self.rng
        wrapped = call_end + rng.randint(20, 300)
        if wrapped >= self.end:
            return None
        did = "WU" + self.hex32()
        row = {"disposition_id": did, "call_sid": call_sid,
               "agent_id": rng.choice(CC_AGENTS if outsourced else AGENTS), "wrapped_at": _iso(wrapped),
               "code": code, "category": category, "case_ref": case_ref, "case_status": case_status,
               "notes": notes}
        self.stored = True
        self.evidence = ["ref:" + call_sid] + (["ref:" + _ref_key(case_ref)] if case_ref else [])
        if outsourced:
            self.sink.add("s_cc_dispositions", (did, wrapped, _day(wrapped), self.dumps(row)))
        else:
            self.sink.add("s_dispositions", (did, wrapped, wrapped, call_sid, self.dumps(row)))
        return did

    def cc_call(self, t: int, p: Person, status: str, duration: int) -> tuple[str, int]:
        """A call of the outsourced call center (reaches us only through the daily SFTP CDR)."""
        rng = self.rng
        self.cc_seq += 1
        cid = f"OC{_day(t).replace('-', '')}{self.chunk:04d}{self.cc_seq:06d}"
        queue = rng.randint(0, 400)
        end = t + queue + duration
        self.cc_anonymous = rng.random() < 0.05
        caller = "Anonymous" if self.cc_anonymous else phone_variant(rng, p.phone, p.country)
        dialed = rng.choice(COMPANY_NUMBER_FORMS + [COMPANY_NUMBER])
        row = {"call_id": cid, "started_at": time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(t)),
               "ended_at": time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(end)), "direction": "inbound",
               "caller_number": caller, "dialed_number": dialed, "agent_id": rng.choice(CC_AGENTS),
               "duration_seconds": str(duration), "queue_seconds": str(queue), "status": status}
        self.stored = end < self.end
        self.evidence = [] if self.cc_anonymous else [f"phone:{p.phone}"]
        if self.stored:
            self.sink.add("s_cc_calls", (cid, end, _day(end), self.dumps(row)))
        return cid, end

    # ---- forms
    def form_response(self, t: int, p: Person, kind: str, complaint: bool, category: str | None,
                      text: str, partial: bool = False) -> tuple[str, int, dict]:
        rng = self.rng
        form_id = FORMS[kind]
        token = f"{rng.getrandbits(128):032x}"
        token = token[:16] + token[16:32]
        landed = t - rng.randint(30, 900)
        refs: list[tuple[str, str, object]] = []
        refs.append(("full_name", "text", f"{p.first} {p.last}" if rng.random() < 0.9 else p.first))
        email = p.email2 if p.email2 and p.email_change_at and t >= p.email_change_at else p.email
        tokens: dict[str, str] = {}  # answer ref -> evidence token (a typo or the company's number is none)
        if rng.random() < 0.9:
            written, typo = email_variant_typo(rng, email)
            refs.append(("email", "email", written))
            if not typo:
                tokens["email"] = f"email:{email}"
        r = rng.random()
        if r < 0.7:
            refs.append(("phone", "phone_number", phone_variant(rng, p.phone, p.country)))
            tokens["phone"] = f"phone:{p.phone}"
        elif r < 0.74:
            refs.append(("phone", "phone_number", rng.choice(COMPANY_NUMBER_FORMS)))
        if kind in ("complaint", "contact") and category:
            refs.append(("category", "choice", {"label": category.capitalize()}))
        if kind == "complaint" and rng.random() < 0.5:
            refs.append(("order_number", "text", f"A{rng.randint(100000, 999999)}"))
        refs.append(("message", "text", text))
        handle_given = False
        if p.x_username and p.gives_handle and rng.random() < 0.6:
            refs.append(("social_handle", "text", rng.choice(["@", "@", ""]) + p.x_username))
            tokens["social_handle"] = f"x:{p.x_id}"
            handle_given = True
        if kind == "callback":
            refs.append(("wants_callback", "boolean", True))
        if kind == "feedback":
            refs.append(("satisfaction", "number", 1 if complaint else rng.choice([3, 4, 4, 5, 5])))
        if partial:
            refs = refs[: rng.randint(0, max(1, len(refs) - 2))]
            handle_given = handle_given and any(r[0] == "social_handle" for r in refs)
        logged_in = rng.random() < 0.35
        self.linkable = logged_in or any(r[0] in ("email", "phone", "social_handle") for r in refs)
        self.evidence = [tokens[r[0]] for r in refs if r[0] in tokens] + ([f"cust:{p.customer_ref}"] if logged_in
                                                                         else [])
        answers = []
        for ref, typ, val in refs:
            answers.append({"field": {"id": (ref + "XXXXXXXX")[:8].replace("_", "X") + form_id[-2:],
                                      "type": {"text": "short_text" if ref != "message" else "long_text",
                                               "email": "email", "phone_number": "phone_number",
                                               "choice": "multiple_choice", "boolean": "yes_no",
                                               "number": "rating"}[typ],
                                      "ref": ref}, "type": typ, typ: val})
        ua = rng.choice(BROWSERS)
        item = {"landing_id": token, "token": token, "response_id": token, "response_type":
                "partial" if partial else "completed", "landed_at": _iso(landed),
                "metadata": {"user_agent": ua[1], "platform": ua[2], "referer":
                             f"https://www.acme.example/{kind}", "network_id": f"{rng.getrandbits(40):010x}",
                             "browser": ua[0]},
                "hidden": {"customer_ref": p.customer_ref if logged_in else ""},
                "calculated": {"score": 0}, "variables": [],
                "answers": answers if answers else None}
        if not partial:
            item["submitted_at"] = _iso(t)
        ts = landed if partial else t  # a partial response has no submitted_at: it is known by landed_at
        self.stored = ts < self.end
        if self.stored:
            self.sink.add("s_form_responses", (token, ts, form_id, ts, "partial" if partial else "completed",
                                               self.dumps(item)))
        if handle_given:
            p.gave_handle_on.append(_iso(t))
        return token, ts, {"handle": handle_given}

    # ---- surveys
    def survey(self, t: int, p: Person, ext_ref: str, problem: bool, category: str | None,
               via_sftp: bool) -> tuple[str, int, bool]:
        rng = self.rng
        rid = "R_" + "".join(rng.choice("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789")
                             for _ in range(15))
        start_t = t - rng.randint(60, 600)
        csat = rng.choice([1, 1, 2, 2, 3]) if problem else rng.choice([3, 4, 4, 5, 5, 5])
        nps = rng.randint(0, 5) if problem else rng.randint(6, 10)
        channel = rng.choice(["email", "email", "sms", "anonymous"]) if not via_sftp else "sms"
        if channel == "anonymous":
            ext_ref = ""
        email = p.email2 if p.email2 and p.email_change_at and t >= p.email_change_at else p.email
        handle = bool(p.x_username and p.gives_handle and rng.random() < 0.5)
        evidence = [f"ref:{ext_ref}"] if ext_ref else []
        values: dict[str, object] = {
            "startDate": _iso(start_t), "endDate": _iso(t), "status": 0,
            "ipAddress": f"203.0.113.{rng.randint(1, 254)}", "progress": 100, "duration": t - start_t,
            "finished": 1, "_recdelay": rng.randint(0, 5),
            "_recordId": rid, "locationLatitude": f"37.7{rng.randint(0, 9999):04d}",
            "locationLongitude": f"-122.4{rng.randint(0, 9999):04d}",
            "distributionChannel": channel, "userLanguage": "EN",
            "recipientEmail": (written := email_variant_typo(rng, email) if channel == "email" else ("", True))[0],
            "recipientFirstName": p.first if channel == "email" else "",
            "recipientLastName": p.last if channel == "email" else "",
            "externalDataReference": ext_ref,
            "QID1": csat, "QID2": nps, "QID3": 1 if problem else 2,
        }
        if problem:
            cat = category or "other"
            values["QID4_TEXT"] = rng.choice(PROBLEMS[cat])
            values["QID5_TEXT"] = rng.choice(SATISFY)
            values["QID6_TEXT"] = rng.choice(RECTIFY)
            values["QID7_TEXT"] = rng.choice(AVOID)
            values["QID10"] = CATEGORIES.index(cat) + 1
        if not written[1]:  # no typo: the person's own address
            evidence.append(f"email:{email}")
        if rng.random() < 0.35:
            values["QID8_TEXT"] = phone_variant(rng, p.phone, p.country)
            evidence.append(f"phone:{p.phone}")
        if handle:
            evidence.append(f"x:{p.x_id}")
            values["QID9_TEXT"] = "@" + p.x_username if rng.random() < 0.7 else p.x_username
        rec_t = t + int(values.pop("_recdelay"))
        self.linkable = bool(ext_ref or channel == "email" or "QID8_TEXT" in values or handle)
        self.evidence = evidence
        values["recordedDate"] = _iso(rec_t)
        if handle:
            p.gave_handle_on.append(_iso(rec_t))
        self.stored = rec_t < self.end
        if via_sftp:
            row = _qualtrics_csv_row(rid, values)
            if self.stored:
                self.sink.add("s_sftp_survey", (rid, rec_t, _day(rec_t), self.dumps(row)))
        else:
            labels = {"status": "IP Address", "finished": "True", "QID1": str(csat), "QID2": str(nps),
                      "QID3": "Yes" if problem else "No"}
            if problem:
                labels["QID10"] = (category or "other").capitalize()
            payload = {"responseId": rid, "values": values, "labels": labels,
                       "displayedFields": sorted(k for k in values if k.startswith("QID")),
                       "displayedValues": {}}
            if rec_t < self.end:
                self.sink.add("s_survey_responses", (rid, rec_t, SURVEY_ID, rec_t, self.dumps(payload)))
        return rid, rec_t, handle

    # ---- social
    def x_user(self, p: Person | None, uid: str, username: str, name: str, followers: int) -> None:
        if uid in self.x_users_written:
            return
        self.x_users_written.add(uid)
        payload = {"id": uid, "username": username, "name": name, "verified": followers > 50000,
                   "description": "" if p is None else self.rng.choice(["", "Coffee. Code. Cats.",
                                                                          "Dad, runner", "views my own"]),
                   "public_metrics": {"followers_count": followers, "following_count": self.rng.randint(10, 900),
                                      "tweet_count": self.rng.randint(20, 30000), "listed_count": 0,
                                      "like_count": self.rng.randint(0, 5000)}}
        self.sink.add("s_x_users", (uid, self.dumps(payload)))

    def x_mention(self, t: int, author_id: str, text: str) -> str | None:
        if t >= self.end:
            return None
        self.tweet_seq += 1
        idn = ((t * 1000 + self.chunk % 1000 - X_EPOCH_MS) << 22) | (self.tweet_seq & 0x3FFFFF)
        tid = str(idn)
        payload = {"id": tid, "text": text, "created_at": time.strftime("%Y-%m-%dT%H:%M:%S.000Z",
                                                                        time.gmtime(t)),
                   "author_id": author_id, "conversation_id": tid, "in_reply_to_user_id": X_USER_ID,
                   "lang": "en", "edit_history_tweet_ids": [tid],
                   "public_metrics": {"retweet_count": self.rng.randint(0, 5), "reply_count": self.rng.randint(0, 3),
                                      "like_count": self.rng.randint(0, 40), "quote_count": 0,
                                      "bookmark_count": 0, "impression_count": self.rng.randint(10, 5000)}}
        self.stored = True
        self.evidence = [f"x:{author_id}"]
        self.sink.add("s_x_mentions", (tid, idn, t, t, author_id, self.dumps(payload)))
        return tid

    def _fb_post_for(self, t: int) -> tuple[str, int] | None:
        import bisect
        i = bisect.bisect_left(self.fb_posts, (t, "")) - 1
        if i < 0:
            return None
        j = max(0, i - self.rng.randint(0, 2))
        return self.fb_posts[j][1], self.fb_posts[j][0]

    def fb_comment(self, t: int, frm: dict | None, text: str, parent: str | None = None,
                   post: str | None = None) -> tuple[str, str] | None:
        if t >= self.end:
            return None
        if post is None:
            found = self._fb_post_for(t)
            if not found:
                return None
            post = found[0]
        self.fb_comment_seq += 1
        seq = self.chunk * 10_000_000 + self.fb_comment_seq
        likes = self.last_likes = self.rng.choice([0, 0, 0, 1, 2, 5, 12, 40])
        cid = f"{post.split('_')[1]}_{1000000000000 + seq * 37}"
        payload: dict[str, object] = {"id": cid, "message": text,
                                      "created_time": time.strftime("%Y-%m-%dT%H:%M:%S+0000", time.gmtime(t)),
                                      "like_count": likes,
                                      "comment_count": 0,
                                      "permalink_url": f"https://www.facebook.com/{post.replace('_', '/posts/')}"
                                                       f"?comment_id={cid.split('_')[1]}"}
        if frm is not None:
            payload["from"] = frm
        if parent:
            payload["parent"] = {"id": parent}
        self.stored = True
        self.evidence = [f"fb:{frm['id']}"] if frm is not None and frm.get("id") != FB_PAGE_ID else []
        self.sink.add("s_fb_comments", (cid, post, t, t, seq, self.dumps(payload)))
        return cid, post

    def li_comment(self, t: int, actor: str, text: str, post: tuple[int, str, str] | None = None,
                   parent: str | None = None) -> tuple[str, tuple] | None:
        import bisect
        if t >= self.end:
            return None
        if post is None:
            i = bisect.bisect_left(self.li_posts, (t, "", "")) - 1
            if i < 0:
                return None
            post = self.li_posts[max(0, i - self.rng.randint(0, 2))]
        self.li_comment_seq += 1
        likes = self.last_likes = self.rng.choice([0, 0, 1, 3, 8, 25])
        cnum = 7400000000000000000 + (self.chunk * 10_000_000 + self.li_comment_seq) * 131
        urn = f"urn:li:comment:({post[2]},{cnum})"
        payload = {"$URN": urn, "id": str(cnum), "actor": actor, "agent": actor,
                   "message": {"text": text, "attributes": []},
                   "created": {"actor": actor, "time": t * 1000}, "lastModified": {"actor": actor, "time": t * 1000},
                   "object": post[2],
                   "likesSummary": {"totalLikes": likes, "likedByCurrentUser": False,
                                    "aggregatedTotalLikes": 0, "selectedLikes": []},
                   "commentsSummary": {"totalFirstLevelComments": 0, "aggregatedTotalComments": 0,
                                       "selectedComments": []},
                   "commentUrn": urn}
        if parent:
            payload["parentComment"] = parent
        self.stored = True
        self.evidence = [f"li:{actor}"] if actor != LI_ORG_URN else []
        self.sink.add("s_li_comments", (urn, post[1], t, t * 1000, self.dumps(payload)))
        return urn, post


QUALTRICS_COLUMNS = ["StartDate", "EndDate", "Status", "IPAddress", "Progress", "Duration (in seconds)",
                     "Finished", "RecordedDate", "ResponseId", "RecipientLastName", "RecipientFirstName",
                     "RecipientEmail", "ExternalReference", "LocationLatitude", "LocationLongitude",
                     "DistributionChannel", "UserLanguage", "QID1", "QID2", "QID3", "QID4_TEXT", "QID5_TEXT",
                     "QID6_TEXT", "QID7_TEXT", "QID8_TEXT", "QID9_TEXT", "QID10"]
QUALTRICS_QUESTIONS = {
    "QID1": "How satisfied are you with our service?", "QID2": "How likely are you to recommend us?",
    "QID3": "Was there a problem?", "QID4_TEXT": "What was the problem?",
    "QID5_TEXT": "What would you require to be satisfied?", "QID6_TEXT": "What is necessary to rectify it?",
    "QID7_TEXT": "How could it have been avoided?",
    "QID8_TEXT": "Phone number (optional – we’ll only call you about this)",  # cp1252 files need these
    "QID9_TEXT": "X / social handle (optional)", "QID10": "Problem category",
}
_CSV_FROM_VALUES = {"StartDate": "startDate", "EndDate": "endDate", "Status": "status", "IPAddress": "ipAddress",
                    "Progress": "progress", "Duration (in seconds)": "duration", "Finished": "finished",
                    "RecordedDate": "recordedDate", "RecipientLastName": "recipientLastName",
                    "RecipientFirstName": "recipientFirstName", "RecipientEmail": "recipientEmail",
                    "ExternalReference": "externalDataReference", "LocationLatitude": "locationLatitude",
                    "LocationLongitude": "locationLongitude", "DistributionChannel": "distributionChannel",
                    "UserLanguage": "userLanguage"}


def _qualtrics_csv_row(rid: str, values: dict) -> dict[str, str]:
    row = {}
    for col in QUALTRICS_COLUMNS:
        if col == "ResponseId":
            row[col] = rid
            continue
        key = _CSV_FROM_VALUES.get(col, col)
        v = values.get(key, "")
        if col in ("StartDate", "EndDate", "RecordedDate") and v:
            v = str(v).replace("T", " ").rstrip("Z")
        row[col] = "" if v is None else str(v)
    return row


def qualtrics_header_rows() -> tuple[list[str], list[str], list[str]]:
    """The three header rows of a Qualtrics CSV export: ids, question texts, ImportIds."""
    texts = [QUALTRICS_QUESTIONS.get(c, c) for c in QUALTRICS_COLUMNS]
    import_ids = []
    for c in QUALTRICS_COLUMNS:
        if c.startswith("QID"):
            import_ids.append(json.dumps({"ImportId": c}))
        else:
            import_ids.append(json.dumps({"ImportId": c[0].lower() + c[1:].replace(" (in seconds)", "")}))
    return list(QUALTRICS_COLUMNS), texts, import_ids


def _ascii(name: str) -> str:
    return unicodedata.normalize("NFKD", name).encode("ascii", "ignore").decode().replace("'", "")


def _make_people(rng: random.Random, n: int, start: int) -> list[Person]:
    people: list[Person] = []
    used_phones: set[str] = set()
    used_emails: set[str] = set()
    i = 0
    household_seq = 0
    while len(people) < n:
        i += 1
        country = rng.choice(COUNTRIES)
        last = rng.choice(LAST)
        size = 1
        if rng.random() < 0.035:
            size = rng.choice([2, 2, 3])
        while True:
            if country == "US":
                phone = (f"+1{rng.choice(US_AREAS)}{rng.randint(2, 9)}{rng.randint(0, 99):02d}"
                         f"{rng.randint(0, 9999):04d}")
                if phone[5:8] == "555" or phone[6:8] == "11":
                    continue
            elif country == "GB":
                phone = f"+447{rng.randint(4, 9)}{rng.randint(0, 99999999):08d}"
            elif country == "DE":
                phone = f"+4915{rng.choice([1, 2, 7])}{rng.randint(0, 99999999):08d}"
            else:
                phone = f"+336{rng.randint(0, 99999999):08d}"
            if phone not in used_phones:
                used_phones.add(phone)
                break
        household = None
        if size > 1:
            household_seq += 1
            household = f"H{household_seq:05d}"
        for _ in range(size):
            if len(people) >= n:
                break
            idx = len(people)
            first = rng.choice(FIRST)
            af, al = _ascii(first), _ascii(last)
            while True:
                style = rng.random()
                base = (f"{af}.{al}" if style < 0.45 else f"{af}{al}" if style < 0.7
                        else f"{af[0]}{al}" if style < 0.85 else f"{af}_{al}").lower()
                if rng.random() < 0.5:
                    base += str(rng.randint(1, 999))
                email = f"{base}@{rng.choice(DOMAINS)}"
                if email not in used_emails and email.replace(".", "") not in used_emails:
                    used_emails.add(email)
                    used_emails.add(email.replace(".", ""))
                    break
            email2 = None
            change_at = None
            if rng.random() < 0.06:
                e2 = f"{af.lower()}.{al.lower()}{rng.randint(1000, 9999)}@{rng.choice(DOMAINS)}"
                if e2 not in used_emails:
                    used_emails.add(e2)
                    email2 = e2
            has_x = rng.random() < 0.35
            x_username = None
            x_id = None
            if has_x:
                x_username = (rng.choice([af, af[0]]) + rng.choice(["", "_"]) + al
                              + str(rng.randint(1, 99))).lower()[:15]
                x_id = str(1000000000 + idx * 7 + rng.randint(0, 6))
            followers = int(min(2_000_000, math.exp(rng.gauss(4.5, 1.7))))
            has_fb = rng.random() < 0.35
            has_li = rng.random() < 0.2
            people.append(Person(
                pid=f"P{idx + 1:06d}", idx=idx, first=first, last=last, country=country, phone=phone,
                household=household, email=email, email2=email2, email_change_at=change_at,
                customer_ref=f"CUST-{idx + 1:06d}", x_id=x_id, x_username=x_username, x_followers=followers,
                fb_id=f"1000{idx * 13 + 7:011d}" if has_fb else None,
                fb_name=(f"{first} {last}" if rng.random() < 0.8 else f"{first} {last[0]}.") if has_fb else None,
                li_urn=("urn:li:person:" + base64.urlsafe_b64encode(rng.getrandbits(60).to_bytes(8, "big")
                                                                     ).decode()[:10]) if has_li else None,
                li_connections=rng.randint(30, 3000), gives_handle=rng.random() < 0.45,
                grumpiness=rng.betavariate(1.3, 5.0), joined_at=start - rng.randint(30, 3000) * DAY,
            ))
    _unique_mailboxes_and_usernames(people)
    return people


def _mailbox(email: str) -> str:
    """The mailbox an address reaches: gmail ignores dots, and googlemail.com is gmail.com."""
    local, domain = email.split("@")
    if domain in ("gmail.com", "googlemail.com"):
        return local.replace(".", "") + "@gmail.com"
    return email


def _unique_mailboxes_and_usernames(people: list[Person]) -> None:
    """A mailbox or an X username belongs to one person. The draws above can give two people one gmail mailbox
    ("amanda.brown@gmail.com" and "amandabrown@gmail.com") or one username; the later person gets a numbered
    one, without a random draw (the rest of the world does not move)."""
    mailboxes: set[str] = set()
    usernames: set[str] = set()
    for p in people:
        for attr in ("email", "email2"):
            email = getattr(p, attr)
            if email is None:
                continue
            local, domain = email.split("@")
            n = 1
            while _mailbox(email) in mailboxes:
                n += 1
                email = f"{local}{n}@{domain}"
            mailboxes.add(_mailbox(email))
            setattr(p, attr, email)
        if p.x_username:
            name, n = p.x_username, 1
            while name in usernames:
                n += 1
                name = f"{p.x_username[:15 - len(str(n))]}{n}"
            usernames.add(name)
            p.x_username = name


@dataclass
class _Complaint:
    cid: str
    channel: str
    source: str
    stream: str
    key: str
    case_ref: str
    category: str
    opened: int
    reach: int | None
    contactable: bool
    public_reply: str | None = None  # "facebook" | "linkedin"
    public_target: tuple | None = None


def generate(world_dir: str | Path, seed: int = 7, customers: int = 2000, days: int = 30,
             start: str = "2026-09-01", activity: float = 1.0, workers: int | None = None) -> dict:
    """Write `world_dir/world.db` for this seed; return a summary (counts, seconds, phases).

    Replaces an old world. People are simulated in chunks of CHUNK with a random stream per chunk, so
    the world depends on the seed only, not on `workers` (processes; default: one per CPU)."""
    t0 = time.perf_counter()
    world_dir = Path(world_dir)
    world_dir.mkdir(parents=True, exist_ok=True)
    path = world_dir / DB_NAME
    for stale in (world_dir / "sftp_root", world_dir / "sftp_drops.json"):  # drops of an older world
        if stale.is_dir():
            shutil.rmtree(stale)
        elif stale.exists():
            stale.unlink()
    tmp = world_dir / (DB_NAME + ".tmp")
    if tmp.exists():
        tmp.unlink()
    conn = sqlite3.connect(tmp)
    conn.execute("pragma page_size=16384")
    conn.execute("pragma journal_mode=off")
    conn.execute("pragma synchronous=off")
    conn.execute("pragma locking_mode=exclusive")
    conn.execute("pragma temp_store=memory")
    conn.execute("pragma cache_size=-200000")
    phases: dict[str, float] = {}
    conn.executescript(SCHEMA)
    rng = _FastRandom(seed)
    t_start = parse_start(start)
    t_end = t_start + days * DAY
    sink = _Sink(conn)
    w = _World(rng, t_start, t_end, sink, chunk=999)
    w.company_posts()
    people = _make_people(rng, customers, t_start)
    for p in people:
        if p.email2:
            p.email_change_at = t_start + rng.randint(0, days * DAY)
    phases["people"] = time.perf_counter() - t0
    specs = [_ChunkSpec(i, seed, t_start, t_end, days, activity, w.account_sid, w.fb_posts, w.li_posts,
                        people[i * CHUNK:(i + 1) * CHUNK]) for i in range((len(people) + CHUNK - 1) // CHUNK)]
    procs = min(len(specs), os.cpu_count() or 1) if workers is None else max(1, workers)
    handle_people: list[str] = []
    if procs <= 1 or len(specs) <= 1:
        for spec in specs:
            handle_people += _run_chunk(spec, sink)
    else:
        paths = [world_dir / f"{DB_NAME}.chunk{spec.index}" for spec in specs]
        ctx = multiprocessing.get_context("fork" if "fork" in multiprocessing.get_all_start_methods() else None)
        sink.flush()
        with ProcessPoolExecutor(max_workers=procs, mp_context=ctx) as pool:
            # chunks are merged in order as they finish, while the workers simulate the later ones
            for path_i, (handles, counts) in zip(paths, pool.map(_run_chunk_file, specs, paths), strict=True):
                handle_people += handles
                conn.execute("attach database ? as chunk", (str(path_i),))
                for table in TABLE_COLS:
                    conn.execute(f"insert into main.{table} select * from chunk.{table}")
                    sink.counts[table] += counts[table]
                conn.commit()
                conn.execute("detach database chunk")
                path_i.unlink()
        phases["simulate"] = time.perf_counter() - t0 - sum(phases.values())
    _noise_accounts(w, customers, days, activity)
    sink.flush()
    phases["merge" if "simulate" in phases else "simulate"] = time.perf_counter() - t0 - sum(phases.values())
    # (with workers, "simulate" includes merging the chunks as they arrive; "merge" is what is left)
    conn.executescript(INDEXES)
    phases["index"] = time.perf_counter() - t0 - sum(phases.values())
    _fix_linkability(conn, handle_people)
    _link_groups(conn)
    meta = {"seed": seed, "customers": customers, "days": days, "start": start, "activity": activity,
            "start_ts": t_start, "end_ts": t_end, "account_sid": w.account_sid, "x_user_id": X_USER_ID,
            "x_username": X_USERNAME, "fb_page_id": FB_PAGE_ID, "li_org_urn": LI_ORG_URN,
            "survey_id": SURVEY_ID, "forms": FORMS, "company_number": COMPANY_NUMBER, "version": 1}
    conn.executemany("insert into meta values (?, ?)", [(k, json.dumps(v)) for k, v in meta.items()])
    conn.commit()
    conn.close()
    tmp.replace(path)
    phases["finish"] = time.perf_counter() - t0 - sum(phases.values())
    counts = {k: v for k, v in sink.counts.items()}
    interactions = sum(v for k, v in counts.items() if k.startswith("s_") and k != "s_x_users")
    return {"path": str(path), "seconds": round(time.perf_counter() - t0, 2), "interactions": interactions,
            "phases": {k: round(v, 2) for k, v in phases.items()}, "counts": counts}


CHUNK = 5000


@dataclass
class _ChunkSpec:
    index: int
    seed: int
    start: int
    end: int
    days: int
    activity: float
    account_sid: str
    fb_posts: list
    li_posts: list
    people: list


def _run_chunk(spec: _ChunkSpec, sink: _Sink) -> list[str]:
    """Simulate one chunk of people into `sink`; return who gave their X handle (within the world)."""
    rng = _FastRandom(spec.seed * 1_000_003 + spec.index + 1)
    w = _World(rng, spec.start, spec.end, sink, chunk=spec.index)
    w.account_sid = spec.account_sid
    w.fb_posts, w.li_posts = spec.fb_posts, spec.li_posts
    counters = {"complaints": 0}
    end_iso = _iso(spec.end)
    handles = []
    for p in spec.people:
        _live(w, p, spec.days, spec.activity, counters)
        sink.add("truth_people", (
            p.pid, p.customer_ref, p.first, p.last, p.country, p.phone, p.household,
            json.dumps([e for e in (p.email, p.email2) if e]), p.x_id, p.x_username, p.x_followers, p.fb_id,
            p.li_urn, _iso(p.joined_at), _iso(p.churned_at) if p.churned_at else None))
        if any(d < end_iso for d in p.gave_handle_on):
            handles.append(p.pid)
        if len(sink.rows["truth_records"]) > 20000:
            sink.flush()
    sink.flush()
    return handles


def _run_chunk_file(spec: _ChunkSpec, path: Path) -> tuple[list[str], dict[str, int]]:
    """A worker process: one chunk into its own SQLite file, merged by the parent."""
    if path.exists():
        path.unlink()
    conn = sqlite3.connect(path)
    conn.execute("pragma journal_mode=off")
    conn.execute("pragma synchronous=off")
    conn.executescript(SCHEMA)
    sink = _Sink(conn)
    handles = _run_chunk(spec, sink)
    conn.commit()
    conn.close()
    return handles, sink.counts


def _live(w: _World, p: Person, days: int, activity: float, counters: dict) -> None:
    """Everything one person does during the world's days."""
    rng = w.rng
    rate = EPISODE_RATE * activity * (0.4 + rng.random() * 1.2)
    n = _poisson(rng, rate * days)
    times = sorted(w.start + rng.randint(0, days * DAY - 1) for _ in range(n))
    if rng.random() < 0.006 * days / 30:
        times.append(w.start + rng.randint(0, days * DAY - 1))
        times.sort()
        base_churn_at: int | None = times[-1]
    else:
        base_churn_at = None
    for t in times:
        t = _business_hours(rng, t)
        if p.churned_at is not None and t >= p.churned_at:
            break
        if base_churn_at is not None and t >= base_churn_at:
            _cancel(w, p, t)
            break
        complaint = rng.random() < 0.06 + 0.3 * p.grumpiness
        if complaint:
            _complaint_episode(w, p, t, counters)
        else:
            _plain_episode(w, p, t)


def _poisson(rng: random.Random, lam: float) -> int:
    if lam > 30:
        return max(0, int(rng.gauss(lam, math.sqrt(lam)) + 0.5))
    limit = math.exp(-lam)
    k = 0
    prod = rng.random()
    while prod > limit:
        k += 1
        prod *= rng.random()
    return k


def _business_hours(rng: random.Random, t: int) -> int:
    day0 = t - t % DAY
    if rng.random() < 0.85:
        return day0 + rng.randint(13 * 3600, 23 * 3600)  # 9:00 to 19:00 US Eastern
    return t


def _inbound_phone(p: Person, rng: random.Random) -> str:
    return p.phone if rng.random() > 0.02 else "+266696687"  # Twilio's "anonymous caller"


def _plain_episode(w: _World, p: Person, t: int) -> None:
    rng = w.rng
    r = rng.random()
    if r < 0.40:
        code = rng.choice(["inquiry", "inquiry", "billing", "technical", "inquiry"])
        if rng.random() < 0.25:
            if rng.random() < 0.06:  # the caller hung up in the queue: a CDR row and no wrap-up
                cid, end = w.cc_call(t, p, "ABANDONED", 0)
                w.record("sftp_call_center", "calls", cid, p, None, "abandoned_call", not w.cc_anonymous, "phone")
                return
            cid, end = w.cc_call(t, p, "ANSWERED", rng.randint(60, 900))
            w.record("sftp_call_center", "calls", cid, p, None, "inbound_call", not w.cc_anonymous, "phone")
            did = w.disposition(cid, end, code, None, None, None, rng.choice(INQUIRY_NOTES), outsourced=True)
            if did:
                w.record("sftp_call_center", "dispositions", did, p, None, "wrapup", True, "call")
            if rng.random() < 0.2:
                rid, _, h = w.survey(end + rng.randint(1800, 2 * DAY), p, cid, False, None, via_sftp=True)
                w.record("sftp_survey_vendor", "responses", rid, p, None, "survey", w.linkable, "ref")
            return
        frm = _inbound_phone(p, rng)
        sid, end = w.twilio_call(t, frm, COMPANY_NUMBER, "inbound", "completed", rng.randint(45, 1200),
                                 caller_name=(f"{p.last.upper()} {p.first.upper()}" if rng.random() < 0.2
                                              else None))
        w.record("phone_system", "calls", sid, p, None, "inbound_call", frm == p.phone, "phone")
        if w.stored and rng.random() < 0.1:  # transferred to a specialist: a child leg to a client id or SIP URI
            agent = rng.choice(AGENTS)
            leg_to = rng.choice([f"client:{agent}", f"sip:{agent}@acme-care.sip.twilio.com"])
            leg, _ = w.twilio_call(end - rng.randint(30, 120), frm, leg_to, "outbound-dial", "completed",
                                   rng.randint(20, 110), parent=sid)
            w.record("phone_system", "calls", leg, p, None, "transfer_leg", frm == p.phone, "phone")
        did = w.disposition(sid, end, code, None, None, None, rng.choice(INQUIRY_NOTES), outsourced=False)
        if did:
            w.record("phone_system", "dispositions", did, p, None, "wrapup", True, "call")
        if rng.random() < 0.25:
            rid, _, h = w.survey(end + rng.randint(1800, 2 * DAY), p, sid, False, None, via_sftp=False)
            w.record("survey_vendor", "responses", rid, p, None, "survey", w.linkable, "ref")
        return
    if r < 0.65:
        kind = rng.choice(["contact", "contact", "feedback", "callback"])
        text = rng.choice(["Do you deliver on weekends?", "Please update my address.", "Love the new app!",
                           "Can someone call me about my plan?", "Great service last week, thanks.",
                           "How do I return an item?"])
        partial = rng.random() < 0.08
        token, ts, info = w.form_response(t, p, kind, False, rng.choice(CATEGORIES) if kind == "contact"
                                          else None, text, partial=partial)
        w.record("web_forms", "responses", token, p, None, f"form_{kind}", w.linkable, "form")
        if kind == "callback" and not partial:
            tc = ts + rng.randint(1800, DAY)
            sid, end = w.twilio_call(tc, COMPANY_NUMBER, p.phone, "outbound-api", "completed",
                                     rng.randint(60, 600))
            w.record("phone_system", "calls", sid, p, None, "callback_call", True, "phone")
            did = w.disposition(sid, end, "callback", None, f"typeform:{token}", None, "called back as asked",
                                outsourced=False)
            if did:
                w.record("phone_system", "dispositions", did, p, None, "wrapup", True, "call")
        elif not partial and rng.random() < 0.2:
            rid, _, h = w.survey(ts + rng.randint(3600, 2 * DAY), p, token, False, None, via_sftp=False)
            w.record("survey_vendor", "responses", rid, p, None, "survey", w.linkable, "ref")
        return
    if r < 0.9:
        got = _social_post(w, p, t, rng.choice(["pos", "pos", "neu", "neu", "neu"]), None)
        if got:
            w.record(got[1], got[2], got[3], p, None, "social_post", False, None)
        return
    # proactive outbound check-in call
    status = rng.choice(["completed", "completed", "completed", "no-answer", "busy"])
    sid, end = w.twilio_call(t, COMPANY_NUMBER, p.phone, "outbound-api", status,
                             rng.randint(30, 400) if status == "completed" else 0)
    w.record("phone_system", "calls", sid, p, None, "proactive_call", True, "phone")
    if status == "completed":
        did = w.disposition(sid, end, "inquiry", None, None, None, "proactive check-in call", outsourced=False)
        if did:
            w.record("phone_system", "dispositions", did, p, None, "wrapup", True, "call")


def _social_post(w: _World, p: Person, t: int, tone: str, problem: str | None) -> tuple | None:
    """A post by the person on a network they use. Returns (network, source, stream, key, reach, target)."""
    rng = w.rng
    nets = [n for n, ok in (("x", p.x_id), ("facebook", p.fb_id), ("linkedin", p.li_urn)) if ok]
    if not nets:
        return None
    net = rng.choice(nets)
    if tone == "neg":
        tpl = rng.choice(NEG_SOCIAL)
    elif tone == "pos":
        tpl = rng.choice(POS_SOCIAL)
    else:
        tpl = rng.choice(NEU_SOCIAL)
    if net == "x":
        text = tpl.format(at="@" + X_USERNAME, problem=problem or "")
        w.x_user(p, p.x_id, p.x_username, f"{p.first} {p.last}", p.x_followers)
        tid = w.x_mention(t, p.x_id, text)
        if tid is None:
            return None
        return ("x", "social_x", "mentions", tid, p.x_followers, None, f"x:{tid}")
    if net == "facebook":
        text = tpl.format(at=FB_PAGE_NAME, problem=problem or "")
        frm = {"name": p.fb_name, "id": p.fb_id} if rng.random() < 0.85 else None
        got = w.fb_comment(t, frm, text)
        if got is None:
            return None
        return ("facebook", "social_facebook", "comments", got[0], w.last_likes, got, f"facebook:{got[0]}")
    text = tpl.format(at="Acme", problem=problem or "")
    got = w.li_comment(t, p.li_urn, text)
    if got is None:
        return None
    return ("linkedin", "social_linkedin", "comments", got[0], w.last_likes, got, f"linkedin:{got[0]}")


def _complaint_episode(w: _World, p: Person, t: int, counters: dict) -> None:
    rng = w.rng
    counters["complaints"] += 1
    cid = f"C{w.chunk:04d}{counters['complaints']:06d}"
    category = rng.choice(CATEGORIES)
    problem = rng.choice(PROBLEMS[category])
    r = rng.random()
    c: _Complaint | None = None
    if r < 0.32:
        frm = _inbound_phone(p, rng)
        sid, end = w.twilio_call(t, frm, COMPANY_NUMBER, "inbound", "completed", rng.randint(180, 1800))
        stored = w.stored
        w.record("phone_system", "calls", sid, p, cid, "complaint_call", frm == p.phone, "phone")
        did = w.disposition(sid, end, "complaint", category, sid, "open", problem, outsourced=False)
        if did:
            w.record("phone_system", "dispositions", did, p, cid, "wrapup", True, "call")
        c = _Complaint(cid, "phone", "phone_system", "calls", sid, sid, category, t, None, True)
        if rng.random() < 0.3:
            rid, _, _ = w.survey(end + rng.randint(1800, DAY), p, sid, True, category, via_sftp=False)
            w.record("survey_vendor", "responses", rid, p, cid, "survey", w.linkable, "ref")
    elif r < 0.42:
        ccid, end = w.cc_call(t, p, "ANSWERED", rng.randint(180, 1800))
        stored = w.stored
        w.record("sftp_call_center", "calls", ccid, p, cid, "complaint_call", not w.cc_anonymous, "phone")
        did = w.disposition(ccid, end, "complaint", category, ccid, "open", problem, outsourced=True)
        if did:
            w.record("sftp_call_center", "dispositions", did, p, cid, "wrapup", True, "call")
        c = _Complaint(cid, "phone_outsourced", "sftp_call_center", "calls", ccid, ccid, category, t, None, True)
        if rng.random() < 0.3:
            rid, _, _ = w.survey(end + rng.randint(1800, DAY), p, ccid, True, category, via_sftp=True)
            w.record("sftp_survey_vendor", "responses", rid, p, cid, "survey", w.linkable, "ref")
    elif r < 0.65:
        partial = rng.random() < 0.12
        text = f"{problem.capitalize()}. I want this fixed. " + rng.choice(SATISFY)
        token, ts, _ = w.form_response(t, p, "complaint", True, category, text, partial=partial)
        stored = w.stored
        w.record("web_forms", "responses", token, p, cid, "form_complaint", w.linkable, "form")
        c = _Complaint(cid, "web_form", "web_forms", "responses", token, f"typeform:{token}", category, t, None,
                       not partial)
    elif r < 0.78:
        # a survey after a plain interaction reveals the problem
        sid, end = w.twilio_call(t, p.phone, COMPANY_NUMBER, "inbound", "completed", rng.randint(60, 600))
        w.record("phone_system", "calls", sid, p, None, "inbound_call", True, "phone")
        did = w.disposition(sid, end, "inquiry", None, None, None, rng.choice(INQUIRY_NOTES), outsourced=False)
        if did:
            w.record("phone_system", "dispositions", did, p, None, "wrapup", True, "call")
        ts = end + rng.randint(1800, 2 * DAY)
        rid, rec_t, _ = w.survey(ts, p, sid, True, category, via_sftp=False)
        stored = w.stored
        w.record("survey_vendor", "responses", rid, p, cid, "survey_complaint", w.linkable, "ref")
        c = _Complaint(cid, "survey", "survey_vendor", "responses", rid, f"qualtrics:{rid}", category, rec_t,
                       None, True)
    else:
        got = _social_post(w, p, t, "neg", problem)
        if got is None:
            counters["complaints"] -= 1
            _plain_episode(w, p, t)
            return
        net, source, stream, key, reach, target, ref = got
        stored = True
        w.record(source, stream, key, p, cid, "social_complaint", False, None)
        # reach matters: the company tries harder (and sooner, see _resolve) to reach a loud complainant
        c = _Complaint(cid, f"social_{net}", source, stream, key, ref, category, t, reach,
                       contactable=rng.random() < _reach_weight(reach, 0.2, 0.25, 0.95))
        if net == "facebook":
            c.public_reply, c.public_target = "facebook", target
        elif net == "linkedin":
            c.public_reply, c.public_target = "linkedin", target
    if stored:
        _resolve(w, p, c)
    else:
        counters["complaints"] -= 1


def _reach_weight(reach: int | None, base: float, per_decade: float, cap: float) -> float:
    """base + per_decade * log10(1 + reach), at most cap: how much a social complainant's audience counts."""
    return min(cap, base + per_decade * math.log10(1 + (reach or 0)))


def _resolve(w: _World, p: Person, c: _Complaint) -> None:
    """Responses, rectification, and whether the person stays."""
    rng = w.rng
    first_response: int | None = None
    resolved: int | None = None
    rectified = 0
    if c.public_reply and rng.random() < 0.9:
        tr = c.opened + rng.randint(600, 8 * 3600)
        if c.public_reply == "facebook":
            got = w.fb_comment(tr, {"name": FB_PAGE_NAME, "id": FB_PAGE_ID}, rng.choice(REPLY_TEXT),
                               parent=c.public_target[0], post=c.public_target[1])
            if got:
                w.record("social_facebook", "comments", got[0], None, c.cid, "company_reply", False, None)
                first_response = tr
        else:
            got = w.li_comment(tr, LI_ORG_URN, rng.choice(REPLY_TEXT), post=c.public_target[1],
                               parent=c.key)
            if got:
                w.record("social_linkedin", "comments", got[0], None, c.cid, "company_reply", False, None)
                first_response = tr
    if c.contactable and rng.random() < 0.92:
        wait = 18 * 3600 / (1.0 if c.reach is None else _reach_weight(c.reach, 1.0, 1.0, 6.0))
        t1 = c.opened + int(rng.expovariate(1 / wait)) + 600
        if rng.random() < 0.15:  # a first attempt nobody answers
            sid, _ = w.twilio_call(t1, COMPANY_NUMBER, p.phone, "outbound-api", "no-answer", 0)
            w.record("phone_system", "calls", sid, p, c.cid, "follow_up_call", True, "phone")
            t1 += rng.randint(3600, 6 * 3600)
        sid, end = w.twilio_call(t1, COMPANY_NUMBER, p.phone, "outbound-api", "completed", rng.randint(120, 900))
        if end < w.end:
            w.record("phone_system", "calls", sid, p, c.cid, "follow_up_call", True, "phone")
            did = w.disposition(sid, end, "follow_up", c.category, c.case_ref, "responded",
                                "called customer about the case", outsourced=False)
            if did:
                w.record("phone_system", "dispositions", did, p, c.cid, "wrapup", True, "call")
                if first_response is None or end < first_response:
                    first_response = t1
            p_rect = {"billing": 0.7, "delivery": 0.6, "technical": 0.5, "product": 0.6, "service": 0.45,
                      "other": 0.4}[c.category]
            will = rng.random() < p_rect
            t2 = end + int(rng.expovariate(1 / (2 * DAY))) + 3600
            sid2, end2 = w.twilio_call(t2, COMPANY_NUMBER, p.phone, "outbound-api", "completed",
                                       rng.randint(60, 600))
            if end2 < w.end:
                w.record("phone_system", "calls", sid2, p, c.cid, "follow_up_call", True, "phone")
                did2 = w.disposition(sid2, end2, "follow_up", c.category, c.case_ref,
                                     "rectified" if will else "closed_unrectified",
                                     "refund issued, customer happy" if will else "could not fix, customer upset",
                                     outsourced=False)
                if did2:
                    w.record("phone_system", "dispositions", did2, p, c.cid, "wrapup", True, "call")
                    resolved = end2 + 300
                    rectified = int(will)
    retained: int | None
    decided_at = resolved if resolved is not None else (
        (first_response or c.opened) + 5 * DAY if not c.contactable or first_response is None else None)
    if decided_at is None or decided_at >= w.end:
        retained = None
    else:
        stay = rng.random() < (0.8 if rectified else 0.35)
        retained = int(stay)
        if not stay and p.churned_at is None:
            _cancel(w, p, decided_at + rng.randint(DAY // 2, 6 * DAY))
            if p.churned_at is None:  # the cancel call would fall after the end of the world
                retained = None
    w.sink.add("truth_complaints", (
        c.cid, p.pid, c.channel, c.source, c.stream, c.key, c.category, _iso(c.opened),
        _iso(first_response) if first_response is not None and first_response < w.end else None,
        _iso(resolved) if resolved is not None and resolved < w.end else None,
        rectified, retained, c.reach))


def _cancel(w: _World, p: Person, t: int) -> None:
    rng = w.rng
    if p.churned_at is not None:
        return
    t = _business_hours(rng, t)
    if t >= w.end - 3600:
        return
    if rng.random() < 0.8:
        sid, end = w.twilio_call(t, p.phone, COMPANY_NUMBER, "inbound", "completed", rng.randint(120, 900))
        if end >= w.end:
            return
        w.record("phone_system", "calls", sid, p, None, "cancel_call", True, "phone")
        did = w.disposition(sid, end, "cancel_request", None, None, None, "customer asked to cancel", False)
        if did:
            w.record("phone_system", "dispositions", did, p, None, "wrapup", True, "call")
    else:
        cid, end = w.cc_call(t, p, "ANSWERED", rng.randint(120, 900))
        if end >= w.end:
            return
        w.record("sftp_call_center", "calls", cid, p, None, "cancel_call", not w.cc_anonymous, "phone")
        did = w.disposition(cid, end, "cancel_request", None, None, None, "customer asked to cancel", True)
        if did:
            w.record("sftp_call_center", "dispositions", did, p, None, "wrapup", True, "call")
    p.churned_at = t


def _noise_accounts(w: _World, customers: int, days: int, activity: float) -> None:
    """Non-customers mentioning the company: bots, passers-by (truth person_id null)."""
    rng = w.rng
    n = int(customers * days * 0.0015 * activity) + 1
    for i in range(n):
        t = w.start + rng.randint(0, days * DAY - 1)
        uid = str(900000000 + i % max(1, n // 3))
        w.x_user(None, uid, f"promo_{uid[-5:]}", f"Promo {uid[-4:]}", rng.randint(0, 300))
        tid = w.x_mention(t, uid, rng.choice(NOISE_SOCIAL + NEU_SOCIAL).format(at="@" + X_USERNAME, problem=""))
        if tid:
            w.record("social_x", "mentions", tid, None, None, "noise", False, None)


def _fix_linkability(conn: sqlite3.Connection, handle_people: list[str]) -> None:
    """A social record is linkable when its author gave their X handle in a form or survey (X mentions), or
    when a follow-up disposition names it in case_ref (the company learned the phone number)."""
    conn.execute("create temp table handle_people (person_id text primary key)")
    conn.executemany("insert into handle_people values (?)", [(h,) for h in handle_people])
    conn.execute("""
        update truth_records set linkable = 1, link_via = 'handle'
        where source = 'social_x' and stream = 'mentions'
        and person_id in (select person_id from handle_people)
    """)
    conn.execute("""
        update truth_records set linkable = 1, link_via = 'case_ref'
        where linkable = 0 and person_id is not null and source like 'social_%'
        and complaint_id in (select d.complaint_id from truth_records d
                             where d.stream = 'dispositions' and d.complaint_id is not null)
    """)


def _link_groups(conn: sqlite3.Connection) -> None:
    """truth_records.link_group: the records of one person that a resolver could put together from what was
    served, the connected components of the person's records over shared evidence (evidence column: the
    person's own phone line, email address as written without a typo, X user, Facebook user, LinkedIn member,
    customer_ref, and references between records: a survey's externalDataReference, a wrap-up's call and
    case_ref). Two records of a person in different groups share no chain of evidence: no rule could link
    them. A household's shared line is not evidence of one person (shared_line marks records that carry it
    and nothing of their own)."""
    parent: dict[str, str] = {}

    def find(x: str) -> str:
        while parent.setdefault(x, x) != x:
            parent[x] = parent[parent[x]]
            x = parent[x]
        return x

    rows = conn.execute("select rowid, person_id, evidence from truth_records where person_id is not null").fetchall()
    for rowid, person, evidence in rows:
        node = find(f"#{rowid}")
        for token in evidence.split():
            other = find(f"{person} {token}")
            if other != node:
                parent[other] = node
    conn.executemany("update truth_records set link_group = ? where rowid = ?",
                     ((find(f"#{rowid}")[1:], rowid) for rowid, _, _ in rows))


def iter_rows(conn: sqlite3.Connection, sql: str, params: Iterable = ()) -> Iterable[tuple]:
    return conn.execute(sql, tuple(params))
