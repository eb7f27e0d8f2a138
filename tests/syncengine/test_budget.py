"""Gmail budgets shared through PostgreSQL by every process: the project's and each
mailbox's."""

from __future__ import annotations

import asyncio
import contextlib
import sys
import time
from collections.abc import AsyncIterator
from dataclasses import replace
from datetime import UTC, datetime

import asyncpg
import pytest
from prometheus_client import CollectorRegistry

from delightbridge.core.errors import DailyBudgetExhausted
from delightbridge.db.pool import create_pool
from delightbridge.sync import imports
from delightbridge.sync.budget import BudgetConfig, ProjectBudget, next_quota_day
from delightbridge.sync.engine import EngineConfig, SyncEngine
from delightbridge.sync.gmail.quota import PROFILES
from delightbridge.sync.gmail.retry import FAST_POLICY
from delightbridge.sync.metrics import EngineMetrics
from delightbridge.sync.runs import Progress
from tests.syncengine.conftest import SyncSetup, add_service, engine_settings
from tests.syncengine.mirror import assert_mirror


async def _window_sums(pool: asyncpg.Pool, window: float) -> int:
    """The most units granted within any ``window`` seconds, from the ledger itself."""
    rows = await pool.fetch("SELECT extract(epoch FROM granted_at)::float8 AS t, units "
                            "FROM delightbridge_sync.quota_leases ORDER BY granted_at")
    best = 0
    for i, row in enumerate(rows):
        best = max(best, sum(r["units"] for r in rows[i:] if r["t"] < row["t"] + window))
    return best


async def test_processes_together_never_exceed_the_window(pool: asyncpg.Pool) -> None:
    config = BudgetConfig(units_per_window=400, window=1.0, chunk=40, margin=1.0,
                          bulk_share=1.0)
    budgets = [ProjectBudget(pool, config) for _ in range(3)]  # three processes

    async def spend(budget: ProjectBudget) -> None:
        for _ in range(20):
            await budget.spend(20)

    started = time.monotonic()
    await asyncio.gather(*(spend(b) for b in budgets))
    # 1,200 units at 400 a window: the last window cannot start before two have passed.
    assert time.monotonic() - started >= 1.9
    assert await _window_sums(pool, 1.0) <= 400


_SPENDER = """
import asyncio, sys
from delightbridge.db.pool import create_pool
from delightbridge.sync.budget import BudgetConfig, ProjectBudget

async def main() -> None:
    pool = await create_pool(sys.argv[1], max_size=2)
    budget = ProjectBudget(pool, BudgetConfig(units_per_window=400, window=1.0, chunk=40,
                                              margin=1.0, bulk_share=1.0))
    print("ready", flush=True)
    sys.stdin.readline()  # all three start together
    for _ in range(20):
        await budget.spend(20)
    await pool.close()

asyncio.run(main())
"""


async def test_three_os_processes_never_exceed_the_window_together(
        pool: asyncpg.Pool, db_url: str) -> None:
    """The same budget, leased by three real processes (nothing shared but PostgreSQL)."""
    procs = [await asyncio.create_subprocess_exec(
        sys.executable, "-c", _SPENDER, db_url, stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE) for _ in range(3)]
    try:
        for proc in procs:
            assert proc.stdout is not None
            assert await asyncio.wait_for(proc.stdout.readline(), 60) == b"ready\n"
        started = time.monotonic()
        for proc in procs:
            assert proc.stdin is not None
            proc.stdin.write(b"go\n")
            await proc.stdin.drain()
        codes = await asyncio.wait_for(asyncio.gather(*(p.wait() for p in procs)), 60)
    finally:
        for proc in procs:
            if proc.returncode is None:
                proc.kill()
                await proc.wait()
    assert codes == [0, 0, 0]
    assert time.monotonic() - started >= 1.9  # 1,200 units at 400 a window
    assert await pool.fetchval(
        "SELECT sum(units) FROM delightbridge_sync.quota_leases") == 1200
    assert await _window_sums(pool, 1.0) <= 400


