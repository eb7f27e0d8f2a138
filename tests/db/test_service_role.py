"""deploy/service-role.sql: a role that can run the service and touch nothing else.

The web app owns its database (here the server's superuser plays the web app's role); the
recipe grants the service's role what it needs. Under that role the service migrates,
syncs, renews and stops watches; it cannot alter the web app's tables or touch the
agents' work.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import pytest

from delightbridge.db.migrate import migrate
from delightbridge.db.pool import create_pool
from delightbridge.sync import watch
from delightbridge.sync.engine import EngineConfig, SyncEngine
from delightbridge.sync.gmail.quota import QuotaProfile
from delightbridge.sync.gmail.retry import FAST_POLICY
from tests.db.catalog import load_reference
from tests.dbutil import ident
from tests.plugins.gmail import GmailSim
from tests.syncengine.conftest import engine_settings
from tests.syncengine.mirror import assert_mirror

RECIPE = Path(__file__).resolve().parents[2] / "deploy" / "service-role.sql"
TOPIC = watch.WatchSettings("projects/delightbridge-local/topics/gmail-push")


def _as_role(url: str, role: str) -> str:
    parts = urlsplit(url)
    return urlunsplit(parts._replace(netloc=f"{role}@{parts.hostname or ''}"
                                     + (f":{parts.port}" if parts.port else "")))


@pytest.fixture
async def service_role(fresh_database: str) -> AsyncIterator[str]:
    """The web app's database (reference layout and rows) and the recipe applied: the URL
    of the service's role."""
    role = f"dbsync_svc_{uuid.uuid4().hex[:8]}"
    owner = await asyncpg.connect(fresh_database)
    try:
        await load_reference(owner)
        await owner.execute(RECIPE.read_text(encoding="utf-8").replace(
            "delightbridge_sync_svc", role))
        yield _as_role(fresh_database, role)
    finally:
        # What the role owns (the service's schema, the trigger) and its grants go first.
        await owner.execute(f"DROP OWNED BY {ident(role)} CASCADE; DROP ROLE {ident(role)}")
        await owner.close()


async def test_the_service_runs_under_its_role(
    service_role: str, fresh_database: str, gmail_sim: GmailSim
) -> None:
    conn = await asyncpg.connect(service_role)
    try:
        assert await migrate(conn) == ["0001", "0002", "0003", "0004", "0005", "0006",
                                       "0007"]
    finally:
        await conn.close()
    sim = gmail_sim.sim
    sim.quota.units_per_second = None
    mailbox = sim.create_mailbox("support@noji.example")
    sim.seed(mailbox.address, messages=30, threads=10, seed=4)
    owner = await create_pool(fresh_database, max_size=2)
    pool = await create_pool(service_role, max_size=4)
    assert owner is not None
    assert pool is not None
    try:
        # The web app's admin connects the service (the web app writes the token).
        await owner.execute("UPDATE gmail_accounts SET refresh_token = $1 WHERE id = 'svc-noji'",
                            mailbox.refresh_token)
        config = EngineConfig.from_settings(engine_settings(gmail_sim), retry=FAST_POLICY,
                                            quota=QuotaProfile.unlimited())
        async with SyncEngine.open(pool, config) as engine:
            now = datetime.fromtimestamp(sim.clock.now(), UTC)
            assert (await watch.renew_all(engine, TOPIC, now=now)).renewed == ["svc-noji"]
            # The stored cursor means nothing to this mailbox: a full sync, which also
            # empties the reference's own thread (kept, archived, for its draft).
            await engine.sync("svc-noji", trigger="api")
            snapshot = sim.snapshot(mailbox.address)
            sim.trash(mailbox.address, snapshot.messages[0].id)
            sim.deliver(mailbox.address, subject="Under a narrow role")
            await engine.sync("svc-noji", trigger="notification")
            await assert_mirror(pool, "svc-noji", sim.snapshot(mailbox.address))

            # The web app deletes the service: the trigger queues the stop all the same.
            await owner.execute("DELETE FROM gmail_accounts WHERE id = 'svc-noji'")
            outcomes = await watch.drain_stops(engine, now=now)
            assert [(o.stopped, o.revoked) for o in outcomes] == [(True, True)]
            assert sim.active_watch(mailbox.address) is None
    finally:
        await pool.close()
        await owner.close()


@pytest.mark.parametrize("statement", [
    "ALTER TABLE gmail_accounts ADD COLUMN sync_state text",
    "CREATE INDEX x ON emails (to_email)",
    "DROP TABLE send_outbox",
    "UPDATE gmail_accounts SET name = 'x'",
    "DELETE FROM drafts",
    "UPDATE drafts SET content = ''",
    "DELETE FROM send_outbox",
    "INSERT INTO categories VALUES ('c', 'svc-noji', 'n', '#fff', '#000')",
    "CREATE TABLE public.sync_runs (id int)",
])
async def test_the_role_cannot_touch_what_the_web_app_owns(
    service_role: str, statement: str
) -> None:
    conn = await asyncpg.connect(service_role)
    try:
        await migrate(conn)
        with pytest.raises(asyncpg.InsufficientPrivilegeError):
            await conn.execute(statement)
    finally:
        await conn.close()
