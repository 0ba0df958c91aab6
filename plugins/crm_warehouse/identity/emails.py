"""Canonical email addresses: one spelling per mailbox.

Rules (kept identical to the dbt macro `canonical_email`):
1. remove every whitespace character and lower-case the address;
2. it must be `local@domain` with exactly one `@`, a non-empty local part and a dotted domain, else None;
3. `googlemail.com` is `gmail.com`;
4. a plus-tag (`+anything` in the local part) is removed, on every domain;
5. on gmail.com, dots in the local part are removed;
6. a local part that is empty after these steps makes the address invalid (None).
"""

from __future__ import annotations

import re

_WHITESPACE = re.compile(r"\s+")
_SHAPE = re.compile(r"^[^@]+@[^@]+\.[^@]+$")
GMAIL_DOMAINS = frozenset({"gmail.com", "googlemail.com"})


def canonical_email(value: str | None) -> str | None:
    """The canonical form of an email address, or None when `value` is not an address."""
    if value is None:
        return None
    text = _WHITESPACE.sub("", value).lower()
    if not _SHAPE.match(text):
        return None
    local, domain = text.split("@")
    local = local.split("+", 1)[0]
    if domain in GMAIL_DOMAINS:
        domain = "gmail.com"
        local = local.replace(".", "")
    if not local:
        return None
    return f"{local}@{domain}"
