"""OAuth tokens as stored: the web app's (``gmail_accounts``) and those queued watch
stops keep (``delightbridge_sync.watch_stops``), read locked and written back by
``reseal-tokens`` (:mod:`delightbridge.sync.tokens`). Typed functions around their
named queries."""

from __future__ import annotations

from dataclasses import dataclass

from delightbridge.db.queries import query
from delightbridge.db.types import Connection


@dataclass(frozen=True, slots=True)
class StoredTokens:
    row_id: str | int  # the service's id, or the queued watch stop's
    account_id: str  # the service whose tokens they are (sealing binds them to it)
    access_token: str | None
    refresh_token: str | None


async def services_for_update(conn: Connection) -> list[StoredTokens]:
    """Every service's tokens, locked until the caller's transaction ends."""
    rows = await conn.fetch(query("tokens_for_update"))
    return [StoredTokens(r["id"], r["id"], r["access_token"], r["refresh_token"])
            for r in rows]


async def store_service(conn: Connection, *, service_id: str, access_token: str | None,
                        refresh_token: str | None) -> None:
    await conn.execute(query("tokens_store"), service_id, access_token, refresh_token)


async def queued_for_update(conn: Connection) -> list[StoredTokens]:
    """The tokens of every queued watch stop, locked until the transaction ends."""
    rows = await conn.fetch(query("tokens_queued_for_update"))
    return [StoredTokens(r["id"], r["account_id"], r["access_token"], r["refresh_token"])
            for r in rows]


async def store_queued(conn: Connection, *, stop_id: str | int, access_token: str | None,
                       refresh_token: str | None) -> None:
    await conn.execute(query("tokens_queued_store"), stop_id, access_token, refresh_token)
