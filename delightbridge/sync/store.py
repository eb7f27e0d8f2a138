"""The engine's database edge: every write a sync makes, in one place.

Callers hand it parsed messages and ids; it keeps threads consistent with their
messages (the summary is :func:`delightbridge.sync.threads.summarize_thread`, a pure rule)
and never moves the cursor backwards. Each public write runs in the transaction the
caller opened, so a page of messages and the cursor commit together.
"""

from __future__ import annotations

import json
import uuid
from collections import defaultdict
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime

from delightbridge.db import events as events_db
from delightbridge.db.queries import query
from delightbridge.db.types import Connection
from delightbridge.sync import events as events_
from delightbridge.sync.lock import WRITE_CLASS
from delightbridge.sync.parse import ParsedMessage
from delightbridge.sync.threads import SenderIdentity, email_row_id, summarize_thread


@dataclass(frozen=True, slots=True)
class StoredMessage:
    """An ``emails`` row (and its sync metadata, if any) as ``summarize_thread`` reads it."""

    gmail_message_id: str
    internal_date: datetime
    label_ids: Sequence[str] | None  # None: written by the web app, labels unknown
    subject: str | None
    from_email: str
    from_name: str
    to_email: str
    direction: str
    to_header: str | None
    cc_header: str | None


@dataclass(frozen=True, slots=True)
class WriteResult:
    written: int
    conflicts: int
    threads: frozenset[str]  # email_threads.id touched


async def store_messages(
    conn: Connection,
    account_id: str,
    mailbox: str,
    messages: Sequence[ParsedMessage],
    run_id: uuid.UUID,
    *,
    events: bool = False,
) -> WriteResult:
    """Insert or update ``messages`` (all mirrored) and refresh their threads.

    ``events``: record new-mail events (:mod:`delightbridge.sync.events`) in this transaction:
    each new inbound message, and each existing thread whose status changed.
    """
    if not messages:
        return WriteResult(0, 0, frozenset())
    await lock_writes(conn, account_id)
    messages = list({m.gmail_message_id: m for m in messages}.values())  # the last of each id
    gmail_threads = sorted({m.gmail_thread_id for m in messages})
    created = {r["id"] for r in await conn.fetch(query("sync_threads_ensure"), account_id,
                                                 gmail_threads)}
    thread_ids = {
        r["gmail_thread_id"]: r["id"]
        for r in await conn.fetch(query("sync_thread_ids"), account_id, gmail_threads)
    }
    columns = _email_columns(account_id, thread_ids, messages)
    written = await conn.fetch(query("sync_emails_upsert"), *columns, account_id, run_id)
    touched = frozenset(thread_ids.values())
    changes = await refresh_threads(conn, account_id, mailbox, touched)
    if events:
        by_id = {m.gmail_message_id: m for m in messages}
        received = [
            (events_.MESSAGE_RECEIVED, events_.message_received(
                thread_ids[by_id[r["gmail_message_id"]].gmail_thread_id], r["id"],
                by_id[r["gmail_message_id"]]))
            for r in written
            if r["inserted"] and by_id[r["gmail_message_id"]].direction == "inbound"]
        await record_events(conn, account_id, [
            *received, *_status_events(c for c in changes if c.thread_id not in created)])
    # Not written, and not returned: a row of another service with the same Gmail id
    # (the upsert's WHERE), or a copy older than what is stored or was removed since.
    return WriteResult(written=len(written), conflicts=len(messages) - len(written),
                       threads=touched)


def _email_columns(account_id: str, thread_ids: dict[str, str],
                   messages: Sequence[ParsedMessage]) -> list[list[object]]:
    """The upsert's first 26 parameters: one list per column, in its order."""
    rows = [(
        email_row_id(account_id, m.gmail_message_id), thread_ids[m.gmail_thread_id],
        m.gmail_message_id, m.rfc_message_id, m.in_reply_to, m.references, m.from_email,
        m.from_name, m.to_email, m.body_html, m.direction, m.sent_at, m.subject, m.cc_email,
        m.bcc_email, m.reply_to_email, m.body_text, m.snippet, json.dumps(list(m.label_ids)),
        json.dumps(m.attachments_json), m.history_id, m.size_estimate, m.content_hash,
        json.dumps(list(m.problems)), m.to_header, m.cc_header,
    ) for m in messages]
    return [list(column) for column in zip(*rows, strict=True)]


