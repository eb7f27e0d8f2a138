"""The consumer's import worker: runs and resumes imports beside the notifications.

An incremental sync that turns into an import (a new service, Gmail's history expired,
rows the web app wrote) hands it here and returns at once, so the mailbox's next
notification is synced within seconds while the import goes on. The worker also takes
up every import left pending or running by a process that stopped (a deploy, a crash):
at start, whenever told of one, and every ``interval`` seconds. Each import runs under
its own lock (one process imports a service at a time) and at most ``concurrency`` run
here at once. On stop, running imports are cancelled: they stay recorded as running, and
the next worker (this process restarted, another replica) resumes them where they were.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

from delightbridge.core.errors import DatabaseError, DelightBridgeError
from delightbridge.sync import imports
from delightbridge.sync.engine import SyncEngine
from delightbridge.sync.runs import SyncResult

log = logging.getLogger("consumer.importer")


#: Imports one consumer runs at once (each holds a database connection for its lock).
IMPORTS_AT_ONCE = 2


class ImportWorker:
    def __init__(self, engine: SyncEngine, *, concurrency: int = IMPORTS_AT_ONCE,
                 interval: float = 60.0,
                 on_done: Callable[[str, SyncResult | BaseException | None], None] | None = None
                 ) -> None:
        self.engine = engine
        self.concurrency = concurrency
        self.interval = interval
        self._on_done = on_done
        self._wake = asyncio.Event()
        self._running: dict[str, asyncio.Task[None]] = {}

    def request(self, service_id: str) -> None:
        """An import of ``service_id`` waits (called by the engine, on the loop)."""
        self._wake.set()

    @property
    def running(self) -> list[str]:
        return sorted(self._running)

    async def run(self, stop: asyncio.Event) -> None:
        """Take up waiting imports until ``stop`` is set; then cancel those running."""
        try:
            while not stop.is_set():
                self._wake.clear()
                try:
                    await self._start_waiting()
                except DatabaseError as exc:
                    log.warning("imports not looked up: the database failed: %s", exc,
                                extra={"action": "consumer.imports_failed"})
                waiters = [asyncio.create_task(stop.wait()), asyncio.create_task(self._wake.wait())]
                try:
                    await asyncio.wait(waiters, timeout=self.interval,
                                       return_when=asyncio.FIRST_COMPLETED)
                finally:
                    for waiter in waiters:
                        waiter.cancel()
        finally:
            tasks = list(self._running.values())
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

    async def _start_waiting(self) -> None:
        for service_id in await imports.waiting(self.engine.pool):
            if len(self._running) >= self.concurrency:
                return
            if service_id in self._running:
                continue
            task = asyncio.create_task(self._import(service_id), name=f"import:{service_id}")
            self._running[service_id] = task

    async def _import(self, service_id: str) -> None:
        outcome: SyncResult | BaseException | None = None
        try:
            outcome = await self.engine.run_import(service_id, trigger="poll")
        except DatabaseError as exc:
            outcome = exc
            log.warning("import of %s stopped: the database failed: %s", service_id, exc,
                        extra={"action": "consumer.import_failed", "service": service_id})
        except DelightBridgeError as exc:  # recorded on the run and the service already
            outcome = exc
        finally:
            self._running.pop(service_id, None)
            self._wake.set()  # a slot is free: look again
        if self._on_done is not None:
            self._on_done(service_id, outcome)
