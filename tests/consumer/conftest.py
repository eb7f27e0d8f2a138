"""End-to-end fixtures: the official Pub/Sub emulator (``pubsub_emulator``, the session
fixture of ``tests.plugins.pubsub``), the Gmail simulator publishing to it, a real
migrated database, and the consumer's :class:`Worker` running in the test's event loop
(or as a real process, for signals).

* ``pubsub``: a fresh topic, a subscription on it with a dead-letter topic (5 attempts)
  and a retry policy, and a subscription on the dead-letter topic; the Google clients
  of this test process see ``PUBSUB_EMULATOR_HOST``.
* ``env``: the simulator served on 127.0.0.1 and publishing every change of a watched
  mailbox to that topic (no 1 s folding unless asked), settings for the consumer, and
  helpers: ``connect`` a mailbox (service row, initial full sync, watch), ``run`` a
  worker, compare the database with the mailbox.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import aiohttp
import asyncpg
import pytest
from aiohttp import web
from gmailsim import Simulator
from gmailsim.push import PushConfig
from gmailsim.server import RunningSimulator, serve
from google.protobuf import duration_pb2

from delightbridge.consumer.config import ConsumerConfig
from delightbridge.consumer.handler import Delivery, Outcome
from delightbridge.consumer.sweep import SweepReport
from delightbridge.consumer.worker import Worker
from delightbridge.core.settings import Settings
from delightbridge.sync.engine import EngineConfig, SyncEngine
from delightbridge.sync.gmail.retry import RetryPolicy
from delightbridge.sync.outbox import Attempt
from delightbridge.sync.parse import is_mirrored
from delightbridge.sync.watch import RenewReport
from tests.plugins.gmail import gmail_settings
from tests.plugins.pubsub import publisher, subscriber

PROJECT = "delightbridge-test"
TOKEN_KEY = bytes(range(32, 64))
#: Gmail retries that prove retrying without waiting seconds for it.
FAST_RETRY = RetryPolicy(max_attempts=3, max_elapsed=5.0, initial=0.01, maximum=0.05)
MAX_DELIVERY_ATTEMPTS = 5  # Pub/Sub's minimum for a dead-letter policy


# --- Pub/Sub ----------------------------------------------------------------------------


@dataclass
class PubSub:
    host: str
    topic: str
    subscription: str
    dead_letter_topic: str
    dead_letters: str  # a subscription on the dead-letter topic
    _publisher: Any = None

    def publish(self, data: bytes) -> str:
        """Publish raw data (blocking: call through ``asyncio.to_thread``)."""
        if self._publisher is None:
            self._publisher = publisher(self.host)
        return str(self._publisher.publish(self.topic, data).result(timeout=30))

    async def send(self, data: bytes | dict[str, Any]) -> str:
        raw = json.dumps(data).encode() if isinstance(data, dict) else data
        return await asyncio.to_thread(self.publish, raw)

    def _pull_now(self, subscription: str, wait: float = 0.0) -> list[Any]:
        """Pull what is there now, or (``wait`` > 0) long-poll until something is or
        ``wait`` seconds passed."""
        client = subscriber(self.host)
        deadline = time.monotonic() + wait
        try:
            while True:
                response = client.pull(request={
                    "subscription": subscription, "max_messages": 100,
                    "return_immediately": wait <= 0}, timeout=max(wait, 10))
                messages = list(response.received_messages)
                if messages or time.monotonic() >= deadline:
                    break
            if messages:
                client.acknowledge(request={"subscription": subscription,
                                            "ack_ids": [m.ack_id for m in messages]})
            return [m.message for m in messages]
        finally:
            client.close()

    async def backlog(self, wait: float = 0.0) -> list[Any]:
        """What the subscription would deliver now (or within ``wait`` s), pulled and acked."""
        return await asyncio.to_thread(self._pull_now, self.subscription, wait)

    def another_subscription(self) -> str:
        """A second subscription on the topic, for a restarted worker (blocking).

        The emulator keeps dispatching to a streaming pull for a while after it closed,
        so a new stream on the same subscription may see nothing; a restart in these
        tests therefore reads a fresh subscription of the same topic. (What a restart
        must not lose is in the database and in Gmail, not in the subscription.)
        """
        path = f"{self.subscription}-restart"
        client = subscriber(self.host)
        try:
            client.create_subscription(request={"name": path, "topic": self.topic,
                                                "ack_deadline_seconds": 10})
        finally:
            client.close()
        return path

    async def dead_lettered(self, wait: float = 0.0) -> list[Any]:
        """Messages Pub/Sub moved to the dead-letter topic (waiting up to ``wait`` s)."""
        return await asyncio.to_thread(self._pull_now, self.dead_letters, wait)


@pytest.fixture
def pubsub(pubsub_emulator: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[PubSub]:
    monkeypatch.setenv("PUBSUB_EMULATOR_HOST", pubsub_emulator)
    name = uuid.uuid4().hex[:12]
    topic = f"projects/{PROJECT}/topics/gmail-{name}"
    dead_topic = f"projects/{PROJECT}/topics/gmail-dead-{name}"
    subscription = f"projects/{PROJECT}/subscriptions/gmail-sync-{name}"
    dead_subscription = f"projects/{PROJECT}/subscriptions/gmail-dead-{name}"
    pub, sub = publisher(pubsub_emulator), subscriber(pubsub_emulator)
    state: PubSub | None = None
    try:
        pub.create_topic(request={"name": topic})
        pub.create_topic(request={"name": dead_topic})
        sub.create_subscription(request={
            "name": subscription, "topic": topic, "ack_deadline_seconds": 10,
            "dead_letter_policy": {"dead_letter_topic": dead_topic,
                                   "max_delivery_attempts": MAX_DELIVERY_ATTEMPTS},
            "retry_policy": {"minimum_backoff": duration_pb2.Duration(nanos=100_000_000),
                             "maximum_backoff": duration_pb2.Duration(seconds=1)},
        })
        sub.create_subscription(request={"name": dead_subscription, "topic": dead_topic})
        state = PubSub(pubsub_emulator, topic, subscription, dead_topic, dead_subscription)
        yield state
    finally:
        for path in (subscription, dead_subscription, f"{subscription}-restart"):
            with contextlib.suppress(Exception):
                sub.delete_subscription(request={"subscription": path})
        sub.close()
        if state is not None and state._publisher is not None:
            state._publisher.transport.close()
        pub.transport.close()


# --- outcomes -----------------------------------------------------------------------------


@dataclass
class Recorder:
    """Every message outcome and sweep report of a worker, waitable."""

    outcomes: list[tuple[Delivery, Outcome]] = field(default_factory=list)
    sweeps: list[SweepReport] = field(default_factory=list)
    renewals: list[RenewReport] = field(default_factory=list)
    event_attempts: list[Attempt] = field(default_factory=list)
    imports: list[tuple[str, object]] = field(default_factory=list)
    _changed: asyncio.Event = field(default_factory=asyncio.Event)

    def __call__(self, delivery: Delivery, outcome: Outcome) -> None:
        self.outcomes.append((delivery, outcome))
        self._changed.set()

    def swept(self, report: SweepReport) -> None:
        self.sweeps.append(report)
        self._changed.set()

    def renewed(self, report: RenewReport) -> None:
        self.renewals.append(report)
        self._changed.set()

    def imported(self, service_id: str, outcome: object) -> None:
        self.imports.append((service_id, outcome))
        self._changed.set()

    def event_attempted(self, attempt: Attempt) -> None:
        self.event_attempts.append(attempt)
        self._changed.set()

    async def wait_for(self, predicate: Callable[[Recorder], bool], within: float = 15.0
                       ) -> None:
        async with asyncio.timeout(within):
            while not predicate(self):
                self._changed.clear()
                await self._changed.wait()

    async def wait_for_message(self, message_id: str, *, status: str | None = None,
                               within: float = 15.0) -> Outcome:
        """The first outcome of ``message_id`` (with ``status``, when given)."""
        def match() -> Outcome | None:
            return next((o for d, o in self.outcomes if d.message_id == message_id
                         and (status is None or o.status == status)), None)

        await self.wait_for(lambda _: match() is not None, within)
        found = match()
        assert found is not None
        return found

    def of(self, message_id: str) -> list[tuple[Delivery, Outcome]]:
        return [(d, o) for d, o in self.outcomes if d.message_id == message_id]


# --- the world ----------------------------------------------------------------------------


@dataclass
class RunningWorker:
    worker: Worker
    recorder: Recorder
    task: asyncio.Task[int]

    @property
    def port(self) -> int:
        """The internal port: /healthz, /readyz, /metrics."""
        assert self.worker.http_port is not None
        return self.worker.http_port

    @property
    def push_port(self) -> int:
        """Push mode: the public port of POST /pubsub/push."""
        assert self.worker.push_port is not None
        return self.worker.push_port

    def sample(self, name: str, **labels: str) -> float:
        """A metric's current value in the worker's registry (0 when never set)."""
        value = self.worker.metrics.registry.get_sample_value(name, labels)
        return 0.0 if value is None else value

    async def stop(self) -> int:
        self.worker.stop.set()
        async with asyncio.timeout(60):
            if self.task.cancelled():
                return -1
            return await self.task


@dataclass
class Env:
    sim: Simulator
    server: RunningSimulator
    pubsub: PubSub
    pool: asyncpg.Pool
    db_url: str
    refresh_tokens: list[str] = field(default_factory=list)

    def settings(self, **changes: Any) -> Settings:
        values: dict[str, Any] = {
            "database_url": self.db_url,
            **gmail_settings(self.server),
            "token_encryption_key": TOKEN_KEY,
            "pubsub_project": PROJECT,
            "pubsub_topic": self.pubsub.topic,
            "pubsub_subscription": self.pubsub.subscription,
            "pubsub_emulator_host": self.pubsub.host,
            "log_format": "json",
        }
        values.update(changes)
        return Settings(**values)

    def engine_config(self, settings: Settings | None = None, **overrides: Any) -> EngineConfig:
        return EngineConfig.from_settings(settings or self.settings(),
                                          **{"retry": FAST_RETRY, **overrides})

    async def connect(self, service_id: str, address: str, *, messages: int = 4,
                      threads: int = 2, watch: bool = True) -> None:
        """A seeded mailbox, its service row, an initial full sync, and its watch."""
        mailbox = self.sim.create_mailbox(address, name=service_id.title())
        self.refresh_tokens.append(mailbox.refresh_token)
        if messages:
            self.sim.seed(address, messages=messages, threads=threads, seed=3)
        await self.pool.execute(
            "INSERT INTO gmail_accounts (id, name, email, refresh_token) VALUES ($1, $2, $3, $4)",
            service_id, service_id.title(), address, mailbox.refresh_token)
        async with SyncEngine.open(self.pool, self.engine_config()) as engine:
            await engine.sync(service_id, mode="full", trigger="connect")
        if watch:
            self.sim.watch(address, self.pubsub.topic)

    async def mirrored(self, service_id: str) -> dict[str, list[str]]:
        rows = await self.pool.fetch(
            "SELECT e.gmail_message_id, m.label_ids FROM emails e "
            "JOIN email_threads t ON t.id = e.thread_id "
            "JOIN delightbridge_sync.messages m ON m.email_id = e.id "
            "WHERE t.account_id = $1", service_id)
        return {r["gmail_message_id"]: sorted(r["label_ids"]) for r in rows}

    def mailbox(self, address: str) -> dict[str, list[str]]:
        return {m.id: sorted(m.label_ids) for m in self.sim.snapshot(address).messages
                if is_mirrored(m.label_ids)}

    async def assert_mirrors(self, service_id: str, address: str) -> None:
        """The database holds exactly the mailbox, and its cursor is the mailbox's."""
        assert await self.mirrored(service_id) == self.mailbox(address)
        cursor = await self.pool.fetchval(
            "SELECT last_history_id FROM gmail_accounts WHERE id = $1", service_id)
        assert cursor == str(self.sim.history_id(address))

    async def sync_runs(self, service_id: str) -> list[asyncpg.Record]:
        return await self.pool.fetch(
            "SELECT trigger, status, error_code FROM delightbridge_sync.runs WHERE account_id = $1 "
            "ORDER BY started_at", service_id)

    def config(self, **overrides: Any) -> ConsumerConfig:
        values: dict[str, Any] = {
            "http_host": "127.0.0.1", "http_port": 0, "push_port": 0, "sweep_interval": 3600.0,
            "stale_after": 3600.0, "shutdown_timeout": 5.0, "lock_wait": 10.0,
        }
        values.update(overrides)
        return ConsumerConfig(**values)

    @contextlib.asynccontextmanager
    async def run(self, *, settings: Settings | None = None, expect_exit: int | None = 0,
                  engine: dict[str, Any] | None = None, **config: Any
                  ) -> AsyncIterator[RunningWorker]:
        """A worker in this event loop; stopped (and its exit code checked) at the end."""
        settings = settings or self.settings()
        recorder = Recorder()
        worker = Worker(settings, self.config(**config),
                        engine_config=self.engine_config(settings, **(engine or {})),
                        observers=[recorder], sweep_observers=[recorder.swept],
                        renewal_observers=[recorder.renewed],
                        event_observers=[recorder.event_attempted],
                        import_observers=[recorder.imported])
        task = asyncio.create_task(worker.run())
        started = asyncio.create_task(worker.started.wait())
        await asyncio.wait({task, started}, timeout=30, return_when=asyncio.FIRST_COMPLETED)
        started.cancel()
        if task.done():
            task.result()  # start-up failed: raise its error here
            raise AssertionError("the worker ended during start-up")
        assert worker.started.is_set(), "the worker did not start within 30 s"
        running = RunningWorker(worker, recorder, task)
        try:
            yield running
        finally:
            code = await running.stop()
            if expect_exit is not None:
                assert code == expect_exit


