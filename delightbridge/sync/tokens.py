"""Stored OAuth tokens brought to the form this release keeps them in.

* ``gmail_accounts.access_token`` / ``refresh_token``, the web app's columns: plain.
* ``delightbridge_sync.watch_stops`` tokens, which only the service reads: sealed with
  the current key (plain without one).

Both functions work on locked rows in the caller's transaction, so a sync refreshing a
token meanwhile waits instead of racing, and return what they changed and the values no
key opens (``(row id, column)``; those are left as they are).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from delightbridge.core.errors import TokenDecryptionError
from delightbridge.db import stored_tokens
from delightbridge.db.types import Connection
from delightbridge.sync import crypto


def _columns(row: stored_tokens.StoredTokens) -> tuple[tuple[str, str | None], ...]:
    return (("access_token", row.access_token), ("refresh_token", row.refresh_token))


@dataclass
class Outcome:
    changed: int = 0
    unreadable: list[tuple[str, str]] = field(default_factory=list)


def _rewrite(stored: str | None, account_id: str, column: str, keyring: crypto.Keyring,
             *, sealed: bool, outcome: Outcome, row: str) -> str | None:
    if stored is None:
        return None
    wanted_sealed = sealed and keyring.current is not None
    if not wanted_sealed and not crypto.is_encrypted(stored):
        return stored
    if wanted_sealed and crypto.is_current(stored, keyring, account_id=account_id,
                                           column=column):
        return stored
    try:
        plain = crypto.unseal(stored, keyring, account_id=account_id, column=column)
    except TokenDecryptionError:
        outcome.unreadable.append((row, column))
        return stored
    if not wanted_sealed:
        return plain
    return crypto.seal(plain, keyring, account_id=account_id, column=column)


async def plain_web_app_tokens(conn: Connection, keyring: crypto.Keyring) -> Outcome:
    """Decrypt any web-app token an earlier release sealed (the web app cannot use it)."""
    outcome = Outcome()
    for row in await stored_tokens.services_for_update(conn):
        service_id = row.account_id
        access, refresh = (_rewrite(value, service_id, column, keyring, sealed=False,
                                    outcome=outcome, row=service_id)
                           for column, value in _columns(row))
        if (access, refresh) != (row.access_token, row.refresh_token):
            await stored_tokens.store_service(conn, service_id=service_id,
                                              access_token=access, refresh_token=refresh)
            outcome.changed += 1
    return outcome


async def seal_queued_tokens(conn: Connection, keyring: crypto.Keyring) -> Outcome:
    """Seal the tokens queued watch stops keep with the current key (re-sealing those an
    old key sealed), or make them plain when no current key is set."""
    outcome = Outcome()
    for row in await stored_tokens.queued_for_update(conn):
        label = f"watch stop {row.row_id} ({row.account_id})"
        access, refresh = (_rewrite(value, row.account_id, column, keyring, sealed=True,
                                    outcome=outcome, row=label)
                           for column, value in _columns(row))
        if (access, refresh) != (row.access_token, row.refresh_token):
            await stored_tokens.store_queued(conn, stop_id=row.row_id, access_token=access,
                                             refresh_token=refresh)
            outcome.changed += 1
    return outcome
