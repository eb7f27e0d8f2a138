"""parse_message against realistic Gmail ``format=full`` resources built from real MIME."""

from __future__ import annotations

import base64
import copy
from datetime import datetime
from email.message import EmailMessage
from typing import Any

import pytest

from delightbridge.sync import parse
from delightbridge.sync.parse import (
    Address,
    Attachment,
    BodyPartRef,
    ParsedMessage,
    is_mirrored,
    parse_message,
    render_addresses,
)
from tests.syncengine.gmail_payload import (
    MAILBOX,
    b64url,
    find_part,
    new_message,
    raw_text_part,
    set_raw_text,
    subpart,
    to_gmail,
)


def parse_mime(message: EmailMessage | bytes, **kwargs: Any) -> ParsedMessage:
    return parse_message(to_gmail(message, **kwargs).resource, MAILBOX)


def encoded_word(text: str, charset: str) -> str:
    data = base64.b64encode(text.encode(charset)).decode("ascii")
    return f"=?{charset}?B?{data}?="


# ------------------------------------------------------------------ the test helper


def test_helper_numbers_parts_like_gmail() -> None:
    msg = new_message()
    msg.set_content("plain")
    msg.add_alternative("<p>html</p>", subtype="html")
    subpart(msg, 1).add_related(b"\x89PNG", "image", "png", cid="<c1@x>")
    msg.add_attachment(b"%PDF", maintype="application", subtype="pdf", filename="a.pdf")
    payload = to_gmail(msg).resource["payload"]

    assert payload["partId"] == ""
    assert [p["partId"] for p in payload["parts"]] == ["0", "1"]
    assert [p["partId"] for p in payload["parts"][0]["parts"]] == ["0.0", "0.1"]
    assert find_part(payload, "0.1.1")["mimeType"] == "image/png"
    data = find_part(payload, "0.0")["body"]["data"]
    assert "=" not in data
    assert base64.urlsafe_b64decode(data + "=" * (-len(data) % 4)) == b"plain\r\n"
    assert find_part(payload, "1")["body"] == {"attachmentId": "ANGjdJ_1_1", "size": 4}


# ------------------------------------------------------------------------- bodies


def test_multipart_alternative_gives_html_body_and_plain_text() -> None:
    msg = new_message()
    msg.set_content("Hello Kim,\nYour refund is on its way.\n")
    msg.add_alternative("<p>Hello Kim,<br>Your refund is on its way.</p>\n", subtype="html")

    parsed = parse_mime(msg)

    assert parsed.body_html == "<p>Hello Kim,<br>Your refund is on its way.</p>\n"
    assert parsed.body_text == "Hello Kim,\nYour refund is on its way.\n"
    assert parsed.attachments == ()
    assert parsed.problems == ()


def test_plain_text_only_body_is_escaped_into_one_paragraph() -> None:
    msg = new_message()
    msg.set_content('if a < b && c > d\nthen "quote" it\'s\n\nbye')

    parsed = parse_mime(msg)

    assert parsed.body_text == 'if a < b && c > d\nthen "quote" it\'s\n\nbye\n'
    assert parsed.body_html == (
        "<p>if a &lt; b &amp;&amp; c &gt; d<br />then &quot;quote&quot; it&#39;s"
        "<br /><br />bye<br /></p>"
    )


def test_mixed_with_inline_image_and_attachment() -> None:
    msg = new_message()
    msg.set_content("See the screenshot.")
    msg.add_alternative('<p>See <img src="cid:shot1@noji"></p>', subtype="html")
    subpart(msg, 1).add_related(
        b"\x89PNG\r\n" + bytes(range(256)),
        "image",
        "png",
        cid="<shot1@noji>",
        filename="shot.png",
        disposition="inline",
    )
    msg.add_attachment(
        b"%PDF-1.4 " * 100, maintype="application", subtype="pdf", filename="invoice.pdf"
    )

    parsed = parse_mime(msg)

    assert parsed.body_html == '<p>See <img src="cid:shot1@noji"></p>\n'
    assert parsed.body_text == "See the screenshot.\n"
    assert parsed.attachments == (
        Attachment(
            filename="shot.png",
            mime_type="image/png",
            size=262,
            attachment_id="ANGjdJ_0.1.1_0",
            content_id="shot1@noji",
            inline=True,
            part_id="0.1.1",
        ),
        Attachment(
            filename="invoice.pdf",
            mime_type="application/pdf",
            size=900,
            attachment_id="ANGjdJ_1_1",
            content_id=None,
            inline=False,
            part_id="1",
        ),
    )
    assert parsed.attachments_json[1] == {
        "filename": "invoice.pdf",
        "mime_type": "application/pdf",
        "size": 900,
        "attachment_id": "ANGjdJ_1_1",
        "content_id": None,
        "inline": False,
        "part_id": "1",
    }
    assert parsed.problems == ()


