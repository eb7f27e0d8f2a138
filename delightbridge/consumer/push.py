"""Push delivery: ``POST /pubsub/push`` for Cloud Run style deployments.

Pub/Sub push sends an envelope ``{"message": {"data", "messageId", "publishTime"},
"subscription", "deliveryAttempt"}`` with a Google-signed OIDC token in
``Authorization: Bearer``. The token is verified as ``google.oauth2.id_token.
verify_token`` does (``google.auth.jwt.decode`` against the PEM certificates at the
certs URL: signature, ``iat``/``exp``, ``aud``), with the certificates fetched by
aiohttp and cached (``Cache-Control: max-age``) so the loop never blocks; then ``iss``
must be Google's, ``email`` the configured push service account and ``email_verified``
true. Answers: 204 once the covering sync committed (or the message is acked without
one), 401 for a missing or invalid token, 403 for a valid token of someone else, 400
for a malformed envelope, 503 for anything a retry may fix (Pub/Sub then redelivers).
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import aiohttp
from aiohttp import web
from google.auth import exceptions as google_auth_exceptions
from google.auth import jwt

from delightbridge.consumer.handler import Delivery, NotificationHandler
from delightbridge.consumer.metrics import ConsumerMetrics
from delightbridge.consumer.notification import decode_push

log = logging.getLogger("consumer.push")

GOOGLE_ISSUERS = frozenset({"accounts.google.com", "https://accounts.google.com"})
DEFAULT_CERTS_MAX_AGE = 300.0
MIN_REFETCH_INTERVAL = 30.0  # an unknown key id refetches the certs at most this often
_MAX_AGE_RE = re.compile(r"max-age=(\d+)")

# google.auth.jwt is untyped: its two functions used here, with their documented types.
_decode_header: Callable[[str], Any] = jwt.decode_header
_decode: Callable[..., Mapping[str, Any]] = jwt.decode


class PushAuthError(Exception):
    """The request's token is refused (401, 403) or cannot be checked now (503).

    ``reason`` is a fixed sentence, safe to answer and to log; ``detail`` (google-auth's
    or aiohttp's own words: the audience configured, the server's clock, the caller's
    key id, the certificates URL) is logged at DEBUG only.
    """

    def __init__(self, status: int, reason: str, detail: str | None = None) -> None:
        self.status = status
        self.reason = reason
        self.detail = detail
        super().__init__(reason)


class CertificateCache:
    """Google's signing certificates (``{kid: PEM}``), fetched with aiohttp and cached."""

    def __init__(self, session: aiohttp.ClientSession, url: str, *,
                 min_refetch_interval: float = MIN_REFETCH_INTERVAL) -> None:
        self._session = session
        self.url = url
        self.min_refetch_interval = min_refetch_interval
        self._certs: dict[str, str] = {}
        self._expires = 0.0
        self._fetched = float("-inf")
        self._lock = asyncio.Lock()

    async def get(self, key_id: str | None) -> dict[str, str]:
        now = time.monotonic()
        stale = now >= self._expires
        unknown = key_id is not None and key_id not in self._certs
        if stale or (unknown and now - self._fetched >= self.min_refetch_interval):
            async with self._lock:
                if self._fetched < now:  # nobody refreshed while we waited
                    await self._refresh()
        return self._certs

    async def _refresh(self) -> None:
        try:
            async with self._session.get(self.url, timeout=aiohttp.ClientTimeout(total=10)
                                         ) as response:
                response.raise_for_status()
                document = await response.json(content_type=None)
                cache_control = response.headers.get("Cache-Control", "")
        except (aiohttp.ClientError, TimeoutError, ValueError) as exc:
            if self._certs:  # keep serving the previous certificates
                log.warning("could not refresh the OIDC certificates: %s", exc, extra={
                    "action": "consumer.push_certs_failed", "url": self.url})
                return
            raise PushAuthError(503, "cannot fetch Google's token certificates now",
                                _first_sentence(exc)) from exc
        if not isinstance(document, dict) or not all(
                isinstance(k, str) and isinstance(v, str) for k, v in document.items()):
            raise PushAuthError(503, "the certificates document is not {kid: PEM}")
        match = _MAX_AGE_RE.search(cache_control)
        max_age = float(match.group(1)) if match else DEFAULT_CERTS_MAX_AGE
        self._certs = dict(document)
        self._fetched = time.monotonic()
        self._expires = self._fetched + max_age


class OidcVerifier:
    def __init__(self, certs: CertificateCache, *, audience: str, service_account: str,
                 clock_skew: float = 10.0) -> None:
        self._certs = certs
        self.audience = audience
        self.service_account = service_account.lower()
        self.clock_skew = clock_skew

    async def verify(self, authorization: str | None) -> Mapping[str, Any]:
        """The token's claims; raises :class:`PushAuthError` when refused."""
        scheme, _, token = (authorization or "").strip().partition(" ")
        token = token.strip()
        if scheme.lower() != "bearer" or not token:
            raise PushAuthError(401, "no bearer token")
        try:
            header = _decode_header(token)
        except (ValueError, TypeError, RecursionError, google_auth_exceptions.GoogleAuthError):
            raise PushAuthError(401, "the token is not a JWT") from None
        key_id = header.get("kid") if isinstance(header, dict) else None
        certs = await self._certs.get(key_id if isinstance(key_id, str) else None)
        try:
            claims = _decode(
                token, certs=certs, audience=self.audience,
                clock_skew_in_seconds=int(self.clock_skew))
        except (ValueError, TypeError, RecursionError,
                google_auth_exceptions.GoogleAuthError) as exc:
            raise PushAuthError(401, "the token is not valid", _first_sentence(exc)) from None
        issuer = claims.get("iss")  # any JSON value: a list or object is not hashable
        if not isinstance(issuer, str) or issuer not in GOOGLE_ISSUERS:
            raise PushAuthError(401, "the token was not issued by Google")
        email = claims.get("email")
        if not isinstance(email, str) or email.lower() != self.service_account:
            raise PushAuthError(403, "the token is not the push service account's")
        if claims.get("email_verified") is not True:
            raise PushAuthError(403, "the token's email is not verified")
        return claims


