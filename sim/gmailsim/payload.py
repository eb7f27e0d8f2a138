"""Raw MIME to Gmail's ``Message`` resource parts, the way Gmail derives them.

Gmail parses each message once and serves four views of it:

* ``full``: ``payload`` is the MIME part tree. The root part has ``partId`` ``""``,
  its children ``"0"``, ``"1"``, grandchildren ``"0.0"`` and so on. Every part has
  ``mimeType``, ``filename`` (``""`` when none), its own ``headers`` (unfolded,
  RFC 2047 words decoded) and ``body``. Containers have ``body: {"size": 0}``;
  leaves carry the transfer-decoded bytes (still in the part's charset) as
  base64url in ``body.data`` with ``body.size`` their length, except attachments
  (any part with a file name) and bodies larger than a threshold, which carry an
  ``attachmentId`` for ``messages.attachments.get`` instead.
* ``metadata``: ``payload`` with only ``mimeType`` and the (optionally filtered)
  top-level headers.
* ``minimal``: no payload.
* ``raw``: the whole message, base64url, in ``raw``.

``snippet`` is the start of the text (HTML stripped), whitespace collapsed and
HTML-escaped as Gmail does (``&#39;``, ``&quot;``...).
"""

from __future__ import annotations

import base64
import binascii
import codecs
import hashlib
import hmac
import html
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from email import policy
from email.message import Message
from email.parser import BytesParser
from typing import Any

DEFAULT_LARGE_BODY_THRESHOLD = 512 * 1024
SNIPPET_LENGTH = 200

_FOLD = re.compile(r"\r?\n(?=[ \t])")
_TAGS = re.compile(r"<(script|style)\b.*?</\1\s*>|<[^>]*>", re.DOTALL | re.IGNORECASE)
_SPACE = re.compile(r"\s+")


def b64url(data: bytes) -> str:
    """Gmail's ``format: byte`` encoding: URL-safe alphabet, with padding."""
    return base64.urlsafe_b64encode(data).decode("ascii")


_WORD = re.compile(r"=\?([^?\s*]+)(?:\*[^?\s]*)?\?([bBqQ])\?([^?\s]*)\?=")


def _word_bytes(encoding: str, text: str) -> bytes | None:
    try:
        if encoding in "bB":
            return base64.b64decode(text + "=" * (-len(text) % 4), validate=True)
        return binascii.a2b_qp(text.replace("_", " ").encode("ascii"), header=True)
    except (binascii.Error, ValueError, UnicodeEncodeError):
        return None


def decode_header_value(value: str) -> str:
    """Unfold and decode RFC 2047 words; a malformed word is kept as written.

    Adjacent words of one charset are joined before decoding (a character may be
    split across them) and the white space between encoded words is dropped.
    """
    unfolded = _FOLD.sub("", value)
    if "=?" not in unfolded:
        return unfolded
    out: list[str] = []
    run: tuple[str, bytearray] | None = None
    pos = 0

    def flush() -> None:
        nonlocal run
        if run is not None:
            charset, data = run
            try:
                out.append(bytes(data).decode(charset))
            except (LookupError, UnicodeDecodeError):
                out.append(bytes(data).decode(charset if _known(charset) else "latin-1",
                                              "replace"))
            run = None

    for match in _WORD.finditer(unfolded):
        between = unfolded[pos:match.start()]
        charset, encoding, text = match.group(1).lower(), match.group(2), match.group(3)
        data = _word_bytes(encoding, text)
        pos = match.end()
        if data is None or not _known(charset):
            flush()
            out.append(between + match.group(0))
            continue
        if run is not None and between.strip() == "":
            if run[0] == charset:
                run[1].extend(data)
                continue
            flush()
        else:
            flush()
            out.append(between)
        run = (charset, bytearray(data))
    flush()
    out.append(unfolded[pos:])
    return "".join(out)


def _known(charset: str) -> bool:
    try:
        codecs.lookup(charset)
    except LookupError:
        return False
    return True


@dataclass(frozen=True, slots=True)
class Part:
    """One MIME part as Gmail models it."""

    part_id: str
    mime_type: str
    filename: str
    headers: tuple[tuple[str, str], ...]
    data: bytes | None  # None for containers
    children: tuple[Part, ...]
    charset: str | None
    disposition: str | None

    @property
    def is_container(self) -> bool:
        return self.data is None


@dataclass(frozen=True, slots=True)
class ParsedMessage:
    """Everything Gmail serves about one message's content, computed once."""

    root: Part
    headers: tuple[tuple[str, str], ...]
    snippet: str
    size_estimate: int

    def walk(self) -> Iterable[Part]:
        stack = [self.root]
        while stack:
            part = stack.pop(0)
            yield part
            stack[0:0] = list(part.children)

    def part(self, part_id: str) -> Part | None:
        return next((p for p in self.walk() if p.part_id == part_id), None)

    def header(self, name: str) -> str | None:
        lowered = name.lower()
        return next((v for n, v in self.headers if n.lower() == lowered), None)


def _headers(message: Message) -> tuple[tuple[str, str], ...]:
    return tuple((name, decode_header_value(str(value))) for name, value in message.items())