def test_inline_image_without_disposition_is_inline_by_content_id() -> None:
    msg = new_message()
    msg.set_content("<p><img src='cid:logo'></p>", subtype="html")
    msg.add_related(b"GIF89a", "image", "gif", cid="<logo>")
    del subpart(msg, 1)["Content-Disposition"]

    (image,) = parse_mime(msg).attachments

    assert image.content_id == "logo"
    assert image.inline is True
    assert image.filename == ""


def test_deeply_nested_body_is_found() -> None:
    inner = EmailMessage()
    inner.set_content("deep text")
    inner.add_alternative("<b>deep html</b>", subtype="html")
    signed = EmailMessage()
    signed.make_mixed()
    signed.attach(inner)
    msg = new_message()
    msg.make_mixed()
    msg.attach(signed)
    msg.add_attachment(b"x", maintype="application", subtype="octet-stream", filename="x.bin")

    resource = to_gmail(msg).resource
    assert find_part(resource["payload"], "0.0.1")["mimeType"] == "text/html"
    parsed = parse_message(resource, MAILBOX)

    assert parsed.body_html == "<b>deep html</b>\n"
    assert parsed.body_text == "deep text\n"
    assert [a.filename for a in parsed.attachments] == ["x.bin"]


def test_several_html_parts_are_joined_and_plain_parts_rendered_alongside() -> None:
    # Apple Mail splits the HTML around an attachment; lists append a text footer.
    msg = new_message()
    msg.make_mixed()
    msg.attach(raw_text_part(b"<div>first</div>", "html", "utf-8"))
    image = EmailMessage()
    image.set_content(b"GIF89a", maintype="image", subtype="gif", filename="a.gif")
    msg.attach(image)
    msg.attach(raw_text_part(b"<div>second</div>", "html", "utf-8"))
    msg.attach(raw_text_part(b"-- \nlist <footer>", "plain", "utf-8"))

    parsed = parse_mime(msg)

    assert parsed.body_html == (
        "<div>first</div>\n<div>second</div>\n<p>-- <br />list &lt;footer&gt;</p>"
    )
    assert parsed.body_text == "-- \nlist <footer>"
    assert [a.filename for a in parsed.attachments] == ["a.gif"]


def test_text_attachment_is_not_the_body() -> None:
    msg = new_message()
    msg.set_content("The log is attached.")
    msg.add_attachment("ERROR <x>", filename="log.txt")

    parsed = parse_mime(msg)

    assert parsed.body_text == "The log is attached.\n"
    assert [(a.filename, a.mime_type) for a in parsed.attachments] == [("log.txt", "text/plain")]


def test_forwarded_message_is_an_attachment_not_the_body() -> None:
    inner = new_message(subject="Original", message_id="<orig@x>")
    inner.set_content("inner text")
    msg = new_message()
    msg.set_content("See the forwarded mail.")
    msg.add_attachment(inner)

    parsed = parse_mime(msg)

    assert parsed.body_text == "See the forwarded mail.\n"
    assert [a.mime_type for a in parsed.attachments] == ["message/rfc822"]
    assert parsed.attachments[0].attachment_id is not None


