"""The API application: routes, middlewares, and resources opened in ``cleanup_ctx``.

``create_app(settings)`` is all a server (or a test) needs: the database pool (migrated
at start-up) and the sync engine are opened when the app starts and closed when it
stops; syncs still running at shutdown get ``SHUTDOWN_GRACE`` seconds to finish.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections.abc import AsyncIterator

from aiohttp import web

from api.errors import Handler, error_middleware
from api.keys import BACKGROUND, ENGINE, METRICS, POOL, SETTINGS
from api.metrics import ApiMetrics
from api.views import health, sync
from db.pool import open_pool
from delightbridge import logs
from delightbridge.settings import Settings
from syncengine.engine import EngineConfig, SyncEngine

log = logging.getLogger("api")

SHUTDOWN_GRACE = 30.0


@web.middleware
async def observe(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Request id, one structured log line and metrics per request."""
    request_id = request.headers.get("X-Request-Id", "")[:64] or uuid.uuid4().hex
    token = logs.request_id.set(request_id)
    started = time.perf_counter()
    route = request.match_info.route.resource
    route_name = route.canonical if route is not None else "unmatched"
    status = 500
    try:
        response = await handler(request)
        status = response.status
        response.headers["X-Request-Id"] = request_id
        return response
    finally:
        elapsed = time.perf_counter() - started
        metrics = request.app[METRICS]
        metrics.requests.labels(route_name, request.method, str(status)).inc()
        metrics.request_seconds.labels(route_name).observe(elapsed)
        log.info("%s %s %s", request.method, request.path, status, extra={
            "action": "http.request", "method": request.method, "route": route_name,
            "status": status, "ms": round(elapsed * 1000, 1)})
        logs.request_id.reset(token)


async def _resources(app: web.Application) -> AsyncIterator[None]:
    settings = app[SETTINGS]
    async with open_pool(settings) as pool, SyncEngine.open(
        pool, EngineConfig.from_settings(settings)
    ) as engine:
        app[POOL] = pool
        app[ENGINE] = engine
        yield
        await _drain(app[BACKGROUND])


async def _drain(tasks: set[asyncio.Task[object]]) -> None:
    if not tasks:
        return
    log.info("waiting for %d running syncs", len(tasks), extra={"action": "api.drain"})
    _, pending = await asyncio.wait(set(tasks), timeout=SHUTDOWN_GRACE)
    for task in pending:
        task.cancel()
    await asyncio.gather(*pending, return_exceptions=True)


def create_app(settings: Settings) -> web.Application:
    app = web.Application(middlewares=[observe, error_middleware])
    app[SETTINGS] = settings
    app[METRICS] = ApiMetrics()
    app[BACKGROUND] = set()
    app.cleanup_ctx.append(_resources)
    app.add_routes(sync.routes)
    app.add_routes(health.routes)
    return app
