"""Pull end to end: the simulator publishes to the Pub/Sub emulator, the worker pulls,
syncs into a real database and acks. Nothing of the consumer or the engine is mocked."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import logging
import time
from collections.abc import AsyncIterator

import asyncpg
import pytest

from delightbridge.sync.lock import LOCK_CLASS
from tests.consumer.conftest import MAX_DELIVERY_ATTEMPTS, Env
from tests.dbutil import service_state

SERVICE, ADDRESS = "service-noji", "support@noji.example"


async def test_new_mail_is_committed_within_two_seconds(env: Env) -> None:
    await env.connect(SERVICE, ADDRESS)
    async with env.run() as running:
        sent = time.monotonic()
        new_id = env.sim.deliver(ADDRESS, subject="My order never arrived", text="Help!")
        await running.recorder.wait_for(lambda r: any(o.status == "synced"
                                                      for _, o in r.outcomes))
        elapsed = time.monotonic() - sent
        assert new_id in await env.mirrored(SERVICE)
        assert elapsed < 2.0, f"committed after {elapsed:.2f}s"
    await env.assert_mirrors(SERVICE, ADDRESS)
    assert [r["trigger"] for r in await env.sync_runs(SERVICE)] == ["connect", "notification"]


async def test_a_burst_on_one_mailbox_folds_into_few_syncs(env: Env) -> None:
    """50 changes arrive over ~1 s while syncs run (Gmail answers in ~20 ms): each
    notification arriving during a sync folds into the one follow-up."""
    await env.connect(SERVICE, ADDRESS)
    env.sim.faults.update(latency_ms=20)
    async with env.run(concurrency=4) as running:
        ids = []
        for i in range(50):
            ids.append(env.sim.deliver(ADDRESS, subject=f"Question {i}", text="?"))
            await asyncio.sleep(0.02)  # pacing the mailbox's changes, not synchronising
        await running.recorder.wait_for(lambda r: len(r.outcomes) >= 50, within=30)
        outcomes = [o for _, o in running.recorder.outcomes]
        assert len(outcomes) == 50
        assert all(o.ack for o in outcomes), outcomes
        assert {o.status for o in outcomes} <= {"synced", "up_to_date"}
        assert running.sample("delightbridge_consumer_messages_acked_total", source="pull") == 50
        synced = sum(1 for o in outcomes if o.status == "synced")
    runs = [r for r in await env.sync_runs(SERVICE) if r["trigger"] == "notification"]
    print(f"{len(runs)} syncs for 50 notifications, {synced} acked after a sync")
    assert 1 <= len(runs) <= 15, f"{len(runs)} syncs for 50 notifications"
    assert synced > len(runs)  # syncs were shared by the notifications that folded
    assert all(r["status"] == "succeeded" for r in runs)
    await env.assert_mirrors(SERVICE, ADDRESS)
    assert set(ids) <= set(await env.mirrored(SERVICE))


async def test_duplicates_and_reordered_notifications_are_harmless(env: Env) -> None:
    """Notifications published by hand, out of order and repeated: every one is acked,
    the ones already covered by the stored cursor without a sync."""
    await env.connect(SERVICE, ADDRESS, watch=False)
    start = env.sim.history_id(ADDRESS)
    first = env.sim.deliver(ADDRESS, subject="First")
    h1 = env.sim.history_id(ADDRESS)
    second = env.sim.deliver(ADDRESS, subject="Second")
    h2 = env.sim.history_id(ADDRESS)
    async with env.run() as running:
        newest = await env.pubsub.send({"emailAddress": ADDRESS, "historyId": h2})
        await running.recorder.wait_for_message(newest, status="synced")
        late = [await env.pubsub.send({"emailAddress": ADDRESS.upper(), "historyId": h})
                for h in (h1, h2, str(h2), start)]
        for message_id in late:
            outcome = await running.recorder.wait_for_message(message_id)
            assert (outcome.ack, outcome.status) == (True, "up_to_date")
        assert running.sample("delightbridge_consumer_messages_ignored_total",
                              reason="up_to_date") == 4
    assert {first, second} <= set(await env.mirrored(SERVICE))
    await env.assert_mirrors(SERVICE, ADDRESS)
    assert [r["trigger"] for r in await env.sync_runs(SERVICE)] == ["connect", "notification"]


async def test_simulated_gmail_duplicating_and_reordering_converges(env: Env) -> None:
    await env.connect(SERVICE, ADDRESS)
    env.sim.faults.update(notification_duplicate_rate=1.0, notification_reorder_rate=0.5,
                          seed=5)
    async with env.run() as running:
        for i in range(6):
            env.sim.deliver(ADDRESS, subject=f"Again {i}")
        expected = env.sim.history_id(ADDRESS)
        await env.server.notifier.wait_for(
            lambda ds: sum(1 for d in ds if d.sink == "pubsub" and d.ok) >= 12)
        await running.recorder.wait_for(lambda r: len(r.outcomes) >= 12)
        assert all(o.ack for _, o in running.recorder.outcomes)
        assert env.sim.history_id(ADDRESS) == expected
    await env.assert_mirrors(SERVICE, ADDRESS)


BAD_INPUT = [
    (b"this is not base64 and not JSON!", "not_base64"),
    (base64.b64encode(b"neither is this JSON"), "not_json"),
    (b'{"emailAddress": "support@noji.example", "historyId": ', "not_json"),
    (b"[1, 2]", "not_object"),
    (b'{"historyId": 99}', "missing_field"),
    (b'{"emailAddress": "support@noji.example"}', "missing_field"),
    (b'{"emailAddress": "support@noji.example", "historyId": "soon"}', "bad_history_id"),
    (b'{"emailAddress": "support@noji.example", "historyId": -1}', "bad_history_id"),
    (b'{"emailAddress": "nobody", "historyId": 99}', "bad_email"),
    (b'{"emailAddress": "stranger@elsewhere.example", "historyId": 99}', "unknown_address"),
    (b'{"emailAddress": "gone@noji.example", "historyId": 99999999}', "disconnected"),
]


async def test_every_class_of_bad_input_is_acked_logged_and_counted(
        env: Env, caplog: pytest.LogCaptureFixture) -> None:
    await env.connect(SERVICE, ADDRESS, watch=False)
    await env.pool.execute(
        "INSERT INTO gmail_accounts (id, name, email) "
        "VALUES ('service-gone', 'Gone', 'gone@noji.example'); "
        "INSERT INTO delightbridge_sync.services (account_id, disconnected_reason) "
        "VALUES ('service-gone', 'revoked')")
    caplog.set_level(logging.INFO, logger="consumer")
    async with env.run() as running:
        sent = {await env.pubsub.send(data): expected for data, expected in BAD_INPUT}
        # A good notification after them still syncs: nothing is stuck or crashed.
        env.sim.deliver(ADDRESS, subject="Still working?")
        good = await env.pubsub.send({"emailAddress": ADDRESS,
                                      "historyId": env.sim.history_id(ADDRESS)})
        await running.recorder.wait_for_message(good, status="synced")
        for message_id, expected in sent.items():
            outcome = await running.recorder.wait_for_message(message_id)
            assert (outcome.ack, outcome.status) == (True, expected), message_id
            lines = [r for r in caplog.records if getattr(r, "message_id", None) == message_id]
            assert len(lines) == 1, [r.getMessage() for r in lines]  # one structured line
            assert lines[0].__dict__["action"] == "consumer.ignored"
            assert lines[0].__dict__["reason"] == expected
        for reason in {e for _, e in BAD_INPUT}:
            assert running.sample("delightbridge_consumer_messages_ignored_total",
                                  reason=reason) == sum(1 for _, e in BAD_INPUT if e == reason)
        assert running.task.done() is False
    # Acked, so never redelivered (a nack comes back at once on the same stream): each
    # message was handled exactly once, and none went to the dead-letter topic.
    assert all(len(running.recorder.of(m)) == 1 for m in sent)
    assert await env.pubsub.dead_lettered() == []
    await env.assert_mirrors(SERVICE, ADDRESS)


async def test_a_service_whose_grant_was_revoked_is_acked_as_disconnected(env: Env) -> None:
    await env.connect(SERVICE, ADDRESS)
    env.sim.revoke_refresh_token(ADDRESS)
    env.sim.expire_access_tokens(ADDRESS)
    async with env.run() as running:
        env.sim.deliver(ADDRESS, subject="Nobody will read this here")
        await running.recorder.wait_for(lambda r: len(r.outcomes) >= 1)
        (_, outcome), = running.recorder.outcomes
        assert (outcome.ack, outcome.status) == (True, "disconnected")
    row = await service_state(env.pool, SERVICE)
    assert row["sync_state"] == "disconnected"


async def test_a_failed_sync_is_nacked_redelivered_then_committed(env: Env) -> None:
    await env.connect(SERVICE, ADDRESS)
    # More failures than the engine's own retries (FAST_RETRY: 3 attempts): the first
    # sync fails with GmailUnavailable, the redelivery finds Gmail healthy again.
    env.sim.faults.fail_next("users.history.list", code=503, times=3)
    async with env.run() as running:
        new_id = env.sim.deliver(ADDRESS, subject="Please retry")
        await running.recorder.wait_for(
            lambda r: any(o.status == "synced" for _, o in r.outcomes), within=30)
        (first, failed), *_ = running.recorder.outcomes
        assert (failed.ack, failed.status) == (False, "gmail_unavailable")
        deliveries = running.recorder.of(first.message_id)
        assert [o.status for _, o in deliveries] == ["gmail_unavailable", "synced"]
        assert [d.delivery_attempt for d, _ in deliveries] == [1, 2]
        assert running.sample("delightbridge_consumer_messages_nacked_total", source="pull",
                              reason="gmail_unavailable") == 1
    assert new_id in await env.mirrored(SERVICE)
    await env.assert_mirrors(SERVICE, ADDRESS)
    runs = await env.sync_runs(SERVICE)
    assert [(r["status"], r["error_code"]) for r in runs[1:]] == [
        ("failed", "gmail_unavailable"), ("succeeded", None)]


@pytest.mark.slow
async def test_a_sync_that_keeps_failing_ends_in_the_dead_letter_topic(env: Env) -> None:
    await env.connect(SERVICE, ADDRESS)
    env.sim.faults.fail_next("users.history.list", code=500, times=1000)
    async with env.run() as running:
        env.sim.deliver(ADDRESS, subject="Never synced here")
        await running.recorder.wait_for(
            lambda r: len(r.outcomes) >= MAX_DELIVERY_ATTEMPTS, within=60)
        attempts = [d.delivery_attempt for d, _ in running.recorder.outcomes]
        assert attempts == list(range(1, MAX_DELIVERY_ATTEMPTS + 1))
        assert not any(o.ack for _, o in running.recorder.outcomes)
    dead = await env.pubsub.dead_lettered(wait=15)
    assert [json.loads(m.data)["emailAddress"] for m in dead] == [ADDRESS]


@contextlib.asynccontextmanager
async def lock_held_elsewhere(env: Env, service_id: str) -> AsyncIterator[asyncpg.Connection]:
    """Another process's sync of ``service_id``: the engine's lock, held on our connection."""
    conn = await asyncpg.connect(env.db_url)
    try:
        await conn.execute("SELECT pg_advisory_lock($1::int, hashtext($2))", LOCK_CLASS,
                           service_id)
        yield conn
    finally:
        await conn.close()


async def lock_waiters(env: Env) -> int:
    return int(await env.pool.fetchval(
        "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND NOT granted"))


async def test_a_lock_held_by_another_process_is_waited_for_not_failed(env: Env) -> None:
    await env.connect(SERVICE, ADDRESS)
    async with env.run(lock_wait=30) as running, lock_held_elsewhere(env, SERVICE) as other:
        new_id = env.sim.deliver(ADDRESS, subject="Wait your turn")
        async with asyncio.timeout(10):  # the consumer's sync queues behind the lock
            while await lock_waiters(env) == 0:  # noqa: ASYNC110 - a lock wait inside
                await asyncio.sleep(0.02)  # PostgreSQL has no event to subscribe to
        assert running.recorder.outcomes == []  # neither acked nor nacked meanwhile
        await other.execute("SELECT pg_advisory_unlock($1::int, hashtext($2))", LOCK_CLASS,
                            SERVICE)
        await running.recorder.wait_for(lambda r: len(r.outcomes) >= 1)
        assert [o.status for _, o in running.recorder.outcomes] == ["synced"]
    assert new_id in await env.mirrored(SERVICE)


async def test_a_lock_held_beyond_the_bound_is_nacked_then_redelivered(env: Env) -> None:
    await env.connect(SERVICE, ADDRESS)
    async with env.run(lock_wait=0.2) as running:
        async with lock_held_elsewhere(env, SERVICE):
            env.sim.deliver(ADDRESS, subject="Busy elsewhere")
            await running.recorder.wait_for(lambda r: len(r.outcomes) >= 1)
            assert [o.status for _, o in running.recorder.outcomes] == ["sync_in_progress"]
        await running.recorder.wait_for(
            lambda r: any(o.status == "synced" for _, o in r.outcomes), within=30)
    await env.assert_mirrors(SERVICE, ADDRESS)