async def delete_messages(conn: Connection, account_id: str, mailbox: str,
                          gmail_ids: Iterable[str], *, events: bool = False,
                          history_id: int | None = None) -> tuple[int, frozenset[str]]:
    """Remove messages the mailbox no longer mirrors; refresh or drop their threads.

    ``history_id``: where in Gmail's history the removal was seen; while an import
    runs, it keeps the import from bringing the messages back.
    """
    ids = sorted(set(gmail_ids))
    if not ids:
        return 0, frozenset()
    await lock_writes(conn, account_id)
    deleted = await conn.fetch(query("sync_emails_delete"), account_id, ids,
                               None if history_id is None else str(history_id))
    threads = frozenset(r["thread_id"] for r in deleted)
    changes = await refresh_threads(conn, account_id, mailbox, threads)
    if events:
        await record_events(conn, account_id, list(_status_events(changes)))
    return len(deleted), threads


async def delete_unseen(conn: Connection, account_id: str, mailbox: str, run_id: uuid.UUID,
                        *, events: bool = False, since: int | None = None
                        ) -> tuple[int, frozenset[str]]:
    """After an import: remove every message of the account that run did not write or
    see, unless an incremental sync wrote it after ``since`` (the import's start)."""
    await lock_writes(conn, account_id)
    deleted = await conn.fetch(query("sync_emails_delete_unseen"), account_id, run_id,
                               None if since is None else str(since))
    threads = frozenset(r["thread_id"] for r in deleted)
    changes = await refresh_threads(conn, account_id, mailbox, threads)
    if events:
        await record_events(conn, account_id, list(_status_events(changes)))
    empty = [r["id"] for r in await conn.fetch(query("sync_threads_empty_for_update"),
                                               account_id)]
    await conn.execute(query("sync_threads_remove_empty"), empty)
    return len(deleted), threads


@dataclass(frozen=True, slots=True)
class StatusChange:
    thread_id: str
    old: str
    new: str
    is_read: bool


def _status_events(changes: Iterable[StatusChange]) -> Iterator[tuple[str, dict[str, object]]]:
    for change in changes:
        yield events_.STATUS_CHANGED, events_.status_changed(
            change.thread_id, change.old, change.new, change.is_read)


async def record_events(conn: Connection, account_id: str,
                        recorded: Sequence[tuple[str, Mapping[str, object]]]) -> None:
    """Add events to the service's outbox, in order, in the caller's transaction; the
    dispatcher is woken when it commits."""
    await events_db.record(conn, service_id=account_id, events=recorded)


async def refresh_threads(conn: Connection, account_id: str, mailbox: str,
                          thread_ids: Iterable[str]) -> list[StatusChange]:
    """Recompute each thread's summary from its stored messages; remove empty threads.

    An empty thread holding the agents' work (a draft, a send in flight) is never
    deleted: it stays, archived, with its draft (see ``sync_threads_remove_empty``).
    Returns the threads whose status changed.
    """
    ids = sorted(set(thread_ids))
    changes: list[StatusChange] = []
    if not ids:
        return changes
    members: dict[str, list[StoredMessage]] = defaultdict(list)
    current: dict[str, str | None] = {}
    for r in await conn.fetch(query("sync_thread_members"), ids):
        current[r["thread_id"]] = r["reply_from_email"]
        members[r["thread_id"]].append(StoredMessage(
            gmail_message_id=r["gmail_message_id"] or "", internal_date=r["sent_at"],
            label_ids=r["label_ids"], subject=r["subject"], from_email=r["from_email"],
            from_name=r["from_name"], to_email=r["to_email"], direction=r["direction"],
            to_header=r["to_header"], cc_header=r["cc_header"],
        ))
    if members:
        identities = [SenderIdentity(r["email"], r["is_default"], r["is_enabled"])
                      for r in await conn.fetch(query("sync_sender_identities"), account_id)]
        columns: list[list[object]] = [[] for _ in range(8)]
        for thread_id, stored in members.items():
            summary = summarize_thread(stored, mailbox, identities, current[thread_id])
            values = (thread_id, summary.subject, summary.customer_email,
                      summary.customer_name, summary.status, summary.is_read,
                      summary.last_message_at, summary.reply_from_email)
            for column, value in zip(columns, values, strict=True):
                column.append(value)
        changes = [StatusChange(r["id"], r["old_status"], r["new_status"], r["is_read"])
                   for r in await conn.fetch(query("sync_threads_update"), *columns)
                   if r["old_status"] != r["new_status"]]
    empty = [t for t in ids if t not in members]
    if empty:
        await conn.execute(query("sync_threads_lock"), empty)
        await conn.execute(query("sync_threads_remove_empty"), empty)
    return changes


async def lock_writes(conn: Connection, account_id: str) -> None:
    """Serialise this transaction's writes with any other writer of the mailbox (an
    import beside an incremental); held until the transaction ends."""
    await conn.execute(query("sync_write_lock"), WRITE_CLASS, account_id)


async def advance_cursor(conn: Connection, account_id: str, history_id: int) -> None:
    await conn.execute(query("sync_advance_cursor"), account_id, str(history_id))
