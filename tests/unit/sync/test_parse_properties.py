"""Property: no garbage inside a message resource makes parse_message raise, and nothing
it returns can break a row (NUL, lone surrogates) or a line (CR, LF and friends)."""

from __future__ import annotations

import base64
import re
from datetime import datetime
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from delightbridge.sync.mime_text import b64url_decode, clean_line, decode_bytes, decode_rfc2047
from delightbridge.sync.parse import ParsedMessage, parse_message

# Fragments that have broken mail parsers: line breaks of every kind, NUL, lone
# surrogates, encoded-words with bad charsets / bad payloads, folded continuations.
NASTY = [
    "\r\n",
    "\n",
    "\r",
    "\x00",
    "\x0b",
    "\x85",
    "\u2028",
    "\u2029",
    "\ud800",
    "\udfff",
    "\t",
    "=?utf-8?b?AAAA?=",
    "=?x-bogus?q?=00=0D=0A?=",
    "=?utf-7?b?K0FEdy0=?=",
    "=?unicode_escape?q?\\x00?=",
    "=?utf-8*en?Q?=E2=80=A8?=",
    "=?iso-8859-1?q?a\r\n b?=",
    "\r\nBcc: evil@x.example",
    '"a, b" <a@b>',
    "<",
    ">",
    "@",
    ",",
    ";",
    ":",
    "undisclosed-recipients:;",
]

any_char = st.characters(exclude_categories=())  # includes surrogates and controls
nasty_text = st.lists(
    st.one_of(st.sampled_from(NASTY), st.text(any_char, max_size=8)), max_size=8
).map("".join)
b64_of_bytes = st.binary(max_size=64).map(
    lambda b: base64.urlsafe_b64encode(b).decode().rstrip("=")
)
scalar: st.SearchStrategy[Any] = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=True, allow_infinity=True),
    nasty_text,
    b64_of_bytes,
)
garbage = st.recursive(
    scalar,
    lambda inner: st.one_of(
        st.lists(inner, max_size=3), st.dictionaries(nasty_text, inner, max_size=3)
    ),
    max_leaves=6,
)
HEADER_NAMES = [
    "From",
    "To",
    "Cc",
    "Bcc",
    "Reply-To",
    "Sender",
    "Subject",
    "Date",
    "Message-ID",
    "In-Reply-To",
    "References",
    "Content-Type",
    "Content-Disposition",
    "Content-ID",
]
CHARSETS = [
    "utf-8",
    "iso-8859-1",
    "shift_jis",
    "euc-kr",
    "utf-7",
    "utf-16",
    "base64",
    "rot13",
    "x-nope",
]
header_value = st.one_of(
    nasty_text,
    st.builds(
        lambda t, c, rest: f"{t}; charset={c}; name={rest}",
        st.sampled_from(["text/plain", "text/html", "image/png", "multipart/mixed"]),
        st.sampled_from(CHARSETS),
        nasty_text,
    ),
    st.builds(lambda rest: f"attachment; filename*=utf-8''{rest}", nasty_text),
)
header = st.one_of(
    st.fixed_dictionaries({"name": st.sampled_from(HEADER_NAMES), "value": header_value}),
    st.fixed_dictionaries({"name": nasty_text, "value": nasty_text}),
    garbage,
)
body = st.one_of(
    st.fixed_dictionaries(
        {},
        optional={
            "data": st.one_of(b64_of_bytes, nasty_text, garbage),
            "attachmentId": st.one_of(nasty_text, garbage),
            "size": st.one_of(st.integers(), garbage),
        },
    ),
    garbage,
)
mime_type = st.one_of(
    st.sampled_from(
        [
            "text/plain",
            "text/html",
            "multipart/alternative",
            "multipart/mixed",
            "multipart/related",
            "message/rfc822",
            "image/png",
            "application/pdf",
        ]
    ),
    nasty_text,
    garbage,
)
part_fields = {
    "partId": st.one_of(nasty_text, garbage),
    "mimeType": mime_type,
    "filename": st.one_of(nasty_text, garbage),
    "headers": st.one_of(st.lists(header, max_size=6), garbage),
    "body": body,
}
leaf_part = st.fixed_dictionaries({}, optional=part_fields)
part = st.recursive(
    leaf_part,
    lambda children: st.fixed_dictionaries(
        {"parts": st.one_of(st.lists(children, max_size=4), garbage)}, optional=part_fields
    ),
    max_leaves=12,
)
resource = st.fixed_dictionaries(
    {
        "id": st.from_regex(r"[0-9a-f]{1,16}", fullmatch=True),
        "threadId": st.from_regex(r"[0-9a-f]{1,16}", fullmatch=True),
    },
    optional={
        "labelIds": st.one_of(st.lists(st.one_of(nasty_text, garbage), max_size=4), garbage),
        "snippet": st.one_of(nasty_text, garbage),
        "historyId": st.one_of(st.integers(), nasty_text, garbage),
        "internalDate": st.one_of(
            st.integers(min_value=-(2**64), max_value=2**64), nasty_text, garbage
        ),
        "sizeEstimate": st.one_of(st.integers(), garbage),
        "payload": st.one_of(part, garbage),
        "raw": garbage,
    },
)

