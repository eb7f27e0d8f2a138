"""Imports: resumable, inbox first, beside incremental syncs, and repairs that fetch only
what changed."""

from __future__ import annotations

import asyncio
import json
import uuid
from typing import Any

import asyncpg
import pytest
from prometheus_client import CollectorRegistry

from delightbridge.sync import imports, store
from delightbridge.sync.metrics import EngineMetrics
from delightbridge.sync.parse import parse_message
from delightbridge.sync.runs import Progress, SyncResult, Trigger
from tests.syncengine.conftest import SyncSetup
from tests.syncengine.gmail_payload import MAILBOX, new_message, to_gmail
from tests.syncengine.mirror import assert_mirror

FETCHES = ("users.messages.get", "users.threads.get")


def _fetch_calls(setup: SyncSetup) -> int:
    return sum(setup.sim.counters.calls(m) for m in FETCHES)


# --------------------------------------------------------------------------- pure


# --------------------------------------------------------------------------- ordering


async def test_the_open_inbox_is_imported_first(setup: SyncSetup) -> None:
    sim = setup.sim
    sim.seed(setup.address, messages=120, threads=40, seed=31)
    mirrored = [m for m in sim.snapshot(setup.address).messages
                if not {"SPAM", "TRASH", "DRAFT"} & set(m.label_ids)]
    open_threads = {m.thread_id for m in mirrored if "INBOX" in m.label_ids}
    # Each open conversation whole: its messages outside the inbox too.
    inbox = {m.id for m in mirrored if m.thread_id in open_threads}
    assert 0 < len({m.id for m in mirrored if "INBOX" in m.label_ids}) < len(inbox) < len(mirrored)
    stored_when_the_rest_began: set[str] = set()
    checks: list[asyncio.Task[None]] = []

    most_done: list[int] = []

    def watch(progress: Progress) -> None:
        most_done.append(progress.done)
        if progress.phase == "importing" and not checks:
            async def look() -> None:
                rows = await setup.pool.fetch("SELECT gmail_message_id FROM emails")
                stored_when_the_rest_began.update(r["gmail_message_id"] for r in rows)
            checks.append(asyncio.create_task(look()))

    await setup.engine.sync(setup.account_id, mode="full", trigger="cli", on_progress=watch)
    await asyncio.gather(*checks)
    assert inbox <= stored_when_the_rest_began
    await assert_mirror(setup.pool, setup.account_id, sim.snapshot(setup.address))
    # Progress counts each message once, though the inbox is listed twice.
    assert max(most_done) == len(mirrored)
    job = await setup.pool.fetchrow("SELECT done, total FROM delightbridge_sync.imports")
    assert (job["done"], job["total"]) == (len(mirrored), len(mirrored))


