"""Gmail's quota: unit costs, per-user and per-project moving windows, a daily budget,
and the per-user concurrency limit.

Costs are Gmail's documented "quota units" per method. Two quota *profiles* model
Google's two regimes (:data:`PROFILES`); the simulator defaults to ``"legacy"``:

=================================  ===========================  ===========================
limit                              ``"legacy"``                 ``"2026"`` (projects created
                                                                from 2026-05-01)
=================================  ===========================  ===========================
per user (moving window)           250 units per second         6,000 units per minute
per project (moving window)        1,200,000 units per minute   1,200,000 units per minute
per project, per Pacific day       none                         80,000,000 units
``messages.get`` / ``threads.get``  5 / 10                       20 / 40
=================================  ===========================  ===========================

Every other method costs the same in both (:data:`METHOD_COSTS`; the 2026 profile is
that table with :data:`COST_CHANGES_2026` applied). The per-user budget is
``units_per_second * window_seconds`` (2026: 100 units/s over a 60 s window).

A call is checked against the user's window, then the project's (every mailbox of
one simulator: one simulator is one Cloud project), then the day's; a call refused
by any of them charges nothing anywhere. A window refuses a call when the units
spent in it plus the call's own exceed the budget, and ``Retry-After`` says when
enough of the oldest spending leaves it. Over the limit Google answers:

* per user: 429 ``rateLimitExceeded`` ("User-rate limit exceeded.  Retry after
  <time>") by default, or 403 ``userRateLimitExceeded`` / ``rateLimitExceeded``
  (``exceeded_response``), always with ``Retry-After``;
* per project: 403 ``rateLimitExceeded`` "Rate Limit Exceeded" with ``Retry-After``;
* per day: 403 ``dailyLimitExceeded`` "Daily Limit Exceeded" until the quota day
  (midnight America/Los_Angeles, on the simulator's clock) rolls over.

A per-user limit on requests in flight answers 429 "Too many concurrent requests for
user." Batch parts count one by one, as Google counts them.
"""

from __future__ import annotations

import math
import threading
from collections import defaultdict, deque
from collections.abc import Mapping
from dataclasses import asdict, dataclass, fields
from datetime import UTC, date, datetime, timedelta, tzinfo
from typing import Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

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
    "users.messages.send": 100,
    "users.messages.trash": 5,
    "users.messages.untrash": 5,
    "users.messages.delete": 10,
    "users.threads.list": 10,
    "users.threads.get": 10,
    "users.history.list": 2,
    "users.settings.sendAs.list": 1,
}
"""Units per method in the legacy profile (a method not listed costs :data:`DEFAULT_COST`)."""

COST_CHANGES_2026: dict[str, int] = {
    "users.messages.get": 20,
    "users.threads.get": 40,
}
"""What the 2026 profile charges differently from :data:`METHOD_COSTS`."""

DEFAULT_COST = 5
PROJECT_WINDOW_SECONDS = 60.0
QUOTA_TIMEZONE = "America/Los_Angeles"

ProfileName = Literal["legacy", "2026"]
ExceededResponse = Literal["429", "403-user", "403-rate"]
_EXCEEDED_RESPONSES = ("429", "403-user", "403-rate")


@dataclass(frozen=True, slots=True)
class QuotaProfile:
    """One of Google's quota regimes: what :meth:`QuotaConfig.update` sets for ``profile``."""

    name: ProfileName
    costs: Mapping[str, int]
    units_per_second: float  # per user, over window_seconds
    window_seconds: float
    project_units_per_minute: float
    daily_units: int | None  # per project, per Pacific day; None: no daily limit


LEGACY = QuotaProfile("legacy", METHOD_COSTS, units_per_second=250.0, window_seconds=1.0,
                      project_units_per_minute=1_200_000.0, daily_units=None)
PROFILE_2026 = QuotaProfile("2026", {**METHOD_COSTS, **COST_CHANGES_2026},
                            units_per_second=100.0, window_seconds=60.0,  # 6,000 per minute
                            project_units_per_minute=1_200_000.0, daily_units=80_000_000)
PROFILES: dict[str, QuotaProfile] = {p.name: p for p in (LEGACY, PROFILE_2026)}
DEFAULT_PROFILE: ProfileName = "legacy"


def _optional_float(value: Any) -> float | None:
    return None if value is None else float(value)


def _optional_int(value: Any) -> int | None:
    return None if value is None else int(value)


def _positive_float(value: Any) -> float:
    number = float(value)
    if not number > 0:
        raise ValueError("window_seconds must be positive")
    return number


def _costs(value: Any) -> dict[str, int]:
    if not isinstance(value, Mapping):
        raise ValueError("costs must be an object of method names to units")
    return {str(k): int(v) for k, v in value.items()}


def _exceeded(value: Any) -> ExceededResponse:
    if value not in _EXCEEDED_RESPONSES:
        raise ValueError("exceeded_response must be 429, 403-user or 403-rate")
    result: ExceededResponse = value
    return result


