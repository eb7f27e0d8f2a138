"""The watch renewal schedule inside the consumer (CONSUMER_RENEW_WATCHES)."""

from __future__ import annotations

import asyncio

from tests.consumer.conftest import Env


async def test_consumer_renews_watches_when_asked_and_counts_them(env: Env) -> None:
    await env.connect("svc-a", "a@svc.example", watch=False)
    async with env.run(renew_watches=True) as running:
        # The first pass runs as the worker starts.
        await running.recorder.wait_for(lambda r: bool(r.renewals), within=30)
        assert running.recorder.renewals[0].renewed == ["svc-a"]
        assert running.sample("delightbridge_consumer_watch_renewals_total",
                              outcome="renewed") == 1
    assert env.sim.active_watch("a@svc.example") is not None
    assert await env.pool.fetchval(
        "SELECT watch_expires_at IS NOT NULL FROM delightbridge_sync.services "
        "WHERE account_id = 'svc-a'")


async def test_renewal_is_off_by_default(env: Env) -> None:
    await env.connect("svc-b", "b@svc.example", watch=False)
    async with env.run() as running:
        assert "renewal" not in {t.get_name() for t in asyncio.all_tasks()}
        assert running.sample("delightbridge_consumer_watch_renewals_total",
                              outcome="renewed") == 0
    assert env.sim.active_watch("b@svc.example") is None
