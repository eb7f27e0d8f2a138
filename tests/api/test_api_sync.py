"""``POST /api/services/{id}/sync`` end to end: the simulator's mailboxes, a real database.

Each status of the issue, with the state it leaves behind. To catch a sync while it
runs, a test holds PostgreSQL's lock on ``emails`` (the sync blocks at its first
write) instead of sleeping.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import Any

import asyncpg
import pytest
from gmailsim.errors import GmailError
from prometheus_client.parser import text_string_to_metric_families

from delightbridge.sync.gmail.retry import RetryPolicy
from delightbridge.sync.lock import IMPORT_CLASS, LOCK_CLASS, service_lock
from tests.api.conftest import FAST_RETRY, Api
from tests.dbutil import service_state

SERVICE, ADDRESS = "service-123", "support@noji.example"


async def _db_messages(api: Api, service_id: str = SERVICE) -> set[str]:
    rows = await api.pool.fetch(
        "SELECT e.gmail_message_id FROM emails e JOIN email_threads t ON t.id = e.thread_id "
        "WHERE t.account_id = $1", service_id)
    return {r["gmail_message_id"] for r in rows}


def _mirrored(api: Api, address: str = ADDRESS) -> set[str]:
    snapshot = api.sim.sim.snapshot(address)
    return {m.id for m in snapshot.messages
            if not {"SPAM", "TRASH", "DRAFT"} & set(m.label_ids)}


@contextlib.asynccontextmanager
async def emails_locked(api: Api) -> AsyncIterator[None]:
    """Hold ``emails`` exclusively: a sync stops at its first write until the block ends."""
    conn = await asyncpg.connect(api.settings.database_url)
    try:
        async with conn.transaction():
            await conn.execute("LOCK TABLE emails IN ACCESS EXCLUSIVE MODE")
            yield
    finally:
        await conn.close()


# --- 200 --------------------------------------------------------------------------------


async def test_full_sync_mirrors_the_mailbox(api: Api) -> None:
    await api.connected_service(SERVICE, ADDRESS, messages=14, threads=5)
    reply = await api.call("POST", f"/api/services/{SERVICE}/sync?mode=full")
    assert reply.status == 200, reply.body
    body = reply.json
    expected = _mirrored(api)
    assert body["ok"] is True
    assert body["mode"] == "full"
    assert body["fellBackToFull"] is False
    assert body["messagesProcessed"] == len(expected) > 0
    assert 0 < body["threadsProcessed"] <= 5
    assert body["historyId"] == str(api.sim.sim.history_id(ADDRESS))
    assert await _db_messages(api) == expected
    row = await service_state(api.pool, SERVICE)
    assert row["last_history_id"] == body["historyId"]
    assert row["sync_state"] == "connected"
    assert row["last_full_sync_at"] is not None
    run = await api.call("GET", f"/api/services/{SERVICE}/sync/runs/{body['runId']}")
    assert run.json["run"]["state"] == "succeeded"
    assert run.json["run"]["trigger"] == "api"
    assert run.json["run"]["messagesProcessed"] == body["messagesProcessed"]


async def test_incremental_sync_applies_what_changed(api: Api) -> None:
    await api.connected_service(SERVICE, ADDRESS, messages=6, threads=3)
    first = await api.call("POST", f"/api/services/{SERVICE}/sync?mode=full")
    assert first.status == 200
    before = await _db_messages(api)
    thread = next(iter(api.sim.sim.snapshot(ADDRESS).threads))
    reply_id = api.sim.sim.deliver(ADDRESS, thread_id=thread, text="Any news?")
    new_id = api.sim.sim.deliver(ADDRESS, subject="A new question", text="Hello")
    reply = await api.call("POST", f"/api/services/{SERVICE}/sync")  # mode defaults
    assert reply.status == 200, reply.body
    assert reply.json["mode"] == "incremental"
    assert reply.json["fellBackToFull"] is False
    assert reply.json["messagesProcessed"] == 2
    assert reply.json["threadsProcessed"] == 2
    assert reply.json["historyId"] == str(api.sim.sim.history_id(ADDRESS))
    assert await _db_messages(api) == before | {reply_id, new_id}
    # Nothing changed since: an incremental sync that processes nothing.
    again = await api.call("POST", f"/api/services/{SERVICE}/sync?mode=incremental")
    assert (again.status, again.json["messagesProcessed"], again.json["threadsProcessed"]) == (
        200, 0, 0)


async def test_incremental_without_a_cursor_falls_back_to_full(api: Api) -> None:
    await api.connected_service(SERVICE, ADDRESS, messages=3, threads=2)
    reply = await api.call("POST", f"/api/services/{SERVICE}/sync?mode=incremental")
    assert reply.status == 200
    assert (reply.json["mode"], reply.json["fellBackToFull"]) == ("full", True)
    assert await _db_messages(api) == _mirrored(api)


# --- 202 and the runs -------------------------------------------------------------------


async def test_wait_false_answers_202_and_the_run_can_be_followed(api: Api) -> None:
    await api.connected_service(SERVICE, ADDRESS, messages=5, threads=2)
    async with emails_locked(api):
        reply = await api.call("POST", f"/api/services/{SERVICE}/sync?mode=full&wait=false")
        assert reply.status == 202, reply.body
        assert reply.json["ok"] is True
        assert reply.json["mode"] == "full"
        run_id = reply.json["runId"]
        running = await api.call("GET", f"/api/services/{SERVICE}/sync/runs/{run_id}")
        assert running.status == 200
        assert running.json["run"]["state"] == "running"
        assert running.json["run"]["finishedAt"] is None
        assert running.json["run"]["progress"] is None or "phase" in running.json["run"][
            "progress"]
        # Its import is busy meanwhile: another full sync is 409, naming the run to follow.
        # (Incremental syncs go on beside an import: tests/syncengine/test_imports.py.)
        busy = await api.call("POST", f"/api/services/{SERVICE}/sync?mode=full")
        assert busy.status == 409
        assert busy.json["error"] == "sync_in_progress"
        assert busy.json["runId"] == run_id
    await api.drain()
    done = await api.call("GET", f"/api/services/{SERVICE}/sync/runs/{run_id}")
    run = done.json["run"]
    assert run["state"] == "succeeded"
    assert run["messagesProcessed"] == len(_mirrored(api))
    assert run["historyId"] == str(api.sim.sim.history_id(ADDRESS))
    assert run["durationSeconds"] >= 0
    listed = await api.call("GET", f"/api/services/{SERVICE}/sync/runs")
    assert [r["runId"] for r in listed.json["runs"]] == [run_id]
    assert await _db_messages(api) == _mirrored(api)


async def test_runs_are_listed_newest_first_and_limited(api: Api) -> None:
    await api.connected_service(SERVICE, ADDRESS, messages=2, threads=1)
    ids = []
    for mode in ("full", "incremental", "incremental"):
        reply = await api.call("POST", f"/api/services/{SERVICE}/sync?mode={mode}")
        ids.append(reply.json["runId"])
    listed = await api.call("GET", f"/api/services/{SERVICE}/sync/runs")
    assert [r["runId"] for r in listed.json["runs"]] == ids[::-1]
    limited = await api.call("GET", f"/api/services/{SERVICE}/sync/runs?limit=2")
    assert [r["runId"] for r in limited.json["runs"]] == ids[:0:-1]
    # A run of another service is not found under this one.
    await api.add_service("svc-other", "other@example.com", refresh_token=None)
    other = await api.call("GET", f"/api/services/svc-other/sync/runs/{ids[0]}")
    assert (other.status, other.json["error"]) == (404, "run_not_found")


# --- 409 --------------------------------------------------------------------------------


async def test_never_connected_service_is_409_with_the_connect_url(api: Api) -> None:
    await api.add_service(SERVICE, ADDRESS, refresh_token=None)
    for query in ("", "?mode=full", "?wait=false"):
        reply = await api.call("POST", f"/api/services/{SERVICE}/sync{query}")
        assert reply.status == 409
        assert reply.json["error"] == "service_not_connected"
        url = api.url(f"/api/services/{SERVICE}/connect")
        assert reply.json["connectUrl"] == url
        assert url in reply.json["message"]
    assert await api.pool.fetchval("SELECT count(*) FROM delightbridge_sync.runs") == 0


async def test_revoked_refresh_token_is_409_and_disconnects(api: Api) -> None:
    await api.connected_service(SERVICE, ADDRESS, messages=3, threads=1)
    assert (await api.call("POST", f"/api/services/{SERVICE}/sync?mode=full")).status == 200
    api.sim.sim.revoke_refresh_token(ADDRESS)
    api.sim.sim.expire_access_tokens(ADDRESS)
    reply = await api.call("POST", f"/api/services/{SERVICE}/sync")
    assert reply.status == 409, reply.body
    assert reply.json["error"] == "service_not_connected"
    assert reply.json["connectUrl"] == api.url(f"/api/services/{SERVICE}/connect")
    assert "invalid_grant" in reply.json["message"]
    row = await service_state(api.pool, SERVICE)
    assert row["refresh_token"] is None
    assert row["access_token"] is None
    assert row["sync_state"] == "disconnected"
    assert "invalid_grant" in row["disconnected_reason"]
    # The mirror is kept, and the next attempt is refused at once.
    assert await _db_messages(api) == _mirrored(api)
    again = await api.call("POST", f"/api/services/{SERVICE}/sync")
    assert (again.status, again.json["error"]) == (409, "service_not_connected")


async def test_sync_in_progress_elsewhere_is_409(api: Api) -> None:
    """Another process holds the service's sync lock, or its import lock (here: the
    test's own connection): incremental syncs, or full ones, are refused meanwhile."""
    await api.connected_service(SERVICE, ADDRESS, messages=1, threads=1)
    assert (await api.call("POST", f"/api/services/{SERVICE}/sync")).status == 200
    for lock_class, queries in ((LOCK_CLASS, ("", "?wait=false")),
                                (IMPORT_CLASS, ("?mode=full", "?mode=full&wait=false"))):
        async with service_lock(api.pool, SERVICE, lock_class=lock_class):
            for query in queries:
                reply = await api.call("POST", f"/api/services/{SERVICE}/sync{query}")
                assert reply.status == 409, (lock_class, query, reply.body)
                assert reply.json["error"] == "sync_in_progress"
                assert SERVICE in reply.json["message"]
    after = await api.call("POST", f"/api/services/{SERVICE}/sync")
    assert after.status == 200


