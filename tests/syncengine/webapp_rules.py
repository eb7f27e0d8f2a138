"""The web app's own sync rules, restated in Python as an independent oracle.

DelightBridge's former sync (``src/lib/gmail-sync.ts``) filled ``emails`` and
``email_threads`` from Gmail's ``format=full`` resources. These functions state those
rules, field by field, from what that sync does (its helpers ``extractHeader``,
``normalizeHeaderValue``, ``parseAddress``, ``extractHtml`` and ``syncThread``), so
that ``test_webapp_fields.py`` can compare what the service stores with what the web
app would have stored for the same messages. They share no code with the service.
"""

from __future__ import annotations

import base64
import html
import re
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

Resource = Mapping[str, Any]


def header(payload: Resource, name: str) -> str:
    """The first header of that name (any case), '' when absent."""
    for entry in payload.get("headers") or []:
        if str(entry.get("name", "")).lower() == name.lower():
            return str(entry.get("value") or "")
    return ""


def unfolded(value: str) -> str | None:
    """Trimmed; each line break with the whitespace after it one space; None when blank."""
    text = value.strip()
    return re.sub(r"\r?\n[ \t]*", " ", text).strip() if text else None


def normalize_email(value: str | None) -> str:
    return (value or "").strip().lower()


def parse_address(raw: str) -> tuple[str, str]:
    """(name, email) of an address header as the web app reads it."""
    match = re.match(r"^(.*?)<([^>]+)>$", raw, re.DOTALL)
    if match:
        return match[1].replace('"', "").strip() or match[2].strip(), normalize_email(match[2])
    return raw.strip() or "Unknown", normalize_email(raw)


def header_emails(raw: str | None) -> list[str]:
    if not raw:
        return []
    found = []
    for part in raw.split(","):
        match = re.search(r"<([^>]+)>", part)
        address = normalize_email(match[1] if match else part)
        if address:
            found.append(address)
    return found


def _decode(data: str) -> str:
    padded = data.replace("-", "+").replace("_", "/")
    padded += "=" * (-len(padded) % 4)
    return base64.b64decode(padded).decode("utf-8", errors="replace")


def _find(payload: Resource | None, mime_type: str) -> Resource | None:
    if not payload:
        return None
    if payload.get("mimeType") == mime_type and (payload.get("body") or {}).get("data"):
        return payload
    for part in payload.get("parts") or []:
        found = _find(part, mime_type)
        if found is not None:
            return found
    return None


def _escape(text: str) -> str:
    return html.escape(text, quote=True).replace("&#x27;", "&#39;")


def body(payload: Resource) -> str:
    html_part = _find(payload, "text/html")
    if html_part is not None:
        return _decode(html_part["body"]["data"])
    text_part = _find(payload, "text/plain")
    if text_part is not None:
        return "<p>" + _escape(_decode(text_part["body"]["data"])).replace("\n", "<br />") + "</p>"
    data = (payload.get("body") or {}).get("data")
    if data:
        decoded = _decode(data)
        if payload.get("mimeType") == "text/plain":
            return "<p>" + _escape(decoded).replace("\n", "<br />") + "</p>"
        return decoded
    return ""


def email_row(resource: Resource, account_email: str) -> dict[str, Any]:
    """The ``emails`` columns the web app's sync wrote for one message."""
    payload = resource.get("payload") or {}
    sender_name, sender_email = parse_address(header(payload, "From"))
    _, to_email = parse_address(header(payload, "To"))
    direction = "outbound" if sender_email == normalize_email(account_email) else "inbound"
    return {
        "gmail_message_id": resource["id"],
        "rfc_message_id": unfolded(header(payload, "Message-ID")),
        "in_reply_to": unfolded(header(payload, "In-Reply-To")),
        "references": unfolded(header(payload, "References")),
        "from_email": sender_email or "unknown@example.com",
        "from_name": sender_name or sender_email or "Unknown",
        "to_email": to_email or normalize_email(account_email),
        "to_header": unfolded(header(payload, "To")),
        "cc_header": unfolded(header(payload, "Cc")),
        "subject": header(payload, "Subject"),
        "body": body(payload),
        "direction": direction,
        "sent_at": datetime.fromtimestamp(int(resource["internalDate"]) / 1000,
                                          UTC).replace(tzinfo=None),
        "labels": list(resource.get("labelIds") or []),
    }


def thread_row(messages: Sequence[Mapping[str, Any]], account_email: str,
               identities: Sequence[Mapping[str, Any]], current_reply_from: str | None
               ) -> dict[str, Any]:
    """The ``email_threads`` columns the web app's sync wrote, from its email rows."""
    ordered = sorted(messages, key=lambda m: m["sent_at"])
    latest = ordered[-1]
    first_inbound = next((m for m in ordered if m["direction"] == "inbound"), latest)
    enabled = [normalize_email(i["email"]) for i in identities if i["is_enabled"]]
    recipients = {*header_emails(latest["to_header"]), *header_emails(latest["cc_header"])}
    matched = next((e for e in enabled if e in recipients), None)
    default = next((i["email"] for i in identities if i["is_default"] and i["is_enabled"]),
                   None) or next((i["email"] for i in identities if i["is_enabled"]), None) \
        or account_email
    current = normalize_email(current_reply_from)
    labels = set(latest["labels"])
    return {
        "subject": latest["subject"] or "(no subject)",
        "customer_email": first_inbound["from_email"],
        "customer_name": first_inbound["from_name"],
        "reply_from_email": current if current and current in enabled
        else normalize_email(matched or default),
        "status": "inbox" if "INBOX" in labels else "sent" if "SENT" in labels else "archived",
        "is_read": "UNREAD" not in labels,
        "last_message_at": latest["sent_at"],
    }
