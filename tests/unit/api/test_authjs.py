"""Auth.js session cookie crypto: what is accepted, and every way a cookie is refused."""

from __future__ import annotations

import base64
import json
import os
import time
from typing import Any

import pytest
from joserfc import jwe, jwt
from joserfc.jwe import JWERegistry
from joserfc.jwk import OctKey
from joserfc.util import urlsafe_b64encode

from delightbridge.api.authjs import (
    CHUNK_SIZE,
    CLOCK_TOLERANCE,
    SECURE_SESSION_COOKIE_NAME,
    SESSION_COOKIE_NAME,
    SESSION_COOKIE_NAMES,
    Unauthenticated,
    cookie_header,
    cookie_header_values,
    decode_session,
    derive_key,
    encode_session,
    key_id,
    looks_like_jwe,
    session_token_from_cookies,
)
from delightbridge.core.errors import ConfigError, DelightBridgeError

SECRET = "test-auth-secret-0123456789abcdef"
CLAIMS = {"name": "Ada Admin", "email": "ada@delightbridge.example", "sub": "1122334455"}

# Known answers from @auth/core 0.41.3 itself (node, @panva/hkdf and jwt.encode), so
# the format is pinned even where node is not installed (tests/api/test_interop.py
# checks the live package when it is).
KAT_SECRET = "kat-secret-not-a-real-one"
KAT_KEYS = {
    SESSION_COOKIE_NAME: "b4fa799027aa58e6a1bcf745f189be08c6a74798182b03471e86e804020d9fd7"
    "56f2ca5d28bd372b1f321d211c7670aebf16097b6c8dbf8692a75213830c7882",
    SECURE_SESSION_COOKIE_NAME: "bad1d159768023b78dab720b026977e6b9ee55880a57dd8440dea8a19a4f65b2"
    "eb56539fb646ae63e85bbf6568ba1a15cf86040e6ec6bb3a91b6a5dcab054825",
}
# jwt.encode({token: KAT_CLAIMS, secret: KAT_SECRET, salt: "authjs.session-token",
#             maxAge: 100 years}) and the same with maxAge: -3600.
KAT_CLAIMS = {
    "name": "Kat Admin", "email": "kat@delightbridge.example", "picture": None,
    "sub": "109876543210",
}
KAT_LONG_LIVED = (
    "eyJhbGciOiJkaXIiLCJlbmMiOiJBMjU2Q0JDLUhTNTEyIiwia2lkIjoieFk2R0xVakFLU0NaMC0tN2dNZUFzT1M3"
    "TW9fMkNqaGZHQS1QanoxYXByOWN4VG1HZjRCMGJ2MldjNl9rRUNMTFR6VXRQb0dORWFycmE4UlQ1U0ZCY2cifQ.."
    "_3DjQhQa8SBduQz5iE2s1A.pm4NGITE3A9kFVv1xGyvQXvcaNC2Fp0VWT5fBFT_mL3JTX9_ERXB1RkfULNuJUDiQ"
    "uywA19-mMVwhra9dTgzEO5e8507vBiYZOSfk4Ac7WijmnhUFhGblJqTXDnkhFG2OCPJcb8m0KCkeuu_6wGA7hF2Il"
    "fi30LY2N9Pf-ED9a-d30CNOorwMJj_DdJzkt-HijyuZiNMmAKc7e0ujvipq_PT-IMbn-UItK5we0O3SCE.UExXMlm0"
    "5EMXCb2qJb_VxsQYDm1a7_8IS4jTn8BkZYA"
)
KAT_EXPIRED = (
    "eyJhbGciOiJkaXIiLCJlbmMiOiJBMjU2Q0JDLUhTNTEyIiwia2lkIjoieFk2R0xVakFLU0NaMC0tN2dNZUFzT1M3"
    "TW9fMkNqaGZHQS1QanoxYXByOWN4VG1HZjRCMGJ2MldjNl9rRUNMTFR6VXRQb0dORWFycmE4UlQ1U0ZCY2cifQ.."
    "Yn83ZjlPYsrOOvDiWjQzUg.rmclrPe0f_7FNHxZXIHqMqZgASrD5yARLgsK4-WXz3nhtFLVTyeoZoobbGmG1e5554n"
    "MrgyW0OoTlxG383g6ncxj2Y7QzNBcQDX0Yu3Rl5ib1HMEfAx25gp7g5vOnNSDkPsx1SOY4owH-a2lbgt7fFDYhyeAp"
    "sAtN3GetLkgwtGp3ktg0_3Jfa3y8lcuK8V1B8C2jRfw8BpDQVUeEc8vAI7EYyy2X9n4pQJIEUNr_5Y.d1bPkI9vVWS0"
    "WXUtHE7qivh7L-AsniKdjQA0oG3eSKE"
)


