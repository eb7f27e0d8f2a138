"""The connect flow: an admin grants the sync access to a service's Gmail mailbox.

``GET /api/services/{id}/connect`` (admin) redirects to Google's consent screen:
offline access (a refresh token), the consent prompt (so Google issues one again on a
reconnect), ``gmail.readonly`` and ``gmail.send``, the service's address as login
hint, PKCE (S256) and a random ``state``. The state, the PKCE verifier, the service
and the redirect URI travel in a short-lived HttpOnly cookie scoped to the callback:
a JWE (``dir`` + ``A256CBC-HS512``, joserfc) under a key derived from ``AUTH_SECRET``
with HKDF and the cookie's own name as salt, so it is encrypted, authenticated and
expires on its own, and is useless as a session cookie (and vice versa).

``GET /api/services/oauth/callback`` checks the state against the cookie, exchanges
the code at ``GOOGLE_OAUTH_TOKEN_URI``, checks that the mailbox's address (Gmail's
profile) is the service's, stores the tokens (sealed with ``TOKEN_ENCRYPTION_KEY``
when set), clears the disconnection, and in the background starts the Gmail watch
(tolerating failure: ``watch_error``) then an initial full sync. It always answers
with a redirect to the return page, ``status=connected`` with the run id, or
``status=failed`` with a ``reason`` from :data:`REASONS`: never a 500.

``DELETE /api/services/{id}/connection`` (admin) disconnects: tokens cleared, watch
stopped, grant revoked (:func:`delightbridge.sync.watch.disconnect`).
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import logging
import secrets
import uuid
from datetime import UTC, datetime
from typing import Any

import asyncpg
from aiohttp import web
from yarl import URL

from delightbridge.api import paths
from delightbridge.api.authjs import Unauthenticated, decode_session, encode_session
from delightbridge.api.config import RESULT_PATH
from delightbridge.api.engine import track
from delightbridge.api.errors import error_response
from delightbridge.api.keys import API_CONFIG, ENGINE, POOL, SETTINGS
from delightbridge.api.sessions import require_admin
from delightbridge.core import logs
from delightbridge.core.errors import (
    DatabaseError,
    DelightBridgeError,
    GrantRefused,
    ServiceNotFound,
)
from delightbridge.core.settings import Settings
from delightbridge.db import services, watches
from delightbridge.sync import identities, watch
from delightbridge.sync.gmail.oauth import SCOPES, GrantedTokens
from delightbridge.sync.runs import SyncResult

routes = web.RouteTableDef()
log = logging.getLogger(__name__)

#: The web app creates a service before it is connected with the address
#: ``<id>@pending.local``; connecting fills in the mailbox's address.
PLACEHOLDER_DOMAIN = "@pending.local"

STATE_COOKIE = "dbsync.oauth-state"
#: Seconds an admin has to get through Google's consent screen.
STATE_MAX_AGE = 600
#: Seconds the initial full sync waits for a sync already holding the service's lock.
CONNECT_SYNC_WAIT = 120.0

#: Every way a connect can end badly, as the return page's ``reason``.
PUBLIC_BASE_URL_REQUIRED = (
    "PUBLIC_BASE_URL is not set: without it the connect flow runs only on localhost, "
    "since Google must be given this API's real address.")
REASONS: dict[str, str] = {
    "missing_state": "The connect attempt's cookie is missing: start again from the "
                     "Connect button in the same browser.",
    "invalid_state": "The connect attempt's cookie is not valid: start again.",
    "state_expired": "The connect attempt took too long: start again.",
    "state_mismatch": "The answer from Google does not belong to this connect attempt: "
                      "start again.",
    "access_denied": "Access to the mailbox was not granted on Google's consent screen.",
    "consent_failed": "Google's consent screen reported an error.",
    "missing_code": "Google's answer carried no authorization code.",
    "service_not_found": "The service no longer exists.",
    "not_configured": "This server has no Google OAuth client (GOOGLE_CLIENT_ID, "
                      "GOOGLE_CLIENT_SECRET) or no AUTH_SECRET.",
    "client_rejected": "Google refused this server's OAuth client credentials.",
    "code_rejected": "Google refused the authorization code (used, expired or for "
                     "another redirect URI): start again.",
    "token_exchange_failed": "Google's token endpoint answered with an error.",
    "no_refresh_token": "Google granted no offline access (no refresh token): start again.",
    "insufficient_scope": "Not every requested Gmail permission was granted: start again "
                          "and keep every box ticked.",
    "google_unavailable": "Google is not answering right now: try again in a minute.",
    "wrong_account": "The mailbox signed in to is not the service's address: sign in as "
                     "the service's mailbox.",
    "email_already_connected": "The mailbox signed in to is already another service's: "
                               "disconnect or delete that service first.",
    "database_unavailable": "The database is not reachable right now: try again.",
    "internal": "An internal error occurred.",
}


class ConnectFailed(Exception):
    """The callback cannot complete; ``reason`` is a key of :data:`REASONS`."""

    def __init__(self, reason: str, service_id: str | None = None) -> None:
        assert reason in REASONS
        super().__init__(reason)
        self.reason = reason
        self.service_id = service_id


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


def _oauth_configured(settings: Settings) -> bool:
    return bool(settings.google_client_id and settings.google_client_secret
                and settings.auth_secret)


# --- the consent redirect ----------------------------------------------------------------


@routes.get("/api/services/{service_id}/connect")
async def connect(request: web.Request) -> web.Response:
    settings, config, pool = request.app[SETTINGS], request.app[API_CONFIG], request.app[POOL]
    identity = await require_admin(pool, request.cookies, settings)
    service_id = paths.service_id(request)
    mailbox = await services.address(pool, service_id=service_id)
    if mailbox is None:
        raise ServiceNotFound(service_id)
    if not _oauth_configured(settings):
        return error_response("oauth_not_configured", REASONS["not_configured"])
    if not config.trusts_origin(request):
        return error_response("public_base_url_required", PUBLIC_BASE_URL_REQUIRED)
    assert settings.auth_secret is not None
    assert settings.google_client_id is not None

    nonce = secrets.token_urlsafe(32)
    verifier = secrets.token_urlsafe(64)
    redirect_uri = config.callback_url(request)
    cookie = encode_session(
        {"state": nonce, "svc": service_id, "pkce": verifier, "redirect_uri": redirect_uri,
         "by": identity.email},
        settings.auth_secret, cookie_name=STATE_COOKIE, max_age=STATE_MAX_AGE,
    )
    consent = URL(config.auth_uri).update_query({
        "client_id": settings.google_client_id,
        "redirect_uri": redirect_uri,
        "response_type": "code",
        "scope": " ".join(SCOPES),
        "access_type": "offline",
        "prompt": "consent",
        "include_granted_scopes": "true",
        "login_hint": mailbox,
        "state": nonce,
        "code_challenge": _b64url(hashlib.sha256(verifier.encode()).digest()),
        "code_challenge_method": "S256",
    })
    log.info("connect started", extra={"action": "connect.started", "service": service_id,
                                       "by": identity.email})
    response = web.Response(status=302, headers={"Location": str(consent),
                                                 "Cache-Control": "no-store"})
    response.set_cookie(STATE_COOKIE, cookie, max_age=STATE_MAX_AGE,
                        path=URL(redirect_uri).path, httponly=True, samesite="Lax",
                        secure=redirect_uri.startswith("https:"))
    return response


# --- the callback --------------------------------------------------------------------------


@routes.get("/api/services/oauth/callback")
async def callback(request: web.Request) -> web.Response:
    service_id: str | None = None
    try:
        service_id, run_id = await _complete(request)
    except ConnectFailed as failed:
        level = logging.ERROR if failed.reason == "internal" else logging.INFO
        log.log(level, "connect failed: %s", failed.reason, extra={
            "action": "connect.failed", "reason": failed.reason,
            "service": failed.service_id})
        return _finish(request, {"status": "failed", "reason": failed.reason,
                                 "service": failed.service_id})
    except Exception:
        log.exception("connect failed unexpectedly", extra={"action": "connect.internal_error"})
        return _finish(request, {"status": "failed", "reason": "internal"})
    log.info("service connected", extra={"action": "connect.succeeded", "service": service_id,
                                         "run": str(run_id)})
    return _finish(request, {"status": "connected", "service": service_id,
                             "runId": str(run_id)})


def _finish(request: web.Request, params: dict[str, str | None]) -> web.Response:
    """Redirect to the return page; the state cookie is spent either way."""
    config = request.app[API_CONFIG]
    target = config.return_url(request).update_query(
        {k: v for k, v in params.items() if v is not None})
    response = web.Response(status=302, headers={"Location": str(target),
                                                 "Cache-Control": "no-store"})
    response.del_cookie(STATE_COOKIE, path=URL(config.callback_url(request)).path)
    return response


def _state(request: web.Request, settings: Settings) -> dict[str, Any]:
    """The connect attempt's claims, once its cookie and ``state`` agree."""
    cookie = request.cookies.get(STATE_COOKIE)
    if not cookie:
        raise ConnectFailed("missing_state")
    if not settings.auth_secret:
        raise ConnectFailed("not_configured")
    try:
        claims = decode_session(cookie, settings.auth_secret, cookie_name=STATE_COOKIE)
    except Unauthenticated as exc:
        raise ConnectFailed("state_expired" if exc.reason == "expired" else "invalid_state"
                            ) from None
    fields = ("state", "svc", "pkce", "redirect_uri")
    if not all(isinstance(claims.get(f), str) and claims[f] for f in fields):
        raise ConnectFailed("invalid_state")
    given = request.query.get("state", "")
    if not hmac.compare_digest(given.encode(), str(claims["state"]).encode()):
        raise ConnectFailed("state_mismatch", claims["svc"])
    return claims


