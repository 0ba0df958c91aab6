"""The retry policy: what to do with one HTTP outcome (pure decisions, unit-tested).

- 2xx: use it (a body that is not JSON is retried like a server error, then fails as malformed);
- 429, and Facebook's rate-limit errors (HTTP 400/403 with error.code 4, 17, 32 or 613): wait as long
  as the vendor says (`Retry-After`, `x-rate-limit-reset`, Facebook's `estimated_time_to_regain_access`),
  else back off; a wait beyond `max_wait` is deferred to the scheduler (RateLimitDeferred);
- 401/403: fail at once (credentials);
- 5xx, timeouts, dropped connections: exponential backoff with jitter, up to `max_attempts`;
- other 4xx: fail at once (the request is wrong; retrying cannot help).
"""

from __future__ import annotations

import json
import random
from collections.abc import Mapping
from dataclasses import dataclass, field
from email.utils import parsedate_to_datetime
from typing import Any

FACEBOOK_RATE_LIMIT_CODES = frozenset({4, 17, 32, 613})
# Graph API errors about the token or its permissions, sent as HTTP 400: invalid/expired token (190),
# session (102), no token (2500), permission denied (10, 200-299).
FACEBOOK_AUTH_CODES = frozenset({10, 102, 190, 2500, *range(200, 300)})
RETRYABLE_STATUS = frozenset({500, 502, 503, 504, 520, 521, 522, 523, 524})


@dataclass(frozen=True)
class Decision:
    action: str  # "use" | "retry" | "defer" | "fail"
    kind: str  # "ok" | "rate_limit" | "server" | "network" | "malformed" | "auth" | "client"
    wait: float = 0.0
    reason: str = ""


@dataclass
class RetryPolicy:
    max_attempts: int = 6  # tries for server errors, network errors and malformed bodies
    max_rate_limit_waits: int = 20  # rate-limit waits before giving up
    backoff_base: float = 1.0  # seconds; doubles each attempt
    backoff_cap: float = 60.0
    max_wait: float = 300.0  # a longer rate-limit wait is deferred to the scheduler
    rng: random.Random = field(default_factory=random.Random, repr=False)

    def backoff(self, attempt: int) -> float:
        """Exponential backoff with jitter ("equal jitter"): between half and all of base * 2^(attempt-1)."""
        ceiling = min(self.backoff_cap, self.backoff_base * (2 ** max(0, attempt - 1)))
        return ceiling / 2 + self.rng.uniform(0, ceiling / 2)

    def decide(
        self,
        attempt: int,
        *,
        status: int | None = None,
        headers: Mapping[str, str] | None = None,
        body: bytes | None = None,
        error: BaseException | None = None,
        malformed: bool = False,
        rate_limit_waits: int = 0,
        now: float = 0.0,
        fallback_wait: float | None = None,
    ) -> Decision:
        """The decision for the `attempt`-th try (1-based) that ended with `status` or `error`."""
        headers = headers or {}
        if error is not None:
            return self._again(attempt, "network", f"{type(error).__name__}: {error}")
        if status is None:
            raise ValueError("decide() needs a status or an error")
        if 200 <= status < 300:
            if malformed:
                return self._again(attempt, "malformed", "the body is not valid JSON")
            return Decision("use", "ok")
        fb_code = facebook_error_code(body) if status in (400, 403) else None
        if status == 429 or fb_code in FACEBOOK_RATE_LIMIT_CODES:
            what = f"HTTP {status}" + (f" (Facebook error code {fb_code})" if fb_code is not None else "")
            wait = rate_limit_wait(headers, now)
            if wait is None:  # the vendor's documented reset (e.g. LinkedIn: midnight UTC), else back off
                wait = fallback_wait if fallback_wait is not None else self.backoff(rate_limit_waits + 1)
            if wait > self.max_wait:
                return Decision("defer", "rate_limit", wait, f"{what}: rate limited for {wait:.0f}s")
            if rate_limit_waits >= self.max_rate_limit_waits:
                return Decision("fail", "rate_limit", 0.0,
                                f"{what}: still rate limited after {rate_limit_waits} waits")
            return Decision("retry", "rate_limit", wait, f"{what}: rate limited, waiting {wait:.1f}s")
        if status in (401, 403) or fb_code in FACEBOOK_AUTH_CODES:
            return Decision("fail", "auth", 0.0, f"HTTP {status}")
        if status in RETRYABLE_STATUS or 500 <= status < 600:
            decision = self._again(attempt, "server", f"HTTP {status}")
            hinted = rate_limit_wait(headers, now)
            if decision.action == "retry" and hinted is not None and hinted <= self.max_wait:
                return Decision("retry", "server", max(hinted, decision.wait), decision.reason)
            return decision
        return Decision("fail", "client", 0.0, f"HTTP {status}")

    def _again(self, attempt: int, kind: str, reason: str) -> Decision:
        if attempt >= self.max_attempts:
            return Decision("fail", kind, 0.0, f"{reason} (after {attempt} attempts)")
        return Decision("retry", kind, self.backoff(attempt), reason)


def _header(headers: Mapping[str, str], name: str) -> str | None:
    for key, value in headers.items():
        if key.lower() == name:
            return value
    return None


def rate_limit_wait(headers: Mapping[str, str], now: float) -> float | None:
    """Seconds to wait according to the vendor's headers, or None when they do not say.

    `Retry-After` (seconds or an HTTP date), X's `x-rate-limit-reset` (epoch seconds), Facebook's
    `X-Business-Use-Case-Usage` / `X-App-Usage` `estimated_time_to_regain_access` (minutes)."""
    retry_after = _header(headers, "retry-after")
    if retry_after:
        try:
            return max(0.0, float(retry_after))
        except ValueError:
            try:
                return max(0.0, parsedate_to_datetime(retry_after).timestamp() - now)
            except (TypeError, ValueError):
                pass
    reset = _header(headers, "x-rate-limit-reset")
    if reset:
        try:
            return max(0.0, float(reset) - now) + 1.0
        except ValueError:
            pass
    for name in ("x-business-use-case-usage", "x-app-usage", "x-ad-account-usage"):
        minutes = _facebook_regain_minutes(_header(headers, name))
        if minutes is not None:
            return minutes * 60.0
    return None


def _facebook_regain_minutes(value: str | None) -> float | None:
    if not value:
        return None
    try:
        usage = json.loads(value)
    except ValueError:
        return None
    found: list[float] = []

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            for key, item in node.items():
                if key == "estimated_time_to_regain_access" and isinstance(item, int | float):
                    found.append(float(item))
                else:
                    walk(item)
        elif isinstance(node, list):
            for item in node:
                walk(item)

    walk(usage)
    positive = [m for m in found if m > 0]
    return max(positive) if positive else None


def facebook_error_code(body: bytes | None) -> int | None:
    """`error.code` of a Graph API error body, or None."""
    if not body or not body.lstrip().startswith(b"{"):
        return None
    try:
        error = json.loads(body).get("error")
    except (ValueError, AttributeError):
        return None
    if isinstance(error, dict) and isinstance(error.get("code"), int):
        return error["code"]
    return None
