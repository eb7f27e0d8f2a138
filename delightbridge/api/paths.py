"""Values taken from the request path, checked before they reach the database."""

from __future__ import annotations

import re

from aiohttp import web

from delightbridge.core.errors import ServiceNotFound

# PostgreSQL text cannot hold NUL, and asyncpg cannot encode a lone surrogate: no
# service can have such an id, so asking for one is a 404, not a database error.
_UNSTORABLE = re.compile("[\x00\ud800-\udfff]")


def service_id(request: web.Request) -> str:
    """The ``{service_id}`` of the path; :class:`ServiceNotFound` if none could exist."""
    value = request.match_info["service_id"]
    if _UNSTORABLE.search(value):
        raise ServiceNotFound(_UNSTORABLE.sub("\N{REPLACEMENT CHARACTER}", value))
    return value
