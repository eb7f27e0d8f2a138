"""The store's page write against a real PostgreSQL: one statement, conflicts counted."""

from __future__ import annotations

import uuid

import asyncpg

from delightbridge.sync import store
from delightbridge.sync.parse import parse_message
from tests.syncengine.conftest import add_service
from tests.syncengine.gmail_payload import MAILBOX, new_message, to_gmail

RUN_COUNT = "SELECT count(*) FROM delightbridge_sync.messages WHERE synced_run_id = $1"

async def test_a_page_is_written_once_and_another_services_message_is_a_conflict(
    pool: asyncpg.Pool
) -> None:
    await add_service(pool, "svc-a", MAILBOX, "refresh-a")
    await add_service(pool, "svc-b", "other@noji.example", "refresh-b")
    messages = [parse_message(to_gmail(new_message(subject=f"Refund {n}"),
                                       message_id=f"18c1{n:012x}", thread_id=f"18c0{n % 2:012x}",
                                       label_ids=("INBOX", f"Label_{n}")).resource, MAILBOX)
                for n in range(3)]
    run_a, run_b = uuid.uuid4(), uuid.uuid4()
    async with pool.acquire() as conn, conn.transaction():
        first = await store.store_messages(conn, "svc-a", MAILBOX, [*messages, messages[0]],
                                           run_a)
    assert (first.written, first.conflicts, len(first.threads)) == (3, 0, 2)
    rows = await pool.fetch("SELECT gmail_message_id, label_ids, parse_problems, synced_run_id "
                            "FROM emails e JOIN delightbridge_sync.messages m "
                            "ON m.email_id = e.id ORDER BY gmail_message_id")
    assert [(r["gmail_message_id"], r["label_ids"], r["synced_run_id"]) for r in rows] == [
        (f"18c1{n:012x}", ["INBOX", f"Label_{n}"], run_a) for n in range(3)]
    # The same Gmail ids for another service: left alone, counted as conflicts.
    async with pool.acquire() as conn, conn.transaction():
        other = await store.store_messages(conn, "svc-b", "other@noji.example", messages[:2],
                                           run_b)
    assert (other.written, other.conflicts) == (0, 2)
    assert await pool.fetchval(RUN_COUNT, run_a) == 3
    # The owner rewrites them (a later run): written, not conflicts.
    async with pool.acquire() as conn, conn.transaction():
        again = await store.store_messages(conn, "svc-a", MAILBOX, messages[1:], run_b)
    assert (again.written, again.conflicts) == (2, 0)
    assert await pool.fetchval(RUN_COUNT, run_b) == 2
