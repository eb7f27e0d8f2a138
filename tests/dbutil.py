"""Helpers for test databases on a real PostgreSQL server."""

from __future__ import annotations

from pathlib import Path
from typing import Any
from urllib.parse import quote, urlsplit, urlunsplit

import asyncpg

#: The web app's current schema as its deploy tool creates it, with a few sample rows
#: (a copy of the project's shared reference, ``delightbridge-schema.sql``).
REFERENCE_SCHEMA = Path(__file__).parent / "fixtures" / "delightbridge-schema.sql"


def with_database(url: str, database: str) -> str:
    """``url`` pointing at another database on the same server."""
    parts = urlsplit(url)
    return urlunsplit(parts._replace(path="/" + quote(database)))


def ident(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


async def create_database(admin_url: str, name: str, template: str = "template0") -> str:
    conn = await asyncpg.connect(admin_url)
    try:
        await conn.execute(f"CREATE DATABASE {ident(name)} TEMPLATE {ident(template)}")
    finally:
        await conn.close()
    return with_database(admin_url, name)


async def drop_database(admin_url: str, name: str) -> None:
    conn = await asyncpg.connect(admin_url)
    try:
        await conn.execute(f"DROP DATABASE IF EXISTS {ident(name)} WITH (FORCE)")
    finally:
        await conn.close()


#: Auth.js database sessions as a deployment may keep them (the service creates no such
#: table; it reads one where it exists, see delightbridge_sync.auth_session).
SESSIONS_TABLE = """
CREATE TABLE sessions (
    session_token  text PRIMARY KEY,
    user_id        text NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    expires        timestamptz NOT NULL
)"""


async def service_state(conn: asyncpg.Pool | asyncpg.Connection, service_id: str
                        ) -> dict[str, Any]:
    """A service's gmail_accounts row, its sync state (delightbridge_sync.services) and
    ``sync_state`` as the ``status`` command derives it; ``None`` values where no state
    was recorded yet."""
    from delightbridge.db.queries import query

    row = await conn.fetchrow(
        "SELECT s.*, a.* FROM gmail_accounts a "
        "LEFT JOIN delightbridge_sync.services s ON s.account_id = a.id WHERE a.id = $1",
        service_id)
    assert row is not None, f"no service {service_id!r}"
    states = {r["id"]: r["sync_state"] for r in await conn.fetch(query("services_status"))}
    return {**dict(row), "sync_state": states[service_id]}
