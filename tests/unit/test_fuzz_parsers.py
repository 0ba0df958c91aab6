"""Property-based tests of the payload parsers of every source on bad vendor answers: malformed, truncated,
huge, deeply nested and hostile JSON, wrong shapes, hostile pagination links. Each answer yields records
(the loader then quarantines what it cannot store) or fails the task with an error that names the
connection; never an unhandled crash, never an endless pagination.

The real HttpClient runs on a requests.Session whose transport answers from a list (no network): the
code under test is the client's decoding and paging and each source's parsing, not the transport."""

from __future__ import annotations

import io
import json
import os
import zipfile
from datetime import UTC, datetime

import msgspec
import pytest
import requests
from crm_warehouse.http import HttpClient, HttpSourceError, MalformedResponse, RetryPolicy
from crm_warehouse.load import Record
from crm_warehouse.load.hashing import canonical_json_bytes
from crm_warehouse.load.loader import _safe_text, key_getter
from crm_warehouse.sources import (
    phone_system,
    social_facebook,
    social_linkedin,
    social_x,
    survey_vendor,
    web_forms,
)
from crm_warehouse.sources.base import ConnInfo, StreamContext
from hypothesis import given, settings
from hypothesis import strategies as st
from requests.adapters import HTTPAdapter
from requests.structures import CaseInsensitiveDict

FUZZ = settings(max_examples=int(os.environ.get("CRM_FUZZ_EXAMPLES", "60")), deadline=None)
CONN = "fuzz_vendor"
BASE = "https://vendor.example"
WS, WE = datetime(2026, 9, 1, tzinfo=UTC), datetime(2026, 9, 2, tzinfo=UTC)
MAX_CHUNKS = 50  # far more than the answers served: more would mean the pagination never ends


class Canned(HTTPAdapter):
    """A transport answering each request with the next body of a list (then `{}`: an empty last page)."""

    def __init__(self, bodies: list[bytes], status: int = 200) -> None:
        super().__init__()
        self.bodies = list(bodies)
        self.status = status
        self.sent: list[requests.PreparedRequest] = []

    def send(self, request, **kwargs):  # noqa: ANN001, ANN003
        self.sent.append(request)
        body = self.bodies.pop(0) if self.bodies else b"{}"
        response = requests.Response()
        response.status_code = self.status
        response._content = body
        response._content_consumed = True
        response.headers = CaseInsensitiveDict({"content-type": "application/json"})
        response.url = request.url
        response.request = request
        response.encoding = "utf-8"
        return response


def client_for(bodies: list[bytes]) -> tuple[HttpClient, Canned]:
    adapter = Canned(bodies)
    session = requests.Session()
    session.mount("https://", adapter)
    session.mount("http://", adapter)
    client = HttpClient(BASE, conn_id=CONN, session=session, headers={"Authorization": "Bearer secret"},
                        policy=RetryPolicy(max_attempts=2), sleep=lambda _s: None)
    return client, adapter


EXTRA = {"account_sid": "AC1", "form_ids": ["F1", "F2"], "user_id": "42", "page_id": "P1",
         "organization_urn": "urn:li:organization:1", "survey_ids": ["SV_1"], "page_size": 2}


def context(client: HttpClient, stream: str) -> StreamContext:
    info = ConnInfo(CONN, BASE, "AC1", "secret", dict(EXTRA))
    return StreamContext("fuzz", stream, info, client, WS, WE, {}, None, None)  # type: ignore[arg-type]


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20)
    | st.sampled_from(["=cmd|' /C calc'!A0", "\x00", "\ud800", "../../etc/x", "' or 1=1 --"]),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4),
    max_leaves=12,
)
records = st.lists(st.one_of(json_values, st.fixed_dictionaries({"id": json_values, "sid": json_values,
                                                                  "token": json_values}, optional={
    "createdAt": json_values, "created_time": json_values, "text": json_values})), max_size=5)
