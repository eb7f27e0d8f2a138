"""Shared fixtures: a real PostgreSQL server and an isolated, migrated database per test.

The server is ``TEST_DATABASE_URL`` (any database on it; tests create their own) when
set, otherwise an embedded PostgreSQL started once per run in a temporary folder.
The schema is migrated once into a template database; each test gets a clone of it
(``CREATE DATABASE ... TEMPLATE``), which takes milliseconds, and drops it after.
"""

from __future__ import annotations

import asyncio
import os
import tempfile
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import asyncpg
import pytest

from delightbridge.db import embedded
from delightbridge.db.migrate import migrate
from delightbridge.db.pool import create_pool
from tests.db.catalog import load_reference
from tests.dbutil import REFERENCE_SCHEMA, create_database, drop_database, with_database

pytest_plugins = ["tests.plugins.gmail", "tests.plugins.oidc", "tests.plugins.pubsub"]


@pytest.fixture(scope="session")
def pg_admin_url() -> Iterator[str]:
    """URL of a maintenance database on the test server."""
    configured = os.environ.get("TEST_DATABASE_URL")
    if configured:
        yield configured
        return
    # Not under pytest's basetemp: concurrent pytest runs rotate those folders away,
    # which would delete a live server's data directory.
    data_dir = Path(tempfile.mkdtemp(prefix="dbsync-pg-")) / "data"
    server = embedded.start(data_dir, delete_on_exit=True)
    yield server.url("postgres")


@pytest.fixture(scope="session")
def template_database(pg_admin_url: str) -> Iterator[str]:
    """Name of a database migrated once for the whole run: the web app's tables laid out
    by its reference file (as its deploy tool creates them), then this service's
    migrations, as in a deployment where the web app came first."""
    name = f"dbsync_tmpl_{uuid.uuid4().hex[:10]}"

    async def build() -> None:
        url = await create_database(pg_admin_url, name)
        conn = await asyncpg.connect(url)
        try:
            await load_reference(conn, rows=False)
            await migrate(conn)
        finally:
            await conn.close()

    asyncio.run(build())
    yield name
    asyncio.run(drop_database(pg_admin_url, name))


@pytest.fixture
async def fresh_database(pg_admin_url: str) -> AsyncIterator[str]:
    """URL of an empty database (nothing migrated)."""
    name = f"dbsync_t_{uuid.uuid4().hex[:12]}"
    url = await create_database(pg_admin_url, name)
    yield url
    await drop_database(pg_admin_url, name)


@pytest.fixture
async def db_url(pg_admin_url: str, template_database: str) -> AsyncIterator[str]:
    """URL of an isolated database with the current schema."""
    name = f"dbsync_t_{uuid.uuid4().hex[:12]}"
    url = await create_database(pg_admin_url, name, template=template_database)
    yield url
    await drop_database(pg_admin_url, name)


@pytest.fixture
async def pool(db_url: str) -> AsyncIterator[asyncpg.Pool]:
    created = await create_pool(db_url, max_size=5)
    assert created is not None
    yield created
    await created.close()


@pytest.fixture
async def reference_database(fresh_database: str) -> str:
    """An existing DelightBridge database: the reference schema and its sample rows."""
    conn = await asyncpg.connect(fresh_database)
    try:
        await conn.execute(REFERENCE_SCHEMA.read_text(encoding="utf-8"))
    finally:
        await conn.close()
    return fresh_database


__all__ = ["with_database"]
