"""Qualtrics, X, Facebook and LinkedIn sandboxes over real HTTP: credentials, paging, clock, vendor faults."""

from __future__ import annotations

import csv
import io
import json
import sqlite3
import threading
import time
import zipfile
from datetime import UTC, datetime
from urllib.parse import quote

import pytest
import requests

from sandbox import world as W
from sandbox.serve import Sandbox


@pytest.fixture(scope="module")
def sb(tmp_path_factory):
    d = tmp_path_factory.mktemp("vendors")
    W.generate(d, seed=5, customers=1500, days=12)
    sandbox = Sandbox(d, sftp=False, admin=False).start()
    yield sandbox
    sandbox.stop()


@pytest.fixture(autouse=True)
def _reset(sb):
    sb.clear_faults()
    sb.set_clock(sb.end_ts)
    yield
    sb.clear_faults()


def _count(sb, sql, args=()):
    with sqlite3.connect(sb.db_path) as db:
        return db.execute(sql, args).fetchone()[0]


# ------------------------------------------------------------------ Qualtrics

def _export(sb, body, token=None):
    sv = sb.connections["survey_vendor"]
    h = {"X-API-TOKEN": token or sv["password"]}
    base = f"{sv['host']}/API/v3/surveys/SV_crmCsat01/export-responses"
    r = requests.post(base, json=body, headers=h, timeout=10)
    assert r.status_code == 200, r.text
    pid = r.json()["result"]["progressId"]
    assert r.json()["result"]["status"] == "inProgress"
    for _ in range(600):  # the file is prepared while the export is in progress
        res = requests.get(f"{base}/{pid}", headers=h, timeout=10).json()["result"]
        if res["status"] == "complete":
            break
        time.sleep(0.05)
    else:
        raise AssertionError("export never completed")
    assert requests.get(f"{base}/{pid}/file", headers=h, timeout=10).status_code == 404  # progressId is no fileId
    f = requests.get(f"{base}/{res['fileId']}/file", headers=h, timeout=10)
    assert f.status_code == 200 and f.headers["Content-Type"] == "application/zip"
    zf = zipfile.ZipFile(io.BytesIO(f.content))
    assert len(zf.namelist()) == 1
    return zf.read(zf.namelist()[0]), res


def test_qualtrics_auth(sb):
    sv = sb.connections["survey_vendor"]
    r = requests.post(f"{sv['host']}/API/v3/surveys/SV_crmCsat01/export-responses", json={"format": "json"},
                      headers={"X-API-TOKEN": "nope"}, timeout=5)
    assert r.status_code == 401 and r.json()["meta"]["error"]["errorCode"] == "AUTH_6.0"
    r = requests.post(f"{sv['host']}/API/v3/surveys/SV_other/export-responses", json={"format": "json"},
                      headers={"X-API-TOKEN": sv["password"]}, timeout=5)
    assert r.status_code == 404


def test_qualtrics_json_export_window_and_continuation(sb):
    data, res = _export(sb, {"format": "json", "startDate": "2026-09-03T00:00:00Z",
                             "endDate": "2026-09-05T00:00:00Z"})
    rows = json.loads(data)["responses"]
    n = _count(sb, "select count(*) from s_survey_responses where recorded_at >= ? and recorded_at < ?",
               (1788393600, 1788566400))
    assert len(rows) == n > 0
    assert all("2026-09-03" <= r["values"]["recordedDate"] < "2026-09-05" for r in rows)
    assert {"QID1", "QID2", "QID3", "externalDataReference"} <= set(rows[0]["values"])
    sb.set_clock(datetime(2026, 9, 6, tzinfo=UTC))
    first, res = _export(sb, {"format": "json", "allowContinuation": True})
    token = res["continuationToken"]
    got1 = json.loads(first)["responses"]
    sb.set_clock(datetime(2026, 9, 9, tzinfo=UTC))
    second, res2 = _export(sb, {"format": "json", "continuationToken": token})
    got2 = json.loads(second)["responses"]
    assert got1 and got2 and res2["continuationToken"]
    assert not {r["responseId"] for r in got1} & {r["responseId"] for r in got2}
    assert all(r["values"]["recordedDate"] > "2026-09-06" for r in got2)
    total = _count(sb, "select count(*) from s_survey_responses where available_at <= ?", (1788912000,))
    assert len(got1) + len(got2) == total


