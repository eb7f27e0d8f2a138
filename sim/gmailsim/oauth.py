"""Google's OAuth 2.0 token endpoint, as far as the project uses it.

* ``grant_type=refresh_token`` answers ``{access_token, expires_in, scope,
  token_type}``; a revoked or unknown refresh token answers 400
  ``{"error": "invalid_grant", "error_description": "Token has been expired or revoked."}``.
* ``grant_type=authorization_code`` (the connect flow) exchanges a one-time code
  (minted by the simulated consent page or :meth:`TokenStore.issue_code`) for an
  access token, a refresh token and, when ``openid``/``email`` was granted, an
  ``id_token`` (HS256-signed with the client secret; its claims carry the address).
* The client must authenticate (form fields or HTTP Basic): ``invalid_client``
  otherwise.

Tokens look like Google's (``ya29.`` access tokens, ``1//`` refresh tokens), so the
project's log scrubbing patterns apply to them too.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets
import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from gmailsim.clock import Clock

GMAIL_MODIFY = "https://www.googleapis.com/auth/gmail.modify"
GMAIL_READONLY = "https://www.googleapis.com/auth/gmail.readonly"
GMAIL_METADATA = "https://www.googleapis.com/auth/gmail.metadata"
GMAIL_SETTINGS_BASIC = "https://www.googleapis.com/auth/gmail.settings.basic"
MAIL_GOOGLE = "https://mail.google.com/"
DEFAULT_SCOPES: tuple[str, ...] = (GMAIL_MODIFY,)
_ID_TOKEN_SCOPES = frozenset({"openid", "email", "https://www.googleapis.com/auth/userinfo.email"})


class OAuthError(Exception):
    """An OAuth error answered as ``{"error", "error_description"}``."""

    def __init__(self, status: int, error: str, description: str) -> None:
        super().__init__(f"{error}: {description}")
        self.status = status
        self.error = error
        self.description = description

    def body(self) -> dict[str, str]:
        return {"error": self.error, "error_description": self.description}


@dataclass(slots=True)
class RefreshToken:
    token: str
    address: str
    scopes: tuple[str, ...]
    revoked: bool = False


@dataclass(slots=True)
class AccessToken:
    token: str
    address: str
    scopes: tuple[str, ...]
    expires_at: float
    refresh_token: str | None = None


@dataclass(slots=True)
class AuthCode:
    code: str
    address: str
    client_id: str
    redirect_uri: str
    scopes: tuple[str, ...]
    expires_at: float
    code_challenge: str | None = None
    code_challenge_method: str | None = None
    used: bool = False


@dataclass(slots=True)
class _Tokens:
    refresh: dict[str, RefreshToken] = field(default_factory=dict)
    access: dict[str, AccessToken] = field(default_factory=dict)
    codes: dict[str, AuthCode] = field(default_factory=dict)


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


class TokenStore:
    """Clients, refresh tokens, access tokens and authorization codes."""

    def __init__(self, client_id: str, client_secret: str, clock: Clock, *,
                 access_ttl: int = 3599, issuer: str = "https://accounts.google.com") -> None:
        self.client_id = client_id
        self.client_secret = client_secret
        self.access_ttl = access_ttl
        self.issuer = issuer
        self._clock = clock
        self._lock = threading.Lock()
        self._t = _Tokens()

    def dump(self) -> _Tokens:
        """Every token and code, to keep across restarts (:meth:`Simulator.dump_state`)."""
        with self._lock:
            return _Tokens(dict(self._t.refresh), dict(self._t.access), dict(self._t.codes))

    def load(self, tokens: _Tokens) -> None:
        with self._lock:
            self._t = tokens

    def knows_refresh_token(self, token: str) -> bool:
        with self._lock:
            return token in self._t.refresh

    # --- minting ---------------------------------------------------------------------

    def issue_refresh_token(self, address: str, scopes: Sequence[str] = DEFAULT_SCOPES) -> str:
        token = "1//0" + secrets.token_urlsafe(48)
        with self._lock:
            self._t.refresh[token] = RefreshToken(token, address, tuple(scopes))
        return token

    def issue_access_token(self, address: str, scopes: Sequence[str] = DEFAULT_SCOPES,
                           refresh_token: str | None = None) -> AccessToken:
        token = "ya29.a0" + secrets.token_urlsafe(60)
        access = AccessToken(token, address, tuple(scopes),
                             self._clock.now() + self.access_ttl, refresh_token)
        with self._lock:
            self._t.access[token] = access
        return access

    def issue_code(self, address: str, *, redirect_uri: str,
                   scopes: Sequence[str] = DEFAULT_SCOPES, client_id: str | None = None,
                   code_challenge: str | None = None,
                   code_challenge_method: str | None = None) -> str:
        code = "4/0" + secrets.token_urlsafe(40)
        with self._lock:
            self._t.codes[code] = AuthCode(
                code, address, client_id or self.client_id, redirect_uri, tuple(scopes),
                self._clock.now() + 600, code_challenge, code_challenge_method)
        return code

    # --- checks ----------------------------------------------------------------------

    def authenticate(self, token: str) -> AccessToken | None:
        """The access token's grant if it is known, unrevoked and unexpired."""
        with self._lock:
            access = self._t.access.get(token)
            if access is None or access.expires_at <= self._clock.now():
                return None
            if access.refresh_token is not None:
                refresh = self._t.refresh.get(access.refresh_token)
                if refresh is None or refresh.revoked:
                    return None
            return access

    def expire(self, token: str) -> None:
        with self._lock:
            access = self._t.access.get(token)
            if access is not None:
                access.expires_at = min(access.expires_at, self._clock.now())

    def expire_access_tokens(self, address: str | None = None) -> int:
        """Expire every access token (of one mailbox); returns how many."""
        now = self._clock.now()
        count = 0
        with self._lock:
            for access in self._t.access.values():
                if (address is None or access.address == address) and access.expires_at > now:
                    access.expires_at = now
                    count += 1
        return count

    def revoke_mailbox(self, address: str) -> int:
        """Revoke every refresh token of a mailbox (and, with them, their access tokens)."""
        count = 0
        with self._lock:
            for refresh in self._t.refresh.values():
                if refresh.address == address and not refresh.revoked:
                    refresh.revoked = True
                    count += 1
            for access in self._t.access.values():
                if access.address == address:
                    access.expires_at = 0
        return count

    def revoke(self, token: str) -> bool:
        """Google's ``/revoke``: a refresh token, or an access token and its grant."""
        with self._lock:
            refresh = self._t.refresh.get(token)
            access = self._t.access.get(token)
            if refresh is None and access is not None and access.refresh_token:
                refresh = self._t.refresh.get(access.refresh_token)
            if refresh is None and access is None:
                return False
            if refresh is not None:
                refresh.revoked = True
                for other in self._t.access.values():
                    if other.refresh_token == refresh.token:
                        other.expires_at = 0
            if access is not None:
                access.expires_at = 0
            return True

    def refresh_tokens(self, address: str) -> list[str]:
        with self._lock:
            return [r.token for r in self._t.refresh.values()
                    if r.address == address and not r.revoked]

    # --- the token endpoint ------------------------------------------------------------

    def _check_client(self, form: Mapping[str, str], basic: tuple[str, str] | None) -> None:
        client_id, secret = basic if basic else (form.get("client_id"), form.get("client_secret"))
        if not client_id:
            raise OAuthError(400, "invalid_request", "Could not determine client ID from request.")
        if client_id != self.client_id:
            raise OAuthError(401, "invalid_client", "The OAuth client was not found.")
        if secret != self.client_secret:
            raise OAuthError(401, "invalid_client", "Unauthorized")

    def token_request(self, form: Mapping[str, str],
                      basic: tuple[str, str] | None = None) -> dict[str, Any]:
        """Answer one POST to the token endpoint, or raise :class:`OAuthError`."""
        grant = form.get("grant_type")
        if not grant:
            raise OAuthError(400, "unsupported_grant_type", "Invalid grant_type: ")
        if grant not in ("refresh_token", "authorization_code"):
            raise OAuthError(400, "unsupported_grant_type", f"Invalid grant_type: {grant}")
        self._check_client(form, basic)
        if grant == "refresh_token":
            return self._refresh(form)
        return self._exchange(form)

    def _refresh(self, form: Mapping[str, str]) -> dict[str, Any]:
        token = form.get("refresh_token")
        if not token:
            raise OAuthError(400, "invalid_request", "Missing required parameter: refresh_token")
        with self._lock:
            refresh = self._t.refresh.get(token)
            if refresh is None or refresh.revoked:
                raise OAuthError(400, "invalid_grant", "Token has been expired or revoked.")
        access = self.issue_access_token(refresh.address, refresh.scopes, refresh.token)
        return self._token_response(access)

    def _exchange(self, form: Mapping[str, str]) -> dict[str, Any]:
        code = form.get("code")
        if not code:
            raise OAuthError(400, "invalid_request", "Missing required parameter: code")
        with self._lock:
            grant = self._t.codes.get(code)
            if grant is None:
                raise OAuthError(400, "invalid_grant", "Malformed auth code.")
            if grant.used or grant.expires_at <= self._clock.now():
                raise OAuthError(400, "invalid_grant", "Bad Request")
            if form.get("redirect_uri") != grant.redirect_uri:
                raise OAuthError(400, "redirect_uri_mismatch", "Bad Request")
            if grant.code_challenge is not None:
                verifier = form.get("code_verifier") or ""
                if grant.code_challenge_method == "S256":
                    computed = _b64(hashlib.sha256(verifier.encode()).digest())
                else:
                    computed = verifier
                if not hmac.compare_digest(computed, grant.code_challenge):
                    raise OAuthError(400, "invalid_grant", "Invalid code verifier.")
            grant.used = True
        refresh = self.issue_refresh_token(grant.address, grant.scopes)
        access = self.issue_access_token(grant.address, grant.scopes, refresh)
        body = self._token_response(access)
        body["refresh_token"] = refresh
        if _ID_TOKEN_SCOPES & set(grant.scopes):
            body["id_token"] = self.id_token(grant.address)
        return body

    def _token_response(self, access: AccessToken) -> dict[str, Any]:
        return {
            "access_token": access.token,
            "expires_in": self.access_ttl,
            "scope": " ".join(access.scopes),
            "token_type": "Bearer",
        }

    def id_token(self, address: str) -> str:
        """A JWT naming the mailbox (HS256 with the client secret; not Google-signed)."""
        now = int(self._clock.now())
        header = {"alg": "HS256", "typ": "JWT"}
        claims = {
            "iss": self.issuer, "aud": self.client_id, "azp": self.client_id,
            "sub": str(int(hashlib.sha256(address.encode()).hexdigest()[:15], 16)),
            "email": address, "email_verified": True, "iat": now, "exp": now + self.access_ttl,
        }
        signing_input = (_b64(json.dumps(header, separators=(",", ":")).encode()) + "."
                         + _b64(json.dumps(claims, separators=(",", ":")).encode()))
        signature = hmac.new(self.client_secret.encode(), signing_input.encode(),
                             hashlib.sha256).digest()
        return signing_input + "." + _b64(signature)
