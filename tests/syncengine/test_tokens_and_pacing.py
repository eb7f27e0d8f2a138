"""OAuth tokens at rest and on the wire; errors that must not be retried; pacing."""

from __future__ import annotations

import aiohttp
import asyncpg
import pytest

from delightbridge.core.errors import GmailError
from delightbridge.sync import crypto
from delightbridge.sync.engine import EngineConfig, SyncEngine
from delightbridge.sync.gmail.quota import QuotaProfile
from delightbridge.sync.gmail.retry import FAST_POLICY
from tests.dbutil import service_state
from tests.syncengine.conftest import SyncSetup, engine_settings
from tests.syncengine.mirror import assert_mirror

KEY = bytes(range(32))


async def test_web_app_tokens_stay_plain_and_an_earlier_sealed_one_is_still_read(
    setup: SyncSetup
) -> None:
    """An earlier release sealed gmail_accounts tokens; this one reads them (with the key)
    and writes every refreshed access token plain, as the web app reads it."""
    setup.sim.seed(setup.address, messages=10, threads=3, seed=13)
    sealed_refresh = crypto.seal(setup.mailbox.refresh_token, crypto.Keyring(KEY),
                                 account_id=setup.account_id, column="refresh_token")
    await setup.pool.execute("UPDATE gmail_accounts SET refresh_token = $2 WHERE id = $1",
                             setup.account_id, sealed_refresh)
    settings = engine_settings(setup.gmail, token_encryption_key=KEY)
    config = EngineConfig.from_settings(settings, retry=FAST_POLICY, quota=QuotaProfile.unlimited())
    async with SyncEngine.open(setup.pool, config) as engine:
        await engine.sync(setup.account_id, mode="full", trigger="cli")
    row = await service_state(setup.pool, setup.account_id)
    assert not crypto.is_encrypted(row["access_token"])
    # Usable as it is, the way the web app uses it: a bearer token Gmail accepts.
    async with aiohttp.ClientSession() as http, http.get(
            f"{setup.gmail.base_url}/gmail/v1/users/me/profile",
            headers={"Authorization": f"Bearer {row['access_token']}"}) as answer:
        assert (answer.status, (await answer.json())["emailAddress"]) == (200, setup.address)
    assert row["access_token_expires_at"] is not None
    # Without the key an encrypted token is a clear error, not garbage sent to Google.
    from delightbridge.core.errors import TokenDecryptionError

    with pytest.raises(TokenDecryptionError, match="TOKEN_ENCRYPTION_KEY is unset"):
        await setup.engine.sync(setup.account_id, trigger="cli")


async def test_cached_access_token_is_reused_then_refreshed_after_expiry(
    setup: SyncSetup
) -> None:
    setup.sim.seed(setup.address, messages=10, threads=3, seed=14)
    await setup.engine.sync(setup.account_id, mode="full", trigger="cli")
    token = await setup.pool.fetchval("SELECT access_token FROM gmail_accounts WHERE id = $1",
                                      setup.account_id)
    refreshes = setup.sim.counters.calls("oauth.token")
    await setup.engine.sync(setup.account_id, trigger="poll")
    assert setup.sim.counters.calls("oauth.token") == refreshes  # cached token reused
    # Google invalidates it early (401): refreshed once, the sync goes on.
    setup.sim.expire_access_tokens(setup.address)
    setup.sim.deliver(setup.address)
    result = await setup.engine.sync(setup.account_id, trigger="poll")
    assert result.messages_processed == 1
    assert setup.sim.counters.calls("oauth.token") == refreshes + 1
    assert await setup.pool.fetchval("SELECT access_token FROM gmail_accounts WHERE id = $1",
                                     setup.account_id) != token


async def test_an_error_retrying_cannot_fix_surfaces_at_once(setup: SyncSetup) -> None:
    setup.sim.seed(setup.address, messages=5, threads=2, seed=15)
    await setup.engine.sync(setup.account_id, mode="full", trigger="cli")
    calls = setup.sim.counters.calls("users.history.list")
    setup.sim.faults.fail_next("users.history.list", code=400)
    with pytest.raises(GmailError, match="400") as caught:
        await setup.engine.sync(setup.account_id, trigger="poll")
    assert type(caught.value) is GmailError
    assert setup.sim.counters.calls("users.history.list") == calls + 1  # no retry
    state = await service_state(setup.pool, setup.account_id)
    assert state["sync_state"] == "error"
    assert "400" in state["last_sync_error"]
    # The next sync succeeds and clears the error.
    await setup.engine.sync(setup.account_id, trigger="poll")
    assert (await service_state(setup.pool, setup.account_id))["sync_state"] == "connected"


async def test_pacing_keeps_a_full_sync_under_gmails_quota(
    setup: SyncSetup, pool: asyncpg.Pool
) -> None:
    setup.sim.seed(setup.address, messages=120, threads=40, seed=16)
    setup.sim.quota.update(units_per_second=250.0)  # the legacy per-user budget, enforced
    config = EngineConfig.from_settings(
        engine_settings(setup.gmail, gmail_quota_profile="legacy"), retry=FAST_POLICY)
    assert (config.quota.user_units, config.quota.user_window) == (250, 1.0)
    async with SyncEngine.open(pool, config) as engine:
        await engine.sync(setup.account_id, mode="full", trigger="cli")
    assert setup.sim.counters.total_errors() == 0  # no 429, no 403
    await assert_mirror(pool, setup.account_id, setup.sim.snapshot(setup.address))


async def test_every_client_of_a_mailbox_shares_its_pacer(setup: SyncSetup,
                                                          pool: asyncpg.Pool) -> None:
    """An import and an incremental of the same mailbox draw on one budget."""
    config = EngineConfig.from_settings(
        engine_settings(setup.gmail, gmail_quota_profile="2026"), retry=FAST_POLICY)
    async with SyncEngine.open(pool, config) as engine:
        service = await engine.service(setup.account_id)
        first, second = engine.client_for(service), engine.client_for(service)
        pacer = engine.pacer_for(setup.account_id)
        assert first._pacer is second._pacer is pacer
        assert engine.pacer_for("another") is not pacer
        assert (pacer.limit, pacer.window) == (6000 * 0.98, 60.0)  # the 2026 model
