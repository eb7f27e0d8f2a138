"""Gmail budgets shared by every process of a deployment: the Cloud project's, and each
mailbox's under a minute-long window.

Google limits the whole project too: 1,200,000 units a minute for every mailbox together
and, under the 2026 model, 80,000,000 units a Pacific day (a billing threshold). One
process cannot see what the others spend, so each leases units from a ledger in
PostgreSQL (``delightbridge_sync.quota_leases``) before spending them: a lease is granted
only while the leases of the last window plus it stay within the budget (less a margin
that covers what replicas hold leased and not spent yet). Units are leased in chunks (a
quarter of a percent of the minute's budget), so a busy process asks about a few times a
second, not per call.

Two classes of spending: *bulk* (imports) may use only ``bulk_share`` of the minute and
``daily_guard`` of the day; *interactive* (incremental syncs: fresh mail) the whole of
both. So fresh mail always gets quota before imports, and the last tenth of a day is
kept for it: past the guard an import stops with :class:`DailyBudgetExhausted`, to be
resumed the next Pacific day.

Each mailbox's own budget (6,000 units a minute under the 2026 model) is shared the same
way, under the scope ``user:<service id>`` (:meth:`BudgetConfig.for_mailbox`): an import
may run in the API's process while the consumer's replicas sync the same mailbox's new
mail, and a process's pacer (:mod:`delightbridge.sync.gmail.pacing`) sees only its own calls.
There, imports lease only up to the window less a reserve that stays free for fresh
mail whichever process it arrives in. Under a one-second window (the legacy model) a
mailbox is paced per process only: a collision costs a 429 retried within a second.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

import asyncpg

from delightbridge.core.errors import DailyBudgetExhausted
from delightbridge.db import quota_ledger as ledger
from delightbridge.db.quota_ledger import Lease
from delightbridge.sync.gmail.quota import QuotaProfile

PACIFIC = ZoneInfo("America/Los_Angeles")
# Advisory lock class of the ledger ("DBQL").
LEDGER_CLASS = 0x4442514C
SCOPE = "project"
#: A mailbox's budget is shared through the ledger when its window is this long or
#: longer (a lease's round trip is small next to it; a 429 would cost up to a window).
SHARED_USER_WINDOW = 10.0


def quota_day(moment: datetime) -> date:
    """Google's quota day of ``moment``: its date in America/Los_Angeles."""
    return moment.astimezone(PACIFIC).date()


def next_quota_day(moment: datetime) -> datetime:
    """When the quota day after ``moment``'s begins (UTC)."""
    local = moment.astimezone(PACIFIC)
    midnight = datetime.combine(local.date() + timedelta(days=1), datetime.min.time(), PACIFIC)
    return midnight.astimezone(UTC)


