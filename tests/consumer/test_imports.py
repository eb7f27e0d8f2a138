"""Imports in the consumer: an incremental sync that must become one hands it to the
import worker and returns; notifications go on being synced meanwhile."""

from __future__ import annotations

from delightbridge.sync.runs import SyncResult
from tests.consumer.conftest import Env

SERVICE, ADDRESS = "service-noji", "support@noji.example"


async def test_an_expired_history_is_repaired_by_the_import_worker(env: Env) -> None:
    await env.connect(SERVICE, ADDRESS, messages=30, threads=10)
    env.sim.deliver(ADDRESS, subject="Arrived, then Gmail forgot the history")
    env.sim.expire_history(ADDRESS)  # the stored cursor is now too old: 404
    async with env.run() as running:
        env.sim.deliver(ADDRESS, subject="After Gmail forgot the history")
        await running.recorder.wait_for(lambda r: bool(r.imports), within=30)
        [(service, outcome)] = running.recorder.imports
        assert service == SERVICE
        assert isinstance(outcome, SyncResult)
        assert (outcome.mode, outcome.fell_back_to_full) == ("full", True)
        assert running.sample("delightbridge_imports_total", outcome="succeeded") == 1
        # Gmail's calls and units, counted as they happen, the labels' listings included.
        assert running.sample("delightbridge_gmail_calls_total", method="history.list") >= 1
        assert running.sample("delightbridge_gmail_calls_total", method="labels.list") == 1
        listed = running.sample("delightbridge_gmail_calls_total", method="messages.list")
        assert running.sample("delightbridge_gmail_units_total",
                              method="messages.list") == 5 * listed > 0
    await env.assert_mirrors(SERVICE, ADDRESS)


async def test_notifications_are_synced_while_an_import_runs(env: Env) -> None:
    await env.connect(SERVICE, ADDRESS, messages=4, threads=2)
    env.sim.seed(ADDRESS, messages=300, threads=250, seed=9)
    env.sim.faults.update(latency_ms=20)
    env.sim.expire_history(ADDRESS)  # the seed's changes are after the cursor: 404
    async with env.run() as running:
        env.sim.deliver(ADDRESS, subject="Starts the repair")
        # The notification's incremental sync meets the expired history and returns,
        # handing the repair to the import worker.
        await running.recorder.wait_for(lambda r: any(o.status == "synced"
                                                      for _, o in r.outcomes), within=30)
        new_id = env.sim.deliver(ADDRESS, subject="Arrives during the import")
        for _ in range(30):
            seen = len(running.recorder.outcomes)
            if new_id in await env.mirrored(SERVICE):
                break
            await running.recorder.wait_for(lambda r, n=seen: len(r.outcomes) > n, within=30)
        else:
            raise AssertionError("the new message was not mirrored")
        assert not running.recorder.imports  # mirrored before the import ended
        await running.recorder.wait_for(lambda r: bool(r.imports), within=120)
        [(_, outcome)] = running.recorder.imports
        assert isinstance(outcome, SyncResult), outcome
    await env.assert_mirrors(SERVICE, ADDRESS)
