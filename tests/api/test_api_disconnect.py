"""Disconnecting a service: tokens cleared, watch stopped, grant revoked, nothing lost.

``DELETE /api/services/{id}/connection`` through the real app, the simulator's Gmail
and token endpoints; a stop that Gmail refuses for now is queued and retried by the
renewal pass; a service deleted by the web app (a plain SQL DELETE) has its watch
stopped by that pass too.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from delightbridge.api.keys import ENGINE
from delightbridge.sync import crypto, watch
from delightbridge.sync.engine import EngineConfig, SyncEngine
from tests.api.conftest import AGENT, Api, agent_cookie
from tests.api.test_api_connect import ADDRESS, SERVICE, connect_through_consent
from tests.dbutil import service_state

PATH = f"/api/services/{SERVICE}/connection"


async def _connected(api: Api) -> str:
    """A service connected through the consent flow: tokens, watch and a first sync."""
    api.sim.sim.create_mailbox(ADDRESS, name="Noji")
    api.sim.sim.seed(ADDRESS, messages=4, threads=2, seed=5)
    await api.add_service(SERVICE, ADDRESS, refresh_token=None)
    result = await connect_through_consent(api)
    assert result["status"] == "connected", result
    await api.drain()
    assert api.sim.sim.active_watch(ADDRESS) is not None
    grants = api.sim.sim.tokens.refresh_tokens(ADDRESS)
    assert len(grants) == 2  # the mailbox's own and the one the connect was granted
    return grants[-1]


async def _row(api: Api) -> Any:
    return await service_state(api.pool, SERVICE)


async def _queued(api: Api) -> list[Any]:
    return list(await api.pool.fetch(
        "SELECT account_id, reason, attempts, last_error FROM delightbridge_sync.watch_stops "
        "ORDER BY id"))


async def _mirrored(api: Api) -> int:
    return int(await api.pool.fetchval(
        "SELECT count(*) FROM emails e JOIN email_threads t ON t.id = e.thread_id "
        "WHERE t.account_id = $1", SERVICE))


async def _renewal_pass(api: Api) -> watch.RenewReport:
    return await watch.renew_all(api.app[ENGINE], watch.WatchSettings.from_settings(
        api.settings))


async def test_disconnect_stops_the_watch_revokes_and_keeps_the_mail(api: Api) -> None:
    grant = await _connected(api)
    mirrored = await _mirrored(api)
    cursor = (await _row(api))["last_history_id"]
    assert mirrored > 0

    reply = await api.call("DELETE", PATH)
    assert reply.status == 200
    assert reply.json == {"ok": True, "serviceId": SERVICE, "wasConnected": True,
                          "watchStopped": True, "grantRevoked": True, "stopPending": False,
                          "error": None}
    assert api.sim.sim.active_watch(ADDRESS) is None
    assert api.sim.sim.counters.calls("users.stop") == 1
    assert grant not in api.sim.sim.tokens.refresh_tokens(ADDRESS)
    row = await _row(api)
    assert (row["refresh_token"], row["access_token"], row["access_token_expires_at"]) == (
        None, None, None)
    assert (row["disconnected_reason"], row["sync_state"]) == ("disconnected_by_admin",
                                                               "disconnected")
    assert (row["watch_expires_at"], row["watch_history_id"]) == (None, None)
    assert await _queued(api) == []
    # The mirror and its cursor stay: a reconnect resumes incrementally.
    assert await _mirrored(api) == mirrored
    assert row["last_history_id"] == cursor
    refused = await api.call("POST", f"/api/services/{SERVICE}/sync")
    assert (refused.status, refused.json["error"]) == (409, "service_not_connected")

    # Again: nothing to do, nothing changes, no call to Google.
    again = await api.call("DELETE", PATH)
    assert again.status == 200
    assert again.json["wasConnected"] is False
    assert api.sim.sim.counters.calls("users.stop") == 1
    assert await _row(api) == row

    # Reconnecting works as before, and the sync picks up where it stopped.
    assert (await connect_through_consent(api))["status"] == "connected"
    await api.drain()
    assert api.sim.sim.active_watch(ADDRESS) is not None
    synced = await api.call("POST", f"/api/services/{SERVICE}/sync")
    assert (synced.status, synced.json["mode"]) == (200, "incremental")


async def test_a_stop_gmail_refuses_for_now_is_retried_by_the_renewal_pass(api: Api) -> None:
    grant = await _connected(api)
    api.sim.sim.faults.fail_next("users.stop", code=503, times=10)

    reply = await api.call("DELETE", PATH)
    assert reply.status == 200
    assert reply.json["wasConnected"] is True
    assert reply.json["stopPending"] is True
    assert reply.json["watchStopped"] is False
    assert "503" in reply.json["error"] or "unavailable" in reply.json["error"].lower()
    # Disconnected at once all the same: no token left on the service.
    assert (await _row(api))["refresh_token"] is None
    queued = await _queued(api)
    assert [(q["account_id"], q["reason"], q["attempts"]) for q in queued] == [
        (SERVICE, "disconnected", 1)]
    assert api.sim.sim.active_watch(ADDRESS) is not None  # still publishing

    api.sim.sim.faults.reset()
    report = await _renewal_pass(api)
    assert [(s.service_id, s.stopped, s.revoked, s.pending) for s in report.stops] == [
        (SERVICE, True, True, False)]
    assert report.stops_pending == {}
    assert api.sim.sim.active_watch(ADDRESS) is None
    assert grant not in api.sim.sim.tokens.refresh_tokens(ADDRESS)
    assert await _queued(api) == []


async def test_a_service_deleted_by_the_web_app_has_its_watch_stopped(api: Api) -> None:
    grant = await _connected(api)
    # The web app deletes services with plain SQL; the cascade takes the mirror along.
    await api.pool.execute("DELETE FROM gmail_accounts WHERE id = $1", SERVICE)
    assert [(q["account_id"], q["reason"]) for q in await _queued(api)] == [
        (SERVICE, "deleted")]
    assert await _mirrored(api) == 0

    report = await _renewal_pass(api)
    assert [(s.service_id, s.stopped, s.revoked) for s in report.stops] == [
        (SERVICE, True, True)]
    assert api.sim.sim.active_watch(ADDRESS) is None
    assert grant not in api.sim.sim.tokens.refresh_tokens(ADDRESS)
    assert await _queued(api) == []
    # A second pass has nothing left to stop.
    assert (await _renewal_pass(api)).stops == []


async def test_a_lapsed_watch_needs_no_stop_but_the_grant_is_revoked(api: Api) -> None:
    grant = await _connected(api)
    await api.pool.execute("UPDATE delightbridge_sync.services SET watch_expires_at = now() "
                           "- interval '1 minute' WHERE account_id = $1", SERVICE)
    reply = await api.call("DELETE", PATH)
    assert reply.json["watchStopped"] is True
    assert reply.json["grantRevoked"] is True
    assert api.sim.sim.counters.calls("users.stop") == 0
    assert grant not in api.sim.sim.tokens.refresh_tokens(ADDRESS)


async def test_a_grant_already_revoked_cannot_stop_and_is_not_retried(api: Api) -> None:
    await _connected(api)
    api.sim.sim.revoke_refresh_token(ADDRESS)
    reply = await api.call("DELETE", PATH)
    assert reply.status == 200
    assert reply.json["wasConnected"] is True
    assert (reply.json["watchStopped"], reply.json["stopPending"]) == (False, False)
    assert reply.json["error"] == "grant already revoked"
    # Nothing to retry: the watch lapses by itself within seven days.
    assert await _queued(api) == []
    assert (await _row(api))["disconnected_reason"] == "disconnected_by_admin"


async def test_refusals_change_nothing(api: Api) -> None:
    await _connected(api)
    before = await _row(api)
    assert (await api.call("DELETE", PATH, cookie=None)).status == 401
    await api.add_user(AGENT)
    assert (await api.call("DELETE", PATH, cookie=agent_cookie())).status == 403
    missing = await api.call("DELETE", "/api/services/svc-nope/connection")
    assert (missing.status, missing.json["error"]) == (404, "service_not_found")
    assert await _row(api) == before
    assert api.sim.sim.active_watch(ADDRESS) is not None
    assert await _queued(api) == []


async def test_a_token_no_key_opens_stays_queued_with_why(api: Api) -> None:
    """The stored refresh token was sealed (by an earlier release) under a key the API no
    longer has: the stop cannot be made, so it stays queued with its error, and the answer
    says so; once a process has the key, the renewal pass stops the watch."""
    grant = await _connected(api)
    other_key = bytes(range(100, 132))
    sealed = crypto.seal(grant, crypto.Keyring(other_key), account_id=SERVICE,
                         column="refresh_token")
    await api.pool.execute("UPDATE gmail_accounts SET refresh_token = $2, access_token = NULL "
                           "WHERE id = $1", SERVICE, sealed)
    reply = await api.call("DELETE", PATH)
    assert reply.status == 200
    assert (reply.json["watchStopped"], reply.json["grantRevoked"],
            reply.json["stopPending"]) == (False, False, True)
    assert "does not decrypt" in reply.json["error"]
    [queued] = await _queued(api)
    assert (queued["account_id"], queued["attempts"]) == (SERVICE, 1)
    assert "does not decrypt" in queued["last_error"]
    assert api.sim.sim.active_watch(ADDRESS) is not None  # still publishing: not forgotten
    # A process given the old key (as an old one) takes the stop up.
    engine_config = EngineConfig.from_settings(
        dataclasses.replace(api.settings, token_encryption_old_keys=(other_key,)))
    async with SyncEngine.open(api.pool, engine_config) as engine:
        outcomes = await watch.drain_stops(engine)
    assert [(o.stopped, o.revoked, o.pending) for o in outcomes] == [(True, True, False)]
    assert await _queued(api) == []
    assert api.sim.sim.active_watch(ADDRESS) is None
    assert grant not in api.sim.sim.tokens.refresh_tokens(ADDRESS)
