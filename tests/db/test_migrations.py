"""Migrations on a real server: both install orders, the upgrade from layout v0, races.

The web app owns schema public (tests/fixtures/delightbridge-schema.sql is its current
layout, as its deploy tool creates it); the service keeps everything of its own in
schema delightbridge_sync. The contract tests (tests/contract) run the web app's tool
itself against the same layouts.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

import asyncpg
import pytest

from delightbridge.core.errors import MigrationError
from delightbridge.db import migrate as migrations
from delightbridge.db.connection import connection
from delightbridge.db.pool import create_pool
from delightbridge.db.queries import query
from tests.db import legacy
from tests.db.catalog import (
    SERVICE_SCHEMA,
    WEB_APP_TABLES,
    load_reference,
    public_catalog,
    table_rows,
    without_service_trigger,
)

SERVICE_TABLES = {"schema_migrations", "services", "messages", "runs", "watch_stops", "events",
                  "imports", "tombstones", "quota_leases", "quota_days"}


@pytest.fixture
async def conn(fresh_database: str) -> Any:
    connection = await asyncpg.connect(fresh_database)
    yield connection
    await connection.close()


async def _reference_catalog(pg_admin_url: str) -> dict[str, list[dict[str, Any]]]:
    """Schema public as the web app's tool lays it out, nothing else installed."""
    from tests.dbutil import create_database, drop_database

    name = "dbsync_ref_catalog"
    await drop_database(pg_admin_url, name)
    url = await create_database(pg_admin_url, name)
    try:
        ref = await asyncpg.connect(url)
        try:
            await load_reference(ref, rows=False)
            return await public_catalog(ref)
        finally:
            await ref.close()
    finally:
        await drop_database(pg_admin_url, name)


async def _service_tables(conn: asyncpg.Connection) -> set[str]:
    rows = await conn.fetch(
        "SELECT relname FROM pg_class WHERE relnamespace = $1::regnamespace AND relkind = 'r'",
        SERVICE_SCHEMA,
    )
    return {r["relname"] for r in rows}


async def test_empty_database_gets_the_web_apps_public_exactly(
    conn: asyncpg.Connection, pg_admin_url: str
) -> None:
    assert await migrations.pending(conn) == [m.version for m in migrations.available()]
    applied = await migrations.migrate(conn)
    assert applied == [m.version for m in migrations.available()]
    assert await migrations.pending(conn) == []

    catalog = await public_catalog(conn)
    assert without_service_trigger(catalog) == await _reference_catalog(pg_admin_url)
    # The one thing on a web-app table: the delete trigger, its function in our schema.
    assert catalog["triggers"] == [{
        "tbl": "gmail_accounts", "tgname": "delightbridge_sync_queue_watch_stop",
        "function": "delightbridge_sync.queue_watch_stop()",
    }]
    assert await _service_tables(conn) == SERVICE_TABLES


async def test_web_app_first_keeps_public_and_every_row(
    conn: asyncpg.Connection,
) -> None:
    await load_reference(conn)
    before_catalog = await public_catalog(conn)
    before = {t: await table_rows(conn, t) for t in WEB_APP_TABLES}
    assert sum(len(rows) for rows in before.values()) == 10  # the reference's sample rows

    await migrations.migrate(conn)

    assert without_service_trigger(await public_catalog(conn)) == before_catalog
    assert {t: await table_rows(conn, t) for t in WEB_APP_TABLES} == before
    # The web app's own statements still work, the delete included.
    await conn.execute(
        "INSERT INTO emails (id, thread_id, gmail_message_id, from_email, from_name, "
        "to_email, body, direction, sent_at) VALUES ('email-svc-noji-18c2', "
        "'thread-svc-noji-18c1', '18c2', 'a@b.example', 'A', 'support@noji.example', "
        "'<p>x</p>', 'inbound', now())"
    )
    await conn.execute(
        "INSERT INTO drafts (id, thread_id, content) VALUES ('d2', 'thread-svc-noji-18c1', 'x') "
        "ON CONFLICT (thread_id) DO UPDATE SET content = EXCLUDED.content"
    )
    await conn.execute("DELETE FROM gmail_accounts WHERE id = 'svc-anki'")


