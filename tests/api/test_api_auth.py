"""Who may call the admin endpoints, and the errors that are not about Gmail.

Real cookies (minted like Auth.js mints them, or a database session row), a real
database, the app on a real port; every answer is checked against the OpenAPI
document by ``Api.call``.
"""

from __future__ import annotations

import base64
import time
import uuid
from datetime import UTC, datetime, timedelta

import pytest

from delightbridge.api.authjs import SECURE_SESSION_COOKIE_NAME, SESSION_COOKIE_NAME, encode_session
from delightbridge.api.sessions import mint_admin_cookie
from delightbridge.core.settings import Settings
from tests.api.conftest import ADMIN, AGENT, OPS_EMAIL, SECRET, Api, admin_cookie, agent_cookie
from tests.dbutil import SESSIONS_TABLE

SYNC = "/api/services/service-123/sync"
ADMIN_ENDPOINTS = [
    ("POST", "/api/services/service-123/sync"),
    ("POST", "/api/services/service-123/sync?mode=full"),
    ("GET", "/api/services/service-123/sync/runs"),
    ("GET", f"/api/services/service-123/sync/runs/{uuid.uuid4()}"),
    ("GET", "/api/services/service-123/connect"),
]


def _claims() -> dict[str, str]:
    return {"sub": ADMIN["google_id"], "email": ADMIN["email"], "name": ADMIN["name"]}


def _jwe() -> str:
    return encode_session(_claims(), SECRET)


def _flip(token: str, part: int) -> str:
    """The token with one character of one JWE part changed."""
    parts = token.split(".")
    segment = parts[part]
    middle = len(segment) // 2
    parts[part] = segment[:middle] + ("A" if segment[middle] != "A" else "B") + segment[middle + 1:]
    return ".".join(parts)


REFUSED_COOKIES = {
    "forged_other_secret": f"{SESSION_COOKIE_NAME}="
                           + encode_session(_claims(), "not-the-web-apps-secret-123456"),
    "tampered_ciphertext": f"{SESSION_COOKIE_NAME}={_flip(_jwe(), 3)}",
    "tampered_tag": f"{SESSION_COOKIE_NAME}={_flip(_jwe(), 4)}",
    "tampered_header": f"{SESSION_COOKIE_NAME}={_flip(_jwe(), 0)}",
    "truncated": f"{SESSION_COOKIE_NAME}={_jwe()[:-12]}",
    "truncated_parts": f"{SESSION_COOKIE_NAME}={'.'.join(_jwe().split('.')[:3])}",
    "expired": f"{SESSION_COOKIE_NAME}="
               + encode_session(_claims(), SECRET, max_age=60, now=time.time() - 3600),
    "salted_for_secure_name_sent_plain": f"{SESSION_COOKIE_NAME}="
                                         + encode_session(_claims(), SECRET,
                                                          cookie_name=SECURE_SESSION_COOKIE_NAME),
    "garbage": f"{SESSION_COOKIE_NAME}=not-a-session",
    "unknown_database_session": f"{SESSION_COOKIE_NAME}={uuid.uuid4()}",
    "empty": f"{SESSION_COOKIE_NAME}=",
    "other_cookie_only": "next-auth.session-token=" + _jwe(),
    # A JWE header of deeply nested JSON once raised RecursionError: a 500.
    "nested_json_header": f"{SESSION_COOKIE_NAME}="
                          + base64.urlsafe_b64encode(b"[" * 5000).decode().rstrip("=")
                          + ".a.b.c.d",
}


@pytest.mark.parametrize(("method", "path"), ADMIN_ENDPOINTS)
async def test_no_session_is_401(api: Api, method: str, path: str) -> None:
    reply = await api.call(method, path, cookie=None)
    assert reply.status == 401
    assert reply.json["error"] == "unauthenticated"
    assert "sign in" in reply.json["message"].lower()


@pytest.mark.parametrize("name", sorted(REFUSED_COOKIES))
async def test_refused_cookies_are_401(api: Api, name: str) -> None:
    cookie = REFUSED_COOKIES[name]
    reply = await api.call("POST", SYNC, cookie=cookie)
    assert reply.status == 401, reply.body
    assert reply.json == {"ok": False, "error": "unauthenticated",
                          "message": reply.json["message"]}
    value = cookie.partition("=")[2]
    if len(value) > 8:
        assert value not in reply.body.decode()
        assert value[:40] not in reply.body.decode()