def test_qualtrics_prepares_the_file_while_in_progress_and_downloads_at_once(sb, monkeypatch):
    """As at Qualtrics: the progress says complete only when the file is ready, and the download then answers
    at once (a million responses built at download time kept the client waiting past its read timeout)."""
    app = sb.apps["qualtrics"]
    gate = threading.Event()
    build = app._build

    def slow_build(job, fault):
        gate.wait(30)
        return build(job, fault)

    monkeypatch.setattr(app, "_build", slow_build)
    sv = sb.connections["survey_vendor"]
    h = {"X-API-TOKEN": sv["password"]}
    base = f"{sv['host']}/API/v3/surveys/SV_crmCsat01/export-responses"
    pid = requests.post(base, json={"format": "json"}, headers=h, timeout=10).json()["result"]["progressId"]
    polls = [requests.get(f"{base}/{pid}", headers=h, timeout=10).json()["result"] for _ in range(5)]
    assert {p["status"] for p in polls} == {"inProgress"}, "complete before the file was ready"
    gate.set()
    for _ in range(600):
        res = requests.get(f"{base}/{pid}", headers=h, timeout=10).json()["result"]
        if res["status"] == "complete":
            break
        time.sleep(0.05)
    monkeypatch.setattr(app, "_build", lambda job, fault: pytest.fail("the download built the file again"))
    f = requests.get(f"{base}/{res['fileId']}/file", headers=h, timeout=10)
    assert f.status_code == 200 and zipfile.ZipFile(io.BytesIO(f.content)).namelist()


def test_qualtrics_csv_has_three_header_rows(sb):
    data, _ = _export(sb, {"format": "csv", "startDate": "2026-09-02T00:00:00Z"})
    text = data.decode("utf-8-sig")
    assert "\r\n" in text
    rows = list(csv.reader(io.StringIO(text)))
    assert rows[0][:2] == ["StartDate", "EndDate"] and "ResponseId" in rows[0] and "QID10" in rows[0]
    assert rows[1][rows[0].index("QID1")].startswith("How satisfied")
    assert json.loads(rows[2][0])["ImportId"] == "startDate"
    assert all(r[rows[0].index("ResponseId")].startswith("R_") for r in rows[3:])


def test_qualtrics_429_with_retry_after(sb):
    sb.inject("qualtrics.export", "429")
    sv = sb.connections["survey_vendor"]
    r = requests.post(f"{sv['host']}/API/v3/surveys/SV_crmCsat01/export-responses", json={"format": "json"},
                      headers={"X-API-TOKEN": sv["password"]}, timeout=5)
    assert r.status_code == 429 and r.headers["Retry-After"]


# ------------------------------------------------------------------ X

def _x(sb, params, token=None):
    x = sb.connections["social_x"]
    return requests.get(f"{x['host']}/2/users/{x['extra']['user_id']}/mentions", params=params,
                        headers={"Authorization": f"Bearer {token or x['password']}"}, timeout=10)


def test_x_auth_and_rate_headers_on_every_answer(sb):
    bad = _x(sb, {}, token="nope")
    assert bad.status_code == 401 and bad.json()["title"] == "Unauthorized"
    assert "x-rate-limit-reset" in bad.headers
    ok = _x(sb, {"max_results": 5})
    assert ok.status_code == 200
    assert int(ok.headers["x-rate-limit-remaining"]) < int(ok.headers["x-rate-limit-limit"])
    assert int(ok.headers["x-rate-limit-reset"]) > time.time()
    r = _x(sb, {"max_results": 500})
    assert r.status_code == 400 and "max_results" in r.json()["errors"][0]["message"]


@pytest.fixture
def x_window(sb):
    """Only the latest N mentions are reachable (800 at X; fewer here, the world is small)."""
    sb.apps["x"].reachable = 60
    yield 60
    sb.apps["x"].reachable = 800


