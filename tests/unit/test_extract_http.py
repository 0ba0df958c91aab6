"""Unit tests of the shared HTTP layer: retry decisions, rate-limit waits, paginators (no network)."""

from __future__ import annotations

import json
import random

import pytest
from crm_warehouse.http import (
    ItemTokenPaginator,
    NextUrlPaginator,
    OffsetPaginator,
    Request,
    RetryPolicy,
    TokenParamPaginator,
    facebook_error_code,
    json_path,
    rate_limit_wait,
)


def policy(**kw) -> RetryPolicy:
    return RetryPolicy(rng=random.Random(1), **kw)


def test_success_is_used():
    assert policy().decide(1, status=200).action == "use"


@pytest.mark.parametrize("status", [500, 502, 503, 504])
def test_server_errors_retry_then_fail(status):
    p = policy(max_attempts=3)
    assert p.decide(1, status=status).action == "retry"
    assert p.decide(2, status=status).action == "retry"
    final = p.decide(3, status=status)
    assert final.action == "fail" and final.kind == "server" and "after 3 attempts" in final.reason


def test_network_errors_retry():
    d = policy().decide(1, error=ConnectionResetError("reset by peer"))
    assert (d.action, d.kind) == ("retry", "network")


def test_malformed_body_is_retried_then_fails():
    p = policy(max_attempts=2)
    assert p.decide(1, status=200, malformed=True).action == "retry"
    d = p.decide(2, status=200, malformed=True)
    assert (d.action, d.kind) == ("fail", "malformed")


@pytest.mark.parametrize("status", [401, 403])
def test_auth_failures_fail_at_once(status):
    d = policy().decide(1, status=status, body=b'{"title": "Unauthorized"}')
    assert (d.action, d.kind) == ("fail", "auth")


def test_other_client_errors_fail_at_once():
    assert policy().decide(1, status=404).kind == "client"
    assert policy().decide(1, status=400, body=b'{"error": {"code": 100}}').kind == "client"


def test_backoff_grows_exponentially_with_jitter_and_cap():
    p = policy(backoff_base=1.0, backoff_cap=8.0)
    waits = [p.backoff(a) for a in range(1, 8)]
    for attempt, wait in enumerate(waits, start=1):
        ceiling = min(8.0, 2 ** (attempt - 1))
        assert ceiling / 2 <= wait <= ceiling
    assert len({round(w, 6) for w in waits}) > 3  # jittered, not constant


def test_retry_after_seconds_is_honoured():
    d = policy().decide(1, status=429, headers={"Retry-After": "7"}, now=1000.0)
    assert (d.action, d.kind, d.wait) == ("retry", "rate_limit", 7.0)


def test_retry_after_http_date():
    assert rate_limit_wait({"Retry-After": "Thu, 01 Jan 1970 00:01:40 GMT"}, now=40.0) == 60.0


def test_x_rate_limit_reset_epoch():
    assert rate_limit_wait({"x-rate-limit-reset": "1030"}, now=1000.0) == 31.0


def test_long_rate_limit_is_deferred():
    d = policy(max_wait=300).decide(1, status=429, headers={"x-rate-limit-reset": "2000"}, now=1000.0)
    assert d.action == "defer" and d.wait > 300


@pytest.mark.parametrize("code", [4, 17, 32, 613])
@pytest.mark.parametrize("status", [400, 403])
def test_facebook_rate_limit_codes(code, status):
    body = json.dumps({"error": {"code": code, "type": "OAuthException", "message": "(#4) limit"}}).encode()
    usage = json.dumps({"123": [{"type": "pages", "estimated_time_to_regain_access": 2}]})
    d = policy().decide(1, status=status, body=body, headers={"X-Business-Use-Case-Usage": usage})
    assert (d.action, d.kind, d.wait) == ("retry", "rate_limit", 120.0)


def test_facebook_other_error_code_is_not_a_rate_limit():
    body = b'{"error": {"code": 190, "type": "OAuthException", "message": "Invalid OAuth access token"}}'
    assert facebook_error_code(body) == 190
    assert policy().decide(1, status=400, body=body).kind == "auth"  # an expired page token, sent as 400
    assert policy().decide(1, status=403, body=body).kind == "auth"
    invalid = b'{"error": {"code": 100, "type": "GraphMethodException", "message": "(#100) Invalid parameter"}}'
    assert policy().decide(1, status=400, body=invalid).kind == "client"


