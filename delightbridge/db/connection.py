"""The pool and its connections, which speak the project's errors, not the driver's.

Every statement (``execute``, ``fetch``…, on a connection or on the pool itself) and
every transaction's start, commit and rollback translate what asyncpg raises into
:class:`~delightbridge.core.errors.DatabaseUnavailable` or
:class:`~delightbridge.core.errors.QueryFailed` (:func:`delightbridge.db.errors.translate`),
the driver's exception as ``__cause__``. A connection held for a block is taken with
:func:`connection` or :func:`transaction`, which translate what the pool raises too
(no server, no connection free in time, a call on a connection PostgreSQL dropped
while it was idle, which the pool has already taken back). This is the one place the
mapping is applied; callers above ``delightbridge.db`` catch domain errors only.
"""
from __future__ import annotations

import contextlib
import functools
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from typing import Any, NoReturn, TypeVar

import asyncpg
from asyncpg.transaction import Transaction

from delightbridge.core.errors import DatabaseError, DatabaseUnavailable
from delightbridge.db import errors as db_errors
from delightbridge.db.types import Connection

_F = TypeVar("_F", bound=Callable[..., Awaitable[Any]])


def _reraise(exc: Exception) -> NoReturn:
    mapped = db_errors.translate(exc)
    if mapped is None:
        raise exc
    raise mapped from exc


@contextlib.contextmanager
def _translating() -> Iterator[None]:
    """What the driver raises in the block, raised as the project's error."""
    try:
        yield
    except DatabaseError:
        raise
    except Exception as exc:
        _reraise(exc)


def _translated(method: _F) -> _F:
    @functools.wraps(method)
    async def call(*args: Any, **kwargs: Any) -> Any:
        with _translating():
            return await method(*args, **kwargs)

    return call  # type: ignore[return-value]


class MappedTransaction(Transaction):
    __slots__ = ()

    start = _translated(Transaction.start)
    commit = _translated(Transaction.commit)
    rollback = _translated(Transaction.rollback)

    async def __aenter__(self) -> None:
        with _translating():
            await super().__aenter__()

    async def __aexit__(self, extype: object, ex: object, tb: object) -> None:
        try:
            await super().__aexit__(extype, ex, tb)
        except Exception as exc:
            mapped = exc if isinstance(exc, DatabaseError) else db_errors.translate(exc)
            if ex is not None and isinstance(mapped, DatabaseUnavailable):
                # The block failed and the rollback could not be said because the
                # connection is gone, which rolls back all the same: the block's own
                # error is the one that propagates.
                return
            if mapped is None or mapped is exc:
                raise
            raise mapped from exc


class MappedConnection(asyncpg.Connection):
    __slots__ = ()

    execute = _translated(asyncpg.Connection.execute)
    executemany = _translated(asyncpg.Connection.executemany)
    fetch = _translated(asyncpg.Connection.fetch)
    fetchval = _translated(asyncpg.Connection.fetchval)
    fetchrow = _translated(asyncpg.Connection.fetchrow)
    fetchmany = _translated(asyncpg.Connection.fetchmany)
    prepare = _translated(asyncpg.Connection.prepare)
    copy_from_table = _translated(asyncpg.Connection.copy_from_table)
    copy_from_query = _translated(asyncpg.Connection.copy_from_query)
    copy_to_table = _translated(asyncpg.Connection.copy_to_table)
    copy_records_to_table = _translated(asyncpg.Connection.copy_records_to_table)

    def transaction(self, *, isolation: Any = None, readonly: bool = False,
                    deferrable: bool = False) -> Transaction:
        self._check_open()  # type: ignore[attr-defined]
        return MappedTransaction(self, isolation, readonly, deferrable)


class MappedPool(asyncpg.Pool):
    """The pool's own statements (``pool.fetch``…: a connection taken and given back
    around one statement) translate what acquiring raises too: no server, a closed
    pool."""

    __slots__ = ()

    execute = _translated(asyncpg.Pool.execute)
    executemany = _translated(asyncpg.Pool.executemany)
    fetch = _translated(asyncpg.Pool.fetch)
    fetchval = _translated(asyncpg.Pool.fetchval)
    fetchrow = _translated(asyncpg.Pool.fetchrow)
    fetchmany = _translated(asyncpg.Pool.fetchmany)
    copy_from_table = _translated(asyncpg.Pool.copy_from_table)
    copy_from_query = _translated(asyncpg.Pool.copy_from_query)
    copy_to_table = _translated(asyncpg.Pool.copy_to_table)
    copy_records_to_table = _translated(asyncpg.Pool.copy_records_to_table)


async def new_pool(url: str, *, min_size: int, max_size: int,
                   command_timeout: float) -> asyncpg.Pool:
    """A :class:`MappedPool` of :class:`MappedConnection`\\ s, connected: what
    ``asyncpg.create_pool`` builds, with these two classes (it takes the connection's
    class, not the pool's); a refused connection raises the project's errors."""
    pool = MappedPool(
        url, min_size=min_size, max_size=max_size, max_queries=50_000,
        max_inactive_connection_lifetime=300.0, loop=None,
        connection_class=MappedConnection, record_class=asyncpg.Record,
        command_timeout=command_timeout)
    with _translating():
        await pool
    return pool


def closed(conn: Connection) -> bool:
    """Whether the connection is closed (asyncpg hands a dead one back to its pool,
    after which the pool's proxy refuses every call)."""
    try:
        return conn.is_closed()
    except asyncpg.InterfaceError:
        return True


@contextlib.asynccontextmanager
async def connection(pool: asyncpg.Pool, *, wait: float | None = None
                     ) -> AsyncIterator[Connection]:
    """A connection of the pool for the block (waiting up to ``wait`` seconds for a
    free one); the driver's errors leaving the block are the project's."""
    own: BaseException | None = None  # the block's own error, which stays what it is
    try:
        async with pool.acquire(timeout=wait) as conn:
            try:
                yield conn
            except asyncpg.InterfaceError as exc:
                _reraise(exc)  # a call through a handle the pool has taken back
            except BaseException as exc:
                own = exc
                raise
    except DatabaseError:
        raise
    except Exception as exc:
        if exc is own:
            raise
        _reraise(exc)  # taking the connection, or giving it back


@contextlib.asynccontextmanager
async def transaction(pool: asyncpg.Pool) -> AsyncIterator[Connection]:
    """A connection of the pool in a transaction for the block: committed when the block
    ends, rolled back when it raises."""
    async with connection(pool) as conn, conn.transaction():
        yield conn
