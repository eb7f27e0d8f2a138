"""New-mail events end to end: recorded with the sync's rows, delivered to a real HTTP
receiver at least once, in order per service, whatever the receiver does meanwhile."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import socket
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import aiohttp
import asyncpg
import pytest
from aiohttp import web

from delightbridge.cli import events as events_cli
from delightbridge.core.settings import Settings
from delightbridge.sync import events
from delightbridge.sync.engine import EngineConfig, SyncEngine
from delightbridge.sync.gmail.quota import QuotaProfile
from delightbridge.sync.gmail.retry import FAST_POLICY
from delightbridge.sync.outbox import Attempt, Dispatcher, OutboxConfig
from tests.syncengine.conftest import SyncSetup, add_service, engine_settings

SECRET = "events-secret-for-the-tests-0123456789"


@dataclass
class Receiver:
    """The web app's side: verifies each signature, answers as told, records ids."""

    failures: int = 0  # answer 500 to this many requests first
    requests: int = 0
    received: list[dict[str, Any]] = field(default_factory=list)
    changed: asyncio.Event = field(default_factory=asyncio.Event)

    async def handle(self, request: web.Request) -> web.Response:
        content = await request.read()
        self.requests += 1
        if not events.verify(SECRET, request.headers.get(events.SIGNATURE_HEADER), content,
                             now=time.time()):
            return web.Response(status=401)
        if self.failures > 0:
            self.failures -= 1
            return web.Response(status=500)
        event = json.loads(content)
        assert request.headers[events.ID_HEADER] == event["id"]
        self.received.append(event)
        self.changed.set()
        return web.Response(status=204)

    async def wait_for(self, count: int) -> None:
        while len(self.received) < count:
            self.changed.clear()
            await asyncio.wait_for(self.changed.wait(), timeout=30)


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@contextlib.asynccontextmanager
async def serving(receiver: Receiver, port: int) -> AsyncIterator[None]:
    app = web.Application()
    app.router.add_post("/hooks/sync", receiver.handle)
    runner = web.AppRunner(app)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    try:
        yield
    finally:
        await runner.cleanup()


def outbox_config(port: int) -> OutboxConfig:
    return OutboxConfig(url=f"http://127.0.0.1:{port}/hooks/sync", secret=SECRET,
                        backoff_base=0.02, backoff_max=0.1, timeout=5, poll_interval=1)


@dataclass
class Attempts:
    """Every delivery attempt the dispatchers report, to wait on."""

    seen: list[Attempt] = field(default_factory=list)
    changed: asyncio.Event = field(default_factory=asyncio.Event)

    def __call__(self, attempt: Attempt) -> None:
        self.seen.append(attempt)
        self.changed.set()

    async def wait_for_failures(self, count: int) -> None:
        while sum(not a.delivered for a in self.seen) < count:
            self.changed.clear()
            await asyncio.wait_for(self.changed.wait(), timeout=30)


@contextlib.asynccontextmanager
async def dispatching(pool: asyncpg.Pool, config: OutboxConfig, count: int = 1,
                      attempts: Attempts | None = None) -> AsyncIterator[list[Dispatcher]]:
    stop = asyncio.Event()
    async with aiohttp.ClientSession() as session:
        dispatchers = [Dispatcher(pool, config, session, on_attempt=attempts)
                       for _ in range(count)]
        tasks = [asyncio.create_task(d.run(stop)) for d in dispatchers]
        try:
            yield dispatchers
        finally:
            stop.set()
            await asyncio.gather(*tasks)


@pytest.fixture
async def engine(setup: SyncSetup) -> AsyncIterator[SyncEngine]:
    """An engine recording events (EVENTS_URL set)."""
    settings = engine_settings(setup.gmail, events_url="http://127.0.0.1:9/x",
                               events_secret=SECRET)
    config = EngineConfig.from_settings(settings, retry=FAST_POLICY, quota=QuotaProfile.unlimited())
    assert config.events
    async with SyncEngine.open(setup.pool, config) as opened:
        yield opened


async def _events(pool: asyncpg.Pool) -> list[tuple[str, dict[str, Any]]]:
    return [(r["kind"], json.loads(r["payload"])) for r in await pool.fetch(
        "SELECT kind, payload::text AS payload FROM delightbridge_sync.events ORDER BY id")]


async def _statuses(pool: asyncpg.Pool) -> dict[str, str]:
    return {r["id"]: r["status"] for r in await pool.fetch(
        "SELECT id, status::text AS status FROM email_threads")}


async def test_events_are_recorded_with_the_changes_and_not_for_the_import(
    setup: SyncSetup, engine: SyncEngine
) -> None:
    sim = setup.sim
    sim.seed(setup.address, messages=12, threads=4, seed=21)
    await engine.sync(setup.account_id, mode="full", trigger="connect")
    assert await _events(setup.pool) == []  # the initial import told nobody anything

    before = await _statuses(setup.pool)
    prefix = f"thread-{setup.account_id}-"
    inbox_thread = next(t for t, s in sorted(before.items()) if s == "inbox").removeprefix(
        prefix)
    snapshot = sim.snapshot(setup.address)
    for message in [m for m in snapshot.messages if m.thread_id == inbox_thread]:
        sim.archive(setup.address, message.id)
    new_ids = [sim.deliver(setup.address, subject=f"Question {n}") for n in range(2)]
    sim.reply(setup.address, new_ids[0], text="Answer")  # outbound: no message event
    await engine.sync(setup.account_id, trigger="notification")

    recorded = await _events(setup.pool)
    received = [data for kind, data in recorded if kind == events.MESSAGE_RECEIVED]
    assert sorted(d["gmailMessageId"] for d in received) == sorted(new_ids)
    for data in received:
        assert data["threadId"] == f"thread-{setup.account_id}-{data['gmailThreadId']}"
        assert data["emailId"] == f"email-{setup.account_id}-{data['gmailMessageId']}"
        assert data["subject"].startswith("Question")
    after = await _statuses(setup.pool)
    changed = {t: (before[t], after[t]) for t in before if before[t] != after[t]}
    assert {d["threadId"]: (d["from"], d["to"]) for kind, d in recorded
            if kind == events.STATUS_CHANGED} == changed
    assert changed[prefix + inbox_thread] == ("inbox", "archived")


