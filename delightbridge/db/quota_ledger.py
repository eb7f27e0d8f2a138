"""The quota ledger (``delightbridge_sync.quota_leases`` and ``quota_days``): typed
functions around its named queries. Every process leases units here before spending
them, so a budget shared by processes is never exceeded (:mod:`delightbridge.sync.budget`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import date

import asyncpg

from delightbridge.db.connection import transaction
from delightbridge.db.queries import query


@dataclass(frozen=True, slots=True)
class Lease:
    granted: bool
    window_units: int  # leased in the window before this one
    day_units: int  # leased today before this one
    frees_in: float | None  # seconds until the window's oldest lease leaves it


async def lease(pool: asyncpg.Pool, *, lock_class: int, scope: str, units: int,
                window: float, window_limit: int, day: date, day_limit: int | None,
                counts_the_day: bool, prune_older_than: float | None = None) -> Lease:
    """Grant ``units`` to ``scope`` if the leases of the last ``window`` seconds plus them
    stay within ``window_limit``, and the day's within ``day_limit`` (None: no limit);
    the day's count grows only for ``counts_the_day`` (the project's scope). Serialised
    per scope by an advisory lock; ``prune_older_than``: also delete leases that old."""
    async with transaction(pool) as conn:
        await conn.execute(query("budget_lock"), lock_class, scope)
        row = await conn.fetchrow(query("budget_lease"), scope, units, window, window_limit,
                                  day, day_limit, counts_the_day)
        if prune_older_than is not None:
            await conn.execute(query("budget_prune"), prune_older_than)
    assert row is not None
    frees_in = row["frees_in"]
    return Lease(row["granted"], int(row["window_units"]), int(row["day_units"]),
                 None if frees_in is None or math.isnan(frees_in) else float(frees_in))


async def day_units(pool: asyncpg.Pool, *, day: date) -> int:
    """Units the project leased on ``day`` (a Pacific date), by every process."""
    return int(await pool.fetchval(query("budget_day"), day))
