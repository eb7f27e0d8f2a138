"""The scheduler with a scripted sync function (a unit test: the engine is not involved).

``FakeSyncs`` lets a test hold each sync until it says so, and records what ran when,
so coalescing, the per-mailbox and global bounds, fairness and shutdown are checked
step by step, synchronised on events rather than sleeps.
"""

from __future__ import annotations

import asyncio
import uuid
from collections import defaultdict
from dataclasses import dataclass, field

import pytest

from delightbridge.consumer.scheduler import Scheduler, ShuttingDown
from delightbridge.core.errors import GmailUnavailable
from delightbridge.sync.runs import SyncResult, Trigger


def result(service_id: str, history_id: int | None) -> SyncResult:
    return SyncResult(run_id=uuid.uuid4(), service_id=service_id, mode="incremental",
                      requested_mode="incremental", fell_back_to_full=False,
                      threads_processed=0, messages_processed=0, messages_deleted=0,
                      start_history_id=None, history_id=history_id, duration=0.0)


@dataclass
class Call:
    service_id: str
    trigger: Trigger
    release: asyncio.Future[int | None] = field(default_factory=asyncio.Future)


class FakeSyncs:
    """A sync function whose calls wait for ``release(service, cursor)``."""

    def __init__(self) -> None:
        self.calls: list[Call] = []
        self.running: dict[str, int] = defaultdict(int)
        self.max_running = 0
        self.max_per_mailbox = 0
        self._changed = asyncio.Event()

    async def __call__(self, service_id: str, trigger: Trigger) -> SyncResult:
        call = Call(service_id, trigger)
        self.calls.append(call)
        self.running[service_id] += 1
        self.max_running = max(self.max_running, sum(self.running.values()))
        self.max_per_mailbox = max(self.max_per_mailbox, self.running[service_id])
        self._changed.set()
        try:
            cursor = await call.release
        finally:
            self.running[service_id] -= 1
        return result(service_id, cursor)

    async def started(self, count: int) -> list[Call]:
        """Wait until ``count`` calls have started in total."""
        async with asyncio.timeout(5):
            while len(self.calls) < count:
                self._changed.clear()
                await self._changed.wait()
        return self.calls

    def active(self) -> list[Call]:
        return [c for c in self.calls if not c.release.done()]


@pytest.fixture
async def fake() -> FakeSyncs:
    return FakeSyncs()


async def settle() -> None:
    """Let every ready callback run (futures resolving, workers picking up work)."""
    for _ in range(10):
        await asyncio.sleep(0)


async def test_notifications_during_a_sync_fold_into_one_follow_up(fake: FakeSyncs) -> None:
    scheduler = Scheduler(fake, concurrency=4)
    scheduler.start()
    first = scheduler.submit("a", history_id=10)
    (running,) = await fake.started(1)
    folded = [scheduler.submit("a", history_id=h) for h in (20, 30, 25, 40)]
    await settle()
    assert len(fake.calls) == 1  # at most one sync per mailbox
    running.release.set_result(15)  # the first sync reached 15: not far enough for them
    assert (await first).history_id == 15
    follow_up = (await fake.started(2))[1]
    assert follow_up.service_id == "a"
    await settle()
    assert not any(f.done() for f in folded)  # acked only when the follow-up commits
    follow_up.release.set_result(40)
    results = await asyncio.gather(*folded)
    assert {r.run_id for r in results} == {results[0].run_id}  # one sync for all four
    assert len(fake.calls) == 2
    assert fake.max_per_mailbox == 1
    await scheduler.close(1)


async def test_a_running_sync_that_reaches_the_history_id_covers_later_arrivals(
        fake: FakeSyncs) -> None:
    scheduler = Scheduler(fake, concurrency=2)
    scheduler.start()
    first = scheduler.submit("a", history_id=10)
    (running,) = await fake.started(1)
    covered = scheduler.submit("a", history_id=50)
    not_covered = scheduler.submit("a", history_id=70)
    running.release.set_result(60)
    first_result = await first
    await settle()
    assert covered.done()  # no follow-up needed for 50: resolved by the first sync
    assert covered.result().run_id == first_result.run_id
    assert not not_covered.done()
    follow_up = (await fake.started(2))[1]
    follow_up.release.set_result(70)
    assert (await not_covered).history_id == 70
    await scheduler.close(1)


async def test_sweep_submissions_are_never_covered_by_a_sync_already_running(
        fake: FakeSyncs) -> None:
    scheduler = Scheduler(fake, concurrency=1)
    scheduler.start()
    scheduler.submit("a", history_id=1)
    (running,) = await fake.started(1)
    swept = scheduler.submit("a", trigger="poll")
    running.release.set_result(10**9)
    follow_up = (await fake.started(2))[1]
    assert follow_up.trigger == "poll"
    follow_up.release.set_result(10**9)
    assert (await swept).history_id == 10**9
    await scheduler.close(1)


