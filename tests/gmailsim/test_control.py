"""The HTTP control API performs the same operations as the Python API."""

from __future__ import annotations

import asyncio
import base64
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest
from gmailsim import Simulator
from gmailsim.server import RunningSimulator, serve, serve_in_thread

A = "support@example.com"


class Control:
    def __init__(self, running: RunningSimulator, session: aiohttp.ClientSession) -> None:
        self.running = running
        self.session = session

    async def call(self, method: str, path: str, body: Any = None,
                   expect: int = 200) -> Any:
        async with self.session.request(method, self.running.control_url + path,
                                        json=body) as response:
            payload = await response.json()
            assert response.status == expect, payload
            return payload

    async def gmail(self, path: str, token: str, **params: str) -> tuple[int, Any]:
        url = f"{self.running.base_url}/gmail/v1/users/me{path}"
        async with self.session.get(url, params=params,
                                    headers={"Authorization": f"Bearer {token}"}) as response:
            return response.status, await response.json()


@pytest.fixture
async def control() -> AsyncIterator[Control]:
    async with serve(Simulator(seed=9), prefix="/p") as running, \
            aiohttp.ClientSession() as session:
        yield Control(running, session)


async def test_mailboxes_seed_and_snapshot(control: Control) -> None:
    created = await control.call("POST", "/mailboxes", {"address": A, "name": "Support"})
    assert created["address"] == A
    assert created["refreshToken"].startswith("1//")
    seeded = await control.call("POST", f"/mailboxes/{A}/seed",
                                {"messages": 12, "threads": 4, "seed": 3})
    assert len(seeded["messageIds"]) == 12
    snapshot = await control.call("GET", f"/mailboxes/{A}/snapshot")
    assert snapshot == control.running.sim.snapshot(A).to_json()
    assert {m["id"] for m in snapshot["messages"]} == set(seeded["messageIds"])
    message = snapshot["messages"][0]
    assert {"id", "threadId", "labelIds", "historyId", "internalDate", "text", "html",
            "rawSha256", "attachments"} <= set(message)
    listed = await control.call("GET", "/mailboxes")
    assert listed["mailboxes"][0]["messagesTotal"] == 12
    config = await control.call("GET", "/config")
    assert config["clientId"] == control.running.sim.client_id


async def test_mutations_over_http(control: Control) -> None:
    sim = control.running.sim
    await control.call("POST", "/mailboxes", {"address": A})
    label = await control.call("POST", f"/mailboxes/{A}/labels", {"name": "VIP"})
    raw = base64.urlsafe_b64encode(b"From: x@example.com\r\nSubject: raw one\r\n"
                                   b"Content-Type: text/plain\r\n\r\nhi\r\n").decode()
    first = await control.call("POST", f"/mailboxes/{A}/deliver", {
        "subject": "Hello", "text": "Body\r\n", "labels": ["INBOX", "UNREAD", label["id"]]})
    raw_one = await control.call("POST", f"/mailboxes/{A}/deliver", {"raw": raw})
    follow = await control.call("POST", f"/mailboxes/{A}/deliver",
                                {"threadId": first["threadId"]})
    answer = await control.call("POST", f"/mailboxes/{A}/threads/{first['threadId']}/reply",
                                {"text": "Thanks\r\n"})
    modified = await control.call("POST", f"/mailboxes/{A}/messages/{first['id']}/modify",
                                  {"remove": ["UNREAD"], "add": ["STARRED"]})
    unchanged = await control.call("POST", f"/mailboxes/{A}/messages/{first['id']}/modify",
                                   {"add": ["STARRED"]})
    await control.call("POST", f"/mailboxes/{A}/messages/{follow['id']}/trash")
    await control.call("POST", f"/mailboxes/{A}/messages/{follow['id']}/untrash")
    draft = await control.call("POST", f"/mailboxes/{A}/threads/{first['threadId']}/draft",
                               {"text": "draft\r\n"})
    edited = await control.call("PUT", f"/mailboxes/{A}/messages/{draft['id']}/draft",
                                {"text": "better\r\n"})
    await control.call("POST", f"/mailboxes/{A}/messages/{edited['id']}/send")
    await control.call("POST", f"/mailboxes/{A}/messages/{edited['id']}/send", expect=400)
    deleted = await control.call("DELETE", f"/mailboxes/{A}/messages/{raw_one['id']}")
    assert int(modified["historyId"]) > int(first["historyId"])
    assert unchanged == {"historyId": None}
    assert deleted["historyId"] == str(sim.history_id(A))
    snapshot = sim.snapshot(A)
    assert snapshot.threads[first["threadId"]] == (first["id"], follow["id"], answer["id"],
                                                   edited["id"])
    assert snapshot.message(edited["id"]).label_ids == ("SENT",)
    assert snapshot.message(first["id"]).label_ids == ("INBOX", "Label_1", "STARRED")
    assert snapshot.message(first["id"]).text == "Body\r\n"
    assert snapshot.message(answer["id"]).label_ids == ("SENT",)
    assert raw_one["id"] not in snapshot.message_ids