# --- 429 and 503 after retries ------------------------------------------------------------


def _storm(api: Api, status: int, *, retry_after: str | None = None) -> None:
    headers = {"Retry-After": retry_after} if retry_after else {}
    if status == 429:
        error = GmailError(429, "Too many concurrent requests for user.",
                           reason="rateLimitExceeded", headers=headers)
    else:
        error = GmailError(503, "The service is currently unavailable.",
                           reason="backendError", status="UNAVAILABLE", headers=headers)
    api.sim.sim.faults.fail_next("users.getProfile", times=50, error=error)


@pytest.mark.parametrize(("status", "code"), [(429, "gmail_quota_exceeded"),
                                              (503, "gmail_unavailable")])
async def test_gmail_storms_after_retries(api: Api, status: int, code: str) -> None:
    await api.connected_service(SERVICE, ADDRESS, messages=2, threads=1)
    _storm(api, status)
    reply = await api.call("POST", f"/api/services/{SERVICE}/sync?mode=full")
    assert reply.status == status, reply.body
    assert reply.json["error"] == code
    assert int(reply.headers["Retry-After"]) >= 1
    # Retried up to the policy's attempts before giving up.
    assert api.sim.sim.counters.calls("users.getProfile") == FAST_RETRY.max_attempts
    run = (await api.call("GET", f"/api/services/{SERVICE}/sync/runs")).json["runs"][0]
    assert run["state"] == "failed"
    assert run["error"]["code"] == code
    # Once Gmail recovers, the same request succeeds.
    api.sim.sim.faults.reset()
    assert (await api.call("POST", f"/api/services/{SERVICE}/sync")).status == 200


