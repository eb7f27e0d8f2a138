"""Gmail's quota models: what each call costs and what each budget allows.

Two generations coexist (Gmail API "Usage limits"):

* ``2026``, for Cloud projects created since 2026-05-01: 6,000 units per user per minute,
  1,200,000 per project per minute, a daily billing threshold of 80,000,000 units per
  project; ``messages.get`` costs 20 and ``threads.get`` 40.
* ``legacy``, for projects that used the API between Nov 2025 and Apr 2026: 250 units per
  user per second (a moving average), 1,200,000 per project per minute, no daily
  threshold; ``messages.get`` costs 5 and ``threads.get`` 10.

Every other method costs the same in both. ``GMAIL_QUOTA_PROFILE`` picks one (default
``2026``) and each value can be overridden (``GMAIL_QUOTA_USER_UNITS``,
``GMAIL_QUOTA_USER_WINDOW_SECONDS``, ``GMAIL_QUOTA_PROJECT_UNITS_PER_MINUTE``,
``GMAIL_QUOTA_DAILY_UNITS``, ``GMAIL_QUOTA_COSTS``). Budgets are enforced here as moving
windows: pacing to a moving window is safe whichever way Google counts its minute.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from types import MappingProxyType
from typing import Final

from delightbridge.core.errors import ConfigError
from delightbridge.core.settings import Settings

#: The legacy model's units per method (the names of delightbridge.sync.gmail.calls).
LEGACY_COSTS: Final[Mapping[str, int]] = MappingProxyType({
    "users.getProfile": 1,
    "labels.list": 1,
    "users.watch": 100,
    "users.stop": 50,
    "messages.list": 5,
    "messages.get": 5,
    "messages.attachments.get": 5,
    "threads.list": 10,
    "threads.get": 10,
    "history.list": 2,
    "settings.sendAs.list": 1,
})
#: What the 2026 model prices differently.
COSTS_2026: Final[Mapping[str, int]] = MappingProxyType(
    {**LEGACY_COSTS, "messages.get": 20, "threads.get": 40})


@dataclass(frozen=True, slots=True)
class QuotaProfile:
    """One quota model, possibly with overrides."""

    name: str
    user_units: int  # per user, in any window of user_window seconds
    user_window: float
    project_units_per_minute: int  # every mailbox of the deployment together
    daily_units: int | None  # per project per (Pacific) day; None: no threshold
    costs: Mapping[str, int] = field(default_factory=lambda: LEGACY_COSTS)
    #: Google's "minute" for the project budget; shorter only where time is compressed
    #: (the benchmarks run hours of quota in minutes), never from the environment.
    project_window: float = 60.0

    def cost(self, method: str) -> int:
        """Units a call of ``method`` costs (``KeyError`` for an unknown method)."""
        return self.costs[method]

    @property
    def user_units_per_second(self) -> float:
        return self.user_units / self.user_window

    @classmethod
    def unlimited(cls) -> QuotaProfile:
        """No budget worth pacing to (for tests and benchmarks against a simulator whose
        quota is off); costs are the 2026 model's, for the counts."""
        return cls("unlimited", 10**12, 1.0, 10**12, None, COSTS_2026)


PROFILES: Final[Mapping[str, QuotaProfile]] = MappingProxyType({
    "2026": QuotaProfile("2026", 6_000, 60.0, 1_200_000, 80_000_000, COSTS_2026),
    "legacy": QuotaProfile("legacy", 250, 1.0, 1_200_000, None, LEGACY_COSTS),
})


def profile_from_settings(settings: Settings) -> QuotaProfile:
    """The configured profile with every override applied."""
    base = PROFILES[settings.gmail_quota_profile]
    changes: dict[str, object] = {}
    if settings.gmail_quota_user_units is not None:
        changes["user_units"] = settings.gmail_quota_user_units
    if settings.gmail_quota_user_window_seconds is not None:
        changes["user_window"] = settings.gmail_quota_user_window_seconds
    if settings.gmail_quota_project_units_per_minute is not None:
        changes["project_units_per_minute"] = settings.gmail_quota_project_units_per_minute
    if settings.gmail_quota_daily_units is not None:
        changes["daily_units"] = settings.gmail_quota_daily_units or None
    if settings.gmail_quota_costs:
        unknown = sorted(set(settings.gmail_quota_costs) - set(base.costs))
        if unknown:
            raise ConfigError("GMAIL_QUOTA_COSTS", f"unknown method {unknown[0]!r}; known: "
                              + ", ".join(sorted(base.costs)))
        changes["costs"] = MappingProxyType({**base.costs, **settings.gmail_quota_costs})
    return replace(base, **changes) if changes else base  # type: ignore[arg-type]
