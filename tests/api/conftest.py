"""The API on a real port, over a real database and the Gmail simulator.

``api`` starts :func:`delightbridge.api.app.create_app` on 127.0.0.1 with settings pointing at the
simulator (``gmail_sim``) and the test's own migrated database, and a fast retry
policy. Its :meth:`Api.call` sends real HTTP with real cookies (minted like Auth.js
mints them) and checks every answer against the served OpenAPI document: status
documented, body valid, required headers present, no stack trace, no secret.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import re
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass, field
from typing import Any

import aiohttp
import asyncpg
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer
from jsonschema import Draft202012Validator, FormatChecker

from delightbridge.api.app import create_app
from delightbridge.api.config import ApiConfig
from delightbridge.api.keys import BACKGROUND
from delightbridge.api.openapi import document
from delightbridge.api.ops import create_ops_app
from delightbridge.api.sessions import mint_admin_cookie
from delightbridge.core.httpserver import make_runner
from delightbridge.core.settings import Settings
from delightbridge.sync.gmail.retry import RetryPolicy

# GmailSim: its fixtures come from tests/conftest.py's pytest_plugins.
from tests.plugins.gmail import GmailSim, gmail_settings

SECRET = "api-tests-auth-secret-3f9c2a7e5d"
TOKEN_KEY = bytes(range(32))
OPS_EMAIL = "ops@delightbridge.example"  # an admin by ADMIN_EMAILS, no users row
ADMIN = {"id": "user-100", "google_id": "100", "email": "lead@delightbridge.example",
         "name": "Support Lead", "permission": "admin"}
AGENT = {"id": "user-200", "google_id": "200", "email": "agent@delightbridge.example",
         "name": "Agent", "permission": "edit"}
#: Retries that prove retrying without waiting seconds for it.
FAST_RETRY = RetryPolicy(max_attempts=3, max_elapsed=5.0, initial=0.01, maximum=0.05)

_TRACE = re.compile(r"Traceback|File \"|\.py\", line")


def api_settings(db_url: str, sim: GmailSim, **changes: Any) -> Settings:
    values: dict[str, Any] = {
        "database_url": db_url,
        "auth_secret": SECRET,
        "admin_emails": frozenset({OPS_EMAIL}),
        **gmail_settings(sim.server),
        "token_encryption_key": TOKEN_KEY,
        "pubsub_project": "delightbridge-test",
        "log_format": "json",
    }
    values.update(changes)
    return Settings(**values)


def admin_cookie(settings: Settings | None = None) -> str:
    """A ``Cookie:`` header of an admin (by users.permission), as the web app issues it."""
    return mint_admin_cookie(settings or Settings(auth_secret=SECRET), ADMIN["email"],
                             sub=ADMIN["google_id"], name=ADMIN["name"])


def agent_cookie() -> str:
    return mint_admin_cookie(Settings(auth_secret=SECRET), AGENT["email"],
                             sub=AGENT["google_id"], name=AGENT["name"])


# --- the OpenAPI document as a test oracle ----------------------------------------------


@dataclass(frozen=True)
class _Operation:
    pattern: re.Pattern[str]
    template: str
    method: str
    spec: dict[str, Any]


class Contract:
    """Checks answers against the OpenAPI document the app serves."""

    def __init__(self, doc: dict[str, Any]) -> None:
        self.doc = doc
        self.operations: list[_Operation] = []
        for template, item in doc["paths"].items():
            regex = "^" + re.sub(r"\\\{[^}]+\\\}", "[^/]+", re.escape(template)) + "$"
            for method, spec in item.items():
                self.operations.append(_Operation(re.compile(regex), template, method.upper(),
                                                  spec))

    def _resolve(self, node: dict[str, Any]) -> dict[str, Any]:
        while "$ref" in node:
            target: Any = self.doc
            for part in node["$ref"].removeprefix("#/").split("/"):
                target = target[part]
            node = target
        return node

    def validator(self, schema: dict[str, Any]) -> Draft202012Validator:
        return Draft202012Validator({"components": self.doc["components"], "allOf": [schema]},
                                    format_checker=FormatChecker())

    def check(self, method: str, path: str, status: int, headers: Mapping[str, str],
              body: bytes) -> None:
        content_type = headers.get("Content-Type", "").split(";")[0].strip()
        route = [op for op in self.operations if op.pattern.match(path)]
        operation = next((op for op in route if op.method == method
                          or (method == "HEAD" and op.method == "GET")), None)
        if operation is None:
            # Not an operation of the document: only 404 (no such path) or 405 (method).
            assert status == (405 if route else 404), (method, path, status)
            if status == 405:
                assert headers.get("Allow"), "405 without Allow"
            self._check_body(self._error_schema(), content_type, body)
            return
        responses = operation.spec["responses"]
        assert str(status) in responses, (
            f"{method} {operation.template} answered {status}, undocumented: {body[:300]!r}")
        response = self._resolve(responses[str(status)])
        for name, header in response.get("headers", {}).items():
            if header.get("required"):
                assert name in headers, f"{status} lacks the documented {name} header"
        if method == "HEAD":
            return
        content = response.get("content")
        if not content:
            return
        assert content_type in content, (content_type, list(content))
        if content_type == "application/json":
            self._check_body(content[content_type]["schema"], content_type, body)

    def _error_schema(self) -> dict[str, Any]:
        return {"$ref": "#/components/schemas/Error"}

    def _check_body(self, schema: dict[str, Any], content_type: str, body: bytes) -> None:
        assert content_type == "application/json", content_type
        errors = list(self.validator(schema).iter_errors(json.loads(body)))
        assert not errors, [e.message for e in errors]


@pytest.fixture(scope="session")
def contract() -> Contract:
    return Contract(document())


# --- the running API ------------------------------------------------------------------


@dataclass
class Reply:
    status: int
    headers: Mapping[str, str]
    body: bytes
    cookies: Mapping[str, Any] = field(default_factory=dict)

    @property
    def json(self) -> Any:
        return json.loads(self.body)


@dataclass
class Api:
    app: web.Application
    server: TestServer
    session: aiohttp.ClientSession
    settings: Settings
    pool: asyncpg.Pool
    sim: GmailSim
    contract: Contract
    ops: TestServer  # the operations app (delightbridge.api.ops) on a port of its own

    async def ops_get(self, path: str) -> Reply:
        """``GET`` on the operations port (readiness, metrics)."""
        async with self.session.get(self.ops.make_url(path)) as response:
            return Reply(response.status, response.headers, await response.read())

    def url(self, path: str) -> str:
        return str(self.server.make_url(path))

    async def call(self, method: str, path: str, *, cookie: str | None = "admin",
                   headers: Mapping[str, str] | None = None, **kwargs: Any) -> Reply:
        """One request, checked against the contract; ``cookie`` "admin" is an admin's."""
        sent = dict(headers or {})
        if cookie == "admin":
            cookie = admin_cookie()
        if cookie is not None:
            sent["Cookie"] = cookie
        async with self.session.request(method, self.url(path), headers=sent,
                                        allow_redirects=False, **kwargs) as response:
            body = await response.read()
            reply = Reply(response.status, response.headers, body, response.cookies)
        self.contract.check(method, response.url.path, reply.status, reply.headers, body)
        assert not _TRACE.search(body.decode("utf-8", "replace")), body[:500]
        for secret in self.settings.secret_values():
            assert secret not in body.decode("utf-8", "replace")
        assert reply.headers.get("X-Request-Id")
        return reply

    async def drain(self) -> None:
        """Wait for the syncs running in the background (watch + initial sync…)."""
        running: set[asyncio.Task[object]] = self.app[BACKGROUND]
        while running:
            for task in list(running):
                # Its outcome is what the tests look at, in the database.
                with contextlib.suppress(Exception):
                    await task

    async def add_user(self, user: Mapping[str, str]) -> None:
        await self.pool.execute(
            "INSERT INTO users (id, google_id, email, name, permission) "
            "VALUES ($1, $2, $3, $4, $5::permission_level) ON CONFLICT DO NOTHING",
            user["id"], user["google_id"], user["email"], user["name"], user["permission"])

    async def add_service(self, service_id: str, email: str, *, refresh_token: str | None,
                          last_history_id: str | None = None) -> None:
        await self.pool.execute(
            "INSERT INTO gmail_accounts (id, name, email, refresh_token, last_history_id) "
            "VALUES ($1, $2, $3, $4, $5)", service_id, service_id.title(), email, refresh_token,
            last_history_id)

    async def connected_service(self, service_id: str, email: str, *, messages: int = 0,
                                threads: int = 0) -> str:
        """A mailbox in the simulator, seeded, and a service row holding its refresh token."""
        mailbox = self.sim.sim.create_mailbox(email, name=service_id.title())
        if messages:
            self.sim.sim.seed(email, messages=messages, threads=threads or messages, seed=7)
        await self.add_service(service_id, email, refresh_token=mailbox.refresh_token)
        return mailbox.refresh_token