async def test_a_failed_sync_fails_its_waiters_and_the_follow_up_still_runs() -> None:
    attempts: list[str] = []

    async def flaky(service_id: str, trigger: Trigger) -> SyncResult:
        attempts.append(service_id)
        if len(attempts) == 1:
            raise GmailUnavailable("Gmail kept failing", status=503, retry_after=2.0)
        return result(service_id, 99)

    scheduler = Scheduler(flaky, concurrency=1)
    scheduler.start()
    failing = scheduler.submit("a", history_id=5)
    with pytest.raises(GmailUnavailable):
        await failing
    assert (await scheduler.submit("a", history_id=6)).history_id == 99
    await scheduler.close(1)


async def test_concurrency_is_bounded_across_mailboxes(fake: FakeSyncs) -> None:
    scheduler = Scheduler(fake, concurrency=3)
    scheduler.start()
    futures = [scheduler.submit(f"m{i}", history_id=1) for i in range(10)]
    await fake.started(3)
    await settle()
    assert len(fake.calls) == 3
    assert scheduler.running == 3
    assert scheduler.waiting == 7
    while len(fake.calls) < 10 or fake.active():
        for call in fake.active():
            call.release.set_result(2)
        await settle()
    await asyncio.gather(*futures)
    assert fake.max_running == 3
    await scheduler.close(1)


async def test_a_busy_mailbox_does_not_starve_the_others(fake: FakeSyncs) -> None:
    """One slot; mailbox "busy" gets a new notification during each of its syncs. The
    others still get their turn at once: after one more "busy" sync at most."""
    scheduler = Scheduler(fake, concurrency=1)
    scheduler.start()
    scheduler.submit("busy", history_id=1)
    await fake.started(1)
    quiet = [scheduler.submit(name, history_id=1) for name in ("q1", "q2", "q3")]
    for step in range(12):
        (call,) = fake.active()
        if call.service_id == "busy":
            scheduler.submit("busy", history_id=100 + step)  # always more work
        call.release.set_result(None)
        await fake.started(step + 2)
    order = [c.service_id for c in fake.calls]
    assert order[:4] == ["busy", "q1", "q2", "q3"]  # round robin, not busy, busy, busy...
    assert all(f.done() for f in quiet)
    assert order.count("busy") >= 6  # and the busy mailbox keeps its turn in every round
    for call in fake.active():
        call.release.set_result(None)
    await scheduler.close(1)


async def test_close_rejects_waiting_work_and_lets_running_syncs_finish(fake: FakeSyncs
                                                                       ) -> None:
    scheduler = Scheduler(fake, concurrency=1)
    scheduler.start()
    running = scheduler.submit("a", history_id=1)
    (call,) = await fake.started(1)
    queued = scheduler.submit("b", history_id=1)  # waits for the only slot
    follow_up = scheduler.submit("a", history_id=2)  # waits for a's running sync
    closing = asyncio.create_task(scheduler.close(5))
    await settle()
    with pytest.raises(ShuttingDown):
        await queued
    with pytest.raises(ShuttingDown):
        await follow_up
    with pytest.raises(ShuttingDown):
        scheduler.submit("c", history_id=1)
    assert not closing.done()  # the running sync has its grace period
    call.release.set_result(7)
    assert (await running).history_id == 7
    assert await closing == 0
    assert [c.service_id for c in fake.calls] == ["a"]


async def test_close_cancels_syncs_that_outlive_the_grace_period(fake: FakeSyncs) -> None:
    scheduler = Scheduler(fake, concurrency=2)
    scheduler.start()
    stuck = scheduler.submit("a", history_id=1)
    (call,) = await fake.started(1)
    assert await scheduler.close(0.05) == 1
    with pytest.raises(ShuttingDown):
        await stuck
    assert call.release.cancelled()  # the sync itself was cancelled, not abandoned


async def test_force_cuts_the_grace_period_short(fake: FakeSyncs) -> None:
    scheduler = Scheduler(fake, concurrency=1)
    scheduler.start()
    stuck = scheduler.submit("a", history_id=1)
    await fake.started(1)
    force = asyncio.Event()
    closing = asyncio.create_task(scheduler.close(3600, force=force))
    await settle()
    assert not closing.done()
    force.set()
    async with asyncio.timeout(5):
        assert await closing == 1
    with pytest.raises(ShuttingDown):
        await stuck


async def test_an_abandoned_waiter_does_not_disturb_the_others(fake: FakeSyncs) -> None:
    scheduler = Scheduler(fake, concurrency=1)
    scheduler.start()
    first = scheduler.submit("a", history_id=1)
    (call,) = await fake.started(1)
    gone = scheduler.submit("a", history_id=2)
    kept = scheduler.submit("a", history_id=3)
    gone.cancel()  # e.g. its push request was closed by the client
    call.release.set_result(1)
    await first
    follow_up = (await fake.started(2))[1]
    follow_up.release.set_result(3)
    assert (await kept).history_id == 3
    await scheduler.close(1)
