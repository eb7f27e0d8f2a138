"""A sync run in progress: its counters, its ``delightbridge_sync.runs`` row, its result.

Every run writes its row when it starts, updates its progress as pages commit, and
closes it with the outcome, whatever happens (the close is shielded from cancellation so
a stopped worker still records why its run ended).
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Literal, get_args

import asyncpg

from delightbridge.db import runs as runs_db
from delightbridge.db.connection import transaction
from delightbridge.db.types import Connection
from delightbridge.sync.idset import IdSet

Mode = Literal["full", "incremental"]
Trigger = Literal["api", "notification", "poll", "connect", "cli", "repair"]
MODES: tuple[Mode, ...] = ("full", "incremental")
TRIGGERS: tuple[Trigger, ...] = get_args(Trigger)
#: A run's ``status``: as ``delightbridge_sync.runs`` checks it, and the API answers it.
RunState = Literal["running", "succeeded", "failed"]
RUN_STATES: tuple[RunState, ...] = get_args(RunState)


@dataclass(frozen=True, slots=True)
class SyncResult:
    """What a finished run did; the API returns it under the seed's names."""

    run_id: uuid.UUID
    service_id: str
    mode: Mode
    requested_mode: Mode
    fell_back_to_full: bool
    threads_processed: int
    messages_processed: int
    messages_deleted: int
    start_history_id: int | None
    history_id: int | None
    duration: float


@dataclass
class Progress:
    """Counters of a run, readable while it runs (progress bars, the runs endpoint).

    An import also knows its ``total`` (Gmail's message count at its start) and what it
    skipped (stored before it was resumed, or newer); ``done`` of ``total`` and the
    estimated time left (from the pace since this process took the run) follow.
    """

    phase: str = "starting"
    listed: int = 0
    fetched: int = 0
    stored: int = 0
    deleted: int = 0
    skipped_gone: int = 0
    conflicts: int = 0
    skipped: int = 0
    total: int | None = None
    threads: IdSet = field(default_factory=IdSet)  # written: 8 bytes each, for imports
    began: float = field(default_factory=time.monotonic)
    # An import lists the inbox, then every message: the second listing counts again
    # from zero (what the first stored is skipped there), never below the first's count.
    recount_from: int = 0

    @property
    def done(self) -> int:
        """Listed messages dealt with: stored, skipped, gone or another's."""
        counted = self.stored + self.skipped + self.skipped_gone + self.conflicts
        return max(self.recount_from, counted - self.recount_from)

    def count_again(self) -> None:
        """Start the listing that covers every message (see ``recount_from``)."""
        self.recount_from = self.done

    def eta(self, now: float | None = None) -> float | None:
        """Seconds left at the pace so far; None before there is a pace to go by."""
        if not self.total or self.done <= 0:
            return None
        elapsed = (time.monotonic() if now is None else now) - self.began
        left = max(0, self.total - self.done)
        return round(left * elapsed / self.done, 1) if elapsed > 0 else None

    def as_json(self) -> dict[str, object]:
        return {"phase": self.phase, "listed": self.listed, "fetched": self.fetched,
                "stored": self.stored, "deleted": self.deleted,
                "skippedGone": self.skipped_gone, "conflicts": self.conflicts,
                "skipped": self.skipped, "done": self.done, "total": self.total,
                "etaSeconds": self.eta(), "threads": len(self.threads)}


class Run:
    def __init__(self, pool: asyncpg.Pool, service_id: str, requested: Mode, trigger: Trigger,
                 run_id: uuid.UUID | None = None,
                 on_progress: Callable[[Progress], None] | None = None) -> None:
        self.pool = pool
        self.id = run_id or uuid.uuid4()
        self.service_id = service_id
        self.requested: Mode = requested
        self.mode: Mode = requested
        self.trigger: Trigger = trigger
        self.fell_back_to_full = False
        self.start_history_id: int | None = None
        self.end_history_id: int | None = None
        self.progress = Progress()
        self._on_progress = on_progress
        self._started = time.monotonic()

    async def start(self) -> None:
        """Record the run (or take up an import's run again, as it was recorded)."""
        async with transaction(self.pool) as conn:
            started = await runs_db.start(
                conn, run_id=self.id, service_id=self.service_id, mode=self.mode,
                trigger=self.trigger, start_history_id=self.start_history_id)
        self.fell_back_to_full = self.fell_back_to_full or started.fell_back_to_full
        if started.start_history_id is not None:
            self.start_history_id = started.start_history_id

    def notify(self) -> None:
        if self._on_progress:
            self._on_progress(self.progress)

    async def save_progress(self, conn: Connection | None = None) -> None:
        p = self.progress
        await runs_db.save_progress(
            self.pool if conn is None else conn, run_id=self.id, progress=p.as_json(),
            threads=len(p.threads), messages=p.stored + p.deleted, deleted=p.deleted,
            mode=self.mode, fell_back_to_full=self.fell_back_to_full)
        self.notify()

    async def finish(self, *, error_code: str | None = None, error: str | None = None) -> None:
        p = self.progress
        status: RunState = "failed" if error_code else "succeeded"
        await asyncio.shield(runs_db.finish(
            self.pool, run_id=self.id, status=status, end_history_id=self.end_history_id,
            threads=len(p.threads), messages=p.stored + p.deleted, deleted=p.deleted,
            mode=self.mode, fell_back_to_full=self.fell_back_to_full, error_code=error_code,
            error=error))

    def result(self) -> SyncResult:
        p = self.progress
        return SyncResult(
            run_id=self.id, service_id=self.service_id, mode=self.mode,
            requested_mode=self.requested, fell_back_to_full=self.fell_back_to_full,
            threads_processed=len(p.threads), messages_processed=p.stored + p.deleted,
            messages_deleted=p.deleted, start_history_id=self.start_history_id,
            history_id=self.end_history_id, duration=time.monotonic() - self._started,
        )

