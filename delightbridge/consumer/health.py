"""The consumer's HTTP servers: operations on one port, push (in push mode) on another.

The operations port (``CONSUMER_HTTP_PORT``, 8081), internal:

* ``GET /healthz``: the process and its event loop answer.
* ``GET /readyz``: 200 when the last periodic check reached the database and, in pull
  mode, the stream is open; 503 (with which check failed) otherwise, and from the moment
  the worker stops. No request costs a database query.
* ``GET /metrics``: Prometheus exposition of the worker's registry.

The push port (``CONSUMER_PUSH_PORT``, 8080), public, in push mode only:
``POST /pubsub/push`` and nothing else.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass

import asyncpg
from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from delightbridge.consumer.metrics import ConsumerMetrics
from delightbridge.consumer.push import PushEndpoint
from delightbridge.core.healthcheck import PeriodicCheck
from delightbridge.core.httpserver import listen, make_runner
from delightbridge.core.settings import Settings
from delightbridge.db import services

log = logging.getLogger("consumer.http")

PING_TIMEOUT = 2.0


#: Seconds between two database pings behind /readyz.
DATABASE_CHECK_INTERVAL = 5.0


def database_check(pool: asyncpg.Pool) -> PeriodicCheck[bool]:
    return PeriodicCheck(lambda: services.ping(pool, within=PING_TIMEOUT),
                         interval=DATABASE_CHECK_INTERVAL, name="consumer-database")


@dataclass
class Readiness:
    database: PeriodicCheck[bool]
    stream_open: Callable[[], bool] | None  # None in push mode: there is no stream
    stopping: Callable[[], bool]

    def check(self) -> dict[str, bool]:
        checks = {"accepting": not self.stopping(),
                  "database": bool(self.database.latest) and not self.database.is_stale()}
        if self.stream_open is not None:
            checks["stream"] = self.stream_open()
        return checks


READINESS = web.AppKey("readiness", Readiness)
METRICS = web.AppKey("metrics", ConsumerMetrics)


async def healthz(request: web.Request) -> web.Response:
    return web.json_response({"ok": True})


async def readyz(request: web.Request) -> web.Response:
    checks = request.app[READINESS].check()
    ok = all(checks.values())
    return web.json_response({"ok": ok, "checks": checks}, status=200 if ok else 503)


async def metrics(request: web.Request) -> web.Response:
    body = generate_latest(request.app[METRICS].registry)
    return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})


def create_app(readiness: Readiness, registry: ConsumerMetrics) -> web.Application:
    """The operations app: health, readiness, metrics."""
    app = web.Application()
    app[READINESS] = readiness
    app[METRICS] = registry
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/readyz", readyz)
    app.router.add_get("/metrics", metrics)
    return app


def create_push_app(push: PushEndpoint) -> web.Application:
    """The public push app: ``POST /pubsub/push`` only."""
    app = web.Application(client_max_size=1024 * 1024)
    app.router.add_post("/pubsub/push", push.handle)
    return app


class HttpServer:
    """An aiohttp app on host:port, started and stopped by the worker."""

    def __init__(self, app: web.Application, host: str, port: int,
                 shutdown_timeout: float, settings: Settings, *,
                 what: str = "the consumer's HTTP port (CONSUMER_HTTP_PORT)") -> None:
        self.what = what
        self._runner = make_runner(app, settings, shutdown_timeout=shutdown_timeout)
        self._host = host
        self._port = port
        self.port: int | None = None
        self._set_up = False

    async def start(self) -> None:
        await self._runner.setup()
        self._set_up = True
        self.port = await listen(self._runner, self._host, self._port, self.what)
        log.info("consumer HTTP on %s:%s", self._host, self.port, extra={
            "action": "consumer.http_started", "host": self._host, "port": self.port})

    async def stop(self) -> None:
        """Stop listening; requests in progress get the runner's shutdown timeout."""
        if self._set_up:
            self._set_up = False
            await self._runner.cleanup()
