"""The worker's life: health and metrics, the sweep, stopping in the middle of a sync,
a side task that dies. Real emulator, simulator and database throughout."""

from __future__ import annotations

import asyncio
import logging

import aiohttp
import asyncpg
import pytest
from prometheus_client.parser import text_string_to_metric_families

from delightbridge.consumer.pull import PubSubError
from tests.consumer.conftest import Env, Gate
from tests.plugins.pubsub import subscriber

SERVICE, ADDRESS = "service-noji", "support@noji.example"


async def get(port: int, path: str) -> tuple[int, str]:
    async with aiohttp.ClientSession() as session, session.get(
            f"http://127.0.0.1:{port}{path}") as response:
        return response.status, await response.text()


async def test_health_readiness_and_metrics(env: Env) -> None:
    await env.connect(SERVICE, ADDRESS)
    async with env.run() as running:
        assert await get(running.port, "/healthz") == (200, '{"ok": true}')
        status, body = await get(running.port, "/readyz")
        assert status == 200, body
        assert '"stream": true' in body
        assert '"database": true' in body
        env.sim.deliver(ADDRESS, subject="Counted")
        await running.recorder.wait_for(lambda r: len(r.outcomes) >= 1)
        status, text = await get(running.port, "/metrics")
        assert status == 200
        samples = {(s.name, tuple(sorted(s.labels.items()))): s.value
                   for family in text_string_to_metric_families(text) for s in family.samples}
        assert samples[("delightbridge_consumer_messages_received_total",
                        (("source", "pull"),))] == 1
        assert samples[("delightbridge_consumer_messages_acked_total",
                        (("source", "pull"),))] == 1
        assert samples[("delightbridge_sync_runs_total", (
            ("mode", "incremental"), ("outcome", "succeeded"), ("trigger", "notification")))] == 1
        assert samples[("delightbridge_sync_seconds_count", (("mode", "incremental"),))] == 1
        assert samples[("delightbridge_consumer_lag_seconds_count", (("source", "pull"),))] == 1
        assert samples[("delightbridge_consumer_messages_ignored_total",
                        (("reason", "not_json"),))] == 0
        assert samples[("delightbridge_consumer_stream_open", ())] == 1


async def test_readiness_fails_when_the_database_does_not_answer(env: Env,
                                                                pg_admin_url: str) -> None:
    await env.connect(SERVICE, ADDRESS)
    name = await env.pool.fetchval("SELECT current_database()")
    admin = await asyncpg.connect(pg_admin_url)
    try:
        async with env.run() as running:
            assert (await get(running.port, "/readyz"))[0] == 200
            await admin.execute(f'ALTER DATABASE "{name}" WITH ALLOW_CONNECTIONS false')
            await admin.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                                "WHERE datname = $1", name)
            check = running.worker.database_check
            assert check is not None
            await check.refresh()  # what the next periodic check finds
            status, body = await get(running.port, "/readyz")
            assert status == 503, body
            assert '"database": false' in body
            assert (await get(running.port, "/healthz"))[0] == 200  # alive all the same
            await admin.execute(f'ALTER DATABASE "{name}" WITH ALLOW_CONNECTIONS true')
            await check.refresh()
            assert (await get(running.port, "/readyz"))[0] == 200
    finally:
        await admin.execute(f'ALTER DATABASE "{name}" WITH ALLOW_CONNECTIONS true')
        await admin.close()


async def test_stopping_lets_a_running_sync_commit_and_ack(env: Env, gate: Gate) -> None:
    """Stop requested while Gmail holds the sync's history.list: the stream closes, the
    process is not ready any more, the sync commits within the grace period and the
    message is acked (after the stream closed), so it is never redelivered."""
    await env.connect(SERVICE, ADDRESS)
    settings = env.settings(gmail_api_endpoint=gate.base_url)
    gate.close()
    async with env.run(settings=settings, shutdown_timeout=30) as running:
        new_id = env.sim.deliver(ADDRESS, subject="In flight at shutdown")
        async with asyncio.timeout(10):
            await gate.entered.wait()
        running.worker.stop.set()
        async with asyncio.timeout(10):
            await running.worker.stopping.wait()
        status, body = await get(running.port, "/readyz")
        assert status == 503
        assert '"accepting": false' in body
        assert '"stream": false' in body
        assert not running.task.done()  # waiting for the sync, within its grace period
        gate.open()
        assert await running.stop() == 0
        assert [o.status for _, o in running.recorder.outcomes] == ["synced"]
    assert new_id in await env.mirrored(SERVICE)
    await env.assert_mirrors(SERVICE, ADDRESS)


