"""``delightbridge reseal-tokens``: every stored OAuth token in the form it belongs in.

The web app's token columns (``gmail_accounts``) become plain again where an earlier
release encrypted them; the copies queued watch stops keep are sealed with
``TOKEN_ENCRYPTION_KEY``, whichever key sealed them before (give earlier keys in
``TOKEN_ENCRYPTION_OLD_KEYS``): this is the key rotation. One transaction with the rows
locked. When a value opens with none of the keys, nothing changes: each is named (the
service and the column, never the value) and the command exits 1. Running it twice
changes nothing.
"""

from __future__ import annotations

import argparse
import sys

from delightbridge.core.settings import Settings
from delightbridge.db.connection import connection
from delightbridge.db.pool import open_pool
from delightbridge.sync import crypto, tokens


def configure(parser: argparse.ArgumentParser) -> None:
    del parser  # no options


async def run(settings: Settings, args: argparse.Namespace) -> int:
    keyring = crypto.Keyring(settings.token_encryption_key, settings.token_encryption_old_keys)
    async with open_pool(settings, max_size=2) as pool, connection(pool) as conn:
        transaction = conn.transaction()
        await transaction.start()
        try:
            web_app = await tokens.plain_web_app_tokens(conn, keyring)
            queued = await tokens.seal_queued_tokens(conn, keyring)
        except BaseException:
            await transaction.rollback()
            raise
        unreadable = web_app.unreadable + queued.unreadable
        if unreadable:
            await transaction.rollback()
            for row, column in unreadable:
                print(f"reseal-tokens: the {column} of {row} opens with no key given "
                      "(TOKEN_ENCRYPTION_KEY, TOKEN_ENCRYPTION_OLD_KEYS); nothing was changed",
                      file=sys.stderr)
            return 1
        await transaction.commit()
    sealing = "sealed with TOKEN_ENCRYPTION_KEY" if keyring.current else "plain (no key set)"
    print(f"web app tokens made plain again: {web_app.changed} service(s); "
          f"queued watch stops {sealing}: {queued.changed} changed")
    return 0

