"""Who is calling: a request's Auth.js session cookie resolved to an :class:`Identity`.

Two kinds of Auth.js session reach the API in the same cookie
(``authjs.session-token`` or ``__Secure-authjs.session-token``, maybe chunked):

* JWT sessions (DelightBridge's): a JWE decrypted with ``AUTH_SECRET``
  (:mod:`delightbridge.api.authjs`). The user is ``users.google_id = sub``; the email is the
  token's.
* Database sessions: an opaque token looked up in the deployment's own ``sessions``
  table, where it keeps one (either layout, see ``delightbridge_sync.auth_session`` in
  migration 0002; the service creates none); an expired row is refused.

An identity is an admin when its ``users.permission`` is ``'admin'`` or its email is
in ``ADMIN_EMAILS`` (case-insensitive). :func:`resolve_identity` raises
:class:`Unauthenticated` (401) for a missing, invalid or expired session;
:func:`require_admin` also raises :class:`Forbidden` (403) for a valid session of
someone who is not an admin. Cookie values and secrets never reach a message or a log.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal

import asyncpg

from delightbridge.api.authjs import (
    SECURE_SESSION_COOKIE_NAME,
    SESSION_COOKIE_NAME,
    Unauthenticated,
    cookie_header,
    decode_session,
    encode_session,
    looks_like_jwe,
    session_token_from_cookies,
)
from delightbridge.core.errors import ConfigError, DatabaseError, DelightBridgeError
from delightbridge.core.settings import Settings
from delightbridge.db import users

__all__ = [
    "ADMIN_COOKIE_MAX_AGE",
    "Forbidden",
    "Identity",
    "Unauthenticated",
    "mint_admin_cookie",
    "require_admin",
    "resolve_identity",
]

log = logging.getLogger(__name__)

#: Lifetime of cookies minted for operators: long enough for a working day.
ADMIN_COOKIE_MAX_AGE = 12 * 60 * 60
# Auth.js's database session tokens are UUIDs; the adapter column is VARCHAR(255).
_MAX_DATABASE_TOKEN_LENGTH = 255
_EMAIL_RE = re.compile(r"^[^@\s,;]+@[^@\s,;]+$")


class Forbidden(DelightBridgeError):
    """Signed in, but not an admin of the DelightBridge workspace (HTTP 403)."""

    code = "forbidden"

    def __init__(self, identity: Identity | None = None, message: str | None = None) -> None:
        self.identity = identity
        super().__init__(
            message
            or "Admin permission required: ask an admin of the DelightBridge workspace."
        )


@dataclass(frozen=True, slots=True)
class Identity:
    """The person behind a valid session."""

    #: ``users.id`` (``'user-<google sub>'``); ``None`` for a JWT whose ``sub`` is not
    #: (yet) in ``users`` (e.g. an ``ADMIN_EMAILS`` operator who never signed in).
    user_id: str | None
    email: str
    name: str | None
    is_admin: bool
    via: Literal["jwt", "database"]


async def resolve_identity(
    pool: asyncpg.Pool, cookies: Mapping[str, str], settings: Settings
) -> Identity:
    """The identity of the request's Auth.js session, or :class:`Unauthenticated`."""
    found = session_token_from_cookies(cookies)
    if found is None:
        raise Unauthenticated("missing")
    cookie_name, value = found
    try:
        if looks_like_jwe(value):
            return await _from_jwt(pool, cookie_name, value, settings)
        return await _from_database(pool, value, settings)
    except Unauthenticated as exc:
        # A request without a cookie is routine (not logged); a refused cookie is worth a line.
        log.info(
            "session refused: %s",
            exc.reason,
            extra={"action": "auth.refused", "reason": exc.reason, "cookie": cookie_name},
        )
        raise


