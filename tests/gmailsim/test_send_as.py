"""``users.settings.sendAs.list``: the primary identity, aliases added and removed through
the simulator (and its control API), scopes, faults, quota, counters and batch."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest
from gmailsim import Simulator, UnknownSendAs
from gmailsim.api import GmailApi
from gmailsim.quota import METHOD_COSTS
from gmailsim.server import RunningSimulator, serve
from googleapiclient.errors import HttpError

from tests.gmailsim.discovery import methods, validate_error, validate_response
from tests.plugins.gmail import GmailSim

A = "support@example.com"
METHOD = "users.settings.sendAs.list"
METHOD_ID = "gmail.users.settings.sendAs.list"
GMAIL_SEND = "https://www.googleapis.com/auth/gmail.send"
SETTINGS_BASIC = "https://www.googleapis.com/auth/gmail.settings.basic"


def primary(name: str = "", *, default: bool = True) -> dict[str, Any]:
    out: dict[str, Any] = {"sendAsEmail": A, "displayName": name, "replyToAddress": "",
                           "signature": "", "isPrimary": True}
    if default:
        out["isDefault"] = True
    return out


def list_with(g: GmailSim, refresh_token: str) -> Any:
    """``sendAs.list`` through google-api-python-client (call from a worker thread)."""
    body = g.service(refresh_token).users().settings().sendAs().list(userId="me").execute()
    validate_response(METHOD_ID, body)
    return body


# --- the simulator's state -------------------------------------------------------------


def test_every_mailbox_starts_with_its_primary_identity() -> None:
    sim = Simulator(seed=1)
    sim.create_mailbox(A, name="Support")
    sim.create_mailbox("other@example.com")
    assert sim.send_as(A) == [primary("Support")]
    assert sim.send_as("other@example.com") == [
        {"sendAsEmail": "other@example.com", "displayName": "", "replyToAddress": "",
         "signature": "", "isPrimary": True, "isDefault": True}]
    validate_response(METHOD_ID, {"sendAs": sim.send_as(A)})


def test_aliases_switch_the_default_like_gmail() -> None:
    sim = Simulator(seed=1)
    sim.create_mailbox(A)
    first = sim.add_send_as(A, "help@example.org", display_name="Help")
    assert first == {"sendAsEmail": "help@example.org", "displayName": "Help",
                     "treatAsAlias": True, "verificationStatus": "accepted"}
    sim.add_send_as(A, "sales@example.org", is_default=True)
    sim.add_send_as(A, "billing@example.org", is_default=True, treat_as_alias=False,
                    reply_to="accounts@example.org", signature="<b>Billing</b>")
    listed = sim.send_as(A)
    validate_response(METHOD_ID, {"sendAs": listed})
    assert listed == [
        primary(default=False),
        first,
        {"sendAsEmail": "sales@example.org", "treatAsAlias": True,
         "verificationStatus": "accepted"},
        {"sendAsEmail": "billing@example.org", "replyToAddress": "accounts@example.org",
         "signature": "<b>Billing</b>", "isDefault": True, "verificationStatus": "accepted"},
    ]
    assert [s["sendAsEmail"] for s in listed if s.get("isDefault")] == ["billing@example.org"]


def test_unaccepted_aliases_are_listed_with_their_status_and_cannot_be_default() -> None:
    sim = Simulator(seed=1)
    sim.create_mailbox(A)
    pending = sim.add_send_as(A, "pending@example.org", verification_status="pending")
    assert pending == {"sendAsEmail": "pending@example.org", "treatAsAlias": True,
                       "verificationStatus": "pending"}
    with pytest.raises(ValueError, match="accepted"):
        sim.add_send_as(A, "later@example.org", verification_status="pending",
                        is_default=True)
    with pytest.raises(ValueError, match="verification_status"):
        sim.add_send_as(A, "odd@example.org", verification_status="verified")
    assert sim.send_as(A) == [primary(), pending]


def test_bad_or_duplicate_addresses_are_refused() -> None:
    sim = Simulator(seed=1)
    sim.create_mailbox(A)
    sim.add_send_as(A, "help@example.org")
    for email in ("HELP@example.org", A.upper(), "no-at-sign", "a b@example.org", "x@"):
        with pytest.raises(ValueError):
            sim.add_send_as(A, email)
    with pytest.raises(ValueError):
        sim.add_send_as(A, "ok@example.org", reply_to="not an address")
    assert len(sim.send_as(A)) == 2


def test_removal_and_the_primary_cannot_be_removed() -> None:
    sim = Simulator(seed=1)
    sim.create_mailbox(A, name="Support")
    kept = sim.add_send_as(A, "kept@example.org")
    sim.add_send_as(A, "gone@example.org", is_default=True)
    sim.remove_send_as(A, "GONE@example.org")  # addresses compare case-insensitively
    assert sim.send_as(A) == [primary("Support"), kept], "the primary is the default again"
    sim.add_send_as(A, "gone@example.org")  # may be added again
    sim.remove_send_as(A, "gone@example.org")
    with pytest.raises(ValueError, match="primary"):
        sim.remove_send_as(A, A)
    with pytest.raises(UnknownSendAs):
        sim.remove_send_as(A, "never@example.org")
    assert sim.send_as(A) == [primary("Support"), kept]


# --- over HTTP ---------------------------------------------------------------------------


@pytest.fixture
async def mailbox(gmail_sim: GmailSim) -> tuple[GmailSim, str]:
    created = gmail_sim.sim.create_mailbox(A, name="Support")
    return gmail_sim, created.refresh_token


async def test_the_client_lists_the_primary_and_the_aliases(
        mailbox: tuple[GmailSim, str]) -> None:
    g, token = mailbox
    before = await asyncio.to_thread(list_with, g, token)
    g.sim.add_send_as(A, "help@example.org", display_name="Help", is_default=True)
    g.sim.add_send_as(A, "pending@example.org", verification_status="pending")
    after = await asyncio.to_thread(list_with, g, token)
    g.sim.remove_send_as(A, "help@example.org")
    removed = await asyncio.to_thread(list_with, g, token)
    assert before == {"sendAs": [primary("Support")]}
    assert after == {"sendAs": [
        primary("Support", default=False),
        {"sendAsEmail": "help@example.org", "displayName": "Help", "isDefault": True,
         "treatAsAlias": True, "verificationStatus": "accepted"},
        {"sendAsEmail": "pending@example.org", "treatAsAlias": True,
         "verificationStatus": "pending"},
    ]}
    assert removed == {"sendAs": [
        primary("Support"),
        {"sendAsEmail": "pending@example.org", "treatAsAlias": True,
         "verificationStatus": "pending"},
    ]}


def test_the_route_accepts_exactly_the_scopes_of_the_discovery_document() -> None:
    route = next(r for r in GmailApi(Simulator()).routes if r.name == METHOD)
    assert route.scopes == frozenset(methods()[METHOD_ID]["scopes"])
    assert route.http_method == methods()[METHOD_ID]["httpMethod"]


@pytest.mark.parametrize("scope", sorted(methods()[METHOD_ID]["scopes"]))
async def test_every_scope_of_the_method_is_enough(mailbox: tuple[GmailSim, str],
                                                   scope: str) -> None:
    g, _ = mailbox
    token = g.sim.issue_refresh_token(A, [scope])
    body = await asyncio.to_thread(list_with, g, token)
    assert body == {"sendAs": [primary("Support")]}


@pytest.mark.parametrize("scope", [GMAIL_SEND, "https://www.googleapis.com/auth/gmail.metadata"])
async def test_another_scope_is_answered_403(mailbox: tuple[GmailSim, str], scope: str) -> None:
    g, _ = mailbox
    token = g.sim.issue_refresh_token(A, [scope])

    def work() -> HttpError:
        with pytest.raises(HttpError) as caught:
            list_with(g, token)
        return caught.value

    exc = await asyncio.to_thread(work)
    assert exc.resp.status == 403
    body = json.loads(exc.content)
    validate_error(body, 403, "insufficientPermissions")
    assert body["error"]["status"] == "PERMISSION_DENIED"
    assert body["error"]["message"] == "Request had insufficient authentication scopes."
    assert "insufficient_scope" in exc.resp["www-authenticate"]
    counter = g.sim.counters.get(METHOD)
    assert counter.units == 0, "a refused call costs nothing"
    assert counter.errors == {"403/insufficientPermissions": 1}


async def test_the_call_costs_one_unit(mailbox: tuple[GmailSim, str]) -> None:
    g, token = mailbox
    assert METHOD_COSTS[METHOD] == 1
    assert g.sim.quota.cost(METHOD) == 1
    g.sim.quota.units_per_second = 2
    g.sim.clock.freeze()

    def work() -> list[int]:
        statuses = []
        send_as = g.service(token).users().settings().sendAs()
        for _ in range(3):
            try:
                send_as.list(userId="me").execute()
                statuses.append(200)
            except HttpError as exc:
                statuses.append(exc.resp.status)
        return statuses

    assert await asyncio.to_thread(work) == [200, 200, 429]
    assert g.sim.counters.get(METHOD).to_dict() == {
        "calls": 3, "units": 2, "errors": {"429/rateLimitExceeded": 1}}


# --- the raw pipeline: faults, userId, parameters, batch, fields -------------------------


@pytest.fixture
async def running() -> AsyncIterator[tuple[RunningSimulator, aiohttp.ClientSession, str]]:
    sim = Simulator(seed=2)
    sim.create_mailbox(A, name="Support")
    async with serve(sim) as server, aiohttp.ClientSession() as session:
        yield server, session, sim.access_token(A)


async def _get(running: tuple[RunningSimulator, aiohttp.ClientSession, str], user: str = "me",
               **params: str) -> tuple[int, Any]:
    server, session, token = running
    url = f"{server.base_url}/gmail/v1/users/{user}/settings/sendAs"
    async with session.get(url, params=params,
                           headers={"Authorization": f"Bearer {token}"}) as response:
        return response.status, await response.json()


async def test_faults_user_id_parameters_and_fields(
        running: tuple[RunningSimulator, aiohttp.ClientSession, str]) -> None:
    server, session, _ = running
    sim = server.sim
    sim.faults.fail_next(METHOD, code=503)
    unavailable = await _get(running)
    ok = await _get(running, user=A)
    async with session.get(f"{server.base_url}/gmail/v1/users/me/settings/sendAs") as anon:
        missing_token = (anon.status, await anon.json())
    other_user = await _get(running, user="other@example.com")
    unknown_param = await _get(running, maxResults="5")
    only_emails = await _get(running, fields="sendAs(sendAsEmail,isPrimary)")
    assert unavailable[0] == 503
    validate_error(unavailable[1], 503, "backendError")
    assert ok == (200, {"sendAs": [primary("Support")]})
    assert missing_token[0] == 401
    validate_error(missing_token[1], 401, "required")
    assert other_user[0] == 403
    validate_error(other_user[1], 403, "forbidden")
    assert unknown_param[0] == 400
    validate_error(unknown_param[1], 400)
    assert only_emails == (200, {"sendAs": [{"sendAsEmail": A, "isPrimary": True}]})
    sim.faults.update(error_rate=1.0, methods=[METHOD])
    assert (await _get(running))[0] == 500
    sim.faults.reset()
    counter = sim.counters.get(METHOD)
    assert counter.calls == 7
    assert counter.units == 2  # only the two calls that got past the checks before quota


async def test_batch_parts(mailbox: tuple[GmailSim, str]) -> None:
    g, token = mailbox
    g.sim.add_send_as(A, "help@example.org")
    answers: list[tuple[str, Any, Any]] = []

    def work() -> None:
        service = g.service(token)
        batch = g.batch(lambda rid, resp, exc: answers.append((rid, resp, exc)))
        batch.add(service.users().settings().sendAs().list(userId="me"))
        batch.add(service.users().getProfile(userId="me"))
        batch.add(service.users().settings().sendAs().list(userId=A))
        batch.execute(http=service._http)

    await asyncio.to_thread(work)
    assert [(rid, exc) for rid, _, exc in answers] == [("1", None), ("2", None), ("3", None)]
    for _, body, _ in (answers[0], answers[2]):
        validate_response(METHOD_ID, body)
        assert [s["sendAsEmail"] for s in body["sendAs"]] == [A, "help@example.org"]
    assert g.sim.counters.get(METHOD).to_dict() == {"calls": 2, "units": 2, "errors": {}}


# --- the control API ---------------------------------------------------------------------


async def test_control_api_adds_lists_and_removes_aliases(
        running: tuple[RunningSimulator, aiohttp.ClientSession, str]) -> None:
    server, session, _ = running
    base = f"{server.control_url}/mailboxes/{A}/send-as"

    async def call(method: str, url: str, body: Any = None, expect: int = 200) -> Any:
        async with session.request(method, url, json=body) as response:
            payload = await response.json()
            assert response.status == expect, payload
            return payload

    added = await call("POST", base, {"sendAsEmail": "help@example.org",
                                      "displayName": "Help", "isDefault": True})
    pending = await call("POST", base, {"sendAsEmail": "new@example.org",
                                        "verificationStatus": "pending",
                                        "treatAsAlias": False})
    assert added == {"sendAsEmail": "help@example.org", "displayName": "Help",
                     "isDefault": True, "treatAsAlias": True,
                     "verificationStatus": "accepted"}
    assert pending == {"sendAsEmail": "new@example.org", "verificationStatus": "pending"}
    listed = await call("GET", base)
    assert listed == {"sendAs": server.sim.send_as(A)}
    assert listed == (await _get(running))[1], "what users.settings.sendAs.list answers"
    assert listed["sendAs"][0] == primary("Support", default=False)

    await call("POST", base, {"sendAsEmail": "help@example.org"}, expect=400)  # exists
    await call("POST", base, {"sendAsEmail": "x@example.org", "isDefault": "yes"}, expect=400)
    await call("POST", base, {"sendAsEmail": "x@example.org", "isPrimary": True}, expect=400)
    await call("POST", base, {"displayName": "no address"}, expect=400)
    await call("POST", f"{server.control_url}/mailboxes/nobody@example.com/send-as",
               {"sendAsEmail": "x@example.org"}, expect=404)

    assert await call("DELETE", f"{base}/help@example.org") == {}
    await call("DELETE", f"{base}/help@example.org", expect=404)
    await call("DELETE", f"{base}/{A}", expect=400)
    assert server.sim.send_as(A) == [primary("Support"), pending]
