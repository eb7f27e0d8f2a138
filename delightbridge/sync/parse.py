"""Turn a Gmail API v1 ``users.messages`` resource (``format=full``) into an ``emails`` row.

Pure: no I/O. ``parse_message`` never raises on malformed content inside a resource;
what it cannot read it leaves out (or replaces with U+FFFD) and describes in
``ParsedMessage.problems``, which the engine stores in ``emails.parse_problems``.

Shape of the input (the discovery document's ``Message`` / ``MessagePart``)::

    {"id", "threadId", "labelIds": [...], "snippet", "historyId": "<uint64>",
     "internalDate": "<epoch ms>", "sizeEstimate": int,
     "payload": MessagePart}
    MessagePart = {"partId": "" | "0" | "0.1" ..., "mimeType", "filename",
                   "headers": [{"name", "value"}], "body": {"attachmentId", "size",
                   "data": base64url of the part's octets, transfer encoding removed},
                   "parts": [MessagePart, ...]}

The root part's headers are the message's headers. Gmail leaves a part's content out
(``body.attachmentId`` instead of ``body.data``) for attachments and for large parts,
large text bodies included; such bodies can be fetched by the engine and passed back
in through ``fetched_bodies`` (see ``ParsedMessage.missing_body_parts``).
"""

from __future__ import annotations

import email.message
import email.utils
import functools
import hashlib
import html
import json
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Final, Literal

from delightbridge.sync.mime_text import (
    b64url_decode,
    clean_line,
    clean_text,
    decode_bytes,
    decode_rfc2047,
    plain_to_html,
)

__all__ = [
    "EXCLUDED_LABELS",
    "Address",
    "Attachment",
    "BodyPartRef",
    "ParsedMessage",
    "is_mirrored",
    "parse_message",
    "render_addresses",
]

EXCLUDED_LABELS: Final = frozenset({"SPAM", "TRASH", "DRAFT"})
"""Messages carrying any of these labels are not mirrored."""

UNKNOWN_SENDER: Final = "unknown@example.com"
"""``emails.from_email`` of a message without a sender address (the web app's value)."""

MAX_DEPTH: Final = 100
"""Parts nested deeper than this are not read (real mail nests a handful of levels)."""
MAX_PARTS: Final = 5000
"""At most this many MIME parts are read per message."""
MAX_BODY_CHARS: Final = 5_000_000
"""``body_html`` and ``body_text`` are each cut to this many characters."""
MAX_PROBLEMS: Final = 50
"""At most this many problem notes are kept per message (plus one saying how many more)."""
_MAX_HEADER_CHARS: Final = 20_000
_MAX_LABEL_CHARS: Final = 500

_EPOCH: Final = datetime(1970, 1, 1)
_MIME_TYPE = re.compile(r"^[a-z0-9!#$&^_.+-]+/[a-z0-9!#$&^_.+-]+$")
_EMAIL_IN_TEXT = re.compile(r"[^\s<>,;:\"()\[\]]+@[^\s<>,;:\"()\[\]]+")
_EMPTY_GROUP = re.compile(r"^[^@<>]*:\s*;?$")  # "undisclosed-recipients:;"


def is_mirrored(label_ids: Iterable[str]) -> bool:
    """Whether a message with these labels belongs in the mirror.

    Every message is mirrored except spam, trash (as ``messages.list`` excludes them
    by default) and drafts (not mail yet).
    """
    return EXCLUDED_LABELS.isdisjoint(label_ids)


# ------------------------------------------------------------------------ the result


@dataclass(frozen=True, slots=True)
class Address:
    """One mailbox of an address header. ``email`` is lower-cased, ``name`` may be ''."""

    name: str
    email: str

    @property
    def display_name(self) -> str:
        """The name to show: the display name, else the address."""
        return self.name or self.email


def render_addresses(addresses: Iterable[Address]) -> str:
    """The addresses (no names) as one text column: ``'a@x.example, b@y.example'``."""
    return ", ".join(a.email for a in addresses if a.email)


