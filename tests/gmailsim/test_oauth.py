"""The OAuth endpoints: refresh grant, the connect flow's authorization code, revocation."""

from __future__ import annotations

import base64
import hashlib
import json
from collections.abc import AsyncIterator
from typing import Any
from urllib.parse import parse_qs, urlsplit

import aiohttp
import pytest
from gmailsim import Simulator
from gmailsim.server import RunningSimulator, serve

A = "support@example.com"
REDIRECT = "http://127.0.0.1:9/oauth/callback"


@pytest.fixture
async def http() -> AsyncIterator[tuple[RunningSimulator, aiohttp.ClientSession]]:
    sim = Simulator(seed=6)
    sim.create_mailbox(A)
    async with serve(sim) as running, aiohttp.ClientSession() as session:
        yield running, session


async def post(session: aiohttp.ClientSession, url: str, form: dict[str, str],
               headers: dict[str, str] | None = None) -> tuple[int, dict[str, Any]]:
    async with session.post(url, data=form, headers=headers) as response:
        return response.status, await response.json()


def claims(jwt: str) -> dict[str, Any]:
    payload = jwt.split(".")[1]
    padded = payload + "=" * (-len(payload) % 4)
    decoded: dict[str, Any] = json.loads(base64.urlsafe_b64decode(padded))
    return decoded


async def test_refresh_grant(http: tuple[RunningSimulator, aiohttp.ClientSession]) -> None:
    running, session = http
    sim = running.sim
    token = sim.issue_refresh_token(A)
    form = {"grant_type": "refresh_token", "refresh_token": token,
            "client_id": sim.client_id, "client_secret": sim.client_secret}
    status, body = await post(session, running.token_uri, form)
    assert status == 200
    assert set(body) == {"access_token", "expires_in", "scope", "token_type"}
    assert body["access_token"].startswith("ya29.")
    assert body["token_type"] == "Bearer"
    assert body["expires_in"] == 3599
    assert body["scope"] == "https://www.googleapis.com/auth/gmail.modify"
    assert sim.tokens.authenticate(body["access_token"]) is not None

    pair = base64.b64encode(f"{sim.client_id}:{sim.client_secret}".encode()).decode()
    status, _ = await post(session, running.token_uri,
                           {"grant_type": "refresh_token", "refresh_token": token},
                           {"Authorization": f"Basic {pair}"})
    assert status == 200


@pytest.mark.parametrize(("change", "status", "error"), [
    ({"client_secret": "wrong"}, 401, "invalid_client"),
    ({"client_id": "someone-else"}, 401, "invalid_client"),
    ({"refresh_token": "1//unknown"}, 400, "invalid_grant"),
    ({"grant_type": "password"}, 400, "unsupported_grant_type"),
])
async def test_refresh_grant_errors(http: tuple[RunningSimulator, aiohttp.ClientSession],
                                    change: dict[str, str], status: int, error: str) -> None:
    running, session = http
    sim = running.sim
    form = {"grant_type": "refresh_token", "refresh_token": sim.issue_refresh_token(A),
            "client_id": sim.client_id, "client_secret": sim.client_secret, **change}
    got_status, body = await post(session, running.token_uri, form)
    assert (got_status, body["error"]) == (status, error)
    assert isinstance(body["error_description"], str)


async def test_revoked_refresh_token_is_invalid_grant(
        http: tuple[RunningSimulator, aiohttp.ClientSession]) -> None:
    running, session = http
    sim = running.sim
    token = sim.issue_refresh_token(A)
    form = {"grant_type": "refresh_token", "refresh_token": token,
            "client_id": sim.client_id, "client_secret": sim.client_secret}
    status, body = await post(session, running.token_uri, form)
    access = body["access_token"]
    sim.revoke_refresh_token(A)
    status, body = await post(session, running.token_uri, form)
    assert (status, body) == (400, {"error": "invalid_grant",
                                    "error_description": "Token has been expired or revoked."})
    assert sim.tokens.authenticate(access) is None, "its access tokens stop working too"