# Well-formed structure with hostile values: reaches header, charset and body code.
address_value = st.lists(
    st.one_of(
        st.sampled_from(NASTY),
        st.sampled_from(
            [
                "Kim <kim@customer.example>",
                "support@noji.example",
                "=?utf-8?b?7ZmN6ri464+Z?= <hong@x.example>",
                '"Doe, J" <J@X.example>',
                "(comment) a@b.example",
                "Group: a@b.example, c@d.example;",
            ]
        ),
        st.text(any_char, max_size=6),
    ),
    max_size=5,
).map("".join)
date_value = st.one_of(
    st.sampled_from(
        [
            "Thu, 01 Oct 2026 11:00:00 +0200",
            "Thu, 01 Oct 2026 11:00:00",
            "31 Dec 9999 23:59:59 -1200",
            "01 Jan 0001 00:00:00 +1400",
            "Mon, 99 Foo 99999 99:99:99 +9999",
        ]
    ),
    nasty_text,
)
plausible_header = st.one_of(
    st.fixed_dictionaries(
        {
            "name": st.sampled_from(["From", "To", "Cc", "Bcc", "Reply-To", "Sender"]),
            "value": address_value,
        }
    ),
    st.fixed_dictionaries({"name": st.just("Date"), "value": date_value}),
    st.fixed_dictionaries({"name": st.sampled_from(HEADER_NAMES), "value": header_value}),
)
body_bytes = st.one_of(
    st.binary(max_size=80),
    nasty_text.map(lambda t: t.encode("utf-8", "surrogatepass")),
    st.sampled_from(["<p>x &amp; y</p>", "a < b\r\nc", "日本語", "한국어"]).flatmap(
        lambda t: st.sampled_from(["utf-8", "shift_jis", "euc-kr", "utf-16"]).map(
            lambda c: t.encode(c, "replace")
        )
    ),
)
plausible_leaf = st.fixed_dictionaries(
    {
        "partId": st.from_regex(r"[0-9.]{0,6}", fullmatch=True),
        "mimeType": st.sampled_from(["text/plain", "text/html", "image/png", "message/rfc822"]),
        "filename": st.one_of(st.just(""), nasty_text),
        "headers": st.lists(plausible_header, max_size=4),
        "body": st.one_of(
            st.builds(
                lambda b: {
                    "size": len(b),
                    "data": base64.urlsafe_b64encode(b).decode().rstrip("="),
                },
                body_bytes,
            ),
            st.builds(lambda a, n: {"attachmentId": a, "size": n}, nasty_text, st.integers()),
        ),
    }
)
plausible_part = st.recursive(
    plausible_leaf,
    lambda children: st.fixed_dictionaries(
        {
            "partId": st.from_regex(r"[0-9.]{0,6}", fullmatch=True),
            "mimeType": st.sampled_from(
                ["multipart/mixed", "multipart/alternative", "multipart/related", "multipart/x"]
            ),
            "headers": st.lists(plausible_header, max_size=8),
            "body": st.just({"size": 0}),
            "parts": st.lists(children, max_size=4),
        }
    ),
    max_leaves=10,
)


def with_headers(part: dict[str, Any], headers: list[dict[str, str]]) -> dict[str, Any]:
    """The root part: message headers first, then the part's own content headers."""
    return {**part, "headers": headers + list(part.get("headers", []))}