def test_large_body_left_out_by_gmail_is_reported_then_read_when_fetched() -> None:
    msg = new_message()
    msg.set_content("short plain")
    msg.add_alternative("<p>" + "big " * 1000 + "</p>", subtype="html")
    fixture = to_gmail(msg, inline_limit=1000)
    html_part = find_part(fixture.resource["payload"], "1")
    assert "data" not in html_part["body"]

    first = parse_message(fixture.resource, MAILBOX)
    assert first.body_text == "short plain\n"
    assert first.body_html == "<p>short plain<br /></p>"
    assert first.missing_body_parts == (
        BodyPartRef(part_id="1", mime_type="text/html", attachment_id="ANGjdJ_1_0", size=4009),
    )
    assert first.problems == ("part 1 (text/html): content not included by Gmail (4009 bytes)",)

    as_bytes = parse_message(fixture.resource, MAILBOX, fetched_bodies=fixture.attachment_data)
    as_b64 = parse_message(
        fixture.resource,
        MAILBOX,
        fetched_bodies={k: b64url(v) for k, v in fixture.attachment_data.items()},
    )
    for parsed in (as_bytes, as_b64):
        assert parsed.body_html.startswith("<p>big big ")
        assert parsed.missing_body_parts == ()
        assert parsed.problems == ()


# ----------------------------------------------------------------------- charsets


def latin1_message() -> bytes:
    return (
        b"From: =?ISO-8859-1?Q?J=FCrgen_M=FCller?= <Juergen@Kunde.example>\r\n"
        b"To: support@noji.example\r\n"
        b"Subject: =?ISO-8859-1?Q?Gr=FC=DFe_aus_K=F6ln?=\r\n"
        b"Date: Thu, 01 Oct 2026 11:00:00 +0200\r\n"
        b"Message-ID: <l1@kunde.example>\r\n"
        b"MIME-Version: 1.0\r\n"
        b"Content-Type: text/plain; charset=ISO-8859-1\r\n"
        b"Content-Transfer-Encoding: quoted-printable\r\n"
        b"\r\n"
        b'Gr=FC=DFe,\r\nbitte um R=FCckerstattung: 5 < 6 & "7" =80.\r\n'
    )


def test_iso_8859_1_body_and_rfc2047_headers() -> None:
    fixture = to_gmail(latin1_message())
    assert fixture.resource["payload"]["partId"] == ""
    assert "data" in fixture.resource["payload"]["body"]

    parsed = parse_message(fixture.resource, MAILBOX)

    assert parsed.subject == "Grüße aus Köln"
    assert parsed.sender == Address(name="Jürgen Müller", email="juergen@kunde.example")
    assert parsed.from_name == "Jürgen Müller"
    # 0x80 is the euro sign in windows-1252, the charset ISO-8859-1 mail really uses.
    assert parsed.body_text == 'Grüße,\nbitte um Rückerstattung: 5 < 6 & "7" €.\n'
    assert parsed.body_html == (
        "<p>Grüße,<br />bitte um Rückerstattung: 5 &lt; 6 &amp; &quot;7&quot; €.<br /></p>"
    )
    assert parsed.problems == ()


def test_shift_jis_body_with_iso_2022_jp_subject() -> None:
    text = "お問い合わせありがとうございます。\n返金は①番の口座へ。"  # ① exists only in cp932
    raw = (
        b"From: =?ISO-2022-JP?B?GyRCOzNFRBsoQg==?= <yamada@kokyaku.example>\r\n"
        b"To: support@noji.example\r\n"
        b"Subject: " + encoded_word("返金について", "iso-2022-jp").encode() + b"\r\n"
        b"MIME-Version: 1.0\r\n"
        b"Content-Type: text/plain; charset=Shift_JIS\r\n"
        b"Content-Transfer-Encoding: base64\r\n"
        b"\r\n" + base64.encodebytes(text.encode("cp932"))
    )

    parsed = parse_mime(raw)

    assert parsed.sender == Address("山田", "yamada@kokyaku.example")
    assert parsed.subject == "返金について"
    assert parsed.body_text == text
    assert parsed.body_html == (
        "<p>お問い合わせありがとうございます。<br />返金は①番の口座へ。</p>"
    )
    assert parsed.problems == ()


def test_euc_kr_html_body_and_korean_display_name() -> None:
    msg = new_message(sender="홍길동 <hong@customer.example>", subject="환불 요청")
    set_raw_text(msg, "<p>안녕하세요, 환불 문의드립니다.</p>".encode("euc-kr"), "html", "EUC-KR")
    fixture = to_gmail(msg)
    raw_from = fixture.resource["payload"]["headers"][0]
    assert raw_from["name"] == "From"
    assert raw_from["value"].startswith("=?utf-8?")

    parsed = parse_message(fixture.resource, MAILBOX)

    assert parsed.sender == Address("홍길동", "hong@customer.example")
    assert parsed.subject == "환불 요청"
    assert parsed.body_html == "<p>안녕하세요, 환불 문의드립니다.</p>"
    assert parsed.body_text is None


