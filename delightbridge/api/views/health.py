"""Liveness on the public port; readiness and metrics are on the operations port
(:mod:`delightbridge.api.ops`)."""

from __future__ import annotations

from aiohttp import web

routes = web.RouteTableDef()


@routes.get("/healthz")
async def healthz(request: web.Request) -> web.Response:
    """The process is alive and serving."""
    return web.json_response({"ok": True})