@dataclass(frozen=True, slots=True)
class Attachment:
    """Metadata of one non-body MIME part (file, inline image, forwarded message...)."""

    filename: str
    mime_type: str
    size: int
    attachment_id: str | None
    content_id: str | None
    inline: bool
    part_id: str = ""

    def to_json(self) -> dict[str, Any]:
        """The element stored in the ``emails.attachments`` jsonb array."""
        return {
            "filename": self.filename,
            "mime_type": self.mime_type,
            "size": self.size,
            "attachment_id": self.attachment_id,
            "content_id": self.content_id,
            "inline": self.inline,
            "part_id": self.part_id,
        }

    def _hash_json(self) -> dict[str, Any]:
        # Gmail hands out a new attachmentId on every fetch of the same message, so it
        # cannot take part in a hash meant to be stable for identical content.
        data = self.to_json()
        del data["attachment_id"]
        return data


@dataclass(frozen=True, slots=True)
class BodyPartRef:
    """A text body part whose content Gmail left out (``body.attachmentId``)."""

    part_id: str
    mime_type: str
    attachment_id: str
    size: int


@dataclass(frozen=True, slots=True)
class ParsedMessage:
    """Everything the sync stores about one message; all strings are storable text."""

    gmail_message_id: str
    gmail_thread_id: str
    history_id: int
    internal_date: datetime  # UTC, naive, millisecond precision
    label_ids: tuple[str, ...]
    snippet: str
    size_estimate: int | None
    subject: str
    sender: Address
    to: tuple[Address, ...]
    cc: tuple[Address, ...]
    bcc: tuple[Address, ...]
    reply_to: tuple[Address, ...]
    date_header: datetime | None  # UTC, naive
    to_header: str | None  # the To header as written: unfolded, trimmed; None when absent
    cc_header: str | None
    rfc_message_id: str | None
    in_reply_to: str | None
    references: str | None
    body_html: str
    body_text: str | None
    attachments: tuple[Attachment, ...]
    direction: Literal["inbound", "outbound"]
    problems: tuple[str, ...]
    content_hash: str
    missing_body_parts: tuple[BodyPartRef, ...] = field(default=())

    mailbox: str = ""  # the mailbox's own address, lower-cased

    # The web app's columns, by the web app's rules.
    @property
    def from_email(self) -> str:
        """``emails.from_email`` (NOT NULL): the sender's address, else the web app's
        placeholder for a sender without one."""
        return self.sender.email or UNKNOWN_SENDER

    @property
    def from_name(self) -> str:
        """``emails.from_name`` (NOT NULL): display name, else address, else 'Unknown'."""
        return self.sender.display_name or "Unknown"

    @property
    def to_email(self) -> str:
        """``emails.to_email`` (NOT NULL): one address, the first of To; the mailbox's own
        when To has none."""
        return self.to[0].email if self.to else self.mailbox

    @property
    def cc_email(self) -> str:
        return render_addresses(self.cc)

    @property
    def bcc_email(self) -> str:
        return render_addresses(self.bcc)

    @property
    def reply_to_email(self) -> str:
        """``emails.reply_to``."""
        return render_addresses(self.reply_to)

    @property
    def sent_at(self) -> datetime:
        """``emails.sent_at``: Gmail's internalDate."""
        return self.internal_date

    @property
    def attachments_json(self) -> list[dict[str, Any]]:
        """``emails.attachments``."""
        return [a.to_json() for a in self.attachments]

    @property
    def is_mirrored(self) -> bool:
        return is_mirrored(self.label_ids)


# ----------------------------------------------------------------- defensive access


def _str(value: Any) -> str | None:
    return value if isinstance(value, str) else None


def _int(value: Any) -> int | None:
    """An integer from a JSON number or decimal string (Gmail sends int64 as strings)."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, str) and 0 < len(value) <= 30:
        text = value.strip()
        if text.lstrip("-").isdigit() and text.isascii():
            return int(text)
    return None


def _mapping(value: Any) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}


def _list(value: Any) -> Sequence[Any]:
    return value if isinstance(value, list | tuple) else ()


class _Problems:
    def __init__(self) -> None:
        self.notes: list[str] = []
        self.dropped = 0

    def add(self, note: str) -> None:
        note = clean_line(note)[:500]
        if note in self.notes:
            return
        if len(self.notes) < MAX_PROBLEMS:
            self.notes.append(note)
        else:
            self.dropped += 1

    def result(self) -> tuple[str, ...]:
        if self.dropped:
            return (*self.notes, f"... and {self.dropped} more problems")
        return tuple(self.notes)


class _Headers:
    """Case-insensitive view of a part's ``headers`` list (first occurrence wins)."""

    def __init__(self, raw: Any) -> None:
        self._values: dict[str, list[str]] = {}
        for item in _list(raw):
            # JSON objects are dicts: the Mapping check (an ABC, slow) only for others.
            entry = item if type(item) is dict else _mapping(item)
            name, value = entry.get("name"), entry.get("value")
            if isinstance(name, str) and isinstance(value, str):
                self._values.setdefault(name.strip().lower(), []).append(value[:_MAX_HEADER_CHARS])

    def get(self, name: str) -> str | None:
        values = self._values.get(name.lower())
        return values[0] if values else None

    def count(self, name: str) -> int:
        return len(self._values.get(name.lower(), ()))


