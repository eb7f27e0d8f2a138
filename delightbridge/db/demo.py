"""The local demo's own services (ids ``demo-*``): typed functions around their named
queries. Nothing else is touched: every statement is limited to those ids."""

from __future__ import annotations

from collections.abc import Sequence

import asyncpg

from delightbridge.db.connection import transaction
from delightbridge.db.queries import query
from delightbridge.db.types import Executor


async def refresh_tokens(db: Executor, *, service_ids: Sequence[str]) -> dict[str, str]:
    """``{id: refresh token}`` of the demo services among ``service_ids`` that exist."""
    rows = await db.fetch(query("demo_services"), service_ids)
    return {r["id"]: r["refresh_token"] for r in rows}


async def replace_service(pool: asyncpg.Pool, *, service_id: str, name: str, address: str,
                          refresh_token: str) -> None:
    """The demo service ``service_id`` anew (its mirror goes with the old row), in one
    transaction."""
    async with transaction(pool) as conn:
        await conn.execute(query("demo_remove_service"), service_id)
        await conn.execute(query("demo_add_service"), service_id, name, address,
                           refresh_token)
