"""The newcomer's first ten minutes, through ``python3 dev.py run`` in a fresh checkout.

The checkout is new (``dev.py``, the two ``pyproject.toml`` and ``constraints.txt`` copied to an
empty directory, so the data directory ``.delightbridge`` starts empty) and shares the
suite's ``.venv`` (same fingerprint: ``dev.py`` installs nothing). The demo runs in push
mode (no java on PATH) to start fast; ``tests/test_demo.py`` covers the emulator.

Each demo runs in a process group of its own, as in a terminal: a "Ctrl-C" is SIGINT
to the whole group (dev.py and the demo both receive it).
"""

from __future__ import annotations

import asyncio
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import asyncpg
import pytest

from delightbridge.core import demo_dir
from delightbridge.core.settings import variable_names
from delightbridge.local.pubsub_emulator import free_port

ROOT = Path(__file__).resolve().parents[1]
LINE_TIMEOUT = 120.0


class Demo:
    """One ``python3 dev.py run`` and everything it printed."""

    def __init__(self, proc: asyncio.subprocess.Process) -> None:
        self.proc = proc
        self.lines: list[str] = []

    @property
    def output(self) -> str:
        return "".join(self.lines)

    async def line(self, pattern: str) -> str:
        assert self.proc.stdout is not None
        stdout = self.proc.stdout

        async def read() -> str:
            while line := (await stdout.readline()).decode():
                self.lines.append(line)
                if re.search(pattern, line):
                    return line
            raise AssertionError(f"demo output ended before {pattern!r}:\n{self.output}")

        return await asyncio.wait_for(read(), LINE_TIMEOUT)

    async def ctrl_c(self) -> int:
        """SIGINT to the process group, as a terminal sends it; the exit code."""
        if self.proc.returncode is None:
            os.killpg(self.proc.pid, signal.SIGINT)
        return await self.finish()

    async def finish(self) -> int:
        rest, _ = await asyncio.wait_for(self.proc.communicate(), timeout=90)
        self.lines.append(rest.decode())
        assert self.proc.returncode is not None
        return self.proc.returncode


@pytest.fixture
def checkout(tmp_path: Path) -> Path:
    clone = tmp_path / "clone"
    clone.mkdir()
    (clone / "sim").mkdir()
    for name in ("dev.py", "pyproject.toml", "sim/pyproject.toml", "constraints.txt"):
        shutil.copy2(ROOT / name, clone / name)
    (clone / ".venv").symlink_to(ROOT / ".venv")
    (tmp_path / "bin").mkdir()  # no java: push mode
    return clone


def _env(checkout: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items()
           if k not in variable_names() and k != "DELIGHTBRIDGE_ENV_FILE"}
    env["PATH"] = str(checkout.parent / "bin")
    return env


async def _start(checkout: Path, port: int, *extra: str) -> Demo:
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "dev.py", "run", "--port", str(port), "--mail-every", "0.5", *extra,
        cwd=checkout, env=_env(checkout), start_new_session=True,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT)
    return Demo(proc)


@pytest.fixture
async def demos() -> AsyncIterator[list[Demo]]:
    started: list[Demo] = []
    yield started
    for demo in started:  # a failed test leaves nothing running
        if demo.proc.returncode is None:
            os.killpg(demo.proc.pid, signal.SIGKILL)
            await demo.proc.wait()


def _left_running(data_dir: Path) -> list[str]:
    """Processes still using the data directory (the embedded PostgreSQL, say)."""
    found = subprocess.run(["pgrep", "-af", str(data_dir)], capture_output=True, text=True)
    return [line for line in found.stdout.splitlines() if "pgrep" not in line]


def _cli(checkout: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(checkout / ".venv" / "bin" / "delightbridge"), *args],
                          cwd=checkout, env=_env(checkout), capture_output=True, text=True,
                          timeout=60)


async def _counts(checkout: Path) -> tuple[int, int]:
    """(messages mirrored, sync runs recorded) in the demo's database."""
    url = demo_dir.running_env(checkout / ".delightbridge")["DATABASE_URL"]
    conn = await asyncpg.connect(url)
    try:
        return (await conn.fetchval("SELECT count(*) FROM emails"),
                await conn.fetchval("SELECT count(*) FROM delightbridge_sync.runs"))
    finally:
        await conn.close()


