"""Every named query is valid SQL against the migrated schema."""

from __future__ import annotations

import asyncpg
import pytest

from db.queries import all_queries, parse, query


@pytest.mark.parametrize("name", sorted(all_queries()))
async def test_query_prepares_against_the_schema(pool: asyncpg.Pool, name: str) -> None:
    async with pool.acquire() as conn:
        await conn.prepare(query(name))


def test_unknown_query_name_is_a_clear_error() -> None:
    with pytest.raises(KeyError, match="no SQL query named 'nope'"):
        query("nope")


def test_parse_rejects_duplicates_and_empty_bodies() -> None:
    with pytest.raises(ValueError, match="defined twice"):
        parse("-- name: a\nSELECT 1\n-- name: a\nSELECT 2\n")
    with pytest.raises(ValueError, match="empty"):
        parse("-- name: a\n-- just a comment\n")
    assert parse("-- name: a\nSELECT 1;\n\n-- name: b\nSELECT $1\n") == {
        "a": "SELECT 1", "b": "SELECT $1",
    }
