"""The mirror: the web app's ``emails`` and ``email_threads`` rows a sync writes, and the
service's metadata of each message (``delightbridge_sync.messages``). Typed functions
around their named queries, each run in the caller's transaction; what a thread's
summary is and when a row may be written are :mod:`delightbridge.sync`'s rules.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol

from delightbridge.db.queries import query
from delightbridge.db.types import Connection, Executor


class MessageColumns(Protocol):
    """What the upsert writes of one message (``ParsedMessage`` satisfies it)."""

    @property
    def gmail_message_id(self) -> str: ...
    @property
    def gmail_thread_id(self) -> str: ...
    @property
    def rfc_message_id(self) -> str | None: ...
    @property
    def in_reply_to(self) -> str | None: ...
    @property
    def references(self) -> str | None: ...
    @property
    def from_email(self) -> str: ...
    @property
    def from_name(self) -> str: ...
    @property
    def to_email(self) -> str: ...
    @property
    def body_html(self) -> str: ...
    @property
    def direction(self) -> str: ...
    @property
    def sent_at(self) -> datetime: ...
    @property
    def subject(self) -> str: ...
    @property
    def cc_email(self) -> str | None: ...
    @property
    def bcc_email(self) -> str | None: ...
    @property
    def reply_to_email(self) -> str | None: ...
    @property
    def body_text(self) -> str | None: ...
    @property
    def snippet(self) -> str: ...
    @property
    def label_ids(self) -> Sequence[str]: ...
    @property
    def attachments_json(self) -> Any: ...
    @property
    def history_id(self) -> int: ...
    @property
    def size_estimate(self) -> int | None: ...
    @property
    def content_hash(self) -> str: ...
    @property
    def problems(self) -> Sequence[str]: ...
    @property
    def to_header(self) -> str | None: ...
    @property
    def cc_header(self) -> str | None: ...


@dataclass(frozen=True, slots=True)
class Written:
    """An ``emails`` row the upsert wrote; ``inserted``: new, not an update."""

    id: str
    gmail_message_id: str
    inserted: bool


@dataclass(frozen=True, slots=True)
class StoredMessage:
    """An ``emails`` row (and its sync metadata, if any) as a thread's summary reads it."""

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
class ThreadMember:
    thread_id: str
    reply_from_email: str | None  # the thread's current one
    message: StoredMessage


@dataclass(frozen=True, slots=True)
class ThreadUpdate:
    """An ``email_threads`` row's summary; ``None`` subject, status or is_read: keep the
    stored value."""

    thread_id: str
    subject: str | None
    customer_email: str
    customer_name: str
    status: str | None
    is_read: bool | None
    last_message_at: datetime
    reply_from_email: str | None


@dataclass(frozen=True, slots=True)
class UpdatedThread:
    id: str
    old_status: str
    new_status: str
    is_read: bool


@dataclass(frozen=True, slots=True)
class MirroredState:
    """What verification compares of a stored message."""

    gmail_thread_id: str
    label_ids: frozenset[str]  # empty for a message the web app wrote
    content_hash: str | None


async def create_threads(conn: Connection, *, service_id: str,
                         gmail_thread_ids: Sequence[str]) -> frozenset[str]:
    """Missing thread rows, with a provisional summary; returns the ids created."""
    rows = await conn.fetch(query("sync_threads_ensure"), service_id, gmail_thread_ids)
    return frozenset(r["id"] for r in rows)


async def thread_ids(conn: Connection, *, service_id: str,
                     gmail_thread_ids: Sequence[str]) -> dict[str, str]:
    """``{gmail_thread_id: email_threads.id}`` of the service's threads among these."""
    rows = await conn.fetch(query("sync_thread_ids"), service_id, gmail_thread_ids)
    return {r["gmail_thread_id"]: r["id"] for r in rows}


