"""The connect flow, through the simulator's consent page and token endpoint.

An admin's browser: ``GET /connect`` (302 to consent, state cookie) → the consent page
(302 back with a code) → ``GET /oauth/callback`` with the cookie (302 to the return
page). Every failure is a redirect with a reason, never a 500.
"""

from __future__ import annotations

import base64
import time
from dataclasses import dataclass
from email.message import EmailMessage
from http.cookies import Morsel
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
from gmailsim.errors import GmailError
from yarl import URL

from delightbridge.api.authjs import encode_session
from delightbridge.api.config import ApiConfig
from delightbridge.api.keys import API_CONFIG
from delightbridge.api.views.connect import REASONS, STATE_COOKIE
from delightbridge.sync import crypto
from delightbridge.sync.gmail.oauth import GMAIL_READONLY, SCOPES
from tests.api.conftest import SECRET, Api, Reply
from tests.dbutil import service_state

SERVICE, ADDRESS = "svc-noji", "support@noji.example"
CALLBACK = "/api/services/oauth/callback"


@dataclass
class Attempt:
    """A connect attempt as the browser holds it after ``GET /connect``."""

    consent: URL
    cookie: Morsel[str]

    @property
    def state(self) -> str:
        return self.consent.query["state"]

    @property
    def cookie_header(self) -> str:
        return f"{STATE_COOKIE}={self.cookie.value}"


async def start(api: Api, service_id: str = SERVICE) -> Attempt:
    reply = await api.call("GET", f"/api/services/{service_id}/connect")
    assert reply.status == 302, reply.body
    return Attempt(URL(reply.headers["Location"]), reply.cookies[STATE_COOKIE])


async def consent(api: Api, attempt: Attempt) -> URL:
    """The simulated consent page: where it sends the browser back to (our callback)."""
    async with api.session.get(attempt.consent, allow_redirects=False) as response:
        assert response.status == 302, await response.text()
        return URL(response.headers["Location"])


async def callback(api: Api, query: dict[str, str] | str, cookie: str | None) -> Reply:
    path = URL(CALLBACK).with_query(query) if isinstance(query, dict) else URL(
        CALLBACK + query)
    reply = await api.call("GET", str(path), cookie=cookie)
    assert reply.status == 302, reply.body
    # The state cookie is spent whatever happened.
    spent = reply.cookies[STATE_COOKIE]
    assert spent.value == ""
    assert spent["path"] == CALLBACK
    return reply


def outcome(reply: Reply) -> dict[str, str]:
    location = urlsplit(reply.headers["Location"])
    return {k: v[0] for k, v in parse_qs(location.query).items()}


async def connect_through_consent(api: Api, service_id: str = SERVICE) -> dict[str, str]:
    attempt = await start(api, service_id)
    back = await consent(api, attempt)
    assert back.path == CALLBACK
    reply = await callback(api, back.query_string and "?" + back.query_string,
                           attempt.cookie_header)
    return outcome(reply)


async def _service(api: Api, service_id: str = SERVICE) -> Any:
    return await service_state(api.pool, service_id)


# --- the consent redirect ----------------------------------------------------------------


async def test_connect_redirects_to_consent_with_a_bound_state(api: Api) -> None:
    api.sim.sim.create_mailbox(ADDRESS)
    await api.add_service(SERVICE, ADDRESS, refresh_token=None)
    reply = await api.call("GET", f"/api/services/{SERVICE}/connect")
    assert reply.status == 302
    assert reply.headers["Cache-Control"] == "no-store"
    location = URL(reply.headers["Location"])
    assert str(location.with_query(None)) == api.sim.server.auth_uri
    query = location.query
    assert query["client_id"] == api.sim.sim.client_id
    assert query["redirect_uri"] == api.url(CALLBACK)
    assert query["response_type"] == "code"
    assert query["scope"].split() == list(SCOPES)
    assert query["access_type"] == "offline"
    assert query["prompt"] == "consent"
    assert query["login_hint"] == ADDRESS
    assert query["code_challenge_method"] == "S256"
    assert len(query["code_challenge"]) == 43
    assert len(query["state"]) >= 40
    cookie = reply.cookies[STATE_COOKIE]
    assert cookie["httponly"] is True
    assert cookie["samesite"] == "Lax"
    assert cookie["path"] == CALLBACK
    assert cookie["max-age"] == "600"
    assert not cookie["secure"]  # http in tests; https deployments get Secure
    # The cookie is encrypted: neither the state nor the service is readable in it.
    assert query["state"] not in cookie.value
    assert SERVICE not in cookie.value
    # Each attempt has its own state.
    again = await start(api)
    assert again.state != query["state"]


