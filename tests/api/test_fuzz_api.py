"""Hostile cookies, service ids and OAuth callbacks through the running API (hypothesis).

The app runs on the production runner (``ProductionServer``: the limits, timeouts and
parser-error answers of ``delightbridge serve``) over a real database and the Gmail
simulator. Hypothesis generates:

* session cookies: random text, JWE-shaped values whose five segments are random,
  headers of JSON nested past the parser's recursion limit, wrong algorithms, chunked
  cookies (``.0``, ``.1``… with gaps, duplicates and odd suffixes), both cookie names,
  and values up to and past the 32 KiB header limit;
* service ids: any Unicode (NUL, lone surrogates as their UTF-8 bytes, separators,
  ``..``), percent-encoded into the path of every endpoint that takes one;
* OAuth callbacks: random ``state``, ``code`` and ``error``, and random state cookies.

Properties, for every request: an answer below 500, in the API's JSON error form (or
the callback's redirect), without a stack trace; and no ERROR log line or traceback
from any of it. The run is derandomized (the same examples each time, no example
database, about 5 s); ``FUZZ_EXAMPLES=1000`` runs more with a random seed.
"""

from __future__ import annotations

import asyncio
import base64
import json
import logging
import os
from collections.abc import Callable
from typing import Any
from urllib.parse import quote

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from yarl import URL

from delightbridge.api.authjs import SECURE_SESSION_COOKIE_NAME, SESSION_COOKIE_NAME, encode_session
from delightbridge.api.views.connect import STATE_COOKIE
from tests.api.conftest import ADMIN, SECRET, Api, Reply, admin_cookie

FUZZ_EXAMPLES = int(os.environ.get("FUZZ_EXAMPLES", "0"))
EXAMPLES = FUZZ_EXAMPLES or 120

#: A JWE header of '[' x 2000: the json parser's RecursionError, once a 500.
_NESTED_HEADER = base64.urlsafe_b64encode(b"[" * 2000).decode().rstrip("=")
_b64 = st.binary(max_size=120).map(lambda b: base64.urlsafe_b64encode(b).decode().rstrip("="))
_cookie_text = st.text(st.characters(min_codepoint=0x21, max_codepoint=0x7E,
                                     exclude_characters=";,\\\""), max_size=200)
_nested = st.builds(
    lambda depth, opener: base64.urlsafe_b64encode(opener * depth).decode().rstrip("="),
    st.integers(500, 4000), st.sampled_from([b"[", b'{"a":', b'{"alg":"dir","x":[']))
_headers = st.one_of(
    _nested,
    st.dictionaries(st.sampled_from(["alg", "enc", "kid", "zip", "typ"]),
                    st.one_of(st.sampled_from(["dir", "A256CBC-HS512", "A128GCM", "none",
                                               "DEF"]), st.integers(), st.none()),
                    max_size=4).map(lambda h: base64.urlsafe_b64encode(
                        json.dumps(h).encode()).decode().rstrip("=")),
    _b64)
_jwe = st.builds(lambda header, parts: ".".join([header, *parts]),
                 _headers, st.lists(_b64, min_size=4, max_size=4))
_genuine = st.builds(
    lambda claims: encode_session(claims, SECRET),
    st.fixed_dictionaries({}, optional={
        "sub": st.one_of(st.just(ADMIN["google_id"]), st.text(max_size=20), st.integers()),
        "email": st.one_of(st.just(ADMIN["email"]), st.text(max_size=30), st.none()),
        "name": st.text(max_size=30)}))
_values = st.one_of(_jwe, _cookie_text, _genuine,
                    st.integers(30_000, 40_000).map(lambda n: "A" * n))
_names = st.sampled_from([SESSION_COOKIE_NAME, SECURE_SESSION_COOKIE_NAME])
_suffixes = st.one_of(st.just(""), st.integers(0, 12).map(lambda i: f".{i}"),
                      st.sampled_from([".", ".x", ".-1", ".01", ".\u0661"]))


