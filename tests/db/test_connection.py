"""The pool's connections raise the project's errors, on a real PostgreSQL: a refused
statement, a connection PostgreSQL dropped (in and out of a transaction), no server."""

from __future__ import annotations

import re
import socket
from collections.abc import AsyncIterator
from datetime import date
from pathlib import Path

import asyncpg
import pytest

import delightbridge
from delightbridge.core.errors import DatabaseUnavailable, QueryFailed
from delightbridge.db import identities, locks, quota_ledger
from delightbridge.db.connection import connection, transaction
from delightbridge.db.pool import create_pool
from delightbridge.db.types import Connection


@pytest.fixture
async def project_pool(db_url: str) -> AsyncIterator[asyncpg.Pool]:
    pool = await create_pool(db_url, max_size=4)
    yield pool
    await pool.close()


async def _drop(pool: asyncpg.Pool, conn: Connection) -> None:
    """PostgreSQL ends ``conn``'s session, as a restart or a failover would; returns once
    the backend is gone."""
    pid = conn.get_server_pid()
    async with pool.acquire() as admin:
        assert await admin.fetchval("SELECT pg_terminate_backend($1, 5000)", pid) is True


async def test_a_refused_statement_is_query_failed(project_pool: asyncpg.Pool) -> None:
    with pytest.raises(QueryFailed) as raised:
        await project_pool.fetchval("SELECT 1 / 0")
    assert raised.value.sqlstate == "22012"
    assert isinstance(raised.value.__cause__, asyncpg.DivisionByZeroError)


async def test_a_dropped_connection_is_unavailable(project_pool: asyncpg.Pool) -> None:
    async def block() -> None:
        async with connection(project_pool) as conn:
            await _drop(project_pool, conn)
            await conn.fetchval("SELECT 1")

    with pytest.raises(DatabaseUnavailable) as raised:
        await block()
    assert isinstance(raised.value.__cause__, asyncpg.InterfaceError)
    assert await project_pool.fetchval("SELECT 1") == 1  # the pool replaced it


async def test_a_statement_cut_off_by_the_drop_is_unavailable(
        project_pool: asyncpg.Pool) -> None:
    async with project_pool.acquire() as conn:
        with pytest.raises(DatabaseUnavailable):  # the session ends under its statement
            await conn.execute("SELECT pg_terminate_backend(pg_backend_pid())")


async def test_no_free_connection_in_time_is_unavailable(db_url: str) -> None:
    pool = await create_pool(db_url, max_size=1)

    async def second() -> None:
        async with connection(pool, wait=0.01):
            pass

    try:
        async with connection(pool):
            with pytest.raises(DatabaseUnavailable):
                await second()
    finally:
        await pool.close()


async def test_a_statement_in_a_transaction_on_a_dropped_connection(
        project_pool: asyncpg.Pool) -> None:
    async def block() -> None:
        async with transaction(project_pool) as conn:
            await conn.execute("CREATE TEMP TABLE t (x int)")
            await _drop(project_pool, conn)
            await conn.execute("INSERT INTO t VALUES (1)")

    with pytest.raises(DatabaseUnavailable):
        await block()


async def test_a_commit_on_a_dropped_connection_is_unavailable(
        project_pool: asyncpg.Pool) -> None:
    await project_pool.execute("CREATE TABLE kept (x int)")

    async def block() -> None:
        async with transaction(project_pool) as conn:
            await conn.execute("INSERT INTO kept VALUES (1)")
            await _drop(project_pool, conn)

    with pytest.raises(DatabaseUnavailable):
        await block()
    assert await project_pool.fetchval("SELECT count(*) FROM kept") == 0


async def test_the_blocks_own_error_survives_a_rollback_that_cannot_be_said(
        project_pool: asyncpg.Pool) -> None:
    async def block() -> None:
        async with transaction(project_pool) as conn:
            await _drop(project_pool, conn)
            raise LookupError("the block's")

    with pytest.raises(LookupError, match="the block's"):
        await block()


async def test_no_server_is_unavailable() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # bound, not listening: refused
        with pytest.raises(DatabaseUnavailable, match="cannot connect to PostgreSQL"):
            await create_pool(f"postgresql://postgres:secret@127.0.0.1:{port}/none")


async def test_a_lock_held_elsewhere_is_not_taken(project_pool: asyncpg.Pool) -> None:
    async with project_pool.acquire() as holder, project_pool.acquire() as waiter:
        assert await locks.try_lock(holder, lock_class=7, key="svc")
        assert not await locks.lock(waiter, lock_class=7, key="svc", wait=0.05)
        await locks.unlock(holder, lock_class=7, key="svc")
        assert await locks.lock(waiter, lock_class=7, key="svc", wait=0.05)
        await locks.unlock(waiter, lock_class=7, key="svc")


async def test_the_blocks_own_socket_error_is_not_the_databases(
        project_pool: asyncpg.Pool) -> None:
    """An OSError raised by the block itself (a call to Gmail, say) stays what it is."""
    async def block() -> None:
        async with connection(project_pool):
            raise ConnectionRefusedError(111, "Gmail refused")

    with pytest.raises(ConnectionRefusedError, match="Gmail refused"):
        await block()


async def test_repository_functions_taking_the_pool_raise_the_projects_errors(
        db_url: str) -> None:
    pool = await create_pool(db_url, max_size=2)
    await pool.close()  # as good as a server gone: nothing can be acquired
    with pytest.raises(DatabaseUnavailable):
        await quota_ledger.lease(pool, lock_class=1, scope="project", units=1, window=60.0,
                                 window_limit=10, day=date(2026, 12, 6), day_limit=None,
                                 counts_the_day=True)
    with pytest.raises(DatabaseUnavailable):
        await identities.replace_all(pool, service_id="svc", identities=[])


def test_only_db_connection_takes_connections_from_the_pool() -> None:
    """Every held connection comes from connection()/transaction(), which translate
    what the pool raises."""
    package = Path(delightbridge.__file__).parent
    found = [f"{path.relative_to(package)}:{n}"
             for path in package.rglob("*.py") if path.name != "connection.py"
             for n, line in enumerate(path.read_text("utf-8").splitlines(), 1)
             if re.search(r"pool\.acquire\(", line)]
    assert found == []
