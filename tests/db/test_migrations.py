"""Migrations on a real server: empty database, existing DelightBridge database, races."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import asyncpg
import pytest

from db import migrate as migrations
from delightbridge.errors import MigrationError
from tests.dbutil import create_database, drop_database

WEB_APP_TABLES = (
    "users", "workspace_members", "gmail_accounts", "categories",
    "email_threads", "emails", "drafts", "send_outbox",
)


async def _connect(url: str) -> asyncpg.Connection:
    return await asyncpg.connect(url)


async def _catalog(conn: asyncpg.Connection) -> dict[str, Any]:
    """The public schema as data: columns, indexes, constraints, enum labels."""
    columns = await conn.fetch(
        """SELECT table_name, column_name, data_type, udt_name, is_nullable,
                  column_default, is_generated, generation_expression
           FROM information_schema.columns WHERE table_schema = 'public'
             AND table_name <> 'sync_schema_migrations'
           ORDER BY table_name, column_name"""
    )
    indexes = await conn.fetch(
        "SELECT indexname, indexdef FROM pg_indexes WHERE schemaname = 'public' ORDER BY 1"
    )
    constraints = await conn.fetch(
        """SELECT conrelid::regclass::text AS tbl, conname, pg_get_constraintdef(oid) AS def
           FROM pg_constraint WHERE connamespace = 'public'::regnamespace ORDER BY 1, 2"""
    )
    enums = await conn.fetch(
        """SELECT t.typname, array_agg(e.enumlabel ORDER BY e.enumsortorder) AS labels
           FROM pg_type t JOIN pg_enum e ON e.enumtypid = t.oid GROUP BY t.typname ORDER BY 1"""
    )
    return {
        "columns": [dict(r) for r in columns],
        "indexes": [dict(r) for r in indexes],
        "constraints": [dict(r) for r in constraints],
        "enums": [dict(r) for r in enums],
    }


async def _rows(conn: asyncpg.Connection, table: str, columns: list[str]) -> list[dict[str, Any]]:
    cols = ", ".join(f'"{c}"' for c in columns)
    return [dict(r) for r in await conn.fetch(f"SELECT {cols} FROM {table} ORDER BY 1")]


async def _column_names(conn: asyncpg.Connection, table: str) -> list[str]:
    rows = await conn.fetch(
        """SELECT column_name FROM information_schema.columns
           WHERE table_schema = 'public' AND table_name = $1 ORDER BY ordinal_position""",
        table,
    )
    return [r["column_name"] for r in rows]


async def test_empty_database_gets_every_table(fresh_database: str) -> None:
    conn = await _connect(fresh_database)
    try:
        assert await migrations.pending(conn) == [m.version for m in migrations.available()]
        applied = await migrations.migrate(conn)
        assert applied == [m.version for m in migrations.available()]
        assert await migrations.pending(conn) == []
        tables = {
            r["table_name"]
            for r in await conn.fetch(
                "SELECT table_name FROM information_schema.tables WHERE table_schema = 'public'"
            )
        }
        assert set(WEB_APP_TABLES) | {"sync_runs", "sync_schema_migrations"} <= tables
    finally:
        await conn.close()


async def test_second_run_applies_nothing_and_changes_nothing(fresh_database: str) -> None:
    conn = await _connect(fresh_database)
    try:
        await migrations.migrate(conn)
        before = await _catalog(conn)
        assert await migrations.migrate(conn) == []
        assert await _catalog(conn) == before
    finally:
        await conn.close()


async def test_concurrent_starts_apply_each_migration_once(fresh_database: str) -> None:
    conns = [await _connect(fresh_database) for _ in range(6)]
    try:
        results = await asyncio.gather(*(migrations.migrate(c) for c in conns))
        everything = [m.version for m in migrations.available()]
        assert sorted(v for result in results for v in result) == everything
        assert sum(1 for result in results if result) == 1
        recorded = await conns[0].fetchval("SELECT count(*) FROM sync_schema_migrations")
        assert recorded == len(everything)
    finally:
        for conn in conns:
            await conn.close()


async def test_existing_delightbridge_database_keeps_every_row(reference_database: str) -> None:
    conn = await _connect(reference_database)
    try:
        old_columns = {t: await _column_names(conn, t) for t in WEB_APP_TABLES}
        before = {t: await _rows(conn, t, old_columns[t]) for t in WEB_APP_TABLES}
        assert sum(len(rows) for rows in before.values()) == 7  # the reference file's sample rows

        await migrations.migrate(conn)

        # Every old column still exists with the same rows, read the way the web app reads.
        after = {t: await _rows(conn, t, old_columns[t]) for t in WEB_APP_TABLES}
        assert after == before
        account = await conn.fetchrow(
            "SELECT id, refresh_token, last_history_id, sync_state FROM gmail_accounts "
            "WHERE id = 'svc-noji'"
        )
        assert dict(account) == {
            "id": "svc-noji", "refresh_token": "rt-noji", "last_history_id": "4200",
            "sync_state": "connected",
        }
        # The web app's own inserts (no new columns named) still work.
        await conn.execute(
            "INSERT INTO emails (id, thread_id, gmail_message_id, from_email, from_name, "
            "to_email, body, direction, sent_at) VALUES ('email-svc-noji-18c2', "
            "'thread-svc-noji-18c1', '18c2', 'a@b.example', 'A', 'support@noji.example', "
            "'<p>x</p>', 'inbound', now())"
        )
        new = await conn.fetchrow(
            "SELECT label_ids, attachments, parse_problems FROM emails "
            "WHERE id = 'email-svc-noji-18c2'"
        )
        assert dict(new) == {"label_ids": [], "attachments": "[]", "parse_problems": []}
    finally:
        await conn.close()


async def test_existing_and_empty_databases_end_with_the_same_schema(
    reference_database: str, pg_admin_url: str
) -> None:
    ref = await _connect(reference_database)
    try:
        await migrations.migrate(ref)
        from_reference = await _catalog(ref)
    finally:
        await ref.close()
    name = f"dbsync_t_{uuid.uuid4().hex[:12]}"
    empty = await _connect(await create_database(pg_admin_url, name))
    try:
        await migrations.migrate(empty)
        assert await _catalog(empty) == from_reference
    finally:
        await empty.close()
        await drop_database(pg_admin_url, name)


async def test_migration_edited_after_it_was_applied_is_refused(fresh_database: str) -> None:
    conn = await _connect(fresh_database)
    try:
        await migrations.migrate(conn)
        await conn.execute(
            "UPDATE sync_schema_migrations SET checksum = 'edited' WHERE version = '0001'"
        )
        with pytest.raises(MigrationError, match="edited after it was applied"):
            await migrations.migrate(conn)
        # The lock was released: another attempt gets the same clear error, not a hang.
        with pytest.raises(MigrationError):
            await asyncio.wait_for(migrations.migrate(conn), timeout=10)
    finally:
        await conn.close()


async def test_a_failing_migration_leaves_nothing_half_done(
    fresh_database: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    broken = migrations.Migration("9999", "broken", "CREATE TABLE half_done (x int); SELECT 1/0;")
    real = migrations.available
    monkeypatch.setattr(migrations, "available", lambda: [*real(), broken])
    conn = await _connect(fresh_database)
    try:
        with pytest.raises(MigrationError, match="division by zero"):
            await migrations.migrate(conn)
        assert await conn.fetchval("SELECT to_regclass('half_done')") is None
        assert await migrations.pending(conn) == ["9999"]
    finally:
        await conn.close()


@pytest.mark.parametrize(
    ("refresh_token", "error", "state"),
    [("rt", None, "connected"), ("rt", "boom", "error"), (None, None, "disconnected"),
     (None, "boom", "disconnected")],
)
async def test_sync_state_is_derived_from_token_and_error(
    pool: asyncpg.Pool, refresh_token: str | None, error: str | None, state: str
) -> None:
    await pool.execute(
        "INSERT INTO gmail_accounts (id, name, email, refresh_token, last_sync_error) "
        "VALUES ('s', 'S', 's@x.example', $1, $2)",
        refresh_token, error,
    )
    assert await pool.fetchval("SELECT sync_state FROM gmail_accounts WHERE id = 's'") == state
