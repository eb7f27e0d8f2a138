"""Full sync: the whole mailbox, page by page, then a reconciliation.

1. Read the profile's ``historyId`` first: the cursor stored at the end, so changes
   made while listing are replayed by the next incremental sync.
2. List every message id (all pages, no cap), fetch each page's messages in batches,
   parse them off the loop, and store the page in one transaction. The next page is
   listed and fetched while the previous one is being stored; memory holds at most
   two pages, whatever the mailbox size.
3. Remove what the mailbox no longer has (rows this run did not write) and store the
   cursor, in one transaction.
A message that 404s while fetching was deleted meanwhile: it is skipped.
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

from syncengine import store
from syncengine.context import SyncContext
from syncengine.parse import ParsedMessage

_DONE = object()


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
            await _store_page(ctx, page)
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
    page_token: str | None = None
    progress = ctx.run.progress
    while True:
        listing = await ctx.client.list_messages(page_token)
        ids = [m["id"] for m in listing.get("messages") or () if isinstance(m.get("id"), str)]
        progress.listed += len(ids)
        if ids:
            progress.phase = "fetching"
            resources = await ctx.client.get_messages(ids)
            parsed, gone = await ctx.parse(resources)
            progress.fetched += len(parsed)
            progress.skipped_gone += len(gone)
            await pages.put(parsed)
        page_token = listing.get("nextPageToken")
        if not page_token:
            break
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
