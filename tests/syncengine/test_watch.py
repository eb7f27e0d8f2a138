"""Watch renewal with the simulator's clock: no lapse in 30 days; failures surface."""

from __future__ import annotations

import asyncio
import os
import sys
from datetime import UTC, datetime, timedelta

import pytest
from gmailsim.errors import GmailError as SimError

from delightbridge.core.errors import ServiceNotConnected
from delightbridge.core.settings import variable_names
from delightbridge.db.queries import query
from delightbridge.sync import watch
from delightbridge.sync.watch import WatchSettings, renew_all
from tests.dbutil import service_state
from tests.syncengine.conftest import SyncSetup, add_service

TOPIC = WatchSettings("projects/delightbridge-local/topics/gmail-push")


def _sim_now(setup: SyncSetup) -> datetime:
    return datetime.fromtimestamp(setup.sim.clock.now(), UTC)


async def test_thirty_simulated_days_and_no_watch_ever_lapses(setup: SyncSetup) -> None:
    other = setup.sim.create_mailbox("help@ankipro.example")
    await add_service(setup.pool, "svc-anki", other.address, other.refresh_token)
    addresses = (setup.address, other.address)
    report = await renew_all(setup.engine, TOPIC, now=_sim_now(setup))
    assert sorted(report.renewed) == ["svc-anki", "svc-noji"]
    renewals = 2
    for hour in range(0, 30 * 24, 6):  # the job runs every 6 hours for 30 days
        setup.sim.clock.advance(6 * 3600)
        for address in addresses:
            assert setup.sim.active_watch(address) is not None, f"lapsed at hour {hour}"
        report = await renew_all(setup.engine, TOPIC, now=_sim_now(setup))
        assert report.failed == {}
        renewals += len(report.renewed)
    # About once a day per service: not every run, not never.
    assert 2 * 25 <= renewals <= 2 * 35
    rows = await setup.pool.fetch(
        "SELECT watch_expires_at, watch_error FROM delightbridge_sync.services")
    assert all(r["watch_expires_at"] > _sim_now(setup) + timedelta(days=5) for r in rows)
    assert all(r["watch_error"] is None for r in rows)


async def test_only_one_client_allowed_then_stop_and_watch_again(setup: SyncSetup) -> None:
    setup.sim.faults.fail_next("users.watch", error=SimError(
        400, "Only one user push notification client allowed per developer "
        "(call /stop then try again)", reason="invalidArgument"))
    report = await renew_all(setup.engine, TOPIC, now=_sim_now(setup))
    assert report.renewed == ["svc-noji"]
    assert setup.sim.counters.calls("users.stop") == 1
    assert setup.sim.active_watch(setup.address) is not None


def _not_configured() -> SimError:
    return SimError(403, "Gmail API has not been used in project 1 before or it is disabled.",
                    reason="accessNotConfigured")


async def test_failures_are_recorded_and_surface(setup: SyncSetup, db_url: str) -> None:
    setup.sim.faults.fail_next("users.watch", error=_not_configured())
    report = await renew_all(setup.engine, TOPIC, now=_sim_now(setup))
    assert list(report.failed) == ["svc-noji"]
    row = await setup.pool.fetchrow(
        "SELECT watch_error, watch_expires_at FROM delightbridge_sync.services")
    assert row["watch_error"]
    assert row["watch_expires_at"] is None
    # The command exits non-zero when a watch could not be renewed.
    setup.sim.faults.fail_next("users.watch", error=_not_configured())
    env = {k: v for k, v in os.environ.items() if k not in variable_names()}
    env.update({"DATABASE_URL": db_url, "GMAIL_API_ENDPOINT": setup.gmail.base_url,
                "GOOGLE_OAUTH_TOKEN_URI": setup.gmail.token_uri,
                "GOOGLE_CLIENT_ID": setup.sim.client_id,
                "GOOGLE_CLIENT_SECRET": setup.sim.client_secret})
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "delightbridge.cli.main", "renew-watches", env=env,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    out, _ = await asyncio.wait_for(proc.communicate(), timeout=120)
    assert proc.returncode == 1
    assert "failed 1" in out.decode()
    assert "svc-noji" in out.decode()
    # Once Gmail accepts again, the error clears.
    report = await renew_all(setup.engine, TOPIC, now=_sim_now(setup))
    assert report.renewed == ["svc-noji"]
    assert await setup.pool.fetchval("SELECT watch_error FROM delightbridge_sync.services") is None


async def test_revoked_token_disconnects_and_stop_clears_the_watch(setup: SyncSetup) -> None:
    await renew_all(setup.engine, TOPIC, now=_sim_now(setup))
    await watch.stop(setup.engine, "svc-noji")
    assert setup.sim.active_watch(setup.address) is None
    assert await setup.pool.fetchval(
        "SELECT watch_expires_at FROM delightbridge_sync.services") is None
    setup.sim.revoke_refresh_token(setup.address)
    setup.sim.expire_access_tokens(setup.address)
    report = await renew_all(setup.engine, TOPIC, now=_sim_now(setup))
    assert "invalid_grant" in report.failed["svc-noji"]
    assert (await service_state(setup.pool, "svc-noji"))["sync_state"] == "disconnected"
    with pytest.raises(ServiceNotConnected):
        await watch.renew(setup.engine, "svc-noji", TOPIC)


async def test_a_sync_running_through_a_disconnect_stores_no_token(setup: SyncSetup) -> None:
    """A client made before the disconnect refreshes its token afterwards: the fresh
    access token is not written back to the disconnected service."""
    client = setup.engine.client_for(await setup.engine.service(setup.account_id))
    assert await setup.engine.pool.fetchval(
        "SELECT id FROM delightbridge_sync.watch_stops WHERE account_id = $1",
        setup.account_id) is None
    await setup.engine.pool.fetchval(query("watch_disconnect"), setup.account_id, "test")
    setup.sim.expire_access_tokens(setup.address)
    await client.list_threads()  # 401, refresh, persist (refused by the guard)
    row = await setup.engine.pool.fetchrow(
        "SELECT access_token, refresh_token FROM gmail_accounts WHERE id = $1",
        setup.account_id)
    assert (row["access_token"], row["refresh_token"]) == (None, None)


async def test_each_renewal_refreshes_the_sender_identities(setup: SyncSetup) -> None:
    async def identities() -> list[tuple[str, bool, bool]]:
        return [(r["email"], r["is_default"], r["is_enabled"]) for r in await setup.pool.fetch(
            "SELECT email, is_default, is_enabled FROM service_sender_identities "
            "WHERE account_id = 'svc-noji' ORDER BY email")]

    setup.sim.add_send_as(setup.address, "billing@noji.example")
    await renew_all(setup.engine, TOPIC, now=_sim_now(setup), force=True)
    assert await identities() == [("billing@noji.example", False, True),
                                  (setup.address, True, True)]
    setup.sim.remove_send_as(setup.address, "billing@noji.example")
    setup.sim.add_send_as(setup.address, "help@noji.example", is_default=True)
    await renew_all(setup.engine, TOPIC, now=_sim_now(setup), force=True)
    assert await identities() == [("help@noji.example", True, True),
                                  (setup.address, False, True)]
    # Gmail failing the list leaves the watch renewed and the identities as they were.
    setup.sim.faults.fail_next("users.settings.sendAs.list", code=400)
    report = await renew_all(setup.engine, TOPIC, now=_sim_now(setup), force=True)
    assert (report.renewed, report.failed) == (["svc-noji"], {})
    assert len(await identities()) == 2
