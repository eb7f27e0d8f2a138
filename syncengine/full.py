"""Full sync: the whole mailbox, page by page, then a reconciliation.

1. Read the profile's ``historyId`` first: the cursor stored at the end, so changes
   made while listing are replayed by the next incremental sync.
2. List every message id (all pages, no cap; the next page while this one is
   fetched) and fetch each page's messages at the lowest quota cost (:class:`Plan`):
   a thread with two or more messages on the page in one ``threads.get`` (10 units,
   all its messages), a lone message with ``messages.get`` (5 units), mixed in
   batches that fill the pacer's window exactly. Two pages are fetched at once (the
   next one's batches start while this one's last are in flight); meanwhile each
   fetched page is parsed off the loop and stored, 500 messages a transaction. Memory
   holds at most three pages of answers, whatever the mailbox size (a page's answers
   include every message of its threads fetched whole).
3. Remove what the mailbox no longer has (rows this run did not write) and store the
   cursor, in one transaction.
A message that 404s while fetching was deleted meanwhile: it is skipped.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from syncengine import store
from syncengine.context import SyncContext
from syncengine.gmail.calls import CallBuilder, GmailCall
from syncengine.parse import ParsedMessage

Resource = Mapping[str, Any]

_DONE = object()
PAGES_FETCHED = 2
STORE_CHUNK = 500  # messages parsed and stored at a time (one transaction)


@dataclass(frozen=True, slots=True)
class PageFetch:
    """The calls fetching one listed page: threads whole (each with its message ids on
    the page), then lone messages."""

    threads: dict[str, list[str]]
    singles: list[str]

    def calls(self, builder: CallBuilder) -> list[GmailCall]:
        return ([builder.get_thread(t, format="full") for t in self.threads]
                + [builder.get_message(m, format="full") for m in self.singles])


class Plan:
    """Which call fetches each listed message, across the pages of one full sync. Pure.

    Gmail lists messages newest first, so a thread's messages may be spread over
    several pages. A thread with two or more messages on a page is fetched whole once
    (its messages on later pages are then skipped); a message alone on its page is
    fetched by itself and remembered, so that a later ``threads.get`` of its thread
    does not store it twice. Decided when a page is listed, not when it is answered,
    so the next page's fetch need not wait for this one's. Memory: one id per thread
    fetched whole and per message fetched alone.
    """

    def __init__(self) -> None:
        self._whole: set[str] = set()  # threads fetched with threads.get
        self._alone: set[str] = set()  # messages fetched with messages.get

    def split(self, listed: Iterable[tuple[str, str]]) -> PageFetch:
        """How to fetch one page of (message id, thread id)."""
        by_thread: dict[str, list[str]] = {}
        for message_id, thread_id in listed:
            if thread_id not in self._whole:
                by_thread.setdefault(thread_id, []).append(message_id)
        threads = {t: ids for t, ids in by_thread.items() if len(ids) >= 2}
        singles = [ids[0] for ids in by_thread.values() if len(ids) == 1]
        self._whole.update(threads)
        self._alone.update(singles)
        return PageFetch(threads, singles)

    def resources(self, fetch: PageFetch, answers: Sequence[Resource | None]
                  ) -> dict[str, Resource | None]:
        """The page's messages by id (None: Gmail no longer has it), from the answers to
        ``fetch.calls()``, in their order. A message of a thread fetched whole that was
        fetched alone on an earlier page is left out."""
        page: dict[str, Resource | None] = dict(
            zip(fetch.singles, answers[len(fetch.threads):], strict=True))
        for listed, answer in zip(fetch.threads.values(), answers[:len(fetch.threads)],
                                  strict=True):
            found: set[str] = set()
            for message in (answer or {}).get("messages") or ():
                message_id = message.get("id") if isinstance(message, Mapping) else None
                if isinstance(message_id, str):
                    found.add(message_id)
                    if message_id not in self._alone:
                        page[message_id] = message
            # Listed here but no longer in the thread (or the thread is gone): deleted.
            page.update(dict.fromkeys(m for m in listed if m not in found))
        return page


async def run_full(ctx: SyncContext) -> int:
    """Sync everything; return the history id stored as the cursor."""
    run = ctx.run
    profile = await ctx.client.profile()
    cursor = int(profile["historyId"])
    run.start_history_id = run.start_history_id or cursor
    run.progress.phase = "listing"
    # Each page's fetch, in order. At most PAGES_FETCHED are being fetched or wait to be
    # read (the last batches of one page and the first of the next share the quota's
    # windows), and one more is parsed and stored.
    pages: asyncio.Queue[Any] = asyncio.Queue()
    fetched = asyncio.Semaphore(PAGES_FETCHED)
    producer = asyncio.create_task(_produce(ctx, pages, fetched))
    try:
        while (fetching := await pages.get()) is not _DONE:
            page = await fetching
            fetched.release()
            del fetching  # the task holds its result: only ``page`` may keep the answers
            while page:  # a long thread fetched whole can make a page of thousands
                parsed, gone = await ctx.parse(_take(page, STORE_CHUNK))
                run.progress.fetched += len(parsed)
                run.progress.skipped_gone += len(gone)
                await _store_page(ctx, parsed)
                del parsed
        await producer  # surfaces its exception, if any
    finally:
        if not producer.done():
            producer.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await producer
        while not pages.empty():  # fetches nobody will read (the sync failed)
            if (left := pages.get_nowait()) is not _DONE:
                left.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await left

    run.progress.phase = "reconciling"
    async with ctx.pool.acquire() as conn, conn.transaction():
        deleted, threads = await store.delete_unseen(conn, ctx.account_id, ctx.mailbox, run.id)
        await store.advance_cursor(conn, ctx.account_id, cursor)
        run.progress.deleted += deleted
        run.progress.threads |= threads
        run.end_history_id = cursor
        await run.save_progress(conn)
    return cursor


async def _produce(ctx: SyncContext, pages: asyncio.Queue[Any], fetched: asyncio.Semaphore
                   ) -> None:
    """List the pages (the next while this one is fetched), and start fetching each as
    :class:`Plan` says once ``fetched`` allows; the consumer gets the fetches in order."""
    progress = ctx.run.progress
    plan = Plan()
    listing = asyncio.create_task(ctx.client.list_messages(None))
    try:
        while True:
            listed_page = await listing
            token = listed_page.get("nextPageToken")
            if token:
                listing = asyncio.create_task(ctx.client.list_messages(token))
            listed = [(m["id"], m.get("threadId") or m["id"])
                      for m in listed_page.get("messages") or () if isinstance(m.get("id"), str)]
            progress.listed += len(listed)
            fetch = plan.split(listed)
            if fetch.threads or fetch.singles:
                progress.phase = "fetching"
                await fetched.acquire()
                pages.put_nowait(asyncio.create_task(_fetch(ctx, plan, fetch)))
            if not token:
                break
    finally:
        listing.cancel()  # when leaving early; its outcome, if any, no longer matters
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await listing
        # Also when failing: the consumer then stops waiting and awaits this task,
        # which raises the error (a failed listing used to leave the sync waiting
        # forever, before this pipeline too).
        pages.put_nowait(_DONE)


def _take(page: dict[str, Resource | None], count: int) -> dict[str, Resource | None]:
    """Up to ``count`` messages, removed from ``page`` (so their answers can be freed)."""
    return dict(page.popitem() for _ in range(min(count, len(page))))


async def _fetch(ctx: SyncContext, plan: Plan, fetch: PageFetch) -> dict[str, Resource | None]:
    return plan.resources(fetch, await ctx.client.fetch_all(fetch.calls(ctx.client.calls)))


async def _store_page(ctx: SyncContext, parsed: list[ParsedMessage]) -> None:
    mirrored = [m for m in parsed if m.is_mirrored]
    progress = ctx.run.progress
    async with ctx.pool.acquire() as conn, conn.transaction():
        written = await store.store_messages(conn, ctx.account_id, ctx.mailbox, mirrored,
                                             ctx.run.id)
        progress.stored += written.written
        progress.conflicts += written.conflicts
        progress.threads |= written.threads
        await ctx.run.save_progress(conn)
