"""The subset of Gmail's search syntax (``q``) the simulator understands.

Supported: ``after:`` / ``before:`` (``YYYY/MM/DD`` read as midnight US Pacific, as
Gmail documents, or epoch seconds), ``newer_than:`` / ``older_than:`` (``3d``,
``2m``, ``1y``), ``in:`` (inbox, sent, trash, spam, drafts, starred, important,
anywhere), ``label:`` (system or user label, by id or name), ``is:`` (unread, read,
starred, important), ``from:``, ``to:``, ``subject:``, ``rfc822msgid:``,
``has:attachment``, ``-`` negation, quoted phrases, and bare words (matched in
the subject, sender and snippet). Terms are ANDed.
"""

from __future__ import annotations

import re
import shlex
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from gmailsim import errors
from gmailsim import labels as L
from gmailsim.model import MailboxState, StoredMessage

Predicate = Callable[[StoredMessage], bool]

try:
    _PACIFIC: timezone | ZoneInfo = ZoneInfo("America/Los_Angeles")
except ZoneInfoNotFoundError:  # pragma: no cover - minimal images without tzdata
    _PACIFIC = timezone(timedelta(hours=-8))

_DATE = re.compile(r"^(\d{4})[/-](\d{1,2})[/-](\d{1,2})$")
_RELATIVE = re.compile(r"^(\d+)([dmy])$")
_IN = {
    "inbox": L.INBOX, "sent": L.SENT, "trash": L.TRASH, "spam": L.SPAM, "drafts": L.DRAFT,
    "draft": L.DRAFT, "starred": L.STARRED, "important": L.IMPORTANT, "chats": L.CHAT,
}


@dataclass(frozen=True, slots=True)
class Query:
    predicates: tuple[Predicate, ...]
    reaches_spam_trash: bool

    def matches(self, message: StoredMessage) -> bool:
        return all(p(message) for p in self.predicates)


def _epoch_ms(value: str, operator: str) -> int:
    if value.isdigit():
        return int(value) * 1000
    match = _DATE.match(value)
    if not match:
        raise errors.bad_request(f"Invalid value for {operator}: {value}")
    year, month, day = (int(g) for g in match.groups())
    try:
        return int(datetime(year, month, day, tzinfo=_PACIFIC).timestamp() * 1000)
    except ValueError:
        raise errors.bad_request(f"Invalid value for {operator}: {value}") from None


def _relative_ms(value: str) -> int:
    match = _RELATIVE.match(value.lower())
    if not match:
        raise errors.bad_request(f"Invalid relative date: {value}")
    amount, unit = int(match.group(1)), match.group(2)
    days = {"d": 1, "m": 30, "y": 365}[unit] * amount
    return days * 86_400_000


def _label_id(mailbox: MailboxState, value: str) -> str | None:
    upper = value.upper()
    if upper in L.SYSTEM_LABELS:
        return upper
    if upper.startswith("CATEGORY_") or f"CATEGORY_{upper}" in L.CATEGORIES:
        return upper if upper in L.CATEGORIES else f"CATEGORY_{upper}"
    if value in mailbox.user_labels:
        return value
    wanted = value.lower().replace("-", " ")
    for label in mailbox.user_labels.values():
        if label.name.lower().replace("-", " ").replace("/", " ") == wanted.replace("/", " "):
            return label.id
    return None


def _has_attachment(message: StoredMessage) -> bool:
    return any(p.filename for p in message.parsed.walk())


def _text_contains(needle: str) -> Predicate:
    needle = needle.lower()

    def check(message: StoredMessage) -> bool:
        parsed = message.parsed
        haystack = " ".join(
            (parsed.header("Subject") or "", parsed.header("From") or "", parsed.snippet)
        ).lower()
        return needle in haystack

    return check


def _header_contains(name: str, needle: str) -> Predicate:
    needle = needle.lower()
    return lambda m: needle in (m.parsed.header(name) or "").lower()


def _term(mailbox: MailboxState, operator: str, value: str, now_ms: int  # noqa: C901
          ) -> tuple[Predicate, bool]:
    """A predicate for one ``operator:value`` and whether it reaches spam/trash."""
    if operator == "after":
        limit = _epoch_ms(value, operator)
        return (lambda m: m.internal_date >= limit), False
    if operator == "before":
        limit = _epoch_ms(value, operator)
        return (lambda m: m.internal_date < limit), False
    if operator == "newer_than":
        limit = now_ms - _relative_ms(value)
        return (lambda m: m.internal_date >= limit), False
    if operator == "older_than":
        limit = now_ms - _relative_ms(value)
        return (lambda m: m.internal_date < limit), False
    if operator == "in":
        if value.lower() == "anywhere":
            return (lambda m: True), True
        label = _IN.get(value.lower()) or _label_id(mailbox, value)
        return (lambda m: label in m.labels), label in (L.SPAM, L.TRASH)
    if operator == "label":
        label = _label_id(mailbox, value)
        return (lambda m: label is not None and label in m.labels), label in (L.SPAM, L.TRASH)
    if operator == "is":
        state = value.lower()
        if state == "read":
            return (lambda m: L.UNREAD not in m.labels), False
        label = _IN.get(state) or state.upper()
        return (lambda m: label in m.labels), False
    if operator == "has" and value.lower() == "attachment":
        return _has_attachment, False
    if operator in ("from", "to", "subject", "cc"):
        return _header_contains(operator.capitalize(), value), False
    if operator == "rfc822msgid":
        wanted = value.strip("<>")
        return (lambda m: (m.parsed.header("Message-ID") or "").strip().strip("<>")
                == wanted), False
    return _text_contains(f"{operator}:{value}"), False


def _negated(predicate: Predicate) -> Predicate:
    return lambda message: not predicate(message)


def parse_query(q: str, mailbox: MailboxState, now_ms: int) -> Query:
    try:
        tokens = shlex.split(q)
    except ValueError:
        tokens = q.split()
    predicates: list[Predicate] = []
    reaches = False
    for token in tokens:
        negate = token.startswith("-") and len(token) > 1
        body = token[1:] if negate else token
        operator, sep, value = body.partition(":")
        if sep and value and operator.isidentifier():
            predicate, touches = _term(mailbox, operator.lower(), value, now_ms)
        else:
            predicate, touches = _text_contains(body), False
        reaches = reaches or (touches and not negate)
        predicates.append(_negated(predicate) if negate else predicate)
    return Query(tuple(predicates), reaches)
