"""Helpers for test databases on a real PostgreSQL server."""

from __future__ import annotations

from urllib.parse import quote, urlsplit, urlunsplit

import asyncpg


def with_database(url: str, database: str) -> str:
    """``url`` pointing at another database on the same server."""
    parts = urlsplit(url)
    return urlunsplit(parts._replace(path="/" + quote(database)))


def ident(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


async def create_database(admin_url: str, name: str, template: str = "template0") -> str:
    conn = await asyncpg.connect(admin_url)
    try:
        await conn.execute(f"CREATE DATABASE {ident(name)} TEMPLATE {ident(template)}")
    finally:
        await conn.close()
    return with_database(admin_url, name)


async def drop_database(admin_url: str, name: str) -> None:
    conn = await asyncpg.connect(admin_url)
    try:
        await conn.execute(f"DROP DATABASE IF EXISTS {ident(name)} WITH (FORCE)")
    finally:
        await conn.close()
