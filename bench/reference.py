"""The original algorithm, as a reference: list threads, then ``threads.get`` one at a time.

What DelightBridge's first sync did: page through ``threads.list`` (100 a page, the
API's default), then for each thread, one after the other, ``threads.get`` with
``format=full`` and store its messages. To compare fetch strategies and nothing else,
it reuses the engine's pieces for everything around the fetch: the same HTTP
transport, OAuth and retry (:class:`~delightbridge.sync.gmail.client.GmailClient`, whose
pacer never has to wait here: one 10-unit call at a time stays far below 245
units/s), the same parsing (:meth:`SyncContext.parse`, attachments of large bodies
included) and the same writes (:func:`delightbridge.sync.store.store_messages`, one
transaction per thread). No batching, no concurrency, no reconciliation.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlencode

from delightbridge.sync import store
from delightbridge.sync.context import SyncContext
from delightbridge.sync.engine import SyncEngine
from delightbridge.sync.gmail.calls import GmailCall
from delightbridge.sync.runs import Run


def _url(base: str, path: str, **params: Any) -> str:
    query = urlencode({k: v for k, v in params.items() if v is not None})
    return f"{base.rstrip('/')}/gmail/v1/users/me/{path}?{query}"


async def run_reference(engine: SyncEngine, service_id: str, *, max_threads: int | None = None,
                        page_size: int = 100) -> dict[str, Any]:
    """Mirror the mailbox the original way (the first ``max_threads`` threads only, when
    given); counts of what it did."""
    service = await engine.service(service_id)
    client = engine.client_for(service)
    base = engine.config.gmail_api_endpoint
    run = Run(engine.pool, service_id, "full", "cli")
    await run.start()
    ctx = SyncContext(engine.pool, client, service.id, service.email, run)

    thread_ids: list[str] = []
    page_token: str | None = None
    while True:
        listing = await client.execute(GmailCall(
            "threads.list", "GET",
            _url(base, "threads", maxResults=page_size, pageToken=page_token, alt="json")))
        thread_ids += [t["id"] for t in listing.get("threads") or ()]
        page_token = listing.get("nextPageToken")
        if not page_token or (max_threads is not None and len(thread_ids) >= max_threads):
            break
    listed, complete = len(thread_ids), page_token is None
    if max_threads is not None and len(thread_ids) > max_threads:
        complete = False
        thread_ids = thread_ids[:max_threads]

    fetched = stored = 0
    for thread_id in thread_ids:
        thread = await client.execute_optional(GmailCall(
            "threads.get", "GET", _url(base, f"threads/{thread_id}", format="full",
                                       alt="json")))
        if thread is None:
            continue
        resources = {m["id"]: m for m in thread.get("messages") or ()}
        parsed, _ = await ctx.parse(resources)
        fetched += len(parsed)
        mirrored = [m for m in parsed if m.is_mirrored]
        async with engine.pool.acquire() as conn, conn.transaction():
            written = await store.store_messages(conn, service.id, service.email, mirrored,
                                                 run.id)
        stored += written.written
    run.progress.stored = stored
    await run.finish()
    return {"threads_listed": listed, "threads_fetched": len(thread_ids),
            "messages_fetched": fetched, "messages": stored,
            "complete": complete}
