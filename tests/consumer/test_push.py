"""Push end to end: ``POST /pubsub/push`` on a worker in push mode, tokens signed by a
local key served from a local certs URL, syncs into a real database from the simulator."""

from __future__ import annotations

import asyncio
import base64
import json
import logging
import time
from datetime import UTC, datetime
from typing import Any

import aiohttp
import pytest
from gmailsim import oidc

from tests.consumer.conftest import Env, RunningWorker
from tests.consumer.oidc import AUDIENCE, PUSH_ACCOUNT, CertsServer, SigningKey

SERVICE, ADDRESS = "service-noji", "support@noji.example"
#: The only messages a refused push is answered with.
PUSH_REFUSALS = {"no bearer token", "the token is not a JWT", "the token is not valid",
                 "the token was not issued by Google",
                 "the token is not the push service account's",
                 "the token's email is not verified"}


def envelope(data: bytes | str | None, message_id: str = "1", **extra: Any) -> dict[str, Any]:
    message: dict[str, Any] = {
        "messageId": message_id,
        "publishTime": datetime.now(UTC).isoformat().replace("+00:00", "Z"),
        "attributes": {},
    }
    if data is not None:
        message["data"] = data if isinstance(data, str) else base64.b64encode(data).decode()
    return {"message": message, "subscription": "projects/p/subscriptions/push", **extra}


def notification(history_id: int, address: str = ADDRESS) -> bytes:
    return json.dumps({"emailAddress": address, "historyId": history_id}).encode()


class Pusher:
    def __init__(self, running: RunningWorker, key: SigningKey) -> None:
        self.url = f"http://127.0.0.1:{running.push_port}/pubsub/push"
        self.key = key
        self.count = 0

    async def post(self, body: dict[str, Any] | bytes, *, token: str | None = "valid"
                   ) -> tuple[int, str]:
        headers = {}
        if token == "valid":
            token = self.key.token()
        if token is not None:
            headers["Authorization"] = f"Bearer {token}"
        data = body if isinstance(body, bytes) else json.dumps(body).encode()
        async with aiohttp.ClientSession() as session, session.post(
                self.url, data=data, headers=headers) as response:
            return response.status, await response.text()

    async def notify(self, history_id: int, *, token: str | None = "valid") -> tuple[int, str]:
        self.count += 1
        return await self.post(envelope(notification(history_id), str(self.count)),
                               token=token)


@pytest.fixture
async def push_env(env: Env, certs: CertsServer) -> Env:
    await env.connect(SERVICE, ADDRESS, watch=False)
    return env


def push_mode(certs: CertsServer) -> dict[str, Any]:
    return {"mode": "push", "push_audience": AUDIENCE, "push_service_account": PUSH_ACCOUNT,
            "push_certs_url": certs.url}


async def test_a_valid_push_is_answered_204_after_the_commit(
        push_env: Env, certs: CertsServer, google_key: SigningKey) -> None:
    env = push_env
    async with env.run(**push_mode(certs)) as running:
        pusher = Pusher(running, google_key)
        new_id = env.sim.deliver(ADDRESS, subject="Pushed, not pulled")
        started = time.monotonic()
        assert await pusher.notify(env.sim.history_id(ADDRESS)) == (204, "")
        assert time.monotonic() - started < 2.0
        assert new_id in await env.mirrored(SERVICE)  # committed before the answer
        # The same notification again: already synced, still 204, no second sync.
        assert (await pusher.notify(env.sim.history_id(ADDRESS)))[0] == 204
        assert [o.status for _, o in running.recorder.outcomes] == ["synced", "up_to_date"]
        assert running.sample("delightbridge_consumer_messages_acked_total",
                              source="push") == 2
        status, body = await get_text(running.port, "/readyz")
        assert status == 200
        assert "stream" not in body  # push mode has no stream to check
    await env.assert_mirrors(SERVICE, ADDRESS)
    assert [r["trigger"] for r in await env.sync_runs(SERVICE)] == ["connect", "notification"]


