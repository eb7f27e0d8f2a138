"""Google's OIDC signer, locally: the tokens Pub/Sub push puts in ``Authorization``.

Pub/Sub push signs each request with a Google-issued OIDC token for the
subscription's service account (``iss`` Google, ``aud`` the push endpoint unless
configured, ``email`` the account, ``email_verified``), verifiable against the
certificates at ``https://www.googleapis.com/oauth2/v1/certs`` (``{kid: PEM}``).
The simulator signs its push envelopes the same way with a key of its own and
serves its certificate in the same format (``<base>/oauth2/v1/certs``), so the
consumer's push endpoint verifies them exactly as it verifies Google's.
"""

from __future__ import annotations

import datetime as dt
import threading
import time
import uuid
from collections.abc import Callable
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID
from google.auth import crypt, jwt

GOOGLE_ISSUER = "https://accounts.google.com"
#: The push service account the simulator's tokens name by default.
PUSH_SERVICE_ACCOUNT = "gmail-push@gmailsim.iam.gserviceaccount.com"
CERTS_PATH = "/oauth2/v1/certs"
CERTS_MAX_AGE = 3600

# google.auth is untyped: the two functions used here, with their documented types.
_signer_from_pem: Callable[..., crypt.Signer] = crypt.RSASigner.from_string
_encode: Callable[..., bytes] = jwt.encode


class SigningKey:
    """An RSA key with a self-signed certificate; signs Google-shaped OIDC tokens."""

    def __init__(self, kid: str | None = None) -> None:
        self.kid = kid or uuid.uuid4().hex
        self.key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, self.kid)])
        now = dt.datetime.now(dt.UTC)
        self.certificate = (
            x509.CertificateBuilder().subject_name(name).issuer_name(name)
            .public_key(self.key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(days=1))
            .not_valid_after(now + dt.timedelta(days=30))
            .sign(self.key, hashes.SHA256())
        )
        self._signers: dict[str, crypt.Signer] = {}

    @property
    def certificate_pem(self) -> str:
        return self.certificate.public_bytes(serialization.Encoding.PEM).decode()

    @property
    def private_pem(self) -> str:
        return self.key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption()).decode()

    def certs(self) -> dict[str, str]:
        """The certificates document: ``{kid: PEM}``."""
        return {self.kid: self.certificate_pem}

    def token(self, *, audience: str, account: str, kid: str | None = None,
              lifetime: int = 3600, **overrides: Any) -> str:
        """A push token for ``account`` and ``audience``; ``overrides`` replace claims
        (None removes one)."""
        now = int(time.time())
        claims: dict[str, Any] = {
            "iss": GOOGLE_ISSUER, "aud": audience, "azp": "1234567890",
            "sub": "1234567890", "email": account, "email_verified": True,
            "iat": now, "exp": now + lifetime,
        }
        claims.update(overrides)
        claims = {k: v for k, v in claims.items() if v is not None}
        key_id = kid or self.kid
        signer = self._signers.get(key_id)
        if signer is None:
            signer = self._signers[key_id] = _signer_from_pem(self.private_pem, key_id=key_id)
        return bytes(_encode(signer, claims)).decode()


_lock = threading.Lock()
_shared: SigningKey | None = None


def shared_key() -> SigningKey:
    """The process's simulator key (made once: RSA key generation takes a moment)."""
    global _shared
    with _lock:
        if _shared is None:
            _shared = SigningKey()
        return _shared