@pytest.mark.parametrize(
    ("data", "charset", "expected", "problem"),
    [
        # Outlook's label for Korean; 똠 exists only in the cp949 superset.
        ("똠방각하".encode("cp949"), "ks_c_5601-1987", "똠방각하", None),
        (
            "Grüße".encode(),
            "us-ascii",
            "Grüße",
            "declared charset 'us-ascii' but the content is UTF-8",
        ),
        ("Grüße".encode(), "iso-8859-1", "Grüße", "declared charset 'iso-8859-1' but"),
        (b"Caf\xe9 ok", "utf-8", "Caf\ufffd ok", "invalid utf-8 bytes were replaced"),
        ("Grüße".encode(), "x-made-up", "Grüße", "unknown charset 'x-made-up'; decoded as UTF-8"),
        (b"Caf\xe9", "x-made-up", "Café", "not UTF-8, decoded as windows-1252"),
        (b"abc", "base64", "abc", "unknown charset 'base64'"),
        (b"\\x41\\u0042", "unicode_escape", "\\x41\\u0042", "unknown charset 'unicode_escape'"),
        (b"\x81\x8d", "windows-1252", "\x81\x8d", None),
        (b"plain", "", "plain", None),
    ],
)
def test_charset_fallbacks(data: bytes, charset: str, expected: str, problem: str | None) -> None:
    msg = new_message()
    set_raw_text(msg, data, "plain", charset or '""')

    parsed = parse_mime(msg)

    assert parsed.body_text == expected
    if problem is None:
        assert parsed.problems == ()
    else:
        assert len(parsed.problems) == 1
        assert problem in parsed.problems[0]
        assert parsed.problems[0].startswith("part (root) (text/plain): ")


def test_rfc2047_word_split_inside_a_multibyte_character() -> None:
    msg = new_message()
    msg.set_content("x")
    resource = to_gmail(msg).resource
    headers = resource["payload"]["headers"]
    subject = next(h for h in headers if h["name"] == "Subject")
    subject["value"] = (
        "Re: =?UTF-8?Q?Th=E1=BA=A7y_g=E1=BB=ADi_b=C3=A0i_t=E1=BA=ADp_cho_em_v=E1=BB?=\r\n"
        " =?UTF-8?Q?=9Bi.?="
    )

    assert parse_message(resource, MAILBOX).subject == "Re: Thầy gửi bài tập cho em với."


# ------------------------------------------------------------------------- headers


def test_reply_headers_and_address_lists() -> None:
    msg = new_message(
        sender="Support <support@noji.example>",
        to='"Doe, John" <John@X.example>, jane@y.example',
        subject="Re: Refund please",
        message_id="<r1@noji.example>",
    )
    msg["Cc"] = f"{encoded_word('Ünal', 'utf-8')} <unal@z.example>"
    msg["Bcc"] = "audit@noji.example"
    msg["Reply-To"] = "Billing <billing@noji.example>"
    msg["In-Reply-To"] = "<a1@customer.example>"
    msg["References"] = "<a0@customer.example> " + " ".join(f"<m{i}@x.example>" for i in range(12))
    msg.set_content("Sure.")
    fixture = to_gmail(msg, label_ids=("SENT",))

    parsed = parse_message(fixture.resource, MAILBOX)

    assert parsed.to == (Address("Doe, John", "john@x.example"), Address("", "jane@y.example"))
    assert parsed.to_email == "john@x.example"  # one address, as the web app stores
    # As written (not decoded, unfolded): the web app picks the reply's From with them.
    written = {h["name"]: h["value"] for h in fixture.resource["payload"]["headers"]}
    assert parsed.to_header == '"Doe, John" <John@X.example>, jane@y.example'
    assert written["Cc"].startswith("=?utf-8?")
    assert parsed.cc_header == " ".join(written["Cc"].split())
    assert parsed.cc == (Address("Ünal", "unal@z.example"),)
    assert parsed.cc_email == "unal@z.example"
    assert parsed.bcc_email == "audit@noji.example"
    assert parsed.reply_to == (Address("Billing", "billing@noji.example"),)
    assert parsed.reply_to_email == "billing@noji.example"
    assert parsed.rfc_message_id == "<r1@noji.example>"
    assert parsed.in_reply_to == "<a1@customer.example>"
    assert parsed.references == (
        "<a0@customer.example> " + " ".join(f"<m{i}@x.example>" for i in range(12))
    )
    assert parsed.direction == "outbound"


