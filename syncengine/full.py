"""Full sync: the whole mailbox, page by page, then a reconciliation.

1. Read the profile's ``historyId`` first: the cursor stored at the end, so changes
   made while listing are replayed by the next incremental sync.
2. List every message id (all pages, no cap; the next page while this one is
   fetched) and fetch each page's messages at the lowest quota cost (:class:`Plan`):
   a thread with two or more messages on the page in one ``threads.get`` (10 units,
   all its messages), a lone message with ``messages.get`` (5 units), mixed in
   batches that fill the pacer's window exactly. Each fetched page is parsed off the
   loop and stored in one transaction while the next page is fetched: memory holds
   at most three pages (one fetching, one queued, one storing), whatever the mailbox
   size.
3. Remove what the mailbox no longer has (rows this run did not write) and store the
   cursor, in one transaction.
A message that 404s while fetching was deleted meanwhile: it is skipped.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from syncengine import store
from syncengine.context import SyncContext
from syncengine.gmail.calls import GmailCall
from syncengine.parse import ParsedMessage

Resource = Mapping[str, Any]

_DONE = object()


class Plan:
    """Which call fetches each listed message, across the pages of one full sync. Pure.

    Gmail lists messages newest first, so a thread's messages may be spread over
    several pages. A thread with two or more messages on a page is fetched whole once
    (its messages on later pages are then skipped); a message alone on its page is
    fetched by itself and remembered, so that a later ``threads.get`` of its thread
    does not store it twice. Memory: one id per thread fetched whole and per message
    fetched alone.
    """

    def __init__(self) -> None:
        self._whole: set[str] = set()  # threads fetched with threads.get
        self._alone: set[str] = set()  # messages fetched with messages.get

    def split(self, listed: Iterable[tuple[str, str]]) -> tuple[dict[str, list[str]], list[str]]:
        """For one page of (message id, thread id): (threads to fetch whole, each with its
        message ids on the page; ids of the messages to fetch alone)."""
        by_thread: dict[str, list[str]] = {}
        for message_id, thread_id in listed:
            if thread_id not in self._whole:
                by_thread.setdefault(thread_id, []).append(message_id)
        threads = {t: ids for t, ids in by_thread.items() if len(ids) >= 2}
        singles = [ids[0] for ids in by_thread.values() if len(ids) == 1]
        return threads, singles

    def resources(self, threads: Mapping[str, Sequence[str]],
                  thread_answers: Sequence[Resource | None], singles: Sequence[str],
                  message_answers: Sequence[Resource | None]) -> dict[str, Resource | None]:
        """The page's messages by id (None: Gmail no longer has it), from the answers
        to the calls :meth:`split` asked for, in the same order."""
        page: dict[str, Resource | None] = dict(zip(singles, message_answers, strict=True))
        self._alone.update(singles)
        for (thread_id, listed), answer in zip(threads.items(), thread_answers, strict=True):
            self._whole.add(thread_id)
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
    pages: asyncio.Queue[Any] = asyncio.Queue(maxsize=1)
    producer = asyncio.create_task(_produce(ctx, pages))
    try:
        while (page := await pages.get()) is not _DONE:
            parsed, gone = await ctx.parse(page)
            run.progress.fetched += len(parsed)
            run.progress.skipped_gone += len(gone)
            await _store_page(ctx, parsed)
        await producer  # surfaces its exception, if any
    finally:
        if not producer.done():
            producer.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await producer

    run.progress.phase = "reconciling"
    async with ctx.pool.acquire() as conn, conn.transaction():
        deleted, threads = await store.delete_unseen(conn, ctx.account_id, ctx.mailbox, run.id)
        await store.advance_cursor(conn, ctx.account_id, cursor)
        run.progress.deleted += deleted
        run.progress.threads |= threads
        run.end_history_id = cursor
        await run.save_progress(conn)
    return cursor


async def _produce(ctx: SyncContext, pages: asyncio.Queue[Any]) -> None:
    """List the pages (the next while this one is fetched), fetch each page's messages
    as :class:`Plan` says, and hand the answers, raw, to the consumer."""
    progress = ctx.run.progress
    plan = Plan()
    calls = ctx.client.calls
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
            threads, singles = plan.split(listed)
            if threads or singles:
                progress.phase = "fetching"
                requests: list[GmailCall] = [calls.get_thread(t, format="full") for t in threads]
                requests += [calls.get_message(m, format="full") for m in singles]
                answers = await ctx.client.fetch_all(requests)
                await pages.put(plan.resources(threads, answers[:len(threads)], singles,
                                               answers[len(threads):]))
            if not token:
                break
    finally:
        listing.cancel()  # when leaving early; its outcome, if any, no longer matters
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await listing
    await pages.put(_DONE)


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
