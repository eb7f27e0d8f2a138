"""What the database driver raises when PostgreSQL fails, named once for every layer.

:data:`UNAVAILABLE` is the database going away (a restart, a failover, a refused
connection): not the caller's bug, so the API answers 503 and the consumer nacks.
:data:`FAILED` is any failure of a statement or of the server, those included: what a
caller catches when whatever went wrong in the database must not stop it (a sweep, a
metrics read, an import it will take up again).
"""

from __future__ import annotations

import asyncpg

UNAVAILABLE: tuple[type[BaseException], ...] = (
    asyncpg.PostgresConnectionError,  # connection lost or refused (SQLSTATE class 08)
    asyncpg.exceptions.OperatorInterventionError,  # shutting down, cannot connect now
    asyncpg.InterfaceError,  # the connection was closed in the middle of an operation
    asyncpg.InternalClientError,  # the protocol state after the socket dropped mid-reset
    OSError,  # the socket: refused, reset, or a Unix socket that is gone
)

FAILED: tuple[type[BaseException], ...] = (
    asyncpg.PostgresError,  # any statement the server refused
    *UNAVAILABLE,
    TimeoutError,  # no answer within the pool's command timeout
)