def _b64(data: bytes) -> str:
    return urlsafe_b64encode(data).decode()


def _unb64(segment: str) -> bytes:
    return base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4))


def _jwe(
    payload: Any,
    key: bytes,
    *,
    alg: str = "dir",
    enc: str = "A256CBC-HS512",
    kid: str | None = None,
    extra_header: dict[str, Any] | None = None,
) -> str:
    """A JWE built by joserfc directly, to forge what our encoder would never make."""
    header: dict[str, Any] = {"alg": alg, "enc": enc, **(extra_header or {})}
    if kid is not None:
        header["kid"] = kid
    plaintext = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
    registry = JWERegistry(algorithms=[alg, enc])
    return jwe.encrypt_compact(header, plaintext, OctKey.import_key(key), registry=registry)


def _refusal(token: str, secret: str | list[str] = SECRET, **kw: Any) -> Unauthenticated:
    with pytest.raises(Unauthenticated) as info:
        decode_session(token, secret, **kw)
    exc = info.value
    # Never the secret or the token in what an error says or carries.
    text = str(exc) + repr(exc.args)
    assert SECRET not in text
    assert token[:40] not in text or not token
    assert exc.__cause__ is None
    assert exc.__suppress_context__ or exc.__context__ is None
    assert exc.code == "unauthenticated"
    assert isinstance(exc, DelightBridgeError)
    return exc


def _valid_payload(**overrides: Any) -> dict[str, Any]:
    now = int(time.time())
    return {**CLAIMS, "iat": now, "exp": now + 3600, "jti": "j", **overrides}


# --- accepted ------------------------------------------------------------------------


def test_cookie_names_are_auth_js_defaults() -> None:
    assert SESSION_COOKIE_NAMES == ("__Secure-authjs.session-token", "authjs.session-token")
    assert CHUNK_SIZE == 3936


def test_key_derivation_matches_auth_js() -> None:
    for name, hex_key in KAT_KEYS.items():
        assert derive_key(KAT_SECRET, name).hex() == hex_key


def test_token_minted_by_auth_js_decodes() -> None:
    claims = decode_session(KAT_LONG_LIVED, KAT_SECRET)
    assert {k: claims[k] for k in KAT_CLAIMS} == KAT_CLAIMS
    assert isinstance(claims["jti"], str)
    assert claims["exp"] > claims["iat"]


def test_our_token_round_trips_with_auth_js_header_and_claims() -> None:
    before = int(time.time())
    token = encode_session(CLAIMS, SECRET, max_age=600)
    header = json.loads(_unb64(token.split(".")[0]))
    key = derive_key(SECRET, SESSION_COOKIE_NAME)
    assert header == {"alg": "dir", "enc": "A256CBC-HS512", "kid": key_id(key)}
    assert token.split(".")[1] == ""  # "dir": no encrypted key
    claims = decode_session(token, SECRET)
    assert {k: claims[k] for k in CLAIMS} == CLAIMS
    assert before <= claims["iat"] <= int(time.time())
    assert claims["exp"] == claims["iat"] + 600
    assert len(claims["jti"]) == 36
    assert decode_session(encode_session(CLAIMS, SECRET), SECRET)["jti"] != claims["jti"]


def test_encode_replaces_iat_exp_jti_like_auth_js() -> None:
    token = encode_session({**CLAIMS, "iat": 1, "exp": 2, "jti": "x"}, SECRET, now=1_900_000_000)
    claims = decode_session(token, SECRET, now=1_900_000_001)
    assert claims["iat"] == 1_900_000_000
    assert claims["exp"] == 1_900_000_000 + 30 * 24 * 3600
    assert claims["jti"] != "x"


def test_default_max_age_is_thirty_days() -> None:
    claims = decode_session(encode_session(CLAIMS, SECRET), SECRET)
    assert claims["exp"] - claims["iat"] == 30 * 24 * 60 * 60


def test_secure_cookie_name_salts_the_key() -> None:
    token = encode_session(CLAIMS, SECRET, cookie_name=SECURE_SESSION_COOKIE_NAME)
    claims = decode_session(token, SECRET, cookie_name=SECURE_SESSION_COOKIE_NAME)
    assert claims["sub"] == "1122334455"
    assert _refusal(token).reason == "invalid"  # read under the plain name