@pytest.mark.parametrize("engine_overrides", [{"retry": RetryPolicy(max_attempts=1)}])
@pytest.mark.parametrize("status", [429, 503])
async def test_retry_after_from_gmail_is_passed_on(api: Api, status: int,
                                                   engine_overrides: dict[str, Any]) -> None:
    await api.connected_service(SERVICE, ADDRESS, messages=1, threads=1)
    _storm(api, status, retry_after="17")
    reply = await api.call("POST", f"/api/services/{SERVICE}/sync?mode=full")
    assert reply.status == status
    assert reply.headers["Retry-After"] == "17"


async def test_database_lost_under_a_sync_is_503_not_500(api: Api) -> None:
    """PostgreSQL cutting the sync's connection (a restart, a failover) is the documented
    503 ``database_unavailable``, not a 500; the next request works again. Found by the
    chaos soak (tests/chaos), where a restart landed inside an API full sync."""
    await api.connected_service(SERVICE, ADDRESS, messages=3, threads=2)
    async with emails_locked(api):
        sync = asyncio.create_task(
            api.call("POST", f"/api/services/{SERVICE}/sync?mode=full"))
        conn = await asyncpg.connect(api.settings.database_url)
        try:
            async with asyncio.timeout(15):
                while not (waiting := await conn.fetch(  # noqa: ASYNC110 - a lock wait
                        "SELECT pid FROM pg_stat_activity WHERE datname = current_database() "
                        "AND wait_event_type = 'Lock'")):
                    await asyncio.sleep(0.05)  # inside PostgreSQL: no event to wait on
            # What a restart does to each connection it finds: FATAL 57P01.
            for row in waiting:
                await conn.execute("SELECT pg_terminate_backend($1)", row["pid"])
        finally:
            await conn.close()
        reply = await sync
    assert (reply.status, reply.json["error"]) == (503, "database_unavailable"), reply.body
    assert reply.headers["Retry-After"] == "5"
    assert (await api.call("POST", f"/api/services/{SERVICE}/sync?mode=full")).status == 200


