"""Push OIDC verification and envelope parsing, against a local key and certs endpoint."""

from __future__ import annotations

import base64
import json
import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime

import aiohttp
import pytest

from delightbridge.consumer.push import (
    CertificateCache,
    MalformedEnvelope,
    OidcVerifier,
    PushAuthError,
    parse_envelope,
)
from tests.consumer.oidc import AUDIENCE, PUSH_ACCOUNT, CertsServer, SigningKey


@pytest.fixture(scope="module")
def other_key() -> SigningKey:
    return SigningKey()


@pytest.fixture
async def verifier(certs: CertsServer) -> AsyncIterator[OidcVerifier]:
    async with aiohttp.ClientSession() as session:
        yield OidcVerifier(CertificateCache(session, certs.url), audience=AUDIENCE,
                           service_account=PUSH_ACCOUNT, clock_skew=10)


async def refused(verifier: OidcVerifier, header: str | None) -> PushAuthError:
    with pytest.raises(PushAuthError) as caught:
        await verifier.verify(header)
    return caught.value


async def test_a_google_signed_token_of_the_push_account_is_accepted(
        verifier: OidcVerifier, google_key: SigningKey) -> None:
    claims = await verifier.verify(f"Bearer {google_key.token()}")
    assert claims["email"] == PUSH_ACCOUNT
    assert claims["aud"] == AUDIENCE
    # The scheme is case-insensitive; the account compares case-insensitively.
    await verifier.verify(f"bearer {google_key.token(email=PUSH_ACCOUNT.upper())}")


@pytest.mark.parametrize("header", [None, "", "Basic dXNlcjpwYXNz", "Bearer", "Bearer    ",
                                    "Bearer not.a.jwt", "Bearer abc"])
async def test_no_usable_bearer_token_is_401(verifier: OidcVerifier, header: str | None
                                             ) -> None:
    assert (await refused(verifier, header)).status == 401


async def test_a_forged_token_is_401(verifier: OidcVerifier, google_key: SigningKey,
                                     other_key: SigningKey) -> None:
    # Signed by another key claiming Google's key id: the signature does not verify.
    forged = other_key.token(kid=google_key.kid)
    error = await refused(verifier, f"Bearer {forged}")
    assert (error.status, error.reason) == (401, "the token is not valid")
    assert error.detail == "Could not verify token signature."  # logged at DEBUG only
    # A valid token whose payload was edited after signing.
    header, payload, signature = google_key.token().split(".")
    claims = json.loads(base64.urlsafe_b64decode(payload + "=="))
    claims["email"] = "attacker@evil.example"
    edited = base64.urlsafe_b64encode(json.dumps(claims).encode()).decode().rstrip("=")
    assert (await refused(verifier, f"Bearer {header}.{edited}.{signature}")).status == 401
    # Signed by a key Google never published.
    assert (await refused(verifier, f"Bearer {other_key.token()}")).status == 401
    # Not signed at all ("alg": "none"), or claiming a symmetric algorithm.
    for alg in ("none", "HS256"):
        unsigned = base64.urlsafe_b64encode(json.dumps(
            {"alg": alg, "typ": "JWT", "kid": google_key.kid}).encode()).decode().rstrip("=")
        assert (await refused(verifier, f"Bearer {unsigned}.{payload}.")).status == 401
        assert (await refused(verifier, f"Bearer {unsigned}.{payload}.{signature}")).status == 401


async def test_an_expired_token_is_401(verifier: OidcVerifier, google_key: SigningKey) -> None:
    now = int(time.time())
    expired = google_key.token(iat=now - 7200, exp=now - 3600)
    error = await refused(verifier, f"Bearer {expired}")
    assert (error.status, error.reason) == (401, "the token is not valid")
    assert error.detail is not None
    assert "expired" in error.detail.lower()
    # Within the allowed clock skew it still passes.
    await verifier.verify(f"Bearer {google_key.token(iat=now - 3600, exp=now - 5)}")


