"""``delightbridge serve``: the API on a host and port, its operations app on another,
stopped gracefully by SIGTERM."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import signal
from collections.abc import AsyncIterator
from dataclasses import dataclass

from delightbridge.api.app import create_app
from delightbridge.api.ops import create_ops_app
from delightbridge.core.httpserver import check_free, listen, make_runner
from delightbridge.core.settings import Settings


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    parser.add_argument("--port", type=int, default=8000, help="port (default 8000)")
    parser.add_argument("--ops-host", default=None,
                        help="address of /healthz, /readyz and /metrics (default: --host)")
    parser.add_argument("--ops-port", type=int, default=9000,
                        help="port of /healthz, /readyz and /metrics: keep it internal "
                             "(default 9000)")


@dataclass(frozen=True, slots=True)
class Ports:
    api: int
    ops: int


@contextlib.asynccontextmanager
async def serving(settings: Settings, host: str, port: int, ops_host: str,
                  ops_port: int) -> AsyncIterator[Ports]:
    """The API on ``host:port`` and its operations app on ``ops_host:ops_port`` (0: any
    free port), until the block ends; the API's resources open first, close last."""
    app = create_app(settings)
    runner = make_runner(app, settings)
    await runner.setup()
    try:
        ops_runner = make_runner(create_ops_app(app), settings)
        await ops_runner.setup()
        try:
            api_port = await listen(runner, host, port, "the API (--port)")
            bound_ops = await listen(ops_runner, ops_host, ops_port,
                                     "the operations port (--ops-port)")
            yield Ports(api_port, bound_ops)
        finally:
            await ops_runner.cleanup()
    finally:
        await runner.cleanup()


async def run(settings: Settings, args: argparse.Namespace) -> int:
    ops_host = args.ops_host or args.host
    check_free(args.host, args.port, "the API (--port)")  # before the database is opened
    check_free(ops_host, args.ops_port, "the operations port (--ops-port)")
    async with serving(settings, args.host, args.port, ops_host, args.ops_port) as ports:
        print(f"DelightBridge Sync API listening on http://{args.host}:{ports.api}; "
              f"operations on http://{ops_host}:{ports.ops}", flush=True)
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        await stop.wait()
    return 0
