"""Conformance of Gmail's two quota models: "legacy" (250 units per user per second) and
"2026" (Cloud projects created from 2026-05-01: 6,000 units per user per minute,
messages.get 20 and threads.get 40, a daily budget of 80,000,000 units per project),
both with 1,200,000 units per project per minute, driven through
google-api-python-client.

The clock is frozen on a Monday morning in California, so windows move only when a
test advances it and the quota day ends at the next Pacific midnight.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Any
from zoneinfo import ZoneInfo

import aiohttp
import pytest
from gmailsim import Clock, QuotaConfig, Simulator
from gmailsim import quota as quota_module
from gmailsim.errors import GmailError
from gmailsim.quota import (
    COST_CHANGES_2026,
    METHOD_COSTS,
    PROFILES,
    QuotaTracker,
    QuotaUsage,
    quota_day,
)
from googleapiclient.errors import HttpError

from tests.gmailsim.discovery import validate_error, validate_response
from tests.plugins.gmail import GmailSim

A, B, C = "a@example.com", "b@example.com", "c@example.com"
PACIFIC = ZoneInfo("America/Los_Angeles")
START = datetime(2026, 5, 4, 10, 0, tzinfo=PACIFIC).timestamp()  # 17:00 UTC
Outcome = tuple[int, Any, dict[str, str]]
Build = Callable[[Any], Any]  # users() -> a request


def iso(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, UTC).strftime("%Y-%m-%dT%H:%M:%S.000Z")


def get(message_id: str) -> Build:
    return lambda users: users.messages().get(userId="me", id=message_id, format="minimal")


def thread(thread_id: str) -> Build:
    return lambda users: users.threads().get(userId="me", id=thread_id, format="minimal")


def get_profile(users: Any) -> Any:
    return users.getProfile(userId="me")


def list_messages(users: Any) -> Any:
    return users.messages().list(userId="me")


def _outcome(exc: HttpError | None, body: Any) -> Outcome:
    if exc is None:
        return 200, body, {}
    return exc.resp.status, json.loads(exc.content), dict(exc.resp)


@dataclass
class Setup:
    g: GmailSim
    services: dict[str, Any]

    @property
    def sim(self) -> Simulator:
        return self.g.sim

    def message(self, address: str) -> str:
        return self.sim.snapshot(address).messages[0].id

    def thread(self, address: str) -> str:
        return self.sim.snapshot(address).messages[0].thread_id

    async def call(self, address: str, build: Build) -> Outcome:
        def work() -> Outcome:
            try:
                return _outcome(None, build(self.services[address].users()).execute())
            except HttpError as exc:
                return _outcome(exc, None)

        return await asyncio.to_thread(work)

    async def batch(self, address: str, builds: list[Build]) -> list[Outcome]:
        answers: dict[int, Outcome] = {}

        def work() -> None:
            service = self.services[address]
            batch = self.g.batch(lambda rid, body, exc: answers.__setitem__(
                int(rid), _outcome(exc, body)))
            for build in builds:
                batch.add(build(service.users()))
            batch.execute(http=service._http)

        await asyncio.to_thread(work)
        return [answers[i] for i in sorted(answers)]

    def usage(self, address: str | None = None) -> QuotaUsage:
        return self.sim.quota_tracker.usage(address)


@pytest.fixture
def quota_sim(gmail_sim_factory: Any) -> Callable[..., contextlib.AbstractAsyncContextManager[
        Setup]]:
    @contextlib.asynccontextmanager
    async def start(profile: str = "2026", addresses: tuple[str, ...] = (A,)
                    ) -> AsyncIterator[Setup]:
        sim = Simulator(seed=5, clock=Clock(start=START, frozen=True), quota_profile=profile)
        tokens = {}
        for address in addresses:
            tokens[address] = sim.create_mailbox(address).refresh_token
            sim.seed(address, messages=4, threads=2)
        async with gmail_sim_factory(sim) as g:
            services = await asyncio.to_thread(
                lambda: {address: g.service(token) for address, token in tokens.items()})
            yield Setup(g, services)

    return start


# --- the cost tables ----------------------------------------------------------------------


def test_the_2026_profile_differs_only_in_messages_get_and_threads_get() -> None:
    legacy, new = QuotaConfig(), QuotaConfig("2026")
    assert legacy.profile == "legacy"
    assert new.profile == "2026"
    assert set(PROFILES) == {"legacy", "2026"}
    changed = {m: new.cost(m) for m in METHOD_COSTS if new.cost(m) != legacy.cost(m)}
    assert changed == COST_CHANGES_2026 == {"users.messages.get": 20, "users.threads.get": 40}
    for config in (legacy, new):
        assert config.cost("users.messages.list") == 5
        assert config.cost("users.history.list") == 2
        assert config.cost("users.messages.send") == 100
    assert METHOD_COSTS["users.messages.get"] == 5, "the legacy table is left alone"


def test_the_profiles_limits() -> None:
    legacy, new = QuotaConfig(), QuotaConfig("2026")
    assert (legacy.units_per_second, legacy.window_seconds, legacy.user_budget) == (
        250, 1, 250)
    assert (new.window_seconds, new.user_budget) == (60, 6_000)
    assert legacy.project_units_per_minute == new.project_units_per_minute == 1_200_000
    assert legacy.daily_units is None
    assert new.daily_units == 80_000_000


def test_every_value_stays_overridable_and_a_profile_switch_resets_them() -> None:
    config = QuotaConfig("2026", daily_units=10)
    assert config.daily_units == 10
    assert config.cost("users.messages.get") == 20
    config.update(units_per_second=None, project_units_per_minute=50,
                  costs={**config.costs, "users.threads.get": 7})
    assert (config.user_budget, config.project_units_per_minute) == (None, 50)
    assert config.cost("users.threads.get") == 7
    config.update(profile="legacy")
    assert config.to_dict() == QuotaConfig().to_dict()
    config.update(profile="2026", daily_units=None)  # the profile first, then the rest
    assert (config.daily_units, config.user_budget) == (None, 6_000)
    for bad in ({"profile": "2027"}, {"window_seconds": 0}, {"bogus": 1},
                {"exceeded_response": "418"}):
        with pytest.raises(ValueError):
            config.update(**bad)
    assert config.profile == "2026"


# --- costs through the client -------------------------------------------------------------


@pytest.mark.parametrize(("profile", "get_units", "thread_units"),
                         [("2026", 20, 40), ("legacy", 5, 10)])
async def test_costs_through_the_client(quota_sim: Any, profile: str, get_units: int,
                                        thread_units: int) -> None:
    async with quota_sim(profile) as s:
        message_id, thread_id = s.message(A), s.thread(A)
        history = str(s.sim.history_id(A))
        calls: list[tuple[str, Build]] = [
            ("gmail.users.messages.get", get(message_id)),
            ("gmail.users.threads.get", thread(thread_id)),
            ("gmail.users.messages.list", list_messages),
            ("gmail.users.history.list",
             lambda u: u.history().list(userId="me", startHistoryId=history)),
            ("gmail.users.getProfile", get_profile),
        ]
        for method_id, build in calls:
            status, body, _ = await s.call(A, build)
            assert status == 200
            validate_response(method_id, body)
        units = {m: s.sim.counters.get(m).units for m in (
            "users.messages.get", "users.threads.get", "users.messages.list",
            "users.history.list", "users.getProfile")}
    assert units == {"users.messages.get": get_units, "users.threads.get": thread_units,
                     "users.messages.list": 5, "users.history.list": 2,
                     "users.getProfile": 1}
    total = sum(units.values())
    assert s.usage(A).window_units == total
    assert s.usage(A).today_units == total
    assert s.usage().today_units == total


# --- per user -------------------------------------------------------------------------------


async def test_2026_per_user_budget_is_6000_units_in_a_moving_minute(quota_sim: Any) -> None:
    async with quota_sim("2026", (A, B)) as s:
        sim, message_id = s.sim, s.message(A)
        for step in range(3):  # 3 x 100 messages.get x 20 units, 20 s apart
            if step:
                sim.advance(20)
            assert {o[0] for o in await s.batch(A, [get(message_id)] * 100)} == {200}
        assert s.usage(A) == QuotaUsage(6_000, 60, 6_000, 6_000, None)

        status, body, headers = await s.call(A, get_profile)  # 1 unit more is too much
        assert status == 429
        validate_error(body, 429, "rateLimitExceeded")
        assert body["error"]["status"] == "RESOURCE_EXHAUSTED"
        assert body["error"]["errors"][0]["domain"] == "usageLimits"
        # The first 2,000 units (spent at START) leave the window at START + 60 s.
        assert body["error"]["message"] == (
            f"User-rate limit exceeded.  Retry after {iso(START + 60)}")
        assert headers["retry-after"] == "20"
        assert (await s.call(B, get_profile))[0] == 200, "the budget is per user"

        sim.advance(19)
        status, _, headers = await s.call(A, get_profile)
        assert (status, headers["retry-after"]) == (429, "1")
        sim.advance(1)
        assert (await s.call(A, get_profile))[0] == 200
        assert s.usage(A).window_units == 4_001
        assert s.usage(A).today_units == 6_001
        assert sim.counters.get("users.getProfile").errors == {"429/rateLimitExceeded": 2}


async def test_2026_per_user_answer_can_be_403(quota_sim: Any) -> None:
    async with quota_sim("2026") as s:
        s.sim.quota.update(units_per_second=1, exceeded_response="403-user")  # 60 a minute
        assert {o[0] for o in await s.batch(A, [get(s.message(A))] * 3)} == {200}
        s.sim.advance(30)
        status, body, headers = await s.call(A, get_profile)
    assert status == 403
    validate_error(body, 403, "userRateLimitExceeded")
    assert headers["retry-after"] == "30"


# --- per project ----------------------------------------------------------------------------


@pytest.mark.parametrize("profile", ["2026", "legacy"])
async def test_project_budget_covers_every_mailbox(quota_sim: Any, profile: str) -> None:
    async with quota_sim(profile, (A, B, C)) as s, aiohttp.ClientSession() as session:
        sim = s.sim
        async with session.patch(s.g.server.control_url + "/quota",
                                 json={"project_units_per_minute": 12}) as response:
            assert response.status == 200
            assert (await response.json())["project_units_per_minute"] == 12
        assert (await s.call(A, list_messages))[0] == 200  # 5 units at START
        sim.advance(10)
        assert (await s.call(B, list_messages))[0] == 200  # 10 units
        sim.advance(10)
        assert (await s.call(C, get_profile))[0] == 200  # 11 units
        status, body, headers = await s.call(C, list_messages)  # 16 > 12
        assert status == 403
        validate_error(body, 403, "rateLimitExceeded")
        assert body["error"]["message"] == "Rate Limit Exceeded"
        assert body["error"]["errors"][0]["domain"] == "usageLimits"
        assert body["error"]["status"] == "PERMISSION_DENIED"
        assert headers["retry-after"] == "40", "A's 5 units leave at START + 60 s"
        assert (await s.call(A, get_profile))[0] == 200  # 12: still fits
        assert (await s.call(B, get_profile))[0] == 403
        assert (s.usage().window_units, s.usage(C).window_units) == (12, 1)

        sim.advance(40)
        assert (await s.call(C, list_messages))[0] == 200  # 12 - 5 + 5
        async with session.get(s.g.server.control_url + "/quota/usage") as response:
            usage = await response.json()
    assert usage["profile"] == profile
    assert usage["day"] == "2026-05-04"
    assert usage["project"] == {"window_units": 12, "window_seconds": 60,
                                "window_budget": 12, "today_units": 17,
                                "daily_budget": 80_000_000 if profile == "2026" else None}
    assert usage["users"][C]["today_units"] == 6
    assert usage["users"][B]["today_units"] == 5
    assert sim.counters.get("users.messages.list").errors == {"403/rateLimitExceeded": 1}


# --- per day ---------------------------------------------------------------------------------


async def test_daily_limit_lasts_until_pacific_midnight(quota_sim: Any) -> None:
    async with quota_sim("2026", (A, B)) as s:
        sim, message_id = s.sim, s.message(A)
        sim.quota.update(daily_units=50)
        assert (await s.call(A, get(message_id)))[0] == 200
        assert (await s.call(B, get(s.message(B))))[0] == 200  # 40 for the project
        status, body, headers = await s.call(A, get(message_id))
        assert status == 403
        validate_error(body, 403, "dailyLimitExceeded")
        assert body["error"]["message"] == "Daily Limit Exceeded"
        assert body["error"]["errors"][0]["domain"] == "usageLimits"
        assert "retry-after" not in headers

        # Late that evening: every window is empty and UTC's day has changed, Pacific's not.
        sim.advance(datetime(2026, 5, 4, 23, 59, 59, tzinfo=PACIFIC).timestamp() - START)
        assert (s.usage(A).window_units, s.usage().window_units) == (0, 0)
        assert s.usage().today_units == 40
        status, body, _ = await s.call(A, get(message_id))
        assert status == 403
        validate_error(body, 403, "dailyLimitExceeded")

        sim.advance(1)  # midnight in California
        assert (await s.call(A, get(message_id)))[0] == 200
        assert s.usage() == QuotaUsage(20, 60, 1_200_000, 20, 50)
        assert s.usage(B).today_units == 0
        assert sim.quota_tracker.snapshot()["day"] == "2026-05-05"
        counter = sim.counters.get("users.messages.get")
        assert counter.units == 60
        assert counter.errors["403/dailyLimitExceeded"] == 2


def test_the_quota_day_runs_on_pacific_time(monkeypatch: pytest.MonkeyPatch) -> None:
    cases = [  # (UTC time, Pacific date): PST is UTC-8, PDT (Mar 8 - Nov 1 2026) UTC-7
        (datetime(2026, 1, 15, 7, 59, 59), date(2026, 1, 14)),
        (datetime(2026, 1, 15, 8, 0), date(2026, 1, 15)),
        (datetime(2026, 3, 8, 9, 59), date(2026, 3, 8)),  # 01:59 PST, just before DST
        (datetime(2026, 7, 1, 6, 59, 59), date(2026, 6, 30)),
        (datetime(2026, 7, 1, 7, 0), date(2026, 7, 1)),
        (datetime(2026, 11, 2, 7, 59), date(2026, 11, 1)),  # PST again
        (datetime(2026, 11, 2, 8, 0), date(2026, 11, 2)),
    ]
    for when, expected in cases:
        assert quota_day(when.replace(tzinfo=UTC).timestamp()) == expected, when
    monkeypatch.setattr(quota_module, "_PACIFIC", None)  # no tz database: the US rules
    for when, expected in cases:
        assert quota_day(when.replace(tzinfo=UTC).timestamp()) == expected, when


# --- charging order and atomicity ------------------------------------------------------------


def _tracker(**overrides: Any) -> tuple[QuotaTracker, Clock]:
    clock = Clock(start=START, frozen=True)
    return QuotaTracker(QuotaConfig("2026", **overrides), clock), clock


def _state(tracker: QuotaTracker) -> list[QuotaUsage]:
    return [tracker.usage(), tracker.usage(A), tracker.usage(B)]


@pytest.mark.parametrize(("overrides", "code", "reason"), [
    ({"units_per_second": 1}, 429, "rateLimitExceeded"),  # A: 60 a minute
    ({"project_units_per_minute": 60}, 403, "rateLimitExceeded"),
    ({"daily_units": 60}, 403, "dailyLimitExceeded"),
])
def test_a_refused_call_charges_nothing_anywhere(overrides: dict[str, Any], code: int,
                                                 reason: str) -> None:
    tracker, _ = _tracker(**overrides)
    for user in (A, A, B):
        tracker.charge(user, "users.messages.get")  # 20 each: A 40, project 60
    before = _state(tracker)
    with pytest.raises(GmailError) as refused:
        tracker.charge(A, "users.threads.get")  # 40 more
    assert (refused.value.code, refused.value.reason) == (code, reason)
    assert _state(tracker) == before


def test_the_user_is_checked_first_then_the_project_then_the_day() -> None:
    tracker, clock = _tracker(units_per_second=1, project_units_per_minute=60, daily_units=100)
    tracker.charge(A, "users.threads.get")  # A 40, project 40
    tracker.charge(B, "users.messages.get")  # B 20, project 60: the project is full
    with pytest.raises(GmailError) as refused:
        tracker.charge(A, "users.threads.get")  # over A's 60 and the project's
    assert refused.value.code == 429
    with pytest.raises(GmailError) as refused:
        tracker.charge(A, "users.getProfile")  # A has room, the project none
    assert (refused.value.code, refused.value.reason) == (403, "rateLimitExceeded")
    clock.advance(60)  # the windows empty; the day holds 60 of 100
    tracker.charge(A, "users.threads.get")  # 100
    clock.advance(60)
    with pytest.raises(GmailError) as refused:
        tracker.charge(B, "users.getProfile")
    assert (refused.value.code, refused.value.reason) == (403, "dailyLimitExceeded")
    assert tracker.usage().today_units == 100


# --- batch --------------------------------------------------------------------------------------


async def test_batch_parts_are_charged_and_refused_one_by_one(quota_sim: Any) -> None:
    async with quota_sim("2026") as s:
        s.sim.quota.update(units_per_second=10, window_seconds=10)  # 100 units per 10 s
        message_id, thread_id = s.message(A), s.thread(A)
        parts: list[tuple[Build, int]] = [
            (get(message_id), 200), (get(message_id), 200), (get(message_id), 200),  # 60
            (thread(thread_id), 200),  # 100: exactly the budget
            (get(message_id), 429), (list_messages, 429), (get_profile, 429),  # each over
        ]
        outcomes = await s.batch(A, [build for build, _ in parts])
        assert [o[0] for o in outcomes] == [expected for _, expected in parts]
        validate_response("gmail.users.threads.get", outcomes[3][1])
        for status, body, headers in outcomes[4:]:
            validate_error(body, status, "rateLimitExceeded")
            assert headers["retry-after"] == "10"
        s.sim.advance(10)
        outcomes = await s.batch(A, [list_messages] * 21)  # 20 x 5 = 100: the 21st is refused
        assert [o[0] for o in outcomes] == [200] * 20 + [429]
        counters = s.sim.counters
        assert counters.calls("batch") == 2
        assert counters.get("users.messages.get").to_dict() == {
            "calls": 4, "units": 60, "errors": {"429/rateLimitExceeded": 1}}
        assert counters.get("users.threads.get").units == 40
        assert counters.get("users.messages.list").to_dict() == {
            "calls": 22, "units": 100, "errors": {"429/rateLimitExceeded": 2}}
        assert s.usage(A).window_units == 100
        assert s.usage().today_units == 200


# --- the control API -------------------------------------------------------------------------


async def test_the_control_api_selects_profiles_and_reports_usage(quota_sim: Any) -> None:
    async with quota_sim("legacy") as s, aiohttp.ClientSession() as session:
        url = s.g.server.control_url

        async def control(method: str, path: str, body: Any = None, expect: int = 200) -> Any:
            async with session.request(method, url + path, json=body) as response:
                payload = await response.json()
                assert response.status == expect, payload
                return payload

        legacy = await control("GET", "/quota")
        assert legacy["profile"] == "legacy"
        assert legacy["daily_units"] is None
        switched = await control("PATCH", "/quota", {"profile": "2026", "daily_units": 1000})
        assert switched["profile"] == "2026"
        assert switched["costs"]["users.messages.get"] == 20
        assert (switched["units_per_second"], switched["window_seconds"]) == (100, 60)
        assert switched["project_units_per_minute"] == 1_200_000
        assert switched["daily_units"] == 1000
        assert s.sim.quota.daily_units == 1000
        await control("PATCH", "/quota", {"profile": "2027"}, expect=400)
        await control("PATCH", "/quota", {"daily_unitz": 1}, expect=400)

        assert (await s.call(A, get(s.message(A))))[0] == 200
        usage = await control("GET", "/quota/usage")
        assert usage == {
            "profile": "2026", "day": "2026-05-04",
            "project": {"window_units": 20, "window_seconds": 60,
                        "window_budget": 1_200_000, "today_units": 20, "daily_budget": 1000},
            "users": {A: {"window_units": 20, "window_seconds": 60, "window_budget": 6_000,
                          "today_units": 20, "daily_budget": None}}}
        reset = await control("POST", "/quota/reset")
        assert reset["project"]["today_units"] == 0
        assert reset["users"] == {}
        assert s.sim.counters.get("users.messages.get").units == 20, "counters are separate"
        back = await control("PATCH", "/quota", {"profile": "legacy"})
        assert back == QuotaConfig().to_dict()