# --------------------------------------------------------------------------- headers


def _header_text(value: str | None, problems: _Problems, what: str) -> str:
    """An unstructured header (Subject...) decoded and made single-line."""
    if value is None:
        return ""
    decoded, notes = decode_rfc2047(value)
    for note in notes:
        problems.add(f"{what}: {note}")
    return clean_line(decoded)


def _getaddresses(flat: str) -> tuple[tuple[str, str], ...]:
    """``email.utils.getaddresses`` (pure, and slow: a tenth of parsing): the same header
    value recurs across a thread and a mailbox (its own address, regular
    correspondents), so short values are remembered (at most ~4 MB)."""
    if len(flat) <= _CACHED_ADDRESS_CHARS:
        return _getaddresses_cached(flat)
    return _getaddresses_uncached(flat)


def _getaddresses_uncached(flat: str) -> tuple[tuple[str, str], ...]:
    try:
        return tuple(email.utils.getaddresses([flat]))
    except Exception:  # the stdlib parser has had crashes on hostile input
        return ()


_CACHED_ADDRESS_CHARS: Final = 1000
_getaddresses_cached = functools.lru_cache(maxsize=4096)(_getaddresses_uncached)


def _parse_addresses(value: str | None, problems: _Problems, what: str) -> tuple[Address, ...]:
    """Parse an address-list header (To, Cc...) into addresses with decoded names."""
    if value is None:
        return ()
    flat = clean_line(value)
    pairs = _getaddresses(flat)
    found: list[Address] = []
    for raw_name, raw_email in pairs:
        address = clean_line(raw_email).strip("<>").replace(" ", "").lower()
        if "@" not in address:
            continue
        name = _header_text(raw_name, problems, what)
        found.append(Address(name="" if name.lower() == address else name, email=address))
    if not found and flat and not _EMPTY_GROUP.match(flat):
        # Unparseable, but it may still contain addresses: salvage them.
        decoded = _header_text(flat, problems, what)
        found = [Address("", m.lower()) for m in _EMAIL_IN_TEXT.findall(decoded)]
        problems.add(f"{what}: could not parse the address list {decoded[:80]!r}")
    return tuple(dict.fromkeys(found))


def _parse_sender(headers: _Headers, problems: _Problems) -> Address:
    """The first From address (Sender when From has none)."""
    if headers.count("From") > 1:
        problems.add("several From headers; the first was used")
    for name in ("From", "Sender"):
        value = headers.get(name)
        addresses = _parse_addresses(value, problems, name)
        if addresses:
            return addresses[0]
        if value and name == "From":
            # A From without an address ("MAILER-DAEMON"): keep what it says as the name.
            return Address(name=_header_text(value, problems, name)[:200], email="")
    problems.add("no sender address (From header missing)")
    return Address(name="", email="")


def _parse_date_header(value: str | None, problems: _Problems) -> datetime | None:
    if not value:
        return None
    try:
        parsed = email.utils.parsedate_to_datetime(clean_line(value))
        if parsed.tzinfo is not None:
            parsed = parsed.astimezone(UTC).replace(tzinfo=None)
    except (TypeError, ValueError, OverflowError, IndexError):
        problems.add(f"unreadable Date header {clean_line(value)[:80]!r}")
        return None
    return parsed


_FOLD = re.compile(r"\r?\n[ \t]*")


def _as_written(value: str | None) -> str | None:
    """A header value as written (not decoded): each line break with the whitespace
    after it becomes one space (the web app's unfolding), control characters go, and
    the ends are trimmed; ``None`` when absent or blank."""
    if value is None:
        return None
    return clean_line(_FOLD.sub(" ", value)) or None


def _message_ids(value: str | None) -> str | None:
    """A Message-ID / In-Reply-To / References value, one line, ``None`` when empty."""
    if value is None:
        return None
    text = " ".join(clean_line(value).split())
    return text or None


