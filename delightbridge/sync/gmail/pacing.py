"""Client-side quota pacing per mailbox: never spend more than the budget in any window.

Gmail enforces its per-user quota over a moving window (250 units in any second by
default), charging each call when it handles it. The pacer reserves a call's units
when it is sent and stamps them when its answer arrives (``settle``): Google charged
them at some moment in between, so a call sent a full window after that stamp can
never share a window with it, whatever the latency and its jitter. A call waits
until, counting it, the units in flight plus those stamped within the last
``window`` seconds stay within ``limit``; one that alone costs more than the limit
waits for an empty window. A rate-limit answer blocks every call of the mailbox for a
while (``penalize``).

Two classes of calls: *bulk* ones (an import's) and *interactive* ones (an incremental
sync's: fresh mail). Each class is served in arrival order, and an interactive call
never waits behind a bulk one. Under a long window (the 2026 model's minute) bulk calls
also

* leave ``reserve`` units of the window free for fresh mail, at all times, and
* spend smoothly after their first burst: a token bucket holding the whole window at
  first (the minute's burst), then refilled at the window's rate and capped at
  ``smooth`` seconds of it. Without it an import re-spends the whole window each time
  its previous burst leaves it, all at once, and fresh mail beyond the reserve waits
  for the next burst to leave, up to a minute; spent smoothly, the import's units
  leave the window a few at a time, and fresh mail takes them first (an import's call
  waits while the window holds more than ``limit - reserve``).

Under a one-second window neither is needed: fresh mail waits one window at most.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import Awaitable, Callable


class Spend:
    """Units reserved by one call; ``stamp`` is infinite until the call settles."""

    __slots__ = ("stamp", "units")

    def __init__(self, units: int) -> None:
        self.units = units
        self.stamp = math.inf


class QuotaPacer:
    def __init__(
        self,
        limit: float,
        *,
        window: float = 1.0,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        reserve: float = 0.0,
        smooth: float = 2.0,
        long_from: float = 1.0,
    ) -> None:
        if limit <= 0 or window <= 0:
            raise ValueError("limit and window must be positive")
        if not 0 <= reserve < limit or smooth <= 0:
            raise ValueError("reserve must be in [0, limit), smooth positive")
        self.limit = float(limit)
        self.window = float(window)
        long = window > long_from
        self.reserve = float(reserve) if long else 0.0
        # Bulk's token bucket (long windows only): the window's burst first, then its rate.
        self._bulk_rate = (self.limit - self.reserve) / self.window if long else None
        self._bulk_cap = (self._bulk_rate or 0.0) * smooth
        self._bulk_tokens = self.limit - self.reserve
        self._bulk_at = clock()
        self._clock = clock
        self._sleep = sleep
        self._entries: list[Spend] = []
        self._blocked_until = 0.0
        self._locks = {False: asyncio.Lock(), True: asyncio.Lock()}  # by bulk
        self._settled = asyncio.Event()
        self.spent = 0
        self.waited = 0.0

    @property
    def batch_allowance(self) -> float:
        """Units per window that batches are sized against: the limit, or under a long
        window about four seconds of bulk's rate (batches of a second's units, so that
        an import's units leave the window a few at a time)."""
        if self._bulk_rate is None:
            return self.limit
        return self._bulk_rate * 4

    def _bucket_delay(self, units: int, now: float) -> float:
        """Seconds until bulk's bucket holds ``units`` (or its cap, for a bigger call)."""
        assert self._bulk_rate is not None
        refill = self._bulk_rate * (now - self._bulk_at)
        self._bulk_at = now
        self._bulk_tokens = min(max(self._bulk_cap, self._bulk_tokens),
                                self._bulk_tokens + refill)
        need = min(units, max(self._bulk_cap, self._bulk_tokens))
        short = need - self._bulk_tokens
        return short / self._bulk_rate if short > 1e-6 else 0.0  # not a rounding error

    def _delay(self, units: int, now: float, limit: float) -> float:
        """Seconds to wait before ``units`` fit; ``inf``: wait for a call to settle."""
        if now < self._blocked_until:
            return self._blocked_until - now
        self._entries = [e for e in self._entries if e.stamp > now - self.window]
        used = sum(e.units for e in self._entries)
        if not self._entries or used + units <= limit:
            return 0.0
        need, freed = used + units - limit, 0
        ordered = sorted(self._entries, key=lambda e: e.stamp)
        for entry in ordered:
            freed += entry.units
            if freed >= need:
                return entry.stamp + self.window - now
        # Costs more than the limit on its own: wait until the window is empty.
        return ordered[-1].stamp + self.window - now

    async def acquire(self, units: int, *, bulk: bool = False) -> Spend:
        """Wait until ``units`` may be spent; settle the returned ticket when answered."""
        async with self._locks[bulk]:
            while True:
                now = self._clock()
                delay = self._delay(units, now, self.limit - (self.reserve if bulk else 0))
                if bulk and self._bulk_rate is not None and delay <= 0:
                    delay = self._bucket_delay(units, now)
                if delay <= 0:
                    break
                if math.isinf(delay):
                    self._settled.clear()
                    await self._settled.wait()
                    continue
                self.waited += delay
                await self._sleep(delay)
            if bulk and self._bulk_rate is not None:
                self._bulk_tokens -= units  # below zero for a call bigger than the cap
            entry = Spend(units)
            self._entries.append(entry)
            self.spent += units
            return entry

    def settle(self, entry: Spend) -> None:
        """The call behind ``entry`` was answered (or failed): Google has charged it."""
        entry.stamp = self._clock()
        self._settled.set()

    def penalize(self, seconds: float) -> None:
        """Hold every call back for ``seconds`` from now (after a rate-limit answer)."""
        self._blocked_until = max(self._blocked_until, self._clock() + seconds)
