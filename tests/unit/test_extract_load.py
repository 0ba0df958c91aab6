"""Unit tests of record hashing, natural keys, COPY escaping and schema-drift comparison (no database)."""

from __future__ import annotations

from crm_warehouse.load import canonical_json, compare_profiles, content_hash
from crm_warehouse.load.loader import _esc, key_getter


def test_hash_ignores_key_order_at_every_level():
    a = {"sid": "CA1", "nested": {"x": 1, "y": [1, {"b": 2, "a": 1}]}}
    b = {"nested": {"y": [1, {"a": 1, "b": 2}], "x": 1}, "sid": "CA1"}
    assert content_hash(a) == content_hash(b)
    assert len(content_hash(a)) == 64


def test_hash_changes_when_content_changes():
    assert content_hash({"sid": "CA1", "status": "in-progress"}) != content_hash({"sid": "CA1", "status": "completed"})
    assert content_hash({"n": 1}) != content_hash({"n": "1"})


def test_canonical_json_is_compact_and_keeps_unicode():
    assert canonical_json({"b": "é😀", "a": None}) == '{"a":null,"b":"é😀"}'


def test_key_getter_single_multiple_and_callable():
    assert key_getter("sid")({"sid": "CA1"}) == "CA1"
    assert key_getter(("$URN", "id"))({"id": "7"}) == "7"
    assert key_getter(("$URN", "id"))({"$URN": "urn:li:comment:1", "id": "7"}) == "urn:li:comment:1"
    assert key_getter(("$URN", "id"))({"$URN": "", "id": None}) is None
    assert key_getter(lambda p: p["a"]["b"])({"a": {"b": 3}}) == 3


def test_copy_escaping():
    assert _esc(None) == "\\N"
    assert _esc("a\tb\nc\\d\re") == "a\\tb\\nc\\\\d\\re"
    assert _esc("plain") == "plain"


def test_schema_drift_appeared_disappeared_changed():
    old = {"id": ["string"], "duration": ["string"], "gone": ["number"], "maybe": ["null"]}
    new = {"id": ["string"], "duration": ["number"], "added": ["object"], "maybe": ["string"]}
    changes = {c["field"]: c for c in compare_profiles(old, new)}
    assert changes["added"]["change"] == "appeared" and changes["added"]["new_type"] == "object"
    assert changes["gone"]["change"] == "disappeared"
    assert changes["duration"] == {"field": "duration", "change": "type_changed", "old_type": "string",
                                   "new_type": "number"}
    assert "maybe" not in changes  # null-only before is compatible with a value now
    assert "id" not in changes


def test_no_drift_for_same_profile_or_nullable_field():
    p = {"a": ["string"], "b": ["null", "string"]}
    assert compare_profiles(p, {"a": ["string"], "b": ["string"]}) == []
    assert compare_profiles(p, p) == []
