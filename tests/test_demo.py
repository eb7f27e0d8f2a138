"""The README's run command on a fresh machine: the whole service, locally, push-driven."""

from __future__ import annotations

import asyncio
import os
import re
import signal
import sys
from pathlib import Path

import aiohttp
import pytest

from delightbridge.core.settings import variable_names
from delightbridge.local.pubsub_emulator import free_port

LINE_TIMEOUT = 120.0


async def _line_matching(stream: asyncio.StreamReader, pattern: str, seen: list[str]) -> str:
    async def read() -> str:
        while line := (await stream.readline()).decode():
            seen.append(line)
            if re.search(pattern, line):
                return line
        raise AssertionError(f"demo output ended before {pattern!r}:\n{''.join(seen)}")

    return await asyncio.wait_for(read(), LINE_TIMEOUT)


@pytest.mark.parametrize("pubsub", ["emulator", "no-java"])
async def test_demo_runs_everything_and_stops_cleanly(tmp_path: Path, pubsub: str) -> None:
    """With java, notifications go through Google's Pub/Sub emulator; without (an empty
    PATH), the simulator pushes signed envelopes to the consumer's push endpoint."""
    env = {k: v for k, v in os.environ.items()
           if k not in variable_names() and k != "DELIGHTBRIDGE_ENV_FILE"}
    if pubsub == "no-java":
        (tmp_path / "bin").mkdir()
        env["PATH"] = str(tmp_path / "bin")
    port = free_port()
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "delightbridge.cli.main", "demo", "--port", str(port),
        "--mail-every", "0.5", cwd=tmp_path, env={**env, "LOG_LEVEL": "WARNING"},
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT)
    assert proc.stdout is not None
    seen: list[str] = []
    try:
        curl = await _line_matching(proc.stdout, r"^\s+curl --request POST", seen)
        url = re.search(r"--url '([^']+)'", curl)
        cookie = re.search(r"--cookie '([^']+)'", curl)
        assert url
        assert cookie
        await _line_matching(proc.stdout, r"^live:", seen)
        # The seed's request, as printed.
        async with aiohttp.ClientSession() as session, session.post(
            url.group(1), headers={"Cookie": cookie.group(1)}
        ) as response:
            body = await response.json()
        assert response.status == 200, body
        assert body["ok"] is True
        assert body["mode"] == "incremental"
        assert isinstance(body["threadsProcessed"], int)
        # New mail keeps arriving and each change is synced as it comes.
        await _line_matching(proc.stdout, r"notification \S+ synced", seen)
    finally:
        if proc.returncode is None:
            proc.send_signal(signal.SIGINT)
        rest, _ = await asyncio.wait_for(proc.communicate(), timeout=90)
        seen.append(rest.decode())
    output = "".join(seen)
    assert proc.returncode == 0, output
    assert "demo stopped" in output
    assert "Traceback" not in output
    assert "initial full sync of demo-noji" in output
    if pubsub == "no-java":
        assert "the simulator pushes to the consumer directly" in output
        assert "push from the simulator" in output
    else:
        assert "Pub/Sub        emulator at 127.0.0.1:" in output
