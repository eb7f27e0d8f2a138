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

from delightbridge.core.errors import SyncInProgress
from delightbridge.db import locks
from delightbridge.db.connection import closed, connection
from delightbridge.db.types import Connection

# First key of the two-int advisory lock space used for services ("DBSY").
LOCK_CLASS = 0x44425359
# A service's import ("DBIM"): one at a time, beside the incremental syncs.
IMPORT_CLASS = 0x4442494D
# Writes to a service's mirror ("DBWR"), per transaction (delightbridge.sync.store).
WRITE_CLASS = 0x44425752


@contextlib.asynccontextmanager
async def service_lock(
    pool: asyncpg.Pool, service_id: str, *, wait: float | None = None,
    lock_class: int = LOCK_CLASS,
) -> AsyncIterator[None]:
    """Hold the service's lock (its sync lock, or ``lock_class``'s: the import lock);
    ``wait`` None fails at once, else waits that many seconds."""
    async with connection(pool) as conn:
        if not await locks.try_lock(conn, lock_class=lock_class, key=service_id):
            if not wait:
                raise SyncInProgress(service_id)
            if not await locks.lock(conn, lock_class=lock_class, key=service_id, wait=wait):
                raise SyncInProgress(service_id)
        try:
            yield
        finally:
            await _unlock(conn, service_id, lock_class)


async def _unlock(conn: Connection, service_id: str, lock_class: int) -> None:
    try:
        await locks.unlock(conn, lock_class=lock_class, key=service_id)
    except BaseException as exc:
        if closed(conn):
            # PostgreSQL dropped the connection (a restart, a failover) and every lock
            # it held with it: nothing is left to release. What the block did stands,
            # and its own error, if any, is the one that propagates.
            if isinstance(exc, Exception):
                return
            raise
        # Cannot say unlock (cancelled mid-statement): closing the connection
        # releases every lock it holds.
        conn.terminate()
        raise


