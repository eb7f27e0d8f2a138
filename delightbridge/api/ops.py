"""The API's operations port: liveness, readiness and Prometheus metrics.

Served by ``delightbridge serve`` on ``--ops-port`` (default 9000), apart from the
public port, so that metrics and readiness details need no credentials yet are not
reachable from where the API is (``deploy/k8s/networkpolicy.yaml`` admits only the
monitoring namespace and the kubelet to it).

Neither ``/readyz`` nor ``/metrics`` queries the database: the app's
:class:`~delightbridge.core.healthcheck.PeriodicCheck` (``app[HEALTH]``) does, every
``HEALTH_INTERVAL`` seconds, and they read its last result.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

import asyncpg
from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from delightbridge.api.keys import HEALTH, MAIN_APP, METRICS
from delightbridge.api.views import health
from delightbridge.core.errors import DatabaseError
from delightbridge.core.healthcheck import PeriodicCheck
from delightbridge.db import migrate, watches
from delightbridge.db.connection import connection

#: Seconds between two database health checks.
HEALTH_INTERVAL = 5.0
_TIMEOUT = 5.0


@dataclass(frozen=True, slots=True)
class DatabaseHealth:
    """What the last check found: reachable, migrations pending, watch health."""

    reachable: bool
    pending: tuple[str, ...] = ()
    watches: Mapping[str, int] = field(default_factory=dict)


async def check_database(pool: asyncpg.Pool) -> DatabaseHealth:
    """One connection, two queries: pending migrations and the watches' health."""
    try:
        async with connection(pool, wait=_TIMEOUT) as conn:
            pending = await migrate.pending(conn)
            watch_health = await watches.health(conn, within=_TIMEOUT)
    except DatabaseError:
        return DatabaseHealth(reachable=False)
    return DatabaseHealth(reachable=True, pending=tuple(pending), watches=watch_health)


def health_check(pool: asyncpg.Pool) -> PeriodicCheck[DatabaseHealth]:
    return PeriodicCheck(lambda: check_database(pool), interval=HEALTH_INTERVAL,
                         name="api-database")


routes = web.RouteTableDef()


@routes.get("/readyz")
async def readyz(request: web.Request) -> web.Response:
    """Ready when the last check reached the database and found every migration applied."""
    main = request.app[MAIN_APP]
    check = main.get(HEALTH)
    health = check.latest if check is not None else None
    if check is None or health is None or check.is_stale():
        return web.json_response({"ok": False, "error": "not_checked",
                                  "message": "The database has not been checked lately."},
                                 status=503)
    if not health.reachable:
        return web.json_response({"ok": False, "error": "database_unavailable",
                                  "message": "The database is not reachable."}, status=503)
    if health.pending:
        return web.json_response(
            {"ok": False, "error": "migrations_pending",
             "message": f"Migrations not applied: {', '.join(health.pending)}."}, status=503)
    return web.json_response({"ok": True})


@routes.get("/metrics")
async def metrics(request: web.Request) -> web.Response:
    """The process's metrics, and the watches' health as the last check found it in the
    database (so renewal failures of the cron job show up too)."""
    main = request.app[MAIN_APP]
    registry = main[METRICS]
    check = main.get(HEALTH)
    health = check.latest if check is not None else None
    if health is not None and health.watches:
        for state in watches.HEALTH_STATES:
            registry.watches.labels(state).set(health.watches[state])
        registry.watch_stops_pending.set(health.watches["stops_pending"])
    body = generate_latest(registry.registry)
    return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})


def create_ops_app(main: web.Application) -> web.Application:
    """The operations app of ``main`` (an app of :func:`delightbridge.api.app.create_app`)."""
    app = web.Application()
    app[MAIN_APP] = main
    app.router.add_get("/healthz", health.healthz)
    app.add_routes(routes)
    return app