_COERCE: dict[str, Any] = {
    "units_per_second": _optional_float,
    "window_seconds": _positive_float,
    "project_units_per_minute": _optional_float,
    "project_window_seconds": _positive_float,
    "daily_units": _optional_int,
    "exceeded_response": _exceeded,
    "max_concurrent_per_user": _optional_int,
    "costs": _costs,
}


@dataclass(slots=True, init=False)
class QuotaConfig:
    """Quota settings; change any field at run time (assign it or call :meth:`update`).

    ``QuotaConfig("2026")`` starts from that profile; keyword arguments override its
    values. ``update(profile=...)`` resets every profile value (costs, the per-user
    budget and window, the project and daily budgets) to the profile's, then applies
    the other changes given in the same call. ``None`` turns a limit off.
    """

    profile: ProfileName
    units_per_second: float | None  # per user; budget = units_per_second * window_seconds
    window_seconds: float
    project_units_per_minute: float | None  # all users, over project_window_seconds
    project_window_seconds: float  # Google's minute (shorter in tests that wait for one)
    daily_units: int | None  # all users, per Pacific day
    exceeded_response: ExceededResponse
    max_concurrent_per_user: int | None
    costs: dict[str, int]

    def __init__(self, profile: str = DEFAULT_PROFILE, **overrides: Any) -> None:
        self.exceeded_response = "429"
        self.max_concurrent_per_user = None
        self.project_window_seconds = PROJECT_WINDOW_SECONDS
        self.update(profile=profile, **overrides)

    def cost(self, method: str) -> int:
        return self.costs.get(method, DEFAULT_COST)

    @property
    def user_budget(self) -> float | None:
        """Units one user may spend in any ``window_seconds`` (None: unlimited)."""
        rate = self.units_per_second
        return None if rate is None else rate * self.window_seconds

    def update(self, **changes: Any) -> None:
        names = {f.name for f in fields(self)}
        for key in changes:
            if key not in names:
                raise ValueError(f"unknown quota setting {key!r}")
        values = {key: _COERCE[key](value) for key, value in changes.items()
                  if key != "profile"}
        if "profile" in changes:
            profile = PROFILES.get(str(changes["profile"]))
            if profile is None:
                raise ValueError(f"profile must be one of {', '.join(PROFILES)}")
            self.profile = profile.name
            self.costs = dict(profile.costs)
            self.units_per_second = profile.units_per_second
            self.window_seconds = profile.window_seconds
            self.project_units_per_minute = profile.project_units_per_minute
            self.daily_units = profile.daily_units
        for key, value in values.items():
            setattr(self, key, value)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


# --- the quota day ---------------------------------------------------------------------


def _pacific() -> tzinfo | None:
    try:
        return ZoneInfo(QUOTA_TIMEZONE)
    except ZoneInfoNotFoundError:  # no tz database: US rules below
        return None


_PACIFIC = _pacific()


def _nth_sunday(year: int, month: int, n: int) -> datetime:
    first = datetime(year, month, 1, tzinfo=UTC)
    return first + timedelta(days=(6 - first.weekday()) % 7 + 7 * (n - 1))


def quota_day(now: float) -> date:
    """The quota day of the epoch time ``now``: its date in America/Los_Angeles."""
    if _PACIFIC is not None:
        return datetime.fromtimestamp(now, _PACIFIC).date()
    utc = datetime.fromtimestamp(now, UTC)  # PDT from 2:00 on March's 2nd Sunday to
    summer = (_nth_sunday(utc.year, 3, 2) + timedelta(hours=10) <= utc  # 2:00 on Nov's 1st
              < _nth_sunday(utc.year, 11, 1) + timedelta(hours=9))
    return (utc - timedelta(hours=7 if summer else 8)).date()


# --- errors ----------------------------------------------------------------------------


def _retry_header(retry_after: float) -> dict[str, str]:
    return {"Retry-After": str(max(1, math.ceil(retry_after)))}


def rate_limited(config: QuotaConfig, retry_after: float, now: float) -> GmailError:
    """The error Google answers when a user spends units too fast."""
    headers = _retry_header(retry_after)
    if config.exceeded_response == "403-user":
        return GmailError(403, "User Rate Limit Exceeded", reason="userRateLimitExceeded",
                          domain="usageLimits", headers=headers)
    if config.exceeded_response == "403-rate":
        return project_rate_limited(retry_after)
    when = datetime.fromtimestamp(now + retry_after, UTC)
    stamp = when.strftime("%Y-%m-%dT%H:%M:%S.") + f"{when.microsecond // 1000:03d}Z"
    return GmailError(429, f"User-rate limit exceeded.  Retry after {stamp}",
                      reason="rateLimitExceeded", domain="usageLimits", headers=headers)


def project_rate_limited(retry_after: float) -> GmailError:
    """The error Google answers when the project's per-minute quota is spent."""
    return GmailError(403, "Rate Limit Exceeded", reason="rateLimitExceeded",
                      domain="usageLimits", headers=_retry_header(retry_after))


