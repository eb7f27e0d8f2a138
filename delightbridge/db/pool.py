"""Connecting to PostgreSQL: the URL in use, the pool of a process, error wrapping.

``database_url`` resolves ``DATABASE_URL`` or starts the embedded server; ``open_pool``
opens one asyncpg pool per process and, unless told otherwise, migrates first, so
every component (API, consumer, CLI) starts on an up-to-date schema.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from urllib.parse import urlsplit, urlunsplit

import asyncpg

from delightbridge.core.errors import DatabaseError, DatabaseUnavailable
from delightbridge.core.settings import Settings
from delightbridge.db import connection, embedded
from delightbridge.db.migrate import migrate

log = logging.getLogger(__name__)

EMBEDDED_DATABASE = "delightbridge"


async def database_url(settings: Settings) -> str:
    """The configured URL, or that of the embedded server (started if needed)."""
    if settings.database_url:
        return settings.database_url
    server = await embedded.start_async(settings.data_dir / "pgdata")
    url = await embedded.ensure_database(server, EMBEDDED_DATABASE)
    log.info(
        "DATABASE_URL is unset: using embedded PostgreSQL at %s",
        url,
        extra={"action": "db.embedded", "data_dir": str(server.data_dir)},
    )
    return url


def redact_url(url: str) -> str:
    """The URL with any password replaced, for messages and logs."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = parts.netloc.replace(f":{parts.password}@", ":***@", 1)
    return urlunsplit(parts._replace(netloc=netloc))


async def create_pool(url: str, *, min_size: int = 1, max_size: int = 10) -> asyncpg.Pool:
    """A pool whose connections raise the project's errors (:mod:`delightbridge.db.connection`)."""
    try:
        pool = await connection.new_pool(url, min_size=min_size, max_size=max_size,
                                         command_timeout=60)
    except DatabaseError as exc:
        kind = DatabaseUnavailable if isinstance(exc, DatabaseUnavailable) else DatabaseError
        raise kind(f"cannot connect to PostgreSQL at {redact_url(url)}: {exc}") from exc
    return pool


@asynccontextmanager
async def open_pool(
    settings: Settings, *, apply_migrations: bool = True, max_size: int = 10
) -> AsyncIterator[asyncpg.Pool]:
    """The process's pool, migrated first unless ``apply_migrations`` is false."""
    url = await database_url(settings)
    pool = await create_pool(url, max_size=max_size)
    try:
        if apply_migrations:
            async with connection.connection(pool) as conn:
                await migrate(conn)
        yield pool
    finally:
        await pool.close()