def test_x_only_the_latest_mentions_are_reachable_and_pagination_ends(sb, x_window):
    params = {"max_results": 25, "expansions": "author_id", "tweet.fields": "created_at,author_id,public_metrics",
              "user.fields": "username,public_metrics"}
    page = _x(sb, params).json()
    seen = list(page["data"])
    users = {u["id"]: u for u in page["includes"]["users"]}
    while "next_token" in page["meta"]:
        page = _x(sb, {**params, "pagination_token": page["meta"]["next_token"]}).json()
        seen += page.get("data", [])
        users.update({u["id"]: u for u in page.get("includes", {}).get("users", [])})
    total = _count(sb, "select count(*) from s_x_mentions")
    assert total > x_window, "world too small for this test"
    assert len(seen) == len({t["id"] for t in seen}) == x_window
    newest = [r[0] for r in sqlite3.connect(sb.db_path).execute(
        "select key from s_x_mentions order by id_num desc limit ?", (x_window,))]
    assert [t["id"] for t in seen] == newest
    assert all(t["author_id"] in users for t in seen)
    assert all("followers_count" in u["public_metrics"] for u in users.values())
    ids = [int(t["id"]) for t in seen]
    assert ids == sorted(ids, reverse=True)


def test_x_since_id_and_clock(sb):
    sb.set_clock(datetime(2026, 9, 4, tzinfo=UTC))
    first = _x(sb, {"max_results": 100}).json()
    newest = first["meta"]["newest_id"]
    assert all(t["id"] <= newest for t in first["data"])
    empty = _x(sb, {"since_id": newest}).json()
    assert "data" not in empty and empty["meta"]["result_count"] == 0
    sb.set_clock(datetime(2026, 9, 5, tzinfo=UTC))
    later = _x(sb, {"since_id": newest, "max_results": 100, "tweet.fields": "created_at"}).json()
    assert later["meta"]["result_count"] > 0
    assert all("2026-09-04" <= t["created_at"] < "2026-09-05" for t in later["data"])


def test_x_start_and_end_time(sb):
    got = _x(sb, {"start_time": "2026-09-03T00:00:00Z", "end_time": "2026-09-04T00:00:00Z", "max_results": 100,
                  "tweet.fields": "created_at"})
    assert got.status_code == 200, got.text
    data = got.json()["data"]
    assert data and all("2026-09-03" <= t["created_at"] < "2026-09-04" for t in data)


def test_x_429_sets_reset(sb):
    sb.inject("x.mentions", "429")
    r = _x(sb, {})
    assert r.status_code == 429 and r.headers["x-rate-limit-remaining"] == "0"
    assert int(r.headers["x-rate-limit-reset"]) >= int(time.time())


# ------------------------------------------------------------------ Facebook

def _fb(sb, path, params=None, bearer=False, token=None):
    fb = sb.connections["social_facebook"]
    params = dict(params or {})
    headers = {}
    if bearer:
        headers["Authorization"] = f"Bearer {token or fb['password']}"
    else:
        params["access_token"] = token or fb["password"]
    return requests.get(f"{fb['host']}/{fb['extra']['api_version']}/{path}", params=params, headers=headers,
                        timeout=10)


def test_facebook_auth_errors_are_oauth_exceptions(sb):
    fb = sb.connections["social_facebook"]
    r = _fb(sb, f"{fb['extra']['page_id']}/feed", token="bad")
    assert r.status_code == 400 and r.json()["error"]["code"] == 190
    assert r.json()["error"]["type"] == "OAuthException"
    assert _fb(sb, f"{fb['extra']['page_id']}/feed", bearer=True).status_code == 200


