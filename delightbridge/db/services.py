"""Services (the web app's ``gmail_accounts`` rows, with the service's own state):
the reads the edges need, as typed functions around their named queries."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime
from typing import Literal

import asyncpg

from delightbridge.core.errors import QueryFailed
from delightbridge.db import errors as db_errors
from delightbridge.db.connection import connection
from delightbridge.db.queries import query
from delightbridge.db.types import Executor

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class ServiceInfo:
    id: str
    connected: bool
    cursor: int | None  # the stored last_history_id; None when absent or not a number


@dataclass(frozen=True, slots=True)
class ServiceStatus:
    id: str
    email: str
    sync_state: str  # connected, disconnected or error
    threads: int
    messages: int
    last_history_id: str | None


async def exists(db: Executor, *, service_id: str) -> bool:
    return bool(await db.fetchval(query("services_exists"), service_id))


async def by_address(db: Executor, *, email: str) -> ServiceInfo | None:
    """The service a notification's address names (case-insensitively; an exact match
    first, then the oldest)."""
    row = await db.fetchrow(query("consumer_service_by_email"), email)
    if row is None:
        return None
    raw = row["last_history_id"]
    cursor = int(raw) if raw and raw.isascii() and raw.isdigit() else None
    return ServiceInfo(row["id"], row["connected"], cursor)


async def stale(db: Executor, *, older_than: float) -> list[str]:
    """Connected services not synced successfully for ``older_than`` seconds."""
    return [row["id"] for row in await db.fetch(query("consumer_stale_services"), older_than)]


async def statuses(db: Executor) -> list[ServiceStatus]:
    """Every service's sync state and mirror size, oldest first."""
    return [ServiceStatus(r["id"], r["email"], r["sync_state"], r["threads"], r["messages"],
                          r["last_history_id"])
            for r in await db.fetch(query("services_status"))]


async def ping(pool: asyncpg.Pool, *, within: float) -> bool:
    """Whether the database answers within ``within`` seconds. Any failure is a "no": a
    readiness probe must answer 503, never 500."""
    try:
        async with connection(pool, wait=within) as conn:
            return bool(await conn.fetchval(query("consumer_ping"), timeout=within) == 1)
    except Exception as exc:
        log.info("database ping failed: %s: %s", type(exc).__name__, exc, extra={
            "action": "consumer.ping_failed"})
        return False


async def address(db: Executor, *, service_id: str) -> str | None:
    """The service's mailbox address (the web app's placeholder until it is connected);
    None when there is no such service."""
    row = await db.fetchrow(query("api_connect_service"), service_id)
    return None if row is None else str(row["email"])


GrantStored = Literal["stored", "service_not_found", "address_taken"]


async def store_grant(db: Executor, *, service_id: str, refresh_token: str,
                      access_token: str, access_token_expires_at: datetime,
                      new_address: str | None) -> GrantStored:
    """A (re)connected service's tokens, its address when it had the placeholder
    (``new_address``; None keeps it), and no trace of its disconnection. Nothing is
    stored when the service no longer exists, or when the address is another
    service's."""
    try:
        stored = await db.fetchval(query("api_store_tokens"), service_id, refresh_token,
                                   access_token, access_token_expires_at, new_address)
    except QueryFailed as exc:
        if exc.sqlstate == db_errors.UNIQUE_VIOLATION:
            return "address_taken"
        raise
    return "service_not_found" if stored is None else "stored"


async def disconnect(db: Executor, *, service_id: str, refresh_token: str,
                     reason: str) -> None:
    """Clear the service's tokens (only while they are still ``refresh_token``: a newer
    grant stands) and record why: Google refused the grant."""
    await db.execute(query("sync_disconnect"), service_id, refresh_token, reason)


@dataclass(frozen=True, slots=True)
class SyncedService:
    """A service as the engine loads it before a sync (tokens as stored)."""

    id: str
    email: str
    refresh_token: str | None  # None: not connected
    access_token: str | None
    access_token_expires_at: datetime | None
    last_history_id: str | None  # the web app's text column
    disconnected_reason: str | None
    last_full_sync_at: datetime | None
    last_synced_at: datetime | None


async def for_sync(db: Executor, *, service_id: str) -> SyncedService | None:
    row = await db.fetchrow(query("sync_service"), service_id)
    if row is None:
        return None
    return SyncedService(row["id"], row["email"], row["refresh_token"], row["access_token"],
                         row["access_token_expires_at"], row["last_history_id"],
                         row["disconnected_reason"], row["last_full_sync_at"],
                         row["last_synced_at"])


async def store_access_token(db: Executor, *, service_id: str, access_token: str,
                             expires_at: datetime, refresh_token: str) -> None:
    """A refreshed access token, plain (the web app sends mail with it), kept only while
    the service's refresh token is still ``refresh_token``."""
    await db.execute(query("sync_store_access_token"), service_id, access_token, expires_at,
                     refresh_token)


async def mark_succeeded(db: Executor, *, service_id: str, full: bool) -> None:
    await db.execute(query("sync_mark_succeeded"), service_id, full)


async def mark_failed(db: Executor, *, service_id: str, error: str) -> None:
    await db.execute(query("sync_mark_failed"), service_id, error)


async def has_unknown_messages(db: Executor, *, service_id: str) -> bool:
    """Whether the mirror holds messages the service never wrote (the web app's own)."""
    return bool(await db.fetchval(query("sync_has_unknown_messages"), service_id))


async def advance_cursor(db: Executor, *, service_id: str, history_id: int) -> None:
    """Move the service's history cursor to ``history_id``, never backwards."""
    await db.execute(query("sync_advance_cursor"), service_id, str(history_id))