# --- the whole flow ------------------------------------------------------------------------


async def test_connect_stores_tokens_watches_and_syncs(api: Api) -> None:
    mailbox = api.sim.sim.create_mailbox(ADDRESS, name="Noji")
    api.sim.sim.seed(ADDRESS, messages=6, threads=3, seed=3)
    await api.add_service(SERVICE, ADDRESS, refresh_token=None)
    await api.pool.execute("INSERT INTO delightbridge_sync.services (account_id, "
                           "disconnected_reason, disconnected_at) "
                           "VALUES ($1, 'invalid_grant', now())", SERVICE)
    result = await connect_through_consent(api)
    assert result["status"] == "connected", result
    assert result["service"] == SERVICE
    await api.drain()

    row = await _service(api)
    # Plain, as the web app reads them (it sends and watches with them), key or not.
    refresh = row["refresh_token"]
    assert refresh in api.sim.sim.tokens.refresh_tokens(ADDRESS)
    assert refresh != mailbox.refresh_token  # a new grant from the code
    assert not crypto.is_encrypted(row["access_token"])
    assert row["access_token_expires_at"].timestamp() > time.time() + 600
    assert row["disconnected_reason"] is None
    assert row["disconnected_at"] is None
    assert row["sync_state"] == "connected"
    # The watch, on the configured topic.
    watch = api.sim.sim.active_watch(ADDRESS)
    assert watch is not None
    assert watch.topic == api.settings.topic_path
    assert row["watch_expires_at"].timestamp() * 1000 == pytest.approx(watch.expiration_ms,
                                                                       abs=1)
    assert row["watch_history_id"] is not None
    assert row["watch_renewed_at"] is not None
    assert row["watch_error"] is None
    # The initial full sync, under the run id the redirect named.
    run = await api.call("GET", f"/api/services/{SERVICE}/sync/runs/{result['runId']}")
    assert run.json["run"]["state"] == "succeeded"
    assert (run.json["run"]["trigger"], run.json["run"]["mode"]) == ("connect", "full")
    count = await api.pool.fetchval(
        "SELECT count(*) FROM emails e JOIN email_threads t ON t.id = e.thread_id "
        "WHERE t.account_id = $1", SERVICE)
    assert count == run.json["run"]["messagesProcessed"] > 0
    # The return page says so, for the admin's browser.
    page = await api.call("GET", f"/api/services/oauth/result?status=connected&service="
                                 f"{SERVICE}&runId={result['runId']}", cookie=None)
    assert page.json["ok"] is True
    assert page.json["runId"] == result["runId"]
    # And the API syncs with the stored tokens.
    reply = await api.call("POST", f"/api/services/{SERVICE}/sync")
    assert (reply.status, reply.json["mode"]) == (200, "incremental")


async def test_revoked_then_reconnected_through_the_connect_url(api: Api) -> None:
    """The docs' story: sync fails for invalid tokens, the admin reconnects, sync works."""
    await api.connected_service(SERVICE, ADDRESS, messages=2, threads=1)
    api.sim.sim.revoke_refresh_token(ADDRESS)
    refused = await api.call("POST", f"/api/services/{SERVICE}/sync")
    assert refused.status == 409
    connect_path = URL(refused.json["connectUrl"]).path
    reply = await api.call("GET", connect_path)
    assert reply.status == 302
    attempt = Attempt(URL(reply.headers["Location"]), reply.cookies[STATE_COOKIE])
    back = await consent(api, attempt)
    result = outcome(await callback(api, "?" + back.query_string, attempt.cookie_header))
    assert result["status"] == "connected"
    await api.drain()
    synced = await api.call("POST", f"/api/services/{SERVICE}/sync")
    assert synced.status == 200
    assert synced.json["mode"] == "incremental"