# ------------------------------------------------------------------------ MIME walk


@dataclass
class _Walk:
    problems: _Problems
    fetched: Mapping[str, bytes | str]
    attachments: list[Attachment] = field(default_factory=list)
    missing: list[BodyPartRef] = field(default_factory=list)
    parts_seen: int = 0


@dataclass
class _Bodies:
    html: list[str] = field(default_factory=list)
    text: list[str] = field(default_factory=list)


def _part_label(part_id: str, depth: int, mime_type: str) -> str:
    name = part_id or ("(root)" if depth == 0 else "(no partId)")
    return f"part {name} ({mime_type})"


def _content_params(headers: _Headers) -> email.message.Message:
    """A throwaway stdlib message holding only the part's content headers, for params."""
    holder = email.message.Message()
    for name in ("Content-Type", "Content-Disposition"):
        value = headers.get(name)
        if value is not None:
            holder[name] = clean_line(value)
    return holder


def _declared_mime_type(part: Mapping[str, Any]) -> str | None:
    """The part's ``mimeType`` when well formed (Gmail's own reading of its headers)."""
    declared = (_str(part.get("mimeType")) or "").strip().lower()
    return declared if _MIME_TYPE.match(declared) else None


def _header_mime_type(params: email.message.Message) -> str:
    """The type its Content-Type header names, for a part whose ``mimeType`` is not usable."""
    try:
        from_header = params.get_content_type() if "Content-Type" in params else ""
    except Exception:
        from_header = ""
    return from_header if _MIME_TYPE.match(from_header) else "text/plain"


def _param(getter: Any, *args: Any) -> str | None:
    try:
        value = getter(*args)
    except Exception:
        return None
    return value if isinstance(value, str) else None


def _walk(part: Mapping[str, Any], depth: int, ctx: _Walk) -> _Bodies:
    """Collect the bodies under ``part``; record attachments in ``ctx``."""
    ctx.parts_seen += 1
    if ctx.parts_seen == MAX_PARTS + 1:
        ctx.problems.add(f"more than {MAX_PARTS} MIME parts; the rest were not read")
    if ctx.parts_seen > MAX_PARTS:
        return _Bodies()
    try:
        return _walk_part(part, depth, ctx)
    except Exception as exc:  # a safety net: one unreadable part must not stop a sync
        part_id = clean_line(_str(part.get("partId")) or "?")[:100]
        ctx.problems.add(f"part {part_id} could not be read ({type(exc).__name__})")
        return _Bodies()


def _walk_part(part: Mapping[str, Any], depth: int, ctx: _Walk) -> _Bodies:
    part_id = clean_line(_str(part.get("partId")) or "")[:100]
    headers = _Headers(part.get("headers"))
    # Content headers are read (slow: a stdlib Message) only where they matter: leaves,
    # and parts whose mimeType is unusable.
    params = None
    mime_type = _declared_mime_type(part)
    if mime_type is None:
        params = _content_params(headers)
        mime_type = _header_mime_type(params)
    children = [_mapping(child) for child in _list(part.get("parts"))]

    if mime_type.startswith("multipart/") and not children:
        return _Bodies()  # an empty container holds nothing to read
    if children and not mime_type.startswith("message/"):
        if depth >= MAX_DEPTH:
            ctx.problems.add(f"MIME parts nested deeper than {MAX_DEPTH} levels were not read")
            return _Bodies()
        results = [_walk(child, depth + 1, ctx) for child in children]
        if mime_type == "multipart/alternative":
            return _alternative(results)
        return _concatenate(results)

    if params is None:
        params = _content_params(headers)
    disposition = _param(params.get_content_disposition)
    filename = _filename(part, params, ctx.problems)
    if mime_type in ("text/plain", "text/html") and disposition != "attachment" and not filename:
        label = _part_label(part_id, depth, mime_type)
        text = _read_text(part, part_id, label, mime_type, params, ctx)
        if not text:
            return _Bodies()
        return _Bodies(html=[text]) if mime_type == "text/html" else _Bodies(text=[text])

    ctx.attachments.append(_attachment(part, part_id, mime_type, headers, disposition, filename))
    return _Bodies()


def _alternative(results: list[_Bodies]) -> _Bodies:
    """multipart/alternative: the last (richest) alternative of each kind."""
    html = next((r.html for r in reversed(results) if r.html), [])
    text = next((r.text for r in reversed(results) if r.text), [])
    return _Bodies(html=html, text=text)


