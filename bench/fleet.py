"""The watched fleet of scenarios 3 and 4: many small mailboxes, connected and synced.

A simulator process publishing to the Pub/Sub emulator (Gmail's own behaviour: at
most one notification per mailbox per second, later changes folded into it), a topic
and a pull subscription, ``fleet_mailboxes`` mailboxes seeded with a few messages,
each connected as a service in one database and fully synced once (setup, not
measured), then watched.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator
from typing import Any

import asyncpg

from bench import env
from bench.harness import Fleet, Harness
from bench.sim import Mailbox
from delightbridge.db.pool import create_pool

COMMIT_CHANNEL = "bench_commit"

# Benchmark-only instrumentation in the benchmark's own database: PostgreSQL delivers
# a NOTIFY when the inserting transaction commits, so the listener learns the commit
# time of every new row (the trigger adds microseconds to each insert).
COMMIT_TRIGGER = f"""
CREATE OR REPLACE FUNCTION bench_commit_notify() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  PERFORM pg_notify('{COMMIT_CHANNEL}', NEW.gmail_message_id);
  RETURN NEW;
END $$;
DROP TRIGGER IF EXISTS bench_commit ON emails;
CREATE TRIGGER bench_commit AFTER INSERT ON emails
FOR EACH ROW EXECUTE FUNCTION bench_commit_notify();
"""


class Commits:
    """When each new ``emails`` row committed (by Gmail id), from :data:`COMMIT_TRIGGER`."""

    def __init__(self) -> None:
        self.at: dict[str, float] = {}  # Gmail id -> time.monotonic() of its commit
        self._changed = asyncio.Event()

    @classmethod
    @contextlib.asynccontextmanager
    async def watching(cls, db_url: str) -> AsyncIterator[Commits]:
        """Install the trigger in ``db_url`` and listen until the block ends."""
        conn = await asyncpg.connect(db_url)
        try:
            await conn.execute(COMMIT_TRIGGER)
            watch = cls()
            await conn.add_listener(COMMIT_CHANNEL, watch._on_commit)
            yield watch
        finally:
            await conn.close()

    def _on_commit(self, _conn: Any, _pid: int, _channel: str, payload: object) -> None:
        self.at.setdefault(str(payload), time.monotonic())
        self._changed.set()

    async def until(self, ids: set[str]) -> None:
        """Wait until every one of ``ids`` has committed (bound it with asyncio.timeout)."""
        while not ids <= self.at.keys():
            self._changed.clear()
            await self._changed.wait()

    async def within(self, ids: set[str], seconds: float) -> bool:
        """Whether every one of ``ids`` committed within ``seconds``."""
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(seconds):
                await self.until(ids)
        return ids <= self.at.keys()


async def _limited(limit: int, coros: list[Any]) -> list[Any]:
    slots = asyncio.Semaphore(limit)

    async def one(coro: Any) -> Any:
        async with slots:
            return await coro

    return await asyncio.gather(*(one(c) for c in coros))


async def get(h: Harness) -> Fleet:
    async with h.lock("fleet"):
        if h.fleet is None:
            h.fleet = await _build(h)
        return h.fleet


async def _build(h: Harness) -> Fleet:
    from delightbridge.sync.engine import EngineConfig, SyncEngine

    host = await h.pubsub()
    topic = env.PubSubTopic(host)
    await asyncio.to_thread(topic.create)
    h.stack.callback(topic.delete)
    sim = await h.sim("push", pubsub_emulator_host=host, push_min_interval=1.0)
    await sim.faults(latency_ms=0.0)
    n = h.sizes.fleet_mailboxes
    boxes: list[Mailbox] = await _limited(8, [
        sim.create_mailbox(f"fleet{i:03d}@bench.example", f"Fleet {i}") for i in range(n)])
    per = h.sizes.fleet_seed_messages
    await _limited(4, [sim.seed(b, per, max(1, per // 3), seed=i) for i, b in enumerate(boxes)])
    db = await h.pg.fresh("fleet")
    services = [f"svc-fleet-{i:03d}" for i in range(n)]
    conn = await asyncpg.connect(db)
    try:
        await conn.executemany(
            "INSERT INTO gmail_accounts (id, name, email, refresh_token) VALUES ($1, $1, $2, $3)",
            [(s, b.address, b.refresh_token) for s, b in zip(services, boxes, strict=True)])
        await conn.execute(COMMIT_TRIGGER)
    finally:
        await conn.close()
    from delightbridge.core.settings import Settings

    settings = Settings(database_url=db, gmail_api_endpoint=sim.base_url,
                        google_oauth_token_uri=sim.token_uri, google_client_id=sim.client_id,
                        google_client_secret=sim.client_secret, log_level="WARNING")
    pool = await create_pool(db, max_size=10)
    assert pool is not None
    try:
        async with SyncEngine.open(pool, EngineConfig.from_settings(settings)) as engine:
            await _limited(4, [engine.sync(s, mode="full", trigger="connect")
                               for s in services])
    finally:
        await pool.close()
    fleet = Fleet(sim, topic, db, boxes, services)
    await watch_all(fleet)
    return fleet


async def watch_all(fleet: Fleet) -> None:
    await _limited(8, [fleet.sim.watch(b.address, fleet.topic.topic) for b in fleet.mailboxes])


async def stop_all(fleet: Fleet) -> None:
    await _limited(8, [fleet.sim.stop_watch(b.address) for b in fleet.mailboxes])


def consumer_spec(h: Harness, fleet: Fleet, subscription_id: str, **extra: Any
                  ) -> dict[str, Any]:
    topic = fleet.topic
    return {"db_url": fleet.db_url, "sim": h.sim_spec(fleet.sim),
            "pubsub": {"host": topic.host, "project": topic.project,
                       "topic_id": topic.topic_id, "subscription_id": subscription_id},
            "engine": h.engine_options, **extra}


async def converged(fleet: Fleet) -> dict[str, Any]:
    """Whether every service's cursor reached its mailbox's history id."""
    boxes = {b["emailAddress"].lower(): int(b["historyId"])
             for b in (await fleet.sim._call("GET", "/mailboxes"))["mailboxes"]}
    conn = await asyncpg.connect(fleet.db_url)
    try:
        rows = await conn.fetch("SELECT email, last_history_id FROM gmail_accounts")
    finally:
        await conn.close()
    behind = [r["email"] for r in rows
              if int(r["last_history_id"] or 0) < boxes.get(r["email"].lower(), 0)]
    return {"services": len(rows), "behind": len(behind)}