async def test_metrics_count_syncs_and_gmail_calls(api: Api) -> None:
    await api.connected_service(SERVICE, ADDRESS, messages=4, threads=2)
    assert (await api.call("POST", f"/api/services/{SERVICE}/sync?mode=full")).status == 200
    _storm(api, 429)
    assert (await api.call("POST", f"/api/services/{SERVICE}/sync?mode=full")).status == 429
    await api.call("POST", "/api/services/nope/sync", cookie=None)
    reply = await api.ops_get("/metrics")
    assert reply.status == 200
    samples = {(s.name, tuple(sorted(s.labels.items()))): s.value
               for family in text_string_to_metric_families(reply.body.decode())
               for s in family.samples}

    def value(name: str, **labels: str) -> float:
        return samples.get((name, tuple(sorted(labels.items()))), 0.0)

    assert value("delightbridge_sync_runs_total", mode="full", trigger="api",
                 outcome="succeeded") == 1
    assert value("delightbridge_sync_runs_total", mode="full", trigger="api",
                 outcome="gmail_quota_exceeded") == 1
    assert value("delightbridge_sync_seconds_count", mode="full") == 1
    assert value("delightbridge_gmail_calls_total", method="users.getProfile") == (
        1 + FAST_RETRY.max_attempts)
    assert value("delightbridge_gmail_calls_total", method="messages.list") >= 1
    assert value("delightbridge_gmail_errors_total", reason="rateLimitExceeded",
                 status="429") == (
        FAST_RETRY.max_attempts)
    route = "/api/services/{service_id}/sync"
    assert value("delightbridge_http_requests_total", route=route, method="POST",
                 status="200") == 1
    assert value("delightbridge_http_requests_total", route=route, method="POST",
                 status="401") == 1
