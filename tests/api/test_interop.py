"""Interop with the real Auth.js: cookies minted by ``@auth/core`` decode here, and back.

Installs the pinned npm package once (cached under ``.delightbridge/cache``, or the
pytest temp dir when that is not writable) and runs one small node script per test
with a batch of operations. Skipped only when node or npm is not installed.
"""

from __future__ import annotations

import base64
import json
import os
import shutil
import subprocess
import time
import uuid
from pathlib import Path
from typing import Any

import pytest

from delightbridge.api.authjs import (
    CHUNK_SIZE,
    SECURE_SESSION_COOKIE_NAME,
    SESSION_COOKIE_NAME,
    Unauthenticated,
    cookie_header,
    cookie_header_values,
    decode_session,
    derive_key,
    encode_session,
    key_id,
    session_token_from_cookies,
)

AUTH_CORE_VERSION = "0.41.3"
ROOT = Path(__file__).resolve().parents[2]
SECRET = "interop-secret-6f1d0c9e2b7a4d38"
CLAIMS = {"name": "Ada Admin", "email": "ada@delightbridge.example", "picture": None,
          "sub": "1122334455"}

# Reads a JSON list of operations on stdin, answers a JSON list of results.
SCRIPT = r"""
import { encode, decode, getToken } from "@auth/core/jwt";
// Not exported by the package: imported by path (the chunking Auth.js really does).
import { SessionStore } from "./node_modules/@auth/core/lib/utils/cookie.js";

const quiet = { debug() {}, warn() {}, error() {} };
const ops = JSON.parse(await new Promise((resolve) => {
  let data = "";
  process.stdin.on("data", (c) => (data += c));
  process.stdin.on("end", () => resolve(data));
}));
const out = [];
for (const op of ops) {
  try {
    if (op.op === "encode") {
      out.push({ ok: await encode({ token: op.token, secret: op.secret, salt: op.salt,
                                    maxAge: op.maxAge }) });
    } else if (op.op === "decode") {
      out.push({ ok: await decode({ token: op.token, secret: op.secret, salt: op.salt }) });
    } else if (op.op === "getToken") {
      out.push({ ok: await getToken({ req: { headers: { cookie: op.cookie } },
                                      secret: op.secret, secureCookie: op.secure,
                                      logger: quiet }) });
    } else if (op.op === "chunk") {
      const store = new SessionStore({ name: op.name, options: {} }, {}, quiet);
      out.push({ ok: store.chunk(op.value, {}).map((c) => [c.name, c.value]) });
    } else {
      out.push({ error: "unknown op" });
    }
  } catch (e) {
    out.push({ error: String(e && e.code || e && e.name || e) });
  }
}
process.stdout.write(JSON.stringify(out));
"""


def _install(target: Path) -> None:
    npm = shutil.which("npm")
    assert npm is not None
    staging = target.parent / f".tmp-{uuid.uuid4().hex}"
    staging.mkdir(parents=True)
    try:
        result = subprocess.run(
            [npm, "install", "--prefix", str(staging), "--no-audit", "--no-fund",
             "--ignore-scripts", "--loglevel=error", f"@auth/core@{AUTH_CORE_VERSION}"],
            capture_output=True, text=True, timeout=300, check=False,
        )
        if result.returncode != 0:
            pytest.fail(
                f"npm install @auth/core@{AUTH_CORE_VERSION} failed "
                f"(exit {result.returncode}): {result.stderr[-2000:]}"
            )
        (staging / "interop.mjs").write_text(SCRIPT, encoding="utf-8")
        try:
            staging.rename(target)
        except OSError:
            if not _installed(target):  # another run won the race: use its copy
                raise
    finally:
        if staging.exists():
            shutil.rmtree(staging, ignore_errors=True)


