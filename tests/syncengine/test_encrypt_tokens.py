"""encrypt-tokens seals plaintext tokens in place, once, and syncs go on working."""

from __future__ import annotations

import asyncio
import base64
import os
import sys

from delightbridge.settings import variable_names
from syncengine import crypto, watch
from syncengine.engine import EngineConfig, SyncEngine
from syncengine.gmail.retry import FAST_POLICY
from tests.syncengine.conftest import SyncSetup, engine_settings

KEY = bytes(range(1, 33))


async def _cli(db_url: str, env_extra: dict[str, str]) -> tuple[int, str, str]:
    env = {k: v for k, v in os.environ.items() if k not in variable_names()}
    env.update({"DATABASE_URL": db_url, **env_extra})
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "delightbridge.cli", "encrypt-tokens", env=env,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    out, err = await asyncio.wait_for(proc.communicate(), timeout=60)
    assert proc.returncode is not None
    return proc.returncode, out.decode(), err.decode()


async def test_encrypt_tokens_in_place_then_sync(setup: SyncSetup, db_url: str) -> None:
    setup.sim.seed(setup.address, messages=5, threads=2, seed=40)
    await setup.engine.sync(setup.account_id, mode="full", trigger="cli")  # stores a token
    code, _, err = await _cli(db_url, {})
    assert code == 2
    assert "TOKEN_ENCRYPTION_KEY" in err
    key = {"TOKEN_ENCRYPTION_KEY": base64.b64encode(KEY).decode()}
    code, out, err = await _cli(db_url, key)
    assert code == 0, err
    assert out.strip() == "encrypted the tokens of 1 service(s)"
    row = await setup.pool.fetchrow("SELECT access_token, refresh_token FROM gmail_accounts")
    assert crypto.is_encrypted(row["access_token"])
    assert crypto.is_encrypted(row["refresh_token"])
    assert setup.mailbox.refresh_token not in row["refresh_token"]
    code, out, _ = await _cli(db_url, key)
    assert out.strip() == "encrypted the tokens of 0 service(s)"  # idempotent
    config = EngineConfig.from_settings(engine_settings(setup.gmail, token_encryption_key=KEY),
                                        retry=FAST_POLICY, units_per_second=1e6)
    setup.sim.deliver(setup.address)
    async with SyncEngine.open(setup.pool, config) as engine:
        result = await engine.sync(setup.account_id, trigger="poll")
    assert result.messages_processed == 1


async def test_encrypt_tokens_seals_queued_watch_stops(setup: SyncSetup, db_url: str) -> None:
    """A service deleted before its watch was stopped keeps its tokens in the queue
    until the renewal pass: those are sealed too, and the stop still works after."""
    await setup.engine.sync(setup.account_id, mode="full", trigger="cli")  # stores a token
    await setup.pool.execute("DELETE FROM gmail_accounts WHERE id = $1", setup.account_id)
    key = {"TOKEN_ENCRYPTION_KEY": base64.b64encode(KEY).decode()}
    code, out, err = await _cli(db_url, key)
    assert code == 0, err
    assert out.strip() == "encrypted the tokens of 0 service(s) and 1 queued watch stop(s)"
    row = await setup.pool.fetchrow(
        "SELECT access_token, refresh_token FROM delightbridge_sync.watch_stops")
    assert crypto.is_encrypted(row["access_token"])
    assert crypto.is_encrypted(row["refresh_token"])
    config = EngineConfig.from_settings(engine_settings(setup.gmail, token_encryption_key=KEY),
                                        retry=FAST_POLICY, units_per_second=1e6)
    async with SyncEngine.open(setup.pool, config) as engine:
        outcomes = await watch.drain_stops(engine)
    assert [(o.service_id, o.revoked, o.pending) for o in outcomes] == [
        (setup.account_id, True, False)]
    assert setup.mailbox.refresh_token not in setup.sim.tokens.refresh_tokens(setup.address)
