"""New-mail events (``delightbridge_sync.events``): the outbox the store writes in the
sync's transaction and the dispatcher delivers. Typed functions around their named
queries; what an event says and when to send it again is :mod:`delightbridge.sync`'s."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import asyncpg

from delightbridge.db.queries import query
from delightbridge.db.types import Connection, Executor


@dataclass(frozen=True, slots=True)
class Event:
    id: int
    service_id: str
    kind: str
    payload: dict[str, Any]
    created_at: datetime
    attempts: int
    last_error: str | None = None
    delivered_at: datetime | None = None


@dataclass(frozen=True, slots=True)
class Backlog:
    pending: int
    oldest_seconds: float


def _event(row: asyncpg.Record) -> Event:
    return Event(row["id"], row["account_id"], row["kind"], json.loads(row["payload"]),
                 row["created_at"], row["attempts"], row.get("last_error"),
                 row.get("delivered_at"))


async def record(conn: Connection, *, service_id: str,
                 events: Sequence[tuple[str, Mapping[str, object]]]) -> None:
    """Add (kind, payload) events to the service's outbox, in order, in the caller's
    transaction; the dispatcher is notified when it commits."""
    if events:
        await conn.execute(query("events_record"), service_id, [kind for kind, _ in events],
                           [json.dumps(data) for _, data in events])


async def due_heads(db: Executor, *, limit: int) -> list[int]:
    """The ids of the services' oldest undelivered events that are due."""
    return [row["id"] for row in await db.fetch(query("events_due_heads"), limit)]


async def claim(conn: Connection, *, event_id: int) -> Event | None:
    """The event, locked for delivery in the caller's transaction; None when it was
    delivered meanwhile or another dispatcher holds it."""
    row = await conn.fetchrow(query("events_claim"), event_id)
    return None if row is None else _event(row)


async def delivered(conn: Connection, *, event_id: int) -> None:
    await conn.execute(query("events_delivered"), event_id)


async def failed(conn: Connection, *, event_id: int, error: str, retry_in: float) -> None:
    await conn.execute(query("events_failed"), event_id, error, retry_in)


async def next_due(db: Executor) -> datetime | None:
    """When the next head is due (None: nothing pending)."""
    due = await db.fetchval(query("events_next_due"))
    return due if isinstance(due, datetime) else None


async def prune(db: Executor, *, older_than_days: int) -> None:
    """Forget events delivered that long ago."""
    await db.execute(query("events_prune"), older_than_days)


async def backlog(db: Executor) -> Backlog:
    row = await db.fetchrow(query("events_backlog"))
    assert row is not None  # an aggregate: always one row
    return Backlog(int(row["pending"]), float(row["oldest_seconds"]))


async def recent(db: Executor, *, service_id: str | None, pending_only: bool,
                 limit: int) -> list[Event]:
    """The newest events (of one service, undelivered only), newest first."""
    return [_event(r) for r in await db.fetch(query("events_list"), service_id,
                                              pending_only, limit)]


async def replay(db: Executor, *, ids: Sequence[int], service_id: str | None,
                 since: datetime | None) -> int:
    """Queue these events again (by id, or a service's since a time); how many."""
    return len(await db.fetch(query("events_replay"), list(ids), service_id, since))
