"""Child processes of the harness: how they are started and measured.

Every measured client (an engine full sync, the reference algorithm, the consumer)
runs in its own process, ``python -m bench.child JOB``: the job's parameters arrive
as one JSON line on stdin, events and the result leave as JSON lines on stdout (logs
go to stderr), and closing stdin asks a long-running job to stop. A process of its
own gives each figure its own CPU time and peak RSS, and keeps the simulator and the
harness out of the engine's event loop.

``ENGINE_PATH`` (``--engine-path``) puts a directory holding another ``delightbridge/``
package (a prototype) first on the children's ``sys.path``, so a change can be measured
against the same simulator, database and machine as the current engine.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
ENGINE_PATH: str | None = None
LOG_DIR: Path | None = None  # children's stderr goes here when set


def child_env(*, engine: bool = False, engine_path: str | None = None) -> dict[str, str]:
    env = dict(os.environ)
    paths = [str(ROOT)]
    path = engine_path or ENGINE_PATH
    if engine and path:
        paths.insert(0, path)
    env["PYTHONPATH"] = os.pathsep.join(paths)
    env.setdefault("PYTHONHASHSEED", "0")
    return env


def _stat_fields(pid: int) -> list[str]:
    with open(f"/proc/{pid}/stat") as f:
        return f.read().rpartition(")")[2].split()


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of a live process (all its threads)."""
    try:
        fields = _stat_fields(pid)
    except OSError:
        return float("nan")
    ticks = os.sysconf("SC_CLK_TCK")
    return (int(fields[11]) + int(fields[12])) / ticks


def rss_mb(pid: int) -> float:
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return float("nan")


def machine_busy() -> tuple[float, float]:
    """(busy, total) jiffies of the whole machine, from /proc/stat."""
    with open("/proc/stat") as f:
        values = [int(v) for v in f.readline().split()[1:]]
    idle = values[3] + (values[4] if len(values) > 4 else 0)
    total = sum(values[:8])
    return total - idle, total


def _open_log(directory: Path, job: str) -> Any:
    directory.mkdir(parents=True, exist_ok=True)
    return (directory / f"{job}.log").open("ab")


class Child:
    """One ``bench.child`` job: start it, wait for its events, stop it, read its result."""

    def __init__(self, job: str, spec: dict[str, Any], *, engine: bool = True,
                 engine_path: str | None = None) -> None:
        self.job = job
        self.spec = spec
        self.engine = engine
        self.engine_path = engine_path
        self.process: asyncio.subprocess.Process | None = None
        self.events: list[dict[str, Any]] = []
        self._lines: asyncio.Queue[dict[str, Any] | None] = asyncio.Queue()
        self._reader: asyncio.Task[None] | None = None
        self._log: Any = None

    async def __aenter__(self) -> Child:
        if LOG_DIR is not None:
            self._log = _open_log(LOG_DIR, self.job)
        cwd = tempfile.gettempdir()  # not the repository: sys.path[0] must not shadow it
        self.process = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "bench.child", self.job,
            stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE,
            stderr=self._log if self._log else None,
            env=child_env(engine=self.engine, engine_path=self.engine_path),
            cwd=cwd, limit=64 * 1024 * 1024)
        assert self.process.stdin is not None
        self.process.stdin.write(json.dumps(self.spec).encode() + b"\n")
        await self.process.stdin.drain()
        self._reader = asyncio.create_task(self._read())
        return self

    async def _read(self) -> None:
        assert self.process is not None
        assert self.process.stdout is not None
        while line := await self.process.stdout.readline():
            with contextlib.suppress(ValueError):
                event = json.loads(line)
                if isinstance(event, dict) and "event" in event:
                    self.events.append(event)
                    await self._lines.put(event)
        await self._lines.put(None)

    async def wait_for(self, name: str, limit: float) -> dict[str, Any]:
        """The next event called ``name`` within ``limit`` seconds (earlier events of
        other names are skipped)."""
        async with asyncio.timeout(limit):
            while True:
                event = await self._lines.get()
                if event is None:
                    code = await self.process.wait() if self.process else None
                    raise RuntimeError(f"bench child {self.job} ended (exit {code}) before "
                                       f"{name!r}; see its log")
                if event["event"] == "error":
                    raise RuntimeError(f"bench child {self.job} failed: {event.get('error')}")
                if event["event"] == name:
                    return event

    def stop(self) -> None:
        """Ask the job to finish (it sees stdin close)."""
        if self.process and self.process.stdin and not self.process.stdin.is_closing():
            self.process.stdin.close()

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    async def result(self, limit: float) -> dict[str, Any]:
        return await self.wait_for("result", limit)

    async def __aexit__(self, *exc: object) -> None:
        self.stop()
        if self.process is not None:
            try:
                await asyncio.wait_for(self.process.wait(), 60)
            except TimeoutError:
                self.process.kill()
                await self.process.wait()
        if self._reader is not None:
            self._reader.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._reader
        if self._log is not None:
            self._log.close()


async def run_job(job: str, spec: dict[str, Any], *, limit: float, engine: bool = True,
                  engine_path: str | None = None) -> dict[str, Any]:
    """Run a job that finishes on its own; its result event. ``engine_path``: measure
    the engine found there instead of ``ENGINE_PATH`` (or the repository's)."""
    async with Child(job, spec, engine=engine, engine_path=engine_path) as child:
        return await child.result(limit)


class Stopwatch:
    def __init__(self) -> None:
        self.started = time.perf_counter()

    @property
    def seconds(self) -> float:
        return time.perf_counter() - self.started
