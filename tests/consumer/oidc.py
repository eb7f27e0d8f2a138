"""A local stand-in for Google's OIDC signer (the simulator's, :mod:`gmailsim.oidc`)
with this suite's audience and push account, and a certs endpoint in Google's v1
format (``{kid: PEM}``) that tests can make fail. Google's network is never used."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from aiohttp import web
from gmailsim import oidc

AUDIENCE = "https://consumer.delightbridge.example/pubsub/push"
PUSH_ACCOUNT = "pubsub-push@delightbridge-test.iam.gserviceaccount.com"


class SigningKey(oidc.SigningKey):
    """The simulator's signer, with this suite's audience and push account by default."""

    def token(self, *, audience: str = AUDIENCE, account: str = PUSH_ACCOUNT,
              kid: str | None = None, lifetime: int = 3600, **overrides: Any) -> str:
        return super().token(audience=audience, account=account, kid=kid,
                             lifetime=lifetime, **overrides)


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