def test_resource_fields() -> None:
    msg = new_message(date="Thu, 01 Oct 2026 11:00:00 +0200")
    msg.set_content("x")
    fixture = to_gmail(
        msg,
        label_ids=("INBOX", "UNREAD", "CATEGORY_PERSONAL", "Label_12"),
        internal_date_ms=1_790_000_000_123,
        history_id="98765432101234567",
        snippet="It&#39;s &lt;fine&gt; &amp; done",
    )

    parsed = parse_message(fixture.resource, MAILBOX)

    assert parsed.gmail_message_id == "18c1a2b3c4d5e6f7"
    assert parsed.gmail_thread_id == "18c1a2b3c4d5e6f0"
    assert parsed.label_ids == ("INBOX", "UNREAD", "CATEGORY_PERSONAL", "Label_12")
    assert parsed.history_id == 98765432101234567
    assert parsed.internal_date == datetime(2026, 9, 21, 14, 13, 20, 123000)
    assert parsed.internal_date.tzinfo is None
    assert parsed.sent_at == parsed.internal_date
    assert parsed.date_header == datetime(2026, 10, 1, 9, 0)
    assert parsed.snippet == "It's <fine> & done"
    assert parsed.size_estimate == fixture.resource["sizeEstimate"]
    assert parsed.is_mirrored is True


@pytest.mark.parametrize(
    ("sender", "labels", "direction"),
    [
        ("Kim <kim@customer.example>", ("INBOX",), "inbound"),
        ("Support Team <Support@Noji.Example>", ("INBOX",), "outbound"),
        ("Alias <help@noji-alias.example>", ("SENT",), "outbound"),
        ('"support@noji.example" <spoof@evil.example>', ("INBOX",), "inbound"),
        ("undisclosed", ("INBOX",), "inbound"),
    ],
)
def test_direction(sender: str, labels: tuple[str, ...], direction: str) -> None:
    msg = new_message(sender=sender)
    msg.set_content("x")
    assert parse_mime(msg, label_ids=labels).direction == direction


def test_empty_group_and_missing_headers() -> None:
    resource = {
        "id": "1a",
        "threadId": "1a",
        "payload": {
            "partId": "",
            "mimeType": "text/plain",
            "headers": [{"name": "To", "value": "undisclosed-recipients:;"}],
            "body": {"size": 2, "data": b64url(b"hi")},
        },
    }

    parsed = parse_message(resource, MAILBOX)

    assert parsed.subject == ""
    assert parsed.sender == Address("", "")
    assert parsed.from_email == "unknown@example.com"  # the web app's placeholder
    assert parsed.from_name == "Unknown"
    assert parsed.to == ()
    assert parsed.to_email == MAILBOX  # no address in To: the mailbox, as the web app does
    assert parsed.to_header == "undisclosed-recipients:;"
    assert parsed.cc_header is None
    assert parsed.date_header is None
    assert parsed.rfc_message_id is None
    assert parsed.body_text == "hi"
    assert parsed.label_ids == ()
    assert parsed.snippet == ""
    assert parsed.size_estimate is None
    assert parsed.internal_date == datetime(1970, 1, 1)
    assert parsed.history_id == 0
    assert parsed.direction == "inbound"
    assert parsed.problems == (
        "no sender address (From header missing)",
        "unreadable historyId 'None'",
        "unreadable internalDate 'None'",
    )


