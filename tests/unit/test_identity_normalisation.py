"""Identifier normalisation rules (the Python twin of the dbt macro canonical_email)."""

from __future__ import annotations

import pytest
from crm_warehouse.identity import canonical_email, normalize_phone
from hypothesis import given
from hypothesis import strategies as st


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("Maria.Garcia+survey@GoogleMail.com", "mariagarcia@gmail.com"),
        ("  m.a.r.i.a@gmail.com ", "maria@gmail.com"),
        ("JSmith@Example.com ", "jsmith@example.com"),
        ("j.smith+news@example.com", "j.smith@example.com"),  # dots matter outside gmail
        ("j smith@example.com", "jsmith@example.com"),  # whitespace inside is removed
        ("+tag@example.com", None),
        ("not-an-email", None),
        ("a@b@example.com", None),
        ("user@localhost", None),
        ("", None),
        (None, None),
    ],
)
def test_canonical_email(raw, expected):
    assert canonical_email(raw) == expected


@given(st.emails())
def test_canonical_email_is_idempotent(email):
    once = canonical_email(email)
    assert once is None or canonical_email(once) == once


@pytest.mark.parametrize(
    ("raw", "e164", "valid", "region"),
    [
        ("(415) 555-2671", "+14155552671", True, "US"),
        ("415.555.2671", "+14155552671", True, "US"),
        ("+1 (312) 555-0182", "+13125550182", True, "US"),
        ("+44 20 7946 0958", "+442079460958", True, "GB"),
        ("sip:agent@example.com", None, False, None),
        ("client:anna", None, False, None),
        ("call me maybe", None, False, None),
    ],
)
def test_normalize_phone(raw, e164, valid, region):
    n = normalize_phone(raw)
    assert (n.e164, n.is_valid, n.region) == (e164, valid, region)


def test_normalize_phone_reads_national_numbers_in_the_default_region():
    assert normalize_phone("020 7946 0958", default_region="GB").e164 == "+442079460958"
    assert normalize_phone("020 7946 0958", default_region="US").is_valid is False


def test_international_call_prefixes_are_read_as_plus():
    assert normalize_phone("004915110323135").e164 == "+4915110323135"
    assert normalize_phone("011 44 20 7946 0958").e164 == "+442079460958"


def test_ambiguous_national_numbers_keep_every_reading():
    n = normalize_phone("07813 027062")  # not a US number; British mobile, but also a valid German number
    assert n.is_valid is False
    assert "+447813027062" in n.candidates and "+497813027062" in n.candidates
    assert normalize_phone("(415) 555-2671").candidates == ()


def test_numbers_libphonenumber_does_not_know_keep_their_readings():
    # UK 076 numbers are not valid for libphonenumber: the international spelling keeps its one reading and
    # the national spelling has it among its possible readings, so both spellings can link
    international = normalize_phone("+44 7615 748246")
    national = normalize_phone("07615 748246")
    assert (international.is_valid, international.candidates) == (False, ("+447615748246",))
    assert national.e164 is None and "+447615748246" in national.candidates
    # a number valid in exactly one fallback region is still that reading alone
    assert normalize_phone("0151/26942192").candidates != ()
    assert normalize_phone("+1 800 555 0199").candidates == ()
