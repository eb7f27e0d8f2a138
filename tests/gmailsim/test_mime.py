"""The deterministic MIME generator and Gmail's derivation of payloads from it."""

from __future__ import annotations

import base64
import hashlib
from collections import Counter
from datetime import UTC, datetime
from email import policy
from email.parser import BytesParser

import pytest
from gmailsim import Clock, Simulator
from gmailsim.mime import KINDS, Envelope, MessageFactory, Person, encode_word
from gmailsim.payload import AttachmentIds, decode_header_value, parse, part_resource

ME = Person("Support Team", "support@example.com")
DATE = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)


def compose(seed: int, kind: str) -> tuple[MessageFactory, bytes]:
    factory = MessageFactory(seed)
    envelope = Envelope(sender=factory.person(), to=[ME], subject="Ordre n° 5 — 注文", date=DATE)
    return factory, factory.compose(envelope, kind=kind).raw


def test_same_seed_same_bytes_other_seed_other_bytes() -> None:
    for kind in KINDS:
        assert compose(1, kind)[1] == compose(1, kind)[1]
        assert compose(1, kind)[1] != compose(2, kind)[1]


def test_seeded_mailboxes_are_byte_identical_for_a_seed() -> None:
    def hashes(seed: int) -> list[str]:
        sim = Simulator(seed=4, clock=Clock(start=1_700_000_000, frozen=True))
        sim.create_mailbox("a@example.com")
        sim.seed("a@example.com", messages=60, threads=15, seed=seed)
        return [m.raw_sha256 for m in sim.snapshot("a@example.com").messages]

    assert hashes(8) == hashes(8)
    assert hashes(8) != hashes(9)


@pytest.mark.parametrize("kind", KINDS)
def test_every_kind_parses_and_its_ground_truth_is_recoverable(kind: str) -> None:
    factory = MessageFactory(3)
    envelope = Envelope(sender=factory.person(), to=[ME], subject="Café & 注文 #1", date=DATE,
                        in_reply_to="<a@x>", references=("<a@x>",), quote="earlier\r\ntext")
    message = factory.compose(envelope, kind=kind)
    assert message.raw.isascii() or kind in ("alternative", "plain", "encoded_headers",
                                              "malformed_encoded_word", "alternative_euckr",
                                              "attachments", "related_inline",
                                              "rfc2231_filename", "malformed_charset",
                                              "malformed_base64", "malformed_truncated")
    parsed = parse(message.raw)
    leaves = [p for p in parsed.walk() if p.data is not None]
    for mime_type, truth in (("text/plain", message.text), ("text/html", message.html)):
        if truth is None:
            continue
        part = next(p for p in leaves if p.mime_type == mime_type and not p.filename)
        assert part.data is not None
        assert part.data.decode(part.charset or "us-ascii") == truth
    named = [p for p in leaves if p.filename]
    assert len(named) == len(message.attachments)
    for part, attachment in zip(named, message.attachments, strict=True):
        assert part.filename == attachment.filename
        assert part.data is not None
        assert hashlib.sha256(part.data).hexdigest() == attachment.sha256
        assert part.mime_type == attachment.mime_type
    assert parsed.header("In-Reply-To") == "<a@x>"
    assert message.malformed == kind.startswith("malformed")


def test_a_seeded_mailbox_has_the_variety_a_support_inbox_sees() -> None:
    sim = Simulator(seed=1)
    sim.create_mailbox("a@example.com")
    sim.seed("a@example.com", messages=400, threads=60, seed=2)
    snapshot = sim.snapshot("a@example.com")
    kinds = Counter(m.kind for m in snapshot.messages)
    assert {"plain", "alternative", "alternative_sjis", "alternative_euckr", "plain_latin1",
            "attachments", "related_inline", "encoded_headers"} <= set(kinds)
    assert sum(k.startswith("malformed") for k in kinds.elements()) >= 5
    sizes = Counter(len(v) for v in snapshot.threads.values())
    assert max(sizes) >= 15, "some long threads"
    assert sizes[1] + sizes[2] >= 10, "and many short ones"
    labels = Counter(label for m in snapshot.messages for label in m.label_ids)
    assert {"INBOX", "SENT", "UNREAD", "STARRED", "TRASH", "SPAM", "IMPORTANT",
            "CATEGORY_UPDATES", "Label_1"} <= set(labels)
    assert any(m.text is None and m.html is not None for m in snapshot.messages)
    assert any(a.inline for m in snapshot.messages for a in m.attachments)
    with sim.lock:
        state = sim.state("a@example.com")
        charsets = {p.charset for m in state.messages.values() for p in m.parsed.walk()}
        in_reply = sum(1 for m in state.messages.values() if m.parsed.header("In-Reply-To"))
    assert {"utf-8", "iso-8859-1", "shift_jis", "euc-kr"} <= charsets
    assert in_reply == 400 - 60


