"""The safety net for dropped notifications: sync every stale connected service.

Gmail does not promise to deliver every notification. Every ``interval`` seconds (and
once at start-up) the sweep asks the database for connected services whose last
successful sync is older than ``stale_after`` and submits each to the scheduler as a
``poll`` sync, so the sweep shares the per-mailbox coalescing and the concurrency
bound with notifications. It waits for those syncs before the next round.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import asyncpg

from delightbridge.consumer.metrics import ConsumerMetrics
from delightbridge.consumer.scheduler import Scheduler, ShuttingDown
from delightbridge.core.errors import DatabaseError
from delightbridge.db import services

log = logging.getLogger("consumer.sweep")


@dataclass(frozen=True, slots=True)
class SweepReport:
    stale: int
    synced: int
    failed: int


class Sweeper:
    def __init__(self, pool: asyncpg.Pool, scheduler: Scheduler, metrics: ConsumerMetrics, *,
                 interval: float, stale_after: float,
                 observers: Sequence[Callable[[SweepReport], None]] = ()) -> None:
        self.pool = pool
        self.scheduler = scheduler
        self.metrics = metrics
        self.interval = interval
        self.stale_after = stale_after
        self.observers = list(observers)  # told of every round's report

    async def run(self, stop: asyncio.Event) -> None:
        """Sweep now, then every ``interval`` seconds, until ``stop`` is set."""
        while not stop.is_set():
            try:
                await self.sweep()
            except ShuttingDown:
                return
            except DatabaseError as exc:
                log.warning("sweep skipped: the database failed: %s", exc, extra={
                    "action": "consumer.sweep_failed"})
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), self.interval)

    async def sweep(self) -> SweepReport:
        """One round: submit every stale service and wait for their syncs."""
        self.metrics.sweeps.inc()
        service_ids = await services.stale(self.pool, older_than=self.stale_after)
        if not service_ids:
            return self._report(SweepReport(0, 0, 0))
        futures = [self.scheduler.submit(sid, trigger="poll") for sid in service_ids]
        results = await asyncio.gather(*futures, return_exceptions=True)
        failed = [(sid, r) for sid, r in zip(service_ids, results, strict=True)
                  if isinstance(r, BaseException)]
        report = SweepReport(len(service_ids), len(service_ids) - len(failed), len(failed))
        self.metrics.swept.inc(report.synced)
        log.info("sweep: %d stale services, %d synced, %d failed", report.stale, report.synced,
                 report.failed, extra={
                     "action": "consumer.sweep", "stale": report.stale, "synced": report.synced,
                     "failed": report.failed,
                     "errors": sorted({getattr(r, "code", type(r).__name__) for _, r in failed})})
        if any(isinstance(r, ShuttingDown) for _, r in failed):
            raise ShuttingDown("the consumer is stopping")
        return self._report(report)

    def _report(self, report: SweepReport) -> SweepReport:
        for observer in self.observers:
            observer(report)
        return report
