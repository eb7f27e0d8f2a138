"""Imports: a full sync as a resumable job that never holds up new mail.

An import mirrors the whole mailbox: the open inbox first (``INBOX``, newest first, each
of its conversations whole), then every message, newest to oldest. It holds an import
lock of its own, not the service's sync lock, so incremental syncs go on beside it: new
mail is mirrored within seconds while a large mailbox imports for hours. The two never
write at the same time (:func:`delightbridge.sync.store.lock_writes`), and the import never
writes over a newer state: the store skips a copy older than the stored one, or than a
removal an incremental recorded meanwhile (a tombstone).

It starts from the mailbox's ``historyId`` (``start``): the service's cursor moves there
at once, so the incremental syncs take every change after it, and the import every
message as of it. What the import has stored is its checkpoint: each message it writes
carries its run id, so a killed import, resumed by any process, lists again (5 units a
page of 500) but fetches only what it had not stored yet. Messages an incremental wrote
since ``start`` are skipped too.

Two kinds:

* ``full``: fetch every listed message (a new service, a requested full sync, a service
  adopted from the web app);
* ``repair``: after Gmail's history expired (404), fetch only what the mirror lacks or
  holds with other labels; the rest is marked seen, not fetched. It learns every
  message's labels by listing each label's messages (``labels.list``, then
  ``messages.list`` per label: 5 units a page of 500), far cheaper than reading the
  messages (20 units each under the 2026 model).

At the end, in one transaction: rows neither written nor seen by the import, nor written
by an incremental since ``start``, are what the mailbox no longer has and are removed;
the import is marked done and its tombstones cleared. If Gmail's history expired while it
ran (an incremental's 404 asked for a repair), the changes lost from history may concern
messages it had already stored: a repair, from a start of its own, becomes the pending
import instead, and the engine runs it at once.
"""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import AsyncIterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Literal, cast

import asyncpg

from delightbridge.core.errors import ServiceNotFound
from delightbridge.db import imports as imports_db
from delightbridge.db.connection import transaction
from delightbridge.sync import store
from delightbridge.sync.context import SyncContext
from delightbridge.sync.full import Listed, Plan, mirror

Kind = Literal["full", "repair"]
KINDS: tuple[Kind, ...] = ("full", "repair")


@dataclass(frozen=True, slots=True)
class Known:
    """What the mirror holds of one listed message."""

    email_id: str | None
    by_import: bool  # this import wrote it, or saw it (a repair)
    newer: bool  # an incremental wrote it after the import started
    label_ids: Sequence[str] | None  # None: no sync metadata (or no row)


@dataclass(frozen=True, slots=True)
class LabelSets:
    """For a repair: each message's labels as Gmail has them now (from listing every
    label's messages)."""

    of: Mapping[str, frozenset[str]]

    def same(self, message_id: str, label_ids: Sequence[str]) -> bool:
        """Whether the mirror's labels are Gmail's."""
        return frozenset(label_ids) == self.of.get(message_id, frozenset())

    def draft(self, message_id: str) -> bool:
        return "DRAFT" in self.of.get(message_id, ())


@dataclass(frozen=True, slots=True)
class Sorted:
    """A listed page, sorted out (pure: :func:`sort_out`)."""

    fetch: Listed
    seen: list[str]  # email ids a repair confirms as they are
    skipped: int  # neither fetched nor seen: stored by this import, or newer


def sort_out(listed: Listed, known: Mapping[str, Known], kind: Kind,
             labels: LabelSets | None) -> Sorted:
    """Which listed messages to fetch; which a repair only marks seen."""
    fetch: Listed = []
    seen: list[str] = []
    skipped = 0
    for message_id, thread_id in listed:
        mirror_state = known.get(message_id)
        if mirror_state is not None and (mirror_state.by_import or mirror_state.newer):
            skipped += 1
        elif labels is not None and labels.draft(message_id):
            skipped += 1  # a draft is not mirrored
        elif (kind == "repair" and labels is not None and mirror_state is not None
              and mirror_state.email_id is not None and mirror_state.label_ids is not None
              and labels.same(message_id, mirror_state.label_ids)):
            seen.append(mirror_state.email_id)
        else:
            fetch.append((message_id, thread_id))
    return Sorted(fetch, seen, skipped)


@dataclass(frozen=True, slots=True)
class ImportJob:
    """One import as recorded."""

    service_id: str
    run_id: uuid.UUID
    kind: Kind
    status: str
    start_history_id: int | None
    total: int | None


async def request(pool: asyncpg.Pool, service_id: str, kind: Kind,
                  run_id: uuid.UUID | None = None) -> uuid.UUID:
    """Record an import to run (``run_id`` for its run); the run id of the import that
    will run: this one, or the one already pending or running."""
    started = await imports_db.request(pool, service_id=service_id,
                                       run_id=run_id or uuid.uuid4(), kind=kind)
    if started is not None:
        return started
    if kind == "repair":
        # History was lost while an import runs: what it already stored may have changed
        # in the lost stretch, so a repair follows it.
        running = await imports_db.request_again(pool, service_id=service_id)
        if running is not None:
            return running
    job = await get(pool, service_id)
    if job is None:
        raise ServiceNotFound(service_id)
    return job.run_id