async def test_tokens_clock_history_and_errors(control: Control) -> None:
    sim = control.running.sim
    await control.call("POST", "/mailboxes", {"address": A})
    token = (await control.call("POST", f"/mailboxes/{A}/access-token"))["accessToken"]
    assert (await control.gmail("/profile", token))[0] == 200
    expired = await control.call("POST", "/tokens/expire", {"address": A})
    assert expired["expired"] >= 1
    assert (await control.gmail("/profile", token))[0] == 401

    token = (await control.call("POST", f"/mailboxes/{A}/access-token"))["accessToken"]
    before = (await control.call("GET", "/clock"))["now"]
    after = (await control.call("POST", "/clock/advance", {"seconds": 3600}))["now"]
    assert after - before >= 3600
    assert (await control.gmail("/profile", token))[0] == 401, "an hour later it expired"

    token = (await control.call("POST", f"/mailboxes/{A}/access-token"))["accessToken"]
    start = str(sim.history_id(A))
    await control.call("POST", f"/mailboxes/{A}/deliver", {})
    await control.call("POST", f"/mailboxes/{A}/expire-history", {})
    status, _body = await control.gmail("/history", token, startHistoryId=start)
    assert status == 404

    code = await control.call("POST", f"/mailboxes/{A}/authorization-code",
                              {"redirectUri": "http://x/cb"})
    assert code["code"].startswith("4/")
    refresh = (await control.call("POST", f"/mailboxes/{A}/refresh-tokens"))["refreshToken"]
    await control.call("POST", f"/mailboxes/{A}/revoke")
    assert sim.tokens.refresh_tokens(A) == []
    assert refresh

    await control.call("POST", "/mailboxes/nobody@example.com/seed",
                       {"messages": 1, "threads": 1}, expect=404)
    await control.call("POST", f"/mailboxes/{A}/messages/18a0000000000000/trash", expect=404)
    await control.call("POST", f"/mailboxes/{A}/seed", {"messages": 1, "threads": 5},
                       expect=400)
    await control.call("POST", "/mailboxes", {"address": A}, expect=400)


async def test_faults_quota_counters_and_notifications(control: Control) -> None:
    sim = control.running.sim
    await control.call("POST", "/mailboxes", {"address": A})
    token = sim.access_token(A)
    faults = await control.call("PATCH", "/faults", {"error_rate": 1.0})
    assert faults["error_rate"] == 1.0
    assert (await control.gmail("/profile", token))[0] == 500
    await control.call("POST", "/faults/reset")
    await control.call("POST", "/faults/fail-next",
                       {"method": "users.getProfile", "code": 503})
    assert (await control.gmail("/profile", token))[0] == 503
    assert (await control.gmail("/profile", token))[0] == 200
    await control.call("PATCH", "/faults", {"bogus": 1}, expect=400)

    quota = await control.call("PATCH", "/quota", {"units_per_second": 1})
    assert quota["units_per_second"] == 1
    assert sim.quota.units_per_second == 1
    sim.advance(2)
    assert (await control.gmail("/profile", token))[0] == 200
    assert (await control.gmail("/profile", token))[0] == 429

    settings = await control.call("PATCH", "/settings", {"historyRetentionRecords": 2,
                                                         "accessTokenTtl": 60})
    assert settings["historyRetentionRecords"] == 2
    assert settings["historyRetentionSeconds"] == 7 * 86_400
    assert sim.history_retention_records == 2
    assert sim.tokens.access_ttl == 60
    await control.call("PATCH", "/settings", {"nope": 1}, expect=400)

    counters = await control.call("GET", "/counters")
    assert counters["users.getProfile"]["errors"] == {
        "500/backendError": 1, "503/backendError": 1, "429/rateLimitExceeded": 1}
    await control.call("POST", "/counters/reset")
    assert await control.call("GET", "/counters") == {}

    await control.call("PUT", "/push", {"endpoint": None})
    sim.watch(A, "projects/p/topics/t")
    sim.deliver(A)
    async with asyncio.timeout(5):
        await control.running.notifier.wait_for(lambda d: len(d) == 1)
    listed = await control.call("GET", "/notifications")
    assert listed["notifications"][0]["data"] == {"emailAddress": A,
                                                  "historyId": sim.history_id(A)}
    assert listed["notifications"][0]["sink"] == "memory"


def test_serve_in_thread_for_blocking_callers() -> None:
    from google.oauth2.credentials import Credentials
    from googleapiclient.discovery import build

    sim = Simulator(seed=1)
    mailbox = sim.create_mailbox(A)
    sim.seed(A, messages=3, threads=1)
    with serve_in_thread(sim) as running:
        credentials = Credentials(None, refresh_token=mailbox.refresh_token,
                                  token_uri=running.token_uri, client_id=sim.client_id,
                                  client_secret=sim.client_secret)
        service = build("gmail", "v1", credentials=credentials, static_discovery=True,
                        client_options={"api_endpoint": running.base_url})
        profile = service.users().getProfile(userId="me").execute()
    assert profile["messagesTotal"] == 3
