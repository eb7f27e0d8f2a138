"""Auth.js session cookies in Python: their names, their chunks and the JWE inside.

Mirrors ``@auth/core`` (checked against 0.41.3: ``src/jwt.ts`` and
``src/lib/utils/cookie.ts``) so that the sync API accepts the cookies the web app
issues, and the cookies minted here are accepted by the web app:

* The cookie is ``authjs.session-token``, or ``__Secure-authjs.session-token`` when
  the site runs on https. A value longer than ``CHUNK_SIZE`` (4096 - 160) characters
  is split over ``<name>.0``, ``<name>.1``… and joined back in numeric order.
* With JWT sessions the value is a compact JWE: ``alg: dir``, ``enc: A256CBC-HS512``,
  ``kid`` the RFC 7638 SHA-512 thumbprint of the key. The 64-byte key is
  HKDF-SHA256(``AUTH_SECRET``, salt = the cookie name (without chunk suffix),
  info = ``Auth.js Generated Encryption Key (<cookie name>)``).
* ``exp`` (and ``nbf``) are checked with Auth.js's 15 seconds of clock tolerance.

Pure functions: no database, no HTTP. Every refusal is :class:`Unauthenticated` with a
short ``reason``; no message ever carries the secret or the cookie value. The JOSE
work is ``joserfc``'s and the key derivation ``cryptography``'s.
"""

from __future__ import annotations

import base64
import binascii
import functools
import json
import math
import time
import uuid
from collections.abc import Mapping, Sequence
from typing import Any, Literal

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from joserfc import jwt
from joserfc.errors import ExpiredTokenError, InvalidClaimError, JoseError, MissingClaimError
from joserfc.jwe import JWERegistry
from joserfc.jwk import OctKey, thumbprint
from joserfc.util import urlsafe_b64encode

from delightbridge.core.errors import ConfigError, DelightBridgeError

__all__ = [
    "ALG",
    "CHUNK_SIZE",
    "CLOCK_TOLERANCE",
    "DEFAULT_MAX_AGE",
    "ENC",
    "SECURE_SESSION_COOKIE_NAME",
    "SESSION_COOKIE_NAME",
    "SESSION_COOKIE_NAMES",
    "Unauthenticated",
    "UnauthenticatedReason",
    "cookie_header",
    "cookie_header_values",
    "decode_session",
    "derive_key",
    "encode_session",
    "key_id",
    "looks_like_jwe",
    "session_token_from_cookies",
]

SESSION_COOKIE_NAME = "authjs.session-token"
SECURE_SESSION_COOKIE_NAME = "__Secure-authjs.session-token"
#: Both names Auth.js uses, in the order they are looked for (``__Secure-`` first).
SESSION_COOKIE_NAMES: tuple[str, str] = (SECURE_SESSION_COOKIE_NAME, SESSION_COOKIE_NAME)

ALG = "dir"
ENC = "A256CBC-HS512"
#: Auth.js's session lifetime when none is configured: 30 days.
DEFAULT_MAX_AGE = 30 * 24 * 60 * 60
#: Seconds of clock skew allowed on ``exp``/``nbf`` (``clockTolerance`` in Auth.js).
CLOCK_TOLERANCE = 15
#: Auth.js splits a cookie value longer than this into ``.0``, ``.1``… chunks.
CHUNK_SIZE = 4096 - 160

_KEY_LENGTH = 64  # bytes, for A256CBC-HS512
_KEY_INFO = "Auth.js Generated Encryption Key ({salt})"
# A browser sends at most a few cookies of 4 KB; anything far beyond is not a session.
_MAX_TOKEN_LENGTH = 64 * 1024
_REGISTRY = JWERegistry(algorithms=[ALG, ENC])

UnauthenticatedReason = Literal[
    "missing",
    "malformed",
    "unsupported_algorithm",
    "invalid",
    "expired",
    "invalid_claims",
    "unknown_session",
    "unknown_user",
    "no_secret",
]

_MESSAGES: dict[str, str] = {
    "missing": "No Auth.js session cookie: sign in to DelightBridge first.",
    "malformed": "The session cookie is not an Auth.js session token.",
    "unsupported_algorithm": "The session token is not encrypted the way Auth.js encrypts it.",
    "invalid": (
        "The session token cannot be decrypted: it is forged, tampered with, truncated, "
        "or was issued with another AUTH_SECRET."
    ),
    "expired": "The session has expired: sign in again.",
    "invalid_claims": "The session token's claims are invalid.",
    "unknown_session": "No such session: sign in again.",
    "unknown_user": "The session does not name a known user.",
    "no_secret": "This server cannot verify Auth.js JWT sessions: AUTH_SECRET is not set.",
}