async def test_watch_failure_does_not_fail_the_connect(api: Api) -> None:
    api.sim.sim.create_mailbox(ADDRESS)
    api.sim.sim.seed(ADDRESS, messages=2, threads=1, seed=1)
    await api.add_service(SERVICE, ADDRESS, refresh_token=None)
    api.sim.sim.faults.fail_next("users.watch", error=GmailError(
        400, "Error sending test message to Cloud PubSub: Resource not found.",
        reason="failedPrecondition"))
    result = await connect_through_consent(api)
    assert result["status"] == "connected"
    await api.drain()
    row = await _service(api)
    assert row["refresh_token"] is not None
    assert row["watch_expires_at"] is None
    assert "Resource not found" in row["watch_error"]
    run = await api.call("GET", f"/api/services/{SERVICE}/sync/runs/{result['runId']}")
    assert run.json["run"]["state"] == "succeeded"


# --- failures: each a redirect with a reason ------------------------------------------------


async def test_wrong_mailbox_is_refused_and_nothing_is_stored(api: Api) -> None:
    api.sim.sim.create_mailbox(ADDRESS)
    api.sim.sim.create_mailbox("someone@else.example")
    await api.add_service(SERVICE, ADDRESS, refresh_token=None)
    attempt = await start(api)
    code = api.sim.sim.issue_authorization_code(
        "someone@else.example", redirect_uri=api.url(CALLBACK),
        scopes=list(SCOPES))
    reply = await callback(api, {"code": code, "state": attempt.state}, attempt.cookie_header)
    assert outcome(reply) == {"status": "failed", "reason": "wrong_account", "service": SERVICE}
    row = await _service(api)
    assert (row["refresh_token"], row["access_token"]) == (None, None)
    await api.drain()
    assert await api.pool.fetchval("SELECT count(*) FROM delightbridge_sync.runs") == 0


async def _prepared(api: Api) -> Attempt:
    api.sim.sim.create_mailbox(ADDRESS)
    await api.add_service(SERVICE, ADDRESS, refresh_token=None)
    return await start(api)


def _code(api: Api, scopes: tuple[str, ...] = SCOPES) -> str:
    return api.sim.sim.issue_authorization_code(ADDRESS, redirect_uri=api.url(CALLBACK),
                                                scopes=list(scopes))


async def test_state_is_checked_before_anything_else(api: Api) -> None:
    attempt = await _prepared(api)
    code = _code(api)
    cases: list[tuple[dict[str, str], str | None, str]] = [
        ({"code": code, "state": attempt.state}, None, "missing_state"),
        ({"code": code, "state": "forged"}, attempt.cookie_header, "state_mismatch"),
        ({"code": code}, attempt.cookie_header, "state_mismatch"),
        ({"code": code, "state": attempt.state}, f"{STATE_COOKIE}=garbage", "invalid_state"),
        ({"code": code, "state": attempt.state},
         f"{STATE_COOKIE}={attempt.cookie.value[:-10]}", "invalid_state"),
        ({"code": code, "state": attempt.state},
         f"{STATE_COOKIE}=" + encode_session({"state": attempt.state, "svc": SERVICE},
                                             "another-secret-entirely-000",
                                             cookie_name=STATE_COOKIE), "invalid_state"),
        # An Auth.js session cookie's value is no state cookie (another key).
        ({"code": code, "state": attempt.state},
         f"{STATE_COOKIE}=" + encode_session({"state": attempt.state}, SECRET),
         "invalid_state"),
    ]
    for query, cookie, reason in cases:
        result = outcome(await callback(api, query, cookie))
        assert (result["status"], result["reason"]) == ("failed", reason), (query, cookie)
    # The code was never spent: the genuine attempt still works.
    result = outcome(await callback(api, {"code": code, "state": attempt.state},
                                    attempt.cookie_header))
    assert result["status"] == "connected", result
    await api.drain()


