"""Full and incremental sync end to end: the Gmail simulator and a real PostgreSQL.

Nothing of the engine is mocked; the simulator is the only stand-in.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

import asyncpg
import pytest
from gmailsim.calls import ApiRequest, ApiResponse

from delightbridge.core.errors import ServiceNotConnected, SyncInProgress
from delightbridge.sync.lock import service_lock
from tests.dbutil import service_state
from tests.syncengine.conftest import SyncSetup
from tests.syncengine.mirror import assert_mirror, mirror_digest


async def _cursor(pool: asyncpg.Pool, account_id: str) -> int:
    return int(await pool.fetchval(
        "SELECT last_history_id FROM gmail_accounts WHERE id = $1", account_id))


async def test_full_sync_of_2000_messages_equals_the_mailbox(setup: SyncSetup) -> None:
    setup.sim.seed(setup.address, messages=2000, threads=650, seed=7)
    before = setup.sim.history_id(setup.address)
    result = await setup.engine.sync(setup.account_id, mode="full", trigger="cli")
    snapshot = setup.sim.snapshot(setup.address)
    stored = await assert_mirror(setup.pool, setup.account_id, snapshot)
    assert stored > 1800  # seeding puts a few in spam/trash/drafts; no cap of any kind
    assert result.mode == "full"
    assert not result.fell_back_to_full
    assert result.messages_processed == stored
    assert result.threads_processed == len({m.thread_id for m in snapshot.messages
                                           if not {"SPAM", "TRASH", "DRAFT"} & set(m.label_ids)})
    # The cursor is the profile's historyId read before listing.
    assert await _cursor(setup.pool, setup.account_id) == before == result.history_id
    run = await setup.pool.fetchrow("SELECT * FROM delightbridge_sync.runs WHERE id = $1",
                                    result.run_id)
    assert (run["status"], run["mode"], run["trigger"]) == ("succeeded", "full", "cli")
    assert run["messages_processed"] == stored


async def test_first_incremental_without_cursor_is_a_full_sync(setup: SyncSetup) -> None:
    setup.sim.seed(setup.address, messages=40, threads=12, seed=1)
    result = await setup.engine.sync(setup.account_id, trigger="api")
    assert (result.mode, result.requested_mode, result.fell_back_to_full) == (
        "full", "incremental", True)
    await assert_mirror(setup.pool, setup.account_id, setup.sim.snapshot(setup.address))


def _mutations(setup: SyncSetup) -> dict[str, Any]:
    """Apply one mutation of every kind; return what was touched."""
    sim, address = setup.sim, setup.address
    snapshot = sim.snapshot(address)
    inbox = [m for m in snapshot.messages if "INBOX" in m.label_ids]
    unread = [m for m in inbox if "UNREAD" in m.label_ids]
    new_thread = sim.deliver(address)
    into_thread = sim.deliver(address, thread_id=inbox[0].thread_id)
    reply = sim.reply(address, inbox[1].thread_id)
    sim.mark_read(address, unread[0].id)
    sim.archive(address, inbox[2].id)
    sim.modify_labels(address, inbox[3].id, add=["STARRED"])
    sim.trash(address, inbox[4].id)
    sim.delete(address, inbox[5].id)
    sim.trash(address, inbox[6].id)
    sim.untrash(address, inbox[6].id)
    gone_quickly = sim.deliver(address)
    sim.delete(address, gone_quickly)
    return {"new": [new_thread, into_thread, reply], "trashed": inbox[4].id,
            "deleted": inbox[5].id}


async def test_every_mutation_then_incremental_equals_the_mailbox(setup: SyncSetup) -> None:
    setup.sim.seed(setup.address, messages=120, threads=30, seed=3)
    await setup.engine.sync(setup.account_id, mode="full", trigger="cli")
    touched = _mutations(setup)
    result = await setup.engine.sync(setup.account_id, trigger="notification")
    assert result.mode == "incremental"
    assert not result.fell_back_to_full
    snapshot = setup.sim.snapshot(setup.address)
    await assert_mirror(setup.pool, setup.account_id, snapshot)
    assert result.history_id == snapshot.history_id
    assert await _cursor(setup.pool, setup.account_id) == snapshot.history_id
    stored = {r["gmail_message_id"] for r in await setup.pool.fetch("SELECT gmail_message_id "
                                                                     "FROM emails")}
    assert set(touched["new"]) <= stored
    assert touched["trashed"] not in stored
    assert touched["deleted"] not in stored

    # A second run finds nothing to do and changes no row.
    digest = await mirror_digest(setup.pool, setup.account_id)
    again = await setup.engine.sync(setup.account_id, trigger="poll")
    assert (again.messages_processed, again.threads_processed) == (0, 0)
    assert await mirror_digest(setup.pool, setup.account_id) == digest


async def test_incremental_pages_through_long_history(setup: SyncSetup) -> None:
    setup.sim.seed(setup.address, messages=30, threads=10, seed=4)
    await setup.engine.sync(setup.account_id, mode="full", trigger="cli")
    for _ in range(1100):  # more than two history pages of 500
        setup.sim.deliver(setup.address)
    result = await setup.engine.sync(setup.account_id, trigger="poll")
    assert result.mode == "incremental"
    await assert_mirror(setup.pool, setup.account_id, setup.sim.snapshot(setup.address))
    assert setup.sim.counters.calls("users.history.list") >= 3


async def test_history_404_falls_back_to_a_full_sync_that_stores_a_fresh_cursor(
    setup: SyncSetup
) -> None:
    setup.sim.seed(setup.address, messages=60, threads=20, seed=5)
    await setup.engine.sync(setup.account_id, mode="full", trigger="cli")
    _mutations(setup)
    setup.sim.expire_history(setup.address)
    result = await setup.engine.sync(setup.account_id, trigger="notification")
    assert (result.mode, result.fell_back_to_full) == ("full", True)
    snapshot = setup.sim.snapshot(setup.address)
    await assert_mirror(setup.pool, setup.account_id, snapshot)
    # No endless loop: the next incremental works from the fresh cursor.
    setup.sim.deliver(setup.address)
    nxt = await setup.engine.sync(setup.account_id, trigger="notification")
    assert (nxt.mode, nxt.fell_back_to_full, nxt.messages_processed) == ("incremental", False, 1)
    run = await setup.pool.fetchrow(
        "SELECT mode, fell_back_to_full FROM delightbridge_sync.runs WHERE id = $1",
        result.run_id)
    assert dict(run) == {"mode": "full", "fell_back_to_full": True}


async def test_message_deleted_while_a_full_sync_fetches_is_skipped(setup: SyncSetup) -> None:
    setup.sim.seed(setup.address, messages=80, threads=20, seed=6)
    api = setup.gmail.server.api
    original = api.handle
    deleted: list[str] = []

    async def handle(request: ApiRequest) -> ApiResponse:
        response = await original(request)
        if request.method == "GET" and request.path.endswith("/messages") and not deleted:
            victim = json.loads(response.body)["messages"][3]["id"]
            setup.sim.delete(setup.address, victim)  # gone between list and get
            deleted.append(victim)
        return response

    api.handle = handle  # type: ignore[method-assign]
    result = await setup.engine.sync(setup.account_id, mode="full", trigger="cli")
    assert deleted
    assert result.mode == "full"
    await assert_mirror(setup.pool, setup.account_id, setup.sim.snapshot(setup.address))
    # The deletion also reaches the next incremental harmlessly.
    await setup.engine.sync(setup.account_id, trigger="poll")
    await assert_mirror(setup.pool, setup.account_id, setup.sim.snapshot(setup.address))


async def test_revoked_refresh_token_disconnects_the_service_and_keeps_its_data(
    setup: SyncSetup
) -> None:
    setup.sim.seed(setup.address, messages=20, threads=5, seed=8)
    await setup.engine.sync(setup.account_id, mode="full", trigger="cli")
    setup.sim.revoke_refresh_token(setup.address)
    setup.sim.expire_access_tokens(setup.address)
    setup.sim.deliver(setup.address)
    with pytest.raises(ServiceNotConnected, match="invalid_grant"):
        await setup.engine.sync(setup.account_id, trigger="notification")
    row = await service_state(setup.pool, setup.account_id)
    assert row["refresh_token"] is None
    assert row["sync_state"] == "disconnected"
    assert "invalid_grant" in row["disconnected_reason"]
    assert await setup.pool.fetchval("SELECT count(*) FROM emails") == 20 - await _hidden(setup)
    # Further syncs stop at once, without calling Gmail.
    calls = setup.sim.counters.calls("users.history.list")
    with pytest.raises(ServiceNotConnected):
        await setup.engine.sync(setup.account_id, trigger="poll")
    assert setup.sim.counters.calls("users.history.list") == calls
    run = await setup.pool.fetchrow("SELECT status, error_code FROM delightbridge_sync.runs "
                                    "ORDER BY started_at DESC LIMIT 1")
    assert dict(run) == {"status": "failed", "error_code": "oauth_refused"}


async def _hidden(setup: SyncSetup) -> int:
    return sum(1 for m in setup.sim.snapshot(setup.address).messages
               if {"SPAM", "TRASH", "DRAFT"} & set(m.label_ids))


@pytest.mark.parametrize("fault", ["unavailable", "rate_limited_429", "rate_limited_403"])
async def test_error_storms_are_retried_and_the_mirror_is_still_exact(
    setup: SyncSetup, fault: str
) -> None:
    setup.sim.seed(setup.address, messages=300, threads=90, seed=9)
    if fault == "unavailable":
        setup.sim.faults.update(unavailable_rate=0.05, error_rate=0.05)
    else:
        setup.sim.quota.update(units_per_second=400.0, exceeded_response=(
            "429" if fault == "rate_limited_429" else "403-user"))
    result = await setup.engine.sync(setup.account_id, mode="full", trigger="cli")
    setup.sim.faults.reset()
    assert setup.sim.counters.total_errors() > 0, "the storm never happened"
    await assert_mirror(setup.pool, setup.account_id, setup.sim.snapshot(setup.address))
    assert result.messages_processed > 250


async def test_two_syncs_at_once_one_refused_one_waits_and_the_cursor_never_moves_back(
    setup: SyncSetup
) -> None:
    setup.sim.seed(setup.address, messages=50, threads=10, seed=10)
    await setup.engine.sync(setup.account_id, mode="full", trigger="cli")
    async with service_lock(setup.pool, setup.account_id):
        with pytest.raises(SyncInProgress):
            await setup.engine.sync(setup.account_id, trigger="api")
    setup.sim.deliver(setup.address)
    results = await asyncio.gather(
        *(setup.engine.sync(setup.account_id, trigger="notification", wait=30)
          for _ in range(4)))
    assert sum(r.messages_processed for r in results) == 1
    cursors = [r.history_id for r in results]
    assert cursors == sorted(cursors) or len(set(cursors)) == 1
    assert await _cursor(setup.pool, setup.account_id) == setup.sim.history_id(setup.address)
    await assert_mirror(setup.pool, setup.account_id, setup.sim.snapshot(setup.address))


async def test_cursor_only_moves_forward(setup: SyncSetup) -> None:
    setup.sim.seed(setup.address, messages=10, threads=3, seed=11)
    await setup.engine.sync(setup.account_id, mode="full", trigger="cli")
    current = await _cursor(setup.pool, setup.account_id)
    # A full sync whose profile answer is older cannot move the stored cursor back.
    await setup.pool.execute("UPDATE gmail_accounts SET last_history_id = $2 WHERE id = $1",
                             setup.account_id, str(current + 10**9))
    from delightbridge.sync import store

    async with setup.pool.acquire() as conn:
        await store.advance_cursor(conn, setup.account_id, current)
        await store.advance_cursor(conn, setup.account_id, current + 10**9 + 1)
    assert await _cursor(setup.pool, setup.account_id) == current + 10**9 + 1
