"""History semantics: each mutation yields the record Gmail would; paging; retention."""

from __future__ import annotations

from typing import Any

import pytest
from gmailsim import Clock, GmailError, Simulator
from gmailsim.history import list_history

A = "a@example.com"


@pytest.fixture
def sim() -> Simulator:
    simulator = Simulator(seed=11, clock=Clock(start=1_700_000_000, frozen=True))
    simulator.create_mailbox(A)
    return simulator


def records(sim: Simulator, start: int, **options: Any) -> list[dict[str, Any]]:
    """Every record after ``start``, following page tokens."""
    out: list[dict[str, Any]] = []
    token = None
    while True:
        with sim.lock:
            page = list_history(sim.state(A), start_history_id=start, page_token=token,
                                **options)
        out += page.get("history", [])
        token = page.get("nextPageToken")
        if token is None:
            assert page["historyId"] == str(sim.history_id(A))
            return out


def test_delivery_appends_one_messages_added_record(sim: Simulator) -> None:
    start = sim.history_id(A)
    message_id = sim.deliver(A, text="hello\r\n")
    [record] = records(sim, start)
    assert record == {
        "id": str(sim.history_id(A)),
        "messages": [{"id": message_id, "threadId": message_id}],
        "messagesAdded": [{"message": {"id": message_id, "threadId": message_id,
                                       "labelIds": ["INBOX", "CATEGORY_PERSONAL", "UNREAD"]}}],
    }
    assert sim.snapshot(A).message(message_id).history_id == int(record["id"])


def test_history_ids_increase_with_gaps_and_are_per_mailbox(sim: Simulator) -> None:
    sim.create_mailbox("b@example.com")
    start = sim.history_id(A)
    for _ in range(30):
        sim.deliver(A)
    ids = [int(r["id"]) for r in records(sim, start)]
    assert ids == sorted(ids)
    assert len(set(ids)) == 30
    gaps = {b - a for a, b in zip([start, *ids], ids, strict=False)}
    assert min(gaps) >= 1
    assert len(gaps) > 1, "ids are not contiguous"
    assert sim.history_id("b@example.com") != sim.history_id(A)


def test_reply_joins_the_thread_as_sent(sim: Simulator) -> None:
    first = sim.deliver(A, subject="Order 12")
    start = sim.history_id(A)
    answer = sim.reply(A, first, text="On its way\r\n")
    [record] = records(sim, start)
    assert record["messagesAdded"][0]["message"] == {
        "id": answer, "threadId": first, "labelIds": ["SENT"]}
    snapshot = sim.snapshot(A)
    assert snapshot.threads[first] == (first, answer)
    assert snapshot.message(answer).subject == "Re: Order 12"
    assert snapshot.message(answer).text == "On its way\r\n"


def test_a_follow_up_delivery_threads_into_the_conversation(sim: Simulator) -> None:
    first = sim.deliver(A)
    sim.reply(A, first)
    follow_up = sim.deliver(A, thread_id=first)
    with sim.lock:
        parsed = sim.state(A).messages[follow_up].parsed
        earlier = [sim.state(A).messages[m].parsed.header("Message-ID")
                   for m in sim.snapshot(A).threads[first][:2]]
    assert sim.snapshot(A).message(follow_up).thread_id == first
    assert parsed.header("In-Reply-To") == earlier[1]
    assert (parsed.header("References") or "").split() == earlier


def test_label_changes_record_only_what_changed(sim: Simulator) -> None:
    message_id = sim.deliver(A)
    start = sim.history_id(A)
    assert sim.modify_labels(A, message_id, add=["INBOX"]) is None  # already there
    sim.mark_read(A, message_id)
    sim.modify_labels(A, message_id, add=["STARRED", "UNREAD"], remove=["INBOX"])
    first, second = records(sim, start)
    assert "labelsAdded" not in first
    assert first["labelsRemoved"] == [{"message": {
        "id": message_id, "threadId": message_id, "labelIds": ["INBOX", "CATEGORY_PERSONAL"]},
        "labelIds": ["UNREAD"]}]
    after = ["CATEGORY_PERSONAL", "STARRED", "UNREAD"]
    assert second["labelsAdded"] == [{"message": {
        "id": message_id, "threadId": message_id, "labelIds": after},
        "labelIds": ["STARRED", "UNREAD"]}]
    assert second["labelsRemoved"][0]["labelIds"] == ["INBOX"]


def test_trash_untrash_and_delete(sim: Simulator) -> None:
    message_id = sim.deliver(A)
    start = sim.history_id(A)
    sim.trash(A, message_id)
    assert sim.trash(A, message_id) is None
    sim.untrash(A, message_id)
    sim.delete(A, message_id)
    trash, untrash, delete = records(sim, start)
    assert trash["labelsAdded"][0]["labelIds"] == ["TRASH"]
    assert trash["labelsRemoved"][0]["labelIds"] == ["INBOX"]
    assert untrash["labelsRemoved"][0]["labelIds"] == ["TRASH"]
    assert untrash["labelsRemoved"][0]["message"]["labelIds"] == ["CATEGORY_PERSONAL", "UNREAD"]
    assert delete == {"id": delete["id"],
                      "messages": [{"id": message_id, "threadId": message_id}],
                      "messagesDeleted": [{"message": {"id": message_id,
                                                       "threadId": message_id}}]}
    assert message_id not in sim.snapshot(A).message_ids
    assert message_id not in sim.snapshot(A).threads


