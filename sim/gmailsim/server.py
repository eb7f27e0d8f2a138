"""The HTTP server: Gmail's REST paths, batch, OAuth and the control API (aiohttp).

Under a base URL (optionally with a path prefix, as ``GMAIL_API_ENDPOINT`` may
carry one):

* ``<base>/gmail/v1/users/...``: the Gmail API (:mod:`gmailsim.api`);
* ``<base>/batch/gmail/v1`` (and ``<base>/batch``): batch (:mod:`gmailsim.batch`);
* ``<base>/token``: the OAuth token endpoint; ``<base>/o/oauth2/v2/auth``: a consent
  page that redirects at once with a code; ``<base>/revoke``: token revocation;
* ``<base>/oauth2/v1/certs``: the certificates of the push tokens (:mod:`gmailsim.oidc`);
* ``<base>/_sim/...``: the control API (:mod:`gmailsim.control`).

``async with serve(sim) as running:`` starts it on a free port of 127.0.0.1;
:func:`serve_in_thread` does the same on a background event loop for blocking code.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import contextlib
import threading
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote, urlencode, urlsplit, urlunsplit

from aiohttp import web

from gmailsim import control, oidc
from gmailsim.api import ApiRequest, ApiResponse, GmailApi
from gmailsim.batch import handle_batch
from gmailsim.oauth import DEFAULT_SCOPES, OAuthError
from gmailsim.push import Notifier, PushConfig
from gmailsim.simulator import Simulator


@dataclass(frozen=True, slots=True)
class RunningSimulator:
    """A started server. ``base_url`` is the value for ``GMAIL_API_ENDPOINT``."""

    sim: Simulator
    host: str
    port: int
    prefix: str
    notifier: Notifier
    api: GmailApi

    @property
    def origin(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def base_url(self) -> str:
        return self.origin + self.prefix

    @property
    def gmail_url(self) -> str:
        """Root of the REST paths: ``<base>/gmail/v1/``."""
        return f"{self.base_url}/gmail/v1/"

    @property
    def batch_uri(self) -> str:
        return f"{self.base_url}/batch/gmail/v1"

    @property
    def token_uri(self) -> str:
        return f"{self.base_url}/token"

    @property
    def auth_uri(self) -> str:
        return f"{self.base_url}/o/oauth2/v2/auth"

    @property
    def revoke_uri(self) -> str:
        return f"{self.base_url}/revoke"

    @property
    def certs_url(self) -> str:
        """The push tokens' certificates (``PUSH_CERTS_URL`` for the consumer)."""
        return f"{self.base_url}{oidc.CERTS_PATH}"

    @property
    def control_url(self) -> str:
        return f"{self.base_url}/_sim"


def _normalise_prefix(prefix: str) -> str:
    prefix = prefix.strip()
    if not prefix or prefix == "/":
        return ""
    return "/" + prefix.strip("/")


def _to_web(response: ApiResponse) -> web.Response:
    return web.Response(status=response.status, body=response.body, headers=response.headers)


def _json(status: int, body: Any) -> web.Response:
    return web.json_response(body, status=status)


def _basic_auth(header: str | None) -> tuple[str, str] | None:
    if not header or not header.lower().startswith("basic "):
        return None
    try:
        decoded = base64.b64decode(header[6:].strip()).decode()
    except (binascii.Error, UnicodeDecodeError):
        return None
    user, _, password = decoded.partition(":")
    return unquote(user), unquote(password)