links = st.one_of(st.none(), json_values, st.sampled_from([
    "https://vendor.example/next?page=2", "/next?page=2", "//evil.example/steal", "http://evil.example/steal",
    "https://evil.example/x", "ftp://vendor.example/x", "javascript:alert(1)", "https://[::1", "http://",
    "https://vendor.example:99999/x", "https://vendor.example/next?page=2\r\nX-Injected: 1", "", "::::"]))

# the page shape of each source, with every part fuzzed
PAGES = {
    "twilio_calls": (phone_system.extract_calls, lambda r, n: {"calls": r, "next_page_uri": n}),
    "twilio_dispositions": (phone_system.extract_dispositions,
                            lambda r, n: {"dispositions": r, "meta": {"next_page_url": n}}),
    "typeform": (web_forms.extract_responses, lambda r, n: {"items": r, "page_count": n}),
    "x_mentions": (social_x.extract_mentions,
                   lambda r, n: {"data": r, "includes": {"users": r}, "meta": {"next_token": n, "newest_id": n},
                                 "errors": n}),
    "facebook_posts": (social_facebook.extract_posts, lambda r, n: {"data": r, "paging": {"next": n}}),
    "linkedin_posts": (social_linkedin.extract_posts, lambda r, n: {"elements": r, "paging": {"total": n}}),
}


def body_of(shape, recs, link, mode: str, nest: int) -> bytes:
    page = shape(recs, link)
    data = json.dumps(page).encode()  # ASCII: lone surrogates travel as \ud800 escapes, NaN as NaN
    if mode == "deep":
        return b"[" * nest + data + b"]" * nest
    if mode == "truncated":
        return data[: len(data) // 2]
    if mode == "bad_utf8":  # a byte that is not UTF-8 inside a string (or anywhere)
        at = data.find(b'"') + 1
        return data[:at] + b"\xff\xc3" + data[at:]
    if mode == "wrong_shape":
        return json.dumps([page]).encode()
    return data


def run_stream(extract, ctx) -> list[Record]:
    out: list[Record] = []
    for n, chunk in enumerate(extract(ctx)):
        assert n < MAX_CHUNKS, "the pagination never ends"
        for recs in chunk.records.values():
            out.extend(recs)
    return out


def assert_clear_failure(exc: BaseException) -> None:
    """A failure of the task that says which connection; not a crash of the parser."""
    assert isinstance(exc, HttpSourceError) or type(exc) is RuntimeError, f"crash: {type(exc).__name__}: {exc}"
    assert CONN in str(exc), f"the error does not name the connection: {exc}"


def assert_loader_can_judge(recs: list[Record], key) -> None:
    """Every record either encodes to JSON or fails with an error the loader quarantines."""
    get = key_getter(key)
    for rec in recs:
        assert isinstance(rec, Record) and rec.source_uri
        if isinstance(rec.payload, dict):
            try:
                get(rec.payload)
            except Exception:  # noqa: BLE001 - the loader quarantines a key function that fails
                pass
        try:
            canonical_json_bytes(rec.payload)
        except (TypeError, ValueError, RecursionError, msgspec.EncodeError):
            pass
        assert isinstance(_safe_text(rec.payload), str)


@FUZZ
@given(source=st.sampled_from(sorted(PAGES)), pages=st.lists(st.tuples(records, links), min_size=1, max_size=4),
       mode=st.sampled_from(["ok", "ok", "ok", "truncated", "wrong_shape", "deep", "bad_utf8"]),
       nest=st.integers(1, 3000))
def test_every_source_parses_or_fails_clearly(source, pages, mode, nest):
    extract, shape = PAGES[source]
    client, adapter = client_for([body_of(shape, recs, link, mode, nest) for recs, link in pages])
    try:
        got = run_stream(extract, context(client, source))
    except AssertionError:
        raise
    except Exception as exc:  # noqa: BLE001
        assert_clear_failure(exc)
    else:
        assert_loader_can_judge(got, "id")
    assert len(adapter.sent) <= len(pages) * 2 + 4, "more requests than pages served"
    for request in adapter.sent:  # credentials only ever went out over https
        assert request.url.startswith("https://"), request.url


@FUZZ
@given(data=st.one_of(st.binary(max_size=512), json_values.map(lambda v: json.dumps({"responses": v}).encode())),
       zipped=st.booleans(), member=st.sampled_from(["export.json", "../../etc/x.json", "/abs.json"]))
def test_qualtrics_export_files_parse_or_fail_clearly(data, zipped, member):
    if zipped:
        buf = io.BytesIO()
        with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as archive:
            archive.writestr(member, data)
        data = buf.getvalue()
    try:
        responses = survey_vendor.read_export(data, "SV_1")
    except MalformedResponse as exc:
        assert "SV_1" in str(exc)
    else:
        assert isinstance(responses, list)


def test_qualtrics_export_zip_bomb_is_refused_without_reading_it():
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED, compresslevel=9) as archive:
        with archive.open("export.json", "w", force_zip64=True) as fh:
            fh.write(b'{"responses": ["')
            for _ in range(96):
                fh.write(b" " * (1 << 20))
            fh.write(b'"]}')
    assert len(buf.getvalue()) < 1 << 20
    with pytest.raises(MalformedResponse, match="decompression bomb"):
        survey_vendor.read_export(buf.getvalue(), "SV_1")