async def test_expired_state_cookie(api: Api) -> None:
    await _prepared(api)
    claims = {"state": "s" * 43, "svc": SERVICE, "pkce": "v" * 86,
              "redirect_uri": api.url(CALLBACK)}
    old = encode_session(claims, SECRET, cookie_name=STATE_COOKIE, max_age=600,
                         now=time.time() - 3600)
    reply = await callback(api, {"code": _code(api), "state": "s" * 43},
                           f"{STATE_COOKIE}={old}")
    assert outcome(reply)["reason"] == "state_expired"


@pytest.mark.parametrize(("query", "reason"), [
    ({"error": "access_denied"}, "access_denied"),
    ({"error": "server_error"}, "consent_failed"),
    ({}, "missing_code"),
    ({"code": ""}, "missing_code"),
    ({"code": "4/0-not-a-code"}, "code_rejected"),
])
async def test_consent_answers_without_a_usable_code(api: Api, query: dict[str, str],
                                                     reason: str) -> None:
    attempt = await _prepared(api)
    reply = await callback(api, {**query, "state": attempt.state}, attempt.cookie_header)
    assert outcome(reply) == {"status": "failed", "reason": reason, "service": SERVICE}
    page = await api.call("GET", URL("/api/services/oauth/result").with_query(
        outcome(reply)).path_qs, cookie=None)
    assert page.json == {"ok": False, "serviceId": SERVICE, "reason": reason,
                         "message": REASONS[reason]}


async def test_a_replayed_callback_is_refused(api: Api) -> None:
    attempt = await _prepared(api)
    back = await consent(api, attempt)
    first = outcome(await callback(api, "?" + back.query_string, attempt.cookie_header))
    assert first["status"] == "connected"
    await api.drain()
    replay = outcome(await callback(api, "?" + back.query_string, attempt.cookie_header))
    assert replay["reason"] == "code_rejected"


async def test_insufficient_scope(api: Api) -> None:
    attempt = await _prepared(api)
    code = _code(api, (GMAIL_READONLY,))
    reply = await callback(api, {"code": code, "state": attempt.state}, attempt.cookie_header)
    assert outcome(reply)["reason"] == "insufficient_scope"
    assert (await _service(api))["refresh_token"] is None


async def test_token_endpoint_down(api: Api) -> None:
    attempt = await _prepared(api)
    api.sim.sim.faults.fail_next("oauth.token", code=503)
    reply = await callback(api, {"code": _code(api), "state": attempt.state},
                           attempt.cookie_header)
    assert outcome(reply)["reason"] == "google_unavailable"


async def test_service_deleted_meanwhile(api: Api) -> None:
    attempt = await _prepared(api)
    await api.pool.execute("DELETE FROM gmail_accounts WHERE id = $1", SERVICE)
    reply = await callback(api, {"code": _code(api), "state": attempt.state},
                           attempt.cookie_header)
    assert outcome(reply)["reason"] == "service_not_found"


@pytest.mark.parametrize("query", [
    "", "?state=", "?code=x&state=y&error=", "?code=%00%ff", "?state=" + "x" * 5000,
    "?code=a&code=b&state=c&state=d",
])
async def test_garbage_callbacks_redirect_never_500(api: Api, query: str) -> None:
    reply = await callback(api, query, None)
    assert outcome(reply)["status"] == "failed"
    reply = await callback(api, query, f"{STATE_COOKIE}=x.y.z.w.v")
    assert outcome(reply)["reason"] == "invalid_state"
    nested = base64.urlsafe_b64encode(b"{\"a\":" * 1100).decode().rstrip("=")
    reply = await callback(api, query, f"{STATE_COOKIE}={nested}.a.b.c.d")
    assert outcome(reply)["reason"] == "invalid_state"


# --- configuration -------------------------------------------------------------------------


@pytest.mark.parametrize("settings_changes", [{"google_client_secret": None},
                                              {"google_client_id": None}])
