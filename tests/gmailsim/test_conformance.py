"""Conformance: google-api-python-client (its bundled discovery document, ``api_endpoint``
pointed at the simulator) drives every method the project uses, batch included, and
every response body validates against the discovery document's response schema.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json
from email.message import Message
from typing import Any

import pytest
from gmailsim import Simulator
from google.auth.exceptions import RefreshError
from googleapiclient.errors import HttpError

from tests.gmailsim.discovery import validate_error, validate_response
from tests.plugins.gmail import GmailSim

ADDRESS = "support@example.com"


def run(method_id: str, request: Any) -> Any:
    body = request.execute()
    validate_response(method_id, body)
    return body


def error_of(exc: HttpError) -> dict[str, Any]:
    body: dict[str, Any] = json.loads(exc.content)
    return body


def b64(data: str) -> bytes:
    return base64.urlsafe_b64decode(data + "=" * (-len(data) % 4))


def text_part(payload: dict[str, Any], mime_type: str) -> dict[str, Any] | None:
    """The first non-attachment part of ``mime_type`` in a ``format=full`` payload."""
    stack = [payload]
    while stack:
        part = stack.pop(0)
        if part["mimeType"] == mime_type and not part["filename"] and "data" in part["body"]:
            return part
        stack[0:0] = part.get("parts", [])
    return None


def charset_of(part: dict[str, Any]) -> str:
    message = Message()
    for header in part["headers"]:
        if header["name"].lower() == "content-type":
            message["Content-Type"] = header["value"]
    return message.get_content_charset() or "us-ascii"


@pytest.fixture
async def seeded(gmail_sim: GmailSim) -> tuple[GmailSim, str]:
    mailbox = gmail_sim.sim.create_mailbox(ADDRESS, name="Support")
    gmail_sim.sim.seed(ADDRESS, messages=40, threads=10, seed=7)
    return gmail_sim, mailbox.refresh_token


async def test_profile_for_me_and_for_the_address(seeded: tuple[GmailSim, str]) -> None:
    g, token = seeded

    def work() -> list[Any]:
        users = g.service(token).users()
        return [run("gmail.users.getProfile", users.getProfile(userId=user))
                for user in ("me", ADDRESS)]

    me, by_address = await asyncio.to_thread(work)
    assert me == by_address
    assert me["emailAddress"] == ADDRESS
    assert me["messagesTotal"] == 40
    assert me["historyId"] == str(g.sim.history_id(ADDRESS))


async def test_messages_list_pages_through_every_visible_message(
        seeded: tuple[GmailSim, str]) -> None:
    g, token = seeded
    snapshot = g.sim.snapshot(ADDRESS)
    visible = {m.id for m in snapshot.messages
               if not {"SPAM", "TRASH"} & set(m.label_ids)}

    def work() -> tuple[list[str], int]:
        messages = g.service(token).users().messages()
        request = messages.list(userId="me", maxResults=7)
        seen: list[str] = []
        pages = 0
        while request is not None:
            body = run("gmail.users.messages.list", request)
            pages += 1
            seen += [m["id"] for m in body.get("messages", [])]
            for m in body.get("messages", []):
                assert set(m) == {"id", "threadId"}
            request = messages.list_next(request, body)
        return seen, pages

    seen, pages = await asyncio.to_thread(work)
    assert len(seen) == len(set(seen)), "no message twice across pages"
    assert set(seen) == visible
    assert pages == -(-len(visible) // 7)
    dates = {m.id: m.internal_date for m in snapshot.messages}
    assert [dates[i] for i in seen] == sorted((dates[i] for i in seen), reverse=True)


async def test_messages_list_filters(seeded: tuple[GmailSim, str]) -> None:
    g, token = seeded
    first, second = sorted(g.sim.snapshot(ADDRESS).message_ids)[:2]
    g.sim.trash(ADDRESS, first)
    g.sim.modify_labels(ADDRESS, second, add=["SPAM"], remove=["INBOX"])
    snap = g.sim.snapshot(ADDRESS).messages
    middle = sorted(m.internal_date for m in snap)[len(snap) // 2] // 1000

    def ids(**params: Any) -> set[str]:
        body = run("gmail.users.messages.list",
                   g.service(token).users().messages().list(userId="me", maxResults=500,
                                                             **params))
        assert body["resultSizeEstimate"] == len(body.get("messages", []))
        return {m["id"] for m in body.get("messages", [])}

    def work() -> dict[str, set[str]]:
        return {
            "inbox": ids(labelIds=["INBOX"]),
            "inbox_unread": ids(labelIds=["INBOX", "UNREAD"]),
            "all": ids(includeSpamTrash=True),
            "q_trash": ids(q="in:trash"),
            "q_spam": ids(q="in:spam"),
            "q_sent": ids(q="in:sent"),
            "q_label": ids(q="label:unread"),
            "after": ids(q=f"after:{middle}", includeSpamTrash=True),
            "before": ids(q=f"before:{middle}", includeSpamTrash=True),
            "nothing": ids(q="label:no-such-label"),
        }

    got = await asyncio.to_thread(work)

    def having(*labels: str) -> set[str]:
        return {m.id for m in snap if set(labels) <= set(m.label_ids)
                and ("TRASH" in labels or "TRASH" not in m.label_ids)
                and ("SPAM" in labels or "SPAM" not in m.label_ids)}

    assert got["inbox"] == having("INBOX")
    assert got["inbox"]
    assert got["inbox_unread"] == having("INBOX", "UNREAD")
    assert got["all"] == {m.id for m in snap}
    assert got["q_trash"] == having("TRASH")
    assert first in got["q_trash"]
    assert got["q_spam"] == having("SPAM")
    assert second in got["q_spam"]
    assert not {first, second} & got["inbox"]
    assert got["q_sent"] == having("SENT")
    assert got["q_sent"]
    assert got["q_label"] == having("UNREAD")
    assert got["after"] == {m.id for m in snap if m.internal_date >= middle * 1000}
    assert got["before"] == {m.id for m in snap if m.internal_date < middle * 1000}
    assert got["nothing"] == set()


async def test_messages_get_in_every_format(seeded: tuple[GmailSim, str]) -> None:
    g, token = seeded
    target = g.sim.deliver(ADDRESS, subject="Facture été", text="Bonjour\r\n",
                           html="<p>Bonjour</p>\r\n")
    truth = g.sim.snapshot(ADDRESS).message(target)

    def work() -> dict[str, Any]:
        messages = g.service(token).users().messages()
        out = {fmt: run("gmail.users.messages.get", messages.get(userId="me", id=target,
                                                                 format=fmt))
               for fmt in ("full", "metadata", "minimal", "raw")}
        out["default"] = run("gmail.users.messages.get", messages.get(userId="me", id=target))
        out["some_headers"] = run("gmail.users.messages.get", messages.get(
            userId="me", id=target, format="metadata", metadataHeaders=["Subject", "from"]))
        return out

    got = await asyncio.to_thread(work)
    for body in got.values():
        assert body["id"] == target
        assert body["threadId"] == truth.thread_id
        assert body["labelIds"] == ["INBOX", "CATEGORY_PERSONAL", "UNREAD"]
        assert body["historyId"] == str(truth.history_id)
        assert body["internalDate"] == str(truth.internal_date)
        assert body["snippet"] == "Bonjour"
        assert body["sizeEstimate"] == truth.size
    assert got["default"] == got["full"]
    full = got["full"]["payload"]
    assert full["partId"] == ""
    assert full["mimeType"] == "multipart/alternative"
    assert [p["partId"] for p in full["parts"]] == ["0", "1"]
    subject = next(h["value"] for h in full["headers"] if h["name"] == "Subject")
    assert subject == "Facture été", "RFC 2047 words are decoded in headers"
    plain = text_part(full, "text/plain")
    assert plain is not None
    assert b64(plain["body"]["data"]) == b"Bonjour\r\n"
    assert plain["body"]["size"] == len(b"Bonjour\r\n")
    assert "payload" not in got["minimal"]
    assert "raw" not in got["minimal"]
    assert hashlib.sha256(b64(got["raw"]["raw"])).hexdigest() == truth.raw_sha256
    assert "payload" not in got["raw"]
    assert set(got["metadata"]["payload"]) == {"mimeType", "headers"}
    assert [h["name"] for h in got["some_headers"]["payload"]["headers"]] == ["From", "Subject"]


async def test_full_payload_bodies_match_the_ground_truth(seeded: tuple[GmailSim, str]) -> None:
    g, token = seeded
    snapshot = g.sim.snapshot(ADDRESS)
    results: dict[str, Any] = {}

    def work() -> None:
        service = g.service(token)
        batch = g.batch(lambda rid, resp, exc: results.__setitem__(rid, (resp, exc)))
        for message in snapshot.messages:
            batch.add(service.users().messages().get(userId="me", id=message.id),
                      request_id=message.id)
        batch.execute(http=service._http)

    await asyncio.to_thread(work)
    assert set(results) == snapshot.message_ids
    checked = 0
    for message in snapshot.messages:
        body, exc = results[message.id]
        assert exc is None
        validate_response("gmail.users.messages.get", body)
        for mime_type, truth in (("text/plain", message.text), ("text/html", message.html)):
            if truth is None:
                continue
            part = text_part(body["payload"], mime_type)
            if part is None:  # a body too large to inline comes as an attachment
                continue
            assert b64(part["body"]["data"]).decode(charset_of(part)) == truth
            checked += 1
    assert checked > 40


async def test_attachments_get_returns_the_attached_bytes(seeded: tuple[GmailSim, str]) -> None:
    g, token = seeded
    from gmailsim import AttachmentSpec

    data = bytes(range(256)) * 40
    target = g.sim.deliver(ADDRESS, text="see attached\r\n", attachments=[
        AttachmentSpec("report.bin", "application/octet-stream", data)])

    def work() -> tuple[dict[str, Any], dict[str, Any]]:
        messages = g.service(token).users().messages()
        message = run("gmail.users.messages.get", messages.get(userId="me", id=target))
        part = next(p for p in message["payload"]["parts"] if p["filename"] == "report.bin")
        assert "data" not in part["body"]
        attachment = run("gmail.users.messages.attachments.get", messages.attachments().get(
            userId="me", messageId=target, id=part["body"]["attachmentId"]))
        return part, attachment

    part, attachment = await asyncio.to_thread(work)
    assert part["body"]["size"] == len(data)
    assert b64(attachment["data"]) == data
    assert attachment["size"] == len(data)


async def test_threads_list_and_get(seeded: tuple[GmailSim, str]) -> None:
    g, token = seeded
    snapshot = g.sim.snapshot(ADDRESS)

    def work() -> tuple[list[dict[str, Any]], dict[str, dict[str, Any]]]:
        threads = g.service(token).users().threads()
        listed: list[dict[str, Any]] = []
        request = threads.list(userId="me", includeSpamTrash=True, maxResults=3)
        while request is not None:
            body = run("gmail.users.threads.list", request)
            listed += body.get("threads", [])
            request = threads.list_next(request, body)
        got = {}
        for fmt in ("full", "metadata", "minimal"):
            got[fmt] = run("gmail.users.threads.get",
                           threads.get(userId="me", id=listed[0]["id"], format=fmt))
        return listed, got

    listed, got = await asyncio.to_thread(work)
    assert {t["id"] for t in listed} == set(snapshot.threads)
    for thread in listed:
        assert set(thread) == {"id", "snippet", "historyId"}
    first = listed[0]["id"]
    for body in got.values():
        assert body["id"] == first
        assert [m["id"] for m in body["messages"]] == list(snapshot.threads[first])
        assert body["historyId"] == listed[0]["historyId"]
        assert int(body["historyId"]) == max(int(m["historyId"]) for m in body["messages"])
    assert "payload" in got["full"]["messages"][0]
    assert "payload" not in got["minimal"]["messages"][0]


async def test_history_list_pages_types_and_labels(seeded: tuple[GmailSim, str]) -> None:
    g, token = seeded
    sim: Simulator = g.sim
    start = sim.history_id(ADDRESS)
    new = [sim.deliver(ADDRESS) for _ in range(5)]
    sim.mark_read(ADDRESS, new[0])
    sim.modify_labels(ADDRESS, new[1], add=["STARRED"])
    sim.trash(ADDRESS, new[2])
    sim.delete(ADDRESS, new[3])
    end = sim.history_id(ADDRESS)

    def pages(**params: Any) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
        history = g.service(token).users().history()
        request = history.list(userId="me", startHistoryId=str(start), **params)
        records, bodies = [], []
        while request is not None:
            body = run("gmail.users.history.list", request)
            bodies.append(body)
            records += body.get("history", [])
            request = history.list_next(request, body)
        return records, bodies

    def work() -> dict[str, Any]:
        return {
            "all": pages(maxResults=2),
            "added": pages(historyTypes=["messageAdded"]),
            "label_changes": pages(historyTypes=["labelAdded", "labelRemoved"]),
            "starred": pages(labelId="STARRED"),
        }

    got = await asyncio.to_thread(work)
    records, bodies = got["all"]
    assert len(records) == 9
    assert len(bodies) == 5
    assert all(b["historyId"] == str(end) for b in bodies)
    assert "nextPageToken" not in bodies[-1]
    ids = [int(r["id"]) for r in records]
    assert ids == sorted(ids)
    assert ids[0] > start
    assert ids[-1] == end
    assert [m["message"]["id"] for r in got["added"][0] for m in r["messagesAdded"]] == new
    changes = got["label_changes"][0]
    assert [(r.get("labelsAdded"), r.get("labelsRemoved")) for r in changes] == [
        (None, [{"message": {"id": new[0], "threadId": new[0],
                             "labelIds": ["INBOX", "CATEGORY_PERSONAL"]},
                 "labelIds": ["UNREAD"]}]),
        ([{"message": {"id": new[1], "threadId": new[1],
                       "labelIds": ["INBOX", "CATEGORY_PERSONAL", "STARRED", "UNREAD"]},
           "labelIds": ["STARRED"]}], None),
        ([{"message": {"id": new[2], "threadId": new[2],
                       "labelIds": ["TRASH", "CATEGORY_PERSONAL", "UNREAD"]},
           "labelIds": ["TRASH"]}],
         [{"message": {"id": new[2], "threadId": new[2],
                       "labelIds": ["TRASH", "CATEGORY_PERSONAL", "UNREAD"]},
           "labelIds": ["INBOX"]}]),
    ]
    assert [r["messages"][0]["id"] for r in got["starred"][0]] == [new[1]]


async def test_history_list_answers_404_for_a_stale_start(seeded: tuple[GmailSim, str]) -> None:
    g, token = seeded
    start = g.sim.history_id(ADDRESS)
    g.sim.deliver(ADDRESS)
    g.sim.expire_history(ADDRESS)

    def work() -> HttpError:
        history = g.service(token).users().history()
        with pytest.raises(HttpError) as caught:
            history.list(userId="me", startHistoryId=str(start)).execute()
        current = run("gmail.users.history.list", history.list(
            userId="me", startHistoryId=str(g.sim.history_id(ADDRESS))))
        assert "history" not in current
        return caught.value

    exc = await asyncio.to_thread(work)
    assert exc.resp.status == 404
    validate_error(error_of(exc), 404, "notFound")
    assert error_of(exc)["error"]["status"] == "NOT_FOUND"


async def test_watch_and_stop(seeded: tuple[GmailSim, str]) -> None:
    g, token = seeded
    now_ms = g.sim.clock.now_ms()

    def work() -> tuple[dict[str, Any], Any]:
        users = g.service(token).users()
        watch = run("gmail.users.watch", users.watch(userId="me", body={
            "topicName": "projects/demo-project/topics/gmail", "labelIds": ["INBOX"],
            "labelFilterBehavior": "include"}))
        stopped = users.stop(userId="me").execute()
        return watch, stopped

    watch, stopped = await asyncio.to_thread(work)
    assert watch["historyId"] == str(g.sim.history_id(ADDRESS))
    assert abs(int(watch["expiration"]) - (now_ms + 7 * 86_400_000)) < 60_000
    validate_response("gmail.users.stop", stopped)
    assert g.sim.active_watch(ADDRESS) is None


async def test_labels_list_and_get(seeded: tuple[GmailSim, str]) -> None:
    g, token = seeded

    def work() -> tuple[dict[str, Any], dict[str, Any]]:
        labels = g.service(token).users().labels()
        return (run("gmail.users.labels.list", labels.list(userId="me")),
                run("gmail.users.labels.get", labels.get(userId="me", id="INBOX")))

    listed, inbox = await asyncio.to_thread(work)
    ids = {label["id"] for label in listed["labels"]}
    assert {"INBOX", "SENT", "UNREAD", "TRASH", "SPAM", "CATEGORY_UPDATES"} <= ids
    assert {"Support", "Follow-up"} <= {label["name"] for label in listed["labels"]}
    snap = g.sim.snapshot(ADDRESS).messages
    assert inbox["messagesTotal"] == sum("INBOX" in m.label_ids for m in snap)


async def test_modify_trash_untrash_delete_over_the_api(seeded: tuple[GmailSim, str]) -> None:
    g, token = seeded
    target = g.sim.deliver(ADDRESS)
    victim = g.sim.deliver(ADDRESS)
    full_access = g.sim.issue_refresh_token(ADDRESS, ["https://mail.google.com/"])

    def work() -> list[Any]:
        messages = g.service(token).users().messages()
        out = [
            run("gmail.users.messages.modify", messages.modify(
                userId="me", id=target, body={"removeLabelIds": ["UNREAD", "INBOX"]})),
            run("gmail.users.messages.trash", messages.trash(userId="me", id=target)),
            run("gmail.users.messages.untrash", messages.untrash(userId="me", id=target)),
        ]
        with pytest.raises(HttpError) as refused:
            messages.delete(userId="me", id=victim).execute()  # gmail.modify cannot delete
        out.append(refused.value)
        g.service(full_access).users().messages().delete(userId="me", id=victim).execute()
        with pytest.raises(HttpError) as caught:
            messages.get(userId="me", id=victim).execute()
        out.append(caught.value)
        return out

    modified, trashed, untrashed, refused, gone = await asyncio.to_thread(work)
    assert refused.resp.status == 403
    validate_error(error_of(refused), 403, "insufficientPermissions")
    assert modified["labelIds"] == ["CATEGORY_PERSONAL"]
    assert trashed["labelIds"] == ["TRASH", "CATEGORY_PERSONAL"]
    assert untrashed["labelIds"] == ["CATEGORY_PERSONAL"]
    assert gone.resp.status == 404
    assert victim not in g.sim.snapshot(ADDRESS).message_ids


async def test_batch_answers_each_part_in_its_own_part(seeded: tuple[GmailSim, str]) -> None:
    g, token = seeded
    ids = sorted(g.sim.snapshot(ADDRESS).message_ids)[:30]
    answers: list[tuple[str, Any, Any]] = []

    def work() -> None:
        service = g.service(token)
        batch = g.batch(lambda rid, resp, exc: answers.append((rid, resp, exc)))
        for message_id in ids:
            batch.add(service.users().messages().get(userId="me", id=message_id,
                                                      format="metadata"))
        batch.add(service.users().threads().get(userId="me", id=ids[0], format="minimal"))
        batch.add(service.users().messages().get(userId="me", id="ffffffffffffffff"))
        batch.add(service.users().history().list(userId="me", startHistoryId="1"))
        batch.add(service.users().getProfile(userId="me"))
        batch.execute(http=service._http)

    await asyncio.to_thread(work)
    assert [rid for rid, _, _ in answers] == [str(i) for i in range(1, 35)]
    for (_, body, exc), message_id in zip(answers, ids, strict=False):
        assert exc is None
        assert body["id"] == message_id
        validate_response("gmail.users.messages.get", body)
    validate_response("gmail.users.threads.get", answers[30][1])
    missing, stale = answers[31][2], answers[32][2]
    assert isinstance(missing, HttpError)
    assert missing.resp.status == 404
    assert isinstance(stale, HttpError)
    assert stale.resp.status == 404
    validate_error(error_of(missing), 404, "notFound")
    validate_response("gmail.users.getProfile", answers[33][1])
    assert g.sim.counters.calls("batch") == 1
    assert g.sim.counters.get("users.messages.get").units == 31 * 5


async def test_batch_of_more_than_100_parts_is_refused(seeded: tuple[GmailSim, str]) -> None:
    g, token = seeded

    def work() -> HttpError:
        service = g.service(token)
        batch = g.batch()
        for _ in range(101):
            batch.add(service.users().getProfile(userId="me"))
        with pytest.raises(HttpError) as caught:
            batch.execute(http=service._http)
        return caught.value

    exc = await asyncio.to_thread(work)
    assert exc.resp.status == 400
    validate_error(error_of(exc), 400)


async def test_expired_access_token_is_refreshed_and_revocation_is_invalid_grant(
        seeded: tuple[GmailSim, str]) -> None:
    g, token = seeded

    def work() -> RefreshError:
        service = g.service(token)
        run("gmail.users.getProfile", service.users().getProfile(userId="me"))
        g.sim.advance(3600)  # every access token issued so far has expired
        run("gmail.users.getProfile", service.users().getProfile(userId="me"))
        g.sim.revoke_refresh_token(ADDRESS)
        with pytest.raises(RefreshError) as caught:
            service.users().getProfile(userId="me").execute()
        return caught.value

    refused = await asyncio.to_thread(work)
    assert "invalid_grant" in str(refused)
    counters = g.sim.counters
    assert counters.calls("oauth.token") == 3
    assert counters.get("oauth.token").errors == {"400/invalid_grant": 1}
    assert counters.get("users.getProfile").errors == {"401/authError": 2}


async def test_missing_or_bad_token_is_401(seeded: tuple[GmailSim, str]) -> None:
    import aiohttp

    g, _ = seeded
    url = g.base_url + "/gmail/v1/users/me/profile"
    async with aiohttp.ClientSession() as session:
        async with session.get(url) as missing:
            missing_body = await missing.json()
        async with session.get(url, headers={"Authorization": "Bearer ya29.nope"}) as bad:
            bad_body = await bad.json()
            www = bad.headers.get("WWW-Authenticate")
        good_token = g.sim.access_token(ADDRESS)
        async with session.get(url, params={"prettyPrint": "false"},
                               headers={"Authorization": f"Bearer {good_token}"}) as good:
            good_text = await good.text()
    assert missing.status == 401
    assert bad.status == 401
    assert good.status == 200
    validate_error(missing_body, 401, "required")
    validate_error(bad_body, 401, "authError")
    assert bad_body["error"]["status"] == "UNAUTHENTICATED"
    assert www is not None
    assert www.startswith("Bearer")
    assert "\n" not in good_text


async def test_a_base_url_with_a_path_prefix(gmail_sim_factory: Any) -> None:
    sim = Simulator(seed=3)
    mailbox = sim.create_mailbox(ADDRESS)
    sim.seed(ADDRESS, messages=5, threads=2)
    async with gmail_sim_factory(sim, prefix="/proxy/google/") as g:
        assert g.base_url.endswith("/proxy/google")
        answers: list[Any] = []

        def work() -> dict[str, Any]:
            service = g.service(mailbox.refresh_token)
            batch = g.batch(lambda rid, resp, exc: answers.append((resp, exc)))
            batch.add(service.users().messages().list(userId="me"))
            batch.execute(http=service._http)
            return run("gmail.users.getProfile", service.users().getProfile(userId=ADDRESS))

        profile = await asyncio.to_thread(work)
    assert profile["messagesTotal"] == 5
    assert answers[0][1] is None
    assert len(answers[0][0]["messages"]) == 5


async def test_parameters_are_checked_like_google(seeded: tuple[GmailSim, str]) -> None:
    import aiohttp

    g, _ = seeded
    headers = {"Authorization": f"Bearer {g.sim.access_token(ADDRESS)}"}
    base = g.base_url + "/gmail/v1/users/me"
    async with aiohttp.ClientSession(headers=headers) as session:
        async def get(path: str, **params: str) -> tuple[int, Any]:
            async with session.get(base + path, params=params) as response:
                return response.status, await response.json()

        unknown = await get("/history", startHistoryId="1", labelIds="INBOX")
        bad_format = await get("/messages/18a0000000000001", format="html")
        bad_max = await get("/messages", maxResults="many")
        bad_id = await get("/messages/not-an-id")
        other_user = await get("/../other@example.com/profile")
        partial = await get("/messages", fields="messages(id),resultSizeEstimate",
                            maxResults="2")
        big_page = await get("/messages", maxResults="10000", includeSpamTrash="true")
    assert unknown[0] == 400
    assert "labelIds" in unknown[1]["error"]["message"]
    validate_error(unknown[1], 400)
    assert bad_format[0] == 400
    assert bad_max[0] == 400
    assert bad_id[0] == 400
    assert other_user[0] in (403, 404)
    assert partial[0] == 200
    assert set(partial[1]) == {"messages", "resultSizeEstimate"}
    assert all(set(m) == {"id"} for m in partial[1]["messages"])
    assert big_page[0] == 200
    assert len(big_page[1]["messages"]) == 40


async def test_userid_of_another_mailbox_is_refused(seeded: tuple[GmailSim, str]) -> None:
    g, token = seeded
    g.sim.create_mailbox("other@example.com")

    def work() -> HttpError:
        with pytest.raises(HttpError) as caught:
            g.service(token).users().getProfile(userId="other@example.com").execute()
        return caught.value

    exc = await asyncio.to_thread(work)
    assert exc.resp.status == 403
    validate_error(error_of(exc), 403, "forbidden")


async def test_settings_send_as_list(seeded: tuple[GmailSim, str]) -> None:
    g, token = seeded
    g.sim.add_send_as(ADDRESS, "help@example.org", display_name="Help desk",
                      signature="<div>Help desk</div>", is_default=True)
    g.sim.add_send_as(ADDRESS, "sales@example.org", treat_as_alias=False,
                      verification_status="pending", reply_to="sales-replies@example.org")

    def work() -> Any:
        send_as = g.service(token).users().settings().sendAs()
        return run("gmail.users.settings.sendAs.list", send_as.list(userId="me"))

    body = await asyncio.to_thread(work)
    assert body == {"sendAs": [
        {"sendAsEmail": ADDRESS, "displayName": "Support", "replyToAddress": "",
         "signature": "", "isPrimary": True},
        {"sendAsEmail": "help@example.org", "displayName": "Help desk",
         "signature": "<div>Help desk</div>", "isDefault": True, "treatAsAlias": True,
         "verificationStatus": "accepted"},
        {"sendAsEmail": "sales@example.org", "replyToAddress": "sales-replies@example.org",
         "verificationStatus": "pending"},
    ]}
    assert g.sim.counters.get("users.settings.sendAs.list").to_dict() == {
        "calls": 1, "units": 1, "errors": {}}