def test_header_level_problems_are_noted() -> None:
    resource = {
        "id": "m",
        "threadId": "t",
        "historyId": "12",
        "internalDate": "9" * 25,  # beyond any datetime
        "sizeEstimate": 2**40,
        "payload": {
            "partId": "",
            "mimeType": "text/plain",
            "headers": [
                {"name": "From", "value": "First <first@x.example>"},
                {"name": "FROM", "value": "Second <second@x.example>"},
                {"name": "Date", "value": "the day after tomorrow"},
                {"name": "Subject", "value": "=?x-klingon?Q?Qapla=21?= =?utf-8?B?!!!?="},
            ],
            "body": {"data": b64url(b"x")},
        },
    }

    parsed = parse_message(resource, MAILBOX)

    assert parsed.sender.email == "first@x.example"
    assert parsed.date_header is None
    assert parsed.internal_date == datetime(1970, 1, 1)
    assert parsed.size_estimate is None
    # The unknown charset is decoded as UTF-8; the malformed word stays literal.
    assert parsed.subject == "Qapla! =?utf-8?B?!!!?="
    assert parsed.problems == (
        "Subject: encoded header text: unknown charset 'x-klingon'; decoded as UTF-8",
        "several From headers; the first was used",
        "unreadable Date header 'the day after tomorrow'",
        f"unreadable internalDate '{'9' * 25}'",
    )


def test_missing_payload_is_noted() -> None:
    parsed = parse_message(
        {"id": "m", "threadId": "t", "historyId": "1", "internalDate": "0"}, MAILBOX
    )
    assert parsed.body_html == ""
    assert parsed.body_text is None
    assert parsed.problems == (
        "no payload: the message was not fetched with format=full",
        "no sender address (From header missing)",
    )


def test_problem_notes_are_capped() -> None:
    leaves = [
        {"partId": str(i), "mimeType": "text/plain", "body": {"data": "!"}}
        for i in range(parse.MAX_PROBLEMS + 7)
    ]
    resource = {
        "id": "m",
        "threadId": "t",
        "historyId": "1",
        "internalDate": "0",
        "payload": {"mimeType": "multipart/mixed", "parts": leaves},
    }
    problems = parse_message(resource, MAILBOX).problems
    assert len(problems) == parse.MAX_PROBLEMS + 1
    # One note per part, plus the missing From: 8 beyond the cap.
    assert problems[-1] == "... and 8 more problems"


def test_from_without_address_keeps_its_text_as_name() -> None:
    msg = new_message(sender="Mail Delivery Subsystem")
    msg.set_content("bounce")
    parsed = parse_mime(msg)
    assert parsed.sender == Address("Mail Delivery Subsystem", "")
    assert parsed.from_name == "Mail Delivery Subsystem"


def test_internal_date_falls_back_to_date_header() -> None:
    msg = new_message(date="Thu, 01 Oct 2026 11:00:00 +0200")
    msg.set_content("x")
    resource = to_gmail(msg).resource
    resource["internalDate"] = "soon"
    parsed = parse_message(resource, MAILBOX)
    assert parsed.internal_date == datetime(2026, 10, 1, 9, 0)
    assert parsed.problems == ("unreadable internalDate 'soon'",)


@pytest.mark.parametrize("missing", ["id", "threadId"])
def test_resource_without_ids_is_not_a_message(missing: str) -> None:
    msg = new_message()
    msg.set_content("x")
    resource = to_gmail(msg).resource
    del resource[missing]
    with pytest.raises(ValueError, match=missing):
        parse_message(resource, MAILBOX)


@pytest.mark.parametrize("resource", [None, [], "x", {"id": "", "threadId": "t"}, {"id": 5}])
def test_non_messages_raise_value_error(resource: Any) -> None:
    with pytest.raises(ValueError, match="not a Gmail message"):
        parse_message(resource, MAILBOX)


# ------------------------------------------------------------------ hostile content


