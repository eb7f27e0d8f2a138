"""Every named query is valid SQL against the migrated schema."""

from __future__ import annotations

import asyncpg
import pytest

from delightbridge.db.queries import all_queries, query


@pytest.mark.parametrize("name", sorted(all_queries()))
async def test_query_prepares_against_the_schema(pool: asyncpg.Pool, name: str) -> None:
    async with pool.acquire() as conn:
        await conn.prepare(query(name))


