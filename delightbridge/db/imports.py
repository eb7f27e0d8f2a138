"""Imports (``delightbridge_sync.imports``): one recorded job per service, its
checkpoint and its end. Typed functions around their named queries; what an import
fetches and skips is :mod:`delightbridge.sync.imports`' business."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from delightbridge.db.queries import query
from delightbridge.db.types import Connection, Executor


@dataclass(frozen=True, slots=True)
class JobRow:
    service_id: str
    run_id: uuid.UUID
    kind: str
    status: str
    start_history_id: int | None
    total: int | None


@dataclass(frozen=True, slots=True)
class Begun:
    start_history_id: int  # kept from the first start when resumed
    total: int | None


@dataclass(frozen=True, slots=True)
class KnownRow:
    """What the mirror holds of a listed message."""

    gmail_message_id: str
    email_id: str | None  # None: not mirrored
    by_import: bool  # this import wrote (or saw) it
    newer: bool  # an incremental wrote it after the import began
    label_ids: list[str] | None


async def request(db: Executor, *, service_id: str, run_id: uuid.UUID,
                  kind: str) -> uuid.UUID | None:
    """Record an import to run under ``run_id``; None when one is pending or running."""
    found = await db.fetchval(query("import_request"), service_id, run_id, kind)
    return found if isinstance(found, uuid.UUID) else None


async def request_again(db: Executor, *, service_id: str) -> uuid.UUID | None:
    """Ask the running import for a repair after it; its run id, if one runs."""
    found = await db.fetchval(query("import_request_again"), service_id)
    return found if isinstance(found, uuid.UUID) else None


async def get(db: Executor, *, service_id: str) -> JobRow | None:
    row = await db.fetchrow(query("import_get"), service_id)
    if row is None:
        return None
    start = row["start_history_id"]
    return JobRow(row["account_id"], row["run_id"], row["kind"], row["status"],
                  int(start) if start is not None else None, row["total"])


async def waiting(db: Executor) -> list[str]:
    """Services with an import to run or resume (pending, or running with no holder)."""
    return [r["account_id"] for r in await db.fetch(query("import_waiting"))]


async def begin(db: Executor, *, service_id: str, run_id: uuid.UUID, history_id: int,
                total: int | None) -> Begun:
    """Mark the import running; its start (Gmail's history id) and total are kept from
    its first start when it is resumed."""
    row = await db.fetchrow(query("import_begin"), service_id, str(history_id), total, run_id)
    assert row is not None
    return Begun(int(row["start_history_id"]), row["total"])


async def save_done(db: Executor, *, service_id: str, run_id: uuid.UUID, done: int) -> None:
    await db.execute(query("import_progress"), service_id, run_id, done)


async def complete(conn: Connection, *, service_id: str, run_id: uuid.UUID,
                   next_run_id: uuid.UUID, done: int) -> None:
    """Succeeded, unless a repair was asked for meanwhile: it becomes the pending
    import under ``next_run_id``."""
    await conn.execute(query("import_complete"), service_id, run_id, next_run_id, done)


async def clear_tombstones(conn: Connection, *, service_id: str) -> None:
    await conn.execute(query("import_clear_tombstones"), service_id)


async def finish(db: Executor, *, service_id: str, run_id: uuid.UUID, status: str,
                 error: str | None) -> None:
    await db.execute(query("import_finish"), service_id, run_id, status, error)


async def defer(db: Executor, *, service_id: str, run_id: uuid.UUID, until: datetime,
                reason: str) -> None:
    """Pending again, not before ``until`` (the next quota day)."""
    await db.execute(query("import_defer"), service_id, run_id, until, reason)


async def known(db: Executor, *, service_id: str, run_id: uuid.UUID, since: int,
                message_ids: Sequence[str]) -> list[KnownRow]:
    """Of these listed messages, what the mirror holds (``newer``: written after the
    history id ``since``)."""
    rows = await db.fetch(query("import_known"), service_id, run_id, str(since),
                          list(message_ids))
    return [KnownRow(r["gmail_message_id"], r["email_id"], r["by_import"], r["newer"],
                     r["label_ids"]) for r in rows]


async def mark_seen(db: Executor, *, email_ids: Sequence[str], run_id: uuid.UUID) -> None:
    """A repair found these as the mailbox has them: its reconciliation keeps them."""
    await db.execute(query("import_mark_seen"), list(email_ids), run_id)
