"""``delightbridge sync`` as an operator runs it, against the simulator."""

from __future__ import annotations

import asyncio
import os
import re
import sys

from delightbridge.core.settings import variable_names
from tests.syncengine.conftest import SyncSetup


async def _run(setup: SyncSetup, db_url: str, *args: str) -> tuple[int, str, str]:
    env = {k: v for k, v in os.environ.items() if k not in variable_names()}
    env.update({
        "DATABASE_URL": db_url, "GMAIL_API_ENDPOINT": setup.gmail.base_url,
        "GOOGLE_OAUTH_TOKEN_URI": setup.gmail.token_uri,
        "GOOGLE_CLIENT_ID": setup.sim.client_id, "GOOGLE_CLIENT_SECRET": setup.sim.client_secret,
        "GMAIL_QUOTA_USER_UNITS": "100000000", "LOG_FORMAT": "json",
    })
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "delightbridge.cli.main", "sync", *args, env=env,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    out, err = await asyncio.wait_for(proc.communicate(), timeout=120)
    assert proc.returncode is not None
    return proc.returncode, out.decode(), err.decode()


async def test_sync_command_prints_a_summary(setup: SyncSetup, db_url: str) -> None:
    setup.sim.seed(setup.address, messages=30, threads=8, seed=12)
    code, out, err = await _run(setup, db_url, setup.account_id, "--mode", "full")
    assert code == 0, err
    [line] = out.strip().splitlines()
    assert line.startswith(f"ok: full sync of {setup.account_id} in ")
    stored = await setup.pool.fetchval("SELECT count(*) FROM emails")
    assert f"messagesProcessed={stored}" in line
    assert "importing" in err  # progress lines on stderr, with done of total
    assert re.search(r"done \d+/\d+ \(\d+ %\)", err), err
    assert setup.mailbox.refresh_token not in out + err


async def test_sync_command_unknown_service_is_one_line(setup: SyncSetup, db_url: str) -> None:
    code, _out, err = await _run(setup, db_url, "svc-nope")
    assert code == 1
    assert err.strip().splitlines()[-1] == "delightbridge: No service 'svc-nope' exists."
    assert "Traceback" not in err


