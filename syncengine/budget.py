"""The Cloud project's Gmail budget, shared by every process of a deployment.

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

from db.queries import query
from delightbridge.errors import DailyBudgetExhausted
from syncengine.gmail.quota import QuotaProfile

PACIFIC = ZoneInfo("America/Los_Angeles")
# Advisory lock class of the ledger ("DBQL").
LEDGER_CLASS = 0x4442514C
SCOPE = "project"


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

    @classmethod
    def from_profile(cls, profile: QuotaProfile, **overrides: object) -> BudgetConfig:
        base = cls(units_per_window=profile.project_units_per_minute,
                   window=profile.project_window,
                   daily_units=profile.daily_units,
                   chunk=max(1, min(10_000, profile.project_units_per_minute // 400)))
        return cls(**{**{f: getattr(base, f) for f in cls.__dataclass_fields__}, **overrides})

    def window_limit(self, bulk: bool) -> int:
        return int(self.units_per_window * self.margin * (self.bulk_share if bulk else 1.0))

    def daily_limit(self, bulk: bool) -> int | None:
        if self.daily_units is None:
            return None
        return int(self.daily_units * (self.daily_guard if bulk else 1.0))


@dataclass(frozen=True, slots=True)
class Lease:
    granted: bool
    window_units: int  # leased in the window before this one
    day_units: int  # leased today before this one
    frees_in: float | None  # seconds until the window's oldest lease leaves it


class ProjectBudget:
    """This process's share of the project's budget: leases, and the units left of them."""

    def __init__(self, pool: asyncpg.Pool, config: BudgetConfig, *,
                 now: Callable[[], datetime] = lambda: datetime.now(UTC),
                 sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
                 hold: float = 5.0) -> None:
        self.pool = pool
        self.config = config
        self._now = now
        self._sleep = sleep
        self._hold = hold  # seconds a leased unit may wait to be spent
        self._balance = {False: 0, True: 0}  # by bulk
        self._leased_at = {False: 0.0, True: 0.0}
        self._locks = {False: asyncio.Lock(), True: asyncio.Lock()}
        self.leases = 0
        self.waited = 0.0
        self.day_units = 0  # today's units as of the last lease (metrics)

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
                wanted = max(units, self.config.chunk)
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
        now = self._now()
        async with self.pool.acquire() as conn, conn.transaction():
            await conn.execute(query("budget_lock"), LEDGER_CLASS, SCOPE)
            row = await conn.fetchrow(query("budget_lease"), SCOPE, units, config.window,
                                      config.window_limit(bulk), quota_day(now),
                                      config.daily_limit(bulk))
            if self.leases % 200 == 0:
                await conn.execute(query("budget_prune"), 5 * config.window)
        assert row is not None
        self.leases += row["granted"]
        self.day_units = int(row["day_units"]) + (units if row["granted"] else 0)
        frees_in = row["frees_in"]
        return Lease(row["granted"], int(row["window_units"]), int(row["day_units"]),
                     None if frees_in is None or math.isnan(frees_in) else float(frees_in))

    async def today(self) -> int:
        """Units leased so far today, by every process."""
        return int(await self.pool.fetchval(query("budget_day"), quota_day(self._now())))

