"""The HTTP server under both processes' aiohttp apps: limits, timeouts, parser errors.

``make_runner(app, settings)`` replaces ``web.AppRunner(app)`` for the API
(``delightbridge serve``) and the consumer's HTTP port (probes, metrics, push):

* **Headers up to 32 KiB per field.** Auth.js splits a session over ~3,936-byte
  chunk cookies (``.0``, ``.1``…) that all travel in one ``Cookie`` header; the web app
  (Node, 16 KiB of headers) accepts them, so this server accepts at least as much.
  aiohttp's default (8,190 bytes) refused large sessions.
* **An idle timeout** (``HTTP_IDLE_TIMEOUT_SECONDS``): a connection that has not sent a
  whole request head that long after opening, or stays idle that long between
  requests, is closed, so slow or silent connections cannot be held forever. aiohttp's
  default keep-alive is an hour.
* **Requests the HTTP parser refuses** (oversized or malformed heads, bad framing) are
  answered in the API's JSON error form, 431 or 400, without echoing the request, and
  logged at INFO on one line, without a traceback: they are the client's mistake. So is
  a body that does not decode as its Content-Encoding says when aiohttp drains it
  after a handler answered without reading it.

The parser-error answer needs aiohttp's request handler, which its public API does not
expose: :class:`_Server` is :class:`aiohttp.web.Server` making :class:`_Handler` s.
``tests/api/test_api_serve.py::test_slow_and_oversized_requests`` and the push tests
pin the behaviour, so an aiohttp upgrade that changes these internals fails there
rather than in production.
"""

from __future__ import annotations

import errno
import logging
import socket
from typing import Any

from aiohttp import web
from aiohttp.http_exceptions import HttpProcessingError, LineTooLong
from aiohttp.web_protocol import RequestHandler, RequestPayloadError
from aiohttp.web_request import BaseRequest

from delightbridge.core.errors import PortUnavailable
from delightbridge.core.settings import Settings

log = logging.getLogger("delightbridge.http")

#: Largest header line (and request line) accepted, in bytes.
MAX_FIELD_SIZE = 32 * 1024
MAX_LINE_SIZE = 32 * 1024


class _Handler(RequestHandler):
    """aiohttp's per-connection handler, with JSON answers to requests it cannot parse."""

    def handle_error(self, request: BaseRequest, status: int = 500,
                     exc: BaseException | None = None,
                     message: str | None = None) -> web.StreamResponse:
        if not isinstance(exc, HttpProcessingError):
            return super().handle_error(request, status, exc, message)
        too_long = isinstance(exc, LineTooLong)
        status = 431 if too_long else 400
        code = "request_header_too_large" if too_long else "bad_request"
        text = (f"A request header (or the request line) is longer than {MAX_FIELD_SIZE} "
                "bytes." if too_long else "The request is not valid HTTP.")
        # One line at INFO: the peer's address and the kind of error, never the request.
        log.info("refused a request the HTTP parser rejected: %s", type(exc).__name__,
                 extra={"action": "http.rejected", "status": status, "peer": request.remote,
                        "error": code})
        response = web.json_response({"ok": False, "error": code, "message": text},
                                     status=status)
        response.force_close()
        return response


    def log_exception(self, *args: Any, **kw: Any) -> None:
        # aiohttp drains a body the handler did not read (after a 401, say); a body that
        # does not decode as its Content-Encoding says fails there, and aiohttp logged
        # it as an "Unhandled exception" with a traceback. It is the client's mistake.
        exc = kw.get("exc_info")
        if isinstance(exc, HttpProcessingError | RequestPayloadError):
            log.info("dropped a request body that cannot be read: %s", type(exc).__name__,
                     extra={"action": "http.unreadable_body"})
            return
        super().log_exception(*args, **kw)


class _Server(web.Server):
    def __call__(self) -> RequestHandler:
        return _Handler(self, loop=self._loop, **self._kwargs)


class _AppRunner(web.AppRunner):
    async def _make_server(self) -> web.Server:
        server = await super()._make_server()
        server.__class__ = _Server  # same object, handler factory replaced
        return server


def make_runner(app: web.Application, settings: Settings, *,
                shutdown_timeout: float = 60.0, **kwargs: Any) -> web.AppRunner:
    """An :class:`aiohttp.web.AppRunner` for ``app`` with this module's server."""
    return _AppRunner(app, access_log=None, handle_signals=False,
                      shutdown_timeout=shutdown_timeout, max_field_size=MAX_FIELD_SIZE,
                      max_line_size=MAX_LINE_SIZE,
                      keepalive_timeout=settings.http_idle_timeout_seconds, **kwargs)


async def listen(runner: web.AppRunner, host: str, port: int, what: str) -> int:
    """Serve ``runner`` (set up) on ``host:port`` (0: any free port); the port bound.
    A port in use, or not ours to take, is :class:`PortUnavailable`: one line for the
    operator, not a traceback."""
    try:
        await web.TCPSite(runner, host, port).start()
    except OSError as exc:
        raise PortUnavailable(what, host, port, _reason(exc)) from None
    bound = [a for a in runner.addresses if isinstance(a, tuple)]
    return int(bound[-1][1]) if bound else port


def check_free(host: str, port: int, what: str) -> None:
    """Raise :class:`PortUnavailable` now if ``host:port`` cannot be listened on, before
    a command starts anything else (the demo: its database, its simulator)."""
    with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as aiohttp binds
        try:
            probe.bind((host, port))
        except OSError as exc:
            raise PortUnavailable(what, host, port, _reason(exc)) from None


def _reason(exc: OSError) -> str:
    return {errno.EADDRINUSE: "the port is in use (another process listens there)",
            errno.EACCES: "permission denied (ports below 1024 need privileges)",
            errno.EADDRNOTAVAIL: "no such address on this machine"}.get(
                exc.errno or 0, exc.strerror or type(exc).__name__)
