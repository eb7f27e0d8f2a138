"""Incremental sync: Gmail's history since the stored cursor, page by page.

For each ``history.list`` page: plan (pure), read the current state of every touched
message, then in one transaction store what is mirrored, delete what is gone or no
longer mirrored (trash, spam, drafts), refresh the touched threads and advance the
cursor: to the page's highest record id, and on the last page to the response's
``historyId``. A crash between pages loses nothing: the next sync resumes from the
last committed page. ``HistoryExpired`` (404) propagates; the engine falls back to a
full sync.
"""

from __future__ import annotations

from collections.abc import Collection

from delightbridge.db.connection import transaction
from delightbridge.sync import history, store
from delightbridge.sync.context import SyncContext


async def apply(ctx: SyncContext, fetch: Collection[str], delete: Collection[str],
                cursor: int | None = None) -> None:
    """Make the mirror of these messages match Gmail now, in one transaction.

    ``fetch``: read each one's current state (stored if mirrored, else removed);
    ``delete``: Gmail deleted them. ``cursor``, when given, commits with the change.
    """
    run, progress = ctx.run, ctx.run.progress
    resources = await ctx.client.get_messages(sorted(fetch)) if fetch else {}
    parsed, gone = await ctx.parse(resources)
    progress.fetched += len(parsed)
    keep = [m for m in parsed if m.is_mirrored]
    drop = set(delete) | set(gone) | {m.gmail_message_id for m in parsed if not m.is_mirrored}
    async with transaction(ctx.pool) as conn:
        written = await store.store_messages(conn, ctx.account_id, ctx.mailbox, keep, run.id,
                                             events=ctx.emit_events)
        deleted, threads = await store.delete_messages(conn, ctx.account_id, ctx.mailbox, drop,
                                                       events=ctx.emit_events,
                                                       history_id=cursor)
        if cursor is not None:
            await store.advance_cursor(conn, ctx.account_id, cursor)
            run.end_history_id = cursor
        progress.stored += written.written
        progress.conflicts += written.conflicts
        progress.deleted += deleted
        progress.threads |= written.threads | threads
        await run.save_progress(conn)


async def run_incremental(ctx: SyncContext, start_history_id: int) -> int:
    """Apply every change after ``start_history_id``; return the new cursor."""
    ctx.run.start_history_id = start_history_id
    ctx.run.progress.phase = "history"
    page_token: str | None = None
    cursor = start_history_id
    while True:
        page = await ctx.client.list_history(start_history_id, page_token)
        page_token = page.get("nextPageToken")
        plan = history.plan(page.get("history") or ())
        if page_token:
            cursor = max(cursor, plan.last_record_id or cursor)
        else:
            cursor = max(cursor, int(page.get("historyId") or cursor), plan.last_record_id or 0)
        await apply(ctx, plan.fetch, plan.delete, cursor)
        if not page_token:
            return cursor
