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

from delightbridge.api.authjs import Unauthenticated
from delightbridge.api.config import ApiConfig
from delightbridge.api.keys import API_CONFIG
from delightbridge.api.sessions import Forbidden
from delightbridge.core import logs
from delightbridge.core.errors import (
    DatabaseError,
    DatabaseUnavailable,
    DelightBridgeError,
    GmailError,
    GmailQuotaExceeded,
    GmailUnavailable,
    QueryFailed,
    ServiceNotConnected,
    ServiceNotFound,
    SyncInProgress,
    TokenDecryptionError,
)

log = logging.getLogger(__name__)

#: Longest human message in an error body (ids echoed from the request are bounded).
MAX_MESSAGE = 300


class InvalidParameter(DelightBridgeError):
    """A query parameter has a value the endpoint does not accept."""

    def __init__(self, code: str, message: str) -> None:
        self.code = code
        super().__init__(message)


#: Every error code the API answers, with its HTTP status: declared here once, and the
#: OpenAPI document's enum of codes (``http_error`` takes the status aiohttp raised).
STATUSES: dict[str, int] = {
    Unauthenticated.code: 401,
    Forbidden.code: 403,
    ServiceNotFound.code: 404,
    "run_not_found": 404,
    "not_found": 404,
    ServiceNotConnected.code: 409,
    SyncInProgress.code: 409,
    GmailQuotaExceeded.code: 429,
    GmailUnavailable.code: 503,
    GmailError.code: 502,
    DatabaseUnavailable.code: 503,
    "invalid_mode": 400,
    "invalid_wait": 400,
    "invalid_limit": 400,
    "method_not_allowed": 405,
    "oauth_not_configured": 503,
    "public_base_url_required": 503,
    TokenDecryptionError.code: 500,
    "http_error": 400,
    DelightBridgeError.code: 500,
}


def error_response(code: str, message: str, *, status: int | None = None,
                   headers: dict[str, str] | None = None, **extra: Any) -> web.Response:
    """The error body; its status is the code's (:data:`STATUSES`) unless given."""
    body = {"ok": False, "error": code, "message": message, **extra}
    return web.json_response(body, status=status or STATUSES[code], headers=headers)


def connect_url(request: web.Request, service_id: str) -> str:
    """Where an admin reconnects ``service_id`` (the connect endpoint, public URL)."""
    config = request.app.get(API_CONFIG) or ApiConfig()
    return config.connect_url(request, service_id)


def _retry_after(exc: GmailError) -> dict[str, str]:
    return {"Retry-After": str(max(1, math.ceil(exc.retry_after or 1)))}


# Domain errors whose own message and code are the answer's (first match wins).
_PLAIN: tuple[type[DelightBridgeError], ...] = (
    Unauthenticated, Forbidden, ServiceNotFound, SyncInProgress)


def to_response(request: web.Request, exc: DelightBridgeError) -> web.Response:
    """The HTTP answer for a domain error."""
    message = logs.scrub(str(exc))
    if len(message) > MAX_MESSAGE:
        message = message[:MAX_MESSAGE - 1] + "…"
    for kind in _PLAIN:
        if isinstance(exc, kind):
            return error_response(kind.code, message)
    if isinstance(exc, InvalidParameter):
        return error_response(exc.code, message)
    if isinstance(exc, ServiceNotConnected):
        url = connect_url(request, exc.service_id)
        return error_response(ServiceNotConnected.code,
                              f"{message} Reconnect it at {url}", connectUrl=url)
    if isinstance(exc, GmailError):
        return _gmail_response(exc, message)
    if isinstance(exc, QueryFailed):
        log.error("the database refused a statement: %s", message, extra={
            "action": "api.query_failed", "sqlstate": exc.sqlstate})
        return error_response(DelightBridgeError.code, "An internal error occurred.")
    if isinstance(exc, DatabaseError):
        log.warning("database unavailable: %s", message, extra={
            "action": "api.database_unavailable", "path": request.path})
        return error_response("database_unavailable",
                              "The database is not reachable right now.",
                              headers={"Retry-After": "5"})
    if isinstance(exc, TokenDecryptionError):
        # The deployment's TOKEN_ENCRYPTION_KEY is not the one the tokens were sealed with.
        log.error("stored token does not decrypt: %s", message,
                  extra={"action": "api.token_decryption"})
        return error_response(TokenDecryptionError.code,
                              "The service's stored Gmail tokens cannot be decrypted with "
                              "this server's TOKEN_ENCRYPTION_KEY.")
    log.error("unmapped domain error: %s", message, extra={"action": "api.unmapped",
                                                           "code": exc.code})
    return error_response(DelightBridgeError.code, "An internal error occurred.")


def _gmail_response(exc: GmailError, message: str) -> web.Response:
    if isinstance(exc, GmailQuotaExceeded):
        return error_response(GmailQuotaExceeded.code,
                              "Gmail's rate limit was reached; try again later.",
                              headers=_retry_after(exc))
    if isinstance(exc, GmailUnavailable):
        return error_response(GmailUnavailable.code,
                              "Gmail is not answering right now; try again later.",
                              headers=_retry_after(exc))
    return error_response(GmailError.code, message)


Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@web.middleware
async def error_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    try:
        return await handler(request)
    except DelightBridgeError as exc:
        return to_response(request, exc)
    except web.HTTPMethodNotAllowed as exc:
        return error_response("method_not_allowed",
                              f"{request.method[:20]} is not allowed here.",
                              headers={"Allow": ", ".join(sorted(exc.allowed_methods))})
    except web.HTTPNotFound:
        return error_response("not_found", "No such endpoint.")
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        # aiohttp's own refusals (413, 400…) answered in the same shape as ours.
        return error_response("http_error", f"{exc.reason}.", status=exc.status)
    except Exception:
        log.exception("unhandled error", extra={"action": "api.internal_error",
                                                "path": request.path})
        return error_response(DelightBridgeError.code, "An internal error occurred.")
