"""Compare what a sync stored with the simulator's ground truth.

The expectations are written from the reference schema's rules, independently of
the engine's own code: mirrored = not SPAM/TRASH/DRAFT; a thread's status and read
state come from its newest mirrored message.
"""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, datetime
from typing import Any

import asyncpg
from gmailsim import MailboxSnapshot

EXCLUDED = {"SPAM", "TRASH", "DRAFT"}


def _expected_status(labels: set[str]) -> str:
    if "INBOX" in labels:
        return "inbox"
    return "sent" if "SENT" in labels else "archived"


async def mirror_rows(pool: asyncpg.Pool, account_id: str) -> list[dict[str, Any]]:
    rows = await pool.fetch(
        """SELECT m.*, e.*, t.gmail_thread_id, t.status::text AS thread_status,
                  t.is_read AS thread_is_read, t.last_message_at
           FROM emails e JOIN email_threads t ON t.id = e.thread_id
           LEFT JOIN delightbridge_sync.messages m ON m.email_id = e.id
           WHERE t.account_id = $1 ORDER BY e.id""", account_id)
    return [dict(r) for r in rows]


async def mirror_digest(pool: asyncpg.Pool, account_id: str) -> str:
    """A hash of every stored column of the account's messages and threads."""
    emails = await pool.fetch(
        """SELECT m.*, e.* FROM emails e JOIN email_threads t ON t.id = e.thread_id
           LEFT JOIN delightbridge_sync.messages m ON m.email_id = e.id
           WHERE t.account_id = $1 ORDER BY e.id""", account_id)
    threads = await pool.fetch("SELECT * FROM email_threads WHERE account_id = $1 ORDER BY id",
                               account_id)
    blob = json.dumps([[dict(r) for r in emails], [dict(r) for r in threads]], default=str,
                      sort_keys=True)
    return hashlib.sha256(blob.encode()).hexdigest()


async def assert_mirror(pool: asyncpg.Pool, account_id: str, snapshot: MailboxSnapshot) -> int:
    """The database holds exactly the mailbox's mirrored messages, faithfully. Returns count."""
    expected = {m.id: m for m in snapshot.messages if not EXCLUDED & set(m.label_ids)}
    rows = {r["gmail_message_id"]: r for r in await mirror_rows(pool, account_id)}
    assert sorted(rows) == sorted(expected), (
        f"missing {sorted(set(expected) - set(rows))[:5]}, "
        f"extra {sorted(set(rows) - set(expected))[:5]}")
    assert len(rows) == len(expected)
    newest: dict[str, Any] = {}
    for mid, truth in expected.items():
        row = rows[mid]
        assert row["id"] == f"email-{account_id}-{mid}"
        assert row["gmail_thread_id"] == truth.thread_id
        assert row["thread_id"] == f"thread-{account_id}-{truth.thread_id}"
        assert sorted(row["label_ids"]) == sorted(truth.label_ids), mid
        sent = datetime.fromtimestamp(truth.internal_date / 1000, UTC).replace(tzinfo=None)
        assert row["sent_at"] == sent
        if not truth.malformed and truth.text is not None and not truth.attachments:
            assert row["body_text"] == truth.text.replace("\r\n", "\n"), mid
        if not truth.malformed and truth.subject is not None:
            assert row["subject"] == " ".join(truth.subject.split()), mid
        key = (truth.internal_date, len(mid), mid)
        if truth.thread_id not in newest or key > newest[truth.thread_id][0]:
            newest[truth.thread_id] = (key, truth)
    for thread_id, (_, truth) in newest.items():
        row = next(r for r in rows.values() if r["gmail_thread_id"] == thread_id)
        labels = set(truth.label_ids)
        assert row["thread_status"] == _expected_status(labels), thread_id
        assert row["thread_is_read"] == ("UNREAD" not in labels), thread_id
    # An empty thread remains only to keep the agents' work (a draft, a send), archived.
    empty = await pool.fetch(
        """SELECT t.id, t.status::text AS status,
                  EXISTS (SELECT 1 FROM drafts d WHERE d.thread_id = t.id)
                  OR EXISTS (SELECT 1 FROM send_outbox o WHERE o.thread_id = t.id) AS has_work
           FROM email_threads t WHERE t.account_id = $1
           AND NOT EXISTS (SELECT 1 FROM emails e WHERE e.thread_id = t.id)""", account_id)
    assert [(r["id"], r["status"]) for r in empty if not r["has_work"]] == []
    assert all(r["status"] == "archived" for r in empty), empty
    return len(rows)
