"""The consumer's reads: a service by notification address, stale services, a ping."""

from __future__ import annotations

import logging
from dataclasses import dataclass

import asyncpg

from delightbridge.db.queries import query

log = logging.getLogger("consumer")


@dataclass(frozen=True, slots=True)
class ServiceInfo:
    id: str
    connected: bool
    cursor: int | None  # the stored last_history_id; None when absent or not a number


async def find_service(pool: asyncpg.Pool, email: str) -> ServiceInfo | None:
    row = await pool.fetchrow(query("consumer_service_by_email"), email)
    if row is None:
        return None
    raw = row["last_history_id"]
    cursor = int(raw) if raw and raw.isascii() and raw.isdigit() else None
    return ServiceInfo(row["id"], row["connected"], cursor)


async def stale_services(pool: asyncpg.Pool, older_than: float) -> list[str]:
    """Connected services not synced successfully for ``older_than`` seconds."""
    rows = await pool.fetch(query("consumer_stale_services"), older_than)
    return [row["id"] for row in rows]


async def ping(pool: asyncpg.Pool, within: float) -> bool:
    """Whether the database answers within ``within`` seconds. Any failure is a "no": a
    readiness probe must answer 503, never 500."""
    try:
        async with pool.acquire(timeout=within) as conn:
            return bool(await conn.fetchval(query("consumer_ping"), timeout=within) == 1)
    except Exception as exc:
        log.info("database ping failed: %s: %s", type(exc).__name__, exc, extra={
            "action": "consumer.ping_failed"})
        return False