def test_rotated_secrets_are_tried_by_kid_and_without_kid() -> None:
    old, new = "old-secret-abcdef", "new-secret-123456"
    assert decode_session(encode_session(CLAIMS, old), [new, old])["email"] == CLAIMS["email"]
    assert decode_session(encode_session(CLAIMS, [new, old]), [new, old])["sub"] == CLAIMS["sub"]
    # Tokens from before Auth.js put a kid in the header.
    no_kid = _jwe(_valid_payload(), derive_key(old, SESSION_COOKIE_NAME))
    assert decode_session(no_kid, [new, old])["email"] == CLAIMS["email"]


def test_expiry_allows_auth_js_clock_tolerance() -> None:
    token = encode_session(CLAIMS, SECRET, now=1_900_000_000, max_age=60)
    exp = 1_900_000_060
    assert decode_session(token, SECRET, now=exp - 1)
    assert decode_session(token, SECRET, now=exp + CLOCK_TOLERANCE - 1)
    assert _refusal(token, now=exp + CLOCK_TOLERANCE).reason == "expired"


def test_iat_in_the_future_is_accepted_like_jose() -> None:
    key = derive_key(SECRET, SESSION_COOKIE_NAME)
    token = _jwe(_valid_payload(iat=int(time.time()) + 600), key, kid=key_id(key))
    assert decode_session(token, SECRET)["sub"] == CLAIMS["sub"]


def test_empty_secret_is_a_configuration_error() -> None:
    token = encode_session(CLAIMS, SECRET)
    for secret in ("", [], [SECRET, ""]):
        with pytest.raises(ConfigError, match="AUTH_SECRET"):
            decode_session(token, secret)
    with pytest.raises(ConfigError):
        encode_session(CLAIMS, "")


# --- refused -------------------------------------------------------------------------


def test_auth_js_expired_token_is_refused() -> None:
    assert _refusal(KAT_EXPIRED, KAT_SECRET).reason == "expired"


def test_wrong_secret_is_refused() -> None:
    token = encode_session(CLAIMS, SECRET)
    assert _refusal(token, "another-secret-entirely").reason == "invalid"
    assert _refusal(KAT_LONG_LIVED).reason == "invalid"


@pytest.mark.parametrize(
    "value",
    [
        "",
        "not-a-token",
        "00000000-0000-0000-0000-000000000000",
        "....",
        "a.b.c.d.e",
        "!!!!.b.c.d.e",
        _b64(b"[1, 2]") + ".." + _b64(os.urandom(16)) + "." + _b64(os.urandom(48)) + ".x",
        ".".join(_b64(os.urandom(n)) for n in (40, 0, 16, 64, 32)),
        "x" * 70_000 + ".a.b.c.d",
    ],
    ids=["empty", "word", "uuid", "dots", "letters", "bad-b64", "array-header", "random",
         "huge"],
)
def test_garbage_is_refused(value: str) -> None:
    assert _refusal(value).reason in {"malformed", "unsupported_algorithm"}


def test_random_bytes_under_a_valid_header_are_refused() -> None:
    header = _b64(json.dumps({"alg": "dir", "enc": "A256CBC-HS512"}).encode())
    for _ in range(20):
        forged = ".".join([header, "", _b64(os.urandom(16)), _b64(os.urandom(80)),
                           _b64(os.urandom(32))])
        assert _refusal(forged).reason == "invalid"


def test_jwe_encrypted_with_another_key_is_refused() -> None:
    other = os.urandom(64)
    assert _refusal(_jwe(_valid_payload(), other)).reason == "invalid"
    # Even claiming our key's kid.
    ours = key_id(derive_key(SECRET, SESSION_COOKIE_NAME))
    assert _refusal(_jwe(_valid_payload(), other, kid=ours)).reason == "invalid"
    assert _refusal(_jwe(_valid_payload(), other, kid=key_id(other))).reason == "invalid"


