"""The named-query files: a clear error for an unknown name, duplicates or empty bodies."""

from __future__ import annotations

import pytest

from delightbridge.db.queries import parse, query


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
