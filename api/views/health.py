"""Operations: liveness, readiness and Prometheus metrics."""

from __future__ import annotations

import asyncpg
from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from api.keys import METRICS, POOL
from db import migrate
from db.queries import query

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
    """The process's metrics, and the watches' health as the database holds it (so
    renewal failures of the cron job show up too); the latter is left out, not
    failed, when the database does not answer."""
    registry = request.app[METRICS]
    try:
        async with request.app[POOL].acquire(timeout=5) as conn:
            health = await conn.fetchrow(query("watch_health"), timeout=5)
    except (OSError, TimeoutError, asyncpg.PostgresError, asyncpg.InterfaceError):
        health = None
    if health is not None:
        for state in ("active", "expiring", "lapsed", "failing"):
            registry.watches.labels(state).set(health[state])
        registry.watch_stops_pending.set(health["stops_pending"])
    body = generate_latest(registry.registry)
    return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})