async def require_admin(
    pool: asyncpg.Pool, cookies: Mapping[str, str], settings: Settings
) -> Identity:
    """Like :func:`resolve_identity`, and :class:`Forbidden` unless the identity is an admin."""
    identity = await resolve_identity(pool, cookies, settings)
    if not identity.is_admin:
        log.info(
            "admin required: %s is not an admin",
            identity.email,
            extra={"action": "auth.forbidden", "via": identity.via},
        )
        raise Forbidden(identity)
    return identity


def _is_admin_email(email: str, settings: Settings) -> bool:
    return email.lower() in settings.admin_emails


def _text(value: object) -> str | None:
    return value if isinstance(value, str) and value else None


async def _from_jwt(
    pool: asyncpg.Pool, cookie_name: str, token: str, settings: Settings
) -> Identity:
    if not settings.auth_secret:
        log.warning(
            "an Auth.js JWT session arrived but AUTH_SECRET is not set: it cannot be verified",
            extra={"action": "auth.no_secret"},
        )
        raise Unauthenticated("no_secret")
    claims = decode_session(token, settings.auth_secret, cookie_name=cookie_name)
    sub = _text(claims.get("sub"))
    user = None
    if sub is not None:
        try:
            user = await users.by_google_id(pool, google_id=sub)
        except DatabaseError as exc:
            raise DatabaseError(f"cannot look up the session's user: {exc}") from exc
    email = _text(claims.get("email")) or (user.email if user is not None else None)
    if not email:
        raise Unauthenticated("unknown_user")
    name = _text(claims.get("name")) or (user.name if user is not None else None)
    is_admin = (user is not None and user.is_admin) or _is_admin_email(email, settings)
    return Identity(
        user_id=user.id if user is not None else None,
        email=email,
        name=name,
        is_admin=is_admin,
        via="jwt",
    )


async def _from_database(pool: asyncpg.Pool, token: str, settings: Settings) -> Identity:
    if len(token) > _MAX_DATABASE_TOKEN_LENGTH or not token.isprintable():
        raise Unauthenticated("unknown_session")
    try:
        session = await users.database_session(pool, token=token)
    except DatabaseError as exc:
        # Not chained and not quoted: a driver message could echo the bound token.
        raise DatabaseError(
            f"cannot look up the database session ({type(exc.__cause__ or exc).__name__})"
        ) from None
    if session is None:
        raise Unauthenticated("unknown_session")
    if not session.live:
        raise Unauthenticated("expired")
    user = session.user
    if user is None:
        raise Unauthenticated("unknown_user")
    return Identity(
        user_id=user.id,
        email=user.email,
        name=user.name,
        is_admin=user.is_admin or _is_admin_email(user.email, settings),
        via="database",
    )


def mint_admin_cookie(
    settings: Settings,
    email: str,
    *,
    sub: str | None = None,
    name: str | None = None,
    max_age: int = ADMIN_COOKIE_MAX_AGE,
    secure: bool = False,
) -> str:
    """A ``Cookie:`` header value carrying a JWT session for ``email``, as Auth.js makes it.

    ``authjs.session-token=<JWE>`` (``__Secure-authjs.session-token`` with ``secure``,
    for a web app on https), chunked like Auth.js when long; ready for
    ``curl --cookie``. The session is an admin's only if ``email`` is in
    ``ADMIN_EMAILS`` or ``sub`` is the ``google_id`` of an admin user: checking that is
    the caller's job (see :mod:`delightbridge.cli.admin_session`). Raises :class:`ConfigError`
    without ``AUTH_SECRET``.
    """
    if not settings.auth_secret:
        raise ConfigError(
            "AUTH_SECRET", "is not set: it is needed to mint an Auth.js session cookie"
        )
    if not _EMAIL_RE.match(email):
        raise ValueError("not an email address")
    claims: dict[str, str] = {"email": email}
    if name:
        claims["name"] = name
    if sub:
        claims["sub"] = sub
    cookie_name = SECURE_SESSION_COOKIE_NAME if secure else SESSION_COOKIE_NAME
    token = encode_session(
        claims, settings.auth_secret, cookie_name=cookie_name, max_age=max_age
    )
    return cookie_header(token, cookie_name)