def test_facebook_feed_and_comments_page_to_the_end(sb):
    fb = sb.connections["social_facebook"]
    page = _fb(sb, f"{fb['extra']['page_id']}/feed", {"limit": 5, "fields": "id,message,created_time,"
                                                       "comments.summary(true){id,message,from}"}).json()
    posts = list(page["data"])
    while page.get("paging", {}).get("next"):
        page = requests.get(page["paging"]["next"], timeout=10).json()
        posts += page["data"]
    assert len(posts) == len({p["id"] for p in posts}) == _count(sb, "select count(*) from s_fb_posts")
    assert all("summary" in p["comments"] for p in posts)
    comments = []
    for p in posts:
        page = _fb(sb, f"{p['id']}/comments", {"limit": 3, "fields": "id,message,created_time,from,parent"}).json()
        comments += page["data"]
        while page.get("paging", {}).get("next"):
            page = requests.get(page["paging"]["next"], timeout=10).json()
            comments += page["data"]
    assert len(comments) == len({c["id"] for c in comments}) == _count(sb, "select count(*) from s_fb_comments")
    post = max(posts, key=lambda p: p["comments"]["summary"]["total_count"])
    one = _fb(sb, f"{post['id']}/comments", {"limit": 1, "summary": "true"}).json()
    assert len(one["data"]) == 1 and one["summary"]["total_count"] == post["comments"]["summary"]["total_count"] > 1
    page_replies = [c for c in comments if c.get("from", {}).get("id") == fb["extra"]["page_id"]]
    assert page_replies and all("parent" in c for c in page_replies)
    assert any("from" not in c for c in comments), "privacy-hidden authors missing"


def test_facebook_rate_limit_is_http_400_with_code(sb):
    fb = sb.connections["social_facebook"]
    sb.inject("facebook.feed", "429", code=32)
    r = _fb(sb, f"{fb['extra']['page_id']}/feed")
    assert r.status_code == 400 and r.json()["error"]["code"] == 32
    usage = json.loads(r.headers["X-Business-Use-Case-Usage"])
    assert usage[fb["extra"]["page_id"]][0]["estimated_time_to_regain_access"] >= 0
    ok = _fb(sb, f"{fb['extra']['page_id']}/feed")
    assert ok.status_code == 200 and "call_count" in json.loads(ok.headers["X-App-Usage"])


def test_facebook_since_until(sb):
    fb = sb.connections["social_facebook"]
    since, until = 1788393600, 1788566400  # 2026-09-03 .. 2026-09-05
    posts = _fb(sb, f"{fb['extra']['page_id']}/feed", {"since": since, "until": until, "limit": 100}).json()["data"]
    assert posts and all("2026-09-03" <= p["created_time"][:10] <= "2026-09-05" for p in posts)


# ------------------------------------------------------------------ LinkedIn

def _li(sb, path, params=None, headers=None):
    li = sb.connections["social_linkedin"]
    h = {"Authorization": f"Bearer {li['password']}", "LinkedIn-Version": li["extra"]["linkedin_version"],
         "X-Restli-Protocol-Version": "2.0.0"}
    h.update(headers or {})
    h = {k: v for k, v in h.items() if v is not None}
    return requests.get(f"{li['host']}{path}", params=params or {}, headers=h, timeout=10)


def test_linkedin_demands_its_headers(sb):
    org = sb.connections["social_linkedin"]["extra"]["organization_urn"]
    params = {"q": "author", "author": org}
    assert _li(sb, "/rest/posts", params, {"LinkedIn-Version": None}).status_code == 400
    assert _li(sb, "/rest/posts", params, {"LinkedIn-Version": "202001"}).status_code == 426
    assert _li(sb, "/rest/posts", params, {"X-Restli-Protocol-Version": None}).status_code == 400
    r = _li(sb, "/rest/posts", params, {"Authorization": "Bearer nope"})
    assert r.status_code == 401 and r.json()["serviceErrorCode"] == 65600
    assert _li(sb, "/rest/posts", params).status_code == 200