def test_rfc2047_words_are_decoded_and_broken_ones_kept() -> None:
    for charset, encoding in (("utf-8", "B"), ("iso-8859-1", "Q"), ("shift_jis", "B"),
                              ("euc-kr", "B")):
        text = {"iso-8859-1": "Café crème à 5 €"[:-2], "shift_jis": "注文番号について",
                "euc-kr": "주문 확인"}.get(charset, "Grüße 🎉 and a long subject " * 3)
        assert decode_header_value(encode_word(text, charset, encoding)) == text
    broken = "=?utf-8?B?not*base64?= =?x-nope?Q?abc?= ok"
    assert decode_header_value(broken) == broken
    split = "=?utf-8?B?w6k=?= =?UTF-8?B?w6k=?=\r\n =?utf-8?Q?_=C3?= =?utf-8?Q?=A9?="
    assert decode_header_value(split) == "éé é"


def test_full_payload_shape_and_attachment_ids() -> None:
    factory = MessageFactory(9)
    envelope = Envelope(sender=factory.person(), to=[ME], subject="Files", date=DATE)
    message = factory.compose(envelope, kind="related_inline")
    parsed = parse(message.raw)
    ids = AttachmentIds(b"k" * 32)
    payload = part_resource(parsed.root, lambda part: ids.make("18a0000000000001", part),
                            large_threshold=1 << 20)
    assert payload["partId"] == ""
    assert payload["body"] == {"size": 0}
    alternative = payload["parts"]
    assert [p["partId"] for p in alternative] == ["0", "1"]
    related = alternative[1]
    assert related["mimeType"] == "multipart/related"
    html, image = related["parts"]
    assert (html["partId"], image["partId"]) == ("1.0", "1.1")
    assert "data" in html["body"]
    assert html["filename"] == ""
    assert image["filename"] == "logo.png"
    assert "data" not in image["body"]
    assert ids.resolve(image["body"]["attachmentId"]) == ("18a0000000000001", "1.1")
    assert ids.resolve(image["body"]["attachmentId"][:-2] + "AA") is None
    headers = {h["name"] for h in image["headers"]}
    assert {"Content-Type", "Content-Disposition", "Content-ID"} <= headers


def test_large_bodies_move_behind_an_attachment_id() -> None:
    factory = MessageFactory(9)
    envelope = Envelope(sender=factory.person(), to=[ME], subject="Big", date=DATE)
    message = factory.compose(envelope, kind="large_html")
    parsed = parse(message.raw)
    small = part_resource(parsed.root, lambda p: "att", large_threshold=1024)
    big = part_resource(parsed.root, lambda p: "att", large_threshold=10 << 20)
    assert small["body"] == {"attachmentId": "att", "size": len(message.html.encode())}
    assert base64.urlsafe_b64decode(big["body"]["data"]).decode() == message.html


def test_snippet_is_plain_text_escaped_like_gmail() -> None:
    raw = (b"Content-Type: text/html; charset=utf-8\r\n\r\n"
           b"<html><style>p{}</style><p>Don't &amp; \"quote\"</p>\r\n<p>  <b>next</b></p>")
    assert parse(raw).snippet == "Don&#39;t &amp; &quot;quote&quot; next"
    long = b"Content-Type: text/plain\r\n\r\n" + b"word " * 100
    assert len(parse(long).snippet) == 200


def test_malformed_messages_never_break_the_parser() -> None:
    cases = [
        b"",
        b"Subject: no body",
        b"Content-Type: multipart/mixed\r\n\r\nno boundary at all",
        b"Content-Type: multipart/mixed; boundary=x\r\n\r\n--x\r\nContent-Type: text/plain\r\n"
        b"\r\nunterminated",
        b"Content-Type: text/plain; charset=bogus\r\nContent-Transfer-Encoding: base64\r\n\r\n"
        b"%%%not base64%%%",
        b"Subject: =?utf-8?B?\xff\xfe?=\r\n\r\nbody",
    ]
    for raw in cases:
        parsed = parse(raw)
        resource = part_resource(parsed.root, lambda p: "a", large_threshold=100)
        assert resource["partId"] == ""
        assert isinstance(parsed.snippet, str)


def test_generated_mime_is_standard_enough_for_the_stdlib() -> None:
    factory = MessageFactory(5)
    for kind in KINDS:
        envelope = Envelope(sender=factory.person(), to=[ME], subject="x", date=DATE)
        raw = factory.compose(envelope, kind=kind).raw
        message = BytesParser(policy=policy.default).parsebytes(raw)
        assert message["Message-ID"]
        assert b"\r\n" in raw
        assert b"\n" not in raw.replace(b"\r\n", b"")