async def test_expired_database_session_is_401(api: Api) -> None:
    token = str(uuid.uuid4())
    await api.pool.execute(SESSIONS_TABLE)
    await api.pool.execute(
        "INSERT INTO sessions (session_token, user_id, expires) VALUES ($1, $2, $3)",
        token, ADMIN["id"], datetime.now(UTC) - timedelta(minutes=1))
    reply = await api.call("POST", SYNC, cookie=f"{SESSION_COOKIE_NAME}={token}")
    assert (reply.status, reply.json["error"]) == (401, "unauthenticated")
    assert "expired" in reply.json["message"]


@pytest.mark.parametrize(("method", "path"), ADMIN_ENDPOINTS)
async def test_signed_in_non_admin_is_403(api: Api, method: str, path: str) -> None:
    reply = await api.call(method, path, cookie=agent_cookie())
    assert reply.status == 403
    assert reply.json["error"] == "forbidden"


async def test_non_admin_database_session_is_403(api: Api) -> None:
    token = str(uuid.uuid4())
    await api.pool.execute(SESSIONS_TABLE)
    await api.pool.execute(
        "INSERT INTO sessions (session_token, user_id, expires) VALUES ($1, $2, $3)",
        token, AGENT["id"], datetime.now(UTC) + timedelta(hours=1))
    reply = await api.call("POST", SYNC, cookie=f"{SESSION_COOKIE_NAME}={token}")
    assert (reply.status, reply.json["error"]) == (403, "forbidden")


async def test_admin_by_database_session_and_by_admin_emails(api: Api) -> None:
    """Valid admin sessions get past authentication (to the 404 of a missing service)."""
    token = str(uuid.uuid4())
    await api.pool.execute(SESSIONS_TABLE)
    await api.pool.execute(
        "INSERT INTO sessions (session_token, user_id, expires) VALUES ($1, $2, $3)",
        token, ADMIN["id"], datetime.now(UTC) + timedelta(hours=1))
    by_row = await api.call("POST", SYNC, cookie=f"{SESSION_COOKIE_NAME}={token}")
    ops = mint_admin_cookie(Settings(auth_secret=SECRET), OPS_EMAIL, secure=True)
    by_list = await api.call("POST", SYNC, cookie=ops)
    chunked = mint_admin_cookie(Settings(auth_secret=SECRET), OPS_EMAIL, name="x" * 5000)
    assert chunked.count("authjs.session-token.") == 2
    by_chunks = await api.call("POST", SYNC, cookie=chunked)
    for reply in (by_row, by_list, by_chunks):
        assert (reply.status, reply.json["error"]) == (404, "service_not_found")


async def test_the_editor_claiming_the_admins_address_is_403(api: Api) -> None:
    claims = {"sub": AGENT["google_id"], "email": ADMIN["email"]}
    cookie = f"{SESSION_COOKIE_NAME}={encode_session(claims, SECRET)}"
    reply = await api.call("POST", SYNC, cookie=cookie)
    assert reply.status == 403


@pytest.mark.parametrize(("method", "path"), [
    ("POST", "/api/services/nope/sync"),
    ("POST", "/api/services/nope/sync?mode=full&wait=false"),
    ("GET", "/api/services/nope/sync/runs"),
    ("GET", f"/api/services/nope/sync/runs/{uuid.uuid4()}"),
    ("GET", "/api/services/nope/connect"),
])
async def test_unknown_service_is_404(api: Api, method: str, path: str) -> None:
    reply = await api.call(method, path)
    assert reply.status == 404
    assert reply.json["error"] == "service_not_found"
    assert "'nope'" in reply.json["message"]


@pytest.mark.parametrize(("method", "path"), [
    *((method, path.replace("service-123", "svc%00x")) for method, path in ADMIN_ENDPOINTS),
    ("DELETE", "/api/services/svc%00x/connection"),
    ("POST", "/api/services/%ED%A0%80/sync"),  # a lone surrogate, once decoded
])
async def test_a_service_id_postgresql_cannot_hold_is_404(api: Api, method: str,
                                                          path: str) -> None:
    # asyncpg refuses NUL in a text parameter: this was a 500 with a traceback.
    reply = await api.call(method, path)
    assert (reply.status, reply.json["error"]) == (404, "service_not_found"), reply.body