async def test_second_run_applies_nothing_and_changes_nothing(conn: asyncpg.Connection) -> None:
    await migrations.migrate(conn)
    before = await public_catalog(conn)
    assert await migrations.migrate(conn) == []
    assert await public_catalog(conn) == before


async def test_concurrent_starts_apply_each_migration_once(fresh_database: str) -> None:
    conns = [await asyncpg.connect(fresh_database) for _ in range(6)]
    try:
        results = await asyncio.gather(*(migrations.migrate(c) for c in conns))
        everything = [m.version for m in migrations.available()]
        assert sorted(v for result in results for v in result) == everything
        assert sum(1 for result in results if result) == 1
        recorded = await conns[0].fetchval(
            "SELECT count(*) FROM delightbridge_sync.schema_migrations")
        assert recorded == len(everything)
    finally:
        for c in conns:
            await c.close()


async def test_migration_edited_after_it_was_applied_is_refused(conn: asyncpg.Connection) -> None:
    await migrations.migrate(conn)
    await conn.execute(
        "UPDATE delightbridge_sync.schema_migrations SET checksum = 'edited' "
        "WHERE version = '0001'"
    )
    with pytest.raises(MigrationError, match="edited after it was applied"):
        await migrations.migrate(conn)
    # The lock was released: another attempt gets the same clear error, not a hang.
    with pytest.raises(MigrationError):
        await asyncio.wait_for(migrations.migrate(conn), timeout=10)


async def test_a_failing_migration_leaves_nothing_half_done(
    conn: asyncpg.Connection, monkeypatch: pytest.MonkeyPatch
) -> None:
    broken = migrations.Migration("9999", "broken", "CREATE TABLE half_done (x int); SELECT 1/0;")
    real = migrations.available
    monkeypatch.setattr(migrations, "available", lambda: [*real(), broken])
    with pytest.raises(MigrationError, match="division by zero"):
        await migrations.migrate(conn)
    assert await conn.fetchval("SELECT to_regclass('half_done')") is None
    assert await migrations.pending(conn) == ["9999"]


