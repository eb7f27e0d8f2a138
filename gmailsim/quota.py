"""Gmail's per-user quota: unit costs, a moving one-second window, concurrency.

Costs are Gmail's documented "quota units" per method. By default a user may
spend 250 units per second (a moving window, so short bursts pass); beyond it
the call is answered as Google does: 429 ``rateLimitExceeded`` ("User-rate limit
exceeded.  Retry after <time>") by default, or 403 ``userRateLimitExceeded`` /
``rateLimitExceeded``, always with ``Retry-After``. A per-user limit on requests in
flight answers 429 "Too many concurrent requests for user." Batch parts count one
by one, as Google counts them.
"""

from __future__ import annotations

import math
import threading
from collections import defaultdict, deque
from dataclasses import asdict, dataclass, field, fields
from datetime import UTC, datetime
from typing import Any, Literal

from gmailsim.clock import Clock
from gmailsim.errors import GmailError

METHOD_COSTS: dict[str, int] = {
    "users.getProfile": 1,
    "users.watch": 100,
    "users.stop": 50,
    "users.labels.list": 1,
    "users.labels.get": 1,
    "users.messages.list": 5,
    "users.messages.get": 5,
    "users.messages.attachments.get": 5,
    "users.messages.modify": 5,
    "users.messages.trash": 5,
    "users.messages.untrash": 5,
    "users.messages.delete": 10,
    "users.threads.list": 10,
    "users.threads.get": 10,
    "users.history.list": 2,
    "users.settings.sendAs.list": 1,
}

ExceededResponse = Literal["429", "403-user", "403-rate"]


@dataclass(slots=True)
class QuotaConfig:
    """Quota settings; change any field at run time."""

    units_per_second: float | None = 250.0  # None: unlimited
    window_seconds: float = 1.0
    exceeded_response: ExceededResponse = "429"
    max_concurrent_per_user: int | None = None  # None: unlimited
    costs: dict[str, int] = field(default_factory=lambda: dict(METHOD_COSTS))

    def cost(self, method: str) -> int:
        return self.costs.get(method, 5)

    def update(self, **changes: Any) -> None:
        names = {f.name for f in fields(self)}
        for key, value in changes.items():
            if key not in names:
                raise ValueError(f"unknown quota setting {key!r}")
            if key == "exceeded_response" and value not in ("429", "403-user", "403-rate"):
                raise ValueError("exceeded_response must be 429, 403-user or 403-rate")
            setattr(self, key, value)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def rate_limited(config: QuotaConfig, retry_after: float, now: float) -> GmailError:
    """The error Google answers when a user spends units too fast."""
    seconds = max(1, math.ceil(retry_after))
    headers = {"Retry-After": str(seconds)}
    if config.exceeded_response == "403-user":
        return GmailError(403, "User Rate Limit Exceeded", reason="userRateLimitExceeded",
                          domain="usageLimits", headers=headers)
    if config.exceeded_response == "403-rate":
        return GmailError(403, "Rate Limit Exceeded", reason="rateLimitExceeded",
                          domain="usageLimits", headers=headers)
    when = datetime.fromtimestamp(now + retry_after, UTC)
    stamp = when.strftime("%Y-%m-%dT%H:%M:%S.") + f"{when.microsecond // 1000:03d}Z"
    return GmailError(429, f"User-rate limit exceeded.  Retry after {stamp}",
                      reason="rateLimitExceeded", domain="usageLimits", headers=headers)


def too_many_concurrent() -> GmailError:
    return GmailError(429, "Too many concurrent requests for user.",
                      reason="rateLimitExceeded", headers={"Retry-After": "1"})


class QuotaTracker:
    """Spends units against each user's moving window and counts requests in flight."""

    def __init__(self, config: QuotaConfig, clock: Clock) -> None:
        self.config = config
        self._clock = clock
        self._lock = threading.Lock()
        self._spent: dict[str, deque[tuple[float, int]]] = defaultdict(deque)
        self._in_flight: dict[str, int] = defaultdict(int)

    def charge(self, user: str, method: str) -> int:
        """Spend the method's units for ``user`` or raise the rate-limit error."""
        cost = self.config.cost(method)
        limit = self.config.units_per_second
        if limit is None:
            return cost
        window = self.config.window_seconds
        budget = limit * window
        now = self._clock.now()
        with self._lock:
            spent = self._spent[user]
            while spent and spent[0][0] <= now - window:
                spent.popleft()
            used = sum(units for _, units in spent)
            if used + cost > budget:
                # Wait until enough of the oldest spending leaves the window.
                need, freed, retry = used + cost - budget, 0, window
                for stamp, units in spent:
                    freed += units
                    if freed >= need:
                        retry = stamp + window - now
                        break
                raise rate_limited(self.config, retry, now)
            spent.append((now, cost))
        return cost

    def acquire(self, user: str) -> None:
        limit = self.config.max_concurrent_per_user
        with self._lock:
            if limit is not None and self._in_flight[user] >= limit:
                raise too_many_concurrent()
            self._in_flight[user] += 1

    def release(self, user: str) -> None:
        with self._lock:
            self._in_flight[user] = max(0, self._in_flight[user] - 1)

    def in_flight(self, user: str) -> int:
        with self._lock:
            return self._in_flight[user]

    def reset(self) -> None:
        with self._lock:
            self._spent.clear()
