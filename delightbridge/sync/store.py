"""The engine's database edge: every write a sync makes, in one place.

Callers hand it parsed messages and ids; it keeps threads consistent with their
messages (the summary is :func:`delightbridge.sync.threads.summarize_thread`, a pure rule)
and never moves the cursor backwards. Each public write runs in the transaction the
caller opened, so a page of messages and the cursor commit together.
"""

from __future__ import annotations

import uuid
from collections import defaultdict
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass

from delightbridge.db import events as events_db
from delightbridge.db import identities, locks, mirror, services
from delightbridge.db.types import Connection, Executor
from delightbridge.sync import events as events_
from delightbridge.sync.lock import WRITE_CLASS
from delightbridge.sync.parse import ParsedMessage
from delightbridge.sync.threads import SenderIdentity, email_row_id, summarize_thread


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
    created = await mirror.create_threads(conn, service_id=account_id,
                                          gmail_thread_ids=gmail_threads)
    thread_ids = await mirror.thread_ids(conn, service_id=account_id,
                                         gmail_thread_ids=gmail_threads)
    written = await mirror.upsert_emails(
        conn, service_id=account_id, run_id=run_id, messages=messages, thread_ids=thread_ids,
        row_ids=[email_row_id(account_id, m.gmail_message_id) for m in messages])
    touched = frozenset(thread_ids.values())
    changes = await refresh_threads(conn, account_id, mailbox, touched)
    if events:
        by_id = {m.gmail_message_id: m for m in messages}
        received = [
            (events_.MESSAGE_RECEIVED, events_.message_received(
                thread_ids[by_id[w.gmail_message_id].gmail_thread_id], w.id,
                by_id[w.gmail_message_id]))
            for w in written
            if w.inserted and by_id[w.gmail_message_id].direction == "inbound"]
        await record_events(conn, account_id, [
            *received, *_status_events(c for c in changes if c.thread_id not in created)])
    # Not written, and not returned: a row of another service with the same Gmail id
    # (the upsert's WHERE), or a copy older than what is stored or was removed since.
    return WriteResult(written=len(written), conflicts=len(messages) - len(written),
                       threads=touched)


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
    deleted = await mirror.delete_emails(conn, service_id=account_id, gmail_ids=ids,
                                         seen_at=history_id)
    return await _removed(conn, account_id, mailbox, deleted, events=events)


async def delete_unseen(conn: Connection, account_id: str, mailbox: str, run_id: uuid.UUID,
                        *, events: bool = False, since: int | None = None
                        ) -> tuple[int, frozenset[str]]:
    """After an import: remove every message of the account that run did not write or
    see, unless an incremental sync wrote it after ``since`` (the import's start)."""
    await lock_writes(conn, account_id)
    deleted = await mirror.delete_unseen(conn, service_id=account_id, run_id=run_id,
                                         since=since)
    removed = await _removed(conn, account_id, mailbox, deleted, events=events)
    empty = await mirror.empty_threads(conn, service_id=account_id)
    await mirror.remove_empty_threads(conn, thread_ids=empty)
    return removed


async def _removed(conn: Connection, account_id: str, mailbox: str, thread_ids: list[str],
                   *, events: bool) -> tuple[int, frozenset[str]]:
    """After messages were removed (``thread_ids``: each one's thread): their threads
    refreshed, status changes recorded; how many, and the threads."""
    threads = frozenset(thread_ids)
    changes = await refresh_threads(conn, account_id, mailbox, threads)
    if events:
        await record_events(conn, account_id, list(_status_events(changes)))
    return len(thread_ids), threads


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
    members: dict[str, list[mirror.StoredMessage]] = defaultdict(list)
    current: dict[str, str | None] = {}
    for member in await mirror.thread_members(conn, thread_ids=ids):
        current[member.thread_id] = member.reply_from_email
        members[member.thread_id].append(member.message)
    if members:
        senders = [SenderIdentity(s.email, s.is_default, s.is_enabled)
                   for s in await identities.senders(conn, service_id=account_id)]
        updates = []
        for thread_id, stored in members.items():
            summary = summarize_thread(stored, mailbox, senders, current[thread_id])
            updates.append(mirror.ThreadUpdate(
                thread_id, summary.subject, summary.customer_email, summary.customer_name,
                summary.status, summary.is_read, summary.last_message_at,
                summary.reply_from_email))
        changes = [StatusChange(u.id, u.old_status, u.new_status, u.is_read)
                   for u in await mirror.update_threads(conn, updates=updates)
                   if u.old_status != u.new_status]
    empty = [t for t in ids if t not in members]
    if empty:
        await mirror.lock_threads(conn, thread_ids=empty)
        await mirror.remove_empty_threads(conn, thread_ids=empty)
    return changes


async def lock_writes(conn: Connection, account_id: str) -> None:
    """Serialise this transaction's writes with any other writer of the mailbox (an
    import beside an incremental); held until the transaction ends."""
    await locks.lock_for_transaction(conn, lock_class=WRITE_CLASS, key=account_id)


async def advance_cursor(db: Executor, account_id: str, history_id: int) -> None:
    await services.advance_cursor(db, service_id=account_id, history_id=history_id)