def _installed(target: Path) -> bool:
    package = target / "node_modules" / "@auth" / "core" / "package.json"
    if not package.is_file() or not (target / "interop.mjs").is_file():
        return False
    if (target / "interop.mjs").read_text(encoding="utf-8") != SCRIPT:
        return False
    return bool(json.loads(package.read_text(encoding="utf-8"))["version"] == AUTH_CORE_VERSION)


@pytest.fixture(scope="session")
def authjs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A folder with @auth/core installed and the interop script; cached across runs."""
    if shutil.which("node") is None or shutil.which("npm") is None:
        pytest.skip("node and npm are needed to check interop with the real @auth/core")
    name = f"authjs-core-{AUTH_CORE_VERSION}"
    cache = ROOT / ".delightbridge" / "cache"
    try:
        cache.mkdir(parents=True, exist_ok=True)
        probe = cache / f".probe-{os.getpid()}"
        probe.touch()
        probe.unlink()
    except OSError:
        cache = tmp_path_factory.mktemp("npm-cache")
    target = cache / name
    if not _installed(target):
        if target.exists():
            shutil.rmtree(target)
        _install(target)
    return target


def node(folder: Path, *ops: dict[str, Any]) -> list[Any]:
    """Run operations in node; each result is the value, or an ``{"error": ...}`` dict."""
    node_bin = shutil.which("node")
    assert node_bin is not None
    result = subprocess.run(
        [node_bin, str(folder / "interop.mjs")], input=json.dumps(list(ops)),
        capture_output=True, text=True, timeout=60, check=False, cwd=folder,
    )
    assert result.returncode == 0, result.stderr
    answers = json.loads(result.stdout)
    return [a.get("ok", a) for a in answers]


def _without_times(claims: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in claims.items() if k not in ("iat", "exp", "jti")}


def test_cookies_minted_by_auth_js_decode_here(authjs: Path) -> None:
    plain, secure, short, rotated, expired = node(
        authjs,
        {"op": "encode", "token": CLAIMS, "secret": SECRET, "salt": SESSION_COOKIE_NAME},
        {"op": "encode", "token": CLAIMS, "secret": SECRET, "salt": SECURE_SESSION_COOKIE_NAME},
        {"op": "encode", "token": CLAIMS, "secret": SECRET, "salt": SESSION_COOKIE_NAME,
         "maxAge": 60},
        {"op": "encode", "token": CLAIMS, "secret": ["newest-secret-xyz", SECRET],
         "salt": SESSION_COOKIE_NAME},
        {"op": "encode", "token": CLAIMS, "secret": SECRET, "salt": SESSION_COOKIE_NAME,
         "maxAge": -60},
    )
    claims = decode_session(plain, SECRET)
    assert _without_times(claims) == CLAIMS
    assert claims["exp"] - claims["iat"] == 30 * 24 * 3600
    assert abs(claims["iat"] - time.time()) < 60
    assert _without_times(
        decode_session(secure, SECRET, cookie_name=SECURE_SESSION_COOKIE_NAME)
    ) == CLAIMS
    assert decode_session(short, SECRET)["exp"] - decode_session(short, SECRET)["iat"] == 60
    # Auth.js encodes with the first secret; we accept it when we know that secret.
    assert decode_session(rotated, ["newest-secret-xyz", SECRET])["sub"] == CLAIMS["sub"]
    for token, secret, cookie_name, reason in (
        (rotated, SECRET, SESSION_COOKIE_NAME, "invalid"),
        (plain, "not-the-secret", SESSION_COOKIE_NAME, "invalid"),
        (plain, SECRET, SECURE_SESSION_COOKIE_NAME, "invalid"),
        (secure, SECRET, SESSION_COOKIE_NAME, "invalid"),
        (plain[:-30], SECRET, SESSION_COOKIE_NAME, "invalid"),
        (expired, SECRET, SESSION_COOKIE_NAME, "expired"),
    ):
        with pytest.raises(Unauthenticated) as info:
            decode_session(token, secret, cookie_name=cookie_name)
        assert info.value.reason == reason


def test_auth_js_header_matches_ours(authjs: Path) -> None:
    (token,) = node(
        authjs, {"op": "encode", "token": {}, "secret": SECRET, "salt": SESSION_COOKIE_NAME}
    )
    segment = token.split(".")[0]
    header = json.loads(base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4)))
    assert header == {"alg": "dir", "enc": "A256CBC-HS512",
                      "kid": key_id(derive_key(SECRET, SESSION_COOKIE_NAME))}
    assert token.split(".")[0] == encode_session({}, SECRET).split(".")[0]


def test_our_cookies_decode_in_auth_js(authjs: Path) -> None:
    plain = encode_session(CLAIMS, SECRET)
    secure = encode_session(CLAIMS, SECRET, cookie_name=SECURE_SESSION_COOKIE_NAME, max_age=90)
    expired = encode_session(CLAIMS, SECRET, now=time.time() - 3600, max_age=60)
    rotated = encode_session(CLAIMS, ["old-secret-for-rotation", SECRET])
    results = node(
        authjs,
        {"op": "decode", "token": plain, "secret": SECRET, "salt": SESSION_COOKIE_NAME},
        {"op": "decode", "token": secure, "secret": SECRET, "salt": SECURE_SESSION_COOKIE_NAME},
        {"op": "decode", "token": expired, "secret": SECRET, "salt": SESSION_COOKIE_NAME},
        {"op": "decode", "token": plain, "secret": "not-the-secret", "salt": SESSION_COOKIE_NAME},
        {"op": "decode", "token": rotated, "secret": [SECRET, "old-secret-for-rotation"],
         "salt": SESSION_COOKIE_NAME},
    )
    ok_plain, ok_secure, refused_expired, refused_secret, ok_rotated = results
    assert ok_plain == decode_session(plain, SECRET)
    assert ok_secure == decode_session(secure, SECRET, cookie_name=SECURE_SESSION_COOKIE_NAME)
    assert ok_secure["exp"] - ok_secure["iat"] == 90
    assert refused_expired == {"error": "ERR_JWT_EXPIRED"}
    assert "error" in refused_secret
    assert ok_rotated["email"] == CLAIMS["email"]


@pytest.mark.parametrize("secure", [False, True])
def test_chunked_cookies_match_auth_js(authjs: Path, secure: bool) -> None:
    cookie_name = SECURE_SESSION_COOKIE_NAME if secure else SESSION_COOKIE_NAME
    big = {**CLAIMS, "groups": [f"group-{i:05d}" for i in range(1200)]}
    token = encode_session(big, SECRET, cookie_name=cookie_name)
    assert len(token) > 2 * CHUNK_SIZE
    (theirs_big, small_from_node, node_minted) = node(
        authjs,
        {"op": "chunk", "name": cookie_name, "value": token},
        {"op": "chunk", "name": cookie_name, "value": "short"},
        {"op": "encode", "token": big, "secret": SECRET, "salt": cookie_name},
    )
    # Same cookie names and the same split as Auth.js's SessionStore.
    assert [tuple(c) for c in theirs_big] == cookie_header_values(token, cookie_name)
    assert [tuple(c) for c in small_from_node] == cookie_header_values("short", cookie_name)
    # Auth.js's getToken reads our chunked Cookie header ...
    (payload,) = node(
        authjs,
        {"op": "getToken", "cookie": "a=b; " + cookie_header(token, cookie_name),
         "secret": SECRET, "secure": secure},
    )
    assert payload["groups"] == big["groups"]
    # ... and we read Auth.js's chunks of its own token.
    (chunks,) = node(authjs, {"op": "chunk", "name": cookie_name, "value": node_minted})
    found = session_token_from_cookies(dict(map(tuple, reversed(chunks))))
    assert found == (cookie_name, node_minted)
    assert decode_session(node_minted, SECRET, cookie_name=cookie_name)["groups"] == big["groups"]
