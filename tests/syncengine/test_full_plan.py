"""How a full sync fetches: by thread where that is cheaper, every message stored once."""

from __future__ import annotations

import asyncio

import pytest

from delightbridge.core.errors import GmailError
from delightbridge.sync import full
from tests.syncengine.conftest import SyncSetup
from tests.syncengine.mirror import assert_mirror


async def test_full_sync_over_pages_fetches_by_thread_and_stores_each_message_once(
    setup: SyncSetup
) -> None:
    setup.sim.seed(setup.address, messages=1600, threads=500, seed=11)  # 4 pages of 500
    result = await setup.engine.sync(setup.account_id, mode="full", trigger="cli")
    stored = await assert_mirror(setup.pool, setup.account_id, setup.sim.snapshot(setup.address))
    assert result.messages_processed == stored
    counters = setup.sim.counters
    threads_get = counters.calls("users.threads.get")
    messages_get = counters.calls("users.messages.get")
    assert threads_get > 0
    assert messages_get > 0
    assert threads_get <= 500  # each thread at most once
    # Fewer units than one messages.get (5 units) a message, the former plan.
    assert 10 * threads_get + 5 * messages_get < 5 * 1600


@pytest.mark.parametrize("method", ["users.messages.list", "users.threads.get"])
async def test_a_call_that_fails_fails_the_full_sync_and_leaves_nothing_running(
    setup: SyncSetup, method: str
) -> None:
    setup.sim.seed(setup.address, messages=700, threads=200, seed=12)  # 2 pages
    setup.sim.faults.fail_next(method, code=400)  # no retry can fix it
    with pytest.raises(GmailError, match="400"):
        await asyncio.wait_for(
            setup.engine.sync(setup.account_id, mode="full", trigger="cli"), timeout=60)
    tasks = {t for t in asyncio.all_tasks() if t is not asyncio.current_task()}
    assert not [t for t in tasks if "full.py" in repr(t.get_coro())]


@pytest.mark.parametrize("limit", [1, 40])
async def test_full_sync_under_a_tiny_memory_bound_still_mirrors_the_mailbox(
    setup: SyncSetup, monkeypatch: pytest.MonkeyPatch, limit: int
) -> None:
    # Long conversations spread over 3 pages: with the bound at 1 message, one batch at a
    # time is in flight or waits to be stored; answers far larger than it still go.
    monkeypatch.setattr(full, "HELD_MESSAGES", limit)
    setup.sim.seed(setup.address, messages=1200, threads=40, seed=13)
    result = await asyncio.wait_for(
        setup.engine.sync(setup.account_id, mode="full", trigger="cli"), timeout=120)
    stored = await assert_mirror(setup.pool, setup.account_id, setup.sim.snapshot(setup.address))
    assert result.messages_processed == stored
    assert setup.sim.counters.calls("users.threads.get") <= 40