def _stopped_cleanly(demo: Demo, code: int, data_dir: Path) -> None:
    assert code == 0, demo.output
    assert "Traceback" not in demo.output
    assert demo.output.rstrip().endswith("demo stopped"), demo.output
    assert not _left_running(data_dir)
    assert not demo_dir.is_running(data_dir)
    assert not (data_dir / demo_dir.ENV).exists()
    # One line per synced notification, nothing else once live (piped: no JSON logs).
    lines = demo.output.splitlines()
    if "live: a line per synced notification (Ctrl-C stops)" in lines:
        after = lines[lines.index("live: a line per synced notification (Ctrl-C stops)") + 1:]
        assert after[-1] == "demo stopped"
        assert all(re.fullmatch(r"\d\d:\d\d:\d\d notification \S+ synced, \d+ ms after "
                                r"Gmail published it", line) for line in after[:-1]), after


async def test_second_demo_commands_ctrl_c_and_restart(checkout: Path, demos: list[Demo]
                                                         ) -> None:
    data_dir = checkout / ".delightbridge"
    port = free_port()
    first = await _start(checkout, port)
    demos.append(first)
    await first.line(r"^live:")
    await first.line(r"notification \S+ synced")

    # A second demo refuses in one line, before touching anything.
    second = await _start(checkout, free_port())
    demos.append(second)
    assert await second.finish() == 1
    assert second.output.strip().splitlines() == [second.output.strip()]
    assert "a demo is already running from" in second.output
    await first.line(r"notification \S+ synced")  # the first one goes on

    # The other commands reach the running demo.
    status = _cli(checkout, "status")
    assert status.returncode == 0, status.stderr
    assert status.stdout.count(" connected ") == 2, status.stdout
    verify = _cli(checkout, "verify", "--all")
    assert verify.returncode == 0, verify.stdout + verify.stderr
    assert verify.stdout.count("equal:") == 2, verify.stdout
    assert "DRIFT" not in verify.stdout
    cookie = _cli(checkout, "admin-session", "--email", "admin@delightbridge.example")
    assert cookie.returncode == 0, cookie.stderr
    assert cookie.stdout.startswith("authjs.session-token=")
    messages, runs = await _counts(checkout)
    assert messages > 0
    assert runs > 0

    # Ctrl-C while live: a clean stop, nothing left running.
    _stopped_cleanly(first, await first.ctrl_c(), data_dir)

    # A restart keeps the mailboxes, the mirror and the runs, and catches up.
    again = await _start(checkout, port)
    demos.append(again)
    await again.line(r"^live:")
    assert "initial full sync" not in again.output
    assert "catching up with demo-noji" in again.output
    assert "(kept from the last run)" in again.output
    await again.line(r"notification \S+ synced")
    kept_messages, kept_runs = await _counts(checkout)
    assert kept_messages >= messages
    assert kept_runs > runs
    verify = _cli(checkout, "verify", "--all")
    assert verify.returncode == 0, verify.stdout
    assert "DRIFT" not in verify.stdout
    assert "watch stop" not in again.output
    _stopped_cleanly(again, await again.ctrl_c(), data_dir)


async def test_ctrl_c_during_the_first_import_stops_and_the_next_start_resumes(
        checkout: Path, demos: list[Demo]) -> None:
    data_dir = checkout / ".delightbridge"
    first = await _start(checkout, free_port())
    demos.append(first)
    await first.line(r"initial full sync of demo-noji")
    _stopped_cleanly(first, await first.ctrl_c(), data_dir)
    assert "live:" not in first.output

    again = await _start(checkout, free_port())
    demos.append(again)
    await again.line(r"^live:")
    assert "initial full sync" not in again.output
    verify = _cli(checkout, "verify", "--all")
    assert verify.returncode == 0, verify.stdout
    assert verify.stdout.count("equal:") == 2, verify.stdout
    _stopped_cleanly(again, await again.ctrl_c(), data_dir)


async def test_sigterm_to_dev_py_alone_reaches_the_demo(checkout: Path, demos: list[Demo]
                                                        ) -> None:
    demo = await _start(checkout, free_port())
    demos.append(demo)
    await demo.line(r"^live:")
    demo.proc.send_signal(signal.SIGTERM)  # dev.py only: it forwards the signal
    _stopped_cleanly(demo, await demo.finish(), checkout / ".delightbridge")


async def test_a_port_in_use_is_one_line_and_nothing_starts(checkout: Path, demos: list[Demo]
                                                            ) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        demo = await _start(checkout, port)
        demos.append(demo)
        assert await demo.finish() == 1
    assert demo.output.strip().splitlines() == [
        f"delightbridge: cannot listen on 127.0.0.1:{port} for the "
        "demo's API (--port): the port is in use (another process listens there)"]
    data_dir = checkout / ".delightbridge"
    assert not (data_dir / "pgdata").exists()  # nothing was started
    assert not _left_running(data_dir)