def test_linkedin_start_count_paging_to_the_end(sb):
    li = sb.connections["social_linkedin"]
    org = li["extra"]["organization_urn"]
    posts, start = [], 0
    while True:
        page = _li(sb, "/rest/posts", {"q": "author", "author": org, "start": start, "count": 4}).json()
        posts += page["elements"]
        nxt = [lk for lk in page["paging"]["links"] if lk["rel"] == "next"]
        if not nxt:
            break
        start = page["paging"]["start"] + len(page["elements"])
    assert len(posts) == page["paging"]["total"] == _count(sb, "select count(*) from s_li_posts")
    comments = []
    for p in posts:
        start = 0
        while True:
            page = _li(sb, f"/rest/socialActions/{quote(p['id'], safe='')}/comments",
                       {"start": start, "count": 5}).json()
            comments += page["elements"]
            start += len(page["elements"])
            if start >= page["paging"]["total"]:
                break
    assert len(comments) == _count(sb, "select count(*) from s_li_comments")
    assert all(isinstance(c["created"]["time"], int) and c["created"]["time"] > 1e12 for c in comments)
    assert any(c["actor"] == org for c in comments), "organisation replies missing"


def test_linkedin_429_and_clock(sb):
    org = sb.connections["social_linkedin"]["extra"]["organization_urn"]
    sb.inject("linkedin.posts", "429")
    r = _li(sb, "/rest/posts", {"q": "author", "author": org})
    assert r.status_code == 429 and r.json()["code"] == "TOO_MANY_REQUESTS"
    sb.set_clock(datetime(2026, 9, 4, tzinfo=UTC))
    page = _li(sb, "/rest/posts", {"q": "author", "author": org, "count": 100}).json()
    assert all(p["createdAt"] <= 1788480000 * 1000 for p in page["elements"])
    assert page["paging"]["total"] < _count(sb, "select count(*) from s_li_posts")


# ------------------------------------------------------------------ every fault on every HTTP endpoint

def _request_for(sb, endpoint):
    """A plain, valid request to each fault-injectable HTTP endpoint: (method, url, kwargs, records path)."""
    c = sb.connections
    li = c["social_linkedin"]
    li_h = {"Authorization": f"Bearer {li['password']}", "LinkedIn-Version": li["extra"]["linkedin_version"],
            "X-Restli-Protocol-Version": "2.0.0"}
    fb = c["social_facebook"]
    ps = c["phone_system"]
    with sqlite3.connect(sb.db_path) as db:
        fb_post = db.execute("select post_id from s_fb_comments group by 1 order by count(*) desc").fetchone()[0]
        li_post = db.execute("select post_urn from s_li_comments group by 1 order by count(*) desc").fetchone()[0]
    return {
        "twilio.calls": ("GET", f"{ps['host']}/2010-04-01/Accounts/{ps['login']}/Calls.json",
                         {"auth": (ps["login"], ps["password"]), "params": {"PageSize": 5}}, "calls"),
        "twilio.dispositions": ("GET", f"{ps['host']}/v1/Accounts/{ps['login']}/Dispositions.json",
                                {"auth": (ps["login"], ps["password"]), "params": {"PageSize": 5}},
                                "dispositions"),
        "qualtrics.export": ("POST", f"{c['survey_vendor']['host']}/API/v3/surveys/SV_crmCsat01/export-responses",
                             {"headers": {"X-API-TOKEN": c["survey_vendor"]["password"]}, "json": {"format": "json"}},
                             None),
        "typeform.responses": ("GET", f"{c['web_forms']['host']}/forms/cNtAcT01/responses",
                               {"headers": {"Authorization": f"Bearer {c['web_forms']['password']}"},
                                "params": {"page_size": 5}}, "items"),
        "x.mentions": ("GET", f"{c['social_x']['host']}/2/users/{c['social_x']['extra']['user_id']}/mentions",
                       {"headers": {"Authorization": f"Bearer {c['social_x']['password']}"},
                        "params": {"max_results": 5}}, "data"),
        "facebook.feed": ("GET", f"{fb['host']}/v21.0/{fb['extra']['page_id']}/feed",
                          {"params": {"access_token": fb["password"], "limit": 5}}, "data"),
        "facebook.comments": ("GET", f"{fb['host']}/v21.0/{fb_post}/comments",
                              {"params": {"access_token": fb["password"], "limit": 3}}, "data"),
        "linkedin.posts": ("GET", f"{li['host']}/rest/posts",
                           {"headers": li_h, "params": {"q": "author", "author": li["extra"]["organization_urn"],
                                                        "count": 5}}, "elements"),
        "linkedin.comments": ("GET", f"{li['host']}/rest/socialActions/{quote(li_post, safe='')}/comments",
                              {"headers": li_h, "params": {"count": 3}}, "elements"),
    }[endpoint]