class _Handlers:
    def __init__(self, sim: Simulator, api: GmailApi, notifier: Notifier, prefix: str) -> None:
        self.sim = sim
        self.api = api
        self.notifier = notifier
        self.prefix = prefix

    async def gmail(self, request: web.Request) -> web.Response:
        path = request.rel_url.raw_path[len(self.prefix):]
        api_request = ApiRequest(request.method, path, list(request.query.items()),
                                 dict(request.headers), await request.read())
        return _to_web(await self.api.handle(api_request))

    async def batch(self, request: web.Request) -> web.Response:
        response = await handle_batch(self.api, request.headers.get("Content-Type", ""),
                                      await request.read(), dict(request.headers), self.prefix)
        return _to_web(response)

    async def token(self, request: web.Request) -> web.Response:
        counters = self.sim.counters
        counters.call("oauth.token")
        injected = self.sim.faults.scripted_error("oauth.token")
        if injected is not None:
            counters.error("oauth.token", injected.key)
            return _json(injected.code, {"error": "internal_failure",
                                         "error_description": injected.message})
        if request.content_type == "application/json":
            try:
                raw = await request.json()
            except ValueError:
                raw = None
            form = {k: str(v) for k, v in raw.items()} if isinstance(raw, dict) else {}
        else:
            form = {k: str(v) for k, v in (await request.post()).items()}
        try:
            body = self.sim.tokens.token_request(
                form, _basic_auth(request.headers.get("Authorization")))
        except OAuthError as exc:
            counters.error("oauth.token", f"{exc.status}/{exc.error}")
            return _json(exc.status, exc.body())
        return web.json_response(body, headers={"Cache-Control": "no-store"})

    async def authorize(self, request: web.Request) -> web.Response:
        """Google's consent page, answered at once: redirect with a code."""
        query = request.query
        if query.get("client_id") != self.sim.client_id:
            return web.Response(status=401, text="Error 401: invalid_client")
        redirect_uri = query.get("redirect_uri")
        if not redirect_uri or query.get("response_type", "code") != "code":
            return web.Response(status=400, text="Error 400: invalid_request")
        addresses = self.sim.addresses()
        hint = query.get("login_hint")
        address = next((a for a in addresses if hint and a.lower() == hint.lower()), None)
        if address is None and len(addresses) == 1 and not hint:
            address = addresses[0]
        if address is None:
            return web.Response(status=400,
                                text="Error 400: login_hint must name a simulated mailbox")
        scopes = tuple((query.get("scope") or " ".join(DEFAULT_SCOPES)).split())
        code = self.sim.tokens.issue_code(
            address, redirect_uri=redirect_uri, scopes=scopes,
            code_challenge=query.get("code_challenge"),
            code_challenge_method=query.get("code_challenge_method"))
        params = {"code": code, "scope": " ".join(scopes), "authuser": "0", "prompt": "consent"}
        if "state" in query:
            params = {"state": query["state"], **params}
        parts = urlsplit(redirect_uri)
        query_string = "&".join(filter(None, [parts.query, urlencode(params)]))
        raise web.HTTPFound(urlunsplit(parts._replace(query=query_string)))

    async def certs(self, request: web.Request) -> web.Response:
        signer = self.notifier.signer
        assert signer is not None
        return web.json_response(signer.certs(), headers={
            "Cache-Control": f"public, max-age={oidc.CERTS_MAX_AGE}"})

    async def revoke(self, request: web.Request) -> web.Response:
        form = await request.post()
        token = str(form.get("token") or request.query.get("token") or "")
        if token and self.sim.tokens.revoke(token):
            return web.json_response({})
        return _json(400, {"error": "invalid_token",
                           "error_description": "Token expired or revoked"})


def build_app(sim: Simulator, api: GmailApi, notifier: Notifier, prefix: str = ""
              ) -> web.Application:
    """The aiohttp application serving everything under ``prefix``."""
    handlers = _Handlers(sim, api, notifier, prefix)
    app = web.Application(client_max_size=64 * 1024 * 1024)
    app.router.add_route("*", prefix + "/gmail/v1/{tail:.*}", handlers.gmail)
    app.router.add_post(prefix + "/batch/gmail/v1", handlers.batch)
    app.router.add_post(prefix + "/batch", handlers.batch)
    app.router.add_post(prefix + "/token", handlers.token)
    app.router.add_get(prefix + "/o/oauth2/v2/auth", handlers.authorize)
    app.router.add_get(prefix + "/o/oauth2/auth", handlers.authorize)
    app.router.add_post(prefix + "/revoke", handlers.revoke)
    app.router.add_post(prefix + "/o/oauth2/revoke", handlers.revoke)
    app.router.add_get(prefix + oidc.CERTS_PATH, handlers.certs)
    control.add_routes(app, prefix + "/_sim", sim, notifier)
    return app


@contextlib.asynccontextmanager
async def serve(
    sim: Simulator,
    *,
    host: str = "127.0.0.1",
    port: int = 0,
    prefix: str = "",
    pubsub_emulator_host: str | None = None,
    push_endpoint: str | None = None,
    push: PushConfig | None = None,
) -> AsyncIterator[RunningSimulator]:
    """Run the simulator's HTTP server for the duration of the ``async with`` block."""
    prefix = _normalise_prefix(prefix)
    config = push or PushConfig()
    if pubsub_emulator_host:
        config.pubsub_emulator_host = pubsub_emulator_host
    if push_endpoint:
        config.push_endpoint = push_endpoint
    notifier = Notifier(sim, config)
    await notifier.start()
    api = GmailApi(sim, topic_checker=notifier.topic_exists)
    runner = web.AppRunner(build_app(sim, api, notifier, prefix), access_log=None)
    try:
        await runner.setup()
        site = web.TCPSite(runner, host, port)
        await site.start()
        bound = runner.addresses[0][1]
        yield RunningSimulator(sim, host, int(bound), prefix, notifier, api)
    finally:
        await runner.cleanup()
        await notifier.close()


@contextlib.contextmanager
def serve_in_thread(sim: Simulator, **options: Any) -> Iterator[RunningSimulator]:
    """:func:`serve` on its own event loop in a daemon thread, for blocking callers."""
    started = threading.Event()
    holder: dict[str, Any] = {}
    loop = asyncio.new_event_loop()

    async def main() -> None:
        stop = asyncio.Event()
        holder["stop"] = stop
        try:
            async with serve(sim, **options) as running:
                holder["running"] = running
                started.set()
                await stop.wait()
        except BaseException as exc:
            holder["error"] = exc
            started.set()
            raise

    thread = threading.Thread(target=lambda: loop.run_until_complete(main()),
                              name="gmailsim", daemon=True)
    thread.start()
    started.wait(timeout=30)
    if "running" not in holder:
        raise RuntimeError("the simulator did not start") from holder.get("error")
    try:
        yield holder["running"]
    finally:
        loop.call_soon_threadsafe(holder["stop"].set)
        thread.join(timeout=30)
        loop.close()
