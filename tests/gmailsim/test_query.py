"""The ``q`` search subset used by messages.list and threads.list."""

from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo

import pytest
from gmailsim import AttachmentSpec, Clock, GmailError, Simulator
from gmailsim.resources import list_messages, list_threads

A = "a@example.com"
NOW = 1_700_000_000


@pytest.fixture
def sim() -> Simulator:
    simulator = Simulator(seed=1, clock=Clock(start=NOW, frozen=True))
    simulator.create_mailbox(A)
    return simulator


def search(sim: Simulator, q: str, include_spam_trash: bool = False) -> list[str]:
    with sim.lock:
        body = list_messages(sim.state(A), q=q, max_results=500, now_ms=sim.clock.now_ms(),
                             include_spam_trash=include_spam_trash)
    return [m["id"] for m in body.get("messages", [])]


def test_dates_relative_and_absolute(sim: Simulator) -> None:
    day = 86_400_000
    old = sim.deliver(A, internal_date=(NOW * 1000) - 10 * day)
    recent = sim.deliver(A, internal_date=(NOW * 1000) - day)
    assert search(sim, "newer_than:2d") == [recent]
    assert search(sim, "older_than:2d") == [old]
    assert search(sim, f"after:{NOW - 5 * 86_400}") == [recent]
    assert search(sim, f"before:{NOW - 5 * 86_400}") == [old]
    pacific = datetime.fromtimestamp(NOW - 86_400, ZoneInfo("America/Los_Angeles"))
    day_string = pacific.strftime("%Y/%m/%d")
    assert recent in search(sim, f"after:{day_string}")
    assert old not in search(sim, f"after:{day_string}")
    with pytest.raises(GmailError):
        search(sim, "after:yesterday")


def test_headers_attachments_negation_and_words(sim: Simulator) -> None:
    invoice = sim.deliver(A, sender="Billing <billing@shop.test>", subject="Invoice 42",
                          text="Please pay\r\n",
                          attachments=[AttachmentSpec("i.pdf", "application/pdf", b"%PDF")])
    hello = sim.deliver(A, sender="friend@example.org", subject="Hello there",
                        text="How are you\r\n")
    assert search(sim, "from:billing@shop.test") == [invoice]
    assert search(sim, "subject:hello") == [hello]
    assert search(sim, "has:attachment") == [invoice]
    assert search(sim, "-has:attachment") == [hello]
    assert search(sim, '"how are"') == [hello]
    assert search(sim, "invoice pay") == [invoice]
    with sim.lock:
        message_id = sim.state(A).messages[hello].parsed.header("Message-ID")
    assert search(sim, f"rfc822msgid:{message_id}") == [hello]


def test_labels_in_and_is(sim: Simulator) -> None:
    label = sim.create_label(A, "Customers/VIP")
    vip = sim.deliver(A, labels=["INBOX", label])
    read = sim.deliver(A, labels=["INBOX", "STARRED"])
    spam = sim.deliver(A, labels=["SPAM"])
    assert search(sim, "label:customers-vip") == [vip]
    assert search(sim, f"label:{label}") == [vip]
    assert search(sim, "is:starred") == [read]
    assert search(sim, "is:read") == sorted([read, vip], reverse=True)
    assert search(sim, "in:inbox -label:customers-vip") == [read]
    assert search(sim, "in:spam") == [spam], "naming spam reaches it without includeSpamTrash"
    assert spam not in search(sim, "")
    assert spam in search(sim, "in:anywhere")
    assert spam in search(sim, "", include_spam_trash=True)


def test_threads_list_matches_threads_with_any_matching_message(sim: Simulator) -> None:
    first = sim.deliver(A, subject="Alpha")
    sim.reply(A, first)
    other = sim.deliver(A, subject="Beta")
    with sim.lock:
        sent = list_threads(sim.state(A), q="in:sent", now_ms=sim.clock.now_ms())
        everything = list_threads(sim.state(A), now_ms=sim.clock.now_ms(), max_results=1)
    assert [t["id"] for t in sent["threads"]] == [first]
    assert everything["resultSizeEstimate"] == 2
    assert [t["id"] for t in everything["threads"]] == [other]
    assert "nextPageToken" in everything