async def test_forged_expired_and_foreign_tokens_are_refused_before_anything_runs(
        push_env: Env, certs: CertsServer, google_key: SigningKey,
        caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    env = push_env
    impostor = SigningKey(kid=google_key.kid)  # same key id, another private key
    now = int(time.time())
    async with env.run(**push_mode(certs)) as running:
        pusher = Pusher(running, google_key)
        env.sim.deliver(ADDRESS, subject="Nobody may trigger this")
        history_id = env.sim.history_id(ADDRESS)
        cases = [
            (None, 401),
            ("not-a-jwt", 401),
            # A JWT header of deeply nested JSON: once a RecursionError, a 500.
            (base64.urlsafe_b64encode(b"[" * 5000).decode().rstrip("=") + ".e30.c2ln",
             401),
            (impostor.token(), 401),  # forged
            (google_key.token(iat=now - 7200, exp=now - 3600), 401),  # expired
            (google_key.token(aud="https://other.example/push"), 401),
            (google_key.token(email="intruder@other.iam.gserviceaccount.com"), 403),
            (google_key.token(email_verified=False), 403),
        ]
        unknown_kid = SigningKey(kid="caller-chosen-kid-0123")
        cases.append((unknown_kid.token(), 401))
        for token, expected in cases:
            status, body = await pusher.notify(history_id, token=token)
            assert status == expected, body
            assert google_key.private_pem not in body
            # Fixed answers: nothing of the configuration, the clock or the token.
            assert json.loads(body)["message"] in PUSH_REFUSALS, body
            for leak in (AUDIENCE, "other.example", google_key.kid, unknown_kid.kid,
                         str(now)[:6]):
                assert leak not in body
        logged = [r.getMessage() for r in caplog.records
                  if r.name.startswith("consumer") and r.levelno >= logging.INFO]
        assert logged
        assert not any(AUDIENCE in line or unknown_kid.kid in line
                       or str(now)[:6] in line for line in logged), logged
        assert running.recorder.outcomes == []  # nothing reached the handler
        assert running.sample("delightbridge_consumer_push_auth_failures_total",
                              status="401") == 7
        assert running.sample("delightbridge_consumer_push_auth_failures_total",
                              status="403") == 2
    assert [r["trigger"] for r in await env.sync_runs(SERVICE)] == ["connect"]


async def test_malformed_envelopes_are_400_and_bad_data_is_acked(
        push_env: Env, certs: CertsServer, google_key: SigningKey) -> None:
    env = push_env
    async with env.run(**push_mode(certs)) as running:
        pusher = Pusher(running, google_key)
        nested = b"[" * 100_000  # once a RecursionError: a 500 with a traceback
        for body in (b"not json", b"[]", {"message": "x"}, {"message": {"data": "eyJ9"}},
                     nested, b'{"message": ' + nested):
            status, text = await pusher.post(body)
            assert status == 400, text
            assert "malformed_envelope" in text
        # The public push port serves the push endpoint alone; the internal port has none.
        async with aiohttp.ClientSession() as session:
            for path in ("/metrics", "/readyz", "/healthz"):
                async with session.get(f"http://127.0.0.1:{running.push_port}{path}") as r:
                    assert r.status == 404, path
            async with session.post(f"http://127.0.0.1:{running.port}/pubsub/push",
                                    json=envelope(notification(1))) as r:
                assert r.status == 404
        # A head the HTTP parser refuses: the API's JSON error form, nothing echoed.
        async with aiohttp.ClientSession() as session, session.post(
                pusher.url, data=b"{}", headers={"X-Big": "B" * (40 * 1024)}) as response:
            assert response.status == 431
            answer = await response.json()
            assert answer["error"] == "request_header_too_large"
            assert "BBBB" not in json.dumps(answer)
        # A well-formed envelope whose data can never be a notification: 204, counted.
        bad = [("%%%", "not_base64"), (base64.b64encode(b"nope").decode(), "not_json"),
               (notification(5, "stranger@elsewhere.example"), "unknown_address")]
        for i, (data, reason) in enumerate(bad):
            assert (await pusher.post(envelope(data, f"bad-{i}")))[0] == 204
            assert running.sample("delightbridge_consumer_messages_ignored_total",
                                  reason=reason) == 1
    assert [r["trigger"] for r in await env.sync_runs(SERVICE)] == ["connect"]


async def test_a_failed_sync_is_503_so_pubsub_retries_then_204(
        push_env: Env, certs: CertsServer, google_key: SigningKey) -> None:
    env = push_env
    env.sim.faults.fail_next("users.history.list", code=503, times=3)  # > FAST_RETRY
    async with env.run(**push_mode(certs)) as running:
        pusher = Pusher(running, google_key)
        new_id = env.sim.deliver(ADDRESS, subject="Second time lucky")
        status, body = await pusher.notify(env.sim.history_id(ADDRESS))
        assert status == 503, body
        assert json.loads(body)["error"] == "gmail_unavailable"
        assert new_id not in await env.mirrored(SERVICE)
        assert (await pusher.notify(env.sim.history_id(ADDRESS)))[0] == 204  # the retry
    assert new_id in await env.mirrored(SERVICE)


async def test_concurrent_pushes_for_one_mailbox_share_syncs(
        push_env: Env, certs: CertsServer, google_key: SigningKey) -> None:
    env = push_env
    env.sim.faults.update(latency_ms=30)
    async with env.run(**push_mode(certs)) as running:
        pusher = Pusher(running, google_key)
        pushes = []
        for i in range(20):
            env.sim.deliver(ADDRESS, subject=f"Push {i}")
            pushes.append(asyncio.create_task(pusher.notify(env.sim.history_id(ADDRESS))))
        answers = await asyncio.gather(*pushes)
        assert {status for status, _ in answers} == {204}
    runs = [r for r in await env.sync_runs(SERVICE) if r["trigger"] == "notification"]
    assert 1 <= len(runs) <= 3
    await env.assert_mirrors(SERVICE, ADDRESS)


async def get_text(port: int, path: str) -> tuple[int, str]:
    async with aiohttp.ClientSession() as session, session.get(
            f"http://127.0.0.1:{port}{path}") as response:
        return response.status, await response.text()


async def test_the_simulator_pushes_signed_envelopes_the_consumer_verifies(
        env: Env) -> None:
    """The demo's push mode without the Pub/Sub emulator: the simulator POSTs push
    envelopes with OIDC tokens it signs, and serves their certificates in Google's
    format; the consumer verifies them exactly as it verifies Google's."""
    await env.connect(SERVICE, ADDRESS)  # watched: changes are pushed
    notifier = env.server.notifier
    async with env.run(mode="push", push_audience=AUDIENCE,
                       push_service_account=oidc.PUSH_SERVICE_ACCOUNT,
                       push_certs_url=env.server.certs_url) as running:
        notifier.config.push_audience = AUDIENCE
        await notifier.set_push_endpoint(f"http://127.0.0.1:{running.push_port}/pubsub/push")
        new_id = env.sim.deliver(ADDRESS, subject="Pushed by the simulator")
        await running.recorder.wait_for(
            lambda r: any(o.status == "synced" for _, o in r.outcomes))
        assert new_id in await env.mirrored(SERVICE)
        assert running.sample("delightbridge_consumer_push_auth_failures_total",
                              status="401") == 0
        pushed = [d for d in notifier.deliveries if d.sink == "push"]
        assert pushed
        assert all(d.ok for d in pushed)

        # Signed for another audience, the same pushes are refused.
        notifier.config.push_audience = "https://elsewhere.example/push"
        notifier.config.push_attempts = 1
        env.sim.deliver(ADDRESS, subject="Not for this endpoint")
        await notifier.wait_for(lambda ds: any(d.sink == "push" and not d.ok for d in ds))
        assert running.sample("delightbridge_consumer_push_auth_failures_total",
                              status="401") >= 1
        await notifier.set_push_endpoint(None)
