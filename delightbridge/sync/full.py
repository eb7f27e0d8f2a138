"""Fetching many messages at once: the pipeline under an import (delightbridge.sync.imports).

Listed pages of (message id, thread id) come in; each message is fetched at the lowest
quota cost (:class:`Plan`): a thread with two or more messages on a page in one
``threads.get`` (all its messages), a lone message with ``messages.get``, mixed in
batches that fill the pacer's window exactly. Batches stream across pages: a page's
last, partial batch is filled with the next page's calls. Answered batches are parsed
off the loop and stored, up to 500 messages or 2 MB a transaction.
Memory is bounded whatever the mailbox's size (:class:`Held`): a batch is sent only
while fewer than :data:`HELD_MESSAGES` messages are being fetched (counted as listed)
or wait to be stored and while those answered weigh less than :data:`HELD_BYTES`
(Gmail's ``sizeEstimate``); the client has at most 8 ``threads.get`` in flight, 3 a
batch (a conversation holds up to 100 messages and may quote itself in every reply),
and where every call fetches a whole conversation (an import's inbox) at most
``concurrency // 2`` batches are in flight.
A message that 404s while fetching was deleted meanwhile: it is skipped.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from delightbridge.db.connection import transaction
from delightbridge.sync import store
from delightbridge.sync.context import SyncContext
from delightbridge.sync.gmail.calls import CallBuilder, GmailCall
from delightbridge.sync.idset import IdSet
from delightbridge.sync.parse import ParsedMessage

Resource = Mapping[str, Any]

_DONE = object()
# Parsed and stored at a time (one transaction): whole batches, until either is reached.
STORE_CHUNK = 500  # messages
STORE_BYTES = 2 << 20  # Gmail's sizeEstimate: a long conversation quotes itself over and over
# No batch is sent while this many messages are being fetched or wait to be stored, or
# while the answered ones weigh this much.
HELD_MESSAGES = 1_000
HELD_BYTES = 6 << 20


@dataclass(frozen=True, slots=True)
class Fetch:
    """One call of a full sync: a thread whole (``threads.get``) or a message alone
    (``messages.get``), with the ids of the listed messages it fetches."""

    id: str
    listed: tuple[str, ...]
    whole: bool

    def call(self, builder: CallBuilder) -> GmailCall:
        if self.whole:
            return builder.get_thread(self.id, format="full")
        return builder.get_message(self.id, format="full")


class Plan:
    """Which call fetches each listed message, across the pages of one full sync. Pure.

    Gmail lists messages newest first, so a thread's messages may be spread over
    several pages. A thread with two or more messages on a page is fetched whole once
    (its messages on later pages are then skipped); a message alone on its page is
    fetched by itself and remembered, so that a later ``threads.get`` of its thread
    does not store it twice. Decided when a page is listed, not when it is answered,
    so the next page's fetch need not wait for this one's. Memory: 8 bytes per thread
    fetched whole and per message fetched alone (:class:`IdSet`).
    """

    def __init__(self) -> None:
        self._whole = IdSet()  # threads fetched with threads.get
        self._alone = IdSet()  # messages fetched with messages.get

    def split(self, listed: Iterable[tuple[str, str]], *, whole: bool = False) -> list[Fetch]:
        """The calls fetching one page of (message id, thread id): threads whole first,
        then lone messages. A message fetched already (listed again: an import lists
        the inbox, then everything) is not fetched twice. ``whole``: every thread is
        fetched whole, whatever its messages on the page (an import's inbox: each
        conversation complete, its earlier messages outside the inbox included)."""
        by_thread: dict[str, list[str]] = {}
        for message_id, thread_id in listed:
            if thread_id not in self._whole and message_id not in self._alone:
                by_thread.setdefault(thread_id, []).append(message_id)
        least = 1 if whole else 2
        threads = [Fetch(t, tuple(ids), True) for t, ids in by_thread.items()
                   if len(ids) >= least]
        singles = [Fetch(ids[0], (ids[0],), False) for ids in by_thread.values()
                   if len(ids) < least]
        self._whole.update(f.id for f in threads)
        self._alone.update(f.id for f in singles)
        return threads + singles

    def resources(self, fetches: Sequence[Fetch], answers: Sequence[Resource | None]
                  ) -> dict[str, Resource | None]:
        """The messages by id (None: Gmail no longer has it), from the answers to
        ``fetches``' calls, in their order. A message of a thread fetched whole that was
        fetched alone on an earlier page is left out."""
        found: dict[str, Resource | None] = {}
        for fetch, answer in zip(fetches, answers, strict=True):
            if not fetch.whole:
                found[fetch.id] = answer
                continue
            present: set[str] = set()
            for message in (answer or {}).get("messages") or ():
                message_id = message.get("id") if isinstance(message, Mapping) else None
                if isinstance(message_id, str):
                    present.add(message_id)
                    if message_id not in self._alone:
                        found[message_id] = message
            # Listed but no longer in the thread (or the thread is gone): deleted.
            found.update(dict.fromkeys(m for m in fetch.listed if m not in present))
        return found


class Held:
    """What one full sync holds in memory: messages and their size (Gmail's
    ``sizeEstimate``).

    Messages are counted when their batch is sent (as many as were listed: a thread's
    answer may bring more, counted when it arrives), bytes when the answer arrives,
    both until the messages are stored. A batch waits while either is at its limit.
    """

    def __init__(self, limit: int, byte_limit: int) -> None:
        self.limit = limit
        self.byte_limit = byte_limit
        self.count = 0
        self.bytes = 0
        self.peak = 0
        self.peak_bytes = 0
        self._freed = asyncio.Event()

    async def reserve(self, messages: int) -> None:
        while self.count >= self.limit or self.bytes >= self.byte_limit:
            self._freed.clear()
            await self._freed.wait()
        self.add(messages, 0)

    def add(self, messages: int, size: int) -> None:
        self.count += messages
        self.bytes += size
        self.peak = max(self.peak, self.count)
        self.peak_bytes = max(self.peak_bytes, self.bytes)

    def release(self, messages: int, size: int) -> None:
        self.count -= messages
        self.bytes -= size
        self._freed.set()


@dataclass(frozen=True, slots=True)
class Answered:
    """One answered batch: its messages by id, their count and their size in bytes."""

    found: dict[str, Resource | None]
    count: int
    size: int

    @classmethod
    def of(cls, found: dict[str, Resource | None]) -> Answered:
        size = 0
        for resource in found.values():
            estimate = resource.get("sizeEstimate") if resource is not None else None
            size += estimate if isinstance(estimate, int) and estimate > 0 else 0
        return cls(found, len(found), size)


Listed = list[tuple[str, str]]  # (message id, thread id) of one listed page


async def mirror(ctx: SyncContext, pages: AsyncIterator[Listed], plan: Plan, *,
                 whole: bool = False) -> None:
    """Fetch and store every message of ``pages`` (then return); ``whole``: every
    listed message's whole thread (:meth:`Plan.split`)."""
    run = ctx.run
    answered: asyncio.Queue[Any] = asyncio.Queue()  # Answered, an exception, or _DONE
    held = Held(HELD_MESSAGES, HELD_BYTES)
    producer = asyncio.create_task(_produce(ctx, pages, plan, answered, held, whole))
    try:
        done = False
        while not done:
            chunk: dict[str, Resource | None] = {}
            count = size = 0
            item = await answered.get()
            while True:  # whole batches, until a chunk's worth or nothing more is ready
                if item is _DONE:
                    done = True
                    break
                if isinstance(item, BaseException):
                    raise item
                chunk.update(item.found)
                count += item.count
                size += item.size
                if count >= STORE_CHUNK or size >= STORE_BYTES or answered.empty():
                    break
                item = answered.get_nowait()
            del item  # only ``chunk`` may keep the answers
            if chunk:
                parsed, gone = await ctx.parse(chunk)
                del chunk
                run.progress.fetched += len(parsed)
                run.progress.skipped_gone += len(gone)
                await _store_page(ctx, parsed)
                del parsed
            held.release(count, size)
        await producer  # surfaces its exception, if any
    finally:
        producer.cancel()  # when the sync failed; its error, if any, is raised already
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await producer


