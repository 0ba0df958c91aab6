"""Canonical JSON and content hashes of records (pure functions).

Canonical JSON: keys sorted at every level, no spaces, UTF-8 (msgspec's encoder, ~10x the standard
library's speed). NaN and infinities have no JSON form and are written as null.
"""

from __future__ import annotations

import hashlib
from typing import Any

import msgspec

_encode = msgspec.json.Encoder(order="sorted").encode


def canonical_json_bytes(payload: Any) -> bytes:
    """The canonical JSON of a record as UTF-8 bytes. Raises TypeError for non-JSON types."""
    return _encode(payload)


def canonical_json(payload: Any) -> str:
    """The canonical JSON text of a record."""
    return _encode(payload).decode("utf-8")


def content_hash(payload: Any) -> str:
    """sha256 hex of the canonical JSON of `payload`: equal records hash equal whatever their key order."""
    return hashlib.sha256(_encode(payload)).hexdigest()


_JSON_TYPES = {
    str: "string",
    int: "number",
    float: "number",
    bool: "boolean",
    type(None): "null",
    dict: "object",
    list: "array",
}


def json_type(value: Any) -> str:
    """The JSON type name of a Python value decoded from JSON."""
    return _JSON_TYPES.get(type(value), type(value).__name__)