async def test_imports_leave_room_for_fresh_mail(pool: asyncpg.Pool) -> None:
    config = BudgetConfig(units_per_window=1000, window=30.0, chunk=100, margin=1.0,
                          bulk_share=0.5)
    waiting = asyncio.Event()

    async def sleep(seconds: float) -> None:
        waiting.set()  # the budget decided to wait for the window
        await asyncio.sleep(seconds)

    budget = ProjectBudget(pool, config, sleep=sleep)
    for _ in range(5):
        await budget.spend(100, bulk=True)  # the import's half of the window
    blocked = asyncio.create_task(budget.spend(100, bulk=True))
    await asyncio.wait_for(waiting.wait(), timeout=5)
    assert not blocked.done()
    for _ in range(5):
        await asyncio.wait_for(budget.spend(100), timeout=2)  # fresh mail: the rest
    blocked.cancel()


async def test_the_daily_guard_stops_imports_first(pool: asyncpg.Pool) -> None:
    config = BudgetConfig(units_per_window=10**6, daily_units=1000, daily_guard=0.9, chunk=200)
    budget = ProjectBudget(pool, config)
    for _ in range(9):
        await budget.spend(100, bulk=True)
    with pytest.raises(DailyBudgetExhausted) as caught:
        await budget.spend(100, bulk=True)
    assert caught.value.resumes_at == next_quota_day(datetime.now(UTC))
    assert caught.value.code == "daily_budget_exhausted"
    await budget.spend(100)  # fresh mail may use the last tenth
    with pytest.raises(DailyBudgetExhausted):
        await budget.spend(1)
    assert await budget.today() == 1000


async def test_the_budget_metrics_show_the_window_and_the_day(pool: asyncpg.Pool) -> None:
    """What /metrics shows of the project's budget: its window's and its day's use by
    every process, against the budget and the guard (the daily alert's threshold)."""
    clock = [datetime(2026, 12, 5, 20, 0, tzinfo=UTC)]
    config = BudgetConfig(units_per_window=1000, window=0.5, daily_units=5000,
                          daily_guard=0.9, chunk=100, margin=1.0)
    budget = ProjectBudget(pool, config, now=lambda: clock[0])
    other = ProjectBudget(pool, config, now=lambda: clock[0])  # another process
    registry = CollectorRegistry()
    EngineMetrics(registry).watch_budget(budget)

    def gauge(name: str) -> float | None:
        return registry.get_sample_value(name)

    assert gauge("delightbridge_gmail_daily_budget_units") == 5000
    assert gauge("delightbridge_gmail_daily_guard_units") == 4500
    assert gauge("delightbridge_gmail_project_window_budget_units") == 1000
    await other.spend(300, bulk=True)
    await budget.spend(100)
    assert gauge("delightbridge_gmail_daily_units") == 400  # both processes' leases
    assert gauge("delightbridge_gmail_project_window_units") == 400
    clock[0] = next_quota_day(clock[0])  # midnight in California: a new quota day
    assert gauge("delightbridge_gmail_daily_units") == 0
    await asyncio.sleep(config.window)  # the window's leases leave it as time passes
    assert gauge("delightbridge_gmail_project_window_units") == 0


async def test_an_import_past_the_daily_guard_waits_for_the_next_day(setup: SyncSetup) -> None:
    setup.sim.seed(setup.address, messages=40, threads=30, seed=41)
    setup.engine.budget = ProjectBudget(setup.pool, BudgetConfig(
        units_per_window=10**6, daily_units=100, daily_guard=0.9, chunk=10))
    with pytest.raises(DailyBudgetExhausted):
        await setup.engine.sync(setup.account_id, mode="full", trigger="cli")
    job = await imports.get(setup.pool, setup.account_id)
    assert job is not None
    assert job.status == "pending"
    assert await imports.waiting(setup.pool) == []  # not before the next quota day
    not_before = await setup.pool.fetchval(
        "SELECT not_before FROM delightbridge_sync.imports WHERE account_id = $1",
        setup.account_id)
    assert not_before == next_quota_day(datetime.now(UTC))


