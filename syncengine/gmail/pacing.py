"""Client-side quota pacing per mailbox: spend Gmail's units no faster than the budget.

A token bucket without burst: each call pays its documented cost; a call that finds
the bucket in debt waits until it is paid off. Calls are served in arrival order. A
rate-limit answer from Gmail puts the bucket further in debt (``penalize``) so every
concurrent call of that mailbox backs off together.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable


class QuotaPacer:
    def __init__(
        self,
        units_per_second: float,
        *,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        if units_per_second <= 0:
            raise ValueError("units_per_second must be positive")
        self.rate = float(units_per_second)
        self._clock = clock
        self._sleep = sleep
        self._available = 0.0  # negative: debt, paid off at ``rate`` per second
        self._stamp = clock()
        self._lock = asyncio.Lock()
        self.spent = 0
        self.waited = 0.0

    def _refill(self) -> None:
        now = self._clock()
        self._available = min(0.0, self._available + (now - self._stamp) * self.rate)
        self._stamp = now

    async def acquire(self, units: int) -> None:
        async with self._lock:
            self._refill()
            if self._available < 0:
                delay = -self._available / self.rate
                self.waited += delay
                await self._sleep(delay)
                self._refill()
            self._available -= units
            self.spent += units

    def penalize(self, seconds: float) -> None:
        """Hold every call back for about ``seconds`` (after a rate-limit answer)."""
        self._refill()
        self._available = min(self._available, -seconds * self.rate)
