"""Per-user quota, concurrency limit, latency, injected errors and the counters."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest
from gmailsim import Clock, Simulator
from gmailsim.server import RunningSimulator, serve

from tests.gmailsim.discovery import validate_error

A = "a@example.com"


class Client:
    def __init__(self, running: RunningSimulator, session: aiohttp.ClientSession) -> None:
        self.running = running
        self.session = session
        self.token = running.sim.access_token(A)

    async def get(self, path: str, **params: str) -> tuple[int, Any, dict[str, str]]:
        url = f"{self.running.base_url}/gmail/v1/users/me{path}"
        headers = {"Authorization": f"Bearer {self.token}"}
        async with self.session.get(url, params=params, headers=headers) as response:
            return response.status, await response.json(), dict(response.headers)

    async def batch(self, paths: list[str]) -> list[int]:
        boundary = "xyz"
        parts = "".join(
            f"--{boundary}\r\nContent-Type: application/http\r\nContent-ID: <{i}>\r\n\r\n"
            f"GET {self.running.prefix}/gmail/v1/users/me{p}\r\n\r\n"
            for i, p in enumerate(paths))
        body = parts + f"--{boundary}--\r\n"
        headers = {"Authorization": f"Bearer {self.token}",
                   "Content-Type": f"multipart/mixed; boundary={boundary}"}
        async with self.session.post(self.running.batch_uri, data=body.encode(),
                                     headers=headers) as response:
            text = await response.text()
            assert response.status == 200
        return [int(line.split()[1]) for line in text.splitlines()
                if line.startswith("HTTP/1.1 ")]


@pytest.fixture
async def client() -> AsyncIterator[Client]:
    sim = Simulator(seed=1, clock=Clock(start=1_700_000_000, frozen=True))
    sim.create_mailbox(A)
    sim.seed(A, messages=6, threads=2)
    async with serve(sim) as running, aiohttp.ClientSession() as session:
        yield Client(running, session)


async def test_quota_is_spent_in_gmail_units_and_refills_each_second(client: Client) -> None:
    sim = client.running.sim
    sim.quota.units_per_second = 12
    message_id = sim.snapshot(A).messages[0].id
    assert (await client.get(f"/messages/{message_id}"))[0] == 200  # 5 units
    assert (await client.get("/messages"))[0] == 200  # 5 units
    assert (await client.get("/history", startHistoryId=str(sim.history_id(A))))[0] == 200  # 2
    status, body, headers = await client.get("/profile")  # 1 more unit: over 12
    assert status == 429
    validate_error(body, 429, "rateLimitExceeded")
    assert body["error"]["status"] == "RESOURCE_EXHAUSTED"
    assert body["error"]["errors"][0]["domain"] == "usageLimits"
    assert body["error"]["message"].startswith("User-rate limit exceeded.  Retry after ")
    assert headers["Retry-After"] == "1"
    sim.advance(1.0)
    assert (await client.get("/profile"))[0] == 200
    counters = sim.counters
    assert counters.get("users.messages.get").units == 5
    assert counters.get("users.history.list").units == 2
    assert counters.get("users.getProfile").to_dict() == {
        "calls": 2, "units": 1, "errors": {"429/rateLimitExceeded": 1}}


@pytest.mark.parametrize(("mode", "reason", "message"), [
    ("403-user", "userRateLimitExceeded", "User Rate Limit Exceeded"),
    ("403-rate", "rateLimitExceeded", "Rate Limit Exceeded"),
])
async def test_quota_can_answer_403_like_google(client: Client, mode: str, reason: str,
                                               message: str) -> None:
    sim = client.running.sim
    sim.quota.update(units_per_second=100, exceeded_response=mode)
    statuses = [(await client.get("/profile"))[0] for _ in range(100)]
    assert statuses == [200] * 100
    status, body, headers = await client.get("/profile")
    assert status == 403
    validate_error(body, 403, reason)
    assert body["error"]["message"] == message
    assert "Retry-After" in headers


async def test_default_quota_is_250_units_per_user_per_second(client: Client) -> None:
    sim = client.running.sim
    sim.create_mailbox("b@example.com")
    assert sim.quota.units_per_second == 250
    statuses = await client.batch(["/messages"] * 50)  # 50 x 5 = 250 units
    assert statuses == [200] * 50
    assert (await client.get("/profile"))[0] == 429
    other = sim.access_token("b@example.com")
    async with client.session.get(f"{client.running.base_url}/gmail/v1/users/me/profile",
                                  headers={"Authorization": f"Bearer {other}"}) as response:
        assert response.status == 200, "quota is per user"


async def test_concurrent_requests_beyond_the_limit_are_refused(client: Client) -> None:
    sim = client.running.sim
    sim.quota.max_concurrent_per_user = 3
    sim.faults.latency_ms = 150
    statuses = await client.batch(["/profile"] * 8)  # batch parts run concurrently
    assert statuses == [200] * 3 + [429] * 5
    assert sim.counters.get("users.getProfile").errors == {"429/rateLimitExceeded": 5}
    sim.faults.latency_ms = 600  # wide margin: all six requests arrive within it
    results = await asyncio.gather(*(client.get("/profile") for _ in range(6)))
    refused = [body for status, body, _ in results if status == 429]
    assert len(refused) == 3
    assert refused[0]["error"]["message"] == "Too many concurrent requests for user."
    assert sim.quota_tracker.in_flight(A) == 0


async def test_latency_and_jitter(client: Client) -> None:
    faults = client.running.sim.faults
    faults.update(latency_ms=300, jitter_ms=100)
    started = time.monotonic()
    await client.get("/profile")
    elapsed = time.monotonic() - started
    assert 0.3 <= elapsed < 2.0
    faults.update(latency_ms=0, jitter_ms=0)
    started = time.monotonic()
    await client.get("/profile")
    assert time.monotonic() - started < 0.3


async def test_random_server_errors_are_reproducible_for_a_seed(client: Client) -> None:
    faults = client.running.sim.faults
    faults.update(error_rate=1.0)
    status, body, _ = await client.get("/profile")
    assert status == 500
    validate_error(body, 500, "backendError")
    faults.update(error_rate=0.0, unavailable_rate=1.0)
    status, body, _ = await client.get("/profile")
    assert status == 503
    assert body["error"]["status"] == "UNAVAILABLE"

    async def run(seed: int) -> list[int]:
        faults.update(unavailable_rate=0.0, error_rate=0.3, seed=seed)
        return [(await client.get("/profile"))[0] for _ in range(60)]

    first, again, other = await run(7), await run(7), await run(8)
    assert first == again != other
    assert 6 <= first.count(500) <= 30


async def test_faults_can_target_methods_and_be_scripted(client: Client) -> None:
    sim = client.running.sim
    sim.faults.update(error_rate=1.0, methods=["users.messages.list"])
    assert (await client.get("/profile"))[0] == 200
    assert (await client.get("/messages"))[0] == 500
    sim.faults.reset()
    sim.faults.fail_next("users.history.list", code=503, times=2)
    start = str(sim.history_id(A))
    statuses = [(await client.get("/history", startHistoryId=start))[0] for _ in range(3)]
    assert statuses == [503, 503, 200]
    sim.faults.fail_next(code=429)
    status, _body, headers = await client.get("/profile")
    assert status == 429
    assert headers["Retry-After"] == "1"
    assert (await client.get("/profile"))[0] == 200


async def test_access_tokens_can_expire_at_random(client: Client) -> None:
    sim = client.running.sim
    sim.faults.update(expired_token_rate=1.0)
    status, body, _ = await client.get("/profile")
    assert status == 401
    validate_error(body, 401, "authError")
    sim.faults.update(expired_token_rate=0.0)
    assert (await client.get("/profile"))[0] == 401, "the token stays expired"
    client.token = sim.access_token(A)
    assert (await client.get("/profile"))[0] == 200
    sim.expire_access_tokens(A)
    assert (await client.get("/profile"))[0] == 401


async def test_counters_snapshot_and_reset(client: Client) -> None:
    sim = client.running.sim
    await client.get("/profile")
    await client.get("/messages/zz")
    snapshot = sim.counters.snapshot()
    assert snapshot["users.getProfile"] == {"calls": 1, "units": 1, "errors": {}}
    assert snapshot["users.messages.get"]["errors"] == {"400/invalidArgument": 1}
    assert sim.counters.total_units() == 6
    sim.counters.reset()
    assert sim.counters.snapshot() == {}
