"""How a full sync fetches: by thread where that is cheaper, every message stored once."""

from __future__ import annotations

import asyncio

import pytest

from delightbridge.errors import GmailError
from syncengine import full
from syncengine.full import Fetch, Held, Plan
from tests.syncengine.conftest import SyncSetup
from tests.syncengine.mirror import assert_mirror


def _thread(thread_id: str, *ids: str) -> dict[str, object]:
    return {"id": thread_id, "messages": [{"id": i, "threadId": thread_id} for i in ids]}


def test_plan_fetches_threads_once_and_never_stores_a_message_twice() -> None:
    plan = Plan()
    # Page 1: A twice (fetched whole), B once (alone), C twice but gone, D twice, one gone.
    first = plan.split([("a1", "A"), ("b1", "B"), ("a2", "A"), ("c1", "C"), ("c2", "C"),
                        ("d1", "D"), ("d2", "D")])
    assert first == [Fetch("A", ("a1", "a2"), True), Fetch("C", ("c1", "c2"), True),
                     Fetch("D", ("d1", "d2"), True), Fetch("b1", ("b1",), False)]
    # Page 2 is planned before page 1 is answered: A is fetched already; B has two
    # messages now: fetched whole, but b1 (fetched alone on page 1) is not stored again.
    second = plan.split([("a3", "A"), ("b2", "B"), ("b3", "B"), ("e1", "E")])
    assert second == [Fetch("B", ("b2", "b3"), True), Fetch("e1", ("e1",), False)]
    page = plan.resources(first, [_thread("A", "a0", "a1", "a2", "a3"), None,
                                  _thread("D", "d1"), {"id": "b1"}])
    # A's messages on later pages (a0, a3) come with it; C and d2 are gone (None).
    assert set(page) == {"a0", "a1", "a2", "a3", "b1", "c1", "c2", "d1", "d2"}
    assert [m for m, r in page.items() if r is None] == ["c1", "c2", "d2"]
    page = plan.resources(second, [_thread("B", "b1", "b2", "b3"), None])
    assert page == {"e1": None, "b2": {"id": "b2", "threadId": "B"},
                    "b3": {"id": "b3", "threadId": "B"}}


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


async def test_held_holds_a_batch_back_while_at_the_limit_until_messages_are_stored() -> None:
    held = Held(10, 1_000)
    await held.reserve(4)
    await held.reserve(30)  # below the limit when asked: a batch larger than it still goes
    waiting = asyncio.create_task(held.reserve(5))
    await asyncio.sleep(0)  # let it run up to its wait (no event exists for "now waiting")
    assert not waiting.done()
    held.release(20, 0)  # 14 left: still at or above the limit
    await asyncio.sleep(0)
    assert not waiting.done()
    held.release(10, 0)
    await asyncio.wait_for(waiting, timeout=5)
    assert (held.count, held.peak) == (9, 34)
    # Answers weighing the byte limit hold the next batch back too.
    held.add(0, 1_000)
    waiting = asyncio.create_task(held.reserve(1))
    await asyncio.sleep(0)
    assert not waiting.done()
    held.release(0, 1)
    await asyncio.wait_for(waiting, timeout=5)
    assert (held.count, held.bytes, held.peak_bytes) == (10, 999, 1_000)


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
