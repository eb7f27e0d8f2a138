"""Gmail's two quota models, as settings choose and override them."""

from __future__ import annotations

import pytest

from delightbridge.core.errors import ConfigError
from delightbridge.core.settings import Settings
from delightbridge.sync.gmail.quota import COSTS_2026, LEGACY_COSTS, PROFILES, profile_from_settings


def test_the_2026_model_is_the_default_and_prices_fetches_higher() -> None:
    profile = profile_from_settings(Settings.from_env({}))
    assert profile == PROFILES["2026"]
    assert (profile.user_units, profile.user_window) == (6000, 60.0)
    assert profile.user_units_per_second == 100
    assert (profile.project_units_per_minute, profile.daily_units) == (1_200_000, 80_000_000)
    assert (profile.cost("messages.get"), profile.cost("threads.get")) == (20, 40)
    assert (profile.cost("messages.list"), profile.cost("history.list")) == (5, 2)


def test_the_legacy_model() -> None:
    profile = profile_from_settings(Settings.from_env({"GMAIL_QUOTA_PROFILE": "legacy"}))
    assert (profile.user_units, profile.user_window, profile.daily_units) == (250, 1.0, None)
    assert (profile.cost("messages.get"), profile.cost("threads.get")) == (5, 10)
    assert set(LEGACY_COSTS) == set(COSTS_2026)
    assert {m for m in LEGACY_COSTS if LEGACY_COSTS[m] != COSTS_2026[m]} == {
        "messages.get", "threads.get"}


def test_each_value_can_be_overridden() -> None:
    profile = profile_from_settings(Settings.from_env({
        "GMAIL_QUOTA_PROFILE": "2026", "GMAIL_QUOTA_USER_UNITS": "3000",
        "GMAIL_QUOTA_USER_WINDOW_SECONDS": "30", "GMAIL_QUOTA_PROJECT_UNITS_PER_MINUTE": "5000",
        "GMAIL_QUOTA_DAILY_UNITS": "0", "GMAIL_QUOTA_COSTS": "messages.get=25, threads.get=50",
    }))
    assert (profile.user_units, profile.user_window, profile.project_units_per_minute,
            profile.daily_units) == (3000, 30.0, 5000, None)
    assert (profile.cost("messages.get"), profile.cost("threads.get"),
            profile.cost("history.list")) == (25, 50, 2)


@pytest.mark.parametrize(("env", "variable", "problem"), [
    ({"GMAIL_QUOTA_PROFILE": "2025"}, "GMAIL_QUOTA_PROFILE", "must be 2026 or legacy"),
    ({"GMAIL_QUOTA_COSTS": "messages.get"}, "GMAIL_QUOTA_COSTS", "method=units pairs"),
    ({"GMAIL_QUOTA_COSTS": "messages.get=-1"}, "GMAIL_QUOTA_COSTS", "method=units pairs"),
    ({"GMAIL_QUOTA_USER_UNITS": "0"}, "GMAIL_QUOTA_USER_UNITS", "must be from 1"),
    ({"GMAIL_QUOTA_UNITS_PER_SECOND": "250"}, "GMAIL_QUOTA_UNITS_PER_SECOND",
     "was replaced: set GMAIL_QUOTA_PROFILE"),
])
def test_bad_quota_settings_are_one_clear_error(env: dict[str, str], variable: str,
                                                problem: str) -> None:
    with pytest.raises(ConfigError, match=problem) as caught:
        Settings.from_env(env)
    assert caught.value.variable == variable


def test_an_unknown_method_in_the_costs_is_refused() -> None:
    settings = Settings.from_env({"GMAIL_QUOTA_COSTS": "messages.fetch=3"})
    with pytest.raises(ConfigError, match=r"unknown method 'messages\.fetch'"):
        profile_from_settings(settings)