def _payload_bytes(message: Message) -> bytes:
    try:
        data = message.get_payload(decode=True)
    except (ValueError, TypeError, AssertionError):
        data = None
    if isinstance(data, bytes):
        return data
    raw = message.get_payload()
    if isinstance(raw, str):
        return raw.encode("utf-8", "surrogateescape")
    return b""


def _build(message: Message, part_id: str) -> Part:
    headers = _headers(message)
    try:
        filename = message.get_filename() or ""
    except (ValueError, LookupError, UnicodeError):
        filename = ""
    filename = decode_header_value(filename) if filename else ""
    mime_type = message.get_content_type()
    charset = message.get_content_charset()
    disposition = message.get_content_disposition()
    if message.is_multipart():
        payload = message.get_payload()
        children = payload if isinstance(payload, list) else []
        kids = tuple(
            _build(child, f"{part_id}.{i}" if part_id else str(i))
            for i, child in enumerate(c for c in children if isinstance(c, Message))
        )
        if mime_type == "message/rfc822":
            # Gmail serves an attached message as one opaque attachment.
            data = b"".join(child.as_bytes() for child in children
                            if isinstance(child, Message))
            return Part(part_id, mime_type, filename, headers, data, (), charset, disposition)
        return Part(part_id, mime_type, filename, headers, None, kids, charset, disposition)
    return Part(part_id, mime_type, filename, headers, _payload_bytes(message), (), charset,
                disposition)


def parse(raw: bytes) -> ParsedMessage:
    """Parse raw RFC 5322 bytes leniently (malformed input never raises)."""
    message = BytesParser(policy=policy.compat32).parsebytes(raw)
    root = _build(message, "")
    parsed = ParsedMessage(root, root.headers, "", len(raw))
    return ParsedMessage(root, root.headers, _snippet(parsed), len(raw))


def _decode_text(part: Part) -> str | None:
    if part.data is None:
        return None
    try:
        return part.data.decode(part.charset or "us-ascii")
    except (LookupError, UnicodeDecodeError):
        return part.data.decode("utf-8", "replace")


def _snippet(parsed: ParsedMessage) -> str:
    plain = html_text = None
    for part in parsed.walk():
        if part.filename or part.is_container or part.disposition == "attachment":
            continue
        if part.mime_type == "text/plain" and plain is None:
            plain = _decode_text(part)
        elif part.mime_type == "text/html" and html_text is None:
            html_text = _decode_text(part)
    text = plain
    if text is None and html_text is not None:
        text = html.unescape(_TAGS.sub(" ", html_text))
    if not text:
        return ""
    collapsed = _SPACE.sub(" ", text).strip()[:SNIPPET_LENGTH]
    return (collapsed.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
            .replace('"', "&quot;").replace("'", "&#39;"))


# --- attachment ids ---------------------------------------------------------------


class AttachmentIds:
    """Opaque, stable attachment ids that name (message id, part id), tamper-proof."""

    def __init__(self, secret: bytes) -> None:
        self._secret = secret

    def make(self, message_id: str, part_id: str) -> str:
        body = f"{message_id}/{part_id}".encode()
        tag = hmac.new(self._secret, body, hashlib.sha256).digest()
        return "ANGjdJ" + base64.urlsafe_b64encode(tag + body + tag[:24]).decode().rstrip("=")

    def resolve(self, attachment_id: str) -> tuple[str, str] | None:
        if not attachment_id.startswith("ANGjdJ"):
            return None
        token = attachment_id[6:]
        try:
            blob = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
        except (ValueError, TypeError):
            return None
        if len(blob) < 56:
            return None
        tag, body, tail = blob[:32], blob[32:-24], blob[-24:]
        expected = hmac.new(self._secret, body, hashlib.sha256).digest()
        if not hmac.compare_digest(tag, expected) or tail != expected[:24]:
            return None
        message_id, _, part_id = body.decode().partition("/")
        return message_id, part_id


# --- resource rendering -------------------------------------------------------------


def part_resource(part: Part, attachment_id: Callable[[str], str], large_threshold: int
                  ) -> dict[str, Any]:
    """The ``MessagePart`` JSON of ``part`` and its descendants (``format=full``)."""
    resource: dict[str, Any] = {
        "partId": part.part_id,
        "mimeType": part.mime_type,
        "filename": part.filename,
        "headers": [{"name": n, "value": v} for n, v in part.headers],
    }
    if part.data is None:
        resource["body"] = {"size": 0}
        resource["parts"] = [part_resource(c, attachment_id, large_threshold)
                             for c in part.children]
    elif part.filename or part.disposition == "attachment" or len(part.data) > large_threshold:
        resource["body"] = {"attachmentId": attachment_id(part.part_id),
                            "size": len(part.data)}
    elif part.data:
        resource["body"] = {"size": len(part.data), "data": b64url(part.data)}
    else:
        resource["body"] = {"size": 0}
    return resource


def metadata_payload(parsed: ParsedMessage, only: Iterable[str] | None) -> dict[str, Any]:
    """The ``payload`` of ``format=metadata``: the MIME type and top-level headers."""
    wanted = {name.lower() for name in only} if only else None
    headers = [
        {"name": n, "value": v}
        for n, v in parsed.headers
        if wanted is None or n.lower() in wanted
    ]
    payload: dict[str, Any] = {"mimeType": parsed.root.mime_type}
    if headers:
        payload["headers"] = headers
    return payload