def _concatenate(results: list[_Bodies]) -> _Bodies:
    """mixed, related, signed...: every child's body in order.

    When any child has HTML, children that only have plain text contribute it
    rendered as HTML, so that e.g. a text footer appended by a list still shows.
    """
    merged = _Bodies()
    any_html = any(r.html for r in results)
    for result in results:
        merged.text.extend(result.text)
        if result.html:
            merged.html.extend(result.html)
        elif any_html:
            merged.html.extend(plain_to_html(t) for t in result.text)
    return merged


def _filename(part: Mapping[str, Any], params: email.message.Message, problems: _Problems) -> str:
    raw = _str(part.get("filename")) or _param(params.get_filename) or ""
    return _header_text(raw, problems, "filename")[:1000]


def _read_text(
    part: Mapping[str, Any],
    part_id: str,
    label: str,
    mime_type: str,
    params: email.message.Message,
    ctx: _Walk,
) -> str:
    body = _mapping(part.get("body"))
    data = body.get("data")
    attachment_id = _str(body.get("attachmentId"))
    if data is None and attachment_id:
        fetched = ctx.fetched.get(attachment_id)
        if fetched is None:
            size = max(_int(body.get("size")) or 0, 0)
            ctx.missing.append(BodyPartRef(part_id, mime_type, clean_line(attachment_id), size))
            ctx.problems.add(f"{label}: content not included by Gmail ({size} bytes)")
            return ""
        data = fetched
    if isinstance(data, bytes):
        raw = data
    elif isinstance(data, str):
        raw, note = b64url_decode(data)
        if note:
            ctx.problems.add(f"{label}: {note}")
    else:
        if data is not None:
            ctx.problems.add(f"{label}: body data is not a string")
        return ""
    charset = _param(params.get_content_charset) if "Content-Type" in params else None
    text, note = decode_bytes(raw, charset)
    if note:
        ctx.problems.add(f"{label}: {note}")
    if "\x00" in text:
        ctx.problems.add(f"{label}: NUL characters were removed")
    return clean_text(text.replace("\r\n", "\n").replace("\r", "\n"))


def _attachment(
    part: Mapping[str, Any],
    part_id: str,
    mime_type: str,
    headers: _Headers,
    disposition: str | None,
    filename: str,
) -> Attachment:
    body = _mapping(part.get("body"))
    size = _int(body.get("size"))
    if size is None or size < 0:
        data = _str(body.get("data"))
        size = len(data) * 3 // 4 if data else 0
    content_id = clean_line(headers.get("Content-ID") or "").strip("<>").strip() or None
    attachment_id = clean_line(_str(body.get("attachmentId")) or "") or None
    inline = disposition == "inline" or (disposition is None and content_id is not None)
    return Attachment(
        filename=filename,
        mime_type=mime_type,
        size=min(size, 2**63 - 1),
        attachment_id=attachment_id,
        content_id=content_id[:1000] if content_id else None,
        inline=inline,
        part_id=part_id,
    )


def _cut(text: str, what: str, problems: _Problems) -> str:
    if len(text) <= MAX_BODY_CHARS:
        return text
    problems.add(f"{what} longer than {MAX_BODY_CHARS} characters was cut")
    return text[:MAX_BODY_CHARS]


def _read_bodies(
    payload: Mapping[str, Any], fetched: Mapping[str, bytes | str], problems: _Problems
) -> tuple[str, str | None, tuple[Attachment, ...], tuple[BodyPartRef, ...]]:
    ctx = _Walk(problems=problems, fetched=fetched)
    bodies = _walk(payload, 0, ctx)
    text = "\n".join(bodies.text) if bodies.text else None
    if bodies.html:
        body_html = "\n".join(bodies.html)
    else:
        body_html = plain_to_html(text) if text is not None else ""
    body_html = _cut(body_html, "HTML body", problems)
    if text is not None:
        text = _cut(text, "text body", problems)
    return body_html, text, tuple(ctx.attachments), tuple(ctx.missing)


# ------------------------------------------------------------------- resource level


def _internal_date(value: Any, fallback: datetime | None, problems: _Problems) -> datetime:
    millis = _int(value)
    if millis is not None:
        try:
            return _EPOCH + timedelta(milliseconds=millis)
        except OverflowError:
            pass
    problems.add(f"unreadable internalDate {str(value)[:40]!r}")
    return fallback if fallback is not None else _EPOCH