def _chunked(name: str, value: str, chunks: int) -> str:
    size = max(1, len(value) // chunks)
    return "; ".join(f"{name}.{i}={value[i * size:(i + 1) * size]}" for i in range(chunks))


_cookies = st.one_of(
    st.builds(lambda name, suffix, value: f"{name}{suffix}={value}", _names, _suffixes,
              _values),
    st.builds(_chunked, _names, st.one_of(_jwe, _genuine), st.integers(2, 4)),
    st.lists(st.builds(lambda name, suffix, value: f"{name}{suffix}={value}", _names,
                       _suffixes, st.one_of(_cookie_text, _jwe)), max_size=5).map("; ".join),
)

_ids = st.one_of(
    st.text(max_size=40),
    st.text(st.characters(max_codepoint=0x20), max_size=5),
    st.sampled_from(["..", ".", "%", "service-123\x00", "\x00", "a/b", "\ud800"]),
)


def _segment(service_id: str) -> str:
    """The id as one percent-encoded path segment (a lone surrogate as its UTF-8 bytes,
    which is what an attacker can send)."""
    raw = service_id.encode("utf-8", "surrogatepass")
    return quote(raw, safe="") or "%20"


_ENDPOINTS = [("POST", "/api/services/{}/sync"), ("POST", "/api/services/{}/sync?mode=full"),
              ("GET", "/api/services/{}/sync/runs"),
              ("GET", "/api/services/{}/sync/runs/00000000-0000-0000-0000-000000000000"),
              ("GET", "/api/services/{}/connect"), ("DELETE", "/api/services/{}/connection")]

_callbacks = st.fixed_dictionaries({}, optional={
    "state": st.text(max_size=50), "code": st.text(max_size=50),
    "error": st.sampled_from(["access_denied", "server_error", ""]) | st.text(max_size=10),
    "scope": st.text(max_size=40)})
_state_cookies = st.one_of(st.none(), _cookie_text, _jwe, st.builds(
    lambda claims: encode_session(claims, SECRET, cookie_name=STATE_COOKIE),
    st.dictionaries(st.sampled_from(["state", "svc", "pkce", "redirect_uri"]),
                    st.one_of(st.text(max_size=20), st.integers()), max_size=4)))

_requests = st.one_of(
    st.tuples(st.just("cookie"), st.sampled_from(_ENDPOINTS), st.just("service-123"),
              _cookies),
    st.tuples(st.just("id"), st.sampled_from(_ENDPOINTS), _ids, st.just("admin")),
    st.tuples(st.just("callback"), _callbacks, _state_cookies, st.none()),
)


def _settings() -> Callable[[Any], Any]:
    common: dict[str, Any] = {
        "max_examples": EXAMPLES, "deadline": None, "database": None, "print_blob": True,
        "suppress_health_check": [HealthCheck.too_slow, HealthCheck.data_too_large],
    }
    return settings(**common) if FUZZ_EXAMPLES else settings(derandomize=True, **common)


async def _send(api: Api, request: tuple[Any, ...]) -> tuple[str, Reply]:
    kind = request[0]
    if kind == "callback":
        _, query, state, _ = request
        cookie = None if state is None else f"{STATE_COOKIE}={state}"
        path = "/api/services/oauth/callback"
        async with api.session.get(api.url(path), params=query, allow_redirects=False,
                                   headers={"Cookie": cookie} if cookie else {}) as r:
            return f"GET callback {query!r}", Reply(r.status, r.headers, await r.read())
    _, (method, template), service_id, cookie = request
    path = template.format(_segment(service_id))
    headers = {"Cookie": admin_cookie() if cookie == "admin" else cookie}
    url = URL(api.url("/")).with_path(path.split("?")[0], encoded=True)
    if "?" in path:
        url = url.with_query(path.split("?", 1)[1])
    async with api.session.request(method, url, headers=headers, allow_redirects=False) as r:
        return f"{method} {path[:120]!r} cookie={str(cookie)[:80]!r}", Reply(
            r.status, r.headers, await r.read())


async def test_hostile_cookies_ids_and_callbacks_are_never_a_500(
        api: Api, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO)
    await api.connected_service("service-123", "support@noji.example", messages=2, threads=1)
    loop = asyncio.get_running_loop()
    statuses: dict[int, int] = {}

    async def check(request: tuple[Any, ...]) -> None:
        what, reply = await _send(api, request)
        statuses[reply.status] = statuses.get(reply.status, 0) + 1
        assert reply.status < 500, f"{what}: {reply.status} {reply.body[:300]!r}"
        text = reply.body.decode("utf-8", "replace")
        assert "Traceback" not in text, what
        if request[0] == "callback" and reply.status != 431:  # 431: a state cookie > 32 KiB
            assert reply.status == 302, f"{what}: {reply.status} {text[:300]}"
        elif reply.status not in (200, 202, 204, 302):
            body = json.loads(reply.body)
            assert body["ok"] is False, what
            assert isinstance(body["error"], str), what

    @_settings()
    @given(st.lists(_requests, min_size=1, max_size=6))
    # What earlier versions answered 500 to (hardening #17), always tried first.
    @example([("cookie", _ENDPOINTS[0], "service-123",
               f"{SESSION_COOKIE_NAME}={_NESTED_HEADER}.a.b.c.d"),
              ("cookie", _ENDPOINTS[2], "service-123",
               f"{SESSION_COOKIE_NAME}.0={_NESTED_HEADER}.a; {SESSION_COOKIE_NAME}.1=.b.c.d"),
              ("id", _ENDPOINTS[0], "svc\x00x", "admin"),
              ("id", _ENDPOINTS[4], "\ud800", "admin"),
              ("callback", {"state": "s", "code": "c"}, f"{_NESTED_HEADER}.a.b.c.d", None)])
    def fuzz(batch: list[tuple[Any, ...]]) -> None:  # on hypothesis's thread
        for request in batch:
            asyncio.run_coroutine_threadsafe(check(request), loop).result(timeout=60)

    await asyncio.to_thread(fuzz)
    await api.drain()
    loud = [f"{r.name}: {r.getMessage()}" for r in caplog.records
            if r.levelno >= logging.ERROR or r.exc_info or r.exc_text]
    assert not loud, loud[:5]
    assert statuses.get(401), statuses  # cookies were refused...
    assert statuses.get(404), statuses  # ...and ids not found
    print(f"answers: {dict(sorted(statuses.items()))}")
