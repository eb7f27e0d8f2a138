"""The full sync's plan and memory bound, alone: which call fetches each message,
and when a batch waits."""

from __future__ import annotations

import asyncio

from delightbridge.sync.full import Fetch, Held, Plan


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