def test_rate_limit_without_hint_backs_off_and_eventually_fails():
    p = policy(max_rate_limit_waits=2, backoff_base=0.5)
    assert p.decide(1, status=429, rate_limit_waits=0).action == "retry"
    assert p.decide(1, status=429, rate_limit_waits=2).action == "fail"


def test_json_path():
    data = {"paging": {"next": "u", "cursors": {"after": "a"}}, "meta": None}
    assert json_path(data, "paging.next") == "u"
    assert json_path(data, "paging.cursors.after") == "a"
    assert json_path(data, "meta.next_token") is None
    assert json_path(data, "missing.deep") is None


def test_twilio_next_page_uri_is_relative_and_carries_params():
    p = NextUrlPaginator("next_page_uri", base_url="http://h:1")
    req = Request("http://h:1/2010-04-01/Accounts/AC1/Calls.json", {"PageSize": 2})
    p.update_state({"calls": [1, 2], "next_page_uri": "/2010-04-01/Accounts/AC1/Calls.json?Page=1&PageToken=PA1"},
                   [1, 2])
    assert p.has_next
    p.update_request(req)
    assert req.url == "http://h:1/2010-04-01/Accounts/AC1/Calls.json?Page=1&PageToken=PA1"
    assert req.params == {}
    p.update_state({"calls": [], "next_page_uri": None}, [])
    assert not p.has_next


def test_next_url_state_round_trip():
    p = NextUrlPaginator("paging.next")
    p.update_state({"paging": {"next": "https://graph/x?after=abc"}}, [1])
    q = NextUrlPaginator("paging.next")
    q.restore(p.state())
    req = Request("https://graph/feed", {"limit": 100})
    q.update_request(req)
    assert (q.has_next, req.url, req.params) == (True, "https://graph/x?after=abc", {})


def test_token_param_paginator():
    p = TokenParamPaginator("meta.next_token", "pagination_token")
    req = Request("u", {"max_results": 100})
    p.update_state({"meta": {"next_token": "t1", "result_count": 100}}, [1])
    p.update_request(req)
    assert req.params == {"max_results": 100, "pagination_token": "t1"}
    p.update_state({"meta": {"result_count": 0}}, [])
    assert not p.has_next


def test_item_token_paginator_stops_on_short_page():
    p = ItemTokenPaginator("token", "before", page_size=2)
    req = Request("u", {})
    p.update_state({}, [{"token": "a"}, {"token": "b"}])
    assert p.has_next
    p.update_request(req)
    assert req.params["before"] == "b"
    p.update_state({}, [{"token": "c"}])
    assert not p.has_next


def test_offset_paginator_uses_total_and_resumes():
    p = OffsetPaginator(10)
    req = Request("u", {})
    p.init_request(req)
    assert req.params == {"start": 0, "count": 10}
    p.update_state({"paging": {"total": 25}}, list(range(10)))
    p.update_request(req)
    assert req.params == {"start": 10, "count": 10} and p.has_next
    p.update_state({"paging": {"total": 25}}, list(range(10)))
    p.update_state({"paging": {"total": 25}}, list(range(5)))
    assert not p.has_next
    q = OffsetPaginator(10)
    q.restore({"start": 20})
    q.update_request(req)
    assert req.params["start"] == 20


def test_offset_paginator_without_total_stops_on_short_page():
    p = OffsetPaginator(10, total_path=None)
    p.update_state({}, list(range(10)))
    assert p.has_next
    p.update_state({}, list(range(3)))
    assert not p.has_next


def test_rate_limit_without_headers_uses_the_vendors_documented_reset():
    d = policy(max_wait=300).decide(1, status=429, now=0.0, fallback_wait=3600.0)
    assert (d.action, d.wait) == ("defer", 3600.0)
    hinted = policy().decide(1, status=429, headers={"Retry-After": "2"}, fallback_wait=3600.0)
    assert hinted.wait == 2.0  # the header wins
