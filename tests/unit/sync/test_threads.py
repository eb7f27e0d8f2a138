"""Thread rules: status, read state, customer, subject, reply-from, ordering and row ids."""

from __future__ import annotations

import random
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest

from delightbridge.sync.parse import parse_message
from delightbridge.sync.threads import (
    NO_SUBJECT,
    SenderIdentity,
    ThreadSummary,
    email_row_id,
    header_addresses,
    reply_from,
    summarize_thread,
    thread_row_id,
)
from tests.syncengine.gmail_payload import MAILBOX, new_message, to_gmail

T0 = datetime(2026, 10, 1, 9, 0)


@dataclass(frozen=True)
class Row:
    """A message as the engine would load it from an ``emails`` row."""

    gmail_message_id: str
    internal_date: datetime
    label_ids: list[str] | None
    subject: str | None = "Refund please"
    from_email: str = "kim@customer.example"
    from_name: str = "Kim"
    to_email: str = MAILBOX
    direction: str = "inbound"
    to_header: str | None = None
    cc_header: str | None = None


def inbound(mid: str, minutes: int, *labels: str, **changes: Any) -> Row:
    return replace(Row(mid, T0 + timedelta(minutes=minutes), list(labels)), **changes)


def outbound(mid: str, minutes: int, *labels: str, **changes: Any) -> Row:
    row = Row(
        mid,
        T0 + timedelta(minutes=minutes),
        list(labels),
        from_email=MAILBOX,
        from_name="Support",
        to_email="kim@customer.example",
        direction="outbound",
    )
    return replace(row, **changes)


@pytest.mark.parametrize(
    ("newest_labels", "status", "is_read"),
    [
        (("INBOX", "UNREAD"), "inbox", False),
        (("INBOX",), "inbox", True),
        (("INBOX", "SENT"), "inbox", True),
        (("SENT",), "sent", True),
        (("SENT", "UNREAD"), "sent", False),
        (("CATEGORY_UPDATES", "UNREAD"), "archived", False),
        ((), "archived", True),
        (("IMPORTANT", "Label_7"), "archived", True),
    ],
)
def test_status_and_read_state_follow_the_newest_message(
    newest_labels: tuple[str, ...], status: str, is_read: bool
) -> None:
    messages = [
        inbound("18a", 0, "INBOX", "UNREAD"),  # older labels must not matter
        Row("18b", T0 + timedelta(hours=1), list(newest_labels)),
    ]
    summary = summarize_thread(messages, MAILBOX)
    assert (summary.status, summary.is_read) == (status, is_read)
    assert summary.last_message_at == T0 + timedelta(hours=1)


@pytest.mark.parametrize(
    ("messages", "customer"),
    [
        # Customer wrote first.
        ([inbound("1", 0), outbound("2", 5)], ("kim@customer.example", "Kim")),
        # The mailbox wrote first: the customer is whoever answered first.
        (
            [
                outbound("1", 0),
                inbound("2", 5, from_email="lee@other.example", from_name="Lee"),
                inbound("3", 9, from_email="kim@customer.example", from_name="Kim"),
            ],
            ("lee@other.example", "Lee"),
        ),
        # No display name: the address is the name.
        ([inbound("1", 0, from_name="")], ("kim@customer.example", "kim@customer.example")),
        # An "inbound" row from the mailbox's own address (sent to self) is no customer.
        (
            [inbound("1", 0, from_email="Support@Noji.Example", to_email="kim@customer.example",
                     to_header="Kim <kim@customer.example>")],
            ("kim@customer.example", "kim@customer.example"),
        ),
        # Nobody answered: the first recipient other than the mailbox.
        (
            [outbound("1", 0, to_header="support@noji.example, Ann <Ann@Client.example>, b@c.e")],
            ("ann@client.example", "ann@client.example"),
        ),
        # No recipients in the first message: the next message's.
        (
            [outbound("1", 0, to_email=""), outbound("2", 1, to_email="z@z.example")],
            ("z@z.example", "z@z.example"),
        ),
        # Nothing at all: the mailbox itself.
        ([outbound("1", 0, to_email="")], (MAILBOX, MAILBOX)),
        # An inbound message without a sender address cannot be the customer.
        (
            [inbound("1", 0, from_email="", from_name="Unknown"), inbound("2", 1)],
            ("kim@customer.example", "Kim"),
        ),
        (
            [inbound("1", 0, from_email="unknown@example.com"), inbound("2", 1)],
            ("kim@customer.example", "Kim"),
        ),
    ],
)
def test_customer(messages: list[Row], customer: tuple[str, str]) -> None:
    summary = summarize_thread(messages, MAILBOX)
    assert (summary.customer_email, summary.customer_name) == customer


