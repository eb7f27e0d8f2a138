"""``delightbridge encrypt-tokens``: seal every plaintext OAuth token in place.

Needs ``TOKEN_ENCRYPTION_KEY``. Runs in one transaction with the rows locked, so a
sync refreshing a token meanwhile waits rather than racing; tokens already sealed
are left as they are, so running it twice changes nothing. The tokens kept by
queued watch stops (``delightbridge_sync.watch_stops``) are sealed alike.
"""

from __future__ import annotations

import argparse

from db.pool import open_pool
from db.queries import query
from delightbridge.errors import ConfigError
from delightbridge.settings import Settings
from syncengine import crypto


def configure(parser: argparse.ArgumentParser) -> None:
    del parser  # no options


def _sealed(value: str | None, key: bytes, account_id: str, column: str) -> str | None:
    if value is None or crypto.is_encrypted(value):
        return value
    return crypto.seal(value, key, account_id=account_id, column=column)


async def run(settings: Settings, args: argparse.Namespace) -> int:
    key = settings.token_encryption_key
    if key is None:
        raise ConfigError("TOKEN_ENCRYPTION_KEY", "is required to encrypt tokens")
    changed = queued = 0
    async with open_pool(settings, max_size=2) as pool, pool.acquire() as conn, \
            conn.transaction():
        for row in await conn.fetch(query("tokens_for_update")):
            access = _sealed(row["access_token"], key, row["id"], "access_token")
            refresh = _sealed(row["refresh_token"], key, row["id"], "refresh_token")
            if (access, refresh) != (row["access_token"], row["refresh_token"]):
                await conn.execute(query("tokens_store"), row["id"], access, refresh)
                changed += 1
        for row in await conn.fetch(query("tokens_queued_for_update")):
            access = _sealed(row["access_token"], key, row["account_id"], "access_token")
            refresh = _sealed(row["refresh_token"], key, row["account_id"], "refresh_token")
            if (access, refresh) != (row["access_token"], row["refresh_token"]):
                await conn.execute(query("tokens_queued_store"), row["id"], access, refresh)
                queued += 1
    print(f"encrypted the tokens of {changed} service(s)"
          + (f" and {queued} queued watch stop(s)" if queued else ""))
    return 0
