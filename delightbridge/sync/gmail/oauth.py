"""OAuth 2.0: a mailbox's grant (:func:`exchange_code`, :func:`mailbox_address`), then
cached access tokens for one service, refreshed before they expire.

``ServiceTokens`` hands out the cached access token while it has more than
``REFRESH_MARGIN`` left, refreshes it otherwise (and once more after a 401), with a
lock so concurrent calls share one refresh. New tokens are persisted through a
callback (the engine stores them, encrypted when configured). ``invalid_grant``
raises :class:`OAuthRefused`; the caller marks the service disconnected.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any

import aiohttp

from delightbridge.core import logs
from delightbridge.core.errors import GmailUnavailable, GrantRefused, OAuthRefused
from delightbridge.sync.gmail.listener import GmailListener

REFRESH_MARGIN = 120.0  # seconds before expiry at which a token counts as stale

GMAIL_READONLY = "https://www.googleapis.com/auth/gmail.readonly"
GMAIL_SEND = "https://www.googleapis.com/auth/gmail.send"
GMAIL_SETTINGS_BASIC = "https://www.googleapis.com/auth/gmail.settings.basic"
#: The web app's own connect asks for these: the tokens stored serve both (it sends,
#: and lists send-as addresses, with them).
SCOPES: tuple[str, ...] = (GMAIL_READONLY, GMAIL_SEND, GMAIL_SETTINGS_BASIC)
#: Bounds each call of a connect: an admin's browser waits for it.
GRANT_TIMEOUT = aiohttp.ClientTimeout(total=30, connect=10)


@dataclass(frozen=True, slots=True)
class OAuthClient:
    token_uri: str
    client_id: str
    client_secret: str

    @property
    def revoke_uri(self) -> str:
        """Google's revocation endpoint beside its token endpoint
        (``https://oauth2.googleapis.com/revoke``; the simulator's ``<base>/revoke``)."""
        return self.token_uri.rsplit("/", 1)[0] + "/revoke"


@dataclass(frozen=True, slots=True)
class AccessToken:
    value: str
    expires_at: float  # time.time() seconds


@dataclass(frozen=True, slots=True)
class GrantedTokens:
    access_token: str
    expires_at: float  # time.time() seconds
    refresh_token: str


async def _post_form(session: aiohttp.ClientSession, url: str, form: dict[str, str],
                     endpoint: str, limits: aiohttp.ClientTimeout | None = None
                     ) -> tuple[int, dict[str, Any]]:
    """POST a form to one of Google's OAuth endpoints: its status and JSON object
    ({} when the body is not one); :class:`GmailUnavailable` when it cannot be reached."""
    try:
        async with session.post(url, data=form, headers={"Accept": "application/json"},
                                timeout=limits or session.timeout) as response:
            status = response.status
            try:
                payload = await response.json(content_type=None)
            except ValueError:
                payload = {}
    except (aiohttp.ClientError, TimeoutError) as exc:
        raise GmailUnavailable(
            f"OAuth {endpoint} endpoint unreachable: {type(exc).__name__}") from None
    return status, payload if isinstance(payload, dict) else {}


async def exchange_code(session: aiohttp.ClientSession, client: OAuthClient, code: str,
                        redirect_uri: str, verifier: str) -> GrantedTokens:
    """Google's ``authorization_code`` grant (PKCE): the tokens, with offline access and
    every scope of :data:`SCOPES`, or :class:`GrantRefused`."""
    form = {
        "grant_type": "authorization_code",
        "code": code,
        "redirect_uri": redirect_uri,
        "client_id": client.client_id,
        "client_secret": client.client_secret,
        "code_verifier": verifier,
    }
    try:
        status, payload = await _post_form(session, client.token_uri, form, "token",
                                           GRANT_TIMEOUT)
    except GmailUnavailable:
        raise GrantRefused("google_unavailable") from None
    access, refresh_token = payload.get("access_token"), payload.get("refresh_token")
    logs.secrets.add(access if isinstance(access, str) else None,
                     refresh_token if isinstance(refresh_token, str) else None)
    if status != 200 or not isinstance(access, str) or not access:
        error = str(payload.get("error", ""))
        if status == 429 or status >= 500:
            raise GrantRefused("google_unavailable")
        if error in ("invalid_client", "unauthorized_client"):
            raise GrantRefused("client_rejected")
        if error in ("invalid_grant", "redirect_uri_mismatch"):
            raise GrantRefused("code_rejected")
        raise GrantRefused("token_exchange_failed")
    if not isinstance(refresh_token, str) or not refresh_token:
        raise GrantRefused("no_refresh_token")
    granted = payload.get("scope")
    if isinstance(granted, str) and not set(SCOPES) <= set(granted.split()):
        raise GrantRefused("insufficient_scope")
    try:
        expires_in = max(0.0, float(payload.get("expires_in", 3600)))
    except (TypeError, ValueError):
        expires_in = 0.0
    return GrantedTokens(access, time.time() + expires_in, refresh_token)


async def mailbox_address(session: aiohttp.ClientSession, gmail_base_url: str,
                          access_token: str, listeners: Sequence[GmailListener] = ()) -> str:
    """The address of the mailbox ``access_token`` opens (Gmail's ``users.getProfile``,
    1 unit), or :class:`GrantRefused`.

    Called with the bare access token, not through a service's client: nothing is
    stored for a service until its address is known to match.
    """
    for listener in listeners:
        listener.gmail_called("users.getProfile", 1)
    try:
        async with session.get(f"{gmail_base_url}users/me/profile",
                               headers={"Authorization": f"Bearer {access_token}",
                                        "Accept": "application/json"},
                               timeout=GRANT_TIMEOUT) as response:
            status = response.status
            try:
                payload = await response.json(content_type=None)
            except ValueError:
                payload = None
    except (aiohttp.ClientError, TimeoutError):
        for listener in listeners:
            listener.gmail_failed("connection")
        raise GrantRefused("google_unavailable") from None
    address = payload.get("emailAddress") if isinstance(payload, dict) else None
    if status != 200 or not isinstance(address, str) or not address:
        for listener in listeners:
            listener.gmail_failed(f"{status}:")
        raise GrantRefused("insufficient_scope" if status in (401, 403)
                           else "google_unavailable")
    return address


async def refresh(
    session: aiohttp.ClientSession, client: OAuthClient, refresh_token: str
) -> AccessToken:
    """Exchange a refresh token for a fresh access token."""
    form = {
        "grant_type": "refresh_token",
        "refresh_token": refresh_token,
        "client_id": client.client_id,
        "client_secret": client.client_secret,
    }
    status, payload = await _post_form(session, client.token_uri, form, "token")
    if status == 200 and isinstance(payload.get("access_token"), str):
        token = payload["access_token"]
        logs.secrets.add(token)
        expires_in = float(payload.get("expires_in", 3600))
        return AccessToken(token, time.time() + expires_in)
    error = str(payload.get("error", ""))
    if error in ("invalid_grant", "unauthorized_client", "invalid_client"):
        description = str(payload.get("error_description") or error)[:200]
        raise OAuthRefused(logs.scrub(f"{error}: {description}"))
    raise GmailUnavailable(
        f"OAuth token endpoint answered {status} {error}".strip(), status=status,
        retry_after=5.0,
    )


async def revoke(session: aiohttp.ClientSession, client: OAuthClient, token: str) -> bool:
    """Revoke a refresh token (and the access tokens issued from it) at Google.

    True when Google revoked it, False when Google no longer knows it (already
    revoked or expired: ``400 invalid_token``); :class:`GmailUnavailable` otherwise,
    so the caller may try again later.
    """
    status, payload = await _post_form(session, client.revoke_uri, {"token": token}, "revoke")
    if status == 200:
        return True
    error = str(payload.get("error", ""))
    if status == 400 and error in ("invalid_token", "invalid_grant"):
        return False
    raise GmailUnavailable(f"OAuth revoke endpoint answered {status} {error}".strip(),
                           status=status, retry_after=5.0)


class ServiceTokens:
    """Access tokens of one service."""

    def __init__(
        self,
        session: aiohttp.ClientSession,
        client: OAuthClient,
        refresh_token: str,
        cached: AccessToken | None,
        persist: Callable[[AccessToken], Awaitable[None]],
    ) -> None:
        self._session = session
        self._client = client
        self._refresh_token = refresh_token
        self._token = cached
        self._persist = persist
        self._lock = asyncio.Lock()
        logs.secrets.add(refresh_token, cached.value if cached else None)

    async def token(self) -> str:
        current = self._token
        if current and current.expires_at - time.time() > REFRESH_MARGIN:
            return current.value
        return await self._refresh(current.value if current else None)

    async def revoke(self) -> bool:
        """Revoke the refresh token at Google (see :func:`revoke`); forget the access token."""
        self._token = None
        return await revoke(self._session, self._client, self._refresh_token)

    async def refreshed(self, rejected: str) -> str:
        """A new token after Gmail rejected ``rejected`` with 401."""
        return await self._refresh(rejected, force=True)

    async def _refresh(self, seen: str | None, *, force: bool = False) -> str:
        async with self._lock:
            current = self._token
            # Another caller refreshed while we waited for the lock.
            if current and current.value != seen and (
                force or current.expires_at - time.time() > REFRESH_MARGIN
            ):
                return current.value
            fresh = await refresh(self._session, self._client, self._refresh_token)
            self._token = fresh
            await self._persist(fresh)
            return fresh.value