def test_truncated_tokens_are_refused() -> None:
    token = encode_session(CLAIMS, SECRET)
    parts = token.split(".")
    cuts = [
        token[:-1], token[:-10], token[: len(token) // 2], token[:-len(parts[4]) - 1],
        ".".join(parts[:4]) + ".", ".".join([*parts[:3], parts[3][:-4], parts[4]]),
    ]
    for cut in cuts:
        assert _refusal(cut).reason in {"malformed", "invalid"}


def _flip(segment: str, index: int = 0) -> str:
    raw = bytearray(_unb64(segment))
    raw[index] ^= 0x01
    return _b64(bytes(raw))


@pytest.mark.parametrize("part", [2, 3, 4], ids=["iv", "ciphertext", "tag"])
@pytest.mark.parametrize("where", [0, -1])
def test_tampered_token_is_refused(part: int, where: int) -> None:
    parts = encode_session(CLAIMS, SECRET).split(".")
    parts[part] = _flip(parts[part], where)
    assert _refusal(".".join(parts)).reason == "invalid"


def test_tampered_protected_header_is_refused() -> None:
    key = derive_key(SECRET, SESSION_COOKIE_NAME)
    parts = encode_session(CLAIMS, SECRET).split(".")
    header = json.loads(_unb64(parts[0]))
    # The header is the AAD: any change breaks the tag even when alg/enc/kid stay.
    parts[0] = _b64(json.dumps({**header, "cty": "JWT"}).encode())
    assert _refusal(".".join(parts)).reason == "invalid"
    parts[0] = _b64(json.dumps({"alg": "dir", "enc": "A256CBC-HS512"}).encode())
    assert _refusal(".".join(parts)).reason == "invalid"
    assert key_id(key) == header["kid"]


@pytest.mark.parametrize(
    ("alg", "enc", "key_length"),
    [
        ("dir", "A128CBC-HS256", 32),
        ("dir", "A256GCM", 32),
        ("dir", "A128GCM", 16),
        ("A256KW", "A256CBC-HS512", 32),
    ],
)
def test_other_algorithms_are_refused(alg: str, enc: str, key_length: int) -> None:
    # Keys derived exactly as Auth.js would for that length, so only the header differs.
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.kdf.hkdf import HKDF

    key = HKDF(
        algorithm=hashes.SHA256(), length=key_length, salt=SESSION_COOKIE_NAME.encode(),
        info=f"Auth.js Generated Encryption Key ({SESSION_COOKIE_NAME})".encode(),
    ).derive(SECRET.encode())
    token = _jwe(_valid_payload(), key, alg=alg, enc=enc)
    assert _refusal(token).reason == "unsupported_algorithm"


def test_signed_and_unsecured_jwts_are_refused() -> None:
    signed = jwt.encode({"alg": "HS256"}, _valid_payload(), OctKey.import_key(SECRET.encode()))
    assert _refusal(signed).reason == "malformed"
    unsecured = _b64(b'{"alg":"none"}') + "." + _b64(json.dumps(_valid_payload()).encode()) + "."
    assert _refusal(unsecured).reason == "malformed"
    none_jwe = ".".join([_b64(b'{"alg":"none","enc":"A256CBC-HS512"}'), "", "a", "b", "c"])
    assert _refusal(none_jwe).reason == "unsupported_algorithm"
    zipped = ".".join(
        [_b64(b'{"alg":"dir","enc":"A256CBC-HS512","zip":"DEF"}'), "", "a", "b", "c"]
    )
    assert _refusal(zipped).reason == "unsupported_algorithm"


@pytest.mark.parametrize(
    "payload",
    [
        {k: v for k, v in _valid_payload().items() if k != "exp"},
        _valid_payload(exp="4102444800"),
        _valid_payload(exp=None),
        _valid_payload(exp=True),
        _valid_payload(nbf=int(time.time()) + 3600),
        _valid_payload(iat="yesterday"),
        _valid_payload(sub=12345),
    ],
    ids=["missing-exp", "string-exp", "null-exp", "bool-exp", "future-nbf", "string-iat",
         "numeric-sub"],
)
def test_invalid_claims_are_refused(payload: dict[str, Any]) -> None:
    key = derive_key(SECRET, SESSION_COOKIE_NAME)
    assert _refusal(_jwe(payload, key, kid=key_id(key))).reason == "invalid_claims"


@pytest.mark.parametrize("plaintext", [b"[1,2,3]", b'"a string"', b"not json", b"", b"null"])
def test_non_object_payload_is_refused(plaintext: bytes) -> None:
    key = derive_key(SECRET, SESSION_COOKIE_NAME)
    assert _refusal(_jwe(plaintext, key, kid=key_id(key))).reason == "invalid"


def test_every_single_character_change_is_refused() -> None:
    token = encode_session(CLAIMS, SECRET)
    for index in range(0, len(token), 3):
        for char in "A_-":
            if token[index] != char:
                changed = token[:index] + char + token[index + 1:]
                if changed != token:
                    try:
                        claims = decode_session(changed, SECRET)
                    except Unauthenticated:
                        continue
                    # Only a change in base64 padding bits may decode, to the same claims.
                    assert claims["jti"] == decode_session(token, SECRET)["jti"]


# --- cookies -------------------------------------------------------------------------


def test_session_token_from_cookies() -> None:
    assert session_token_from_cookies({}) is None
    assert session_token_from_cookies({"other": "x", "authjs.csrf-token": "y"}) is None
    assert session_token_from_cookies({"authjs.session-token": ""}) is None
    assert session_token_from_cookies({"authjs.session-token": "v"}) == (
        "authjs.session-token", "v"
    )
    assert session_token_from_cookies(
        {"authjs.session-token": "plain", "__Secure-authjs.session-token": "secure"}
    ) == ("__Secure-authjs.session-token", "secure")
    # Empty secure cookie: the plain one still counts.
    assert session_token_from_cookies(
        {"authjs.session-token": "plain", "__Secure-authjs.session-token": ""}
    ) == ("authjs.session-token", "plain")


def test_chunks_are_joined_in_numeric_order() -> None:
    cookies = {f"authjs.session-token.{i}": f"<{i}>" for i in (10, 2, 0, 1, 3, 4, 5, 6, 7, 8, 9)}
    cookies["authjs.session-token.x"] = "ignored"
    cookies["authjs.session-token.-1"] = "ignored"
    cookies["authjs.session-token.\u0661"] = "ignored"  # a non-ASCII digit
    cookies["authjs.session-tokenized"] = "ignored"
    name, value = session_token_from_cookies(cookies) or ("", "")
    assert name == "authjs.session-token"
    assert value == "".join(f"<{i}>" for i in range(11))
    secure = {"__Secure-authjs.session-token.1": "b", "__Secure-authjs.session-token.0": "a"}
    assert session_token_from_cookies({**cookies, **secure}) == (
        "__Secure-authjs.session-token", "ab"
    )


def test_unchunked_cookie_wins_over_stale_chunks() -> None:
    cookies = {"authjs.session-token": "whole", "authjs.session-token.0": "stale"}
    assert session_token_from_cookies(cookies) == ("authjs.session-token", "whole")


def test_short_token_is_one_cookie() -> None:
    token = encode_session(CLAIMS, SECRET)
    assert len(token) < CHUNK_SIZE
    assert cookie_header_values(token) == [("authjs.session-token", token)]
    assert cookie_header(token, SECURE_SESSION_COOKIE_NAME) == (
        f"__Secure-authjs.session-token={token}"
    )
    with pytest.raises(ValueError):
        cookie_header_values("")


@pytest.mark.parametrize("cookie_name", [SESSION_COOKIE_NAME, SECURE_SESSION_COOKIE_NAME])
def test_long_token_is_chunked_and_joined_back(cookie_name: str) -> None:
    big = {**CLAIMS, "groups": [f"group-{i:05d}" for i in range(900)]}
    token = encode_session(big, SECRET, cookie_name=cookie_name)
    chunks = cookie_header_values(token, cookie_name)
    assert len(chunks) == -(-len(token) // CHUNK_SIZE) >= 3
    assert [name for name, _ in chunks] == [f"{cookie_name}.{i}" for i in range(len(chunks))]
    assert all(len(value) == CHUNK_SIZE for _, value in chunks[:-1])
    assert "".join(value for _, value in chunks) == token
    # Order of arrival does not matter.
    found = session_token_from_cookies(dict(reversed(chunks)))
    assert found == (cookie_name, token)
    assert decode_session(found[1], SECRET, cookie_name=found[0])["groups"] == big["groups"]
    # A lost chunk leaves a token that does not decrypt.
    missing = dict(chunks[:1] + chunks[2:])
    name, partial = session_token_from_cookies(missing) or ("", "")
    assert _refusal(partial, cookie_name=name).reason in {"malformed", "invalid"}


def test_looks_like_jwe() -> None:
    assert looks_like_jwe(encode_session(CLAIMS, SECRET))
    assert not looks_like_jwe("2c8a2b5e-5a51-4a0b-8f0e-6f3b8c1f9d11")
    assert not looks_like_jwe("a.b.c")
