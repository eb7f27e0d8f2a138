"""The per-service lock when PostgreSQL drops the connection holding it (a restart, a
failover): the lock went with the connection, so leaving the block must neither fail a
sync that committed nor hide the error of one that did not. Found by the chaos soak."""

from __future__ import annotations

import asyncpg
import pytest

from delightbridge.sync.lock import service_lock

SERVICE = "service-lock"


async def _drop_lock_holder(pool: asyncpg.Pool) -> None:
    """What a restart does to the connection holding the advisory lock: FATAL 57P01."""
    async with pool.acquire() as other:
        pids = await other.fetch(
            "SELECT pid FROM pg_locks WHERE locktype = 'advisory' AND granted "
            "AND database = (SELECT oid FROM pg_database WHERE datname = current_database())")
        assert len(pids) == 1
        await other.execute("SELECT pg_terminate_backend($1)", pids[0]["pid"])


async def test_a_lost_lock_connection_does_not_fail_the_block(pool: asyncpg.Pool) -> None:
    async with service_lock(pool, SERVICE):
        await _drop_lock_holder(pool)
    async with service_lock(pool, SERVICE):  # free again, at once
        pass


async def test_a_lost_lock_connection_keeps_the_blocks_own_error(pool: asyncpg.Pool) -> None:
    async def failing_sync() -> None:
        async with service_lock(pool, SERVICE):
            await _drop_lock_holder(pool)
            raise ValueError("the sync's own failure")

    with pytest.raises(ValueError, match="the sync's own failure"):
        await failing_sync()
    async with service_lock(pool, SERVICE):
        pass
