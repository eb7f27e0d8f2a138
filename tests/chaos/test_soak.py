"""The chaos soak (issue #9): zero drift whatever happens.

Watched mailboxes in the Gmail simulator (served over HTTP in this process), a real
PostgreSQL of the test's own, Google's Pub/Sub emulator, and two ``delightbridge consume``
OS processes pulling one subscription. Over the run, with a printed seed:

* random mutations (new mail, replies, label changes, read/unread, archive, trash,
  untrash, delete);
* notifications through a relay that drops 10 %, duplicates 10 % and delays the rest by
  a random time (so they arrive reordered);
* Gmail faults: 5 % 500/503 on every method and bursts of 429;
* consumers SIGKILLed at random and restarted; PostgreSQL stopped and started while
  they run; the history window shrunk once (404, so a full resync); concurrent manual
  full syncs through the API (``delightbridge.api.app.create_app`` on a real port, admin cookie).

Then quiescence: injections stop, faults are restored, and every service's cursor must
reach its mailbox's history id (the consumers' sweep covers dropped notifications) and
its imports must have ended (the consumers' import workers resume those a kill cut).
For every mailbox: ``verify`` with deep content hashes finds zero drift, the database
equals the simulator's own snapshot, SQL finds no duplicate rows, and one more
incremental and one more full sync change nothing.

``short`` runs in the default test run (about a minute); ``long`` is the issue's size,
marked ``chaos`` and skipped unless ``CHAOS_SOAK=long`` or ``-m chaos``.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import os
import random
import time
import uuid
from collections import Counter
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import asyncpg
import pytest
from aiohttp import web
from gmailsim import Simulator
from gmailsim.push import PushConfig
from gmailsim.server import RunningSimulator, serve

from delightbridge.api.app import create_app
from delightbridge.api.sessions import mint_admin_cookie
from delightbridge.core.settings import Settings
from delightbridge.db.migrate import migrate
from delightbridge.db.pool import create_pool
from delightbridge.sync.engine import EngineConfig, SyncEngine
from delightbridge.sync.parse import is_mirrored
from delightbridge.sync.verify import verify
from tests.chaos.conftest import PgServer
from tests.chaos.soak import LONG, SHORT, ConsumerSlot, Mutator, Relay, Sizes, Tally, process_env
from tests.plugins.gmail import gmail_settings
from tests.plugins.pubsub import publisher, subscriber

PROJECT = "delightbridge-chaos"
TOKEN_KEY = bytes(range(64, 96))
AUTH_SECRET = "chaos-soak-auth-secret-8d1f0c3b7a"
ADMIN_EMAIL = "ops@chaos.example"

# Column lists compared before and after the final syncs: everything a sync writes,
# except the bookkeeping of which run wrote it and when, and Gmail's history id of the
# copy stored (a repairing import keeps a message whose labels and content are Gmail's
# without reading it again, so its stored history id may predate a change that undid
# itself; a full import then reads a newer one).
EMAIL_COLUMNS = (
    "e.id, e.thread_id, e.gmail_message_id, e.rfc_message_id, e.in_reply_to, e.\"references\", "
    "e.from_email, e.from_name, e.to_email, e.body, e.direction::text, e.sent_at, m.subject, "
    "m.cc_email, m.bcc_email, m.reply_to, m.body_text, m.snippet, m.label_ids, "
    "m.attachments::text, m.size_estimate, m.content_hash, "
    "m.parse_problems")
THREAD_COLUMNS = ("t.id, t.account_id, t.gmail_thread_id, t.subject, t.customer_email, "
                  "t.customer_name, t.status::text, t.is_read, t.last_message_at")


def chaos_seed() -> int:
    raw = os.environ.get("CHAOS_SEED")
    return int(raw) if raw else random.SystemRandom().randrange(1, 2**31)


# --- the world ----------------------------------------------------------------------------


class World:
    def __init__(self, sizes: Sizes, seed: int, pg: PgServer, pubsub_host: str,
                 tmp_path: Path) -> None:
        self.sizes = sizes
        self.seed = seed
        self.pg = pg
        self.pubsub_host = pubsub_host
        self.tmp_path = tmp_path
        self.tally = Tally()
        self.sim = Simulator(seed=seed % 10_000)
        self.addresses = [f"support{i:02d}@chaos.example" for i in range(sizes.mailboxes)]
        self.services = {a: f"svc-chaos-{i:02d}" for i, a in enumerate(self.addresses)}
        self.db_url = ""
        self.server: RunningSimulator | None = None
        self.db_down = False
        name = uuid.uuid4().hex[:10]
        self.raw_topic = f"projects/{PROJECT}/topics/gmail-raw-{name}"
        self.raw_subscription = f"projects/{PROJECT}/subscriptions/relay-{name}"
        self.topic = f"projects/{PROJECT}/topics/gmail-{name}"
        self.subscription = f"projects/{PROJECT}/subscriptions/gmail-sync-{name}"
        self.dead_topic = f"projects/{PROJECT}/topics/gmail-dead-{name}"
        self.dead_subscription = f"projects/{PROJECT}/subscriptions/gmail-dead-{name}"

    # --- set-up -------------------------------------------------------------------------

    def create_pubsub(self) -> None:
        from google.protobuf import duration_pb2

        pub, sub = publisher(self.pubsub_host), subscriber(self.pubsub_host)
        try:
            for topic in (self.raw_topic, self.topic, self.dead_topic):
                pub.create_topic(request={"name": topic})
            sub.create_subscription(request={"name": self.raw_subscription,
                                             "topic": self.raw_topic,
                                             "ack_deadline_seconds": 10})
            sub.create_subscription(request={
                "name": self.subscription, "topic": self.topic, "ack_deadline_seconds": 10,
                "dead_letter_policy": {"dead_letter_topic": self.dead_topic,
                                       "max_delivery_attempts": 5},
                "retry_policy": {
                    "minimum_backoff": duration_pb2.Duration(nanos=200_000_000),
                    "maximum_backoff": duration_pb2.Duration(seconds=2)},
            })
            sub.create_subscription(request={"name": self.dead_subscription,
                                             "topic": self.dead_topic})
        finally:
            sub.close()
            pub.transport.close()

    def count_dead_letters(self) -> None:
        """Notifications Pub/Sub gave up on after 5 nacks (the sweep covers them)."""
        self.tally.notifications["dead-lettered"] += 0  # printed even when none
        client = subscriber(self.pubsub_host)
        try:
            while True:
                response = client.pull(request={"subscription": self.dead_subscription,
                                                "max_messages": 1000,
                                                "return_immediately": True}, timeout=10)
                received = list(response.received_messages)
                if not received:
                    return
                self.tally.notifications["dead-lettered"] += len(received)
                client.acknowledge(request={"subscription": self.dead_subscription,
                                            "ack_ids": [m.ack_id for m in received]})
        finally:
            client.close()

    def delete_pubsub(self) -> None:
        pub, sub = publisher(self.pubsub_host), subscriber(self.pubsub_host)
        try:
            for path in (self.raw_subscription, self.subscription, self.dead_subscription):
                with contextlib.suppress(Exception):
                    sub.delete_subscription(request={"subscription": path})
            for topic in (self.raw_topic, self.topic, self.dead_topic):
                with contextlib.suppress(Exception):
                    pub.delete_topic(request={"topic": topic})
        finally:
            sub.close()
            pub.transport.close()

    async def create_database(self) -> None:
        name = f"chaos_{uuid.uuid4().hex[:8]}"
        conn = await asyncpg.connect(self.pg.admin_url)
        try:
            await conn.execute(f'CREATE DATABASE "{name}"')
        finally:
            await conn.close()
        self.db_url = self.pg.url(name)
        conn = await asyncpg.connect(self.db_url)
        try:
            await migrate(conn)
        finally:
            await conn.close()

    def settings(self, **changes: Any) -> Settings:
        assert self.server is not None
        values: dict[str, Any] = {
            "database_url": self.db_url,
            "auth_secret": AUTH_SECRET,
            "admin_emails": frozenset({ADMIN_EMAIL}),
            **gmail_settings(self.server),
            "token_encryption_key": TOKEN_KEY,
            "pubsub_project": PROJECT,
            "pubsub_topic": self.topic,
            "pubsub_subscription": self.subscription,
            "pubsub_emulator_host": self.pubsub_host,
            "log_format": "json",
            "log_level": "WARNING",
        }
        values.update(changes)
        return Settings(**values)

    def consumer_env(self) -> dict[str, str]:
        assert self.server is not None
        s = self.sizes
        return process_env({
            "DATABASE_URL": self.db_url,
            "GOOGLE_CLIENT_ID": self.sim.client_id,
            "GOOGLE_CLIENT_SECRET": self.sim.client_secret,
            "GOOGLE_OAUTH_TOKEN_URI": self.server.token_uri,
            "GMAIL_API_ENDPOINT": self.server.base_url,
            "TOKEN_ENCRYPTION_KEY": base64.b64encode(TOKEN_KEY).decode(),
            "PUBSUB_PROJECT": PROJECT,
            "PUBSUB_TOPIC": self.topic,
            "PUBSUB_SUBSCRIPTION": self.subscription,
            "PUBSUB_EMULATOR_HOST": self.pubsub_host,
            "SWEEP_INTERVAL_MINUTES": str(s.sweep_interval_minutes),
            "SWEEP_STALE_AFTER_MINUTES": str(s.stale_after_minutes),
            "CONSUMER_LOCK_WAIT_SECONDS": "30",
            "CONSUMER_SHUTDOWN_TIMEOUT_SECONDS": "20",
            "LOG_FORMAT": "json",
            "LOG_LEVEL": "INFO",
        })

    async def connect_all(self, pool: asyncpg.Pool) -> None:
        """Seeded mailboxes, their service rows, an initial full sync, and watches."""
        for i, address in enumerate(self.addresses):
            mailbox = self.sim.create_mailbox(address, name=f"Chaos {i}")
            messages = self.sizes.seed_messages
            self.sim.seed(address, messages=messages, threads=max(1, messages // 3), seed=i)
            service = self.services[address]
            await pool.execute(
                "INSERT INTO gmail_accounts (id, name, email, refresh_token) "
                "VALUES ($1, $2, $3, $4)", service, f"Chaos {i}", address,
                mailbox.refresh_token)
        async with SyncEngine.open(pool, EngineConfig.from_settings(self.settings())) as engine:
            for service in self.services.values():
                await engine.sync(service, mode="full", trigger="connect")
        for address in self.addresses:
            self.sim.watch(address, self.raw_topic)

    # --- observations --------------------------------------------------------------------

    async def behind(self, pool: asyncpg.Pool) -> list[str]:
        """Services not converged yet: their cursor behind the mailbox, or an import of
        theirs still to run or running (it moved the cursor first)."""
        rows = await pool.fetch(
            "SELECT a.id, a.email, a.last_history_id, i.status AS import_status "
            "FROM gmail_accounts a LEFT JOIN delightbridge_sync.imports i "
            "ON i.account_id = a.id")
        return [r["id"] for r in rows
                if int(r["last_history_id"] or 0) < self.sim.history_id(r["email"])
                or r["import_status"] in ("pending", "running")]

    def mailbox(self, address: str) -> dict[str, tuple[str, list[str]]]:
        snapshot = self.sim.snapshot(address)
        return {m.id: (m.thread_id, sorted(m.label_ids)) for m in snapshot.messages
                if is_mirrored(m.label_ids)}

    async def mirrored(self, pool: asyncpg.Pool, service: str
                       ) -> dict[str, tuple[str, list[str]]]:
        rows = await pool.fetch(
            "SELECT e.gmail_message_id, t.gmail_thread_id, m.label_ids FROM emails e "
            "JOIN email_threads t ON t.id = e.thread_id "
            "JOIN delightbridge_sync.messages m ON m.email_id = e.id "
            "WHERE t.account_id = $1", service)
        return {r["gmail_message_id"]: (r["gmail_thread_id"], sorted(r["label_ids"]))
                for r in rows}

    def count_faults(self) -> None:
        for method, counter in self.sim.counters.snapshot().items():
            for key, count in counter["errors"].items():
                code = key.split("/", 1)[0]
                if code in ("429", "500", "503"):
                    self.tally.faults[code] += count
                    self.tally.fault_methods[f"{method} {code}"] += count


@contextlib.asynccontextmanager
async def api_server(settings: Settings) -> AsyncIterator[str]:
    runner = web.AppRunner(create_app(settings), access_log=None)
    await runner.setup()
    try:
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        yield f"http://127.0.0.1:{runner.addresses[0][1]}"
    finally:
        await runner.cleanup()


# --- the injectors ------------------------------------------------------------------------


def plan(sizes: Sizes, rng: random.Random) -> list[tuple[float, str]]:
    """When each injection happens, in seconds from the start of the chaos phase."""
    span = sizes.chaos_seconds
    events: list[tuple[float, str]] = []
    events += [(rng.uniform(0.05, 0.9) * span, "kill") for _ in range(sizes.kills)]
    # PostgreSQL restarts spread out (one per slice of the run), so they never overlap.
    for i in range(sizes.pg_restarts):
        slice_ = 0.8 * span / sizes.pg_restarts
        events.append((0.1 * span + i * slice_ + rng.uniform(0, 0.5) * slice_, "pg_restart"))
    events += [(rng.uniform(0.3, 0.7) * span, "history_shrink")
               for _ in range(sizes.history_shrinks)]
    events += [(rng.uniform(0.1, 0.9) * span, "api_sync") for _ in range(sizes.api_syncs)]
    t = sizes.burst_every
    while t < span:
        events.append((t + rng.uniform(-0.5, 0.5), "burst_429"))
        t += sizes.burst_every
    return sorted(events)


async def run_mutations(world: World, mutator: Mutator, rng: random.Random) -> None:
    sizes = world.sizes
    start = time.monotonic()
    for n in range(sizes.mutations):
        due = start + sizes.chaos_seconds * n / sizes.mutations
        await asyncio.sleep(max(0.0, due - time.monotonic()))  # pacing the load
        mutator.one()


async def api_full_sync(world: World, base: str, cookie: str, service: str,
                        deadline: float) -> None:
    """One manual full sync through the API; retried while another sync holds the lock."""
    async with aiohttp.ClientSession(headers={"Cookie": cookie}) as http:
        while True:
            async with http.post(f"{base}/api/services/{service}/sync?mode=full") as response:
                body = await response.json()
                world.tally.api_syncs[str(response.status)] += 1
                assert response.status in (200, 409, 429, 503), (response.status, body)
                if response.status == 200:
                    assert body["mode"] == "full"
                    return
            if time.monotonic() > deadline:
                return
            await asyncio.sleep(0.5)  # try again, as an admin would


async def any_alive(slots: list[ConsumerSlot]) -> None:
    """Until a consumer runs (both may be restarting)."""
    async with asyncio.timeout(60):
        while not any(slot.alive for slot in slots):
            waits = [asyncio.create_task(slot.started.wait()) for slot in slots]
            try:
                await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
            finally:
                for wait in waits:
                    wait.cancel()


async def restore_quota(sim: Simulator, after: float) -> None:
    await asyncio.sleep(after)  # the length of the burst
    sim.quota.update(units_per_second=250.0)


async def inject(world: World, events: list[tuple[float, str]], slots: list[ConsumerSlot],
                 api_base: str, rng: random.Random) -> None:
    sizes, sim = world.sizes, world.sim
    cookie = mint_admin_cookie(world.settings(), ADMIN_EMAIL)
    background: set[asyncio.Task[None]] = set()
    start = time.monotonic()
    for at, kind in events:
        await asyncio.sleep(max(0.0, start + at - time.monotonic()))  # the schedule
        if kind == "kill":
            await any_alive(slots)
            rng.choice([s for s in slots if s.alive]).kill(downtime=rng.uniform(0.2, 2.0))
        elif kind == "pg_restart":
            world.db_down = True
            try:
                await world.pg.restart(downtime=rng.uniform(1.0, 3.0))
            finally:
                world.db_down = False
            world.tally.pg_restarts += 1
        elif kind == "history_shrink":
            for address in world.addresses:
                sim.expire_history(address)
            world.tally.history_shrinks += 1
        elif kind == "burst_429":
            # Gmail's per-user rate limit, cut to almost nothing for a moment: every
            # mailbox's calls are answered 429 rateLimitExceeded with Retry-After.
            sim.quota.update(units_per_second=5.0)
            world.tally.faults["429 bursts"] += 1
            background.add(asyncio.create_task(restore_quota(sim, rng.uniform(0.5, 2.0))))
        elif kind == "api_sync":
            service = rng.choice(list(world.services.values()))
            deadline = start + sizes.chaos_seconds + 30
            task = asyncio.create_task(api_full_sync(world, api_base, cookie, service,
                                                     deadline))
            background.add(task)
    await asyncio.gather(*background)


# --- the soak -----------------------------------------------------------------------------


async def snapshot_tables(pool: asyncpg.Pool) -> tuple[list[Any], list[Any]]:
    emails = await pool.fetch(f"SELECT {EMAIL_COLUMNS} FROM emails e "
                              "LEFT JOIN delightbridge_sync.messages m ON m.email_id = e.id "
                              "ORDER BY e.id")
    threads = await pool.fetch(f"SELECT {THREAD_COLUMNS} FROM email_threads t ORDER BY t.id")
    return [tuple(r) for r in emails], [tuple(r) for r in threads]


async def soak(sizes: Sizes, pg: PgServer, pubsub_host: str, tmp_path: Path) -> None:
    seed = chaos_seed()
    print(f"\nchaos soak {sizes.name}: seed {seed} (CHAOS_SEED={seed} repeats the choices)")
    world = World(sizes, seed, pg, pubsub_host, tmp_path)
    rng = random.Random(seed)
    await asyncio.to_thread(world.create_pubsub)
    await world.create_database()
    push = PushConfig(min_interval=1.0)  # Gmail's pace: one notification a second at most
    slots: list[ConsumerSlot] = []
    relay: Relay | None = None
    stop_relay = asyncio.Event()
    relay_task: asyncio.Task[None] | None = None
    started = time.monotonic()
    try:
        async with serve(world.sim, pubsub_emulator_host=pubsub_host, push=push) as server:
            world.server = server
            pool = await create_pool(world.db_url, max_size=4)
            assert pool is not None
            try:
                await world.connect_all(pool)
                relay = Relay(pubsub_host, world.raw_subscription, world.topic,
                              random.Random(rng.random()), world.tally, sizes.max_delay)
                relay_task = asyncio.create_task(relay.run(stop_relay))
                env = world.consumer_env()
                slots = [ConsumerSlot(f"consumer-{i}", env, tmp_path, world.tally,
                                      lambda: world.db_down) for i in range(2)]
                for slot in slots:
                    slot.start()
                async with asyncio.timeout(60):
                    await asyncio.gather(*(slot.started.wait() for slot in slots))
                print(f"set-up: {time.monotonic() - started:.1f}s")

                # --- chaos ---------------------------------------------------------------
                world.sim.faults.update(error_rate=0.025, unavailable_rate=0.025,
                                        seed=rng.randrange(2**31))
                mutator = Mutator(world.sim, world.addresses, random.Random(rng.random()),
                                  world.tally)
                chaos_started = time.monotonic()
                async with api_server(world.settings()) as api_base:
                    events = plan(sizes, random.Random(rng.random()))
                    await asyncio.gather(
                        run_mutations(world, mutator, random.Random(rng.random())),
                        inject(world, events, slots, api_base, random.Random(rng.random())))
                print(f"chaos: {time.monotonic() - chaos_started:.1f}s")

                # --- quiescence ------------------------------------------------------------
                world.count_faults()
                world.sim.faults.reset()
                relay.chaos = False
                quiet = time.monotonic()
                behind: list[str] = []
                deadline = quiet + sizes.quiesce_within
                while time.monotonic() < deadline:  # no event to wait on: a DB condition
                    behind = await world.behind(pool)
                    if not behind and not world.db_down:
                        break
                    await asyncio.sleep(0.5)
                logs = {slot.name: list(slot.tail)[-15:] for slot in slots}
                assert not behind, f"not converged within {sizes.quiesce_within}s: {behind}; " \
                                   f"logs: {logs}"
                print(f"quiescence: {time.monotonic() - quiet:.1f}s")
                codes = [await slot.stop() for slot in slots]
                assert codes == [0, 0], (codes, logs)
                stop_relay.set()
                await relay_task
                await relay.close()
                await asyncio.to_thread(world.count_dead_letters)
                await check_zero_drift(world, pool)
            finally:
                await pool.close()
    finally:
        for slot in slots:
            await slot.abort()
        stop_relay.set()
        if relay_task is not None and not relay_task.done():
            relay_task.cancel()
            with contextlib.suppress(BaseException):
                await relay_task
        await asyncio.to_thread(world.delete_pubsub)
    for line in world.tally.lines():
        print("  " + line)
    for line in world.tally.consumer_exits:
        print("  exit: " + line)
    print(f"total: {time.monotonic() - started:.1f}s")
    t = world.tally
    assert sum(t.mutations.values()) == sizes.mutations
    assert t.kills == sizes.kills
    assert t.pg_restarts == sizes.pg_restarts
    assert t.history_shrinks == sizes.history_shrinks
    assert t.api_syncs["200"] >= 1
    assert t.notifications["dropped"] > 0
    assert t.notifications["duplicated"] > 0
    assert t.notifications["reordered"] > 0
    assert t.faults["500"] + t.faults["503"] > 0
    assert t.faults["429"] > 0
    unexpected = [e for slot in slots for e in slot.unexpected_exits()]
    assert not unexpected, unexpected


async def explain_drift(world: World, pool: asyncpg.Pool, address: str, service: str,
                        message_ids: list[str]) -> None:
    """Print what Gmail and the mirror know of each drifted message, and the runs and
    imports of the service, so that a failure found by a random seed can be diagnosed."""
    state = world.sim.state(address)
    for message_id in message_ids[:5]:
        stored = state.messages.get(message_id)
        print(f"    {message_id}: gmail labels "
              f"{sorted(stored.labels) if stored else None}, history "
              f"{stored.history_id if stored else None}")
        for record in state.history:
            if any(ref.id == message_id for ref in record.messages()):
                print(f"      history {record.id}: added {bool(record.added)}, deleted "
                      f"{bool(record.deleted)}, +{[names for _, names in record.labels_added]} "
                      f"-{[names for _, names in record.labels_removed]}")
        row = await pool.fetchrow(
            "SELECT m.label_ids, m.history_id, m.synced_run_id, m.updated_at, r.mode, "
            "r.trigger, r.start_history_id, r.end_history_id FROM emails e "
            "JOIN delightbridge_sync.messages m ON m.email_id = e.id "
            "LEFT JOIN delightbridge_sync.runs r ON r.id = m.synced_run_id "
            "WHERE e.gmail_message_id = $1", message_id)
        print(f"      mirror: {dict(row) if row else None}")
    for r in await pool.fetch(
            "SELECT mode, trigger, status, fell_back_to_full, start_history_id, "
            "end_history_id, started_at, finished_at FROM delightbridge_sync.runs "
            "WHERE account_id = $1 ORDER BY started_at", service):
        print(f"    run {dict(r)}")
    for r in await pool.fetch("SELECT * FROM delightbridge_sync.imports WHERE account_id = $1",
                              service):
        print(f"    import {dict(r)}")


async def check_zero_drift(world: World, pool: asyncpg.Pool) -> None:
    """Verify deep, compare with the simulator, look for duplicates, sync once more."""
    settings = world.settings()
    async with SyncEngine.open(pool, EngineConfig.from_settings(settings)) as engine:
        for address, service in world.services.items():
            drift = await verify(engine, service, deep=True)
            print("  " + drift.summary())
            if not drift.equal:
                await explain_drift(world, pool, address, service,
                                    [*drift.labels, *drift.missing, *drift.extra])
            assert drift.equal, drift.summary()
            assert drift.pending == 0
            assert await world.mirrored(pool, service) == world.mailbox(address)

        duplicates = await pool.fetch(
            "SELECT t.account_id, e.gmail_message_id, count(*) FROM emails e "
            "JOIN email_threads t ON t.id = e.thread_id GROUP BY 1, 2 HAVING count(*) > 1")
        assert not duplicates
        assert not await pool.fetch(
            "SELECT account_id, gmail_thread_id FROM email_threads GROUP BY 1, 2 "
            "HAVING count(*) > 1")
        assert not await pool.fetch(
            "SELECT t.id FROM email_threads t WHERE NOT EXISTS "
            "(SELECT 1 FROM emails e WHERE e.thread_id = t.id)")
        runs = Counter((r["trigger"], r["status"], r["fell_back_to_full"]) for r in
                       await pool.fetch("SELECT trigger, status, fell_back_to_full "
                                        "FROM delightbridge_sync.runs"))
        print("  sync runs (trigger, status, fell back to full): "
              + ", ".join(f"{k} {v}" for k, v in sorted(runs.items())))
        if world.tally.history_shrinks:
            assert sum(v for (_, s, fb), v in runs.items() if fb and s == "succeeded") >= 1
        assert not await pool.fetch(
            "SELECT id FROM delightbridge_sync.runs WHERE status = 'running'")

        before = await snapshot_tables(pool)
        for service in world.services.values():
            again = await engine.sync(service, mode="incremental", trigger="api")
            assert (again.messages_processed, again.messages_deleted) == (0, 0)
            assert not again.fell_back_to_full
            full = await engine.sync(service, mode="full", trigger="api")
            assert full.messages_deleted == 0
        assert await snapshot_tables(pool) == before


@pytest.mark.parametrize("sizes", [
    pytest.param(SHORT, id="short"),
    pytest.param(LONG, id="long", marks=pytest.mark.chaos),
])
async def test_chaos_soak_ends_with_zero_drift(sizes: Sizes, chaos_pg: PgServer,
                                               pubsub_emulator: str, tmp_path: Path) -> None:
    async with asyncio.timeout(sizes.chaos_seconds + sizes.quiesce_within + 300):
        await soak(sizes, chaos_pg, pubsub_emulator, tmp_path)
