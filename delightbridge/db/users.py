"""The web app's users and database sessions, as the service reads them to recognise
admins: typed functions around their named queries."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from delightbridge.db.queries import query
from delightbridge.db.types import Executor


@dataclass(frozen=True, slots=True)
class User:
    id: Any  # the web app's users.id, whichever type its deployment uses
    email: str
    name: str | None
    is_admin: bool
    google_id: str | None = None


@dataclass(frozen=True, slots=True)
class DatabaseSession:
    live: bool  # false once expired
    user: User | None  # None: the session names no existing user


async def by_google_id(db: Executor, *, google_id: str) -> User | None:
    """The user a JWT session's ``sub`` names (``users.google_id`` is Google's sub)."""
    row = await db.fetchrow(query("auth_user_by_google_id"), google_id)
    return None if row is None else User(row["id"], row["email"], row["name"],
                                         bool(row["is_admin"]), row["google_id"])


async def by_email(db: Executor, *, email: str) -> User | None:
    """The user with this address (case-insensitively, an exact match first)."""
    row = await db.fetchrow(query("auth_user_by_email"), email)
    return None if row is None else User(row["id"], row["email"], row["name"],
                                         bool(row["is_admin"]), row["google_id"])


async def database_session(db: Executor, *, token: str) -> DatabaseSession | None:
    """The web app's database session with this token, if its deployment keeps them."""
    row = await db.fetchrow(query("auth_database_session"), token)
    if row is None:
        return None
    user = None if row["id"] is None else User(row["id"], row["email"], row["name"],
                                               bool(row["is_admin"]))
    return DatabaseSession(bool(row["live"]), user)
