"""What the database driver raises when PostgreSQL fails, and the domain error each
becomes. Named once, here; :mod:`delightbridge.db.connection` applies it to every
statement, transaction and new connection, so no other layer sees a driver exception.

:data:`UNAVAILABLE` is the database going away (a restart, a failover, a refused
connection) or not answering within the command timeout: it becomes
:class:`~delightbridge.core.errors.DatabaseUnavailable` (the API answers 503, the
consumer nacks). Any other statement PostgreSQL refuses becomes
:class:`~delightbridge.core.errors.QueryFailed`, with its SQLSTATE.
"""

from __future__ import annotations

import asyncpg

from delightbridge.core.errors import DatabaseError, DatabaseUnavailable, QueryFailed

UNAVAILABLE: tuple[type[BaseException], ...] = (
    asyncpg.PostgresConnectionError,  # connection lost or refused (SQLSTATE class 08)
    asyncpg.exceptions.OperatorInterventionError,  # shutting down, cannot connect now
    asyncpg.InterfaceError,  # the connection was closed in the middle of an operation
    asyncpg.InternalClientError,  # the protocol state after the socket dropped mid-reset
    OSError,  # the socket: refused, reset, or a Unix socket that is gone
    TimeoutError,  # no answer within the pool's command timeout
)

#: SQLSTATEs the repository functions turn into results of their own.
UNIQUE_VIOLATION = "23505"
LOCK_NOT_AVAILABLE = "55P03"


def translate(exc: Exception) -> DatabaseError | None:
    """The domain error for a driver's exception; None for anything else (a bug of the
    caller's, such as a wrong parameter type, stays what it is)."""
    if isinstance(exc, asyncpg.InterfaceError) and isinstance(exc, ValueError):
        return None  # an argument asyncpg cannot encode, a bad option: the caller's bug
    if isinstance(exc, UNAVAILABLE):
        return DatabaseUnavailable(f"{type(exc).__name__}: {exc}".rstrip(": "))
    if isinstance(exc, asyncpg.PostgresError):
        return QueryFailed(str(exc), exc.sqlstate)
    return None