async def _complete(request: web.Request) -> tuple[str, uuid.UUID]:
    app = request.app
    settings, pool = app[SETTINGS], app[POOL]
    claims = _state(request, settings)
    service_id: str = claims["svc"]
    error = request.query.get("error")
    if error is not None:
        raise ConnectFailed("access_denied" if error == "access_denied" else "consent_failed",
                            service_id)
    code = request.query.get("code")
    if not code:
        raise ConnectFailed("missing_code", service_id)
    if not _oauth_configured(settings):
        raise ConnectFailed("not_configured", service_id)
    try:
        mailbox = await services.address(pool, service_id=service_id)
        if mailbox is None:
            raise ConnectFailed("service_not_found", service_id)
        engine = app[ENGINE]
        try:
            tokens = await engine.exchange_code(code, claims["redirect_uri"], claims["pkce"])
            address = (await engine.mailbox_address(tokens.access_token)).strip().lower()
        except GrantRefused as exc:
            log.info("Google refused the connect: %s", exc.reason, extra={
                "action": "connect.grant_refused", "service": service_id})
            raise ConnectFailed(exc.reason, service_id) from None
        current = mailbox.strip().lower()
        placeholder = current.endswith(PLACEHOLDER_DOMAIN)
        if address != current and not placeholder:
            log.warning("connect signed in to the wrong mailbox", extra={
                "action": "connect.wrong_account", "service": service_id,
                "expected": mailbox, "got": address})
            raise ConnectFailed("wrong_account", service_id)
        await store_tokens(pool, service_id, tokens,
                           address=address if placeholder else None)
    except DatabaseError:
        log.exception("connect could not use the database", extra={
            "action": "connect.database_error", "service": service_id})
        raise ConnectFailed("database_unavailable", service_id) from None

    run_id = uuid.uuid4()
    task = asyncio.create_task(after_connect(app, service_id, run_id),
                               name=f"connect:{service_id}")
    track(app, task)
    return service_id, run_id