def test_customer_is_the_first_inbound_by_date_not_by_list_order() -> None:
    messages = [
        inbound("3", 30, from_email="late@x.example", from_name="Late"),
        inbound("2", 10, from_email="early@x.example", from_name="Early"),
    ]
    assert summarize_thread(messages, MAILBOX).customer_email == "early@x.example"


@pytest.mark.parametrize(
    ("subjects", "expected"),
    [
        (["Refund please", "Re: Refund please"], "Re: Refund please"),
        (["Re: Something", ""], NO_SUBJECT),
        (["First", "  "], NO_SUBJECT),
        (["Multi\r\nline"], "Multi line"),
        (["Known", None], None),  # the newest was written by the web app: keep the stored one
    ],
)
def test_subject_is_the_newest_message_subject(subjects: list[str | None],
                                                expected: str | None) -> None:
    messages = [inbound(str(i), i, "INBOX", subject=s) for i, s in enumerate(subjects)]
    assert summarize_thread(messages, MAILBOX).subject == expected


def test_unknown_labels_of_the_newest_message_leave_status_and_read_state() -> None:
    """A row the web app wrote before the service took over carries no labels here: the
    thread's status and read state are not recomputed from partial knowledge."""
    messages = [inbound("1", 0, "INBOX", "UNREAD"), Row("2", T0 + timedelta(hours=1), None)]
    summary = summarize_thread(messages, MAILBOX)
    assert (summary.status, summary.is_read) == (None, None)
    assert summary.last_message_at == T0 + timedelta(hours=1)
    # Once the newest message is known, its labels decide again.
    known = summarize_thread([*messages, inbound("3", 90, "SENT")], MAILBOX)
    assert (known.status, known.is_read) == ("sent", True)


IDENTITIES = [
    SenderIdentity("Support@Noji.example", is_default=True, is_enabled=True),
    SenderIdentity("billing@noji.example", is_default=False, is_enabled=True),
    SenderIdentity("old@noji.example", is_default=False, is_enabled=False),
]


@pytest.mark.parametrize(
    ("to", "cc", "identities", "current", "expected"),
    [
        # An enabled identity among the recipients: To first, then Cc.
        ("Noji Billing <Billing@noji.example>", None, IDENTITIES, None, "billing@noji.example"),
        ("kim@x.example", "billing@noji.example", IDENTITIES, "support@noji.example",
         "billing@noji.example"),
        ('"Doe, J" <j@x.example>, support@noji.example', "billing@noji.example", IDENTITIES,
         None, "support@noji.example"),
        # A disabled identity does not count; the agent's current choice, still enabled, stays.
        ("old@noji.example", None, IDENTITIES, "Billing@noji.example", "billing@noji.example"),
        # The current value no longer an enabled identity: the default one.
        ("old@noji.example", None, IDENTITIES, "old@noji.example", "support@noji.example"),
        (None, None, IDENTITIES, None, "support@noji.example"),
        # No enabled default: the first enabled identity; none at all: the mailbox.
        (None, None, IDENTITIES[1:], None, "billing@noji.example"),
        (None, None, [], "billing@noji.example", MAILBOX),
        ("garbage <<<", "also, garbage", IDENTITIES[2:], None, MAILBOX),
    ],
)
def test_reply_from_follows_the_web_apps_rule(
    to: str | None, cc: str | None, identities: list[SenderIdentity], current: str | None,
    expected: str,
) -> None:
    newest = inbound("9", 9, "INBOX", to_header=to, cc_header=cc)
    assert reply_from(newest, identities, current, MAILBOX) == expected
    summary = summarize_thread([inbound("1", 0), newest], MAILBOX, identities, current)
    assert summary.reply_from_email == expected


