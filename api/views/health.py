"""Operations: liveness, readiness and Prometheus metrics."""

from __future__ import annotations

import asyncpg
from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from api.keys import METRICS, POOL
from db import migrate

routes = web.RouteTableDef()


@routes.get("/healthz")
async def healthz(request: web.Request) -> web.Response:
    """The process is alive and serving."""
    return web.json_response({"ok": True})


@routes.get("/readyz")
async def readyz(request: web.Request) -> web.Response:
    """Ready when the database answers and every migration is applied."""
    try:
        async with request.app[POOL].acquire(timeout=5) as conn:
            pending = await migrate.pending(conn)
    except (OSError, TimeoutError, asyncpg.PostgresError, asyncpg.InterfaceError):
        return web.json_response({"ok": False, "error": "database_unavailable",
                                  "message": "The database is not reachable."}, status=503)
    if pending:
        return web.json_response({"ok": False, "error": "migrations_pending",
                                  "message": f"Migrations not applied: {', '.join(pending)}."},
                                 status=503)
    return web.json_response({"ok": True})


@routes.get("/metrics")
async def metrics(request: web.Request) -> web.Response:
    body = generate_latest(request.app[METRICS].registry)
    return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})
