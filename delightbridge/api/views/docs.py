"""``GET /api/openapi.json``: the OpenAPI document of this API
(see :mod:`delightbridge.api.openapi`)."""

from __future__ import annotations

import json
from functools import cache

from aiohttp import web

from delightbridge.api import openapi

routes = web.RouteTableDef()


@cache
def _body() -> bytes:
    return json.dumps(openapi.document(), separators=(",", ":")).encode()


@routes.get("/api/openapi.json")
async def document(request: web.Request) -> web.Response:
    return web.Response(body=_body(), content_type="application/json",
                        headers={"Cache-Control": "public, max-age=300"})