def test_drafts_are_added_replaced_and_sent(sim: Simulator) -> None:
    thread = sim.deliver(A)
    start = sim.history_id(A)
    draft = sim.draft(A, thread, text="First try\r\n")
    edited = sim.update_draft(A, draft, text="Second try\r\n")
    sim.send_draft(A, edited)
    added, added_edit, deleted, sent = records(sim, start)
    assert added["messagesAdded"][0]["message"]["labelIds"] == ["DRAFT"]
    assert added_edit["messagesAdded"][0]["message"]["id"] == edited != draft
    assert deleted["messagesDeleted"][0]["message"]["id"] == draft
    assert sent["labelsAdded"][0]["labelIds"] == ["SENT"]
    assert sent["labelsRemoved"][0]["labelIds"] == ["DRAFT"]
    snapshot = sim.snapshot(A)
    assert snapshot.threads[thread] == (thread, edited)
    assert snapshot.message(edited).label_ids == ("SENT",)
    assert snapshot.message(edited).text == "Second try\r\n"
    with pytest.raises(ValueError, match="not a draft"):
        sim.send_draft(A, edited)


def test_history_types_and_label_filters(sim: Simulator) -> None:
    start = sim.history_id(A)
    one, two = sim.deliver(A), sim.deliver(A, labels=["SENT"])
    sim.modify_labels(A, two, add=["STARRED"])
    sim.delete(A, one)
    kinds = {t: records(sim, start, history_types=[t]) for t in
             ("messageAdded", "messageDeleted", "labelAdded", "labelRemoved")}
    assert [len(v) for v in kinds.values()] == [2, 1, 1, 0]
    assert all(set(r) == {"id", "messages", "messagesAdded"} for r in kinds["messageAdded"])
    sent = records(sim, start, label_id="SENT")
    assert [r["messages"][0]["id"] for r in sent] == [two, two]
    starred = records(sim, start, label_id="STARRED")
    assert [r["labelsAdded"][0]["labelIds"] for r in starred] == [["STARRED"]]
    inbox_deleted = records(sim, start, label_id="INBOX", history_types=["messageDeleted"])
    assert [r["messagesDeleted"][0]["message"]["id"] for r in inbox_deleted] == [one]


def test_paging_covers_each_record_once(sim: Simulator) -> None:
    start = sim.history_id(A)
    ids = [sim.deliver(A) for _ in range(23)]
    seen: list[str] = []
    token = None
    pages = 0
    while True:
        with sim.lock:
            page = list_history(sim.state(A), start_history_id=start, max_results=5,
                                page_token=token)
        pages += 1
        seen += [r["messagesAdded"][0]["message"]["id"] for r in page["history"]]
        token = page.get("nextPageToken")
        if token is None:
            break
        sim.deliver(A)  # changes during paging are picked up by the later pages
    assert pages == 6
    assert seen[:23] == ids
    assert len(seen) == len(set(seen)) == 28


def test_page_size_is_capped_at_500(sim: Simulator) -> None:
    start = sim.history_id(A)
    sim.seed(A, messages=520, threads=100)
    with sim.lock:
        page = list_history(sim.state(A), start_history_id=start, max_results=10_000)
    assert len(page["history"]) == 500
    assert "nextPageToken" in page


def test_stale_start_is_404_and_future_start_is_empty(sim: Simulator) -> None:
    old = sim.history_id(A)
    sim.deliver(A)
    middle = sim.history_id(A)
    sim.deliver(A)
    sim.expire_history(A, up_to=middle)
    assert len(records(sim, middle)) == 1
    with pytest.raises(GmailError) as caught:
        records(sim, old)
    assert caught.value.code == 404
    assert caught.value.reason == "notFound"
    assert records(sim, sim.history_id(A) + 1000) == []


def test_time_based_retention_expires_old_history() -> None:
    sim = Simulator(seed=2, clock=Clock(start=1_700_000_000, frozen=True),
                    history_retention_seconds=3600)
    sim.create_mailbox(A)
    start = sim.history_id(A)
    sim.deliver(A)
    assert len(records(sim, start)) == 1
    sim.advance(1800)
    recent_start = sim.history_id(A)
    sim.deliver(A)
    sim.advance(1900)  # the first delivery is now older than an hour
    with pytest.raises(GmailError):
        records(sim, start)
    assert len(records(sim, recent_start)) == 1


def test_record_count_retention() -> None:
    sim = Simulator(seed=2, history_retention_records=5)
    sim.create_mailbox(A)
    start = sim.history_id(A)
    for _ in range(8):
        sim.deliver(A)
    with pytest.raises(GmailError):
        records(sim, start)
    with sim.lock:
        kept = sim.state(A).history
        floor = sim.state(A).floor
    assert len(kept) == 5
    assert floor < int(kept[0].id)
    assert len(records(sim, floor)) == 5


def test_ids_are_unique_across_mailboxes_and_deterministic() -> None:
    def build() -> list[str]:
        sim = Simulator(seed=5, clock=Clock(start=1_700_000_000, frozen=True))
        ids = []
        for address in ("x@example.com", "y@example.com"):
            sim.create_mailbox(address)
            ids += sim.seed(address, messages=50, threads=10, seed=1)
        return ids

    first, second = build(), build()
    assert first == second
    assert len(set(first)) == 100
    assert all(len(i) == 16 and int(i, 16) for i in first)
    assert first == sorted(first)