async def store_tokens(pool: asyncpg.Pool, service_id: str, tokens: GrantedTokens, *,
                       address: str | None = None) -> None:
    """The service's new tokens, plain as the web app reads them (they are never sealed:
    see :mod:`delightbridge.sync.crypto`), and, for a placeholder service, its mailbox's address."""
    refresh, access = tokens.refresh_token, tokens.access_token
    expires = datetime.fromtimestamp(tokens.expires_at, UTC)
    stored = await services.store_grant(
        pool, service_id=service_id, refresh_token=refresh, access_token=access,
        access_token_expires_at=expires, new_address=address)
    if stored == "address_taken":
        log.warning("connect signed in to another service's mailbox", extra={
            "action": "connect.email_taken", "service": service_id, "got": address})
        raise ConnectFailed("email_already_connected", service_id)
    if stored == "service_not_found":
        raise ConnectFailed("service_not_found", service_id)


# --- after the redirect: watch, then the initial full sync -----------------------------


async def after_connect(app: web.Application, service_id: str, run_id: uuid.UUID
                        ) -> SyncResult:
    await start_watch(app, service_id)
    await refresh_identities(app, service_id)
    return await app[ENGINE].sync(service_id, mode="full", trigger="connect",
                                  wait=CONNECT_SYNC_WAIT, run_id=run_id)


