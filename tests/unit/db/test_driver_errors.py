"""The driver's exceptions become the project's at the database boundary, and only there."""

from __future__ import annotations

import ast
from pathlib import Path

import asyncpg
import pytest

import delightbridge
from delightbridge.core.errors import DatabaseUnavailable, QueryFailed
from delightbridge.db import errors as db_errors

PACKAGE = Path(delightbridge.__file__).parent


@pytest.mark.parametrize("exc", [
    ConnectionRefusedError(111, "Connection refused"),
    ConnectionResetError(104, "Connection reset by peer"),
    TimeoutError(),
    asyncpg.ConnectionDoesNotExistError("connection was closed in the middle of operation"),
    asyncpg.CannotConnectNowError("the database system is starting up"),
    asyncpg.AdminShutdownError("terminating connection due to administrator command"),
])
def test_the_database_going_away_is_unavailable(exc: Exception) -> None:
    assert isinstance(db_errors.translate(exc), DatabaseUnavailable)


def test_a_refused_statement_keeps_its_sqlstate() -> None:
    mapped = db_errors.translate(asyncpg.UniqueViolationError("duplicate key"))
    assert isinstance(mapped, QueryFailed)
    assert mapped.sqlstate == db_errors.UNIQUE_VIOLATION


@pytest.mark.parametrize("exc", [
    # The caller's bug: an argument asyncpg cannot encode (not SQLSTATE class 22's
    # DataError, which PostgreSQL raises and is a refused statement).
    asyncpg.exceptions._base.DataError("invalid input for query argument $1"),
    ValueError("x"),
    KeyError("x"),
])
def test_anything_else_is_left_alone(exc: Exception) -> None:
    assert db_errors.translate(exc) is None


def _driver_errors_named(path: Path) -> list[str]:
    found = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if (isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name)
                and node.value.id == "asyncpg"
                and (node.attr.endswith(("Error", "Warning")) or node.attr == "exceptions")):
            found.append(f"{path.relative_to(PACKAGE)}:{node.lineno} asyncpg.{node.attr}")
        if isinstance(node, ast.ImportFrom) and (node.module or "").startswith(
                "asyncpg.exceptions"):
            found.append(f"{path.relative_to(PACKAGE)}:{node.lineno} from {node.module}")
    return found


def test_no_layer_above_db_names_a_driver_exception() -> None:
    named = [hit for path in sorted(PACKAGE.rglob("*.py"))
             if path.relative_to(PACKAGE).parts[0] != "db"
             for hit in _driver_errors_named(path)]
    assert named == []


def test_the_scan_sees_what_it_looks_for() -> None:
    assert _driver_errors_named(PACKAGE / "db" / "errors.py")