@dataclass(frozen=True, slots=True)
class Envelope:
    data: object  # message.data as sent: base64 text, checked by decode_push
    message_id: str
    publish_time: datetime | None
    delivery_attempt: int | None
    subscription: str | None


class MalformedEnvelope(ValueError):
    pass


def parse_envelope(body: bytes) -> Envelope:
    """The push envelope; raises :class:`MalformedEnvelope` when it is not one."""
    try:
        document = json.loads(body)
    except (UnicodeDecodeError, ValueError, RecursionError):  # deep nesting: RecursionError
        raise MalformedEnvelope("the body is not JSON") from None
    if not isinstance(document, dict):
        raise MalformedEnvelope("the body is not a JSON object")
    message = document.get("message")
    if not isinstance(message, dict):
        raise MalformedEnvelope("the envelope has no message object")
    data = message.get("data")
    if data is not None and not isinstance(data, str):
        raise MalformedEnvelope("message.data is not a string")
    message_id = message.get("messageId", message.get("message_id"))
    if not isinstance(message_id, str) or not message_id:
        raise MalformedEnvelope("message.messageId is missing")
    published = message.get("publishTime", message.get("publish_time"))
    attempt = document.get("deliveryAttempt")
    subscription = document.get("subscription")
    return Envelope(
        data=data, message_id=message_id[:200],
        publish_time=_timestamp(published),
        delivery_attempt=attempt if isinstance(attempt, int) and attempt > 0 else None,
        subscription=subscription if isinstance(subscription, str) else None,
    )


class PushEndpoint:
    """The aiohttp handler of ``POST /pubsub/push``."""

    def __init__(self, verifier: OidcVerifier, handler: NotificationHandler,
                 metrics: ConsumerMetrics) -> None:
        self.verifier = verifier
        self.handler = handler
        self.metrics = metrics

    async def handle(self, request: web.Request) -> web.StreamResponse:
        try:
            await self.verifier.verify(request.headers.get("Authorization"))
        except PushAuthError as exc:
            self.metrics.push_auth_failures.labels(str(exc.status)).inc()
            log.warning("push request refused: %s", exc.reason, extra={
                "action": "consumer.push_refused", "status": exc.status})
            if exc.detail:
                log.debug("push refusal detail: %s", exc.detail, extra={
                    "action": "consumer.push_refused_detail", "status": exc.status})
            error = {401: "unauthenticated", 403: "forbidden"}.get(exc.status, "unavailable")
            return web.json_response({"error": error, "message": exc.reason},
                                     status=exc.status)
        try:
            body = await request.read()
        except web.RequestPayloadError as exc:
            # The body does not decode as its Content-Encoding says: a client error (let
            # through, aiohttp would answer 500), and the connection's framing is lost.
            log.warning("unreadable push body: %s", _first_sentence(exc), extra={
                "action": "consumer.push_malformed"})
            response = web.json_response(
                {"error": "malformed_envelope",
                 "message": "the body cannot be read as its Content-Encoding says"},
                status=400)
            response.force_close()
            return response
        try:
            envelope = parse_envelope(body)
        except MalformedEnvelope as exc:
            log.warning("malformed push envelope: %s", exc, extra={
                "action": "consumer.push_malformed"})
            return web.json_response({"error": "malformed_envelope", "message": str(exc)},
                                     status=400)
        delivery = Delivery("push", envelope.message_id, envelope.publish_time,
                            envelope.delivery_attempt)
        outcome = await self.handler.handle(decode_push(envelope.data), delivery)
        if outcome.ack:
            return web.Response(status=204)
        headers = {}
        if outcome.retry_after:
            headers["Retry-After"] = str(max(1, round(outcome.retry_after)))
        return web.json_response({"error": outcome.status,
                                  "message": "not synced yet; Pub/Sub will redeliver"},
                                 status=503, headers=headers)


def _timestamp(value: object) -> datetime | None:
    if not isinstance(value, str) or not value:
        return None
    text = value.strip().replace("Z", "+00:00").replace("z", "+00:00")
    # RFC 3339 from Pub/Sub may carry nanoseconds; Python takes at most microseconds.
    text = re.sub(r"(\.\d{6})\d+", r"\1", text)
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError:
        return None
    return parsed if parsed.tzinfo is not None else None


def _first_sentence(exc: BaseException) -> str:
    text = str(exc).split(". ")[0].strip()
    return (text or type(exc).__name__)[:200]