def test_header_addresses_reads_headers_as_written() -> None:
    assert header_addresses('"Kim, K" <KIM@x.example>, b@y.example,  ,x') == [
        "kim@x.example", "b@y.example"]
    assert header_addresses(None) == []
    assert header_addresses("undisclosed-recipients:;") == []


def test_ties_are_broken_by_message_id_numerically_whatever_the_input_order() -> None:
    same_time = [
        inbound("ff", 0, "INBOX", "UNREAD", subject="first"),
        inbound("100", 0, "SENT", subject="second"),  # 0x100 > 0xff: the newest
    ]
    expected = ThreadSummary(
        subject="second",
        customer_email="kim@customer.example",
        customer_name="Kim",
        status="sent",
        is_read=True,
        last_message_at=T0,
        reply_from_email=MAILBOX,
    )
    for _ in range(5):
        random.shuffle(same_time)
        assert summarize_thread(same_time, MAILBOX) == expected


def test_aware_datetimes_are_compared_and_returned_as_naive_utc() -> None:
    kst = timezone(timedelta(hours=9))
    messages = [
        Row("1", datetime(2026, 10, 1, 18, 0, tzinfo=kst), ["INBOX"]),  # 09:00 UTC
        Row("2", datetime(2026, 10, 1, 9, 30), ["SENT"]),  # naive UTC, newer
        Row("3", datetime(2026, 10, 1, 9, 10, tzinfo=UTC), ["INBOX", "UNREAD"]),
    ]
    summary = summarize_thread(messages, MAILBOX)
    assert summary.status == "sent"
    assert summary.last_message_at == datetime(2026, 10, 1, 9, 30)
    assert summary.last_message_at.tzinfo is None


def test_empty_thread_has_no_summary() -> None:
    with pytest.raises(ValueError, match="without messages"):
        summarize_thread([], MAILBOX)


def test_parsed_messages_satisfy_the_protocol() -> None:
    question = new_message(sender="Kim Customer <kim@customer.example>", subject="Where is it?")
    question.set_content("Hello?")
    answer = new_message(
        sender=f"Support <{MAILBOX}>",
        to="kim@customer.example",
        subject="Re: Where is it?",
        message_id="<r1@noji.example>",
    )
    answer.set_content("On its way.")
    parsed = [
        parse_message(
            to_gmail(
                answer, message_id="18c2", label_ids=("SENT",), internal_date_ms=1_790_000_060_000
            ).resource,
            MAILBOX,
        ),
        parse_message(
            to_gmail(
                question,
                message_id="18c1",
                label_ids=("INBOX", "UNREAD"),
                internal_date_ms=1_790_000_000_000,
            ).resource,
            MAILBOX,
        ),
    ]

    summary = summarize_thread(parsed, MAILBOX)

    assert summary == ThreadSummary(
        subject="Re: Where is it?",
        customer_email="kim@customer.example",
        customer_name="Kim Customer",
        status="sent",
        is_read=True,
        last_message_at=datetime(2026, 9, 21, 14, 14, 20),
        reply_from_email=MAILBOX,
    )


def test_row_ids() -> None:
    assert thread_row_id("svc-noji", "18c1") == "thread-svc-noji-18c1"
    assert email_row_id("svc-noji", "18c1") == "email-svc-noji-18c1"
    with pytest.raises(ValueError, match="gmail_thread_id"):
        thread_row_id("svc-noji", "")
    with pytest.raises(ValueError, match="account_id"):
        email_row_id("", "18c1")