@pytest.fixture
def api_config() -> ApiConfig | None:
    """Override to give the app another :class:`ApiConfig`."""
    return None


@pytest.fixture
def engine_overrides() -> dict[str, Any]:
    """The engine's configuration changes (parametrize this name to change them)."""
    return {"retry": FAST_RETRY}


@pytest.fixture
def settings_changes() -> dict[str, Any]:
    """Changes to the app's settings (parametrize this name to change them)."""
    return {}


class ProductionServer(TestServer):
    """aiohttp's test server on the runner ``delightbridge serve`` uses (limits, idle
    timeout, JSON answers to requests the HTTP parser refuses)."""

    def __init__(self, app: web.Application, settings: Settings) -> None:
        super().__init__(app, host="127.0.0.1")
        self.settings = settings

    async def _make_runner(self, **kwargs: Any) -> web.AppRunner:
        return make_runner(self.app, self.settings, **kwargs)


@pytest.fixture
async def api(db_url: str, pool: asyncpg.Pool, gmail_sim: GmailSim, contract: Contract,
              api_config: ApiConfig | None, engine_overrides: dict[str, Any],
              settings_changes: dict[str, Any]) -> AsyncIterator[Api]:
    settings = api_settings(db_url, gmail_sim, **settings_changes)
    config = api_config or ApiConfig(auth_uri=gmail_sim.server.auth_uri)
    app = create_app(settings, engine_overrides=engine_overrides, config=config)
    server = ProductionServer(app, settings)
    await server.start_server()
    ops_server = ProductionServer(create_ops_app(app), settings)
    await ops_server.start_server()
    # Cookies are sent only as each test says (no jar), like curl --cookie.
    async with aiohttp.ClientSession(cookie_jar=aiohttp.DummyCookieJar()) as session:
        client = Api(app, server, session, settings, pool, gmail_sim, contract, ops_server)
        await client.add_user(ADMIN)
        await client.add_user(AGENT)
        try:
            yield client
        finally:
            await ops_server.close()
            await server.close()


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")
