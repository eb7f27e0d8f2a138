"""Push tokens as Google signs them: a signing key per test module and a certs URL
serving its certificate (in this process), for the consumer's OIDC checks."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from tests.consumer.oidc import CertsServer, SigningKey


@pytest.fixture(scope="module")
def google_key() -> SigningKey:
    """The key that signs "Google's" push tokens in a test module."""
    return SigningKey()


@pytest.fixture
async def certs(google_key: SigningKey) -> AsyncIterator[CertsServer]:
    """A certs URL serving ``google_key``'s certificate, as Google's v1 certs do."""
    async with CertsServer(google_key).running() as server:
        yield server