async def upsert_emails(conn: Connection, *, service_id: str, run_id: uuid.UUID,
                        messages: Sequence[MessageColumns], row_ids: Sequence[str],
                        thread_ids: Mapping[str, str]) -> list[Written]:
    """Insert or update the messages (distinct ids; ``row_ids[i]`` is the ``emails.id`` of
    ``messages[i]``, ``thread_ids`` maps their Gmail thread ids to rows). Not written,
    and not returned: a row of another service with the same Gmail id, or a copy older
    than what is stored or was removed since."""
    rows = [(
        row_id, thread_ids[m.gmail_thread_id], m.gmail_message_id, m.rfc_message_id,
        m.in_reply_to, m.references, m.from_email, m.from_name, m.to_email, m.body_html,
        m.direction, m.sent_at, m.subject, m.cc_email, m.bcc_email, m.reply_to_email,
        m.body_text, m.snippet, json.dumps(list(m.label_ids)), json.dumps(m.attachments_json),
        m.history_id, m.size_estimate, m.content_hash, json.dumps(list(m.problems)),
        m.to_header, m.cc_header,
    ) for row_id, m in zip(row_ids, messages, strict=True)]
    columns = [list(column) for column in zip(*rows, strict=True)]
    written = await conn.fetch(query("sync_emails_upsert"), *columns, service_id, run_id)
    return [Written(r["id"], r["gmail_message_id"], r["inserted"]) for r in written]


async def delete_emails(conn: Connection, *, service_id: str, gmail_ids: Sequence[str],
                        seen_at: int | None) -> list[str]:
    """Remove the service's messages with these Gmail ids; while an import runs, each
    removal is remembered at ``seen_at`` (a history id). Returns each removed row's
    thread id."""
    rows = await conn.fetch(query("sync_emails_delete"), service_id, gmail_ids,
                            None if seen_at is None else str(seen_at))
    return [r["thread_id"] for r in rows]


async def delete_unseen(conn: Connection, *, service_id: str, run_id: uuid.UUID,
                        since: int | None) -> list[str]:
    """Remove what the import ``run_id`` did not write or see, nor an incremental after
    history id ``since``. Returns each removed row's thread id."""
    rows = await conn.fetch(query("sync_emails_delete_unseen"), service_id, run_id,
                            None if since is None else str(since))
    return [r["thread_id"] for r in rows]


async def thread_members(conn: Connection, *, thread_ids: Sequence[str]) -> list[ThreadMember]:
    rows = await conn.fetch(query("sync_thread_members"), thread_ids)
    return [ThreadMember(r["thread_id"], r["reply_from_email"], StoredMessage(
        gmail_message_id=r["gmail_message_id"] or "", internal_date=r["sent_at"],
        label_ids=r["label_ids"], subject=r["subject"], from_email=r["from_email"],
        from_name=r["from_name"], to_email=r["to_email"], direction=r["direction"],
        to_header=r["to_header"], cc_header=r["cc_header"])) for r in rows]


async def update_threads(conn: Connection, *,
                         updates: Sequence[ThreadUpdate]) -> list[UpdatedThread]:
    """Write the summaries; returns the threads that changed, with their status before."""
    columns: list[list[object]] = [[] for _ in range(8)]
    for u in updates:
        values = (u.thread_id, u.subject, u.customer_email, u.customer_name, u.status,
                  u.is_read, u.last_message_at, u.reply_from_email)
        for column, value in zip(columns, values, strict=True):
            column.append(value)
    rows = await conn.fetch(query("sync_threads_update"), *columns)
    return [UpdatedThread(r["id"], r["old_status"], r["new_status"], r["is_read"])
            for r in rows]


async def lock_threads(conn: Connection, *, thread_ids: Sequence[str]) -> None:
    """Lock the thread rows: the web app cannot attach a draft or a send to them until
    the transaction ends."""
    await conn.execute(query("sync_threads_lock"), thread_ids)


async def empty_threads(conn: Connection, *, service_id: str) -> list[str]:
    """The service's threads without a message, locked (as :func:`lock_threads`)."""
    rows = await conn.fetch(query("sync_threads_empty_for_update"), service_id)
    return [r["id"] for r in rows]


async def remove_empty_threads(conn: Connection, *, thread_ids: Sequence[str]) -> None:
    """Delete those of the (locked) threads left without a message, except the ones
    holding the agents' work (a draft, a send in flight): those stay, archived."""
    await conn.execute(query("sync_threads_remove_empty"), thread_ids)


async def stored_state(db: Executor, *, service_id: str) -> dict[str, MirroredState]:
    """``{gmail_message_id: state}`` of every message the mirror holds for the service."""
    rows = await db.fetch(query("verify_mirror"), service_id)
    return {r["gmail_message_id"]: MirroredState(
        r["gmail_thread_id"], frozenset(r["label_ids"]), r["content_hash"]) for r in rows}