async def test_unconfigured_oauth_client_is_503(api: Api, settings_changes: dict[str, Any]
                                                ) -> None:
    await api.add_service(SERVICE, ADDRESS, refresh_token=None)
    reply = await api.call("GET", f"/api/services/{SERVICE}/connect")
    assert (reply.status, reply.json["error"]) == (503, "oauth_not_configured")
    assert STATE_COOKIE not in reply.cookies


async def test_without_public_base_url_only_localhost_may_start_a_connect(api: Api) -> None:
    """The Host header must not choose the OAuth redirect URI (nor where the browser is
    sent afterwards): without PUBLIC_BASE_URL only a loopback name is trusted."""
    await api.add_service(SERVICE, ADDRESS, refresh_token=None)
    assert api.app[API_CONFIG].public_base_url is None
    reply = await api.call("GET", f"/api/services/{SERVICE}/connect",
                           headers={"Host": "sync.attacker.example"})
    assert (reply.status, reply.json["error"]) == (503, "public_base_url_required"), reply.body
    assert "PUBLIC_BASE_URL" in reply.json["message"]
    assert STATE_COOKIE not in reply.cookies
    for host in ("localhost", f"localhost:{api.server.port}", "127.0.0.1", "[::1]:8000"):
        reply = await api.call("GET", f"/api/services/{SERVICE}/connect",
                               headers={"Host": host})
        assert reply.status == 302, (host, reply.body)
        redirect = URL(URL(reply.headers["Location"]).query["redirect_uri"])
        assert redirect.host in ("localhost", "127.0.0.1", "::1"), redirect
    # The callback's redirect is relative under a name it does not trust.
    reply = await callback(api, {"error": "access_denied"}, None)
    assert URL(reply.headers["Location"]).host in (None, "127.0.0.1")
    reply = await api.call("GET", CALLBACK, cookie=None,
                           headers={"Host": "sync.attacker.example"})
    assert reply.status == 302
    location = URL(reply.headers["Location"])
    assert not location.is_absolute()
    assert location.path == "/api/services/oauth/result"
    # A 409's reconnect link too.
    refused = await api.call("POST", f"/api/services/{SERVICE}/sync",
                             headers={"Host": "sync.attacker.example"})
    assert refused.json["connectUrl"] == f"/api/services/{SERVICE}/connect"


class TestPublicUrls:
    @pytest.fixture
    def api_config(self) -> ApiConfig:
        return ApiConfig(auth_uri="https://accounts.example/o/oauth2/v2/auth",
                         public_base_url="https://sync.example.com",
                         connect_return_url="https://app.example/services?tab=gmail")

    async def test_public_base_and_return_urls(self, api: Api) -> None:
        await api.add_service(SERVICE, ADDRESS, refresh_token=None)
        attempt = await start(api)
        assert str(attempt.consent.with_query(None)) == "https://accounts.example/o/oauth2/v2/auth"
        assert attempt.consent.query["redirect_uri"] == (
            "https://sync.example.com/api/services/oauth/callback")
        assert attempt.cookie["secure"] is True
        reply = await callback(api, {"error": "access_denied", "state": attempt.state},
                               attempt.cookie_header)
        location = URL(reply.headers["Location"])
        assert str(location.with_query(None)) == "https://app.example/services"
        assert dict(location.query) == {"tab": "gmail", "status": "failed",
                                        "reason": "access_denied", "service": SERVICE}
        refused = await api.call("POST", f"/api/services/{SERVICE}/sync")
        assert refused.json["connectUrl"] == (
            f"https://sync.example.com/api/services/{SERVICE}/connect")


# --- sender identities and placeholder services -------------------------------------------


def _mail_to(to: str, subject: str) -> bytes:
    message = EmailMessage()
    message["From"] = "Kim <kim@customer.example>"
    message["To"] = to
    message["Subject"] = subject
    message["Message-ID"] = f"<{subject.replace(' ', '.')}@customer.example>"
    message["Date"] = "Tue, 01 Dec 2026 09:00:00 +0000"
    message.set_content("Hello")
    return message.as_bytes()


