"""Services (the web app's ``gmail_accounts`` rows, with the service's own state):
the reads the edges need, as typed functions around their named queries."""

from __future__ import annotations

import logging
from dataclasses import dataclass

import asyncpg

from delightbridge.db.queries import query
from delightbridge.db.types import Connection

log = logging.getLogger(__name__)

Executor = Connection | asyncpg.Pool


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
        async with pool.acquire(timeout=within) as conn:
            return bool(await conn.fetchval(query("consumer_ping"), timeout=within) == 1)
    except Exception as exc:
        log.info("database ping failed: %s: %s", type(exc).__name__, exc, extra={
            "action": "consumer.ping_failed"})
        return False
