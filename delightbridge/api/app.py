"""The API application: routes, middlewares, and resources opened in ``cleanup_ctx``.

``create_app(settings)`` is all a server (or a test) needs: the database pool (migrated
at start-up) and the sync engine are opened when the app starts and closed when it
stops; syncs still running at shutdown get ``SHUTDOWN_GRACE`` seconds to finish.
``engine_overrides`` replace fields of the engine's configuration (tests pass a fast
retry policy); ``config`` replaces the connect flow's URLs read from the settings.
"""

from __future__ import annotations

import asyncio
import logging
import re
import time
import uuid
from collections.abc import AsyncIterator, Mapping

from aiohttp import web

from delightbridge.api import ops
from delightbridge.api.config import ApiConfig
from delightbridge.api.errors import Handler, error_middleware
from delightbridge.api.keys import API_CONFIG, BACKGROUND, ENGINE, HEALTH, METRICS, POOL, SETTINGS
from delightbridge.api.metrics import ApiMetrics
from delightbridge.api.views import connect, docs, health, sync
from delightbridge.core import logs
from delightbridge.core.settings import Settings
from delightbridge.db.pool import open_pool
from delightbridge.sync.engine import EngineConfig, SyncEngine

log = logging.getLogger("api")

SHUTDOWN_GRACE = 30.0
ENGINE_OVERRIDES = web.AppKey("engine_overrides", dict[str, object])
_REQUEST_ID_RE = re.compile(r"^[A-Za-z0-9._:-]{1,64}$")
_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "TRACE",
                      "CONNECT"})


@web.middleware
async def observe(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Request id, one structured log line and metrics per request."""
    given = request.headers.get("X-Request-Id", "")
    request_id = given if _REQUEST_ID_RE.match(given) else uuid.uuid4().hex
    token = logs.request_id.set(request_id)
    started = time.perf_counter()
    route = request.match_info.route.resource
    route_name = route.canonical if route is not None else "unmatched"
    status = 500
    try:
        try:
            response = await handler(request)
        except web.HTTPException as exc:
            status = exc.status
            exc.headers["X-Request-Id"] = request_id
            raise
        status = response.status
        response.headers["X-Request-Id"] = request_id
        return response
    finally:
        elapsed = time.perf_counter() - started
        metrics = request.app[METRICS]
        method = request.method if request.method in _METHODS else "OTHER"
        metrics.requests.labels(route_name, method, str(status)).inc()
        metrics.request_seconds.labels(route_name).observe(elapsed)
        log.info("%s %s %s", request.method, request.path, status, extra={
            "action": "http.request", "method": method, "route": route_name,
            "status": status, "ms": round(elapsed * 1000, 1)})
        logs.request_id.reset(token)


async def _resources(app: web.Application) -> AsyncIterator[None]:
    settings = app[SETTINGS]
    config = EngineConfig.from_settings(settings, **app[ENGINE_OVERRIDES])
    async with (
        open_pool(settings) as pool,
        SyncEngine.open(pool, config) as engine,
        ops.health_check(pool).running() as health,
    ):
        app[POOL] = pool
        engine.observers.append(app[METRICS].engine)
        app[METRICS].engine.watch_budget(engine.budget)
        app[ENGINE] = engine
        app[HEALTH] = health
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


def create_app(
    settings: Settings,
    *,
    engine_overrides: Mapping[str, object] | None = None,
    config: ApiConfig | None = None,
) -> web.Application:
    app = web.Application(middlewares=[observe, error_middleware])
    app[SETTINGS] = settings
    app[API_CONFIG] = config or ApiConfig.from_settings(settings)
    app[ENGINE_OVERRIDES] = dict(engine_overrides or {})
    app[METRICS] = ApiMetrics()
    app[BACKGROUND] = set()
    app.cleanup_ctx.append(_resources)
    app.add_routes(sync.routes)
    app.add_routes(connect.routes)
    app.add_routes(health.routes)
    app.add_routes(docs.routes)
    return app
