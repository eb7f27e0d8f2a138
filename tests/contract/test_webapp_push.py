"""The web app's own deploy tool against databases this service shares with it.

The web app deploys schema public with ``drizzle-kit push`` (tests/contract/drizzle.py
installs the tool from npm at the web app's versions). Whichever is installed first, its
push must find nothing to change, a forced push must not disturb the running service, and
the web app's plain DELETE of a service must work and still get the watch stopped.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

import asyncpg
import pytest

from delightbridge.db.migrate import migrate
from delightbridge.db.pool import create_pool
from delightbridge.sync import watch
from delightbridge.sync.engine import EngineConfig, SyncEngine
from delightbridge.sync.gmail.quota import QuotaProfile
from delightbridge.sync.gmail.retry import FAST_POLICY
from tests.contract.drizzle import DrizzleKit, install
from tests.db import legacy
from tests.db.catalog import (
    WEB_APP_TABLES,
    load_reference,
    public_catalog,
    table_rows,
)
from tests.dbutil import create_database, drop_database
from tests.plugins.gmail import GmailSim
from tests.syncengine.conftest import add_service, engine_settings
from tests.syncengine.mirror import assert_mirror

SERVICE_TABLES = ("services", "messages", "runs", "watch_stops", "events", "imports",
                  "tombstones", "quota_leases", "quota_days", "schema_migrations")
TOPIC = watch.WatchSettings("projects/delightbridge-local/topics/gmail-push")


async def _migrate(url: str) -> None:
    conn = await asyncpg.connect(url)
    try:
        await migrate(conn)
    finally:
        await conn.close()


async def _catalog(url: str) -> dict[str, Any]:
    conn = await asyncpg.connect(url)
    try:
        return await public_catalog(conn)
    finally:
        await conn.close()


async def _everything(url: str) -> dict[str, Any]:
    """Every row of the web app's tables and of the service's, and public's layout."""
    conn = await asyncpg.connect(url)
    try:
        rows = {t: await table_rows(conn, t) for t in WEB_APP_TABLES}
        for table in SERVICE_TABLES:
            rows[f"delightbridge_sync.{table}"] = [dict(r) for r in await conn.fetch(
                f"SELECT * FROM delightbridge_sync.{table} ORDER BY 1")]
        return {"rows": rows, "public": await public_catalog(conn)}
    finally:
        await conn.close()


async def test_the_reference_is_what_the_web_apps_tool_deploys(
    drizzle_kit: DrizzleKit, fresh_database: str, pg_admin_url: str
) -> None:
    """The project's Drizzle schema and the reference file describe the same tables."""
    created = await drizzle_kit.push(fresh_database)
    assert created.returncode == 0, created.output
    assert not created.no_changes  # it created the tables
    name = f"dbsync_t_{uuid.uuid4().hex[:12]}"
    reference_url = await create_database(pg_admin_url, name)
    try:
        conn = await asyncpg.connect(reference_url)
        try:
            await load_reference(conn)
        finally:
            await conn.close()
        on_reference = await drizzle_kit.push(reference_url)
        assert on_reference.no_changes, on_reference.output
        assert await _catalog(fresh_database) == await _catalog(reference_url)
    finally:
        await drop_database(pg_admin_url, name)


async def test_web_app_first_then_the_service_then_push_changes_nothing(
    drizzle_kit: DrizzleKit, fresh_database: str
) -> None:
    first = await drizzle_kit.push(fresh_database)  # the web app deploys its tables
    assert first.returncode == 0, first.output
    conn = await asyncpg.connect(fresh_database)
    try:
        await load_reference(conn, tables=False)  # and its agents work
    finally:
        await conn.close()
    await _migrate(fresh_database)
    before = await _everything(fresh_database)

    push = await drizzle_kit.push(fresh_database)
    assert push.no_changes, push.output
    forced = await drizzle_kit.push(fresh_database, force=True)
    assert forced.no_changes, forced.output
    assert await _everything(fresh_database) == before


async def test_service_first_then_push_changes_nothing(
    drizzle_kit: DrizzleKit, fresh_database: str
) -> None:
    await _migrate(fresh_database)
    push = await drizzle_kit.push(fresh_database)
    assert push.no_changes, push.output


