"""New-mail events, pure parts: the body, the signature, the backoff."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest

from delightbridge.sync import events
from delightbridge.sync.outbox import OutboxConfig, backoff

SECRET = "an-events-secret-of-32-characters!!"


def test_body_is_stable_json_with_id_type_service_time_and_data() -> None:
    content = events.body(42, events.STATUS_CHANGED, "svc-noji",
                          datetime(2026, 12, 1, 9, 0, tzinfo=UTC),
                          events.status_changed("thread-svc-noji-1", "inbox", "archived", True))
    assert json.loads(content) == {
        "id": "42", "type": "thread.status_changed", "service": "svc-noji",
        "createdAt": "2026-12-01T09:00:00Z",
        "data": {"threadId": "thread-svc-noji-1", "from": "inbox", "to": "archived",
                 "isRead": True}}
    assert content == events.body(42, events.STATUS_CHANGED, "svc-noji",
                                  datetime(2026, 12, 1, 9, 0, tzinfo=UTC),
                                  json.loads(content)["data"])


def test_signature_verifies_and_refuses_tampering_other_keys_and_old_stamps() -> None:
    content = b'{"id":"1"}'
    header = events.sign(SECRET, 1_790_000_000, content)
    assert header.startswith("t=1790000000,v1=")
    assert events.verify(SECRET, header, content, now=1_790_000_010)
    assert not events.verify(SECRET, header, content + b" ", now=1_790_000_010)
    assert not events.verify(SECRET + "x", header, content, now=1_790_000_010)
    assert not events.verify(SECRET, header, content, now=1_790_000_000 + 301)
    for bad in (None, "", "v1=abc", "t=x,v1=abc", header.replace("v1=", "v0=")):
        assert not events.verify(SECRET, bad, content, now=1_790_000_000)


@pytest.mark.parametrize(("attempts", "expected"), [(1, 1.0), (2, 2.0), (5, 16.0), (9, 256.0),
                                                    (10, 300.0), (1000, 300.0)])
def test_backoff_doubles_to_five_minutes_and_never_gives_up(attempts: int,
                                                           expected: float) -> None:
    config = OutboxConfig(url="http://x.example", secret=SECRET)
    assert backoff(attempts, config, jitter=1.0) == expected
    assert expected / 2 <= backoff(attempts, config) <= expected
