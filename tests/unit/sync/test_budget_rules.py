"""The quota budget's rules, alone: the Pacific quota day, fresh mail before an import."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

from delightbridge.sync.budget import next_quota_day, quota_day
from delightbridge.sync.gmail.pacing import QuotaPacer


def test_the_quota_day_is_pacific() -> None:
    late_utc = datetime(2026, 12, 6, 7, 30, tzinfo=UTC)  # 23:30 on the 5th in Los Angeles
    assert str(quota_day(late_utc)) == "2026-12-05"
    assert next_quota_day(late_utc) == datetime(2026, 12, 6, 8, 0, tzinfo=UTC)
    summer = datetime(2026, 7, 1, 12, 0, tzinfo=UTC)
    assert next_quota_day(summer) == datetime(2026, 7, 2, 7, 0, tzinfo=UTC)


def test_the_pacer_lets_fresh_mail_past_an_import() -> None:
    async def scenario() -> None:
        waiting = asyncio.Event()

        async def sleep(seconds: float) -> None:
            waiting.set()  # the pacer decided to wait for the window
            await asyncio.Event().wait()

        pacer = QuotaPacer(100, window=60.0, clock=lambda: 0.0, sleep=sleep, reserve=50)
        for _ in range(5):
            pacer.settle(await pacer.acquire(10, bulk=True))
        import_waits = asyncio.create_task(pacer.acquire(10, bulk=True))
        await asyncio.wait_for(waiting.wait(), timeout=1)
        assert not import_waits.done()  # nothing leaves the window soon: the reserve stays
        for _ in range(5):  # fresh mail: not behind the waiting import call
            pacer.settle(await asyncio.wait_for(pacer.acquire(10), timeout=1))
        import_waits.cancel()

    asyncio.run(scenario())
