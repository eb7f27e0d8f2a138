"""Gmail watches: which services need one, what renewing or stopping them did, and the
stops queued by disconnects and deletions (``delightbridge_sync.services``,
``watch_stops``). Typed functions around their named queries; when to renew and how to
stop is :mod:`delightbridge.sync.watch`'s business."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from delightbridge.db.queries import query
from delightbridge.db.types import Connection, Executor

#: The states ``health`` counts connected services in, besides the stops pending.
HEALTH_STATES = ("active", "expiring", "lapsed", "failing")


@dataclass(frozen=True, slots=True)
class WatchedService:
    id: str
    email: str
    expires_at: datetime | None
    renewed_at: datetime | None
    error: str | None


@dataclass(frozen=True, slots=True)
class QueuedStop:
    id: int
    service_id: str
    email: str
    refresh_token: str  # NOT NULL: a stop is queued only with the tokens
    access_token: str | None
    access_token_expires_at: datetime | None
    watch_expires_at: datetime | None
    reason: str | None
    attempts: int


async def connected(db: Executor) -> list[WatchedService]:
    """Every connected service with its watch's state, by id."""
    return [WatchedService(r["id"], r["email"], r["watch_expires_at"], r["watch_renewed_at"],
                           r["watch_error"])
            for r in await db.fetch(query("watch_services"))]


async def record_success(db: Executor, *, service_id: str, expires_at: datetime,
                         history_id: str, renewed_at: datetime) -> None:
    await db.execute(query("watch_record_success"), service_id, expires_at, history_id,
                     renewed_at)


async def record_failure(db: Executor, *, service_id: str, message: str,
                         at: datetime) -> None:
    await db.execute(query("watch_record_failure"), service_id, message, at)


async def record_stopped(db: Executor, *, service_id: str) -> None:
    await db.execute(query("watch_record_stopped"), service_id)


async def queue_disconnect(db: Executor, *, service_id: str, reason: str) -> int | None:
    """Queue the watch's stop with the service's tokens and clear them, in one
    statement; the queued stop's id, or None when the service had no tokens."""
    found = await db.fetchval(query("watch_disconnect"), service_id, reason)
    return None if found is None else int(found)


async def stops_pending(db: Executor, *, only: int | None = None) -> list[QueuedStop]:
    """The queued stops (or only the one ``only``), oldest first."""
    return [QueuedStop(r["id"], r["account_id"], r["email"], r["refresh_token"],
                       r["access_token"], r["access_token_expires_at"], r["watch_expires_at"],
                       r["reason"], r["attempts"])
            for r in await db.fetch(query("watch_stops_pending"), only)]


async def stop_done(db: Executor, *, stop_id: int) -> None:
    await db.execute(query("watch_stop_done"), stop_id)


async def stop_failed(db: Executor, *, stop_id: int, message: str) -> None:
    await db.execute(query("watch_stop_failed"), stop_id, message)


async def health(conn: Connection, *, within: float) -> dict[str, int]:
    """How many connected services have each watch state, and the stops pending
    (the statement may take ``within`` seconds)."""
    row = await conn.fetchrow(query("watch_health"), timeout=within)
    return {key: int(row[key]) for key in (*HEALTH_STATES, "stops_pending")} if row else {}
