"""Syncing into an existing DelightBridge database (the reference file's rows)."""

from __future__ import annotations

from delightbridge.db.migrate import migrate
from delightbridge.db.pool import create_pool
from delightbridge.sync.engine import EngineConfig, SyncEngine
from delightbridge.sync.gmail.quota import QuotaProfile
from delightbridge.sync.gmail.retry import FAST_POLICY
from tests.plugins.gmail import GmailSim
from tests.syncengine.conftest import engine_settings
from tests.syncengine.mirror import assert_mirror


async def test_sync_into_existing_database_keeps_what_the_web_app_owns(
    reference_database: str, gmail_sim: GmailSim
) -> None:
    sim = gmail_sim.sim
    sim.quota.units_per_second = None
    mailbox = sim.create_mailbox("support@noji.example")
    sim.seed(mailbox.address, messages=60, threads=15, seed=2)
    pool = await create_pool(reference_database, max_size=5)
    assert pool is not None
    try:
        async with pool.acquire() as conn:
            await migrate(conn)
        untouched = "SELECT * FROM {} ORDER BY 1"
        before = {t: [dict(r) for r in await pool.fetch(untouched.format(t))]
                  for t in ("users", "workspace_members")}
        anki_before = dict(await pool.fetchrow("SELECT * FROM gmail_accounts WHERE id='svc-anki'"))
        # The web app's row keeps its id; the admin connects it to the mailbox. Its stored
        # cursor (4200) means nothing to this mailbox: history 404 -> full resync.
        await pool.execute("UPDATE gmail_accounts SET refresh_token = $1 WHERE id = 'svc-noji'",
                           mailbox.refresh_token)
        config = EngineConfig.from_settings(engine_settings(gmail_sim), retry=FAST_POLICY,
                                            quota=QuotaProfile.unlimited())
        async with SyncEngine.open(pool, config) as engine:
            first = await engine.sync("svc-noji", trigger="api")
            assert (first.mode, first.fell_back_to_full) == ("full", True)
            await assert_mirror(pool, "svc-noji", sim.snapshot(mailbox.address))

            # The web app categorises a thread and detects its language; then mail arrives.
            thread = await pool.fetchval(
                "SELECT id FROM email_threads WHERE account_id='svc-noji' ORDER BY id LIMIT 1")
            await pool.execute("INSERT INTO categories VALUES ('cat-1', 'svc-noji', 'Billing', "
                               "'#fff', '#000')")
            await pool.execute("UPDATE email_threads SET category_id = 'cat-1', "
                               "detected_language = 'ko' WHERE id = $1", thread)
            await pool.execute("INSERT INTO drafts (id, thread_id, content) "
                               "VALUES ('draft-1', $1, '<p>Hi</p>')", thread)
            gmail_thread = thread.removeprefix("thread-svc-noji-")
            sim.deliver(mailbox.address, thread_id=gmail_thread)
            second = await engine.sync("svc-noji", trigger="notification")
            assert second.mode == "incremental"
            await assert_mirror(pool, "svc-noji", sim.snapshot(mailbox.address))

        row = await pool.fetchrow("SELECT category_id, detected_language, created_at IS NOT NULL"
                                  " AS c FROM email_threads WHERE id = $1", thread)
        assert dict(row) == {"category_id": "cat-1", "detected_language": "ko", "c": True}
        assert await pool.fetchval("SELECT content FROM drafts WHERE id='draft-1'") == "<p>Hi</p>"
        for table, rows in before.items():
            assert [dict(r) for r in await pool.fetch(untouched.format(table))] == rows
        assert dict(await pool.fetchrow("SELECT * FROM gmail_accounts WHERE id='svc-anki'")) == (
            anki_before)
        # The legacy message the mailbox does not have was reconciled away; its thread
        # stays, archived, because an agent's draft is on it.
        assert await pool.fetchval("SELECT count(*) FROM emails WHERE id='email-svc-noji-18c1'") \
            == 0
        legacy = await pool.fetchrow(
            "SELECT t.status::text AS status, d.content FROM email_threads t "
            "JOIN drafts d ON d.thread_id = t.id WHERE t.id = 'thread-svc-noji-18c1'")
        assert dict(legacy) == {"status": "archived", "content": "<p>Sure</p>"}
    finally:
        await pool.close()