async def test_connect_fills_sender_identities_and_each_threads_reply_from(api: Api) -> None:
    sim = api.sim.sim
    sim.create_mailbox(ADDRESS, name="Noji Support")
    sim.add_send_as(ADDRESS, "Billing@noji.example", display_name="Noji Billing")
    sim.add_send_as(ADDRESS, "pending@noji.example", verification_status="pending")
    sim.deliver(ADDRESS, raw=_mail_to("Noji Billing <billing@noji.example>", "Invoice"))
    sim.deliver(ADDRESS, raw=_mail_to("pending@noji.example", "Pending alias"))
    sim.deliver(ADDRESS, raw=_mail_to(ADDRESS, "Plain"))
    await api.add_service(SERVICE, ADDRESS, refresh_token=None)
    assert (await connect_through_consent(api))["status"] == "connected"
    await api.drain()

    rows = await api.pool.fetch(
        "SELECT id, email, display_name, is_default, is_enabled FROM service_sender_identities "
        "WHERE account_id = $1 ORDER BY email", SERVICE)
    assert [dict(r) for r in rows] == [
        {"id": f"sender-{SERVICE}-billing@noji.example", "email": "billing@noji.example",
         "display_name": "Noji Billing", "is_default": False, "is_enabled": True},
        {"id": f"sender-{SERVICE}-pending@noji.example", "email": "pending@noji.example",
         "display_name": "", "is_default": False, "is_enabled": False},
        {"id": f"sender-{SERVICE}-{ADDRESS}", "email": ADDRESS,
         "display_name": "Noji Support", "is_default": True, "is_enabled": True},
    ]
    threads = {r["subject"]: r["reply_from_email"] for r in await api.pool.fetch(
        "SELECT subject, reply_from_email FROM email_threads WHERE account_id = $1", SERVICE)}
    assert threads == {"Invoice": "billing@noji.example", "Pending alias": ADDRESS,
                       "Plain": ADDRESS}
    headers = await api.pool.fetchrow(
        "SELECT to_header, cc_header, to_email FROM emails e JOIN email_threads t "
        "ON t.id = e.thread_id WHERE t.subject = 'Invoice'")
    assert dict(headers) == {"to_header": "Noji Billing <billing@noji.example>",
                             "cc_header": None, "to_email": "billing@noji.example"}


async def test_a_placeholder_service_takes_the_mailbox_address(api: Api) -> None:
    api.sim.sim.create_mailbox(ADDRESS)
    await api.add_service(SERVICE, f"{SERVICE}@pending.local", refresh_token=None)
    attempt = await start(api)
    code = api.sim.sim.issue_authorization_code(ADDRESS, redirect_uri=api.url(CALLBACK),
                                                scopes=list(SCOPES))
    reply = await callback(api, {"code": code, "state": attempt.state}, attempt.cookie_header)
    assert outcome(reply)["status"] == "connected"
    await api.drain()
    row = await _service(api)
    assert (row["email"], row["sync_state"]) == (ADDRESS, "connected")
    assert await api.pool.fetchval(
        "SELECT count(*) FROM service_sender_identities WHERE account_id = $1", SERVICE) == 1


async def test_a_placeholder_cannot_take_another_services_mailbox(api: Api) -> None:
    api.sim.sim.create_mailbox(ADDRESS)
    await api.add_service("svc-other", ADDRESS, refresh_token=None)
    await api.add_service(SERVICE, f"{SERVICE}@pending.local", refresh_token=None)
    attempt = await start(api)
    code = api.sim.sim.issue_authorization_code(ADDRESS, redirect_uri=api.url(CALLBACK),
                                                scopes=list(SCOPES))
    reply = await callback(api, {"code": code, "state": attempt.state}, attempt.cookie_header)
    assert outcome(reply) == {"status": "failed", "reason": "email_already_connected",
                              "service": SERVICE}
    row = await _service(api)
    assert (row["email"], row["refresh_token"]) == (f"{SERVICE}@pending.local", None)