def test_injected_line_breaks_and_nul_never_reach_single_line_fields() -> None:
    msg = new_message()
    msg.set_content("body\x00 with NUL")
    msg.add_attachment(b"x", maintype="application", subtype="pdf", filename="a.pdf")
    resource = to_gmail(msg).resource
    resource["payload"]["headers"] = [
        {"name": "From", "value": "Evil\r\nBcc: x@y <evil@x.example>"},
        {"name": "Subject", "value": "Hello\r\nBcc: victim@x.example\x00\u2028!"},
        {"name": "Message-ID", "value": "<a@b>\r\nX-Injected: 1"},
        {"name": "In-Reply-To", "value": "<p@q>\n"},
        {"name": "To", "value": "a@b.example\r\n, c@d.example"},
    ]
    find_part(resource["payload"], "1")["filename"] = "inv\r\noice\x00.pdf"
    resource["labelIds"] = ["INBOX\r\n", "\x00"]

    parsed = parse_message(resource, MAILBOX)

    assert parsed.subject == "Hello Bcc: victim@x.example !"
    assert parsed.rfc_message_id == "<a@b> X-Injected: 1"
    assert parsed.in_reply_to == "<p@q>"
    assert parsed.to == (Address("", "a@b.example"), Address("", "c@d.example"))
    assert parsed.to_header == "a@b.example , c@d.example"  # unfolded as the web app does
    assert parsed.attachments[0].filename == "inv oice.pdf"
    assert parsed.label_ids == ("INBOX",)
    assert parsed.body_text == "body with NUL\n"
    assert any("NUL characters were removed" in p for p in parsed.problems)
    for value in (parsed.sender.name, parsed.sender.email, parsed.from_name):
        assert "\r" not in value
        assert "\n" not in value


def test_bad_base64_is_noted_and_the_rest_is_still_read() -> None:
    msg = new_message()
    msg.set_content("plain survives")
    msg.add_alternative("<p>x</p>", subtype="html")
    resource = to_gmail(msg).resource
    find_part(resource["payload"], "1")["body"]["data"] = "PHA+!!!*aGk8L3A+x"

    parsed = parse_message(resource, MAILBOX)

    assert parsed.body_text == "plain survives\n"
    assert parsed.body_html.startswith("<p>hi")
    assert parsed.problems == (
        "part 1 (text/html): invalid base64url characters were skipped; "
        "truncated base64url data: the last character was dropped",
    )


def nested(depth: int, leaf: dict[str, Any]) -> dict[str, Any]:
    part = leaf
    for level in range(depth, 0, -1):
        part = {
            "partId": ".".join("0" * level),
            "mimeType": "multipart/mixed",
            "body": {"size": 0},
            "parts": [part],
        }
    return {"id": "m", "threadId": "t", "payload": part}


TEXT_LEAF = {"mimeType": "text/plain", "body": {"data": b64url(b"at the bottom")}}


def test_forty_levels_of_nesting_are_read() -> None:
    parsed = parse_message(nested(40, TEXT_LEAF), MAILBOX)
    assert parsed.body_text == "at the bottom"


def test_absurd_nesting_is_cut_without_raising() -> None:
    parsed = parse_message(nested(5000, TEXT_LEAF), MAILBOX)
    assert parsed.body_text is None
    assert f"MIME parts nested deeper than {parse.MAX_DEPTH} levels were not read" in (
        parsed.problems
    )


def test_too_many_parts_are_cut() -> None:
    leaves = [dict(TEXT_LEAF, partId=str(i)) for i in range(parse.MAX_PARTS + 10)]
    resource = {
        "id": "m",
        "threadId": "t",
        "payload": {"mimeType": "multipart/mixed", "parts": leaves},
    }
    parsed = parse_message(resource, MAILBOX)
    assert parsed.body_text is not None
    assert parsed.body_text.count("at the bottom") == parse.MAX_PARTS - 1
    assert f"more than {parse.MAX_PARTS} MIME parts; the rest were not read" in parsed.problems


def test_huge_body_is_cut() -> None:
    text = "a" * (parse.MAX_BODY_CHARS + 10)
    resource = {
        "id": "m",
        "threadId": "t",
        "payload": {"mimeType": "text/plain", "body": {"data": b64url(text.encode())}},
    }
    parsed = parse_message(resource, MAILBOX)
    assert parsed.body_text is not None
    assert len(parsed.body_text) == parse.MAX_BODY_CHARS
    assert len(parsed.body_html) == parse.MAX_BODY_CHARS
    assert "text body longer than 5000000 characters was cut" in parsed.problems


