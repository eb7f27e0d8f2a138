"""OAuth tokens at rest: AES-256-GCM when ``TOKEN_ENCRYPTION_KEY`` is set.

Stored form: ``enc:v1:`` + base64url(nonce ‖ ciphertext ‖ tag). The associated data
binds a value to its row and column, so a token copied onto another service's row
does not decrypt. Values without the prefix are plaintext (the web app's own rows,
or a deployment without a key) and are read as they are.
"""

from __future__ import annotations

import base64
import os

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from delightbridge.errors import TokenDecryptionError

PREFIX = "enc:v1:"


def _aad(account_id: str, column: str) -> bytes:
    return f"gmail_accounts.{column}:{account_id}".encode()


def is_encrypted(value: str) -> bool:
    return value.startswith(PREFIX)


def seal(value: str, key: bytes | None, *, account_id: str, column: str) -> str:
    """Encrypt ``value`` for storage, or return it unchanged when there is no key."""
    if key is None:
        return value
    nonce = os.urandom(12)
    sealed = AESGCM(key).encrypt(nonce, value.encode(), _aad(account_id, column))
    return PREFIX + base64.urlsafe_b64encode(nonce + sealed).decode().rstrip("=")


def unseal(stored: str, key: bytes | None, *, account_id: str, column: str) -> str:
    """Read a stored token, encrypted or not."""
    if not is_encrypted(stored):
        return stored
    if key is None:
        raise TokenDecryptionError(
            f"the {column} of service {account_id!r} is encrypted but TOKEN_ENCRYPTION_KEY is unset"
        )
    raw = stored[len(PREFIX):]
    try:
        blob = base64.urlsafe_b64decode(raw + "=" * (-len(raw) % 4))
        plain = AESGCM(key).decrypt(blob[:12], blob[12:], _aad(account_id, column))
    except (InvalidTag, ValueError):
        raise TokenDecryptionError(
            f"the {column} of service {account_id!r} does not decrypt with TOKEN_ENCRYPTION_KEY"
        ) from None
    return plain.decode()