async def _produce(ctx: SyncContext, pages: AsyncIterator[Listed], plan: Plan,
                   answered: asyncio.Queue[Any], held: Held, whole: bool) -> None:
    """Send the pages' calls in batches, as ``plan`` says, while ``held`` allows; each
    batch's messages (or its error) go to ``answered``, then :data:`_DONE`."""
    client = ctx.client
    pending: list[Fetch] = []  # a partial batch, waiting for the next page's calls
    # Batches sent or about to be. Where every call is a whole conversation (an
    # import's inbox: up to 100 messages quoting each other, megabytes an answer), a
    # quarter as many, so that long ones seldom overlap: the peak RSS of a 100,000-
    # message import is then that of a 10,000 one (BENCHMARKS.md, memory). Under
    # Gmail's quota the pacer sends fewer than that anyway.
    in_flight = max(1, client.concurrency // 2) if whole else 2 * client.concurrency
    sending = asyncio.Semaphore(in_flight)
    fetches: set[asyncio.Task[None]] = set()

    async def send(more_coming: bool) -> None:
        nonlocal pending
        calls = [f.call(client.calls) for f in pending]
        batches, held_back = client.plan_batches(calls, hold_last=more_coming)
        for batch in batches:
            fetch = [pending[i] for i in batch]
            await sending.acquire()
            await held.reserve(sum(len(f.listed) for f in fetch))
            task = asyncio.create_task(_fetch(ctx, plan, fetch, [calls[i] for i in batch],
                                              answered, held, sending))
            fetches.add(task)
            task.add_done_callback(fetches.discard)
        pending = [pending[i] for i in held_back]

    try:
        async for listed in pages:
            pending += plan.split(listed, whole=whole)
            if pending:
                await send(more_coming=True)
        await send(more_coming=False)
        if fetches:
            await asyncio.wait(set(fetches))
    except Exception as exc:  # the consumer raises it
        answered.put_nowait(exc)
        raise
    finally:
        for task in list(fetches):
            task.cancel()
        if fetches:
            await asyncio.wait(set(fetches))
        answered.put_nowait(_DONE)


async def _fetch(ctx: SyncContext, plan: Plan, fetch: list[Fetch], calls: list[GmailCall],
                 answered: asyncio.Queue[Any], held: Held, sending: asyncio.Semaphore) -> None:
    """Fetch one batch; its messages (or the error) go to ``answered``."""
    try:
        found = plan.resources(fetch, await ctx.client.fetch_batch(calls))
    except Exception as exc:  # the sync fails: the consumer raises it
        answered.put_nowait(exc)
        return
    finally:
        sending.release()
    answer = Answered.of(found)
    held.add(answer.count - sum(len(f.listed) for f in fetch), answer.size)
    answered.put_nowait(answer)


async def _store_page(ctx: SyncContext, parsed: list[ParsedMessage]) -> None:
    mirrored = [m for m in parsed if m.is_mirrored]
    progress = ctx.run.progress
    async with transaction(ctx.pool) as conn:
        written = await store.store_messages(conn, ctx.account_id, ctx.mailbox, mirrored,
                                             ctx.run.id, events=ctx.emit_events)
        progress.stored += written.written
        progress.conflicts += written.conflicts
        progress.threads |= written.threads
        await ctx.run.save_progress(conn)
