"""Decoding Gmail notifications: every bad-input class, both carriers, and properties."""

from __future__ import annotations

import base64
import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from delightbridge.consumer.notification import (
    MAX_HISTORY_ID,
    Notification,
    Reason,
    Rejection,
    decode_pull,
    decode_push,
    parse_history_id,
)

GOOD = {"emailAddress": "Support@Noji.example", "historyId": 123456}


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def reason(decoded: Notification | Rejection) -> Reason:
    assert isinstance(decoded, Rejection), decoded
    return decoded.reason


@pytest.mark.parametrize("payload", [
    {"emailAddress": "support@noji.example", "historyId": 123456},
    {"emailAddress": "support@noji.example", "historyId": "123456"},
    {"emailAddress": " support@noji.example ", "historyId": 123456, "extra": [1]},
])
def test_a_notification_decodes_from_either_carrier(payload: dict[str, object]) -> None:
    data = json.dumps(payload).encode()
    expected = Notification("support@noji.example", 123456)
    assert decode_pull(data) == expected
    assert decode_push(b64(data)) == expected
    # URL-safe and unpadded base64 (some publishers) and pull data published twice-encoded.
    assert decode_push(base64.urlsafe_b64encode(data).decode().rstrip("=")) == expected
    assert decode_pull(b64(data).encode()) == expected


def test_the_address_keeps_its_case_for_a_case_insensitive_lookup() -> None:
    assert decode_pull(json.dumps(GOOD).encode()) == Notification("Support@Noji.example", 123456)


@pytest.mark.parametrize(("data", "expected"), [
    (b"not json at all!", Reason.NOT_BASE64),
    (b"\xff\xfe\x00garbage", Reason.NOT_BASE64),
    (b'{"emailAddress": "a@b.example", "historyId": ', Reason.NOT_JSON),
    (b"", Reason.NOT_JSON),
    (base64.b64encode(b"hello, not json"), Reason.NOT_JSON),
    (b"[1, 2, 3]", Reason.NOT_OBJECT),
    (b'"a string"', Reason.NOT_OBJECT),
    (b"42", Reason.NOT_OBJECT),
    (b"null", Reason.NOT_OBJECT),
    (b'{"historyId": 5}', Reason.MISSING_FIELD),
    (b'{"emailAddress": "a@b.example"}', Reason.MISSING_FIELD),
    (b'{"emailAddress": "", "historyId": 5}', Reason.MISSING_FIELD),
    (b'{"emailAddress": "a@b.example", "historyId": null}', Reason.MISSING_FIELD),
    (b'{"emailAddress": "not-an-address", "historyId": 5}', Reason.BAD_EMAIL),
    (b'{"emailAddress": 12, "historyId": 5}', Reason.BAD_EMAIL),
    (b'{"emailAddress": "a@b.example", "historyId": "12ab"}', Reason.BAD_HISTORY_ID),
    (b'{"emailAddress": "a@b.example", "historyId": -4}', Reason.BAD_HISTORY_ID),
    (b'{"emailAddress": "a@b.example", "historyId": 0}', Reason.BAD_HISTORY_ID),
    (b'{"emailAddress": "a@b.example", "historyId": 1.5}', Reason.BAD_HISTORY_ID),
    (b'{"emailAddress": "a@b.example", "historyId": true}', Reason.BAD_HISTORY_ID),
    (b'{"emailAddress": "a@b.example", "historyId": 18446744073709551616}',
     Reason.BAD_HISTORY_ID),
    (b'{"emailAddress": "a@b.example", "historyId": "\xd9\xa3"}', Reason.BAD_HISTORY_ID),
])
def test_pulled_bad_input_is_rejected_with_its_reason(data: bytes, expected: Reason) -> None:
    decoded = decode_pull(data)
    assert reason(decoded) == expected
    assert isinstance(decoded, Rejection)
    assert decoded.detail  # a human-readable line for the log
    assert "a@b.example" not in decoded.detail  # the payload is not echoed


@pytest.mark.parametrize(("data", "expected"), [
    ("%%% not base64 %%%", Reason.NOT_BASE64),
    ("abcde", Reason.NOT_BASE64),  # 5 symbols: not a base64 length
    (12, Reason.NOT_BASE64),
    (None, Reason.NOT_JSON),  # Pub/Sub omits data when it is empty
    (b64(b"\xff\xfe binary"), Reason.NOT_JSON),
    (b64(b"[]"), Reason.NOT_OBJECT),
    (b64(b'{"emailAddress": "a@b.example"}'), Reason.MISSING_FIELD),
    (b64(b'{"emailAddress": "a@b.example", "historyId": "x"}'), Reason.BAD_HISTORY_ID),
])
def test_pushed_bad_input_is_rejected_with_its_reason(data: object, expected: Reason) -> None:
    assert reason(decode_push(data)) == expected


def test_history_ids_are_bounded_to_64_bits() -> None:
    assert parse_history_id(MAX_HISTORY_ID) == MAX_HISTORY_ID
    assert parse_history_id(str(MAX_HISTORY_ID)) == MAX_HISTORY_ID
    assert parse_history_id(MAX_HISTORY_ID + 1) is None
    assert parse_history_id("1" * 21) is None


@given(st.binary(max_size=300))
def test_decoding_never_raises_on_arbitrary_bytes(data: bytes) -> None:
    assert isinstance(decode_pull(data), Notification | Rejection)
    assert isinstance(decode_push(data.decode("latin-1")), Notification | Rejection)


@given(st.emails(), st.integers(min_value=1, max_value=MAX_HISTORY_ID), st.booleans())
def test_every_valid_notification_round_trips(email: str, history_id: int, as_text: bool
                                              ) -> None:
    payload = {"emailAddress": email, "historyId": str(history_id) if as_text else history_id}
    data = json.dumps(payload).encode()
    expected = Notification(email, history_id)
    assert decode_pull(data) == expected
    assert decode_push(b64(data)) == expected
