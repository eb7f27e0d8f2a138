"""A service's sender identities (the web app's ``service_sender_identities``): typed
functions around their named queries. Which identities a mailbox has is
:mod:`delightbridge.sync.identities`' business."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import asyncpg

from delightbridge.db.connection import transaction
from delightbridge.db.queries import query
from delightbridge.db.types import Executor


@dataclass(frozen=True, slots=True)
class IdentityRow:
    id: str  # stable per (service, address): a refresh keeps each row's id
    email: str
    display_name: str
    is_default: bool
    is_enabled: bool


@dataclass(frozen=True, slots=True)
class Sender:
    email: str
    is_default: bool
    is_enabled: bool


async def senders(db: Executor, *, service_id: str) -> list[Sender]:
    """The addresses the service may answer from, the oldest first."""
    rows = await db.fetch(query("sync_sender_identities"), service_id)
    return [Sender(r["email"], r["is_default"], r["is_enabled"]) for r in rows]


async def replace_all(pool: asyncpg.Pool, *, service_id: str,
                      identities: Sequence[IdentityRow]) -> None:
    """The service's identities become ``identities``, in one transaction: upserted by
    address (rows keep their id and creation time), the others removed. Nothing is
    written for a service that no longer exists."""
    async with transaction(pool) as conn:
        await conn.execute(
            query("identities_upsert"), service_id, [i.id for i in identities],
            [i.email for i in identities], [i.display_name for i in identities],
            [i.is_default for i in identities], [i.is_enabled for i in identities])
        await conn.execute(query("identities_remove_others"), service_id,
                           [i.email for i in identities])