HTTP_ENDPOINTS = ["twilio.calls", "twilio.dispositions", "qualtrics.export", "typeform.responses", "x.mentions",
                  "facebook.feed", "facebook.comments", "linkedin.posts", "linkedin.comments"]


@pytest.mark.parametrize("endpoint", HTTP_ENDPOINTS)
def test_every_fault_on_every_endpoint(sb, endpoint):
    method, url, kw, path = _request_for(sb, endpoint)

    def call(**extra):
        return requests.request(method, url, timeout=extra.pop("timeout", 10), **kw, **extra)

    assert call().status_code == 200
    for fault, expect in (("500", 500), ("503", 503)):
        sb.inject(endpoint, fault)
        assert call().status_code == expect
    sb.inject(endpoint, "429")
    r = call()
    assert r.status_code == (400 if endpoint.startswith("facebook") else 429)
    assert r.headers.get("Retry-After") or r.headers.get("x-rate-limit-reset") or \
        r.json().get("error", {}).get("code") in (4, 17, 32, 613) or endpoint.startswith("linkedin")
    sb.inject(endpoint, "bad_auth")
    assert call().status_code in (400, 401, 403)  # Facebook says 400 with OAuthException code 190
    sb.inject(endpoint, "malformed")
    with pytest.raises(ValueError):
        json.loads(call().content)
    sb.inject(endpoint, "slow", seconds=1.0)
    with pytest.raises(requests.Timeout):
        call(timeout=0.3)
    sb.inject(endpoint, "drop")
    with pytest.raises(requests.exceptions.RequestException):
        call().json()
    if path:
        sb.inject(endpoint, "drift_new_field")
        records = call().json()[path]
        assert records and all("sandbox_new_field" in rec for rec in records)
    assert call().status_code == 200


def _ids(records: list[dict]) -> list[str]:
    return [r.get("id") or r.get("sid") or r.get("token") or r.get("disposition_id") or r.get("responseId")
            for r in records]


def _two_pages(sb, endpoint: str) -> list[str]:
    """Record ids of the first two pages of an endpoint, following its own next link (Typeform and Qualtrics:
    the one answer)."""
    method, url, kw, path = _request_for(sb, endpoint)
    if endpoint == "qualtrics.export":
        data, _ = _export(sb, {"format": "json"})
        return _ids(json.loads(data)["responses"])
    first = requests.request(method, url, timeout=10, **kw)
    assert first.status_code == 200, first.text[:200]
    body = first.json()
    ids = _ids(body[path])
    if endpoint == "typeform.responses":
        return ids
    kw = {k: v for k, v in kw.items() if k != "params"}
    if endpoint == "twilio.calls":
        nxt, params = sb.connections["phone_system"]["host"] + body["next_page_uri"], {}
    elif endpoint == "twilio.dispositions":
        nxt, params = body["meta"]["next_page_url"], {}
    elif endpoint == "x.mentions":
        nxt, params = url, {**_request_for(sb, endpoint)[2]["params"], "pagination_token": body["meta"]["next_token"]}
    elif endpoint.startswith("facebook"):
        nxt, params = body["paging"]["next"], {}
    else:
        href = next(lk["href"] for lk in body["paging"]["links"] if lk["rel"] == "next")
        nxt, params = sb.connections["social_linkedin"]["host"] + href, {}
    second = requests.request(method, nxt, params=params, timeout=10, **kw)
    assert second.status_code == 200, second.text[:200]
    return ids + _ids(second.json()[path])