def test_wrongly_typed_fields_do_not_raise() -> None:
    resource: dict[str, Any] = {
        "id": "m",
        "threadId": "t",
        "labelIds": "INBOX",
        "snippet": 12,
        "historyId": -5,
        "internalDate": 1e30,
        "sizeEstimate": "big",
        "payload": {
            "mimeType": 7,
            "headers": {"From": "x"},
            "parts": [
                None,
                "part",
                {"body": "data", "mimeType": "text/html"},
                {"mimeType": "text/plain", "body": {"data": 42, "size": "x"}},
                {"mimeType": "image/png", "body": {"size": -1, "data": "AAAA"}},
                {"mimeType": "multipart/alternative", "parts": []},
            ],
        },
    }
    parsed = parse_message(resource, MAILBOX)
    assert parsed.label_ids == ()
    assert parsed.history_id == 0
    assert parsed.body_html == ""
    assert [a.size for a in parsed.attachments] == [3]
    assert "part (no partId) (text/plain): body data is not a string" in parsed.problems


def test_an_unexpected_failure_in_one_part_only_loses_that_part(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    msg = new_message()
    msg.set_content("kept")
    msg.add_attachment(b"x", maintype="application", subtype="pdf", filename="a.pdf")
    resource = to_gmail(msg).resource

    def explode(*args: Any) -> Attachment:
        raise KeyError("bug")

    monkeypatch.setattr(parse, "_attachment", explode)
    parsed = parse_message(resource, MAILBOX)

    assert parsed.body_text == "kept\n"
    assert parsed.attachments == ()
    assert parsed.problems == ("part 1 could not be read (KeyError)",)


def test_lone_surrogates_become_replacement_characters() -> None:
    resource = {
        "id": "m",
        "threadId": "t",
        "payload": {
            "mimeType": "text/html",
            "headers": [
                {"name": "Subject", "value": "bad \ud800 surrogate"},  # JSON allows it
                {"name": "Content-Type", "value": "text/html; charset=utf-7"},
            ],
            "body": {"data": b64url(b"a+2D0AQQ-b")},  # UTF-7 of a lone high surrogate
        },
    }
    parsed = parse_message(resource, MAILBOX)
    assert parsed.subject == "bad \ufffd surrogate"
    assert parsed.body_html == "a\ufffdAb"


# ---------------------------------------------------------------- hash and helpers


def hashed_fixture() -> dict[str, Any]:
    msg = new_message()
    msg.set_content("Hello")
    msg.add_attachment(b"%PDF", maintype="application", subtype="pdf", filename="a.pdf")
    return to_gmail(msg).resource


def test_content_hash_is_stable_for_identical_content() -> None:
    first = hashed_fixture()
    second = copy.deepcopy(first)
    # Gmail issues new attachment ids on every fetch; labels change without content.
    find_part(second["payload"], "1")["body"]["attachmentId"] = "ANGjdJ_other"
    second["labelIds"] = ["INBOX"]
    second["historyId"] = "99999"

    a, b = parse_message(first, MAILBOX), parse_message(second, MAILBOX)

    assert a.content_hash == b.content_hash
    assert len(a.content_hash) == 64
    assert int(a.content_hash, 16) >= 0


@pytest.mark.parametrize(
    "change",
    [
        lambda r: find_part(r["payload"], "0")["body"].update(data=b64url(b"Hello!")),
        lambda r: find_part(r["payload"], "1").update(filename="b.pdf"),
        lambda r: find_part(r["payload"], "1")["body"].update(size=5),
    ],
)
def test_content_hash_changes_with_content(change: Any) -> None:
    original = hashed_fixture()
    changed = copy.deepcopy(original)
    change(changed)
    assert (
        parse_message(original, MAILBOX).content_hash
        != parse_message(changed, MAILBOX).content_hash
    )


@pytest.mark.parametrize(
    ("labels", "mirrored"),
    [
        ((), True),
        (("INBOX", "UNREAD"), True),
        (("SENT",), True),
        (("CATEGORY_UPDATES",), True),
        (("INBOX", "SPAM"), False),
        (("TRASH",), False),
        (("DRAFT",), False),
        (["SENT", "DRAFT"], False),
    ],
)
def test_is_mirrored(labels: tuple[str, ...], mirrored: bool) -> None:
    assert is_mirrored(labels) is mirrored


def test_render_addresses() -> None:
    assert render_addresses([]) == ""
    assert render_addresses([Address("A", "a@x"), Address("", ""), Address("", "b@y")]) == (
        "a@x, b@y"
    )
    assert Address("", "a@x").display_name == "a@x"