async def test_a_huge_service_id_is_not_echoed_whole(api: Api) -> None:
    reply = await api.call("POST", f"/api/services/{'x' * 5000}/sync")
    assert reply.status == 404
    assert len(reply.json["message"]) <= 300


@pytest.mark.parametrize("query", ["mode=fast", "mode=FULL", "mode=", "mode=full%00"])
async def test_invalid_mode_is_400(api: Api, query: str) -> None:
    await api.add_service("svc-a", "a@example.com", refresh_token=None)
    reply = await api.call("POST", f"/api/services/svc-a/sync?{query}")
    assert reply.status == 400
    assert reply.json["error"] == "invalid_mode"
    assert "full" in reply.json["message"]
    assert "incremental" in reply.json["message"]


async def test_authentication_comes_before_validation(api: Api) -> None:
    reply = await api.call("POST", "/api/services/nope/sync?mode=fast", cookie=None)
    assert reply.status == 401
    reply = await api.call("POST", "/api/services/nope/sync?mode=fast", cookie=agent_cookie())
    assert reply.status == 403
    # Then parameters, then the service: a bad mode on an unknown service is a 400.
    reply = await api.call("POST", "/api/services/nope/sync?mode=fast")
    assert reply.status == 400


async def test_other_query_errors_are_400(api: Api) -> None:
    await api.add_service("svc-a", "a@example.com", refresh_token=None)
    reply = await api.call("POST", "/api/services/svc-a/sync?wait=maybe")
    assert (reply.status, reply.json["error"]) == (400, "invalid_wait")
    reply = await api.call("GET", "/api/services/svc-a/sync/runs?limit=0")
    assert (reply.status, reply.json["error"]) == (400, "invalid_limit")
    reply = await api.call("GET", "/api/services/svc-a/sync/runs?limit=abc")
    assert (reply.status, reply.json["error"]) == (400, "invalid_limit")


@pytest.mark.parametrize(("method", "path", "allowed"), [
    ("GET", SYNC, "POST"),
    ("PUT", SYNC, "POST"),
    ("DELETE", SYNC, "POST"),
    ("PATCH", SYNC, "POST"),
    ("POST", "/api/services/service-123/sync/runs", "GET, HEAD"),
    ("DELETE", "/api/services/service-123/connect", "GET, HEAD"),
    ("POST", "/healthz", "GET, HEAD"),
    ("PUT", "/api/openapi.json", "GET, HEAD"),
])
async def test_other_methods_are_405_with_allow(api: Api, method: str, path: str,
                                                allowed: str) -> None:
    for cookie in (None, "admin"):
        reply = await api.call(method, path, cookie=cookie)
        assert reply.status == 405
        assert reply.headers["Allow"] == allowed
        assert reply.json["error"] == "method_not_allowed"


async def test_unknown_path_is_404_json(api: Api) -> None:
    reply = await api.call("GET", "/api/nothing-here")
    assert (reply.status, reply.json["error"]) == (404, "not_found")


async def test_runs_of_an_existing_service_and_an_unknown_run(api: Api) -> None:
    await api.add_service("svc-a", "a@example.com", refresh_token=None)
    reply = await api.call("GET", "/api/services/svc-a/sync/runs")
    assert reply.status == 200
    assert reply.json == {"ok": True, "runs": []}
    for run_id in (str(uuid.uuid4()), "not-a-uuid"):
        reply = await api.call("GET", f"/api/services/svc-a/sync/runs/{run_id}")
        assert (reply.status, reply.json["error"]) == (404, "run_not_found")


async def test_admin_cookie_helper_is_what_the_cli_prints(api: Api) -> None:
    # The fixture's admin cookie is a plain Auth.js JWT session of the admin user.
    cookie = admin_cookie()
    assert cookie.startswith(f"{SESSION_COOKIE_NAME}=")
    assert cookie.count(".") == 5  # "authjs.session-token=" + a five-part compact JWE