@dataclass(frozen=True, slots=True)
class BudgetConfig:
    units_per_window: int
    window: float = 60.0
    daily_units: int | None = None
    chunk: int = 3000  # units leased at a time
    margin: float = 0.97  # of the budget: leases held but not spent yet stay within
    bulk_share: float = 0.9  # of the window, for imports
    daily_guard: float = 0.9  # of the day, for imports
    reserve: int = 0  # units of the window imports leave free (a mailbox's fresh mail)
    # Units fresh mail leases at a time (None: ``chunk``); a mailbox's leases exactly
    # what a call costs, so nothing leased for fresh mail is left unspent in the window.
    interactive_chunk: int | None = None

    @classmethod
    def from_profile(cls, profile: QuotaProfile, **overrides: object) -> BudgetConfig:
        base = cls(units_per_window=profile.project_units_per_minute,
                   window=profile.project_window,
                   daily_units=profile.daily_units,
                   chunk=max(1, min(10_000, profile.project_units_per_minute // 400)))
        return cls(**{**{f: getattr(base, f) for f in cls.__dataclass_fields__}, **overrides})

    @classmethod
    def for_mailbox(cls, profile: QuotaProfile, *, margin: float, reserve: int,
                    shared_from: float = SHARED_USER_WINDOW) -> BudgetConfig | None:
        """A mailbox's budget as shared through the ledger; None when its window is
        shorter than ``shared_from`` seconds (see :data:`SHARED_USER_WINDOW`)."""
        if profile.user_window < shared_from or profile.name == "unlimited":
            return None
        largest = max(profile.costs.values())
        return cls(units_per_window=profile.user_units, window=profile.user_window,
                   chunk=max(largest, profile.user_units // 60), margin=margin,
                   bulk_share=1.0, daily_guard=1.0, reserve=reserve, interactive_chunk=1)

    def window_limit(self, bulk: bool) -> int:
        share = self.units_per_window * self.margin * (self.bulk_share if bulk else 1.0)
        return int(share) - (self.reserve if bulk else 0)

    def daily_limit(self, bulk: bool) -> int | None:
        if self.daily_units is None:
            return None
        return int(self.daily_units * (self.daily_guard if bulk else 1.0))


class SharedBudget:
    """This process's share of a budget every process draws on (``scope``: the project's,
    or ``user:<service id>``): leases, and the units left of them."""

    def __init__(self, pool: asyncpg.Pool, config: BudgetConfig, *,
                 now: Callable[[], datetime] = lambda: datetime.now(UTC),
                 sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
                 hold: float = 5.0, scope: str = SCOPE) -> None:
        self.pool = pool
        self.config = config
        self.scope = scope
        self._now = now
        self._sleep = sleep
        self._hold = hold  # seconds a leased unit may wait to be spent
        self._balance = {False: 0, True: 0}  # by bulk
        self._leased_at = {False: 0.0, True: 0.0}
        self._locks = {False: asyncio.Lock(), True: asyncio.Lock()}
        self.leases = 0
        self.waited = 0.0
        # As of this process's last lease (metrics): the units of its quota day, and of
        # the window, leased by every process.
        self.day_units = 0
        self.window_units = 0
        self._lease_day: date | None = None
        self._lease_time = -math.inf

    async def spend(self, units: int, *, bulk: bool = False) -> None:
        """Wait until ``units`` are leased for this process, then take them.

        Raises :class:`DailyBudgetExhausted` for bulk spending past the daily guard (and
        for any spending past the day's budget).
        """
        async with self._locks[bulk]:
            while True:
                if time.monotonic() - self._leased_at[bulk] > self._hold:
                    self._balance[bulk] = 0  # unspent too long: let the window forget it
                if self._balance[bulk] >= units:
                    self._balance[bulk] -= units
                    return
                chunk = self.config.chunk
                if not bulk and self.config.interactive_chunk is not None:
                    chunk = self.config.interactive_chunk
                wanted = max(units, chunk)
                lease = await self._lease(wanted, bulk)
                limit = self.config.daily_limit(bulk)
                if not lease.granted and limit is not None \
                        and lease.day_units + wanted > limit >= lease.day_units + units:
                    wanted = units  # the day's last units: no more than needed
                    lease = await self._lease(wanted, bulk)
                if lease.granted:
                    self._balance[bulk] += wanted
                    self._leased_at[bulk] = time.monotonic()
                    continue
                if limit is not None and lease.day_units + units > limit:
                    raise DailyBudgetExhausted(next_quota_day(self._now()))
                delay = min(5.0, max(0.05, lease.frees_in or 0.05))
                self.waited += delay
                await self._sleep(delay)

    async def _lease(self, units: int, bulk: bool) -> Lease:
        config = self.config
        day = quota_day(self._now())
        granted = await ledger.lease(
            self.pool, lock_class=LEDGER_CLASS, scope=self.scope, units=units,
            window=config.window, window_limit=config.window_limit(bulk),
            day=day, day_limit=config.daily_limit(bulk),
            counts_the_day=self.scope == SCOPE,
            prune_older_than=5 * config.window if self.leases % 200 == 0 else None)
        self.leases += granted.granted
        taken = units if granted.granted else 0
        self.day_units = granted.day_units + taken
        self.window_units = granted.window_units + taken
        self._lease_day, self._lease_time = day, time.monotonic()
        return granted

    def units_today(self) -> int:
        """Today's units as of the last lease; 0 once a new quota day has begun."""
        return self.day_units if self._lease_day == quota_day(self._now()) else 0

    def units_in_window(self) -> int:
        """The window's units as of the last lease; 0 once a whole window has passed
        since (they have all left it)."""
        if time.monotonic() - self._lease_time > self.config.window:
            return 0
        return self.window_units

    async def today(self) -> int:
        """Units leased so far today, by every process."""
        return await ledger.day_units(self.pool, day=quota_day(self._now()))


ProjectBudget = SharedBudget  # the project's: scope "project"