class Unauthenticated(DelightBridgeError):
    """No valid session: missing, invalid, tampered with, or expired (HTTP 401).

    ``reason`` says which, for logs and metrics; the message never includes the
    cookie, the token or the secret.
    """

    code = "unauthenticated"

    def __init__(self, reason: UnauthenticatedReason, message: str | None = None) -> None:
        self.reason: UnauthenticatedReason = reason
        super().__init__(message or _MESSAGES[reason])


# --- keys ------------------------------------------------------------------------------


@functools.lru_cache(maxsize=32)
def derive_key(secret: str, cookie_name: str = SESSION_COOKIE_NAME) -> bytes:
    """The 64-byte A256CBC-HS512 key Auth.js derives from ``secret`` for ``cookie_name``."""
    if not secret:
        raise ConfigError("AUTH_SECRET", "is empty")
    hkdf = HKDF(
        algorithm=hashes.SHA256(),
        length=_KEY_LENGTH,
        salt=cookie_name.encode(),
        info=_KEY_INFO.format(salt=cookie_name).encode(),
    )
    return hkdf.derive(secret.encode())


def key_id(key: bytes) -> str:
    """The ``kid`` Auth.js puts in the header: the JWK thumbprint with SHA-(8 * len)."""
    digest: Literal["sha256", "sha384", "sha512"] = "sha512" if len(key) == 64 else "sha256"
    return thumbprint({"kty": "oct", "k": urlsafe_b64encode(key).decode()}, digest)


def _secrets(secret: str | Sequence[str]) -> list[str]:
    secrets = [secret] if isinstance(secret, str) else list(secret)
    if not secrets or not all(isinstance(s, str) and s for s in secrets):
        raise ConfigError("AUTH_SECRET", "is empty")
    return secrets


# --- the JWE ---------------------------------------------------------------------------


def looks_like_jwe(value: str) -> bool:
    """Whether a cookie value has the shape of a compact JWE (five dot-separated parts).

    Auth.js's database sessions use opaque tokens (a UUID by default) instead.
    """
    return value.count(".") == 4


def encode_session(
    claims: Mapping[str, Any],
    secret: str | Sequence[str],
    *,
    cookie_name: str = SESSION_COOKIE_NAME,
    max_age: int = DEFAULT_MAX_AGE,
    now: float | None = None,
) -> str:
    """A session token as ``@auth/core``'s ``jwt.encode`` makes it.

    ``iat``, ``exp`` (``iat + max_age``) and a random ``jti`` are set like Auth.js
    sets them, replacing any in ``claims``. With several secrets the first is used.
    """
    if max_age <= 0:
        raise ValueError("max_age must be a positive number of seconds")
    key = derive_key(_secrets(secret)[0], cookie_name)
    issued = int(time.time() if now is None else now)
    payload = {**claims, "iat": issued, "exp": issued + max_age, "jti": str(uuid.uuid4())}
    header = {"alg": ALG, "enc": ENC, "kid": key_id(key)}
    return jwt.encode(
        header, payload, OctKey.import_key(key), registry=_REGISTRY, default_type=None
    )


class _SessionClaims(jwt.JWTClaimsRegistry):
    """Claims checks as ``jose``'s ``jwtDecrypt`` makes them for Auth.js, plus ``exp``.

    ``iat`` only has to be a number: ``jose`` does not refuse one in the future (a web
    app whose clock runs ahead must not lock admins out). ``exp`` is required: Auth.js
    always sets it and a session that never expires is not one we accept.
    """

    def validate_iat(self, value: object) -> None:
        if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(
            value
        ):
            raise InvalidClaimError("iat", "Claim 'iat' must be a NumericDate value")


def _protected_header(token: str) -> dict[str, Any]:
    segment = token.split(".", 1)[0]
    try:
        raw = base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4))
        header = json.loads(raw)
    except (ValueError, binascii.Error, RecursionError):
        # JSONDecodeError and UnicodeDecodeError are ValueErrors; deeply nested JSON
        # (``[`` x 5000) exhausts the parser's recursion limit.
        raise Unauthenticated("malformed") from None
    if not isinstance(header, dict):
        raise Unauthenticated("malformed")
    return header


