"""Fixtures for engine tests: a served Gmail simulator, a service row, an engine."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import asyncpg
import pytest
from gmailsim import Mailbox, Simulator

from delightbridge.core.settings import Settings
from delightbridge.sync.engine import EngineConfig, SyncEngine
from delightbridge.sync.gmail.quota import QuotaProfile
from delightbridge.sync.gmail.retry import FAST_POLICY
from tests.plugins.gmail import GmailSim, gmail_settings

ACCOUNT = "svc-noji"
ADDRESS = "support@noji.example"


def engine_settings(g: GmailSim, **overrides: Any) -> Settings:
    return Settings(**{**gmail_settings(g.server), **overrides})


@dataclass
class SyncSetup:
    sim: Simulator
    gmail: GmailSim
    mailbox: Mailbox
    engine: SyncEngine
    pool: asyncpg.Pool
    account_id: str = ACCOUNT

    @property
    def address(self) -> str:
        return self.mailbox.address


async def add_service(pool: asyncpg.Pool, account_id: str, address: str, refresh: str) -> None:
    await pool.execute(
        "INSERT INTO gmail_accounts (id, name, email, refresh_token) VALUES ($1, $1, $2, $3)",
        account_id, address, refresh)


@pytest.fixture
async def setup(gmail_sim: GmailSim, pool: asyncpg.Pool) -> AsyncIterator[SyncSetup]:
    """An empty mailbox connected as service svc-noji; quota off unless a test turns it on."""
    sim = gmail_sim.sim
    sim.quota.units_per_second = None
    mailbox = sim.create_mailbox(ADDRESS, name="Noji Support")
    await add_service(pool, ACCOUNT, mailbox.address, mailbox.refresh_token)
    config = EngineConfig.from_settings(engine_settings(gmail_sim), retry=FAST_POLICY,
                                        quota=QuotaProfile.unlimited())
    async with SyncEngine.open(pool, config) as engine:
        yield SyncSetup(sim, gmail_sim, mailbox, engine, pool)
