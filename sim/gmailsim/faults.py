"""Fault injection, configurable at run time: latency, server errors, expired tokens,
and notification loss, duplication, delay and reordering.

Random faults draw from one seeded generator, so a run with the same seed and the
same sequence of calls fails the same calls. ``fail_next`` scripts exact failures
for deterministic tests.
"""

from __future__ import annotations

import random
import threading
from collections import deque
from dataclasses import dataclass, field, fields
from typing import Any

from gmailsim import errors
from gmailsim.errors import GmailError

_CONFIG_FIELDS = (
    "latency_ms", "jitter_ms", "error_rate", "unavailable_rate", "expired_token_rate",
    "methods", "notification_drop_rate", "notification_duplicate_rate",
    "notification_delay_rate", "notification_delay_seconds", "notification_reorder_rate",
)


@dataclass(slots=True)
class _Scripted:
    method: str | None
    error: GmailError
    remaining: int


@dataclass(slots=True)
class FaultConfig:
    """Every knob is a plain attribute; assign to it (or call :meth:`update`) at run time."""

    latency_ms: float = 0.0
    jitter_ms: float = 0.0
    error_rate: float = 0.0  # answered 500 backendError
    unavailable_rate: float = 0.0  # answered 503 backendError
    expired_token_rate: float = 0.0  # the presented access token expires now: 401
    methods: frozenset[str] | None = None  # random faults only for these methods
    notification_drop_rate: float = 0.0
    notification_duplicate_rate: float = 0.0
    notification_delay_rate: float = 0.0
    notification_delay_seconds: float = 2.0
    notification_reorder_rate: float = 0.0
    seed: int = 0
    _rng: random.Random = field(default_factory=random.Random, repr=False)
    _script: deque[_Scripted] = field(default_factory=deque, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def __post_init__(self) -> None:
        self._rng.seed(self.seed)

    # --- configuration -----------------------------------------------------------

    def update(self, **changes: Any) -> None:
        for key, value in changes.items():
            if key == "seed":
                self.reseed(int(value))
                continue
            if key not in _CONFIG_FIELDS:
                raise ValueError(f"unknown fault setting {key!r}")
            if key == "methods" and value is not None:
                value = frozenset(value)
            setattr(self, key, value)

    def reseed(self, seed: int) -> None:
        with self._lock:
            self.seed = seed
            self._rng.seed(seed)

    def reset(self) -> None:
        """Back to no faults at all."""
        with self._lock:
            for f in fields(self):
                if f.name in _CONFIG_FIELDS:
                    setattr(self, f.name, FaultConfig.__dataclass_fields__[f.name].default)
            self._script.clear()

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {name: getattr(self, name) for name in _CONFIG_FIELDS}
        out["methods"] = sorted(self.methods) if self.methods is not None else None
        out["seed"] = self.seed
        out["scripted"] = [
            {"method": s.method, "code": s.error.code, "reason": s.error.reason,
             "remaining": s.remaining} for s in self._script
        ]
        return out

    # --- scripted failures ---------------------------------------------------------

    def fail_next(self, method: str | None = None, *, code: int = 500, times: int = 1,
                  error: GmailError | None = None) -> None:
        """The next ``times`` calls of ``method`` (any method if None) fail with ``code``."""
        failure = error or error_for(code)
        with self._lock:
            self._script.append(_Scripted(method, failure, times))

    # --- decisions (called by the server) -------------------------------------------

    def _chance(self, rate: float) -> bool:
        return rate > 0 and (rate >= 1 or self._rng.random() < rate)

    def scripted_error(self, method: str) -> GmailError | None:
        """A failure scripted for exactly ``method`` (random faults do not apply)."""
        with self._lock:
            for item in self._script:
                if item.method == method and item.remaining > 0:
                    item.remaining -= 1
                    if item.remaining == 0:
                        self._script.remove(item)
                    return item.error
        return None

    def request_error(self, method: str) -> GmailError | None:
        """A scripted or random server error for this call, if any."""
        with self._lock:
            for item in self._script:
                if item.method in (None, method) and item.remaining > 0:
                    item.remaining -= 1
                    if item.remaining == 0:
                        self._script.remove(item)
                    return item.error
            if self.methods is not None and method not in self.methods:
                return None
            if self._chance(self.error_rate):
                return errors.backend_error()
            if self._chance(self.unavailable_rate):
                return errors.unavailable()
        return None

    def token_expires_now(self, method: str) -> bool:
        with self._lock:
            if self.methods is not None and method not in self.methods:
                return False
            return self._chance(self.expired_token_rate)

    def latency(self) -> float:
        """Seconds to wait before answering."""
        with self._lock:
            jitter = self._rng.uniform(0, self.jitter_ms) if self.jitter_ms > 0 else 0.0
        return max(0.0, self.latency_ms + jitter) / 1000.0

    def notification_fate(self) -> tuple[bool, bool, float, bool]:
        """(drop, duplicate, delay seconds, reorder) for one notification."""
        with self._lock:
            drop = self._chance(self.notification_drop_rate)
            duplicate = self._chance(self.notification_duplicate_rate)
            delay = (self.notification_delay_seconds
                     if self._chance(self.notification_delay_rate) else 0.0)
            reorder = self._chance(self.notification_reorder_rate)
        return drop, duplicate, delay, reorder


def error_for(code: int) -> GmailError:
    """The error Google answers with for a bare status code."""
    if code == 500:
        return errors.backend_error()
    if code == 503:
        return errors.unavailable()
    if code == 401:
        return errors.unauthenticated()
    if code == 404:
        return errors.not_found()
    if code == 429:
        return GmailError(429, "Too many concurrent requests for user.",
                          reason="rateLimitExceeded", headers={"Retry-After": "1"})
    if code == 403:
        return GmailError(403, "User Rate Limit Exceeded", reason="userRateLimitExceeded",
                          domain="usageLimits", headers={"Retry-After": "1"})
    return GmailError(code, f"Injected error {code}", reason="backendError")