def _candidate_keys(header: Mapping[str, Any], secrets: list[str], cookie_name: str) -> list[bytes]:
    """The keys to try, as Auth.js picks them: by ``kid`` when present, else all."""
    keys = [derive_key(s, cookie_name) for s in secrets]
    kid = header.get("kid")
    if kid is None:
        # Auth.js tries only the first secret here; trying each in turn also accepts
        # tokens from before ``kid`` existed that were issued with an older secret.
        return keys
    return [key for key in keys if key_id(key) == kid]


def _decrypt(token: str, key: bytes) -> dict[str, Any] | None:
    """The JWE's JSON object payload, or ``None`` when it does not decrypt with ``key``."""
    try:
        return jwt.decode(token, OctKey.import_key(key), registry=_REGISTRY).claims
    except (JoseError, ValueError, TypeError, KeyError, RecursionError):
        # Attacker-controlled input: every failure (bad base64, bad tag, wrong key,
        # padding, non-object payload) is the same refusal, and says nothing more.
        return None


def decode_session(
    token: str,
    secret: str | Sequence[str],
    *,
    cookie_name: str = SESSION_COOKIE_NAME,
    now: float | None = None,
) -> dict[str, Any]:
    """The claims of an Auth.js session token, or :class:`Unauthenticated`.

    ``secret`` may list several secrets (newest first, like ``AUTH_SECRET_1``… in
    Auth.js) to accept sessions issued before a rotation. ``cookie_name`` is the name
    the token arrived under (without a chunk suffix): it salts the key.
    """
    secrets = _secrets(secret)
    if not isinstance(token, str) or not token or len(token) > _MAX_TOKEN_LENGTH:
        raise Unauthenticated("malformed")
    if not looks_like_jwe(token):
        raise Unauthenticated("malformed")
    header = _protected_header(token)
    if header.get("alg") != ALG or header.get("enc") != ENC or "zip" in header:
        raise Unauthenticated("unsupported_algorithm")

    claims: dict[str, Any] | None = None
    for key in _candidate_keys(header, secrets, cookie_name):
        claims = _decrypt(token, key)
        if claims is not None:
            break
    if claims is None:
        raise Unauthenticated("invalid")

    registry = _SessionClaims(
        now=int(time.time() if now is None else now),
        leeway=CLOCK_TOLERANCE,
        exp={"essential": True},
    )
    try:
        registry.validate(claims)
    except ExpiredTokenError:
        raise Unauthenticated("expired") from None
    except (MissingClaimError, InvalidClaimError, JoseError):
        raise Unauthenticated("invalid_claims") from None
    return claims


# --- cookies ---------------------------------------------------------------------------


def _joined(cookies: Mapping[str, str], name: str) -> str | None:
    plain = cookies.get(name)
    if plain:
        return plain
    prefix = name + "."
    chunks: dict[int, str] = {}
    for key, value in cookies.items():
        suffix = key[len(prefix):] if key.startswith(prefix) else ""
        if value and suffix.isascii() and suffix.isdigit():
            chunks[int(suffix)] = value
    if not chunks:
        return None
    return "".join(chunks[index] for index in sorted(chunks))


def session_token_from_cookies(cookies: Mapping[str, str]) -> tuple[str, str] | None:
    """``(cookie name, value)`` of the session in a request's cookies, or ``None``.

    Chunks ``<name>.0``, ``<name>.1``… are joined in numeric order, as Auth.js's
    ``SessionStore`` does; an unchunked cookie, when present, is taken as it is. The
    ``__Secure-`` name wins when both names are present. The name returned is the one
    to pass to :func:`decode_session` (it salts the key).
    """
    for name in SESSION_COOKIE_NAMES:
        value = _joined(cookies, name)
        if value:
            return name, value
    return None


def cookie_header_values(
    token: str, cookie_name: str = SESSION_COOKIE_NAME
) -> list[tuple[str, str]]:
    """The ``(name, value)`` cookies Auth.js would set for ``token``, chunked alike."""
    if not token:
        raise ValueError("empty session token")
    count = math.ceil(len(token) / CHUNK_SIZE)
    if count == 1:
        return [(cookie_name, token)]
    return [
        (f"{cookie_name}.{index}", token[index * CHUNK_SIZE:(index + 1) * CHUNK_SIZE])
        for index in range(count)
    ]


def cookie_header(token: str, cookie_name: str = SESSION_COOKIE_NAME) -> str:
    """A ``Cookie:`` header value (``name=value; name.1=value``…), e.g. for curl's --cookie."""
    return "; ".join(f"{name}={value}" for name, value in cookie_header_values(token, cookie_name))
