"""Per-mailbox coalescing and bounded, fair concurrency across mailboxes.

Callers :meth:`Scheduler.submit` a mailbox (service id) with the notification's
history id (None from the sweep) and await the returned future, which resolves with
the :class:`SyncResult` of a sync that covers them, or fails with its error.

* At most one sync per mailbox at a time. Submissions made while a mailbox's sync
  runs wait for one follow-up sync, shared by all of them; the follow-up is skipped
  for those whose history id the running sync's new cursor already reached.
* At most ``concurrency`` syncs at once. Mailboxes wait in one FIFO queue and a
  mailbox goes back to the end of it after each sync, so a busy mailbox gets one
  turn per round and never starves the others.
* :meth:`close` stops new work: submissions and not-yet-started syncs fail with
  :class:`ShuttingDown`; running syncs get ``grace`` seconds, then are cancelled.

The sync function is injected, so this is tested with a fake in unit tests.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from delightbridge.sync.runs import SyncResult, Trigger

log = logging.getLogger(__name__)

SyncFn = Callable[[str, Trigger], Awaitable[SyncResult]]


class ShuttingDown(Exception):
    """The worker is stopping: this sync did not start, or was stopped before it committed."""


@dataclass(eq=False, slots=True)
class _Waiter:
    history_id: int | None
    trigger: Trigger
    future: asyncio.Future[SyncResult]


@dataclass(eq=False, slots=True)
class _Mailbox:
    pending: list[_Waiter] = field(default_factory=list)
    running: bool = False
    queued: bool = False


class Scheduler:
    def __init__(self, run: SyncFn, *, concurrency: int) -> None:
        if concurrency < 1:
            raise ValueError("concurrency must be at least 1")
        self._run = run
        self._concurrency = concurrency
        self._boxes: dict[str, _Mailbox] = {}
        self._ready: asyncio.Queue[str | None] = asyncio.Queue()
        self._workers: list[asyncio.Task[None]] = []
        self._closed = False
        self._running = 0
        self.syncs_started = 0

    # ------------------------------------------------------------------ state

    @property
    def closed(self) -> bool:
        return self._closed

    @property
    def running(self) -> int:
        """Syncs running now."""
        return self._running

    @property
    def waiting(self) -> int:
        """Mailboxes with submissions waiting for a sync that has not started."""
        return sum(1 for box in self._boxes.values() if _live(box.pending))

    # ------------------------------------------------------------------ lifecycle

    def start(self) -> list[asyncio.Task[None]]:
        """Start the workers; their tasks are returned for the caller to watch."""
        if self._workers:
            raise RuntimeError("the scheduler is already started")
        self._workers = [
            asyncio.create_task(self._work(), name=f"consumer-sync-{i}")
            for i in range(self._concurrency)
        ]
        return list(self._workers)

    def submit(self, service_id: str, *, history_id: int | None = None,
               trigger: Trigger = "notification") -> asyncio.Future[SyncResult]:
        """A future resolved by the next sync of ``service_id`` that covers this call."""
        if self._closed:
            raise ShuttingDown("the consumer is stopping")
        future: asyncio.Future[SyncResult] = asyncio.get_running_loop().create_future()
        box = self._boxes.setdefault(service_id, _Mailbox())
        box.pending.append(_Waiter(history_id, trigger, future))
        if not box.running and not box.queued:
            box.queued = True
            self._ready.put_nowait(service_id)
        return future

    async def close(self, grace: float, *, force: asyncio.Event | None = None) -> int:
        """Stop: reject waiting work, give running syncs ``grace`` seconds (less if
        ``force`` is set meanwhile), then cancel them. Returns how many were cancelled."""
        if not self._closed:
            self._closed = True
            for box in self._boxes.values():
                _fail(box.pending, ShuttingDown("the consumer stopped before this sync started"))
                box.pending = []
            for _ in self._workers:
                self._ready.put_nowait(None)
        unfinished = await _wait_until(self._workers, grace, force)
        cancelled = self._running
        for task in unfinished:
            task.cancel()
        await asyncio.gather(*self._workers, return_exceptions=True)
        return cancelled

    # ------------------------------------------------------------------ workers

    async def _work(self) -> None:
        while True:
            service_id = await self._ready.get()
            if service_id is None:
                return
            box = self._boxes[service_id]
            box.queued = False
            waiters = _live(box.pending)
            box.pending = []
            if not waiters:
                self._settle(service_id, box)
                continue
            await self._sync(service_id, box, waiters)

    async def _sync(self, service_id: str, box: _Mailbox, waiters: list[_Waiter]) -> None:
        box.running = True
        self._running += 1
        self.syncs_started += 1
        trigger: Trigger = ("notification" if any(w.trigger == "notification" for w in waiters)
                            else waiters[0].trigger)
        started = time.monotonic()
        try:
            result = await self._run(service_id, trigger)
        except asyncio.CancelledError:
            _fail(waiters, ShuttingDown("the consumer stopped this sync before it committed"))
            raise
        except Exception as exc:
            _fail(waiters, exc)
        else:
            _resolve(waiters, result)
            # Submissions made meanwhile whose change the new cursor already covers.
            if result.history_id is not None:
                covered = [w for w in box.pending
                           if w.history_id is not None and w.history_id <= result.history_id]
                if covered:
                    box.pending = [w for w in box.pending if w not in covered]
                    _resolve(covered, result)
                    log.debug("coalesced into a sync that covered them", extra={
                        "action": "consumer.covered", "service": service_id,
                        "notifications": len(covered), "history_id": result.history_id})
        finally:
            self._running -= 1
            box.running = False
            log.debug("mailbox turn ended", extra={
                "action": "consumer.turn", "service": service_id,
                "seconds": round(time.monotonic() - started, 3)})
            self._settle(service_id, box)

    def _settle(self, service_id: str, box: _Mailbox) -> None:
        """After a turn: back to the end of the queue if more is waiting, else forget."""
        box.pending = _live(box.pending)
        if box.pending and not self._closed:
            box.queued = True
            self._ready.put_nowait(service_id)
        elif not box.running and not box.queued:
            _fail(box.pending, ShuttingDown("the consumer stopped before this sync started"))
            self._boxes.pop(service_id, None)


def _live(waiters: Iterable[_Waiter]) -> list[_Waiter]:
    return [w for w in waiters if not w.future.done()]


def _resolve(waiters: Iterable[_Waiter], result: SyncResult) -> None:
    for w in waiters:
        if not w.future.done():
            w.future.set_result(result)


def _fail(waiters: Iterable[_Waiter], exc: BaseException) -> None:
    for w in waiters:
        if not w.future.done():
            w.future.set_exception(exc)


async def _wait_until(tasks: list[asyncio.Task[None]], grace: float,
                      force: asyncio.Event | None) -> set[asyncio.Task[None]]:
    """Wait for ``tasks`` up to ``grace`` seconds or until ``force`` is set; the unfinished."""
    pending = {t for t in tasks if not t.done()}
    if pending:
        watch: list[asyncio.Future[Any]] = [asyncio.ensure_future(asyncio.wait(pending))]
        if force is not None:
            watch.append(asyncio.ensure_future(force.wait()))
        try:
            await asyncio.wait(watch, timeout=grace, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for helper in watch:
                helper.cancel()
            await asyncio.gather(*watch, return_exceptions=True)
    return {t for t in tasks if not t.done()}
