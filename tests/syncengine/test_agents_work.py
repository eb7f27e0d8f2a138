"""The agents' work is never destroyed, and what the web app wrote is not second-guessed.

* A thread with a draft or a send in flight is never deleted by a sync, whatever Gmail
  did to its messages: it stays, archived, with its draft.
* A row the web app wrote before the service took over (no sync metadata) never has its
  thread's status or read state recomputed from labels the service does not know.
"""

from __future__ import annotations

import uuid

import pytest

from delightbridge.sync import store
from delightbridge.sync.parse import parse_message
from tests.syncengine.conftest import SyncSetup
from tests.syncengine.mirror import assert_mirror


async def _thread_of(setup: SyncSetup, gmail_thread_id: str) -> str:
    return f"thread-{setup.account_id}-{gmail_thread_id}"


@pytest.mark.parametrize("how", ["delete", "trash", "spam"])
@pytest.mark.parametrize("work", ["draft", "send_outbox"])
async def test_a_thread_holding_the_agents_work_survives_gmail_removing_it(
    setup: SyncSetup, how: str, work: str
) -> None:
    sim = setup.sim
    sim.seed(setup.address, messages=6, threads=2, seed=11)
    await setup.engine.sync(setup.account_id, mode="full", trigger="cli")
    snapshot = sim.snapshot(setup.address)
    gmail_thread = snapshot.messages[0].thread_id
    thread = await _thread_of(setup, gmail_thread)
    if work == "draft":
        await setup.pool.execute(
            "INSERT INTO drafts (id, thread_id, content, status) "
            "VALUES ('draft-' || $1, $1, '<p>Our answer</p>', 'ready')", thread)
    else:
        await setup.pool.execute(
            "INSERT INTO send_outbox (idempotency_key, thread_id) VALUES ('key-1', $1)", thread)

    for message in [m for m in snapshot.messages if m.thread_id == gmail_thread]:
        if how == "delete":
            sim.delete(setup.address, message.id)
        elif how == "trash":
            sim.trash(setup.address, message.id)
        else:
            sim.modify_labels(setup.address, message.id, add=["SPAM"], remove=["INBOX"])
    await setup.engine.sync(setup.account_id, trigger="notification")
    await _assert_kept(setup, thread, work)

    # A full sync's reconciliation keeps it too.
    await setup.engine.sync(setup.account_id, mode="full", trigger="cli")
    await _assert_kept(setup, thread, work)
    await assert_mirror(setup.pool, setup.account_id, sim.snapshot(setup.address))

    if how == "delete":
        return  # Gmail has no such conversation any more
    # New mail in the same conversation brings it back to the inbox.
    sim.deliver(setup.address, thread_id=gmail_thread, subject="Any news?")
    await setup.engine.sync(setup.account_id, trigger="notification")
    status = await setup.pool.fetchval(
        "SELECT status::text FROM email_threads WHERE id = $1", thread)
    assert status == "inbox"


async def _assert_kept(setup: SyncSetup, thread: str, work: str) -> None:
    row = await setup.pool.fetchrow(
        "SELECT t.status::text AS status, "
        "(SELECT count(*) FROM emails e WHERE e.thread_id = t.id) AS messages "
        "FROM email_threads t WHERE t.id = $1", thread)
    assert row is not None, "the thread holding the agents' work was deleted"
    assert (row["status"], row["messages"]) == ("archived", 0)
    table = "drafts" if work == "draft" else "send_outbox"
    assert await setup.pool.fetchval(
        f"SELECT count(*) FROM {table} WHERE thread_id = $1", thread) == 1


async def test_a_thread_without_the_agents_work_is_still_removed(setup: SyncSetup) -> None:
    sim = setup.sim
    sim.seed(setup.address, messages=4, threads=2, seed=12)
    await setup.engine.sync(setup.account_id, mode="full", trigger="cli")
    snapshot = sim.snapshot(setup.address)
    gmail_thread = snapshot.messages[0].thread_id
    for message in [m for m in snapshot.messages if m.thread_id == gmail_thread]:
        sim.delete(setup.address, message.id)
    await setup.engine.sync(setup.account_id, trigger="notification")
    assert await setup.pool.fetchval(
        "SELECT count(*) FROM email_threads WHERE id = $1",
        await _thread_of(setup, gmail_thread)) == 0
    await assert_mirror(setup.pool, setup.account_id, sim.snapshot(setup.address))


