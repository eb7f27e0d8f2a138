"""``delightbridge consume`` as a real process: signals, exit codes, one-line errors, logs.

The process pulls from the emulator and syncs from the simulator through a gate that
holds Gmail's ``history.list``, so SIGTERM lands in the middle of a sync for certain.
Its JSON log lines on stderr are the events the test waits for.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import os
import signal
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from delightbridge.core.settings import variable_names
from tests.consumer.conftest import PROJECT, TOKEN_KEY, Env, Gate

SERVICE, ADDRESS = "service-noji", "support@noji.example"
ROOT = Path(__file__).resolve().parents[2]


def process_env(env: Env, **changes: str) -> dict[str, str]:
    clean = {k: v for k, v in os.environ.items()
             if k not in variable_names() and k != "DELIGHTBRIDGE_ENV_FILE"}
    values = {
        "DATABASE_URL": env.db_url,
        "GOOGLE_CLIENT_ID": env.sim.client_id,
        "GOOGLE_CLIENT_SECRET": env.sim.client_secret,
        "GOOGLE_OAUTH_TOKEN_URI": env.server.token_uri,
        "GMAIL_API_ENDPOINT": env.server.base_url,
        "TOKEN_ENCRYPTION_KEY": base64.b64encode(TOKEN_KEY).decode(),
        "PUBSUB_PROJECT": PROJECT,
        "PUBSUB_SUBSCRIPTION": env.pubsub.subscription,
        "PUBSUB_EMULATOR_HOST": env.pubsub.host,
        "LOG_FORMAT": "json",
        "PYTHONPATH": str(ROOT),
    }
    values.update(changes)
    return {**clean, **values}


class Process:
    """The consumer process and the JSON log lines it wrote, waitable by ``action``."""

    def __init__(self, proc: asyncio.subprocess.Process) -> None:
        self.proc = proc
        self.lines: list[str] = []
        self.records: list[dict[str, Any]] = []
        self._changed = asyncio.Event()
        self._reader = asyncio.create_task(self._read())

    async def _read(self) -> None:
        assert self.proc.stderr is not None
        async for raw in self.proc.stderr:
            line = raw.decode("utf-8", "replace").rstrip("\n")
            self.lines.append(line)
            with contextlib.suppress(ValueError):
                self.records.append(json.loads(line))
            self._changed.set()
        self._changed.set()

    async def logged(self, action: str, within: float = 30.0) -> dict[str, Any]:
        async with asyncio.timeout(within):
            while True:
                found = next((r for r in self.records if r.get("action") == action), None)
                if found is not None:
                    return found
                if self._reader.done():
                    raise AssertionError(f"exited without logging {action}:\n"
                                         + "\n".join(self.lines[-30:]))
                self._changed.clear()
                await self._changed.wait()

    async def exit_code(self, within: float = 60.0) -> int:
        async with asyncio.timeout(within):
            code = await self.proc.wait()
            await self._reader
        return code

    def actions(self) -> list[str]:
        return [r.get("action", "") for r in self.records]


@asynccontextmanager
async def consumer_process(env: Env, *args: str, cwd: Path, **variables: str
                           ) -> AsyncIterator[Process]:
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "delightbridge.cli.main", "consume", "--host", "127.0.0.1",
        "--port", "0", *args,
        env=process_env(env, **variables), cwd=cwd, stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.PIPE)
    process = Process(proc)
    try:
        yield process
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
        await process._reader


def assert_no_secret(process: Process, env: Env) -> None:
    text = "\n".join(process.lines)
    for secret in (env.sim.client_secret, base64.b64encode(TOKEN_KEY).decode(),
                   *env.refresh_tokens):
        assert secret not in text


async def test_sigterm_mid_sync_lets_it_commit_then_exits_0(env: Env, gate: Gate,
                                                            tmp_path: Path) -> None:
    await env.connect(SERVICE, ADDRESS)
    gate.close()
    async with consumer_process(env, "--shutdown-timeout", "30", cwd=tmp_path,
                                GMAIL_API_ENDPOINT=gate.base_url) as process:
        await process.logged("consumer.started")
        new_id = env.sim.deliver(ADDRESS, subject="Sent just before the deploy")
        async with asyncio.timeout(15):
            await gate.entered.wait()  # the process's sync is inside history.list now
        process.proc.send_signal(signal.SIGTERM)
        stopping = await process.logged("consumer.stopping")
        assert stopping["running"] == 1
        gate.open()
        assert await process.exit_code() == 0
        synced = await process.logged("consumer.synced")
        assert synced["service"] == SERVICE
        assert process.actions().index("consumer.stopping") < process.actions().index(
            "consumer.synced") < process.actions().index("consumer.stopped")
        assert "consumer.settle_failed" not in process.actions()  # the late ack went out
        assert_no_secret(process, env)
    assert new_id in await env.mirrored(SERVICE)
    # After a restart, the next change syncs on top: nothing lost, nothing doubled.
    restart = env.settings(pubsub_subscription=env.pubsub.another_subscription())
    async with env.run(settings=restart) as restarted:
        later = env.sim.deliver(ADDRESS, subject="After the deploy")
        await restarted.recorder.wait_for(
            lambda r: any(o.status == "synced" for _, o in r.outcomes))
    assert later in await env.mirrored(SERVICE)
    await env.assert_mirrors(SERVICE, ADDRESS)


async def test_sigterm_past_the_grace_period_nacks_and_nothing_is_lost(
        env: Env, gate: Gate, tmp_path: Path) -> None:
    await env.connect(SERVICE, ADDRESS)
    gate.close()
    async with consumer_process(env, "--shutdown-timeout", "0.3", cwd=tmp_path,
                                GMAIL_API_ENDPOINT=gate.base_url) as process:
        await process.logged("consumer.started")
        new_id = env.sim.deliver(ADDRESS, subject="Sent during the deploy")
        async with asyncio.timeout(15):
            await gate.entered.wait()
        process.proc.send_signal(signal.SIGTERM)
        assert await process.exit_code() == 0
        nacked = await process.logged("consumer.nacked")
        assert nacked["error_code"] == "shutting_down"
        assert (await process.logged("consumer.stopped"))["cancelled_syncs"] == 1
    runs = await env.sync_runs(SERVICE)
    assert (runs[-1]["status"], runs[-1]["error_code"]) == ("failed", "cancelled")
    assert new_id not in await env.mirrored(SERVICE)
    assert "consumer.settle_failed" not in process.actions()  # the nack went out
    # Pub/Sub redelivers a nacked message; the emulator does not reliably hand one out
    # again once its stream closed (test_pull_bridge checks the nack itself), so the
    # restarted worker gets the same notification republished.
    gate.open()
    restart = env.settings(pubsub_subscription=env.pubsub.another_subscription())
    async with env.run(settings=restart) as restarted:
        again = await env.pubsub.send({"emailAddress": ADDRESS,
                                       "historyId": env.sim.history_id(ADDRESS)})
        await restarted.recorder.wait_for_message(again, status="synced")
    await env.assert_mirrors(SERVICE, ADDRESS)


async def test_a_second_signal_skips_the_grace_period(env: Env, gate: Gate,
                                                      tmp_path: Path) -> None:
    await env.connect(SERVICE, ADDRESS)
    gate.close()
    async with consumer_process(env, "--shutdown-timeout", "300", cwd=tmp_path,
                                GMAIL_API_ENDPOINT=gate.base_url) as process:
        await process.logged("consumer.started")
        env.sim.deliver(ADDRESS, subject="Stuck")
        async with asyncio.timeout(15):
            await gate.entered.wait()
        process.proc.send_signal(signal.SIGINT)
        await process.logged("consumer.stopping")
        process.proc.send_signal(signal.SIGINT)
        assert await process.exit_code(within=30) == 0
        assert "consumer.force_stop" in process.actions()
        assert (await process.logged("consumer.stopped"))["cancelled_syncs"] == 1


async def test_start_up_errors_are_one_line_with_an_exit_code(env: Env, tmp_path: Path
                                                              ) -> None:
    missing = f"projects/{PROJECT}/subscriptions/no-such-subscription"
    async with consumer_process(env, cwd=tmp_path, PUBSUB_SUBSCRIPTION=missing) as process:
        assert await process.exit_code() == 1
        assert process.lines[-1] == (f"delightbridge: Pub/Sub subscription {missing} "
                                     "does not exist.")
    async with consumer_process(env, "--concurrency", "0", cwd=tmp_path) as process:
        assert await process.exit_code() == 2
        assert process.lines[-1] == ("delightbridge: invalid configuration: "
                                     "CONSUMER_CONCURRENCY: must be from 1 to 256, got 0")
