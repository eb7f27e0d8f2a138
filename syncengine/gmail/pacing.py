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
never waits behind a bulk one. A bulk call also waits until, counting it, fresh mail
could still get ``reserve`` units within ``reserve_within`` seconds: the units that
will still be in the window then stay within ``limit - reserve``. In steady state an
import's oldest units leave the window continuously, so it may fill the window almost
to the limit; in its first window (a burst, under a minute-long window) nothing leaves
soon, so ``reserve`` units stay free. Under a window no longer than
``reserve_within`` no reserve is needed: fresh mail waits at most one window anyway.
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
        reserve_within: float = 1.0,
    ) -> None:
        if limit <= 0 or window <= 0:
            raise ValueError("limit and window must be positive")
        if not 0 <= reserve < limit or reserve_within < 0:
            raise ValueError("reserve must be in [0, limit), reserve_within not negative")
        self.limit = float(limit)
        self.window = float(window)
        self.reserve = float(reserve) if window > reserve_within else 0.0
        self.reserve_within = reserve_within
        self._clock = clock
        self._sleep = sleep
        self._entries: list[Spend] = []
        self._blocked_until = 0.0
        self._locks = {False: asyncio.Lock(), True: asyncio.Lock()}  # by bulk
        self._settled = asyncio.Event()
        self.spent = 0
        self.waited = 0.0

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
                delay = self._delay(units, now, self.limit)
                if bulk and self.reserve and delay <= 0:
                    # The reserve must be free again within reserve_within seconds.
                    delay = self._delay(units, now, self.limit - self.reserve) \
                        - self.reserve_within
                if delay <= 0:
                    break
                if math.isinf(delay):
                    self._settled.clear()
                    await self._settled.wait()
                    continue
                self.waited += delay
                await self._sleep(delay)
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
