"""Build Gmail API ``users.messages`` resources (``format=full``) from real MIME.

Mirrors what Gmail does with a stored RFC 5322 message:

* the root part has ``partId`` ``""`` and carries the message's headers; children are
  numbered ``"0"``, ``"1"``...; grandchildren ``"0.0"``, ``"0.1"``... (``"<parent>.<n>"``);
* header values are raw (RFC 2047 encoded-words left in place), unfolded;
* ``body.data`` is the part's octets after the transfer encoding was removed, as
  base64url without padding; ``body.size`` their length; containers get ``{"size": 0}``;
* parts with a filename, non-text parts, and parts larger than ``inline_limit``, carry
  ``body.attachmentId`` instead of data (their octets are returned separately, as
  ``messages.attachments.get`` would serve them);
* ``message/rfc822`` parts are treated as one attachment.
"""

from __future__ import annotations

import base64
import email
import email.policy
import html
import re
from dataclasses import dataclass, field
from email.message import EmailMessage, Message
from typing import Any

MAILBOX = "support@noji.example"


def b64url(data: bytes) -> str:
    """Gmail's base64url, without padding."""
    return base64.urlsafe_b64encode(data).decode("ascii").rstrip("=")


def _unfold(value: str) -> str:
    return re.sub(r"\r?\n(?=[ \t])", "", value)


@dataclass
class GmailFixture:
    resource: dict[str, Any]
    attachment_data: dict[str, bytes] = field(default_factory=dict)
    """attachmentId -> the part's octets, as attachments.get would return them."""


def to_gmail(
    message: Message | bytes,
    *,
    message_id: str = "18c1a2b3c4d5e6f7",
    thread_id: str = "18c1a2b3c4d5e6f0",
    label_ids: tuple[str, ...] = ("INBOX", "UNREAD"),
    internal_date_ms: int = 1_790_000_000_123,
    history_id: str = "4242",
    inline_limit: int = 200_000,
    snippet: str | None = None,
) -> GmailFixture:
    """The ``format=full`` resource Gmail would return for ``message``."""
    raw = message if isinstance(message, bytes) else message.as_bytes(policy=email.policy.SMTP)
    parsed = email.message_from_bytes(raw, policy=email.policy.compat32)
    fixture = GmailFixture(resource={})
    payload = _part(parsed, "", fixture, inline_limit)
    if snippet is None:
        snippet = html.escape(_first_text(parsed)[:120])
    fixture.resource = {
        "id": message_id,
        "threadId": thread_id,
        "labelIds": list(label_ids),
        "snippet": snippet,
        "historyId": history_id,
        "internalDate": str(internal_date_ms),
        "sizeEstimate": len(raw),
        "payload": payload,
    }
    return fixture


def _first_text(message: Message) -> str:
    for part in message.walk():
        if part.get_content_type() == "text/plain":
            data = part.get_payload(decode=True)
            if isinstance(data, bytes):
                return " ".join(data.decode("utf-8", "replace").split())
    return ""


def _part(part: Message, part_id: str, fixture: GmailFixture, inline_limit: int) -> dict[str, Any]:
    result: dict[str, Any] = {
        "partId": part_id,
        "mimeType": part.get_content_type(),
        "filename": part.get_filename() or "",
        "headers": [{"name": k, "value": _unfold(str(v))} for k, v in part.raw_items()],
    }
    if part.get_content_type() == "message/rfc822":
        inner = part.get_payload()
        assert isinstance(inner, list)
        assert isinstance(inner[0], Message)
        data = inner[0].as_bytes()
        result["body"] = _attached(data, part_id, fixture)
    elif part.is_multipart():
        result["body"] = {"size": 0}
        children = part.get_payload()
        assert isinstance(children, list)
        result["parts"] = [
            _part(child, f"{part_id}.{n}" if part_id else str(n), fixture, inline_limit)
            for n, child in enumerate(children)
        ]
    else:
        octets = part.get_payload(decode=True)
        assert isinstance(octets, bytes)
        data = octets
        is_text = part.get_content_maintype() == "text"
        if result["filename"] or not is_text or len(data) > inline_limit:
            result["body"] = _attached(data, part_id, fixture)
        else:
            result["body"] = {"size": len(data), "data": b64url(data)}
    return result


def _attached(data: bytes, part_id: str, fixture: GmailFixture) -> dict[str, Any]:
    attachment_id = f"ANGjdJ_{part_id or 'root'}_{len(fixture.attachment_data)}"
    fixture.attachment_data[attachment_id] = data
    return {"attachmentId": attachment_id, "size": len(data)}


def new_message(
    *,
    sender: str = '"Kim Customer" <kim@customer.example>',
    to: str = MAILBOX,
    subject: str = "Refund please",
    date: str = "Thu, 01 Oct 2026 09:00:00 +0000",
    message_id: str = "<a1@customer.example>",
) -> EmailMessage:
    """An ``EmailMessage`` with the usual headers set (values as given, not re-encoded)."""
    message = EmailMessage(policy=email.policy.SMTP)
    message["From"] = sender
    message["To"] = to
    message["Subject"] = subject
    message["Date"] = date
    message["Message-ID"] = message_id
    return message


def set_raw_text(message: Message, data: bytes, subtype: str, charset: str) -> None:
    """Make ``message`` a single text part holding ``data`` declared as ``charset``."""
    message["MIME-Version"] = "1.0"
    message["Content-Type"] = f"text/{subtype}; charset={charset}"
    message["Content-Transfer-Encoding"] = "base64"
    message.set_payload(base64.encodebytes(data).decode("ascii"))


def raw_text_part(data: bytes, subtype: str, charset: str) -> EmailMessage:
    part = EmailMessage()
    set_raw_text(part, data, subtype, charset)
    del part["MIME-Version"]
    return part


def subpart(message: EmailMessage, index: int) -> EmailMessage:
    """The ``index``-th child of a multipart ``EmailMessage``."""
    children = message.get_payload()
    assert isinstance(children, list)
    child = children[index]
    assert isinstance(child, EmailMessage)
    return child


def find_part(payload: dict[str, Any], part_id: str) -> dict[str, Any]:
    """The part of a resource's payload with this ``partId``."""
    if payload.get("partId") == part_id:
        return payload
    for child in payload.get("parts", []):
        try:
            return find_part(child, part_id)
        except KeyError:
            continue
    raise KeyError(part_id)
