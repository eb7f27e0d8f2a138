"""Domain errors become HTTP answers here, and only here.

Every error body is ``{"ok": false, "error": "<code>", "message": "<sentence>"}``
(plus documented extras such as ``connectUrl``), never a stack trace or a secret.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web

from api.authjs import Unauthenticated
from api.sessions import Forbidden
from delightbridge import logs
from delightbridge.errors import (
    DatabaseError,
    DelightBridgeError,
    GmailError,
    GmailQuotaExceeded,
    GmailUnavailable,
    ServiceNotConnected,
    ServiceNotFound,
    SyncInProgress,
)

log = logging.getLogger(__name__)


class InvalidParameter(DelightBridgeError):
    """A query parameter has a value the endpoint does not accept."""

    def __init__(self, code: str, message: str) -> None:
        self.code = code
        super().__init__(message)


def error_response(status: int, code: str, message: str, *,
                   headers: dict[str, str] | None = None, **extra: Any) -> web.Response:
    body = {"ok": False, "error": code, "message": message, **extra}
    return web.json_response(body, status=status, headers=headers)


def connect_url(request: web.Request, service_id: str) -> str:
    return str(request.url.with_path(f"/api/services/{service_id}/connect").with_query(None))


def _retry_after(exc: GmailError) -> dict[str, str]:
    return {"Retry-After": str(max(1, math.ceil(exc.retry_after or 1)))}


def to_response(request: web.Request, exc: DelightBridgeError) -> web.Response:
    """The HTTP answer for a domain error."""
    message = logs.scrub(str(exc))
    if isinstance(exc, Unauthenticated):
        return error_response(401, "unauthenticated", message)
    if isinstance(exc, Forbidden):
        return error_response(403, "forbidden", message)
    if isinstance(exc, InvalidParameter):
        return error_response(400, exc.code, message)
    if isinstance(exc, ServiceNotFound):
        return error_response(404, "service_not_found", message)
    if isinstance(exc, ServiceNotConnected):
        url = connect_url(request, exc.service_id)
        return error_response(409, "service_not_connected",
                              f"{message} Reconnect it at {url}", connectUrl=url)
    if isinstance(exc, SyncInProgress):
        return error_response(409, "sync_in_progress", message)
    if isinstance(exc, GmailQuotaExceeded):
        return error_response(429, "gmail_quota_exceeded",
                              "Gmail's rate limit was reached; try again later.",
                              headers=_retry_after(exc))
    if isinstance(exc, GmailUnavailable):
        return error_response(503, "gmail_unavailable",
                              "Gmail is not answering right now; try again later.",
                              headers=_retry_after(exc))
    if isinstance(exc, DatabaseError):
        return error_response(503, "database_unavailable",
                              "The database is not reachable right now.",
                              headers={"Retry-After": "5"})
    if isinstance(exc, GmailError):
        return error_response(502, "gmail_error", message)
    log.error("unmapped domain error: %s", message, extra={"action": "api.unmapped",
                                                           "code": exc.code})
    return error_response(500, "internal", "An internal error occurred.")


Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@web.middleware
async def error_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    try:
        return await handler(request)
    except DelightBridgeError as exc:
        return to_response(request, exc)
    except web.HTTPMethodNotAllowed as exc:
        return error_response(405, "method_not_allowed",
                              f"{request.method} is not allowed here.",
                              headers={"Allow": ", ".join(sorted(exc.allowed_methods))})
    except web.HTTPNotFound:
        return error_response(404, "not_found", "No such endpoint.")
    except web.HTTPException:
        raise
    except Exception:
        log.exception("unhandled error", extra={"action": "api.internal_error",
                                                "path": request.path})
        return error_response(500, "internal", "An internal error occurred.")
