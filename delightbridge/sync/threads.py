"""Thread rules: the ``email_threads`` row a thread's messages imply, and row ids.

Pure functions. The rules are the web app's (the reference schema's comments, and its
own sync), where they serve its users:

* ``status``: ``'inbox'`` if the newest message has INBOX, else ``'sent'`` if it has SENT,
  else ``'archived'``; ``is_read``: the newest message lacks UNREAD.
* ``subject``: the newest message's subject, ``'(no subject)'`` when it has none.
* ``customer_email`` / ``customer_name``: the sender of the first inbound message.
* ``reply_from_email``: the enabled sender identity found in the newest message's To or
  Cc; else the current value if still an enabled identity; else the default identity;
  else the service's own address.

and where the web app says nothing, or its rule is a bug for its users, this module
decides (documented on ``summarize_thread``; the README lists each such decision).
"""

from __future__ import annotations

import email.utils
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Literal, Protocol

from delightbridge.sync.mime_text import clean_line
from delightbridge.sync.parse import UNKNOWN_SENDER

__all__ = [
    "NO_SUBJECT",
    "SenderIdentity",
    "ThreadMessage",
    "ThreadSummary",
    "email_row_id",
    "reply_from",
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
    row (``sent_at`` as ``internal_date``, the rest by column name). ``label_ids`` and
    ``subject`` are ``None`` for a row the service knows nothing more of (written by the
    web app before the service took over): what depends on them is then left as it is.
    """

    @property
    def gmail_message_id(self) -> str: ...
    @property
    def internal_date(self) -> datetime: ...
    @property
    def label_ids(self) -> Sequence[str] | None: ...
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
    @property
    def to_header(self) -> str | None: ...
    @property
    def cc_header(self) -> str | None: ...


@dataclass(frozen=True, slots=True)
class SenderIdentity:
    """A ``service_sender_identities`` row: an address the service may answer from."""

    email: str
    is_default: bool
    is_enabled: bool


@dataclass(frozen=True, slots=True)
class ThreadSummary:
    """The ``email_threads`` columns derived from the thread's messages.

    ``None``: unknown from what the service holds; the stored value stays.
    """

    subject: str | None
    customer_email: str
    customer_name: str
    status: ThreadStatus | None
    is_read: bool | None
    last_message_at: datetime  # UTC, naive, like emails.sent_at
    reply_from_email: str


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
        if (message.direction == "inbound" and sender and sender != UNKNOWN_SENDER
                and not _same_address(sender, mailbox_address)):
            return sender, clean_line(message.from_name) or sender
    for message in ordered:
        recipients = header_addresses(message.to_header) or [clean_line(message.to_email)]
        for recipient in recipients:
            address = recipient.lower()
            if address and not _same_address(address, mailbox_address):
                return address, address
    mailbox = clean_line(mailbox_address).lower()
    return mailbox, mailbox


def header_addresses(value: str | None) -> list[str]:
    """The addresses of an address header as written (To, Cc), lower-cased, in order."""
    if not value:
        return []
    try:
        pairs = email.utils.getaddresses([clean_line(value)])
    except Exception:  # the stdlib parser has had crashes on hostile input
        return []
    found = (clean_line(address).strip("<>").replace(" ", "").lower() for _, address in pairs)
    return list(dict.fromkeys(a for a in found if "@" in a))


def _normalized(address: str | None) -> str:
    return (address or "").strip().lower()


def reply_from(newest: ThreadMessage, identities: Iterable[SenderIdentity],
               current: str | None, mailbox_address: str) -> str:
    """``email_threads.reply_from_email``, lower-cased (the web app's rule).

    The first enabled identity among the newest message's To, then Cc, recipients; else
    ``current`` (an agent's choice) while it is still an enabled identity; else the
    default identity if enabled, else the first enabled one; else the mailbox itself.
    """
    known = list(identities)
    enabled = [_normalized(i.email) for i in known if i.is_enabled]
    for address in [*header_addresses(newest.to_header), *header_addresses(newest.cc_header)]:
        if address in enabled:
            return address
    if _normalized(current) in enabled:
        return _normalized(current)
    default = next((i for i in known if i.is_default and i.is_enabled), None)
    if default is not None:
        return _normalized(default.email)
    return enabled[0] if enabled else _normalized(mailbox_address)


def summarize_thread(messages: Sequence[ThreadMessage], mailbox_address: str,
                     identities: Iterable[SenderIdentity] = (),
                     current_reply_from: str | None = None) -> ThreadSummary:
    """The ``email_threads`` row for a thread of (mirrored) messages.

    Order: oldest to newest by ``internal_date``; equal dates are ordered by Gmail
    message id (numerically for Gmail's hex ids), so the result never depends on the
    order of ``messages``. Aware datetimes are compared (and returned) as naive UTC.

    * ``status`` / ``is_read``: from the newest message's labels (web app rules);
      ``None`` (keep the stored values) when the newest message's labels are unknown.
    * ``subject``: the newest message's (web app rule), ``'(no subject)'`` when blank;
      ``None`` (keep) when unknown.
    * ``customer_email`` / ``customer_name``: the sender of the first inbound message
      that has a sender address other than the mailbox; its ``from_name`` (else the
      address) is the name. When no message qualifies (a thread the mailbox started and
      nobody answered), the first recipient other than the mailbox, in message order,
      with the address as the name; when there is none, the mailbox itself. (The web
      app falls back to the newest message's sender: the support address shown as the
      customer, a bug for its users.)
    * ``last_message_at``: the newest message's ``internal_date``.
    * ``reply_from_email``: :func:`reply_from` of the newest message.

    The caller passes only messages it mirrors (``parse.is_mirrored``). Raises
    ``ValueError`` for an empty thread: it has no row.
    """
    if not messages:
        raise ValueError("a thread without messages has no summary")
    ordered = sorted(messages, key=_order_key)
    newest = ordered[-1]
    status: ThreadStatus | None = None
    is_read: bool | None = None
    if newest.label_ids is not None:
        labels = set(newest.label_ids)
        if "INBOX" in labels:
            status = "inbox"
        elif "SENT" in labels:
            status = "sent"
        else:
            status = "archived"
        is_read = "UNREAD" not in labels
    subject = None if newest.subject is None else (clean_line(newest.subject) or NO_SUBJECT)
    customer_email, customer_name = _customer(ordered, mailbox_address)
    return ThreadSummary(
        subject=subject,
        customer_email=customer_email,
        customer_name=customer_name,
        status=status,
        is_read=is_read,
        last_message_at=_utc_naive(newest.internal_date),
        reply_from_email=reply_from(newest, identities, current_reply_from, mailbox_address),
    )