async def test_three_processes_importing_many_mailboxes_stay_within_the_project_budget(
    setup: SyncSetup, pool: asyncpg.Pool, db_url: str
) -> None:
    """Gmail's project limit (here 500 units in 2 s, a third of what the imports need) is
    never exceeded: no 403 rateLimitExceeded, and every mirror is complete."""
    sim = setup.sim
    sim.quota.update(units_per_second=None, project_units_per_minute=500,
                     project_window_seconds=2.0)
    addresses = [setup.address] + [f"box{n}@noji.example" for n in range(5)]
    for n, address in enumerate(addresses):
        if n:
            box = sim.create_mailbox(address)
            await add_service(pool, f"svc-{n}", address, box.refresh_token)
        sim.seed(address, messages=30, threads=20, seed=50 + n)
    services = ["svc-noji"] + [f"svc-{n}" for n in range(1, len(addresses))]
    budget = BudgetConfig(units_per_window=500, window=2.0, chunk=25)

    async def process(mine: list[str]) -> None:
        """One process: its own pool, engine and lease of the budget."""
        async with contextlib.AsyncExitStack() as stack:
            own = await create_pool(db_url, max_size=6)
            assert own is not None
            stack.push_async_callback(own.close)
            config = EngineConfig.from_settings(engine_settings(setup.gmail), retry=FAST_POLICY)
            engine = await stack.enter_async_context(SyncEngine.open(own, config))
            engine.budget = ProjectBudget(own, budget)
            await asyncio.gather(*(engine.sync(s, mode="full", trigger="cli") for s in mine))

    await asyncio.gather(*(process(services[n::3]) for n in range(3)))
    assert sim.counters.total_errors() == 0  # not one call refused for the project
    for address, service in zip(addresses, services, strict=True):
        await assert_mirror(pool, service, sim.snapshot(address))


async def test_fresh_mail_in_another_process_finds_its_units_while_an_import_runs(
    setup: SyncSetup, pool: asyncpg.Pool, db_url: str
) -> None:
    """An import in one process (the API, after a connect) and the mailbox's new mail in
    another (a consumer): each process's pacer sees only its own calls, so the import
    filled the mailbox's minute and the consumer's calls were refused (429) until it
    passed. The mailbox's budget is now leased from the ledger by both, and imports leave
    fresh mail's reserve free in it."""
    sim = setup.sim
    sim.seed(setup.address, messages=100, threads=80, seed=42)
    sim.quota.update(profile="2026", window_seconds=4.0, units_per_second=250.0,
                     project_units_per_minute=10**9, daily_units=None)
    profile = replace(PROFILES["2026"], user_units=1000, user_window=4.0)

    @contextlib.asynccontextmanager
    async def process() -> AsyncIterator[SyncEngine]:
        """Another process: its own pool and engine (its own pacers)."""
        own = await create_pool(db_url, max_size=6)
        assert own is not None
        try:
            config = EngineConfig.from_settings(engine_settings(setup.gmail),
                                                retry=FAST_POLICY, quota=profile,
                                                share_mailbox_budget_from=2.0)
            async with SyncEngine.open(own, config) as engine:
                yield engine
        finally:
            await own.close()

    importing = asyncio.Event()

    def note(progress: Progress) -> None:
        if progress.stored >= 50:  # past the first window's burst: the window is full
            importing.set()

    async with process() as api, process() as consumer:
        imported = asyncio.create_task(api.sync(setup.account_id, mode="full",
                                                trigger="api", on_progress=note))
        await asyncio.wait_for(importing.wait(), timeout=60)
        for n in range(3):
            new_id = sim.deliver(setup.address, subject=f"While importing {n}")
            result = await consumer.sync(setup.account_id, trigger="notification")
            assert result.mode == "incremental"
            assert await pool.fetchval(
                "SELECT count(*) FROM emails WHERE gmail_message_id = $1", new_id) == 1
        assert not imported.done()  # fresh mail went past the running import
        await imported
    assert sim.counters.total_errors() == 0  # no call refused for the mailbox's quota
    await assert_mirror(pool, setup.account_id, sim.snapshot(setup.address))
