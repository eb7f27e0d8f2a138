"""The consumer's small HTTP server: liveness, readiness, metrics (and push, in push mode).

* ``GET /healthz``: the process and its event loop answer.
* ``GET /readyz``: 200 when the database answers and, in pull mode, the stream is
  open; 503 (with which check failed) otherwise, and from the moment the worker stops.
* ``GET /metrics``: Prometheus exposition of the worker's registry.
* ``POST /pubsub/push``: only when a push endpoint is given.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass

import asyncpg
from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from consumer import store
from consumer.metrics import ConsumerMetrics
from consumer.push import PushEndpoint
from delightbridge.httpserver import make_runner
from delightbridge.settings import Settings

log = logging.getLogger("consumer.http")

PING_TIMEOUT = 2.0


@dataclass
class Readiness:
    pool: asyncpg.Pool
    stream_open: Callable[[], bool] | None  # None in push mode: there is no stream
    stopping: Callable[[], bool]

    async def check(self) -> dict[str, bool]:
        checks = {"accepting": not self.stopping(),
                  "database": await store.ping(self.pool, PING_TIMEOUT)}
        if self.stream_open is not None:
            checks["stream"] = self.stream_open()
        return checks


READINESS = web.AppKey("readiness", Readiness)
METRICS = web.AppKey("metrics", ConsumerMetrics)


async def healthz(request: web.Request) -> web.Response:
    return web.json_response({"ok": True})


async def readyz(request: web.Request) -> web.Response:
    checks = await request.app[READINESS].check()
    ok = all(checks.values())
    return web.json_response({"ok": ok, "checks": checks}, status=200 if ok else 503)


async def metrics(request: web.Request) -> web.Response:
    body = generate_latest(request.app[METRICS].registry)
    return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})


def create_app(readiness: Readiness, registry: ConsumerMetrics,
               push: PushEndpoint | None = None) -> web.Application:
    app = web.Application(client_max_size=1024 * 1024)
    app[READINESS] = readiness
    app[METRICS] = registry
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/readyz", readyz)
    app.router.add_get("/metrics", metrics)
    if push is not None:
        app.router.add_post("/pubsub/push", push.handle)
    return app


class HttpServer:
    """An aiohttp app on host:port, started and stopped by the worker."""

    def __init__(self, app: web.Application, host: str, port: int,
                 shutdown_timeout: float, settings: Settings) -> None:
        self._runner = make_runner(app, settings, shutdown_timeout=shutdown_timeout)
        self._host = host
        self._port = port
        self.port: int | None = None
        self._set_up = False

    async def start(self) -> None:
        await self._runner.setup()
        self._set_up = True
        site = web.TCPSite(self._runner, self._host, self._port)
        await site.start()
        addresses = self._runner.addresses
        self.port = int(addresses[0][1]) if addresses else self._port
        log.info("consumer HTTP on %s:%s", self._host, self.port, extra={
            "action": "consumer.http_started", "host": self._host, "port": self.port})

    async def stop(self) -> None:
        """Stop listening; requests in progress get the runner's shutdown timeout."""
        if self._set_up:
            self._set_up = False
            await self._runner.cleanup()
