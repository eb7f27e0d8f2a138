"""Thread rules: the ``email_threads`` row a thread's messages imply, and row ids.

Pure functions. The rules are the web app's (see the reference schema):

* ``status``: ``'inbox'`` if the newest message has INBOX, else ``'sent'`` if it has SENT,
  else ``'archived'``; ``is_read``: the newest message lacks UNREAD.
* ``customer_email`` / ``customer_name``: the sender of the first inbound message.

and where the web app says nothing, this module decides (documented on
``summarize_thread``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Literal, Protocol

from syncengine.mime_text import clean_line

__all__ = [
    "NO_SUBJECT",
    "ThreadMessage",
    "ThreadSummary",
    "email_row_id",
    "summarize_thread",
    "thread_row_id",
]

NO_SUBJECT = "(no subject)"

ThreadStatus = Literal["inbox", "sent", "archived"]


def thread_row_id(account_id: str, gmail_thread_id: str) -> str:
    """``email_threads.id``: ``'thread-<account id>-<gmail thread id>'``."""
    _require(account_id=account_id, gmail_thread_id=gmail_thread_id)
    return f"thread-{account_id}-{gmail_thread_id}"


def email_row_id(account_id: str, gmail_message_id: str) -> str:
    """``emails.id``: ``'email-<account id>-<gmail message id>'``."""
    _require(account_id=account_id, gmail_message_id=gmail_message_id)
    return f"email-{account_id}-{gmail_message_id}"


def _require(**values: str) -> None:
    for name, value in values.items():
        if not value:
            raise ValueError(f"{name} must not be empty")


class ThreadMessage(Protocol):
    """What ``summarize_thread`` reads of a message.

    ``ParsedMessage`` satisfies it, and so does any object built from an ``emails``
    row (``sent_at`` as ``internal_date``, the rest by column name).
    """

    @property
    def gmail_message_id(self) -> str: ...
    @property
    def internal_date(self) -> datetime: ...
    @property
    def label_ids(self) -> Sequence[str]: ...
    @property
    def subject(self) -> str | None: ...
    @property
    def from_email(self) -> str: ...
    @property
    def from_name(self) -> str: ...
    @property
    def to_email(self) -> str: ...
    @property
    def direction(self) -> str: ...


@dataclass(frozen=True, slots=True)
class ThreadSummary:
    """The ``email_threads`` columns derived from the thread's messages."""

    subject: str
    customer_email: str
    customer_name: str
    status: ThreadStatus
    is_read: bool
    last_message_at: datetime  # UTC, naive, like emails.sent_at


def _utc_naive(moment: datetime) -> datetime:
    if moment.tzinfo is None:
        return moment
    return moment.astimezone(UTC).replace(tzinfo=None)


def _order_key(message: ThreadMessage) -> tuple[datetime, int, str]:
    # Gmail message ids are hexadecimal numbers that grow with time; comparing length
    # first orders them numerically, and any other string still orders totally.
    message_id = message.gmail_message_id
    return (_utc_naive(message.internal_date), len(message_id), message_id)


def _same_address(a: str, b: str) -> bool:
    return bool(a) and a.strip().lower() == b.strip().lower()


def _customer(ordered: Sequence[ThreadMessage], mailbox_address: str) -> tuple[str, str]:
    for message in ordered:
        sender = clean_line(message.from_email).lower()
        if message.direction == "inbound" and sender and not _same_address(sender, mailbox_address):
            return sender, clean_line(message.from_name) or sender
    for message in ordered:
        for recipient in message.to_email.split(","):
            address = clean_line(recipient).lower()
            if address and not _same_address(address, mailbox_address):
                return address, address
    mailbox = clean_line(mailbox_address).lower()
    return mailbox, mailbox


def summarize_thread(messages: Sequence[ThreadMessage], mailbox_address: str) -> ThreadSummary:
    """The ``email_threads`` row for a thread of (mirrored) messages.

    Order: oldest to newest by ``internal_date``; equal dates are ordered by Gmail
    message id (numerically for Gmail's hex ids), so the result never depends on the
    order of ``messages``. Aware datetimes are compared (and returned) as naive UTC.

    * ``status`` / ``is_read``: from the newest message's labels (web app rules).
    * ``subject``: the first message's subject; when it is blank, the next message's
      that has one; ``'(no subject)'`` when none has.
    * ``customer_email`` / ``customer_name``: the sender of the first inbound message
      that has a sender address other than the mailbox; its ``from_name`` (else the
      address) is the name. When no message qualifies (a thread the mailbox started and
      nobody answered), the first recipient other than the mailbox, in message order,
      with the address as the name; when there is none, the mailbox itself.
    * ``last_message_at``: the newest message's ``internal_date``.

    The caller passes only messages it mirrors (``parse.is_mirrored``). Raises
    ``ValueError`` for an empty thread: it has no row.
    """
    if not messages:
        raise ValueError("a thread without messages has no summary")
    ordered = sorted(messages, key=_order_key)
    newest = ordered[-1]
    labels = set(newest.label_ids)
    status: ThreadStatus
    if "INBOX" in labels:
        status = "inbox"
    elif "SENT" in labels:
        status = "sent"
    else:
        status = "archived"
    subject = next(
        (clean_line(m.subject) for m in ordered if m.subject and clean_line(m.subject)),
        NO_SUBJECT,
    )
    customer_email, customer_name = _customer(ordered, mailbox_address)
    return ThreadSummary(
        subject=subject,
        customer_email=customer_email,
        customer_name=customer_name,
        status=status,
        is_read="UNREAD" not in labels,
        last_message_at=_utc_naive(newest.internal_date),
    )
