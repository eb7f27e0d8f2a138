"""A check run in the background, so that probes and scrapes only read its last result.

``/readyz`` and ``/metrics`` are polled by kubelets and Prometheus, maybe by anyone who
reaches the port: if each poll ran a database query, polling would load the database.
:class:`PeriodicCheck` runs the check every ``interval`` seconds in a task of its own;
handlers read :attr:`latest` and :meth:`is_stale`. Tests (and start-up) may
:meth:`refresh` it at once.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Generic, TypeVar

log = logging.getLogger("delightbridge.health")

T = TypeVar("T")


class PeriodicCheck(Generic[T]):
    """``check()`` every ``interval`` seconds; its result is :attr:`latest`.

    ``check`` must not raise for an expected failure (a database down): it returns a
    result that says so. An unexpected exception is logged and the previous result
    kept, and :meth:`is_stale` turns true when no check has finished for a while.
    """

    def __init__(self, check: Callable[[], Awaitable[T]], *, interval: float,
                 name: str) -> None:
        self._check = check
        self.interval = interval
        self.name = name
        self.latest: T | None = None
        self.checked_at: float | None = None  # time.monotonic() of the last result
        self._lock = asyncio.Lock()

    async def refresh(self) -> T | None:
        """Run the check now (after any running one) and return its result."""
        async with self._lock:
            try:
                result = await self._check()
            except Exception:
                log.exception("health check %s failed unexpectedly", self.name,
                              extra={"action": "health.check_failed", "check": self.name})
                return self.latest
            self.latest, self.checked_at = result, time.monotonic()
            return result

    def is_stale(self) -> bool:
        """No result yet, or none for three intervals (the loop is stuck or dead)."""
        if self.checked_at is None:
            return True
        return time.monotonic() - self.checked_at > 3 * self.interval

    async def _loop(self) -> None:
        while True:
            await asyncio.sleep(self.interval)
            await self.refresh()

    @contextlib.asynccontextmanager
    async def running(self) -> AsyncIterator[PeriodicCheck[T]]:
        """A first result, then the loop in a task until the block ends."""
        await self.refresh()
        task = asyncio.create_task(self._loop(), name=f"health-{self.name}")
        try:
            yield self
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