async def test_delivered_exactly_once_after_the_receiver_was_down_and_answered_500(
    setup: SyncSetup, engine: SyncEngine
) -> None:
    await engine.sync(setup.account_id, mode="full", trigger="connect")
    ids = [setup.sim.deliver(setup.address, subject=f"Hello {n}") for n in range(5)]
    await engine.sync(setup.account_id, trigger="notification")
    port = _free_port()
    receiver = Receiver(failures=2)
    attempts = Attempts()
    async with dispatching(setup.pool, outbox_config(port), attempts=attempts):
        # Down: nothing listens. Attempts fail and are retried, nothing is delivered.
        await attempts.wait_for_failures(3)
        assert receiver.received == []
        assert {a.error for a in attempts.seen} == {"connection"}
        assert {a.event_id for a in attempts.seen} == {attempts.seen[0].event_id}  # the head
        async with serving(receiver, port):
            await receiver.wait_for(5)
    assert receiver.requests == 7  # two 500s, then each event once
    assert [e["data"]["gmailMessageId"] for e in receiver.received] == ids
    assert [int(e["id"]) for e in receiver.received] == sorted(
        int(e["id"]) for e in receiver.received)
    pending = await setup.pool.fetchval(
        "SELECT count(*) FROM delightbridge_sync.events WHERE delivered_at IS NULL")
    assert pending == 0


async def test_two_dispatchers_keep_each_services_order_and_send_each_event_once(
    setup: SyncSetup, engine: SyncEngine
) -> None:
    other = setup.sim.create_mailbox("help@ankipro.example")
    await add_service(setup.pool, "svc-anki", other.address, other.refresh_token)
    for service, address in (("svc-noji", setup.address), ("svc-anki", other.address)):
        await engine.sync(service, mode="full", trigger="connect")
        for n in range(15):
            setup.sim.deliver(address, subject=f"{service} {n}")
        await engine.sync(service, trigger="notification")
    port = _free_port()
    receiver = Receiver(failures=5)
    async with serving(receiver, port), dispatching(setup.pool, outbox_config(port), count=2):
        await receiver.wait_for(30)
    got = [(e["service"], int(e["id"])) for e in receiver.received]
    assert len(set(got)) == len(got) == 30
    for service in ("svc-noji", "svc-anki"):
        mine = [i for s, i in got if s == service]
        assert mine == sorted(mine)
        assert len(mine) == 15


async def test_list_and_replay_commands(setup: SyncSetup, engine: SyncEngine,
                                        capsys: pytest.CaptureFixture[str], db_url: str
                                        ) -> None:
    await engine.sync(setup.account_id, mode="full", trigger="connect")
    setup.sim.deliver(setup.address, subject="Replay me")
    await engine.sync(setup.account_id, trigger="notification")
    port = _free_port()
    settings = Settings(database_url=db_url, events_url=f"http://127.0.0.1:{port}/hooks/sync",
                        events_secret=SECRET)
    receiver = Receiver()

    async def cli(*argv: str) -> int:
        parser = argparse.ArgumentParser()
        events_cli.configure(parser)
        return await events_cli.run(settings, parser.parse_args(argv))

    assert await cli("list", "--pending") == 0
    listed = capsys.readouterr().out
    assert "message.received" in listed
    assert "pending" in listed
    async with serving(receiver, port):
        assert await cli("deliver", "--once") == 0
        event_id = receiver.received[0]["id"]
        assert await cli("replay", event_id) == 0
        assert await cli("deliver", "--once") == 0
    assert [e["id"] for e in receiver.received] == [event_id, event_id]
    capsys.readouterr()
    assert await cli("list") == 0
    assert "delivered" in capsys.readouterr().out
    assert await cli("replay", "999999") == 1  # nothing to replay


async def test_a_dispatcher_whose_listening_session_was_dropped_stops_cleanly(
        pool: asyncpg.Pool) -> None:
    """PostgreSQL restarting under the LISTEN connection: the dispatcher still stops
    without an error (the listener went with the session)."""
    reported = asyncio.Event()
    stop = asyncio.Event()
    async with aiohttp.ClientSession() as session:
        dispatcher = Dispatcher(pool, outbox_config(9), session,
                                on_backlog=lambda *_: reported.set())
        task = asyncio.create_task(dispatcher.run(stop))
        await asyncio.wait_for(reported.wait(), 30)  # listening, and one pass done
        pid = await pool.fetchval(
            "SELECT pid FROM pg_stat_activity WHERE datname = current_database() "
            "AND query LIKE 'LISTEN %'")
        assert pid is not None
        assert await pool.fetchval("SELECT pg_terminate_backend($1, 5000)", pid) is True
        stop.set()
        await asyncio.wait_for(task, 30)  # raises if run() failed