async def test_after_the_inbox_the_import_goes_newest_to_oldest(setup: SyncSetup) -> None:
    sim = setup.sim
    sim.seed(setup.address, messages=800, threads=700, seed=33)
    kept_open = sorted({m.thread_id for m in sim.snapshot(setup.address).messages
                        if "INBOX" in m.label_ids})[:30]
    for m in sim.snapshot(setup.address).messages:  # most mail archived: a large rest
        if "INBOX" in m.label_ids and m.thread_id not in kept_open:
            sim.archive(setup.address, m.id)
    mirrored = [m for m in sim.snapshot(setup.address).messages
                if not {"SPAM", "TRASH", "DRAFT"} & set(m.label_ids)]
    inbox_threads = {m.thread_id for m in mirrored if "INBOX" in m.label_ids}
    assert len(inbox_threads) == 30
    rest = sorted((m for m in mirrored if m.thread_id not in inbox_threads),
                  key=lambda m: m.internal_date, reverse=True)
    inbox = len(mirrored) - len(rest)
    newer_half = {m.id for m in rest[:len(rest) // 2]}
    halfway: list[asyncio.Task[set[str]]] = []

    async def stored() -> set[str]:
        rows = await setup.pool.fetch("SELECT gmail_message_id FROM emails")
        return {r["gmail_message_id"] for r in rows}

    def watch(progress: Progress) -> None:
        if (progress.phase == "importing" and not halfway
                and progress.stored >= inbox + len(rest) // 4):
            halfway.append(asyncio.create_task(stored()))

    await setup.engine.sync(setup.account_id, mode="full", trigger="cli", on_progress=watch)
    seen = (await asyncio.gather(*halfway))[0]
    from_the_rest = {m.id for m in rest} & seen
    assert from_the_rest, "no snapshot while the rest was importing"
    # A quarter of the rest in, the newer half holds nearly all of it (a few batches
    # are in flight at once, so commits may pass each other a little).
    assert len(from_the_rest & newer_half) >= 0.9 * len(from_the_rest)
    assert len(newer_half - seen) > 0  # and it was taken mid-way, not at the end


async def test_an_imports_progress_and_eta_are_in_its_run_and_its_metrics(
        setup: SyncSetup) -> None:
    setup.sim.seed(setup.address, messages=300, threads=120, seed=34)
    registry = CollectorRegistry()
    setup.engine.observers.append(EngineMetrics(registry))
    mid: list[asyncio.Task[tuple[dict[str, Any], dict[str, float | None]]]] = []
    run_ids: list[uuid.UUID] = []

    async def saved_progress() -> dict[str, Any]:
        row = await setup.pool.fetchval(
            "SELECT progress FROM delightbridge_sync.runs WHERE id = $1", run_ids[0])
        return dict(json.loads(row) if isinstance(row, str) else row)

    async def look() -> tuple[dict[str, Any], dict[str, float | None]]:
        gauges = {name: registry.get_sample_value(name, {"service": setup.account_id})
                  for name in ("delightbridge_import_messages_done",
                               "delightbridge_import_messages_total",
                               "delightbridge_import_eta_seconds")}
        return await saved_progress(), gauges

    def watch(progress: Progress) -> None:
        if progress.phase == "importing" and progress.stored >= 150 and not mid:
            mid.append(asyncio.create_task(look()))

    await setup.engine.sync(setup.account_id, mode="full", trigger="cli",
                            on_progress=watch, on_start=lambda r: run_ids.append(r.id))
    (saved, gauges), = await asyncio.gather(*mid)
    assert 0 < saved["done"] < saved["total"]
    assert saved["etaSeconds"] is not None
    assert saved["etaSeconds"] >= 0
    assert gauges["delightbridge_import_messages_done"] >= saved["done"]
    assert gauges["delightbridge_import_messages_total"] == saved["total"]
    assert gauges["delightbridge_import_eta_seconds"] is not None
    final = await saved_progress()
    assert final["done"] == final["total"] > saved["done"]
    assert final["etaSeconds"] == 0


# --------------------------------------------------------------------------- resuming


async def test_a_killed_import_resumes_without_fetching_what_it_stored(
    setup: SyncSetup,
) -> None:
    sim = setup.sim
    sim.seed(setup.address, messages=400, threads=300, seed=32)
    sim.faults.update(latency_ms=5)
    first = Progress()

    def note(progress: Progress) -> None:
        first.stored, first.fetched = progress.stored, progress.fetched
        if progress.stored >= 150 and not stopped.is_set():
            stopped.set()

    stopped = asyncio.Event()
    task = asyncio.create_task(setup.engine.sync(setup.account_id, mode="full",
                                                 trigger="cli", on_progress=note))
    await asyncio.wait_for(stopped.wait(), timeout=60)
    task.cancel()  # the process is killed mid-import
    with pytest.raises(asyncio.CancelledError):
        await task
    job = await imports.get(setup.pool, setup.account_id)
    assert job is not None
    assert job.status == "running"  # left to be resumed
    stored_before = await setup.pool.fetchval(
        "SELECT count(*) FROM delightbridge_sync.messages WHERE synced_run_id = $1",
        job.run_id)
    assert stored_before >= 150
    calls_before = _fetch_calls(setup)

    resumed = Progress()
    result = await setup.engine.run_import(setup.account_id, trigger="poll",
                                           on_progress=lambda p: setattr(resumed, "p", p))
    assert result is not None
    assert result.run_id == job.run_id  # the same run, taken up again
    progress: Progress = resumed.p  # type: ignore[attr-defined]
    await assert_mirror(setup.pool, setup.account_id, sim.snapshot(setup.address))
    assert progress.skipped >= stored_before  # what it had stored was not fetched again
    mirrored = await setup.pool.fetchval("SELECT count(*) FROM emails")
    in_flight = max(0, first.fetched - first.stored)  # fetched, not stored when killed
    assert progress.fetched <= mirrored - stored_before + in_flight + 100  # whole threads
    assert _fetch_calls(setup) - calls_before < mirrored - stored_before + 50
    assert (await imports.get(setup.pool, setup.account_id)).status == "succeeded"  # type: ignore[union-attr]


# --------------------------------------------------------------------------- concurrency


async def _import_under_way(setup: SyncSetup, trigger: Trigger, stored: int
                            ) -> asyncio.Task[SyncResult]:
    """A full import started in the background, once it has stored more than ``stored``
    messages (Gmail answering in 20 ms, so that it goes on meanwhile)."""
    setup.sim.faults.update(latency_ms=20)
    importing = asyncio.Event()

    def note(progress: Progress) -> None:
        if progress.stored > stored:
            importing.set()

    task = asyncio.create_task(setup.engine.sync(setup.account_id, mode="full",
                                                 trigger=trigger, on_progress=note))
    await asyncio.wait_for(importing.wait(), timeout=60)
    return task


async def test_new_mail_is_mirrored_while_an_import_runs(setup: SyncSetup) -> None:
    sim = setup.sim
    sim.seed(setup.address, messages=300, threads=200, seed=33)
    task = await _import_under_way(setup, "connect", 0)
    new_id = sim.deliver(setup.address, subject="While importing")
    result = await setup.engine.sync(setup.account_id, trigger="notification")
    assert (result.mode, result.fell_back_to_full) == ("incremental", False)
    assert not task.done()  # the import goes on
    assert await setup.pool.fetchval(
        "SELECT count(*) FROM emails WHERE gmail_message_id = $1", new_id) == 1
    await task
    await assert_mirror(setup.pool, setup.account_id, sim.snapshot(setup.address))


async def _store(pool: asyncpg.Pool, account: str, message: Any, run: uuid.UUID) -> int:
    async with pool.acquire() as conn, conn.transaction():
        return (await store.store_messages(conn, account, MAILBOX, [message], run)).written


def _copy(history_id: int, labels: tuple[str, ...]) -> Any:
    return parse_message(to_gmail(new_message(subject="Refund"), message_id="18c1000000000001",
                                  thread_id="18c1000000000001", label_ids=labels,
                                  history_id=str(history_id)).resource, MAILBOX)


async def test_an_import_never_writes_over_newer_state_or_brings_back_a_removal(
    setup: SyncSetup,
) -> None:
    account, pool = setup.account_id, setup.pool
    labels = "SELECT label_ids FROM delightbridge_sync.messages"
    assert await _store(pool, account, _copy(100, ("INBOX", "UNREAD")), uuid.uuid4()) == 1
    # An import's copy read before the incremental's: left alone.
    assert await _store(pool, account, _copy(90, ("INBOX",)), uuid.uuid4()) == 0
    assert await pool.fetchval(labels) == ["INBOX", "UNREAD"]
    # While an import runs, an incremental removes the message (seen at history 150).
    await imports.request(pool, account, "full")
    async with pool.acquire() as conn, conn.transaction():
        await store.delete_messages(conn, account, MAILBOX, ["18c1000000000001"],
                                    history_id=150)
    assert await _store(pool, account, _copy(140, ("INBOX",)), uuid.uuid4()) == 0
    assert await pool.fetchval("SELECT count(*) FROM emails") == 0
    # Put back later (untrashed): a copy newer than the removal is written.
    assert await _store(pool, account, _copy(160, ("INBOX",)), uuid.uuid4()) == 1


async def test_an_incremental_rewriting_what_the_import_stored_does_not_unsee_it(
    setup: SyncSetup,
) -> None:
    """Found by the chaos soak: an incremental that began before the import's start
    committed a message the import had just stored, with the same state. Its run id
    replaced the import's, its history id was not after the import's start, so the
    import's reconciliation removed a message Gmail still has."""
    account, pool = setup.account_id, setup.pool
    run_id = await imports.request(pool, account, "full")
    assert await _store(pool, account, _copy(100, ("INBOX", "UNREAD")), run_id) == 1
    assert await _store(pool, account, _copy(100, ("INBOX", "UNREAD")), uuid.uuid4()) == 1
    assert await _store(pool, account, _copy(120, ("INBOX",)), uuid.uuid4()) == 1
    async with pool.acquire() as conn, conn.transaction():
        deleted, _ = await store.delete_unseen(conn, account, MAILBOX, run_id, since=200)
    assert deleted == 0
    assert await pool.fetchval("SELECT label_ids FROM delightbridge_sync.messages") == ["INBOX"]


# --------------------------------------------------------------------------- repairs


async def test_history_expired_repairs_fetching_only_what_changed(setup: SyncSetup) -> None:
    sim, address = setup.sim, setup.address
    sim.seed(address, messages=80, threads=60, seed=34)
    await setup.engine.sync(setup.account_id, mode="full", trigger="cli")
    mirrored = [m for m in sim.snapshot(address).messages
                if not {"SPAM", "TRASH", "DRAFT"} & set(m.label_ids)]
    starred = sim.create_label(address, "Important customer")
    sim.modify_labels(address, mirrored[0].id, remove=["UNREAD"], add=["INBOX"])
    sim.modify_labels(address, mirrored[1].id, add=[starred])
    sim.archive(address, mirrored[2].id)
    sim.delete(address, mirrored[3].id)
    new_id = sim.deliver(address, subject="Arrived while history was lost")
    sim.expire_history(address)
    calls = _fetch_calls(setup)

    result = await setup.engine.sync(setup.account_id, trigger="notification")

    assert (result.mode, result.fell_back_to_full) == ("full", True)
    await assert_mirror(setup.pool, setup.account_id, sim.snapshot(address))
    assert await setup.pool.fetchval(
        "SELECT count(*) FROM emails WHERE gmail_message_id = $1", new_id) == 1
    # The three changed messages and the new one, not the whole mailbox.
    assert _fetch_calls(setup) - calls <= 4
    assert sim.counters.calls("users.labels.list") >= 1
    again = await setup.engine.sync(setup.account_id, trigger="notification")
    assert (again.mode, again.fell_back_to_full) == ("incremental", False)


async def test_history_lost_while_an_import_runs_is_repaired_after_it(setup: SyncSetup) -> None:
    """Found by the chaos soak: Gmail's history expired while a full import ran. The
    incremental's 404 was folded into the running import and the cursor moved to now,
    but the import had already stored some messages: their changes in the lost stretch
    (a label added, a message added) never reached the mirror. Now the running import
    is followed by a repair."""
    sim, address = setup.sim, setup.address
    sim.seed(address, messages=300, threads=200, seed=35)
    await setup.engine.sync(setup.account_id, mode="full", trigger="connect")
    task = await _import_under_way(setup, "api", 20)
    run_id = (await imports.get(setup.pool, setup.account_id)).run_id  # type: ignore[union-attr]
    stored = [r["gmail_message_id"] for r in await setup.pool.fetch(
        "SELECT e.gmail_message_id FROM emails e JOIN delightbridge_sync.messages m "
        "ON m.email_id = e.id WHERE m.synced_run_id = $1", run_id)]
    label = sim.create_label(address, "Escalated")
    sim.modify_labels(address, stored[0], add=[label])  # already imported: not again
    new_id = sim.deliver(address, subject="Arrived in the lost stretch")
    sim.expire_history(address)
    result = await setup.engine.sync(setup.account_id, trigger="notification")
    assert (result.mode, result.fell_back_to_full) == ("full", True)
    await task
    await assert_mirror(setup.pool, setup.account_id, sim.snapshot(address))
    assert await setup.pool.fetchval(
        "SELECT count(*) FROM emails WHERE gmail_message_id = $1", new_id) == 1
    job = await imports.get(setup.pool, setup.account_id)
    assert job is not None
    assert (job.kind, job.status) == ("repair", "succeeded")
