"""Property: replaying history.list from any start onto the state at that start yields the
current mailbox exactly (the invariant an incremental sync relies on), whatever the
sequence of mutations and the page size."""

from __future__ import annotations

from typing import Any

from gmailsim import Clock, Simulator
from gmailsim.history import list_history
from hypothesis import given, settings
from hypothesis import strategies as st

A = "a@example.com"
OPS = ("deliver", "follow_up", "reply", "read", "unread", "archive", "star", "trash",
       "untrash", "spam", "delete", "label")


def apply(sim: Simulator, op: str, pick: int) -> None:
    ids = sorted(sim.snapshot(A).message_ids)
    if op == "deliver" or not ids:
        sim.deliver(A)
        return
    target = ids[pick % len(ids)]
    thread = sim.snapshot(A).message(target).thread_id
    action = {
        "follow_up": lambda: sim.deliver(A, thread_id=thread),
        "reply": lambda: sim.reply(A, thread),
        "read": lambda: sim.mark_read(A, target),
        "unread": lambda: sim.modify_labels(A, target, add=["UNREAD"]),
        "archive": lambda: sim.archive(A, target),
        "star": lambda: sim.modify_labels(A, target, add=["STARRED"]),
        "trash": lambda: sim.trash(A, target),
        "untrash": lambda: sim.untrash(A, target),
        "spam": lambda: sim.modify_labels(A, target, add=["SPAM"], remove=["INBOX"]),
        "delete": lambda: sim.delete(A, target),
        "label": lambda: sim.modify_labels(A, target, add=["Label_1"]),
    }[op]
    action()


def replay(state: dict[str, set[str]], records: list[dict[str, Any]]) -> dict[str, set[str]]:
    for record in records:
        for entry in record.get("messagesAdded", []):
            message = entry["message"]
            state[message["id"]] = set(message.get("labelIds", []))
        for entry in record.get("labelsAdded", []):
            state[entry["message"]["id"]] |= set(entry["labelIds"])
        for entry in record.get("labelsRemoved", []):
            state[entry["message"]["id"]] -= set(entry["labelIds"])
        for entry in record.get("messagesDeleted", []):
            state.pop(entry["message"]["id"], None)
        for entry in record.get("labelsAdded", []) + record.get("labelsRemoved", []):
            message = entry["message"]
            if message["id"] in state:
                assert state[message["id"]] == set(message.get("labelIds", []))
    return state


@settings(max_examples=60, deadline=None)
@given(before=st.lists(st.tuples(st.sampled_from(OPS), st.integers(0, 999)), max_size=8),
       after=st.lists(st.tuples(st.sampled_from(OPS), st.integers(0, 999)), max_size=30),
       page=st.integers(1, 7))
def test_replaying_history_reconstructs_the_mailbox(
        before: list[tuple[str, int]], after: list[tuple[str, int]], page: int) -> None:
    sim = Simulator(seed=1, clock=Clock(start=1_700_000_000, frozen=True))
    sim.create_mailbox(A)
    sim.seed(A, messages=4, threads=2)
    for op, pick in before:
        apply(sim, op, pick)
    start = sim.history_id(A)
    base = {m.id: set(m.label_ids) for m in sim.snapshot(A).messages}
    for op, pick in after:
        apply(sim, op, pick)

    records: list[dict[str, Any]] = []
    token = None
    while True:
        with sim.lock:
            body = list_history(sim.state(A), start_history_id=start, max_results=page,
                                page_token=token)
        assert len(body.get("history", [])) <= page
        records += body.get("history", [])
        token = body.get("nextPageToken")
        if token is None:
            break
    assert body["historyId"] == str(sim.history_id(A))
    ids = [int(r["id"]) for r in records]
    assert ids == sorted(set(ids))
    snapshot = sim.snapshot(A)
    assert replay(base, records) == {m.id: set(m.label_ids) for m in snapshot.messages}
    for message in snapshot.messages:
        touched = [int(r["id"]) for r in records
                   if any(m["id"] == message.id for m in r["messages"])]
        if touched:
            assert message.history_id == touched[-1]