async def test_the_first_layout_was_what_the_tool_would_drop_and_the_upgrade_mends_it(
    drizzle_kit: DrizzleKit, fresh_database: str
) -> None:
    """The check can fail: on the service's first layout (state in public) the tool plans
    to drop it, and without a terminal applies nothing. After the upgrade, no changes."""
    conn = await asyncpg.connect(fresh_database)
    try:
        await load_reference(conn)
        await legacy.install_layout_v0(conn)
        await legacy.fill_layout_v0(conn)
    finally:
        await conn.close()
    refused = await drizzle_kit.push(fresh_database)
    assert not refused.no_changes
    assert "sync_runs" in refused.output, refused.output
    conn = await asyncpg.connect(fresh_database)
    try:
        assert await conn.fetchval("SELECT to_regclass('public.sync_runs')") is not None
    finally:
        await conn.close()

    await _migrate(fresh_database)
    push = await drizzle_kit.push(fresh_database)
    assert push.no_changes, push.output


# ----------------------------------------------------------- with the service running


@pytest.fixture
async def running(gmail_sim: GmailSim, db_url: str) -> AsyncIterator[tuple[SyncEngine, Any]]:
    """A migrated database with a connected, watched, fully synced service."""
    sim = gmail_sim.sim
    sim.quota.units_per_second = None
    mailbox = sim.create_mailbox("support@noji.example", name="Noji Support")
    sim.seed(mailbox.address, messages=40, threads=12, seed=5)
    pool = await create_pool(db_url, max_size=4)
    assert pool is not None
    try:
        await add_service(pool, "svc-noji", mailbox.address, mailbox.refresh_token)
        config = EngineConfig.from_settings(engine_settings(gmail_sim), retry=FAST_POLICY,
                                            quota=QuotaProfile.unlimited())
        async with SyncEngine.open(pool, config) as engine:
            now = datetime.fromtimestamp(sim.clock.now(), UTC)
            assert (await watch.renew_all(engine, TOPIC, now=now)).renewed == ["svc-noji"]
            await engine.sync("svc-noji", mode="full", trigger="connect")
            yield engine, mailbox
    finally:
        await pool.close()


async def test_a_forced_push_between_two_syncs_leaves_the_service_working(
    drizzle_kit: DrizzleKit, gmail_sim: GmailSim, db_url: str,
    running: tuple[SyncEngine, Any],
) -> None:
    engine, mailbox = running
    before = await _everything(db_url)

    forced = await drizzle_kit.push(db_url, force=True)
    assert forced.no_changes, forced.output
    assert await _everything(db_url) == before  # nothing the service needs was touched

    sim = gmail_sim.sim
    sim.deliver(mailbox.address, subject="After the web app's deploy")
    first, second = sim.snapshot(mailbox.address).messages[:2]
    sim.modify_labels(mailbox.address, first.id, add=["STARRED"], remove=["UNREAD"])
    sim.trash(mailbox.address, second.id)
    result = await engine.sync("svc-noji", trigger="notification")  # same engine, no restart
    assert (result.mode, result.fell_back_to_full) == ("incremental", False)
    await assert_mirror(engine.pool, "svc-noji", sim.snapshot(mailbox.address))


async def test_the_web_app_deleting_a_service_works_and_its_watch_is_stopped(
    drizzle_kit: DrizzleKit, gmail_sim: GmailSim, db_url: str,
    running: tuple[SyncEngine, Any],
) -> None:
    engine, mailbox = running
    sim = gmail_sim.sim
    assert sim.active_watch(mailbox.address) is not None
    forced = await drizzle_kit.push(db_url, force=True)  # a deploy in between changes nothing
    assert forced.no_changes, forced.output

    # The web app's DELETE route, as drizzle-orm sends it.
    deleted = await engine.pool.execute(
        'delete from "gmail_accounts" where "gmail_accounts"."id" = $1', "svc-noji")
    assert deleted == "DELETE 1"
    assert await engine.pool.fetchval("SELECT count(*) FROM emails") == 0

    outcomes = await watch.drain_stops(engine, now=datetime.fromtimestamp(sim.clock.now(), UTC))
    assert [(o.service_id, o.stopped, o.revoked, o.pending) for o in outcomes] == [
        ("svc-noji", True, True, False)]
    assert sim.active_watch(mailbox.address) is None
    assert mailbox.refresh_token not in sim.tokens.refresh_tokens(mailbox.address)



def test_without_node_the_contract_tests_fail_with_one_clear_line(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Any
) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))  # no node, no npm
    with pytest.raises(pytest.fail.Exception, match=r"need node and npm on PATH: install Node\.js"):
        install(tmp_path / "cache")
    assert not (tmp_path / "cache").exists()  # nothing half-installed