async def start_watch(app: web.Application, service_id: str) -> bool:
    """Start the service's Gmail watch (topic and label filter as the renewal job uses);
    False, recorded on the service, if it fails.

    Renewal proper belongs to the renewal job: this only makes a freshly connected
    service push-driven at once.
    """
    settings, engine, pool = app[SETTINGS], app[ENGINE], app[POOL]
    try:
        await watch.renew(engine, service_id, watch.WatchSettings.from_settings(settings))
    except DelightBridgeError as exc:
        message = logs.scrub(f"{exc.code}: {exc}")[:500]
        log.warning("watch not started: %s", message, extra={
            "action": "connect.watch_failed", "service": service_id})
        try:
            await watches.record_failure(pool, service_id=service_id, message=message,
                                         at=datetime.now(UTC))
        except DatabaseError:
            log.exception("could not record the watch failure", extra={
                "action": "connect.watch_record_failed", "service": service_id})
        return False
    return True


async def refresh_identities(app: web.Application, service_id: str) -> None:
    """The service's sender identities from Gmail (the web app does this at connect); a
    failure is logged: the renewal job refreshes them again."""
    try:
        await identities.refresh(app[ENGINE], service_id)
    except DelightBridgeError as exc:
        log.warning("sender identities not refreshed: %s", logs.scrub(f"{exc.code}: {exc}"),
                    extra={"action": "connect.identities_failed", "service": service_id})


# --- disconnecting ---------------------------------------------------------------------


@routes.delete("/api/services/{service_id}/connection")
async def disconnect(request: web.Request) -> web.Response:
    """Clear the service's tokens, stop its watch and revoke its grant (see
    :func:`delightbridge.sync.watch.disconnect`): never a watch left publishing."""
    app = request.app
    identity = await require_admin(app[POOL], request.cookies, app[SETTINGS])
    service_id = paths.service_id(request)
    outcome = await watch.disconnect(app[ENGINE], service_id)
    log.info("service disconnected by an admin" if outcome else "service was not connected",
             extra={"action": "connect.disconnected", "service": service_id,
                    "by": identity.email, "pending": bool(outcome and outcome.pending)})
    return web.json_response({
        "ok": True, "serviceId": service_id, "wasConnected": outcome is not None,
        "watchStopped": bool(outcome and outcome.stopped),
        "grantRevoked": bool(outcome and outcome.revoked),
        "stopPending": bool(outcome and outcome.pending),
        "error": outcome.error if outcome else None,
    }, headers={"Cache-Control": "no-store"})


# --- the return page ---------------------------------------------------------------------


@routes.get(RESULT_PATH)
async def result(request: web.Request) -> web.Response:
    """Where the callback lands the browser when no ``CONNECT_RETURN_URL`` is set."""
    status = request.query.get("status")
    service = request.query.get("service")
    body: dict[str, Any] = {"ok": status == "connected",
                            "serviceId": service[:200] if service else None}
    if status == "connected":
        run_id = request.query.get("runId", "")
        body["runId"] = run_id if _is_uuid(run_id) else None
        body["message"] = "The service is connected; its first full sync has started."
    else:
        reason = request.query.get("reason", "")
        reason = reason if reason in REASONS else "unknown"
        body["reason"] = reason
        body["message"] = REASONS.get(reason, "The connect attempt did not complete.")
    return web.json_response(body, headers={"Cache-Control": "no-store"})


def _is_uuid(value: str) -> bool:
    try:
        uuid.UUID(value)
    except ValueError:
        return False
    return True