@pytest.mark.parametrize(("claims", "status"), [
    ({"aud": "https://someone-else.example/push"}, 401),
    ({"iss": "https://evil.example"}, 401),
    ({"iss": None}, 401),
    ({"exp": None}, 401),
    ({"iat": int(time.time()) + 3600}, 401),  # issued in the future
    ({"email": "someone@delightbridge-test.iam.gserviceaccount.com"}, 403),
    ({"email": None}, 403),
    ({"email_verified": False}, 403),
    ({"email_verified": "true"}, 403),
    ({"email_verified": None}, 403),
])
async def test_claims_are_checked(verifier: OidcVerifier, google_key: SigningKey,
                                  claims: dict[str, object], status: int) -> None:
    assert (await refused(verifier, f"Bearer {google_key.token(**claims)}")).status == status


async def test_certificates_are_cached_and_refetched_for_a_new_key(
        certs: CertsServer, google_key: SigningKey) -> None:
    async with aiohttp.ClientSession() as session:
        cache = CertificateCache(session, certs.url, min_refetch_interval=0)
        verifier = OidcVerifier(cache, audience=AUDIENCE, service_account=PUSH_ACCOUNT)
        for _ in range(3):
            await verifier.verify(f"Bearer {google_key.token()}")
        assert certs.requests == 1  # max-age=300: fetched once
        rotated = SigningKey()
        certs.keys.append(rotated)  # Google rotates its keys
        await verifier.verify(f"Bearer {rotated.token()}")
        assert certs.requests == 2  # an unknown key id refetched the certificates


async def test_unknown_key_ids_cannot_make_it_refetch_at_will(
        verifier: OidcVerifier, certs: CertsServer, google_key: SigningKey) -> None:
    await verifier.verify(f"Bearer {google_key.token()}")
    unknown = SigningKey()
    for _ in range(3):  # never published: refused, and no refetch within the interval
        assert (await refused(verifier, f"Bearer {unknown.token()}")).status == 401
    assert certs.requests == 1


async def test_unreachable_certificates_are_503_so_pubsub_retries(
        certs: CertsServer, google_key: SigningKey) -> None:
    certs.failing = True
    async with aiohttp.ClientSession() as session:
        verifier = OidcVerifier(CertificateCache(session, certs.url), audience=AUDIENCE,
                                service_account=PUSH_ACCOUNT)
        assert (await refused(verifier, f"Bearer {google_key.token()}")).status == 503
        certs.failing = False
        await verifier.verify(f"Bearer {google_key.token()}")


# --- envelopes -----------------------------------------------------------------------------


def test_a_push_envelope_is_parsed() -> None:
    body = json.dumps({
        "message": {"data": "eyJ9", "messageId": "136969346945",
                    "publishTime": "2026-11-23T19:13:55.749123456Z", "attributes": {}},
        "subscription": "projects/p/subscriptions/s", "deliveryAttempt": 3,
    }).encode()
    envelope = parse_envelope(body)
    assert envelope.data == "eyJ9"
    assert envelope.message_id == "136969346945"
    assert envelope.publish_time == datetime(2026, 11, 23, 19, 13, 55, 749123, tzinfo=UTC)
    assert envelope.delivery_attempt == 3
    assert envelope.subscription == "projects/p/subscriptions/s"
    # Snake-case names (Pub/Sub sends both) and an absent data field (empty message).
    other = parse_envelope(b'{"message": {"message_id": "7", "publish_time": "bad"}}')
    assert (other.data, other.message_id, other.publish_time) == (None, "7", None)


@pytest.mark.parametrize("body", [
    b"", b"not json", b"[]", b'"text"', b"{}", b'{"message": "x"}',
    b'{"message": {"data": 12, "messageId": "1"}}',
    b'{"message": {"data": "eyJ9"}}',
    b'{"message": {"data": "eyJ9", "messageId": ""}}',
    b"\xff\xfe",
])
def test_malformed_envelopes_are_rejected(body: bytes) -> None:
    with pytest.raises(MalformedEnvelope):
        parse_envelope(body)
