"""Sync runs (``delightbridge_sync.runs``): typed functions around their named queries.

Every run writes its row when it starts, its progress as pages commit and its outcome
at the end (:mod:`delightbridge.sync.runs`); the API reads them back. Arguments are
named; history ids travel as numbers and are stored as ``numeric`` (Gmail's ids are
unsigned 64-bit).
"""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import asyncpg

from delightbridge.db.queries import query
from delightbridge.db.types import Connection, Executor


@dataclass(frozen=True, slots=True)
class Started:
    """What an existing row said when a run was taken up again (an import resumed)."""

    fell_back_to_full: bool
    start_history_id: int | None


@dataclass(frozen=True, slots=True)
class RunRow:
    id: uuid.UUID
    service_id: str
    mode: str
    trigger: str
    status: str
    fell_back_to_full: bool
    start_history_id: str | None
    end_history_id: str | None
    threads_processed: int
    messages_processed: int
    messages_deleted: int
    progress: dict[str, Any] | None
    error_code: str | None
    error: str | None
    started_at: datetime
    finished_at: datetime | None

    @classmethod
    def of(cls, row: asyncpg.Record) -> RunRow:
        values = dict(row)
        values["service_id"] = values.pop("account_id")
        values["progress"] = json.loads(values["progress"]) if values["progress"] else None
        return cls(**values)


def _numeric(value: int | None) -> str | None:
    return None if value is None else str(value)


async def start(conn: Connection, *, run_id: uuid.UUID, service_id: str, mode: str,
                trigger: str, start_history_id: int | None) -> Started:
    """Record a run, or take up an import's recorded run again; the service's runs left
    ``running`` by a process that died are marked interrupted first (in the caller's
    transaction)."""
    await conn.execute(query("sync_run_interrupted"), service_id, run_id)
    row = await conn.fetchrow(query("sync_run_start"), run_id, service_id, mode, trigger,
                              _numeric(start_history_id))
    assert row is not None
    recorded = row["start_history_id"]
    return Started(row["fell_back_to_full"], None if recorded is None else int(recorded))


async def save_progress(db: Executor, *, run_id: uuid.UUID, progress: dict[str, object],
                        threads: int, messages: int, deleted: int, mode: str,
                        fell_back_to_full: bool) -> None:
    await db.execute(query("sync_run_progress"), run_id, json.dumps(progress), threads,
                     messages, deleted, mode, fell_back_to_full)


async def finish(db: Executor, *, run_id: uuid.UUID, status: str, end_history_id: int | None,
                 threads: int, messages: int, deleted: int, mode: str,
                 fell_back_to_full: bool, error_code: str | None, error: str | None) -> None:
    await db.execute(query("sync_run_finish"), run_id, status, _numeric(end_history_id),
                     threads, messages, deleted, mode, fell_back_to_full, error_code, error)


async def get(db: Executor, *, service_id: str, run_id: uuid.UUID) -> RunRow | None:
    row = await db.fetchrow(query("sync_run_get"), service_id, run_id)
    return None if row is None else RunRow.of(row)


async def recent(db: Executor, *, service_id: str, limit: int) -> list[RunRow]:
    """The service's runs, newest first."""
    return [RunRow.of(r) for r in await db.fetch(query("sync_runs_recent"), service_id, limit)]


async def running(db: Executor, *, service_id: str) -> uuid.UUID | None:
    """The run holding the service's sync now, if the database knows one."""
    found = await db.fetchval(query("api_running_run"), service_id)
    return found if isinstance(found, uuid.UUID) else None