async def test_a_failing_migration_on_the_pools_connection_is_a_migration_error(
    fresh_database: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The service migrates on a connection of its own pool, whose errors are the
    project's: still a MigrationError, not the statement's QueryFailed."""
    broken = migrations.Migration("9999", "broken", "SELECT 1/0;")
    real = migrations.available
    monkeypatch.setattr(migrations, "available", lambda: [*real(), broken])
    pool = await create_pool(fresh_database, max_size=1)
    try:
        async with connection(pool) as conn:
            with pytest.raises(MigrationError, match="division by zero"):
                await migrations.migrate(conn)
    finally:
        await pool.close()


# ------------------------------------------------------------ upgrade from layout v0


async def test_v0_on_the_web_apps_database_upgrades_with_nothing_lost(
    conn: asyncpg.Connection,
) -> None:
    """Web app first, then the service's first release, then this one."""
    await load_reference(conn)
    reference = await public_catalog(conn)
    await legacy.install_layout_v0(conn)
    await legacy.fill_layout_v0(conn)
    assert await conn.fetchval("SELECT to_regclass('public.sessions')") is not None
    web_app_columns = {
        t: [c["column_name"] for c in reference["columns"] if c["table_name"] == t]
        for t in WEB_APP_TABLES
    }
    before = {t: await _rows(conn, t, web_app_columns[t]) for t in WEB_APP_TABLES}

    await migrations.migrate(conn)

    # Public is the web app's again, every web-app row and value kept.
    assert without_service_trigger(await public_catalog(conn)) == reference
    assert {t: await table_rows(conn, t) for t in WEB_APP_TABLES} == before
    await _assert_moved(conn)


async def test_v0_alone_upgrades_to_the_web_apps_names(
    conn: asyncpg.Connection, pg_admin_url: str
) -> None:
    """The service's first release on an empty database (PostgreSQL's constraint names,
    the web app's previous release), then this one: public ends as the web app's."""
    await legacy.install_layout_v0(conn)
    await conn.execute(
        "INSERT INTO gmail_accounts (id, name, email, refresh_token, last_history_id) "
        "VALUES ('svc-noji', 'Noji', 'support@noji.example', 'rt-noji', '4200');"
        "INSERT INTO email_threads (id, account_id, gmail_thread_id, subject, customer_email, "
        "customer_name, last_message_at) VALUES ('thread-svc-noji-18c1', 'svc-noji', '18c1', "
        "'Refund please', 'kim@customer.example', 'Kim', '2026-10-01 09:00');"
        "INSERT INTO emails (id, thread_id, gmail_message_id, from_email, from_name, to_email, "
        "body, direction, sent_at) VALUES ('email-svc-noji-18c1', 'thread-svc-noji-18c1', "
        "'18c1', 'kim@customer.example', 'Kim', 'support@noji.example', '<p>Hi</p>', "
        "'inbound', '2026-10-01 09:00')"
    )
    await legacy.fill_layout_v0(conn)

    await migrations.migrate(conn)

    assert without_service_trigger(await public_catalog(conn)) == await _reference_catalog(
        pg_admin_url)
    await _assert_moved(conn)


async def test_v0_sessions_table_holding_sessions_is_kept(conn: asyncpg.Connection) -> None:
    await load_reference(conn)
    await legacy.install_layout_v0(conn)
    await conn.execute(
        "INSERT INTO sessions (session_token, user_id, expires) "
        "VALUES ('tok', 'user-100', now() + interval '1 day')"
    )
    await migrations.migrate(conn)
    assert await conn.fetchval("SELECT count(*) FROM public.sessions") == 1
    session = await conn.fetchrow(query("auth_database_session"), "tok")
    assert (session["id"], session["live"]) == ("user-100", True)


async def _rows(conn: asyncpg.Connection, table: str, columns: list[str]
                ) -> list[dict[str, Any]]:
    cols = ", ".join(f'"{c}"' for c in columns)
    return [dict(r) for r in await conn.fetch(f"SELECT {cols} FROM {table} ORDER BY 1")]


async def _assert_moved(conn: asyncpg.Connection) -> None:
    """Every v0 value arrived in the service's schema; the v0 objects are gone."""
    service = await conn.fetchrow(
        "SELECT * FROM delightbridge_sync.services WHERE account_id = 'svc-noji'")
    assert {k: service[k] for k in legacy.SERVICE_STATE} == legacy.SERVICE_STATE
    message = await conn.fetchrow(
        "SELECT * FROM delightbridge_sync.messages WHERE email_id = 'email-svc-noji-18c1'")
    moved = {k: message[k] for k in legacy.MESSAGE_METADATA}
    moved["attachments"] = json.loads(moved["attachments"])
    expected = legacy.MESSAGE_METADATA
    assert moved == {**expected, "attachments": json.loads(expected["attachments"])}
    runs = [dict(r) for r in await conn.fetch(
        "SELECT * FROM delightbridge_sync.runs ORDER BY id")]
    assert runs[0] == {**legacy.RUN, "progress": runs[0]["progress"]}
    assert (runs[1]["id"], runs[1]["status"]) == (legacy.OTHER_RUN_ID, "running")
    stop = dict(await conn.fetchrow("SELECT * FROM delightbridge_sync.watch_stops"))
    assert stop == legacy.WATCH_STOP
    # A new stop gets a fresh id after the moved one.
    new_id = await conn.fetchval(
        "INSERT INTO delightbridge_sync.watch_stops (account_id, email, refresh_token, reason) "
        "VALUES ('x', 'x@x.example', 'rt', 'disconnected') RETURNING id")
    assert new_id > legacy.WATCH_STOP["id"]
    for name in ("sync_schema_migrations", "sync_runs", "sync_watch_stops", "sessions"):
        assert await conn.fetchval("SELECT to_regclass($1)", f"public.{name}") is None, name


@pytest.mark.parametrize(
    ("refresh_token", "error", "state"),
    [("rt", None, "connected"), ("rt", "boom", "error"), (None, None, "disconnected"),
     (None, "boom", "disconnected")],
)
async def test_status_derives_sync_state_from_token_and_error(
    pool: asyncpg.Pool, refresh_token: str | None, error: str | None, state: str
) -> None:
    await pool.execute(
        "INSERT INTO gmail_accounts (id, name, email, refresh_token) "
        "VALUES ('s', 'S', 's@x.example', $1)", refresh_token)
    if error:
        await pool.execute(query("sync_mark_failed"), "s", error)
    [row] = await pool.fetch(query("services_status"))
    assert row["sync_state"] == state
