"""Deterministic generator of real MIME messages, with their ground truth.

Every message is built byte by byte from a seeded :class:`random.Random`, so the
same seed yields the same bytes. The mix covers what a support inbox receives:
plain text, multipart/alternative, attachments (RFC 2231 file names too), inline
images in multipart/related, charsets beyond UTF-8 (ISO-8859-1, Shift_JIS,
EUC-KR), RFC 2047 encoded headers, long threads with In-Reply-To/References, and a
few malformed messages.

Ground truth is the decoded text/plain and text/html of the body *as generated*
(exactly the string whose bytes are in the part, CRLF line ends included), or
``None`` where the part is absent or deliberately undecodable.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import random
import struct
import zlib
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from email.utils import format_datetime
from html import escape
from urllib.parse import quote

from gmailsim.ids import seeded

CRLF = "\r\n"


@dataclass(frozen=True, slots=True)
class Person:
    name: str
    address: str


@dataclass(frozen=True, slots=True)
class AttachmentTruth:
    """An attachment or inline image as generated."""

    filename: str
    mime_type: str
    size: int
    sha256: str
    inline: bool = False
    content_id: str | None = None


@dataclass(frozen=True, slots=True)
class AttachmentSpec:
    """An attachment a caller asks for explicitly."""

    filename: str
    mime_type: str
    data: bytes
    inline: bool = False
    content_id: str | None = None


@dataclass(frozen=True, slots=True)
class GeneratedMessage:
    """Raw RFC 5322 bytes plus what a correct parser must recover from them."""

    raw: bytes
    kind: str
    subject: str
    message_id: str
    references: tuple[str, ...]
    text: str | None
    html: str | None
    attachments: tuple[AttachmentTruth, ...] = ()
    malformed: bool = False

    @property
    def sha256(self) -> str:
        return hashlib.sha256(self.raw).hexdigest()


@dataclass(frozen=True, slots=True)
class Envelope:
    """Who, when and where in the conversation; the content is chosen by the factory."""

    sender: Person
    to: Sequence[Person]
    subject: str
    date: datetime
    cc: Sequence[Person] = ()
    in_reply_to: str | None = None
    references: Sequence[str] = ()
    quote: str | None = None
    outbound: bool = False


# Kinds and their weights in a seeded mailbox.
KIND_WEIGHTS: dict[str, int] = {
    "plain": 16,
    "plain_latin1": 6,
    "alternative": 22,
    "alternative_sjis": 5,
    "alternative_euckr": 5,
    "html_only": 6,
    "attachments": 12,
    "related_inline": 8,
    "rfc2231_filename": 3,
    "encoded_headers": 6,
    "large_html": 1,
    "malformed_charset": 2,
    "malformed_base64": 2,
    "malformed_truncated": 2,
    "malformed_encoded_word": 2,
    "no_mime_headers": 2,
}
KINDS = tuple(KIND_WEIGHTS)

_WORDS = (
    "order", "invoice", "refund", "shipping", "account", "password", "delivery", "question",
    "update", "request", "support", "ticket", "payment", "subscription", "renewal", "receipt",
    "address", "change", "cancel", "return", "product", "warranty", "broken", "missing",
    "package", "tracking", "number", "thanks", "please", "help", "urgent", "today", "tomorrow",
    "week", "meeting", "schedule", "call", "follow", "quick", "note", "issue", "resolved",
    "pending", "review", "approve", "contract", "draft", "final", "version", "attached",
    "document", "report", "summary", "data",
)
_LATIN1 = (
    "Café crème", "naïve façade", "señor Müller", "garçon", "déjà vu", "Ærøskøbing",
    "Straße", "piñata", "über", "coöperate", "résumé", "à bientôt",
)
_JAPANESE = (
    "お問い合わせありがとうございます。", "注文番号について確認いたします。",
    "配送状況をお知らせします。", "よろしくお願いいたします。", "返品の手続きについて",
    "商品が届きました。", "請求書を添付します。",
)
_KOREAN = (
    "안녕하세요.", "주문 확인 부탁드립니다.", "배송 안내입니다.", "감사합니다.",
    "문의하신 내용에 답변 드립니다.", "고객님의 요청을 처리했습니다.",
)
_UNICODE_EXTRA = ("👍", "🎉", "✓", "—", "“quoted”", "€100", "Ελληνικά", "Привет", "日本")
_FIRST = ("Alice", "Bob", "Carla", "Dmitri", "Eun-ji", "François", "Günter", "Hiroshi",
          "Inès", "José", "Kenji", "Léa", "Mariana", "Nikolai", "Olga", "Priya", "Søren",
          "Tomás", "Yuki", "Zoë")
_LAST = ("Smith", "Müller", "García", "Tanaka", "Kim", "Dubois", "Rossi", "Novák",
         "Jørgensen", "O'Brien", "Silva", "Nakamura", "Park", "Lefèvre")
_DOMAINS = ("example.com", "example.org", "example.net", "customer.test", "shop.test")


def _qp(data: bytes) -> str:
    return binascii.b2a_qp(data, istext=True).decode("ascii")


def _b64(data: bytes) -> str:
    encoded = base64.b64encode(data).decode("ascii")
    return CRLF.join(encoded[i:i + 76] for i in range(0, len(encoded), 76))


def encode_word(text: str, charset: str, encoding: str = "B") -> str:
    """RFC 2047 encoded words (folded, each at most 75 chars) for ``text``."""
    if not text:
        return ""

    def word(chunk: str) -> str:
        data = chunk.encode(charset)
        if encoding == "B":
            payload = base64.b64encode(data).decode("ascii")
        else:
            payload = "".join(
                "_" if byte == 0x20
                else chr(byte) if chr(byte).isalnum() and byte < 0x80
                else f"={byte:02X}"
                for byte in data
            )
        return f"=?{charset}?{encoding}?{payload}?="

    words: list[str] = []
    chunk = ""
    for char in text:
        if chunk and len(word(chunk + char)) > 75:
            words.append(word(chunk))
            chunk = char
        else:
            chunk += char
    words.append(word(chunk))
    return f"{CRLF} ".join(words)


def header_value(text: str, charset: str = "utf-8", encoding: str = "B") -> str:
    """``text`` as is when ASCII, else RFC 2047 encoded in ``charset``."""
    if text.isascii():
        return text
    return encode_word(text, charset, encoding)


def format_address(person: Person, charset: str = "utf-8", encoding: str = "B") -> str:
    if not person.name:
        return person.address
    if person.name.isascii():
        needs_quotes = any(c in person.name for c in ",.;:<>@\"'()[]\\")
        name = f'"{person.name}"' if needs_quotes else person.name
        return f"{name} <{person.address}>"
    return f"{encode_word(person.name, charset, encoding)} <{person.address}>"


def _png(rng: random.Random, size: int = 8) -> bytes:
    rows = b"".join(b"\x00" + bytes(rng.randrange(256) for _ in range(size * 3))
                    for _ in range(size))

    def chunk(kind: bytes, data: bytes) -> bytes:
        return (struct.pack(">I", len(data)) + kind + data
                + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF))

    header = struct.pack(">IIBBBBB", size, size, 8, 2, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header)
            + chunk(b"IDAT", zlib.compress(rows, 9)) + chunk(b"IEND", b""))


def _pdf(rng: random.Random, size: int) -> bytes:
    body = bytes(rng.randrange(32, 127) for _ in range(max(size - 40, 10)))
    return b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n" + body + b"\n%%EOF\n"


@dataclass(slots=True)
class _Part:
    """One MIME entity under construction: header lines and an encoded body."""

    headers: list[tuple[str, str]]
    body: str = ""
    children: list[_Part] = field(default_factory=list)
    boundary: str | None = None
    close: bool = True

    def render(self) -> str:
        lines = [f"{name}: {value}" for name, value in self.headers]
        head = CRLF.join(lines) + CRLF + CRLF
        if self.boundary is None:
            return head + self.body
        out = [head]
        for child in self.children:
            out.append(f"--{self.boundary}{CRLF}{child.render()}{CRLF}")
        if self.close:
            out.append(f"--{self.boundary}--{CRLF}")
        return "".join(out)


def _leaf(mime_type: str, data: bytes, *, charset: str | None = None, cte: str = "base64",
          extra: Sequence[tuple[str, str]] = ()) -> _Part:
    content_type = mime_type + (f'; charset="{charset}"' if charset else "")
    if cte == "base64":
        body = _b64(data)
    elif cte == "quoted-printable":
        body = _qp(data)
    else:
        body = data.decode("ascii" if cte == "7bit" else "latin-1")
    return _Part([("Content-Type", content_type), ("Content-Transfer-Encoding", cte),
                  *extra], body)


class MessageFactory:
    """Builds messages from one seeded random stream."""

    def __init__(self, seed: int = 0) -> None:
        self.rng = seeded("mime", seed)
        self._serial = 0
        self._seed = seed

    # --- people and words -------------------------------------------------------

    def person(self) -> Person:
        rng = self.rng
        first, last = rng.choice(_FIRST), rng.choice(_LAST)
        local = f"{first}.{last}".lower().encode("ascii", "ignore").decode()
        local = "".join(c for c in local if c.isalnum() or c == ".") or "someone"
        return Person(f"{first} {last}", f"{local}@{rng.choice(_DOMAINS)}")

    def subject(self) -> str:
        words = self.rng.sample(_WORDS, self.rng.randint(2, 6))
        subject = " ".join(words).capitalize()
        if self.rng.random() < 0.2:
            subject += f" #{self.rng.randint(1000, 99999)}"
        return subject

    def choose_kind(self) -> str:
        return self.rng.choices(KINDS, weights=list(KIND_WEIGHTS.values()))[0]

    def message_id(self, domain: str) -> str:
        self._serial += 1
        token = hashlib.sha256(f"{self._seed}:{self._serial}:{self.rng.random()}".encode())
        return f"<{token.hexdigest()[:24]}@{domain}>"

    def _sentences(self, count: int, extra: Sequence[str] = ()) -> list[str]:
        out = []
        for _ in range(count):
            words = self.rng.choices(_WORDS, k=self.rng.randint(5, 14))
            if extra and self.rng.random() < 0.5:
                words.insert(self.rng.randrange(len(words)), self.rng.choice(extra))
            out.append(" ".join(words).capitalize() + ".")
        return out

    def paragraphs(self, extra: Sequence[str] = (), count: int | None = None) -> list[str]:
        n = count if count is not None else self.rng.randint(1, 4)
        return [" ".join(self._sentences(self.rng.randint(1, 4), extra)) for _ in range(n)]

    # --- bodies -------------------------------------------------------------------

    @staticmethod
    def text_of(paragraphs: Sequence[str], quote: str | None = None) -> str:
        text = (CRLF + CRLF).join(paragraphs) + CRLF
        if quote:
            quoted = CRLF.join("> " + line for line in quote.rstrip(CRLF).split(CRLF))
            text += CRLF + quoted + CRLF
        return text

    @staticmethod
    def html_of(paragraphs: Sequence[str], quote: str | None = None,
                image_cid: str | None = None) -> str:
        body = "".join(f"<p>{escape(p)}</p>" for p in paragraphs)
        if image_cid:
            body += f'<p><img src="cid:{image_cid}" alt="logo"></p>'
        if quote:
            body += "<blockquote>" + escape(quote).replace(CRLF, "<br>") + "</blockquote>"
        return f'<html><head><meta charset="utf-8"></head><body>{body}</body></html>{CRLF}'

    def attachment(self, kind: str | None = None) -> AttachmentSpec:
        rng = self.rng
        kind = kind or rng.choice(("pdf", "csv", "png", "bin"))
        stem = rng.choice(_WORDS)
        if kind == "pdf":
            return AttachmentSpec(f"{stem}-{rng.randint(1, 999)}.pdf", "application/pdf",
                                  _pdf(rng, rng.randint(600, 6000)))
        if kind == "csv":
            rows = [f"{i},{rng.choice(_WORDS)},{rng.randint(1, 500)}" for i in range(20)]
            data = ("id,item,amount" + CRLF + CRLF.join(rows) + CRLF).encode()
            return AttachmentSpec(f"{stem}.csv", "text/csv", data)
        if kind == "png":
            return AttachmentSpec(f"{stem}.png", "image/png", _png(rng, rng.randint(4, 16)))
        data = bytes(rng.randrange(256) for _ in range(rng.randint(200, 3000)))
        return AttachmentSpec(f"{stem}.bin", "application/octet-stream", data)

    # --- whole messages -------------------------------------------------------------

    def compose(
        self,
        envelope: Envelope,
        *,
        kind: str | None = None,
        text: str | None = None,
        html: str | None = None,
        attachments: Sequence[AttachmentSpec] = (),
    ) -> GeneratedMessage:
        """One message. With ``text``/``html`` given, those are the body (UTF-8)."""
        domain = envelope.sender.address.rpartition("@")[2] or "example.com"
        message_id = self.message_id(domain)
        if text is not None or html is not None or attachments:
            kind = "custom"
            root, truth_text, truth_html, atts, malformed = self._custom(
                text, html, attachments)
        else:
            kind = kind or self.choose_kind()
            root, truth_text, truth_html, atts, malformed = self._body(kind, envelope.quote)
        headers = self._headers(envelope, kind, message_id)
        root.headers = [*headers, ("MIME-Version", "1.0"), *root.headers]
        if kind == "no_mime_headers":
            root.headers = [h for h in root.headers
                            if h[0] not in ("MIME-Version", "Content-Type",
                                            "Content-Transfer-Encoding")]
        raw = root.render().encode("latin-1")
        references = tuple(envelope.references)
        return GeneratedMessage(raw, kind, envelope.subject, message_id, references,
                                truth_text, truth_html, tuple(atts), malformed)

    def _headers(self, env: Envelope, kind: str, message_id: str) -> list[tuple[str, str]]:
        charset, enc = "utf-8", "B"
        if kind in ("encoded_headers", "plain_latin1"):
            charset, enc = "iso-8859-1", "Q"
        elif kind == "alternative_sjis":
            charset = "shift_jis"
        elif kind == "alternative_euckr":
            charset = "euc-kr"
        subject = env.subject
        try:
            subject_value = header_value(subject, charset, enc)
        except UnicodeEncodeError:
            subject_value = header_value(subject, "utf-8", "B")
        if kind == "malformed_encoded_word":
            subject_value = "=?utf-8?B?not*valid*base64?= " + subject_value

        def addr(p: Person) -> str:
            try:
                return format_address(p, charset, enc)
            except UnicodeEncodeError:
                return format_address(p)

        headers: list[tuple[str, str]] = []
        if not env.outbound:
            first = env.to[0].address if env.to else "unknown@example.com"
            headers += [
                ("Delivered-To", first),
                ("Received", f"from mail.{env.sender.address.rpartition('@')[2]} "
                             f"(mail.example.net [192.0.2.{self.rng.randint(1, 254)}]) by "
                             f"mx.google.com; {format_datetime(env.date)}"),
                ("Return-Path", f"<{env.sender.address}>"),
            ]
        headers += [
            ("Date", format_datetime(env.date)),
            ("From", addr(env.sender)),
            ("To", ", ".join(addr(p) for p in env.to)),
        ]
        if env.cc:
            headers.append(("Cc", ", ".join(addr(p) for p in env.cc)))
        headers += [("Subject", subject_value), ("Message-ID", message_id)]
        if env.in_reply_to:
            headers.append(("In-Reply-To", env.in_reply_to))
        if env.references:
            headers.append(("References", f"{CRLF} ".join(env.references)))
        return headers

    def _custom(self, text: str | None, html: str | None,
                attachments: Sequence[AttachmentSpec]
                ) -> tuple[_Part, str | None, str | None, list[AttachmentTruth], bool]:
        bodies = []
        if text is not None:
            bodies.append(_leaf("text/plain", text.encode(), charset="utf-8",
                                cte="quoted-printable"))
        if html is not None:
            bodies.append(_leaf("text/html", html.encode(), charset="utf-8",
                                cte="quoted-printable"))
        if not bodies:
            bodies.append(_leaf("text/plain", b"", charset="utf-8", cte="7bit"))
        body = bodies[0] if len(bodies) == 1 else self._multipart("alternative", bodies)
        if not attachments:
            return body, text, html, [], False
        parts = [body]
        truths = []
        for spec in attachments:
            part, truth = self._attachment_part(spec)
            parts.append(part)
            truths.append(truth)
        return self._multipart("mixed", parts), text, html, truths, False

    def _multipart(self, subtype: str, children: list[_Part], close: bool = True) -> _Part:
        boundary = f"{self.rng.getrandbits(96):024x}"
        return _Part([("Content-Type", f'multipart/{subtype}; boundary="{boundary}"')],
                     children=children, boundary=boundary, close=close)

    @staticmethod
    def _attachment_part(spec: AttachmentSpec, rfc2231: bool = False
                         ) -> tuple[_Part, AttachmentTruth]:
        if rfc2231 or not spec.filename.isascii():
            name_param = f"filename*=UTF-8''{quote(spec.filename)}"
            type_param = f"name*=UTF-8''{quote(spec.filename)}"
        else:
            name_param = f'filename="{spec.filename}"'
            type_param = f'name="{spec.filename}"'
        disposition = "inline" if spec.inline else "attachment"
        extra = [("Content-Disposition", f"{disposition}; {name_param}")]
        if spec.content_id:
            extra.append(("Content-ID", f"<{spec.content_id}>"))
        part = _Part([("Content-Type", f"{spec.mime_type}; {type_param}"),
                      *extra, ("Content-Transfer-Encoding", "base64")], _b64(spec.data))
        truth = AttachmentTruth(spec.filename, spec.mime_type, len(spec.data),
                                hashlib.sha256(spec.data).hexdigest(), spec.inline,
                                spec.content_id)
        return part, truth

    def _body(self, kind: str, quote: str | None  # noqa: C901 - one branch per kind
              ) -> tuple[_Part, str | None, str | None, list[AttachmentTruth], bool]:
        rng = self.rng
        paras = self.paragraphs(_UNICODE_EXTRA if rng.random() < 0.3 else ())
        text = self.text_of(paras, quote)
        html = self.html_of(paras, quote)
        utf8_cte = rng.choice(("quoted-printable", "base64", "8bit"))

        def text_part(value: str, charset: str = "utf-8", cte: str = utf8_cte) -> _Part:
            return _leaf("text/plain", value.encode(charset), charset=charset, cte=cte)

        def html_part(value: str, charset: str = "utf-8", cte: str = utf8_cte) -> _Part:
            return _leaf("text/html", value.encode(charset), charset=charset, cte=cte)

        if kind in ("plain", "encoded_headers", "malformed_encoded_word"):
            return text_part(text), text, None, [], kind == "malformed_encoded_word"
        if kind == "no_mime_headers":
            ascii_text = self.text_of(self.paragraphs(), quote and quote.encode(
                "ascii", "replace").decode())
            return _Part([], ascii_text), ascii_text, None, [], False
        if kind == "plain_latin1":
            text = self.text_of(self.paragraphs(_LATIN1), None)
            return (text_part(text, "iso-8859-1", "quoted-printable"), text, None, [], False)
        if kind in ("alternative", "malformed_truncated"):
            root = self._multipart("alternative", [text_part(text), html_part(html)],
                                   close=kind == "alternative")
            return root, text, html, [], kind == "malformed_truncated"
        if kind == "alternative_sjis":
            paras = self.paragraphs(_JAPANESE)
            text, html = self.text_of(paras), self.html_of(paras)
            html = html.replace('charset="utf-8"', 'charset="shift_jis"')
            root = self._multipart("alternative", [
                text_part(text, "shift_jis", "base64"), html_part(html, "shift_jis", "base64")])
            return root, text, html, [], False
        if kind == "alternative_euckr":
            paras = self.paragraphs(_KOREAN)
            text, html = self.text_of(paras), self.html_of(paras)
            html = html.replace('charset="utf-8"', 'charset="euc-kr"')
            root = self._multipart("alternative", [
                text_part(text, "euc-kr", "base64"), html_part(html, "euc-kr", "8bit")])
            return root, text, html, [], False
        if kind == "html_only":
            return html_part(html), None, html, [], False
        if kind == "large_html":
            big = self.html_of(self.paragraphs(count=2500), quote)
            return html_part(big, cte="base64"), None, big, [], False
        if kind in ("attachments", "rfc2231_filename"):
            alt = self._multipart("alternative", [text_part(text), html_part(html)])
            parts, truths = [alt], []
            for _ in range(rng.randint(1, 3)):
                spec = self.attachment()
                if kind == "rfc2231_filename":
                    spec = AttachmentSpec("résumé " + spec.filename, spec.mime_type, spec.data)
                part, truth = self._attachment_part(spec, rfc2231=kind == "rfc2231_filename")
                parts.append(part)
                truths.append(truth)
            return self._multipart("mixed", parts), text, html, truths, False
        if kind == "related_inline":
            cid = f"img{rng.getrandbits(32):08x}@example.com"
            html = self.html_of(paras, quote, image_cid=cid)
            image = AttachmentSpec("logo.png", "image/png", _png(rng), inline=True,
                                   content_id=cid)
            image_part, truth = self._attachment_part(image)
            related = self._multipart("related", [html_part(html), image_part])
            root = self._multipart("alternative", [text_part(text), related])
            return root, text, html, [truth], False
        if kind == "malformed_charset":
            # Declared as a charset that does not exist: the text cannot be decoded.
            part = _leaf("text/plain", text.encode(), charset="x-unknown-8bit", cte="8bit")
            return part, None, None, [], True
        if kind == "malformed_base64":
            part = text_part(text, cte="base64")
            part.body = part.body[: len(part.body) // 2] + "!!*not base64*!!" + CRLF
            alt = self._multipart("alternative", [part, html_part(html)])
            return alt, None, html, [], True
        raise ValueError(f"unknown message kind {kind!r}")
