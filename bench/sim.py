"""The Gmail simulator in its own process, and the harness's handle on it.

The benchmarks never serve the simulator from the engine's event loop: it runs in a
child process (``python -m bench.sim``), so its CPU (it renders every ``format=full``
answer in Python) and its memory (every mailbox lives in RAM) are not counted as the
engine's, and it does not delay the engine's callbacks. The harness drives it through
the simulator's own control API (``/_sim``: mailboxes, seeding, quota, faults,
counters) and starts watches through the Gmail API itself.

    python -m bench.sim [--seed N] [--pubsub-emulator-host H:P] [--push-min-interval S]

prints one JSON line (URLs, OAuth client, pid) and serves until stdin closes or
SIGTERM.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import signal
import sys
from dataclasses import dataclass, field
from typing import Any

import aiohttp

from bench import procs

_LONG = aiohttp.ClientTimeout(total=3600)


# --------------------------------------------------------------------------- child side


async def _serve(args: argparse.Namespace) -> None:
    from gmailsim import Simulator
    from gmailsim.push import PushConfig
    from gmailsim.server import serve

    sim = Simulator(seed=args.seed)
    push = PushConfig(min_interval=args.push_min_interval)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    # Closing stdin (the harness exiting, even killed) stops the server.
    reader = asyncio.StreamReader()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)

    async def watch_stdin() -> None:
        while await reader.read(1024):
            pass
        stop.set()

    watcher = asyncio.create_task(watch_stdin())
    async with serve(sim, pubsub_emulator_host=args.pubsub_emulator_host, push=push) as running:
        print(json.dumps({
            "base_url": running.base_url, "token_uri": running.token_uri,
            "batch_uri": running.batch_uri, "control_url": running.control_url,
            "client_id": sim.client_id, "client_secret": sim.client_secret,
            "pid": os.getpid(),
        }), flush=True)
        await stop.wait()
    watcher.cancel()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.sim", description=__doc__)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--pubsub-emulator-host", default=None)
    parser.add_argument("--push-min-interval", type=float, default=1.0)
    args = parser.parse_args(argv)
    import logging

    logging.basicConfig(level=logging.WARNING)
    asyncio.run(_serve(args))
    return 0


# --------------------------------------------------------------------------- harness side


@dataclass
class Mailbox:
    address: str
    refresh_token: str
    message_ids: list[str] = field(default_factory=list)


class SimProcess:
    """A running ``bench.sim`` child and a client of its control API."""

    def __init__(self, process: asyncio.subprocess.Process, info: dict[str, Any],
                 session: aiohttp.ClientSession) -> None:
        self.process = process
        self.info = info
        self._session = session
        self.base_url: str = info["base_url"]
        self.token_uri: str = info["token_uri"]
        self.batch_uri: str = info["batch_uri"]
        self.control_url: str = info["control_url"]
        self.client_id: str = info["client_id"]
        self.client_secret: str = info["client_secret"]
        self.pid: int = info["pid"]

    @classmethod
    @contextlib.asynccontextmanager
    async def start(cls, *, seed: int = 1, pubsub_emulator_host: str | None = None,
                    push_min_interval: float = 1.0) -> Any:
        command = [sys.executable, "-m", "bench.sim", "--seed", str(seed),
                   "--push-min-interval", str(push_min_interval)]
        if pubsub_emulator_host:
            command += ["--pubsub-emulator-host", pubsub_emulator_host]
        process = await asyncio.create_subprocess_exec(
            *command, stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE,
            env=procs.child_env(), cwd=procs.ROOT)
        try:
            assert process.stdout is not None
            line = await asyncio.wait_for(process.stdout.readline(), 120)
            if not line:
                raise RuntimeError(f"the simulator process exited ({await process.wait()})")
            info = json.loads(line)
            async with aiohttp.ClientSession(timeout=_LONG) as session:
                yield cls(process, info, session)
        finally:
            if process.stdin:
                with contextlib.suppress(OSError):
                    process.stdin.close()
            try:
                await asyncio.wait_for(process.wait(), 30)
            except TimeoutError:
                process.kill()
                await process.wait()

    # ------------------------------------------------------------------ control API

    async def _call(self, method: str, path: str, body: Any = None) -> Any:
        async with self._session.request(method, self.control_url + path, json=body) as resp:
            data = await resp.json()
            if resp.status >= 400:
                raise RuntimeError(f"simulator {method} {path}: {resp.status} {data}")
            return data

    async def create_mailbox(self, address: str, name: str | None = None) -> Mailbox:
        data = await self._call("POST", "/mailboxes", {"address": address, "name": name})
        return Mailbox(data["address"], data["refreshToken"])

    async def seed(self, mailbox: Mailbox, messages: int, threads: int, seed: int = 1
                   ) -> list[str]:
        data = await self._call("POST", f"/mailboxes/{mailbox.address}/seed",
                                {"messages": messages, "threads": threads, "seed": seed})
        mailbox.message_ids.extend(data["messageIds"])
        return list(data["messageIds"])

    async def deliver(self, address: str, **body: Any) -> dict[str, Any]:
        result: dict[str, Any] = await self._call("POST", f"/mailboxes/{address}/deliver",
                                                  body)
        return result

    async def profile(self, address: str) -> dict[str, Any]:
        for box in (await self._call("GET", "/mailboxes"))["mailboxes"]:
            if box["emailAddress"].lower() == address.lower():
                return dict(box)
        raise KeyError(address)

    async def quota(self, **changes: Any) -> dict[str, Any]:
        result: dict[str, Any] = await self._call("PATCH", "/quota", changes)
        return result

    async def faults(self, **changes: Any) -> dict[str, Any]:
        result: dict[str, Any] = await self._call("PATCH", "/faults", changes)
        return result

    async def counters(self) -> dict[str, dict[str, Any]]:
        result: dict[str, dict[str, Any]] = await self._call("GET", "/counters")
        return result

    async def reset_counters(self) -> None:
        await self._call("POST", "/counters/reset")

    async def access_token(self, address: str) -> str:
        return str((await self._call("POST", f"/mailboxes/{address}/access-token"))
                   ["accessToken"])

    async def watch(self, address: str, topic: str) -> dict[str, Any]:
        """``users.watch`` through the Gmail API, as the engine's renewal job calls it."""
        token = await self.access_token(address)
        async with self._session.post(f"{self.base_url}/gmail/v1/users/me/watch",
                                      json={"topicName": topic},
                                      headers={"Authorization": f"Bearer {token}"}) as resp:
            data: dict[str, Any] = await resp.json()
            if resp.status != 200:
                raise RuntimeError(f"watch {address}: {resp.status} {data}")
            return data

    async def stop_watch(self, address: str) -> None:
        token = await self.access_token(address)
        async with self._session.post(f"{self.base_url}/gmail/v1/users/me/stop",
                                      headers={"Authorization": f"Bearer {token}"}) as resp:
            if resp.status not in (200, 204):
                raise RuntimeError(f"stop {address}: {resp.status} {await resp.text()}")

    def cpu_seconds(self) -> float:
        return procs.cpu_seconds(self.pid)

    def rss_mb(self) -> float:
        return procs.rss_mb(self.pid)


def gmail_totals(counters: dict[str, dict[str, Any]], methods: set[str] | None = None
                 ) -> dict[str, Any]:
    """Calls, units and rate-limit answers of Gmail API methods (batch parts counted one
    by one, as Google counts them; the outer batch request and OAuth are not API calls)."""
    calls = units = limited = errors = 0
    for name, counter in counters.items():
        if not name.startswith("users.") or (methods is not None and name not in methods):
            continue
        calls += int(counter["calls"])
        units += int(counter["units"])
        for key, count in counter["errors"].items():
            errors += int(count)
            if key.startswith(("429/", "403/")) and "ateLimit" in key:
                limited += int(count)
    return {"calls": calls, "units": units, "rate_limited": limited, "errors": errors,
            "http_batches": int(counters.get("batch", {}).get("calls", 0)),
            "oauth_token_calls": int(counters.get("oauth.token", {}).get("calls", 0))}


if __name__ == "__main__":
    raise SystemExit(main())
