"""Named SQL queries, loaded once from ``delightbridge/db/sql/*.sql`` (procrastinate's layout).

Each file groups the statements of one concept under ``-- name: x`` headers; names
are unique across files. ``query("name")`` returns the statement; an unknown name
raises ``KeyError``, and ``tests/db/test_queries.py`` prepares every statement
against a migrated database so that a typo fails the suite, not production.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from functools import cache
from importlib.resources import files
from types import MappingProxyType

_NAME_RE = re.compile(r"^-- name: ([a-z_][a-z0-9_]*)\s*$", re.MULTILINE)


def parse(text: str) -> dict[str, str]:
    """Split a queries file into ``{name: sql}``; duplicate names are an error."""
    parts = _NAME_RE.split(text)
    found: dict[str, str] = {}
    for name, body in zip(parts[1::2], parts[2::2], strict=True):
        if name in found:
            raise ValueError(f"query {name!r} is defined twice")
        lines = [line for line in body.strip().splitlines() if not line.startswith("-- ")]
        sql = "\n".join(lines).strip().rstrip(";")
        if not sql:
            raise ValueError(f"query {name!r} is empty")
        found[name] = sql
    return found


@cache
def all_queries() -> Mapping[str, str]:
    found: dict[str, str] = {}
    sql_dir = files("delightbridge.db").joinpath("sql")
    for entry in sorted(sql_dir.iterdir(), key=lambda e: e.name):
        if not entry.name.endswith(".sql"):
            continue
        for name, sql in parse(entry.read_text(encoding="utf-8")).items():
            if name in found:
                raise ValueError(f"query {name!r} is defined in two files under db/sql")
            found[name] = sql
    return MappingProxyType(found)


def query(name: str) -> str:
    try:
        return all_queries()[name]
    except KeyError:
        raise KeyError(f"no SQL query named {name!r} under db/sql") from None
