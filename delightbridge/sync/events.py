"""New-mail events: what the web app is told once a sync has committed. Pure.

The web app's own sync drafted an AI reply for each new inbound message; with this
service syncing, the web app learns of new mail from these events (README: "New-mail
events"). Two kinds:

* ``message.received``: a new inbound message was mirrored into a thread;
* ``thread.status_changed``: a thread's status (``inbox``, ``sent``, ``archived``)
  changed.

They are recorded in ``delightbridge_sync.events`` in the transaction that writes the
rows they describe (:mod:`delightbridge.sync.store`), so an event exists exactly when its change
does, and :mod:`delightbridge.sync.outbox` delivers them. A service's first full sync (its
initial import) records none: nothing arrived, the mailbox was only read.

Each delivery is one POST of :func:`body` (JSON), signed with HMAC-SHA256 over
``"<timestamp>.<body>"`` with ``EVENTS_SECRET``: header ``X-DelightBridge-Signature:
t=<unix seconds>,v1=<hex digest>``. Receivers check it (:func:`verify` is the reference)
and drop duplicates by the event's ``id``: delivery is at least once.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any, Final, Literal

from delightbridge.sync.parse import ParsedMessage

EventKind = Literal["message.received", "thread.status_changed"]
MESSAGE_RECEIVED: Final = "message.received"
STATUS_CHANGED: Final = "thread.status_changed"
KINDS: Final = (MESSAGE_RECEIVED, STATUS_CHANGED)

SIGNATURE_HEADER: Final = "X-DelightBridge-Signature"
ID_HEADER: Final = "X-DelightBridge-Event-Id"
TYPE_HEADER: Final = "X-DelightBridge-Event-Type"
#: A signature older (or newer) than this is refused by :func:`verify`: a replayed
#: request from a log or a proxy is useless after it.
TOLERANCE_SECONDS: Final = 300


def _iso(moment: datetime) -> str:
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")


def message_received(thread_id: str, email_id: str, message: ParsedMessage) -> dict[str, Any]:
    """The ``data`` of a ``message.received`` event."""
    return {
        "threadId": thread_id,
        "gmailThreadId": message.gmail_thread_id,
        "emailId": email_id,
        "gmailMessageId": message.gmail_message_id,
        "from": {"email": message.from_email, "name": message.from_name},
        "subject": message.subject,
        "snippet": message.snippet,
        "labels": list(message.label_ids),
        "sentAt": _iso(message.sent_at),
    }


def status_changed(thread_id: str, old: str, new: str, is_read: bool) -> dict[str, Any]:
    """The ``data`` of a ``thread.status_changed`` event."""
    return {"threadId": thread_id, "from": old, "to": new, "isRead": is_read}


def body(event_id: int, kind: str, service_id: str, created_at: datetime,
         data: Mapping[str, Any]) -> bytes:
    """The JSON a receiver gets: the event's id, type, service, time and data."""
    return json.dumps(
        {"id": str(event_id), "type": kind, "service": service_id,
         "createdAt": _iso(created_at), "data": data},
        ensure_ascii=False, separators=(",", ":"), sort_keys=True,
    ).encode()


def sign(secret: str, timestamp: int, content: bytes) -> str:
    """The signature header's value for ``content`` sent at ``timestamp``."""
    mac = hmac.new(secret.encode(), f"{timestamp}.".encode() + content, hashlib.sha256)
    return f"t={timestamp},v1={mac.hexdigest()}"


def verify(secret: str, header: str | None, content: bytes, *, now: float,
           tolerance: float = TOLERANCE_SECONDS) -> bool:
    """Whether ``header`` signs ``content`` with ``secret``, recently enough."""
    if not header:
        return False
    fields = dict(part.split("=", 1) for part in header.split(",") if "=" in part)
    stamp, digest = fields.get("t", ""), fields.get("v1", "")
    if not stamp.isdigit() or abs(now - int(stamp)) > tolerance:
        return False
    expected = sign(secret, int(stamp), content).rpartition("v1=")[2]
    return hmac.compare_digest(expected, digest)
