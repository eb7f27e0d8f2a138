"""Gmail push notifications: pure decoding and validation, no I/O.

Gmail publishes ``{"emailAddress": "...", "historyId": 1234}`` as a message's data.
Pub/Sub carries data base64-encoded on the wire: a pull client hands over the decoded
bytes, a push envelope carries the base64 text. :func:`decode_pull` and
:func:`decode_push` turn either into a :class:`Notification` or a :class:`Rejection`
naming why the message can never become a sync (the caller acks those: redelivery
cannot fix them).
"""

from __future__ import annotations

import base64
import binascii
import enum
import json
import re
from dataclasses import dataclass
from typing import Any

MAX_HISTORY_ID = 2**64 - 1  # Gmail history ids are unsigned 64-bit integers
# No whitespace, control character (C0, DEL, C1) or lone surrogate: none can be in an
# address, and PostgreSQL cannot even take NUL or a surrogate as a lookup parameter
# (the query would fail on every redelivery instead of the message being acked as bad).
_ADDRESS_CHAR = r"[^@\s\x00-\x1f\x7f-\x9f\ud800-\udfff]"
_EMAIL_RE = re.compile(rf"^{_ADDRESS_CHAR}+@{_ADDRESS_CHAR}+\.{_ADDRESS_CHAR}+$")
_B64_RE = re.compile(rb"^[A-Za-z0-9+/_-]*={0,2}$")


class Reason(enum.StrEnum):
    """Why a message is acked without a sync: one metric label value each."""

    NOT_BASE64 = "not_base64"
    NOT_JSON = "not_json"
    NOT_OBJECT = "not_object"
    MISSING_FIELD = "missing_field"
    BAD_EMAIL = "bad_email"
    BAD_HISTORY_ID = "bad_history_id"
    UNKNOWN_ADDRESS = "unknown_address"
    DISCONNECTED = "disconnected"
    UP_TO_DATE = "up_to_date"


@dataclass(frozen=True, slots=True)
class Notification:
    email: str  # as Gmail sent it, stripped; looked up case-insensitively
    history_id: int


@dataclass(frozen=True, slots=True)
class Rejection:
    reason: Reason
    detail: str  # for the log line: never the payload itself


Decoded = Notification | Rejection


def decode_pull(data: bytes) -> Decoded:
    """A pulled message's data: the JSON itself (the client library removed the wire
    base64). Data that is not JSON but is base64 text of it (a publisher that encoded
    twice, ``gcloud pubsub topics publish`` by hand) is accepted too."""
    document = _json(data)
    if document is not _INVALID:
        return validate(document)
    if data.lstrip()[:1] in (b"{", b"["):
        return Rejection(Reason.NOT_JSON, "data looks like JSON but does not parse")
    decoded = _b64(data)
    if decoded is None:
        return Rejection(Reason.NOT_BASE64, "data is neither JSON nor base64 text")
    return _from_json(decoded)


def decode_push(data: object) -> Decoded:
    """``message.data`` of a push envelope: base64 text of the JSON (absent when empty)."""
    if data is None:
        data = ""
    if not isinstance(data, str):
        return Rejection(Reason.NOT_BASE64, f"data is a JSON {type(data).__name__}, not text")
    decoded = _b64(data.encode("ascii", "replace"))
    if decoded is None:
        return Rejection(Reason.NOT_BASE64, "data is not base64")
    return _from_json(decoded)


def validate(document: Any) -> Decoded:
    """The parsed JSON document as a notification, or why it is not one."""
    if not isinstance(document, dict):
        return Rejection(Reason.NOT_OBJECT, f"data is a JSON {_json_type(document)}")
    missing = [k for k in ("emailAddress", "historyId") if document.get(k) in (None, "")]
    if missing:
        return Rejection(Reason.MISSING_FIELD, f"missing {', '.join(missing)}")
    email = document["emailAddress"]
    if not isinstance(email, str) or not _EMAIL_RE.match(email.strip()) or len(email) > 320:
        return Rejection(Reason.BAD_EMAIL, "emailAddress is not an email address")
    history_id = parse_history_id(document["historyId"])
    if history_id is None:
        kind = _json_type(document["historyId"])
        return Rejection(Reason.BAD_HISTORY_ID, f"historyId is not a positive integer ({kind})")
    return Notification(email.strip(), history_id)


def parse_history_id(value: object) -> int | None:
    """A history id from JSON: an integer or a string of decimal digits (Gmail sends
    either, depending on the API surface), positive and within 64 bits."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        number = value
    elif isinstance(value, str) and value.isascii() and value.isdigit() and len(value) <= 20:
        number = int(value)
    else:
        return None
    return number if 0 < number <= MAX_HISTORY_ID else None


# --- helpers ----------------------------------------------------------------------------

_INVALID = object()


def _json(data: bytes) -> Any:
    try:
        return json.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError):
        return _INVALID


def _from_json(data: bytes) -> Decoded:
    document = _json(data)
    if document is _INVALID:
        return Rejection(Reason.NOT_JSON, "decoded data is not UTF-8 JSON")
    return validate(document)


def _b64(text: bytes) -> bytes | None:
    """Standard or URL-safe base64, padding optional; None when it is not base64."""
    compact = b"".join(text.split())
    if not compact:
        return b""
    if not _B64_RE.match(compact):
        return None
    compact = compact.rstrip(b"=")
    if len(compact) % 4 == 1:
        return None
    padded = compact + b"=" * (-len(compact) % 4)
    try:
        return base64.b64decode(padded.replace(b"-", b"+").replace(b"_", b"/"), validate=True)
    except (binascii.Error, ValueError):
        return None


def _json_type(value: object) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int | float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    return "object"
