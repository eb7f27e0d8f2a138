"""The web app deleting a service row: it always works, and the watch's stop is queued.

The web app deletes a service with a plain ``DELETE FROM gmail_accounts``. The service's
trigger (function in delightbridge_sync) queues the watch's stop with the tokens; the
service's state of that account goes with the row (foreign keys with ON DELETE CASCADE).
Nothing of this may ever make the web app's statement fail.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

import asyncpg
import pytest

from delightbridge.core.errors import QueryFailed
from delightbridge.db.queries import query
from tests.dbutil import ident

WATCH_EXPIRES = datetime(2026, 12, 12, tzinfo=UTC)


async def _connected_service(conn: asyncpg.Connection) -> None:
    await conn.execute(
        "INSERT INTO gmail_accounts (id, name, email, access_token, refresh_token) "
        "VALUES ('svc', 'Svc', 'svc@x.example', 'at', 'rt');"
        "INSERT INTO email_threads (id, account_id, gmail_thread_id, subject, customer_email, "
        "customer_name, last_message_at) VALUES ('thread-svc-t', 'svc', 't', 's', 'c', 'c', now());"
        "INSERT INTO emails (id, thread_id, gmail_message_id, from_email, from_name, to_email, "
        "body, direction, sent_at) VALUES ('email-svc-m', 'thread-svc-t', 'm', 'c', 'c', 'svc', "
        "'', 'inbound', now());"
        "INSERT INTO delightbridge_sync.messages (email_id) VALUES ('email-svc-m')"
    )
    await conn.execute(query("watch_record_success"), "svc", WATCH_EXPIRES, "10", WATCH_EXPIRES)
    await conn.execute(query("sync_run_start"), uuid.uuid4(), "svc", "full", "api", None)


async def test_delete_queues_the_stop_and_takes_the_services_state_along(
    pool: asyncpg.Pool,
) -> None:
    async with pool.acquire() as conn:
        await _connected_service(conn)
        assert await conn.execute("DELETE FROM gmail_accounts WHERE id = 'svc'") == "DELETE 1"
        stop = await conn.fetchrow(query("watch_stops_pending"), None)
        assert (stop["account_id"], stop["email"], stop["refresh_token"], stop["access_token"],
                stop["watch_expires_at"], stop["reason"]) == (
            "svc", "svc@x.example", "rt", "at", WATCH_EXPIRES, "deleted")
        for table in ("services", "messages", "runs"):
            count = await conn.fetchval(f"SELECT count(*) FROM delightbridge_sync.{table}")
            assert count == 0, table


async def test_delete_of_a_disconnected_service_queues_nothing(pool: asyncpg.Pool) -> None:
    await pool.execute("INSERT INTO gmail_accounts (id, name, email) VALUES ('s', 'S', 's@x.e')")
    assert await pool.execute("DELETE FROM gmail_accounts WHERE id = 's'") == "DELETE 1"
    assert await pool.fetch(query("watch_stops_pending"), None) == []


@pytest.mark.parametrize("damage", [
    "DROP TABLE delightbridge_sync.watch_stops",
    "ALTER TABLE delightbridge_sync.watch_stops RENAME COLUMN refresh_token TO rt",
    "DROP SCHEMA delightbridge_sync CASCADE",
])
async def test_delete_works_whatever_became_of_the_services_schema(
    pool: asyncpg.Pool, damage: str
) -> None:
    async with pool.acquire() as conn:
        await _connected_service(conn)
        await conn.execute(damage)
        assert await conn.execute("DELETE FROM gmail_accounts WHERE id = 'svc'") == "DELETE 1"
        assert await conn.fetchval("SELECT count(*) FROM emails") == 0


async def test_a_web_app_role_without_rights_on_the_services_schema_deletes_and_queues(
    pool: asyncpg.Pool,
) -> None:
    role = f"webapp_{uuid.uuid4().hex[:8]}"
    async with pool.acquire() as conn:
        await _connected_service(conn)
        await conn.execute(f"CREATE ROLE {ident(role)}")
        try:
            await conn.execute(
                f"GRANT USAGE ON SCHEMA public TO {ident(role)};"
                f"GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA public "
                f"TO {ident(role)}"
            )
            async with conn.transaction():
                await conn.execute(f"SET LOCAL ROLE {ident(role)}")
                with pytest.raises(QueryFailed) as refused:
                    async with conn.transaction():
                        await conn.fetch("SELECT * FROM delightbridge_sync.watch_stops")
                assert refused.value.sqlstate == "42501"  # insufficient_privilege
                deleted = await conn.execute("DELETE FROM gmail_accounts WHERE id = 'svc'")
                assert deleted == "DELETE 1"
            stop = await conn.fetchrow(query("watch_stops_pending"), None)
            assert (stop["account_id"], stop["refresh_token"]) == ("svc", "rt")
        finally:
            await conn.execute(f"DROP OWNED BY {ident(role)}; DROP ROLE {ident(role)}")
