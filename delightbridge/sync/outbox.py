"""Delivering new-mail events: at least once, in order per service, signed, retried.

The outbox is ``delightbridge_sync.events`` (written by :mod:`delightbridge.sync.store` in the
sync's own transaction). :class:`Dispatcher` sends each service's events in the order
they were recorded: only the head of a service's queue (its oldest undelivered event)
is ever sent, locked (``FOR UPDATE SKIP LOCKED``) for the time of its POST, so several
dispatchers (one per consumer replica) never send a service's events twice at once or
out of order, and other services go on meanwhile. A receiver answering anything but
2xx, or not answering, gets the event again after a backoff (1 s doubling to 5 min,
jittered); a service's later events wait behind it. Nothing is ever dropped: an event
stays until delivered, however long the receiver is down. Delivered events are removed
after a week.

The dispatcher sleeps until the next event is due, or until a sync commits new events
(``LISTEN delightbridge_sync_events``; the notification comes with the commit), or
``poll_interval`` at the most.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from datetime import UTC, datetime

import aiohttp
import asyncpg

from delightbridge.core.errors import DatabaseError
from delightbridge.core.settings import Settings
from delightbridge.db import events as events_db
from delightbridge.db.connection import closed, connection, transaction
from delightbridge.sync import events

log = logging.getLogger(__name__)

CHANNEL = "delightbridge_sync_events"
RETENTION_DAYS = 7


@dataclass(frozen=True, slots=True)
class OutboxConfig:
    url: str
    secret: str
    timeout: float = 10.0
    backoff_base: float = 1.0
    backoff_max: float = 300.0
    concurrency: int = 4  # services delivered to at once
    poll_interval: float = 30.0  # at the longest between looks, notifications aside
    prune_interval: float = 3600.0

    @classmethod
    def from_settings(cls, settings: Settings, **overrides: object) -> OutboxConfig | None:
        """The dispatcher's configuration; None when no receiver is configured."""
        if settings.events_url is None or settings.events_secret is None:
            return None
        base = cls(url=settings.events_url, secret=settings.events_secret)
        return cls(**{**{f: getattr(base, f) for f in cls.__dataclass_fields__}, **overrides})


@dataclass(frozen=True, slots=True)
class Attempt:
    """One delivery attempt, for metrics and tests."""

    event_id: int
    service_id: str
    kind: str
    delivered: bool
    error: str | None  # "http_500", "connection", "timeout" when not delivered
    attempts: int  # including this one
    age: float  # seconds from the event's recording to this attempt's end


def backoff(attempts: int, config: OutboxConfig, *, jitter: float | None = None) -> float:
    """Seconds before the next attempt after ``attempts`` failed ones (pure)."""
    ceiling = min(config.backoff_max, config.backoff_base * 2 ** max(0, attempts - 1))
    factor = random.uniform(0.5, 1.0) if jitter is None else jitter  # noqa: S311 - spacing
    return float(ceiling * factor)


class Dispatcher:
    def __init__(self, pool: asyncpg.Pool, config: OutboxConfig,
                 session: aiohttp.ClientSession, *,
                 on_attempt: Callable[[Attempt], None] | None = None,
                 on_backlog: Callable[[int, float], None] | None = None) -> None:
        self.pool = pool
        self.config = config
        self._session = session
        self._on_attempt = on_attempt
        self._on_backlog = on_backlog
        self._wake = asyncio.Event()
        self._slots = asyncio.Semaphore(config.concurrency)

    async def run(self, stop: asyncio.Event) -> None:
        """Deliver until ``stop`` is set (then return)."""
        async with self._listening():
            last_prune = -float("inf")
            while not stop.is_set():
                self._wake.clear()
                await self.deliver_due()
                if time.monotonic() - last_prune >= self.config.prune_interval:
                    await events_db.prune(self.pool, older_than_days=RETENTION_DAYS)
                    last_prune = time.monotonic()
                await self._report_backlog()
                await self._sleep(stop)

    async def deliver_due(self) -> int:
        """Send every service's due head, then the next ones, until none is due; the
        number of attempts made."""
        made = 0
        while True:
            heads = await events_db.due_heads(self.pool, limit=100)
            if not heads:
                return made
            results = await asyncio.gather(*(self._deliver(event_id) for event_id in heads))
            tried = [r for r in results if r is not None]
            made += len(tried)
            if not any(r.delivered for r in tried):
                return made  # what is left failed just now (or is another's): wait

    async def _deliver(self, event_id: int) -> Attempt | None:
        async with self._slots, transaction(self.pool) as conn:
            row = await events_db.claim(conn, event_id=event_id)
            if row is None:
                return None  # delivered meanwhile, or another dispatcher holds it
            content = events.body(row.id, row.kind, row.service_id, row.created_at,
                                  row.payload)
            error = await self._post(row.id, row.kind, content)
            attempts = row.attempts + 1
            if error is None:
                await events_db.delivered(conn, event_id=event_id)
            else:
                await events_db.failed(conn, event_id=event_id, error=error,
                                       retry_in=backoff(attempts, self.config))
        age = (datetime.now(UTC) - row.created_at).total_seconds()
        attempt = Attempt(event_id, row.service_id, row.kind, error is None, error,
                          attempts, age)
        if error is None:
            log.info("event delivered", extra={
                "action": "events.delivered", "event": event_id, "service": row.service_id,
                "kind": row.kind, "attempts": attempts})
        else:
            log.warning("event not delivered (%s): retrying", error, extra={
                "action": "events.retry", "event": event_id, "service": row.service_id,
                "kind": row.kind, "attempts": attempts})
        if self._on_attempt is not None:
            self._on_attempt(attempt)
        return attempt

    async def _post(self, event_id: int, kind: str, content: bytes) -> str | None:
        """None when the receiver took the event (2xx), else why not."""
        headers = {
            "Content-Type": "application/json",
            events.SIGNATURE_HEADER: events.sign(self.config.secret, int(time.time()), content),
            events.ID_HEADER: str(event_id),
            events.TYPE_HEADER: kind,
        }
        timeout = aiohttp.ClientTimeout(total=self.config.timeout)
        try:
            async with self._session.post(self.config.url, data=content, headers=headers,
                                          timeout=timeout, allow_redirects=False) as answer:
                await answer.read()
                return None if 200 <= answer.status < 300 else f"http_{answer.status}"
        except TimeoutError:
            return "timeout"
        except aiohttp.ClientError:
            return "connection"

    async def _report_backlog(self) -> None:
        if self._on_backlog is not None:
            backlog = await events_db.backlog(self.pool)
            self._on_backlog(backlog.pending, backlog.oldest_seconds)

    async def _sleep(self, stop: asyncio.Event) -> None:
        due = await events_db.next_due(self.pool)
        delay = self.config.poll_interval
        if due is not None:
            delay = min(delay, max(0.0, (due - datetime.now(UTC)).total_seconds()))
        waiters = [asyncio.create_task(stop.wait()), asyncio.create_task(self._wake.wait())]
        try:
            await asyncio.wait(waiters, timeout=delay, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for waiter in waiters:
                waiter.cancel()

    @contextlib.asynccontextmanager
    async def _listening(self) -> AsyncIterator[None]:
        """A connection LISTENing for committed events, for as long as the dispatcher runs."""
        async with connection(self.pool) as conn:
            await conn.add_listener(CHANNEL, self._notified)
            try:
                yield
            finally:
                if not closed(conn):  # else PostgreSQL dropped it, the listener with it
                    with contextlib.suppress(DatabaseError):
                        await conn.remove_listener(CHANNEL, self._notified)

    def _notified(self, *args: object) -> None:
        self._wake.set()
