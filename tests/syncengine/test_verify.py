"""Reconciliation: verify finds every kind of drift, --repair fixes it, pending is not drift."""

from __future__ import annotations

import asyncio
import os
import sys

import pytest

from delightbridge.core.errors import GmailUnavailable
from delightbridge.core.settings import variable_names
from delightbridge.local.pubsub_emulator import free_port
from delightbridge.sync.engine import EngineConfig, SyncEngine
from delightbridge.sync.gmail.quota import QuotaProfile
from delightbridge.sync.gmail.retry import FAST_POLICY
from delightbridge.sync.lock import service_lock
from delightbridge.sync.verify import verify
from tests.syncengine.conftest import SyncSetup, engine_settings
from tests.syncengine.mirror import assert_mirror


async def _synced(setup: SyncSetup) -> list[str]:
    setup.sim.seed(setup.address, messages=60, threads=20, seed=21)
    await setup.engine.sync(setup.account_id, mode="full", trigger="cli")
    rows = await setup.pool.fetch("SELECT gmail_message_id FROM emails ORDER BY 1")
    return [r["gmail_message_id"] for r in rows]


async def test_an_exact_mirror_verifies_equal_and_new_mail_is_pending(setup: SyncSetup) -> None:
    await _synced(setup)
    drift = await verify(setup.engine, setup.account_id, deep=True)
    assert drift.equal
    assert drift.checked > 50
    assert drift.pending == 0
    setup.sim.deliver(setup.address)  # not synced yet: pending, not drift
    drift = await verify(setup.engine, setup.account_id, deep=True)
    assert drift.equal
    assert drift.pending == 1


async def _damage(setup: SyncSetup, ids: list[str]) -> dict[str, str]:
    """Break the mirror the ways a buggy writer could."""
    pool = setup.pool
    await pool.execute("DELETE FROM emails WHERE gmail_message_id = $1", ids[0])
    await pool.execute("UPDATE delightbridge_sync.messages "
                       "SET label_ids = array_append(label_ids, 'STARRED') "
                       "WHERE email_id = (SELECT id FROM emails WHERE gmail_message_id = $1)",
                       ids[1])
    await pool.execute("UPDATE delightbridge_sync.messages SET content_hash = 'bogus' "
                       "WHERE email_id = (SELECT id FROM emails WHERE gmail_message_id = $1)",
                       ids[2])
    await pool.execute("UPDATE emails SET body = '<p>edited</p>' WHERE gmail_message_id = $1",
                       ids[2])
    thread = await pool.fetchval("SELECT thread_id FROM emails WHERE gmail_message_id = $1",
                                 ids[3])
    await pool.execute(
        "INSERT INTO emails (id, thread_id, gmail_message_id, from_email, from_name, to_email, "
        "body, direction, sent_at) VALUES ('email-svc-noji-ffff', $1, 'ffffffffffffffff', "
        "'x@y.example', 'X', 'support@noji.example', '<p>ghost</p>', 'inbound', now())", thread)
    return {"missing": ids[0], "labels": ids[1], "content": ids[2],
            "extra": "ffffffffffffffff"}


async def test_every_kind_of_drift_is_reported(setup: SyncSetup) -> None:
    damage = await _damage(setup, await _synced(setup))
    shallow = await verify(setup.engine, setup.account_id)
    assert (shallow.missing, shallow.extra, shallow.labels) == (
        [damage["missing"]], [damage["extra"]], [damage["labels"]])
    assert shallow.content == []
    assert not shallow.equal
    deep = await verify(setup.engine, setup.account_id, deep=True)
    assert deep.content == [damage["content"]]


def _env(setup: SyncSetup, db_url: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in variable_names()}
    env.update({"DATABASE_URL": db_url, "GMAIL_API_ENDPOINT": setup.gmail.base_url,
                "GOOGLE_OAUTH_TOKEN_URI": setup.gmail.token_uri,
                "GOOGLE_CLIENT_ID": setup.sim.client_id,
                "GOOGLE_CLIENT_SECRET": setup.sim.client_secret,
                "GMAIL_QUOTA_USER_UNITS": "100000000"})
    return env


async def _verify_cli(setup: SyncSetup, db_url: str, *args: str) -> tuple[int, str]:
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "delightbridge.cli.main", "verify", *args, env=_env(setup, db_url),
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    out, err = await asyncio.wait_for(proc.communicate(), timeout=120)
    assert proc.returncode is not None, err
    return proc.returncode, out.decode()


async def test_verify_command_exit_codes_and_repair(setup: SyncSetup, db_url: str) -> None:
    damage = await _damage(setup, await _synced(setup))
    setup.sim.deliver(setup.address)  # pending as well
    code, out = await _verify_cli(setup, db_url, setup.account_id, "--deep")
    assert code == 1
    assert "DRIFT" in out
    assert damage["extra"] in out
    code, out = await _verify_cli(setup, db_url, "--all", "--deep", "--repair")
    assert code == 0, out
    assert "repaired by an incremental sync" in out
    await assert_mirror(setup.pool, setup.account_id, setup.sim.snapshot(setup.address))
    run = await setup.pool.fetchrow("SELECT trigger, mode, status FROM delightbridge_sync.runs "
                                    "ORDER BY started_at DESC LIMIT 1")
    assert dict(run) == {"trigger": "repair", "mode": "incremental", "status": "succeeded"}
    code, out = await _verify_cli(setup, db_url, setup.account_id, "--deep")
    assert code == 0
    assert ": equal:" in out


async def test_an_unreachable_gmail_fails_fast_and_never_holds_the_lock(
    setup: SyncSetup,
) -> None:
    """Found by a newcomer: verify from a second shell, against endpoints it could not
    reach, retried for 40 s while holding each mailbox's sync lock, so the running
    consumer's syncs waited. Now a host that cannot be reached is tried three times,
    and verify finds out before it takes the lock."""
    closed = free_port()  # nothing listens there: connection refused
    settings = engine_settings(setup.gmail, gmail_api_endpoint=f"http://127.0.0.1:{closed}")
    config = EngineConfig.from_settings(settings, retry=FAST_POLICY,
                                        quota=QuotaProfile.unlimited())
    async with SyncEngine.open(setup.pool, config) as engine, \
            service_lock(setup.pool, setup.account_id):  # a sync is running meanwhile
        with pytest.raises(GmailUnavailable, match=f"unreachable at 127.0.0.1:{closed}"):
            await verify(engine, setup.account_id, wait=5.0)
        client = engine.client_for(await engine.service(setup.account_id))
        with pytest.raises(GmailUnavailable):
            await client.profile()
        assert client.stats.http_requests == FAST_POLICY.connect_attempts