plausible_resource = st.fixed_dictionaries(
    {
        "id": st.from_regex(r"[0-9a-f]{1,16}", fullmatch=True),
        "threadId": st.from_regex(r"[0-9a-f]{1,16}", fullmatch=True),
        "labelIds": st.lists(
            st.one_of(st.sampled_from(["INBOX", "SENT", "UNREAD", "SPAM"]), nasty_text), max_size=4
        ),
        "snippet": nasty_text,
        "historyId": st.one_of(st.integers(min_value=0, max_value=2**64).map(str), nasty_text),
        "internalDate": st.one_of(
            st.integers(min_value=-(2**63), max_value=2**63).map(str), nasty_text
        ),
        "payload": st.builds(with_headers, plausible_part, st.lists(plausible_header, max_size=10)),
    }
)

LINE_BREAKING = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029]")


def assert_storable(value: str) -> None:
    assert "\x00" not in value
    value.encode("utf-8")  # no lone surrogates


def assert_single_line(value: str) -> None:
    assert_storable(value)
    assert not LINE_BREAKING.search(value), repr(value)
    assert len(value.splitlines()) <= 1
    assert value == value.strip()


def single_line_fields(parsed: ParsedMessage) -> list[str]:
    values = [
        parsed.gmail_message_id,
        parsed.gmail_thread_id,
        parsed.subject,
        parsed.snippet,
        parsed.from_email,
        parsed.from_name,
        parsed.to_email,
        parsed.to_header or "",
        parsed.cc_header or "",
        parsed.cc_email,
        parsed.bcc_email,
        parsed.reply_to_email,
        parsed.rfc_message_id or "",
        parsed.in_reply_to or "",
        parsed.references or "",
        *parsed.label_ids,
        *parsed.problems,
    ]
    for address in (parsed.sender, *parsed.to, *parsed.cc, *parsed.bcc, *parsed.reply_to):
        values += [address.name, address.email]
    for attachment in parsed.attachments:
        values += [
            attachment.filename,
            attachment.mime_type,
            attachment.attachment_id or "",
            attachment.content_id or "",
            attachment.part_id,
        ]
    for ref in parsed.missing_body_parts:
        values += [ref.part_id, ref.mime_type, ref.attachment_id]
    return values


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(resource=st.one_of(resource, plausible_resource), mailbox=nasty_text)
def test_garbage_never_raises_and_never_breaks_a_row(
    resource: dict[str, Any], mailbox: str
) -> None:
    parsed = parse_message(resource, mailbox)

    for value in single_line_fields(parsed):
        assert_single_line(value)
    assert_storable(parsed.body_html)
    if parsed.body_text is not None:
        assert_storable(parsed.body_text)
    assert isinstance(parsed.internal_date, datetime)
    assert parsed.internal_date.tzinfo is None
    assert parsed.date_header is None or parsed.date_header.tzinfo is None
    assert 0 <= parsed.history_id < 10**20
    assert parsed.size_estimate is None or 0 <= parsed.size_estimate < 2**31
    assert all(a.size >= 0 for a in parsed.attachments)
    assert re.fullmatch("[0-9a-f]{64}", parsed.content_hash)
    assert parsed.direction in ("inbound", "outbound")
    # Deterministic: the same input gives the same row.
    assert parse_message(resource, mailbox) == parsed


@given(data=st.binary(max_size=200), charset=st.one_of(st.sampled_from(CHARSETS), nasty_text))
def test_decode_bytes_is_total(data: bytes, charset: str) -> None:
    text, _ = decode_bytes(data, charset)
    assert isinstance(text, str)


@given(value=nasty_text)
def test_header_decoding_then_cleaning_is_single_line(value: str) -> None:
    decoded, problems = decode_rfc2047(value)
    assert_single_line(clean_line(decoded))
    for problem in problems:
        assert_single_line(clean_line(problem))


@given(data=st.binary(max_size=300))
def test_b64url_round_trip_with_and_without_padding(data: bytes) -> None:
    padded = base64.urlsafe_b64encode(data).decode()
    assert b64url_decode(padded) == (data, None)
    assert b64url_decode(padded.rstrip("=")) == (data, None)
    assert b64url_decode(base64.b64encode(data).decode()) == (data, None)
