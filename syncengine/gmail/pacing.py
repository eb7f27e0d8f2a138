"""Client-side quota pacing per mailbox: never spend more than the budget in any window.

Gmail enforces its per-user quota over a moving window (250 units in any second by
default). The pacer keeps the units it spent with their times and makes a call wait
until, counting it, the units spent in the last ``window`` seconds stay within
``limit``. The window is a little longer than Gmail's so that latency jitter between
here and Google cannot squeeze two windows' worth into one of Google's. A call that
alone costs more than the limit waits for an empty window. Calls are served in
arrival order. A rate-limit answer from Gmail blocks every call of that mailbox for
a while (``penalize``).
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import Awaitable, Callable


class QuotaPacer:
    def __init__(
        self,
        limit: float,
        *,
        window: float = 1.0,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        if limit <= 0 or window <= 0:
            raise ValueError("limit and window must be positive")
        self.limit = float(limit)
        self.window = float(window)
        self._clock = clock
        self._sleep = sleep
        self._spent: deque[tuple[float, int]] = deque()
        self._in_window = 0
        self._blocked_until = 0.0
        self._lock = asyncio.Lock()
        self.spent = 0
        self.waited = 0.0

    @property
    def rate(self) -> float:
        """Sustained units per second the pacer allows."""
        return self.limit / self.window

    def _expire(self, now: float) -> None:
        while self._spent and self._spent[0][0] <= now - self.window:
            self._in_window -= self._spent.popleft()[1]

    def _delay(self, units: int, now: float) -> float:
        if now < self._blocked_until:
            return self._blocked_until - now
        if not self._spent or self._in_window + units <= self.limit:
            return 0.0
        freed, need = 0, self._in_window + units - self.limit
        for stamp, cost in self._spent:
            freed += cost
            if freed >= need:
                return stamp + self.window - now
        return self._spent[-1][0] + self.window - now  # wait for an empty window

    async def acquire(self, units: int) -> None:
        async with self._lock:
            while True:
                now = self._clock()
                self._expire(now)
                delay = self._delay(units, now)
                if delay <= 0:
                    break
                self.waited += delay
                await self._sleep(delay)
            self._spent.append((now, units))
            self._in_window += units
            self.spent += units

    def penalize(self, seconds: float) -> None:
        """Hold every call back for ``seconds`` from now (after a rate-limit answer)."""
        self._blocked_until = max(self._blocked_until, self._clock() + seconds)