def _label_ids(value: Any) -> tuple[str, ...]:
    labels = (clean_line(v)[:_MAX_LABEL_CHARS] for v in _list(value) if isinstance(v, str))
    return tuple(dict.fromkeys(label for label in labels if label))


def _content_hash(body_html: str, body_text: str | None, attachments: Sequence[Attachment]) -> str:
    canonical = json.dumps(
        {
            "v": 1,
            "html": body_html,
            "text": body_text,
            "attachments": [a._hash_json() for a in attachments],
        },
        ensure_ascii=False,
        sort_keys=True,
        separators=(",", ":"),
    )
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()


def _required_id(resource: Mapping[str, Any], key: str) -> str:
    value = resource.get(key)
    if not isinstance(value, str) or not clean_line(value):
        raise ValueError(f"not a Gmail message resource: no {key!r}")
    return clean_line(value)


def parse_message(
    resource: Mapping[str, Any],
    mailbox_address: str,
    *,
    fetched_bodies: Mapping[str, bytes | str] | None = None,
) -> ParsedMessage:
    """Parse one ``format=full`` message resource for the mailbox ``mailbox_address``.

    ``fetched_bodies`` maps a body part's ``attachmentId`` to its content (bytes, or
    the base64url string ``messages.attachments.get`` returns), for the text bodies
    Gmail left out; see ``ParsedMessage.missing_body_parts``.

    Raises ``ValueError`` only when ``resource`` is not a message (no ``id`` or
    ``threadId``); anything wrong inside it is recorded in ``problems``.
    """
    if not isinstance(resource, Mapping):
        raise ValueError("not a Gmail message resource: not a JSON object")
    message_id = _required_id(resource, "id")
    thread_id = _required_id(resource, "threadId")
    problems = _Problems()

    payload = _mapping(resource.get("payload"))
    if not payload:
        problems.add("no payload: the message was not fetched with format=full")
    headers = _Headers(payload.get("headers"))

    subject = _header_text(headers.get("Subject"), problems, "Subject")
    sender = _parse_sender(headers, problems)
    to = _parse_addresses(headers.get("To"), problems, "To")
    cc = _parse_addresses(headers.get("Cc"), problems, "Cc")
    bcc = _parse_addresses(headers.get("Bcc"), problems, "Bcc")
    reply_to = _parse_addresses(headers.get("Reply-To"), problems, "Reply-To")
    date_header = _parse_date_header(headers.get("Date"), problems)

    history_id = _int(resource.get("historyId"))
    if history_id is None or not 0 <= history_id < 10**20:
        problems.add(f"unreadable historyId {str(resource.get('historyId'))[:40]!r}")
        history_id = 0
    size_estimate = _int(resource.get("sizeEstimate"))
    if size_estimate is not None and not 0 <= size_estimate < 2**31:
        size_estimate = None
    label_ids = _label_ids(resource.get("labelIds"))
    snippet = clean_line(html.unescape(_str(resource.get("snippet")) or ""))[:1000]

    body_html, body_text, attachments, missing = _read_bodies(
        payload, fetched_bodies or {}, problems
    )
    internal_date = _internal_date(resource.get("internalDate"), date_header, problems)

    mailbox = clean_line(mailbox_address).lower()
    outbound = "SENT" in label_ids or (bool(sender.email) and sender.email == mailbox)
    return ParsedMessage(
        gmail_message_id=message_id,
        gmail_thread_id=thread_id,
        history_id=history_id,
        internal_date=internal_date,
        label_ids=label_ids,
        snippet=snippet,
        size_estimate=size_estimate,
        subject=subject,
        sender=sender,
        to=to,
        cc=cc,
        bcc=bcc,
        reply_to=reply_to,
        date_header=date_header,
        to_header=_as_written(headers.get("To")),
        cc_header=_as_written(headers.get("Cc")),
        rfc_message_id=_message_ids(headers.get("Message-ID")),
        in_reply_to=_message_ids(headers.get("In-Reply-To")),
        references=_message_ids(headers.get("References")),
        body_html=body_html,
        body_text=body_text,
        attachments=attachments,
        direction="outbound" if outbound else "inbound",
        problems=problems.result(),
        content_hash=_content_hash(body_html, body_text, attachments),
        missing_body_parts=missing,
        mailbox=mailbox,
    )
