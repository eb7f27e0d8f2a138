"""Hostile and malformed mail through the whole path: simulator -> engine -> PostgreSQL.

Each message is stored best-effort with its problem recorded; none stops a sync.
"""

from __future__ import annotations

import base64
import io
import logging

from delightbridge.core import logs
from delightbridge.core.settings import Settings
from tests.syncengine.conftest import SyncSetup
from tests.syncengine.mirror import assert_mirror


def _nested(depth: int) -> bytes:
    head = (b"From: Deep <deep@customer.example>\r\nTo: support@noji.example\r\n"
            b"Subject: nested\r\nMessage-ID: <deep@customer.example>\r\nMIME-Version: 1.0\r\n")
    body = b"Content-Type: text/plain; charset=utf-8\r\n\r\nthe bottom\r\n"
    for level in range(depth):
        boundary = f"b{level}".encode()
        body = (b"Content-Type: multipart/mixed; boundary=" + boundary + b"\r\n\r\n--" + boundary
                + b"\r\n" + body + b"\r\n--" + boundary + b"--\r\n")
    return head + body


HUGE = (b"From: Big <big@customer.example>\r\nTo: support@noji.example\r\nSubject: huge\r\n"
        b"Message-ID: <huge@customer.example>\r\nMIME-Version: 1.0\r\n"
        b"Content-Type: multipart/mixed; boundary=x\r\n\r\n--x\r\n"
        b"Content-Type: text/plain; charset=utf-8\r\n\r\nsee attached\r\n--x\r\n"
        b"Content-Type: application/octet-stream\r\n"
        b"Content-Disposition: attachment; filename=\"dump.bin\"\r\n"
        b"Content-Transfer-Encoding: base64\r\n\r\n"
        + base64.encodebytes(bytes(range(256)) * (25 * 1024 * 1024 // 256)) + b"\r\n--x--\r\n")

INJECTION = (b"From: \"Eve\\r\\nBcc: all@evil.example\" <eve@evil.example>\r\n"
             b"To: support@noji.example\r\n"
             b"Subject: =?utf-8?q?hello=0D=0ABcc:_all@evil.example?=\r\n"
             b"Message-ID: <inj@evil.example>\r\nContent-Type: text/plain; charset=x-unknown\r\n"
             b"Content-Transfer-Encoding: base64\r\n\r\n!!not base64!!\x00\r\n")

NO_HEADERS = b"\r\njust a body, no headers at all\r\n"


async def test_hostile_messages_are_stored_best_effort(setup: SyncSetup) -> None:
    setup.sim.seed(setup.address, messages=10, threads=3, seed=30)
    ids = {name: setup.sim.deliver(setup.address, raw=raw) for name, raw in [
        ("nested", _nested(40)), ("huge", HUGE), ("injection", INJECTION),
        ("no_headers", NO_HEADERS)]}
    result = await setup.engine.sync(setup.account_id, mode="full", trigger="cli")
    stored = await assert_mirror(setup.pool, setup.account_id, setup.sim.snapshot(setup.address))
    assert result.messages_processed == stored
    rows = {r["gmail_message_id"]: r for r in await setup.pool.fetch(
        "SELECT gmail_message_id, subject, from_name, from_email, bcc_email, body, body_text, "
        "attachments, parse_problems FROM emails e "
        "JOIN delightbridge_sync.messages m ON m.email_id = e.id "
        "WHERE gmail_message_id = ANY($1)",
        list(ids.values()))}
    nested = rows[ids["nested"]]
    assert nested["body_text"].strip() == "the bottom"
    huge = rows[ids["huge"]]
    assert huge["body_text"].strip() == "see attached"
    assert '"filename": "dump.bin"' in huge["attachments"]
    assert '"size": 26214400' in huge["attachments"]
    injected = rows[ids["injection"]]
    for column in ("subject", "from_name", "from_email"):
        assert "\r" not in injected[column]
        assert "\n" not in injected[column]
    assert injected["bcc_email"] == ""  # the header that was smuggled in never became one
    assert "\x00" not in injected["body"]
    assert injected["parse_problems"]  # what could not be read is noted
    assert rows[ids["no_headers"]]["from_name"]  # NOT NULL columns still filled


async def test_no_secret_reaches_any_log_line(setup: SyncSetup) -> None:
    """Capture every log line of syncs that refresh tokens, retry and get refused."""
    stream = io.StringIO()
    root = logging.getLogger()
    saved = (list(root.handlers), root.level)
    logs.configure(Settings(log_level="DEBUG", log_format="json",
                            google_client_secret=setup.sim.client_secret), stream)
    try:
        setup.sim.seed(setup.address, messages=30, threads=10, seed=31)
        setup.sim.faults.update(unavailable_rate=0.05)
        await setup.engine.sync(setup.account_id, mode="full", trigger="cli")
        setup.sim.faults.reset()
        access = await setup.pool.fetchval("SELECT access_token FROM gmail_accounts")
        setup.sim.expire_access_tokens(setup.address)
        setup.sim.deliver(setup.address)
        await setup.engine.sync(setup.account_id, trigger="poll")
        setup.sim.revoke_refresh_token(setup.address)
        setup.sim.expire_access_tokens(setup.address)
        setup.sim.deliver(setup.address)
        try:
            await setup.engine.sync(setup.account_id, trigger="poll")
        except Exception as exc:
            logging.getLogger("test").exception("refused: %s", exc)
    finally:
        root.handlers[:] = saved[0]
        root.setLevel(saved[1])
    text = stream.getvalue()
    assert "sync.finished" in text
    assert "sync.failed" in text
    for secret in (setup.mailbox.refresh_token, access, setup.sim.client_secret):
        assert secret
        assert secret not in text
