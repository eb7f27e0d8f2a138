"""A local stand-in for Google's OIDC signer: an RSA key, its self-signed certificate,
a certs endpoint in Google's v1 format (``{kid: PEM}``) and tokens shaped like the
ones Pub/Sub push sends. Google's network is never used."""

from __future__ import annotations

import datetime as dt
import time
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from aiohttp import web
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID
from google.auth import crypt, jwt

AUDIENCE = "https://consumer.delightbridge.example/pubsub/push"
PUSH_ACCOUNT = "pubsub-push@delightbridge-test.iam.gserviceaccount.com"


class SigningKey:
    def __init__(self, kid: str | None = None) -> None:
        self.kid = kid or uuid.uuid4().hex
        self.key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, self.kid)])
        now = dt.datetime.now(dt.UTC)
        self.certificate = (
            x509.CertificateBuilder().subject_name(name).issuer_name(name)
            .public_key(self.key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(days=1))
            .not_valid_after(now + dt.timedelta(days=1))
            .sign(self.key, hashes.SHA256())
        )

    @property
    def certificate_pem(self) -> str:
        return self.certificate.public_bytes(serialization.Encoding.PEM).decode()

    @property
    def private_pem(self) -> str:
        return self.key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption()).decode()

    def token(self, *, kid: str | None = None, **overrides: Any) -> str:
        """A push token: Google's claims for the push account, valid for an hour."""
        now = int(time.time())
        claims: dict[str, Any] = {
            "iss": "https://accounts.google.com", "aud": AUDIENCE, "azp": "1234567890",
            "sub": "1234567890", "email": PUSH_ACCOUNT, "email_verified": True,
            "iat": now, "exp": now + 3600,
        }
        claims.update(overrides)
        claims = {k: v for k, v in claims.items() if v is not None}
        signer = crypt.RSASigner.from_string(self.private_pem, key_id=kid or self.kid)
        return bytes(jwt.encode(signer, claims)).decode()


class CertsServer:
    """Serves ``{kid: PEM}`` like https://www.googleapis.com/oauth2/v1/certs."""

    def __init__(self, *keys: SigningKey, max_age: int = 300) -> None:
        self.keys = list(keys)
        self.max_age = max_age
        self.requests = 0
        self.failing = False
        self.url = ""

    async def _certs(self, request: web.Request) -> web.Response:
        self.requests += 1
        if self.failing:
            return web.Response(status=503)
        return web.json_response({k.kid: k.certificate_pem for k in self.keys},
                                 headers={"Cache-Control": f"public, max-age={self.max_age}"})

    @asynccontextmanager
    async def running(self) -> AsyncIterator[CertsServer]:
        app = web.Application()
        app.router.add_get("/oauth2/v1/certs", self._certs)
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        self.url = f"http://127.0.0.1:{runner.addresses[0][1]}/oauth2/v1/certs"
        try:
            yield self
        finally:
            await runner.cleanup()