@pytest.mark.parametrize("endpoint", HTTP_ENDPOINTS)
def test_repeat_and_every_drift_on_every_endpoint(sb, endpoint):
    clean = _two_pages(sb, endpoint)
    assert len(clean) == len(set(clean)) > 4
    sb.inject(endpoint, "repeat")
    repeated = _two_pages(sb, endpoint)
    assert len(repeated) - len(set(repeated)) == 2, "two records served twice"
    assert set(clean) <= set(repeated) or set(repeated) <= set(clean), "the repeat serves records already seen"

    method, url, kw, path = _request_for(sb, endpoint)
    if endpoint == "qualtrics.export":
        base, _ = _export(sb, {"format": "json"})
        base_rec = json.loads(base)["responses"][0]["values"]
        for fault in ("drift_new_field", "drift_missing_field", "drift_type_change"):
            sb.inject(endpoint, fault)
            data, _ = _export(sb, {"format": "json"})
            rec = json.loads(data)["responses"][0]["values"]
            assert rec != base_rec and (set(rec) != set(base_rec) or any(
                type(rec[k]) is not type(base_rec[k]) for k in rec)), fault
        return
    normal = requests.request(method, url, timeout=10, **kw).json()[path][0]
    sb.inject(endpoint, "drift_missing_field")
    missing = requests.request(method, url, timeout=10, **kw).json()[path][0]
    assert set(missing) < set(normal), "a field went missing"
    sb.inject(endpoint, "drift_type_change")
    changed = requests.request(method, url, timeout=10, **kw).json()[path][0]
    assert set(changed) == set(normal)
    assert any(type(changed[k]) is not type(normal[k]) for k in normal), "a field changed its type"


def test_twilio_accepts_an_api_key_too(sb):
    ps = sb.connections["phone_system"]
    tw = sb.apps["twilio"]
    url = f"{ps['host']}/2010-04-01/Accounts/{ps['login']}/Calls.json"
    assert requests.get(url, auth=(tw.api_key, tw.api_secret), timeout=10).status_code == 200
    assert requests.get(url, auth=(tw.api_key, ps["password"]), timeout=10).status_code == 401


def test_x_horizon_is_800_and_the_window_runs_out(sb):
    from sandbox.vendors_social import XApp

    assert XApp.reachable == 800
    x = sb.apps["x"]
    saved = x.window_limit
    x.window_limit = x._used + 2  # two requests left in this 15-minute window
    try:
        assert _x(sb, {}).headers["x-rate-limit-remaining"] == "1"
        assert _x(sb, {}).headers["x-rate-limit-remaining"] == "0"
        r = _x(sb, {})
        assert r.status_code == 429 and int(r.headers["x-rate-limit-reset"]) > time.time()
    finally:
        x.window_limit = saved


def test_facebook_comments_page_by_cursors_and_feed_by_time(sb):
    fb = sb.connections["social_facebook"]
    with sqlite3.connect(sb.db_path) as db:
        post = db.execute("select post_id from s_fb_comments group by 1 order by count(*) desc").fetchone()[0]
    page = _fb(sb, f"{post}/comments", {"limit": 2}).json()
    cursors = page["paging"]["cursors"]
    assert cursors["before"] and cursors["after"] and "after=" in page["paging"]["next"]
    feed = _fb(sb, f"{fb['extra']['page_id']}/feed", {"limit": 2}).json()
    assert "until=" in feed["paging"]["next"]


def test_facebook_and_dispositions_serve_only_what_exists_so_far(sb):
    fb = sb.connections["social_facebook"]
    clock = datetime(2026, 9, 4, tzinfo=UTC)
    sb.set_clock(clock)
    posts = _fb(sb, f"{fb['extra']['page_id']}/feed", {"limit": 100}).json()["data"]
    assert posts and all(p["created_time"][:19] <= "2026-09-04T00:00:00" for p in posts)
    assert len(posts) < _count(sb, "select count(*) from s_fb_posts")
    ps = sb.connections["phone_system"]
    got = requests.get(f"{ps['host']}/v1/Accounts/{ps['login']}/Dispositions.json", params={"PageSize": 1000},
                       auth=(ps["login"], ps["password"]), timeout=10).json()["dispositions"]
    assert got and all(d["wrapped_at"] <= "2026-09-04T00:00:00Z" for d in got)
    assert len(got) == _count(sb, "select count(*) from s_dispositions where available_at <= ?",
                              (int(clock.timestamp()),))
