"""Session-level advisory locks (PostgreSQL's ``pg_advisory_lock``), keyed by a class
and a text key: typed functions around their named queries. What a lock protects and
how long it is held is :mod:`delightbridge.sync.lock`'s business."""

from __future__ import annotations

from delightbridge.core.errors import QueryFailed
from delightbridge.db import errors as db_errors
from delightbridge.db.queries import query
from delightbridge.db.types import Connection


async def try_lock(conn: Connection, *, lock_class: int, key: str) -> bool:
    """Take the lock if it is free; whether it was taken."""
    return bool(await conn.fetchval(query("sync_try_lock"), lock_class, key))


async def lock(conn: Connection, *, lock_class: int, key: str, wait: float) -> bool:
    """Wait up to ``wait`` seconds for the lock; whether it was taken. The connection's
    lock timeout is reset afterwards."""
    await conn.execute(query("sync_set_lock_timeout"), f"{int(wait * 1000)}ms")
    try:
        await conn.execute(query("sync_lock"), lock_class, key)
    except QueryFailed as exc:
        if exc.sqlstate == db_errors.LOCK_NOT_AVAILABLE:
            return False
        raise
    finally:
        await conn.execute(query("sync_set_lock_timeout"), "0")
    return True


async def unlock(conn: Connection, *, lock_class: int, key: str) -> None:
    await conn.execute(query("sync_unlock"), lock_class, key)


async def lock_for_transaction(conn: Connection, *, lock_class: int, key: str) -> None:
    """Wait for the lock and hold it until the caller's transaction ends."""
    await conn.execute(query("sync_write_lock"), lock_class, key)