def daily_limit_exceeded() -> GmailError:
    """The error Google answers once the project's daily quota is spent."""
    return GmailError(403, "Daily Limit Exceeded", reason="dailyLimitExceeded",
                      domain="usageLimits")


def too_many_concurrent() -> GmailError:
    return GmailError(429, "Too many concurrent requests for user.",
                      reason="rateLimitExceeded", headers={"Retry-After": "1"})


# --- the tracker -----------------------------------------------------------------------


@dataclass(slots=True)
class _Spent:
    stamp: float
    units: int


class _Window:
    """Units spent per instant, oldest first, with their running total."""

    __slots__ = ("spent", "total")

    def __init__(self) -> None:
        self.spent: deque[_Spent] = deque()
        self.total = 0

    def prune(self, now: float, seconds: float) -> int:
        """Drop what left the window ending ``now``; the units left in it."""
        spent = self.spent
        while spent and spent[0].stamp <= now - seconds:
            self.total -= spent.popleft().units
        return self.total

    def retry_after(self, cost: int, budget: float, now: float, seconds: float) -> float:
        """Seconds until enough of the oldest spending leaves for ``cost`` to fit."""
        need, freed = self.total + cost - budget, 0
        for entry in self.spent:
            freed += entry.units
            if freed >= need:
                return entry.stamp + seconds - now
        return seconds

    def add(self, now: float, units: int) -> None:
        if self.spent and self.spent[-1].stamp == now:
            self.spent[-1].units += units
        else:
            self.spent.append(_Spent(now, units))
        self.total += units


@dataclass(frozen=True, slots=True)
class QuotaUsage:
    """Units spent by one user or by the whole project (the simulator)."""

    window_units: int  # in the current moving window
    window_seconds: float
    window_budget: float | None  # None: unlimited
    today_units: int  # since midnight America/Los_Angeles
    daily_budget: int | None  # the project's; None for a user or when unlimited

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


class QuotaTracker:
    """Spends units against the user's and the project's moving windows and the day's
    budget, and counts requests in flight."""

    def __init__(self, config: QuotaConfig, clock: Clock) -> None:
        self.config = config
        self._clock = clock
        self._lock = threading.Lock()
        self._users: dict[str, _Window] = defaultdict(_Window)
        self._project = _Window()
        self._day: date | None = None
        self._today_users: dict[str, int] = defaultdict(int)
        self._today_project = 0
        self._in_flight: dict[str, int] = defaultdict(int)

    def _roll_day(self, now: float) -> date:
        day = quota_day(now)
        if day != self._day:
            self._day = day
            self._today_users.clear()
            self._today_project = 0
        return day

    def charge(self, user: str, method: str) -> int:
        """Spend the method's units for ``user`` or raise the limit's error, charging
        nothing: the user's window first, then the project's, then the day's."""
        config = self.config
        cost = config.cost(method)
        user_seconds, user_budget = config.window_seconds, config.user_budget
        project_budget = config.project_units_per_minute
        project_seconds = config.project_window_seconds
        daily = config.daily_units
        now = self._clock.now()
        with self._lock:
            window = self._users[user]
            used = window.prune(now, user_seconds)
            if user_budget is not None and used + cost > user_budget:
                retry = window.retry_after(cost, user_budget, now, user_seconds)
                raise rate_limited(config, retry, now)
            used = self._project.prune(now, project_seconds)
            if project_budget is not None and used + cost > project_budget:
                raise project_rate_limited(self._project.retry_after(
                    cost, project_budget, now, project_seconds))
            self._roll_day(now)
            if daily is not None and self._today_project + cost > daily:
                raise daily_limit_exceeded()
            window.add(now, cost)
            self._project.add(now, cost)
            self._today_users[user] += cost
            self._today_project += cost
        return cost

    def usage(self, user: str | None = None) -> QuotaUsage:
        """What ``user`` (or, without one, the whole project) has spent so far."""
        config = self.config
        now = self._clock.now()
        with self._lock:
            self._roll_day(now)
            if user is None:
                return QuotaUsage(
                    self._project.prune(now, config.project_window_seconds),
                    config.project_window_seconds, config.project_units_per_minute,
                    self._today_project, config.daily_units)
            window = self._users.get(user)
            return QuotaUsage(
                window.prune(now, config.window_seconds) if window else 0,
                config.window_seconds, config.user_budget,
                self._today_users.get(user, 0), None)

    def snapshot(self) -> dict[str, Any]:
        """Every counter as JSON: the profile, the quota day, the project, each user."""
        project = self.usage()  # rolls the day over first
        with self._lock:
            users = sorted(set(self._users) | set(self._today_users))
            day = self._day
        return {"profile": self.config.profile,
                "day": day.isoformat() if day else None,
                "project": project.to_dict(),
                "users": {user: self.usage(user).to_dict() for user in users}}

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
        """Forget every unit spent (windows and today's totals); requests in flight stay."""
        with self._lock:
            self._users.clear()
            self._project = _Window()
            self._day = None
            self._today_users.clear()
            self._today_project = 0
