"""Whether and when to retry a Gmail answer: pure decisions, tested with parametrize.

Retried: 429; 403 with reason ``rateLimitExceeded`` / ``userRateLimitExceeded``;
500/502/503/504; connection errors and timeouts. Backoff is exponential with full
jitter on top of a floor, starting at least one second after the error in
production, and never shorter than a ``Retry-After`` Gmail sent. A host that cannot be
reached at all (its name does not resolve, the connection is refused) is tried only
``connect_attempts`` times. Everything else surfaces at once.
"""

from __future__ import annotations

import enum
import json
import random
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime

RATE_LIMIT_REASONS = frozenset({"rateLimitExceeded", "userRateLimitExceeded"})
SERVER_STATUSES = frozenset({500, 502, 503, 504})


class Verdict(enum.Enum):
    OK = "ok"
    RATE_LIMITED = "rate_limited"  # retry after backoff, slow the pacer
    UNAVAILABLE = "unavailable"  # retry after backoff
    UNAUTHORIZED = "unauthorized"  # refresh the access token once, then retry
    NOT_FOUND = "not_found"
    FAILED = "failed"  # surface at once


@dataclass(frozen=True, slots=True)
class GmailErrorInfo:
    message: str
    reason: str | None


def error_info(body: bytes) -> GmailErrorInfo:
    """Message and first reason of Google's error envelope, tolerating anything."""
    try:
        error = json.loads(body)["error"]
        reasons = [e.get("reason") for e in error.get("errors", []) if isinstance(e, dict)]
        return GmailErrorInfo(str(error.get("message", ""))[:500], reasons[0] if reasons else None)
    except (ValueError, KeyError, TypeError, AttributeError):
        text = body[:200].decode("utf-8", "replace")
        return GmailErrorInfo(text, None)


def classify(status: int, reason: str | None) -> Verdict:
    if 200 <= status < 300:
        return Verdict.OK
    if status == 429 or (status == 403 and reason in RATE_LIMIT_REASONS):
        return Verdict.RATE_LIMITED
    if status in SERVER_STATUSES:
        return Verdict.UNAVAILABLE
    if status == 401:
        return Verdict.UNAUTHORIZED
    if status == 404:
        return Verdict.NOT_FOUND
    return Verdict.FAILED


def retry_after_seconds(value: str | None, now: datetime | None = None) -> float | None:
    """``Retry-After`` as seconds: delta-seconds or an HTTP date; None if absent/invalid."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - (now or datetime.now(UTC))).total_seconds())


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """Bounds of retrying one call: attempts, total time, backoff shape."""

    max_attempts: int = 8
    max_elapsed: float = 120.0
    initial: float = 1.0
    maximum: float = 32.0
    # A host that cannot be reached at all (no such name, connection refused) is
    # tried this many times, not max_attempts: it fails in seconds, with why.
    connect_attempts: int = 3

    def backoff(self, attempt: int, retry_after: float | None = None,
                rng: random.Random | None = None) -> float:
        """Wait before attempt ``attempt + 1`` (``attempt`` counts from 1)."""
        ceiling = min(self.maximum, self.initial * 2 ** (attempt - 1))
        jittered = self.initial + (rng or random).uniform(0, max(0.0, ceiling - self.initial))
        return max(jittered, retry_after or 0.0)


FAST_POLICY = RetryPolicy(max_attempts=8, max_elapsed=20.0, initial=0.01, maximum=0.2)
"""For tests and the simulator demo, where waiting seconds proves nothing."""