@pytest.fixture
def push_config() -> PushConfig:
    """How the simulator publishes: every change, at once (override to change)."""
    return PushConfig(min_interval=0.0)


@pytest.fixture
async def env(pubsub: PubSub, pool: asyncpg.Pool, db_url: str, push_config: PushConfig
              ) -> AsyncIterator[Env]:
    sim = Simulator(seed=11)
    async with serve(sim, pubsub_emulator_host=pubsub.host, push=push_config) as server:
        yield Env(sim, server, pubsub, pool, db_url)


# --- a gate in front of the simulator ------------------------------------------------------


class Gate:
    """An HTTP proxy in front of the simulator that can hold Gmail requests.

    ``close()``: requests whose path contains ``hold_path`` wait; ``entered`` is set when
    the first one arrives. ``open()`` lets them (and all later ones) through.
    """

    def __init__(self, upstream: str, hold_path: str = "/history") -> None:
        self.upstream = upstream.rstrip("/")
        self.hold_path = hold_path
        self.entered = asyncio.Event()
        self._open = asyncio.Event()
        self._open.set()
        self._runner: web.AppRunner | None = None
        self._session: aiohttp.ClientSession | None = None
        self.base_url = ""

    def close(self) -> None:
        self.entered.clear()
        self._open.clear()

    def open(self) -> None:
        self._open.set()

    async def _forward(self, request: web.Request) -> web.StreamResponse:
        if self.hold_path in request.path:
            self.entered.set()
            await self._open.wait()
        assert self._session is not None
        headers = {k: v for k, v in request.headers.items()
                   if k.lower() not in ("host", "content-length", "transfer-encoding")}
        async with self._session.request(
                request.method, self.upstream + request.rel_url.path_qs, headers=headers,
                data=await request.read()) as upstream:
            body = await upstream.read()
            kept = {k: v for k, v in upstream.headers.items()
                    if k.lower() not in ("content-length", "transfer-encoding",
                                         "content-encoding", "connection")}
            return web.Response(status=upstream.status, body=body, headers=kept)

    async def __aenter__(self) -> Gate:
        self._session = aiohttp.ClientSession(auto_decompress=True)
        app = web.Application(client_max_size=64 * 1024 * 1024)
        app.router.add_route("*", "/{tail:.*}", self._forward)
        self._runner = web.AppRunner(app, access_log=None, shutdown_timeout=1)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self.base_url = f"http://127.0.0.1:{self._runner.addresses[0][1]}"
        return self

    async def __aexit__(self, *exc: object) -> None:
        self._open.set()
        assert self._runner is not None
        assert self._session is not None
        await self._runner.cleanup()
        await self._session.close()


@pytest.fixture
async def gate(env: Env) -> AsyncIterator[Gate]:
    async with Gate(env.server.base_url) as running:
        yield running