async def get(pool: asyncpg.Pool, service_id: str) -> ImportJob | None:
    row = await imports_db.get(pool, service_id=service_id)
    if row is None:
        return None
    return ImportJob(row.service_id, row.run_id, cast(Kind, row.kind), row.status,
                     row.start_history_id, row.total)


async def waiting(pool: asyncpg.Pool) -> list[str]:
    """Services with an import to run or resume (pending, or running with no holder)."""
    return await imports_db.waiting(pool)


async def run(ctx: SyncContext, job: ImportJob) -> int:
    """Import (or resume importing) the mailbox; return the history id it mirrors."""
    run_ = ctx.run
    progress = run_.progress
    profile = await ctx.client.profile()
    begun = await imports_db.begin(ctx.pool, service_id=ctx.account_id, run_id=job.run_id,
                                   history_id=int(profile["historyId"]),
                                   total=_int(profile.get("messagesTotal")))
    start = begun.start_history_id
    progress.total = begun.total
    run_.start_history_id = run_.start_history_id or start
    await store.advance_cursor(ctx.pool, ctx.account_id, start)  # incrementals go from here
    plan = Plan()
    labels: LabelSets | None = None
    if job.kind == "repair":
        progress.phase = "listing labels"
        labels = await _label_sets(ctx)
    progress.phase = "importing inbox"
    # Each open conversation whole (a full import), so that the agents see complete
    # threads first: one threads.get costs two messages.get.
    await mirror(ctx, _pages(ctx, job, start, ("INBOX",), labels), plan,
                 whole=job.kind == "full")
    progress.phase = "importing"
    progress.count_again()
    await mirror(ctx, _pages(ctx, job, start, (), labels), plan)
    if progress.total is not None:
        progress.total = progress.done  # Gmail's count includes spam, trash and drafts

    progress.phase = "reconciling"
    async with transaction(ctx.pool) as conn:
        deleted, threads = await store.delete_unseen(conn, ctx.account_id, ctx.mailbox,
                                                     job.run_id, events=ctx.emit_events,
                                                     since=start)
        await store.advance_cursor(conn, ctx.account_id, start)
        await imports_db.complete(conn, service_id=ctx.account_id, run_id=job.run_id,
                                  next_run_id=uuid.uuid4(), done=progress.done)
        await imports_db.clear_tombstones(conn, service_id=ctx.account_id)
        progress.deleted += deleted
        progress.threads |= threads
        run_.end_history_id = start
        await run_.save_progress(conn)
    return start


async def _pages(ctx: SyncContext, job: ImportJob, start: int, label_ids: Sequence[str],
                 labels: LabelSets | None) -> AsyncIterator[Listed]:
    """The listing's pages (the next requested while this one is sorted out), each
    reduced to what must be fetched; what a repair confirms is marked seen."""
    progress = ctx.run.progress
    async for listed in _listing(ctx, label_ids):
        progress.listed += len(listed)
        rows = await imports_db.known(ctx.pool, service_id=ctx.account_id, run_id=job.run_id,
                                      since=start, message_ids=[m for m, _ in listed])
        known = {r.gmail_message_id: Known(r.email_id, r.by_import, r.newer, r.label_ids)
                 for r in rows}
        page = sort_out(listed, known, job.kind, labels)
        if page.seen:
            await imports_db.mark_seen(ctx.pool, email_ids=page.seen, run_id=job.run_id)
        progress.skipped += page.skipped + len(page.seen)
        await _save(ctx, job)
        yield page.fetch


async def _listing(ctx: SyncContext, label_ids: Sequence[str]) -> AsyncIterator[Listed]:
    client = ctx.client
    listing = asyncio.create_task(client.list_messages(None, label_ids=label_ids))
    try:
        while True:
            page = await listing
            token = page.get("nextPageToken")
            if token:
                listing = asyncio.create_task(client.list_messages(token, label_ids=label_ids))
            yield [(m["id"], m.get("threadId") or m["id"]) for m in page.get("messages") or ()
                   if isinstance(m, Mapping) and isinstance(m.get("id"), str)]
            if not token:
                return
    finally:
        listing.cancel()  # when left early; its outcome no longer matters
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await listing


async def _label_sets(ctx: SyncContext) -> LabelSets:
    """Every message's labels, by listing each label's messages (spam and trash are
    not mirrored: not listed)."""
    answer = await ctx.client.list_labels()
    names = sorted({str(label["id"]) for label in answer.get("labels") or ()
                    if isinstance(label, Mapping) and label.get("id")} - {"SPAM", "TRASH"})
    members: dict[str, set[str]] = {}
    for name in names:
        async for listed in _listing(ctx, (name,)):
            for message_id, _ in listed:
                members.setdefault(message_id, set()).add(name)
    return LabelSets({m: frozenset(found) for m, found in members.items()})


async def _save(ctx: SyncContext, job: ImportJob) -> None:
    await imports_db.save_done(ctx.pool, service_id=ctx.account_id, run_id=job.run_id,
                               done=ctx.run.progress.done)
    await ctx.run.save_progress()


def _int(value: object) -> int | None:
    if isinstance(value, int):
        return value
    return int(value) if isinstance(value, str) and value.isdigit() else None
