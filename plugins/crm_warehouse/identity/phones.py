"""Phone numbers to E.164 with Google's libphonenumber rules (the `phonenumbers` package)."""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import NamedTuple

import phonenumbers

# Twilio puts SIP URIs and client ids in `from` / `to` when the leg is not a phone number.
_NOT_PHONES = ("sip:", "client:", "anonymous", "restricted", "unknown", "private")
# International call prefixes written instead of "+": 00 (most of the world), 011 (North America).
_INTERNATIONAL_PREFIX = re.compile(r"^\s*(?:00|011)(?=[1-9])")
# Regions tried for a national number (trunk prefix 0) that is not valid in the default region.
DEFAULT_FALLBACK_REGIONS: tuple[str, ...] = ("GB", "DE", "FR", "IE", "ES", "IT", "NL", "BE", "AT", "CH")


class NormalizedPhone(NamedTuple):
    raw: str
    e164: str | None  # None when the text cannot be parsed as a phone number at all
    is_valid: bool  # libphonenumber's is_valid_number: a number that can be assigned
    region: str | None  # ISO 3166 region of the number (None when unknown)
    # a national number valid in several fallback regions: each reading, in E.164 (identity tries them
    # all: a wrong reading practically never is another customer's number)
    candidates: tuple[str, ...] = ()


def _parse(text: str, region: str | None) -> phonenumbers.PhoneNumber | None:
    try:
        number = phonenumbers.parse(text, region)
    except phonenumbers.NumberParseException:
        return None
    return number if phonenumbers.is_possible_number(number) else None


def _result(raw: str, number: phonenumbers.PhoneNumber) -> NormalizedPhone:
    return NormalizedPhone(
        raw,
        phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164),
        phonenumbers.is_valid_number(number),
        phonenumbers.region_code_for_number(number),
    )


def normalize_phone(
    raw: str, default_region: str = "US", fallback_regions: Sequence[str] = DEFAULT_FALLBACK_REGIONS
) -> NormalizedPhone:
    """Parse `raw` (any national or international spelling) into E.164.

    - "+..." and "00..." / "011..." are international;
    - other numbers are read in `default_region`;
    - a national number with a trunk prefix ("0151/26942192", "07813 027062") that is not valid in the
      default region is read in the fallback regions: valid in one, that reading; valid in several
      (national formats overlap: 06... is French and Dutch), not valid, with every reading in
      `candidates`, together with the readings that are possible but not valid (libphonenumber does not
      know every range: UK 076 numbers), and so are the readings of a number valid nowhere;
    - an international number that is possible but not valid keeps its one reading in `candidates`
      (the identity models link valid numbers and candidates).
    Text that is not a phone number (SIP URIs, client ids, "anonymous") gives e164=None, is_valid=False.
    """
    text = raw.strip()
    if not text or text.lower().startswith(_NOT_PHONES):
        return NormalizedPhone(raw, None, False, None)
    text = _INTERNATIONAL_PREFIX.sub("+", text)
    number = _parse(text, default_region)
    if number is not None and phonenumbers.is_valid_number(number):
        return _result(raw, number)
    digits = re.sub(r"\D", "", text)
    if not text.startswith("+") and digits.startswith("0") and not digits.startswith("00"):
        readings = {
            phonenumbers.format_number(n, phonenumbers.PhoneNumberFormat.E164): n
            for region in fallback_regions
            if region != default_region
            for n in [_parse(text, region)]
            if n is not None
        }
        valid = [n for n in readings.values() if phonenumbers.is_valid_number(n)]
        if len(valid) == 1:
            return _result(raw, valid[0])
        # valid in several regions, or in none (a range libphonenumber does not know, such as UK 076
        # numbers): every possible reading, valid or not
        if readings:
            found = tuple(sorted(readings))
            if number is None:
                return NormalizedPhone(raw, None, False, None, found)
            return _result(raw, number)._replace(candidates=found)
    if number is None:
        return NormalizedPhone(raw, None, False, None)
    if text.startswith("+") and not phonenumbers.is_valid_number(number):
        # written with its country code: one reading only, even when libphonenumber does not know the range
        return _result(raw, number)._replace(candidates=(_result(raw, number).e164,))
    return _result(raw, number)