async def test_connect_flow_with_pkce(http: tuple[RunningSimulator, aiohttp.ClientSession]
                                      ) -> None:
    running, session = http
    sim = running.sim
    verifier = "v" * 64
    challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()
                                         ).decode().rstrip("=")
    params = {"client_id": sim.client_id, "redirect_uri": REDIRECT, "response_type": "code",
              "scope": "openid email https://www.googleapis.com/auth/gmail.modify",
              "state": "xyz", "login_hint": A, "access_type": "offline", "prompt": "consent",
              "code_challenge": challenge, "code_challenge_method": "S256"}
    async with session.get(running.auth_uri, params=params, allow_redirects=False) as response:
        assert response.status == 302
        location = response.headers["Location"]
    assert location.startswith(REDIRECT + "?")
    query = parse_qs(urlsplit(location).query)
    assert query["state"] == ["xyz"]
    code = query["code"][0]
    form = {"grant_type": "authorization_code", "code": code, "redirect_uri": REDIRECT,
            "client_id": sim.client_id, "client_secret": sim.client_secret,
            "code_verifier": "wrong"}
    status, body = await post(session, running.token_uri, form)
    assert (status, body["error"]) == (400, "invalid_grant")
    form["code_verifier"] = verifier
    status, body = await post(session, running.token_uri, form)
    assert status == 200
    assert body["refresh_token"].startswith("1//")
    assert claims(body["id_token"])["email"] == A
    assert claims(body["id_token"])["aud"] == sim.client_id
    assert body["scope"].split() == params["scope"].split()
    status, again = await post(session, running.token_uri, form)
    assert (status, again["error"]) == (400, "invalid_grant"), "a code is used once"
    refresh = {"grant_type": "refresh_token", "refresh_token": body["refresh_token"],
               "client_id": sim.client_id, "client_secret": sim.client_secret}
    assert (await post(session, running.token_uri, refresh))[0] == 200


async def test_code_exchange_checks_the_redirect_uri(
        http: tuple[RunningSimulator, aiohttp.ClientSession]) -> None:
    running, session = http
    sim = running.sim
    code = sim.issue_authorization_code(A, redirect_uri=REDIRECT)
    form = {"grant_type": "authorization_code", "code": code,
            "redirect_uri": "http://elsewhere/cb", "client_id": sim.client_id,
            "client_secret": sim.client_secret}
    status, body = await post(session, running.token_uri, form)
    assert (status, body["error"]) == (400, "redirect_uri_mismatch")
    form["redirect_uri"] = REDIRECT
    status, body = await post(session, running.token_uri, form)
    assert status == 200
    assert "id_token" not in body


async def test_consent_page_needs_a_known_client_and_mailbox(
        http: tuple[RunningSimulator, aiohttp.ClientSession]) -> None:
    running, session = http
    running.sim.create_mailbox("other@example.com")
    base = {"redirect_uri": REDIRECT, "response_type": "code"}
    async with session.get(running.auth_uri, params={**base, "client_id": "x"},
                           allow_redirects=False) as response:
        assert response.status == 401
    async with session.get(running.auth_uri, params={**base, "client_id": running.sim.client_id},
                           allow_redirects=False) as response:
        assert response.status == 400, "two mailboxes and no login_hint"


async def test_revoke_endpoint(http: tuple[RunningSimulator, aiohttp.ClientSession]) -> None:
    running, session = http
    sim = running.sim
    token = sim.issue_refresh_token(A)
    status, _ = await post(session, running.revoke_uri, {"token": token})
    assert status == 200
    status, body = await post(session, running.revoke_uri, {"token": "nope"})
    assert (status, body["error"]) == (400, "invalid_token")
    form = {"grant_type": "refresh_token", "refresh_token": token,
            "client_id": sim.client_id, "client_secret": sim.client_secret}
    assert (await post(session, running.token_uri, form))[1]["error"] == "invalid_grant"


async def test_token_endpoint_failures_can_be_scripted(
        http: tuple[RunningSimulator, aiohttp.ClientSession]) -> None:
    running, session = http
    sim = running.sim
    sim.faults.fail_next("oauth.token", code=503)
    form = {"grant_type": "refresh_token", "refresh_token": sim.issue_refresh_token(A),
            "client_id": sim.client_id, "client_secret": sim.client_secret}
    assert (await post(session, running.token_uri, form))[0] == 503
    assert (await post(session, running.token_uri, form))[0] == 200