async def _web_app_rows(setup: SyncSetup, gmail_thread: str, cursor: int) -> str:
    """What the web app's own sync left: an inbox, unread thread whose newest message
    (2099, not in Gmail) has no sync metadata, and its cursor."""
    thread = await _thread_of(setup, gmail_thread)
    await setup.pool.execute(
        "INSERT INTO email_threads (id, account_id, gmail_thread_id, subject, customer_email, "
        "customer_name, status, is_read, last_message_at) VALUES ($1, $2, $3, 'Refund please', "
        "'kim@customer.example', 'Kim', 'inbox', false, '2099-01-01')",
        thread, setup.account_id, gmail_thread)
    await setup.pool.execute(
        "INSERT INTO emails (id, thread_id, gmail_message_id, from_email, from_name, to_email, "
        "body, direction, sent_at) VALUES ($1, $2, 'web-app-only', 'kim@customer.example', "
        "'Kim', $3, '<p>Hello?</p>', 'inbound', '2099-01-01')",
        f"email-{setup.account_id}-web-app-only", thread, setup.address)
    await setup.pool.execute("UPDATE gmail_accounts SET last_history_id = $1 WHERE id = $2",
                             str(cursor), setup.account_id)
    return thread


async def _thread_state(setup: SyncSetup, thread: str) -> dict[str, object]:
    row = await setup.pool.fetchrow(
        "SELECT status::text AS status, is_read, subject FROM email_threads WHERE id = $1",
        thread)
    return dict(row)


async def test_a_web_app_row_does_not_flip_its_threads_status(setup: SyncSetup) -> None:
    """Storing an older message (archived, read) into a thread whose newest message the web
    app wrote: status and read state stay, the newest message's labels being unknown."""
    sim = setup.sim
    older = sim.deliver(setup.address, subject="Refund please")
    sim.mark_read(setup.address, older)
    sim.archive(setup.address, older)
    message = sim.snapshot(setup.address).messages[0]
    thread = await _web_app_rows(setup, message.thread_id, sim.history_id(setup.address))
    client = setup.engine.client_for(await setup.engine.service(setup.account_id))
    resource = await client.execute(client.calls.get_message(older))
    parsed = parse_message(resource, setup.address)
    async with setup.pool.acquire() as conn, conn.transaction():
        written = await store.store_messages(conn, setup.account_id, setup.address, [parsed],
                                             uuid.uuid4())
    assert written.written == 1
    assert await _thread_state(setup, thread) == {
        "status": "inbox", "is_read": False, "subject": "Refund please"}


async def test_taking_over_from_the_web_app_reconciles_its_rows_first(setup: SyncSetup) -> None:
    """The first sync of a service whose rows the web app wrote is a full one, so that no
    thread keeps a status Gmail no longer has; after it, incremental syncs as usual."""
    sim = setup.sim
    cursor = sim.history_id(setup.address)
    older = sim.deliver(setup.address, subject="Refund please")
    sim.mark_read(setup.address, older)
    sim.archive(setup.address, older)
    thread = await _web_app_rows(setup, sim.snapshot(setup.address).messages[0].thread_id,
                                 cursor)

    first = await setup.engine.sync(setup.account_id, trigger="notification")
    assert (first.mode, first.fell_back_to_full) == ("full", True)
    await assert_mirror(setup.pool, setup.account_id, sim.snapshot(setup.address))
    assert await _thread_state(setup, thread) == {
        "status": "archived", "is_read": True, "subject": "Refund please"}

    sim.deliver(setup.address, subject="Next")
    second = await setup.engine.sync(setup.account_id, trigger="notification")
    assert (second.mode, second.fell_back_to_full) == ("incremental", False)
