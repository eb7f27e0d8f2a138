"""reseal-tokens: web-app tokens plain, the service's own copies under the current key.

And encrypt-tokens, which would break the web app, is refused with one line.
"""

from __future__ import annotations

import asyncio
import base64
import os
import sys
from datetime import UTC, datetime

from delightbridge.core.settings import variable_names
from delightbridge.sync import crypto, watch
from delightbridge.sync.engine import EngineConfig, SyncEngine
from delightbridge.sync.gmail.quota import QuotaProfile
from delightbridge.sync.gmail.retry import FAST_POLICY
from tests.syncengine.conftest import SyncSetup, engine_settings

OLD, NEW = bytes(range(1, 33)), bytes(range(2, 34))
TOPIC = watch.WatchSettings("projects/delightbridge-local/topics/gmail-push")


def _b64(key: bytes) -> str:
    return base64.b64encode(key).decode()


async def _cli(db_url: str, command: str, env_extra: dict[str, str]) -> tuple[int, str, str]:
    env = {k: v for k, v in os.environ.items() if k not in variable_names()}
    env.update({"DATABASE_URL": db_url, **env_extra})
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "delightbridge.cli.main", command, env=env,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    out, err = await asyncio.wait_for(proc.communicate(), timeout=60)
    assert proc.returncode is not None
    return proc.returncode, out.decode(), err.decode()


def _sealed(value: str, key: bytes, account: str, column: str) -> str:
    return crypto.seal(value, crypto.Keyring(key), account_id=account, column=column)


async def test_encrypt_tokens_is_refused_in_one_line(setup: SyncSetup, db_url: str) -> None:
    before = await setup.pool.fetchrow("SELECT access_token, refresh_token FROM gmail_accounts")
    code, out, err = await _cli(db_url, "encrypt-tokens", {"TOKEN_ENCRYPTION_KEY": _b64(NEW)})
    assert (code, out) == (2, "")
    assert len(err.strip().splitlines()) == 1
    assert "the web app reads gmail_accounts tokens as plain values" in err
    assert await setup.pool.fetchrow(
        "SELECT access_token, refresh_token FROM gmail_accounts") == before


async def test_reseal_restores_web_app_tokens_and_rotates_the_queued_ones(
    setup: SyncSetup, db_url: str
) -> None:
    """An earlier release sealed the web app's refresh token with OLD; a deleted service's
    stop is queued with OLD-sealed tokens. Rotating to NEW: the web app's token is plain
    again, the queued copies sealed with NEW, and the stop still works."""
    sim = setup.sim
    other = sim.create_mailbox("gone@noji.example")
    await setup.pool.execute(
        "UPDATE gmail_accounts SET refresh_token = $2 WHERE id = $1", setup.account_id,
        _sealed(setup.mailbox.refresh_token, OLD, setup.account_id, "refresh_token"))
    await setup.pool.execute(
        "INSERT INTO delightbridge_sync.watch_stops (account_id, email, refresh_token, reason) "
        "VALUES ('svc-gone', $1, $2, 'deleted')", other.address,
        _sealed(other.refresh_token, OLD, "svc-gone", "refresh_token"))

    # Without the old key nothing opens: nothing changes, and each value is named.
    code, out, err = await _cli(db_url, "reseal-tokens", {"TOKEN_ENCRYPTION_KEY": _b64(NEW)})
    assert code == 1
    assert "the refresh_token of svc-noji opens with no key" in err
    assert "watch stop" in err
    assert setup.mailbox.refresh_token not in err + out
    assert crypto.is_encrypted(await setup.pool.fetchval(
        "SELECT refresh_token FROM gmail_accounts"))

    keys = {"TOKEN_ENCRYPTION_KEY": _b64(NEW), "TOKEN_ENCRYPTION_OLD_KEYS": _b64(OLD)}
    code, out, err = await _cli(db_url, "reseal-tokens", keys)
    assert code == 0, err
    assert out.strip() == ("web app tokens made plain again: 1 service(s); queued watch "
                           "stops sealed with TOKEN_ENCRYPTION_KEY: 1 changed")
    assert await setup.pool.fetchval(
        "SELECT refresh_token FROM gmail_accounts") == setup.mailbox.refresh_token
    queued = await setup.pool.fetchval("SELECT refresh_token FROM delightbridge_sync.watch_stops")
    assert crypto.is_current(queued, crypto.Keyring(NEW), account_id="svc-gone",
                             column="refresh_token")
    code, out, _ = await _cli(db_url, "reseal-tokens", keys)  # idempotent
    assert out.strip().endswith("0 service(s); queued watch stops sealed with "
                                "TOKEN_ENCRYPTION_KEY: 0 changed")

    config = EngineConfig.from_settings(engine_settings(setup.gmail, token_encryption_key=NEW),
                                        retry=FAST_POLICY, quota=QuotaProfile.unlimited())
    async with SyncEngine.open(setup.pool, config) as engine:
        outcomes = await watch.drain_stops(engine)
        assert [(o.service_id, o.revoked) for o in outcomes] == [("svc-gone", True)]
        await engine.sync(setup.account_id, mode="full", trigger="cli")


async def test_a_renewal_pass_seals_the_tokens_of_stops_left_queued(setup: SyncSetup) -> None:
    """The trigger queues a deleted service's tokens as the web app's columns had them,
    plain; a stop that must be retried keeps them sealed after the pass."""
    now = datetime.fromtimestamp(setup.sim.clock.now(), UTC)
    await watch.renew_all(setup.engine, TOPIC, now=now)
    await setup.engine.sync(setup.account_id, mode="full", trigger="cli")
    await setup.pool.execute("DELETE FROM gmail_accounts WHERE id = $1", setup.account_id)
    queued = await setup.pool.fetchval("SELECT refresh_token FROM delightbridge_sync.watch_stops")
    assert queued == setup.mailbox.refresh_token
    config = EngineConfig.from_settings(engine_settings(setup.gmail, token_encryption_key=NEW),
                                        retry=FAST_POLICY, quota=QuotaProfile.unlimited())
    setup.sim.faults.fail_next("users.stop", code=503, times=10)
    async with SyncEngine.open(setup.pool, config) as engine:
        outcomes = await watch.drain_stops(engine, now=now)
    assert [o.pending for o in outcomes] == [True]
    row = await setup.pool.fetchrow(
        "SELECT access_token, refresh_token FROM delightbridge_sync.watch_stops")
    assert all(crypto.is_encrypted(v) for v in row.values())
