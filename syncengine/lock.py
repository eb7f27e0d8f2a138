"""One sync per service across every process: a PostgreSQL session advisory lock.

The lock lives on a connection held for the whole sync; if the process dies the
connection drops and PostgreSQL releases the lock, so a crash never wedges a
service. Callers either fail fast (:class:`SyncInProgress`, the API) or wait up to a
bound (the consumer).
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator

import asyncpg

from db.queries import query
from delightbridge.errors import SyncInProgress

# First key of the two-int advisory lock space used for services ("DBSY").
LOCK_CLASS = 0x44425359


@contextlib.asynccontextmanager
async def service_lock(
    pool: asyncpg.Pool, service_id: str, *, wait: float | None = None
) -> AsyncIterator[None]:
    """Hold the service's lock; ``wait`` None fails at once, else waits that many seconds."""
    async with pool.acquire() as conn:
        if not await conn.fetchval(query("sync_try_lock"), LOCK_CLASS, service_id):
            if not wait:
                raise SyncInProgress(service_id)
            await conn.execute(query("sync_set_lock_timeout"), f"{int(wait * 1000)}ms")
            try:
                await conn.execute(query("sync_lock"), LOCK_CLASS, service_id)
            except asyncpg.LockNotAvailableError:
                raise SyncInProgress(service_id) from None
            finally:
                await conn.execute(query("sync_set_lock_timeout"), "0")
        try:
            yield
        finally:
            try:
                await conn.execute(query("sync_unlock"), LOCK_CLASS, service_id)
            except BaseException:
                # Cannot say unlock (cancelled, connection broken): closing the
                # connection releases every lock it holds.
                conn.terminate()
                raise
