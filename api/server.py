"""``delightbridge serve``: the API on a host and port, stopped gracefully by SIGTERM."""

from __future__ import annotations

import argparse
import asyncio
import signal

from aiohttp import web

from api.app import create_app
from delightbridge.httpserver import make_runner
from delightbridge.settings import Settings


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    parser.add_argument("--port", type=int, default=8000, help="port (default 8000)")


async def run(settings: Settings, args: argparse.Namespace) -> int:
    runner = make_runner(create_app(settings), settings)
    await runner.setup()
    site = web.TCPSite(runner, args.host, args.port)
    await site.start()
    print(f"DelightBridge Sync API listening on http://{args.host}:{args.port}", flush=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    try:
        await stop.wait()
    finally:
        await runner.cleanup()
    return 0