def test_nesting_a_few_hundred_deep_is_still_read():
    client, _ = client_for([b"[" * 500 + b"]" * 500])
    assert client.get_json("/calls") is not None


@pytest.mark.parametrize("depth", [5000, 100_000])
def test_deeply_nested_answers_fail_clearly(depth):
    client, _ = client_for([b"[" * depth + b"]" * depth] * 3)
    with pytest.raises(MalformedResponse, match=CONN):
        client.get_json("/calls")
    with pytest.raises(MalformedResponse, match="not valid JSON"):
        survey_vendor.read_export(b'{"responses": ' + b"[" * depth + b"]" * depth + b"}", "SV_1")


def test_a_page_linking_to_itself_ends_with_a_clear_error():
    loop = msgspec.json.encode({"data": [{"id": "1"}], "paging": {"next": BASE + "/v21.0/P1/feed?after=A"}})
    client, adapter = client_for([loop] * 10)
    with pytest.raises(MalformedResponse, match="points back to a page already read"):
        run_stream(social_facebook.extract_posts, context(client, "posts"))
    assert len(adapter.sent) == 2


@pytest.mark.parametrize("newest", ["not-a-number", {"a": 1}, ["1"], "1e9", True])
def test_x_rejects_a_newest_id_that_is_not_a_tweet_id(newest):
    body = msgspec.json.encode({"data": [{"id": "5"}], "meta": {"newest_id": newest}})
    client, _ = client_for([body])
    with pytest.raises(MalformedResponse, match=f"{CONN}.*meta.newest_id"):
        run_stream(social_x.extract_mentions, context(client, "mentions"))


@pytest.mark.parametrize("errors", [{"detail": "x"}, "boom", [1], {"0": 1}])
def test_x_error_answers_of_any_shape_fail_clearly(errors):
    client, _ = client_for([msgspec.json.encode({"errors": errors})])
    with pytest.raises(RuntimeError, match=CONN) as info:
        run_stream(social_x.extract_mentions, context(client, "mentions"))
    assert_clear_failure(info.value)


@pytest.mark.parametrize("body", [b'{"calls": [{"sid": "CA\xff"}]}', b'{"calls": [{"sid": "\xed\xa0\x80"}]}',
                                  b'{"calls": [], "next_page_uri": "\xc3"}'])
def test_invalid_utf8_inside_a_json_string_fails_clearly(body):
    """msgspec raises UnicodeDecodeError (not DecodeError) for these: found by tools/fuzz_readers.py."""
    client, _ = client_for([body] * 3)
    with pytest.raises(MalformedResponse, match=CONN):
        client.get_json("/calls")
    with pytest.raises(MalformedResponse, match="SV_1"):
        survey_vendor.read_export(body.replace(b"calls", b"responses"), "SV_1")