async def test_a_sync_outliving_the_grace_period_is_nacked_and_nothing_is_lost(
        env: Env, gate: Gate) -> None:
    """The sync is cancelled after the grace period: its run is recorded as cancelled,
    the cursor stays behind the change and the message is nacked. Pub/Sub would
    redeliver it; the emulator does not reliably do so once the stream closed (the nack
    itself is checked in test_pull_bridge), so the restarted worker, on another
    subscription of the topic (see ``PubSub.another_subscription``), gets the same
    notification republished, and the change that was in flight is not lost."""
    await env.connect(SERVICE, ADDRESS)
    before = await env.pool.fetchval(
        "SELECT last_history_id FROM gmail_accounts WHERE id = $1", SERVICE)
    gate.close()
    async with env.run(settings=env.settings(gmail_api_endpoint=gate.base_url),
                       shutdown_timeout=0.2) as running:
        new_id = env.sim.deliver(ADDRESS, subject="Too slow to finish")
        async with asyncio.timeout(10):
            await gate.entered.wait()
        assert await running.stop() == 0
        (_, outcome), = running.recorder.outcomes
        assert (outcome.ack, outcome.status) == (False, "shutting_down")
    runs = await env.sync_runs(SERVICE)
    assert (runs[-1]["status"], runs[-1]["error_code"]) == ("failed", "cancelled")
    assert new_id not in await env.mirrored(SERVICE)
    assert await env.pool.fetchval(
        "SELECT last_history_id FROM gmail_accounts WHERE id = $1", SERVICE) == before
    gate.open()
    restart = env.settings(pubsub_subscription=env.pubsub.another_subscription())
    async with env.run(settings=restart) as restarted:
        again = await env.pubsub.send({"emailAddress": ADDRESS,
                                       "historyId": env.sim.history_id(ADDRESS)})
        await restarted.recorder.wait_for_message(again, status="synced")
    await env.assert_mirrors(SERVICE, ADDRESS)


async def test_the_sweep_syncs_stale_services_that_got_no_notification(env: Env) -> None:
    await env.connect("service-stale", "stale@noji.example", watch=False)
    await env.connect("service-fresh", "fresh@noji.example", watch=False)
    await env.pool.execute("UPDATE delightbridge_sync.services "
                           "SET last_synced_at = now() - interval '11 min' "
                           "WHERE account_id = 'service-stale'")
    lost = env.sim.deliver("stale@noji.example", subject="Notification dropped by Gmail")
    env.sim.deliver("fresh@noji.example", subject="Not stale yet")
    async with env.run(stale_after=600, sweep_interval=3600) as running:
        await running.recorder.wait_for(lambda r: len(r.sweeps) >= 1)
        assert (running.recorder.sweeps[0].stale, running.recorder.sweeps[0].synced) == (1, 1)
    assert lost in await env.mirrored("service-stale")
    await env.assert_mirrors("service-stale", "stale@noji.example")
    assert [r["trigger"] for r in await env.sync_runs("service-stale")] == ["connect", "poll"]
    assert [r["trigger"] for r in await env.sync_runs("service-fresh")] == ["connect"]


async def test_the_sweep_repeats_every_interval(env: Env) -> None:
    await env.connect(SERVICE, ADDRESS, watch=False)
    async with env.run(stale_after=0.05, sweep_interval=0.1) as running:
        await running.recorder.wait_for(lambda r: sum(s.synced for s in r.sweeps) >= 3)
    polls = [r for r in await env.sync_runs(SERVICE) if r["trigger"] == "poll"]
    assert len(polls) >= 3


async def test_a_dead_stream_stops_the_worker_loudly(env: Env,
                                                     caplog: pytest.LogCaptureFixture) -> None:
    await env.connect(SERVICE, ADDRESS)
    caplog.set_level(logging.INFO)
    async with env.run(expect_exit=None) as running:
        client = subscriber(env.pubsub.host)
        try:
            await asyncio.to_thread(client.delete_subscription,
                                    request={"subscription": env.pubsub.subscription})
        finally:
            client.close()
        async with asyncio.timeout(30):
            code = await running.task
        assert code == 1
    crashed = [r for r in caplog.records
               if getattr(r, "action", "") == "consumer.side_task_crashed"]
    assert [r.levelno for r in crashed] == [logging.CRITICAL]
    assert crashed[0].__dict__["task"] == "pull"
    assert "does not exist" in crashed[0].getMessage() or "404" in crashed[0].getMessage()


async def test_a_missing_subscription_fails_at_start_up(env: Env) -> None:
    settings = env.settings(pubsub_subscription="projects/delightbridge-test/subscriptions/nope")
    with pytest.raises(PubSubError, match="does not exist"):
        async with env.run(settings=settings):
            pass


async def test_cancelling_the_worker_still_closes_the_stream_and_its_tasks(env: Env) -> None:
    await env.connect(SERVICE, ADDRESS)
    async with env.run(expect_exit=None) as running:
        bridge = running.worker._bridge
        assert bridge is not None
        assert bridge.is_open
        running.task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await running.task
        assert not bridge.is_open
        scheduler = running.worker.scheduler
        assert scheduler is not None
        assert scheduler.running == 0
        running.worker.stop.set()
