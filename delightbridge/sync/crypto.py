"""OAuth tokens at rest: AES-256-GCM for the copies only the service reads.

The web app reads ``gmail_accounts.access_token`` and ``refresh_token`` as plain values
(it sends mail, marks threads read and starts watches with them), so the service keeps
those plain. What only the service reads, the tokens a queued watch stop keeps
(``delightbridge_sync.watch_stops``), is sealed with ``TOKEN_ENCRYPTION_KEY`` when it is
set. Earlier releases sealed the web app's columns too: such values are still read, and
``delightbridge reseal-tokens`` turns them back to plain.

Stored form: ``enc:v1:`` + base64url(nonce ‖ ciphertext ‖ tag). The associated data
binds a value to its service and column, so a token copied onto another service does
not decrypt. Values without the prefix are plain and are read as they are.

Key rotation: a :class:`Keyring` seals with its current key and opens with any of its
keys (``TOKEN_ENCRYPTION_KEY`` first, then ``TOKEN_ENCRYPTION_OLD_KEYS``);
``reseal-tokens`` re-encrypts every sealed value under the current key.
"""

from __future__ import annotations

import base64
import os
from dataclasses import dataclass

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from delightbridge.core.errors import TokenDecryptionError

PREFIX = "enc:v1:"


@dataclass(frozen=True, slots=True)
class Keyring:
    """The key that seals (``current``, may be None: nothing is sealed) and every key
    that opens, the current one first."""

    current: bytes | None = None
    old: tuple[bytes, ...] = ()

    @property
    def keys(self) -> tuple[bytes, ...]:
        return ((self.current,) if self.current is not None else ()) + self.old


def _aad(account_id: str, column: str) -> bytes:
    return f"gmail_accounts.{column}:{account_id}".encode()


def is_encrypted(value: str) -> bool:
    return value.startswith(PREFIX)


def seal(value: str, keyring: Keyring, *, account_id: str, column: str) -> str:
    """Encrypt ``value`` with the current key, or return it unchanged without one."""
    if keyring.current is None:
        return value
    nonce = os.urandom(12)
    sealed = AESGCM(keyring.current).encrypt(nonce, value.encode(), _aad(account_id, column))
    return PREFIX + base64.urlsafe_b64encode(nonce + sealed).decode().rstrip("=")


def _open(stored: str, key: bytes, account_id: str, column: str) -> str | None:
    raw = stored[len(PREFIX):]
    try:
        blob = base64.urlsafe_b64decode(raw + "=" * (-len(raw) % 4))
        return AESGCM(key).decrypt(blob[:12], blob[12:], _aad(account_id, column)).decode()
    except (InvalidTag, ValueError):
        return None


def unseal(stored: str, keyring: Keyring, *, account_id: str, column: str) -> str:
    """Read a stored token, plain or sealed under any of the keyring's keys."""
    if not is_encrypted(stored):
        return stored
    if not keyring.keys:
        raise TokenDecryptionError(
            f"the {column} of service {account_id!r} is encrypted but TOKEN_ENCRYPTION_KEY "
            "is unset")
    for key in keyring.keys:
        plain = _open(stored, key, account_id, column)
        if plain is not None:
            return plain
    raise TokenDecryptionError(
        f"the {column} of service {account_id!r} does not decrypt with TOKEN_ENCRYPTION_KEY "
        "or TOKEN_ENCRYPTION_OLD_KEYS")


def is_current(stored: str, keyring: Keyring, *, account_id: str, column: str) -> bool:
    """Whether ``stored`` is already as :func:`seal` would store it now: sealed with the
    current key, or plain when there is no current key."""
    if keyring.current is None:
        return not is_encrypted(stored)
    return is_encrypted(stored) and _open(stored, keyring.current, account_id,
                                          column) is not None
