"""Session cookies resolved to identities against a real database: JWT and database sessions."""

from __future__ import annotations

import argparse
import logging
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
import pytest

from delightbridge.api.authjs import (
    SECURE_SESSION_COOKIE_NAME,
    SESSION_COOKIE_NAME,
    cookie_header_values,
    encode_session,
)
from delightbridge.api.sessions import (
    Forbidden,
    Identity,
    Unauthenticated,
    mint_admin_cookie,
    require_admin,
    resolve_identity,
)
from delightbridge.cli import admin_session as admin_session_cli
from delightbridge.core.errors import ConfigError
from delightbridge.core.settings import Settings
from delightbridge.db.migrate import migrate
from tests.dbutil import SESSIONS_TABLE

SECRET = "sessions-test-secret-0123456789"
SETTINGS = Settings(auth_secret=SECRET, admin_emails=frozenset({"ops@delightbridge.example"}))

ADMIN = {"id": "user-111", "google_id": "111", "email": "ada@delightbridge.example",
         "name": "Ada", "permission": "admin"}
EDITOR = {"id": "user-222", "google_id": "222", "email": "ed@delightbridge.example",
          "name": "Ed", "permission": "edit"}
OPS = {"id": "user-333", "google_id": "333", "email": "Ops@DelightBridge.example",
       "name": "Ops", "permission": "view"}


async def _insert_users(conn: asyncpg.Pool | asyncpg.Connection) -> None:
    for user in (ADMIN, EDITOR, OPS):
        await conn.execute(
            "INSERT INTO users (id, google_id, email, name, permission) "
            "VALUES ($1, $2, $3, $4, $5)",
            user["id"], user["google_id"], user["email"], user["name"], user["permission"],
        )


@pytest.fixture
async def db(pool: asyncpg.Pool) -> asyncpg.Pool:
    """A deployment with users that keeps Auth.js database sessions."""
    await pool.execute(SESSIONS_TABLE)
    await _insert_users(pool)
    return pool


def jwt_cookies(claims: dict[str, Any], *, secret: str = SECRET, secure: bool = False,
                **kw: Any) -> dict[str, str]:
    name = SECURE_SESSION_COOKIE_NAME if secure else SESSION_COOKIE_NAME
    return dict(cookie_header_values(encode_session(claims, secret, cookie_name=name, **kw), name))


def claims_of(user: dict[str, str]) -> dict[str, Any]:
    return {"sub": user["google_id"], "email": user["email"], "name": user["name"],
            "picture": None}


# --- JWT sessions --------------------------------------------------------------------


async def test_admin_by_users_permission(db: asyncpg.Pool) -> None:
    cookies = jwt_cookies(claims_of(ADMIN))
    expected = Identity(user_id="user-111", email=ADMIN["email"], name="Ada", is_admin=True,
                        via="jwt")
    assert await resolve_identity(db, cookies, SETTINGS) == expected
    assert await require_admin(db, cookies, SETTINGS) == expected


async def test_admin_by_admin_emails_is_case_insensitive(db: asyncpg.Pool) -> None:
    # A user row with 'view' permission, but the address is in ADMIN_EMAILS.
    identity = await require_admin(db, jwt_cookies(claims_of(OPS)), SETTINGS)
    assert identity.is_admin
    assert identity.user_id == "user-333"
    # No user row at all (an operator who never signed in to the web app).
    stranger = {"sub": "999", "email": "OPS@delightbridge.EXAMPLE"}
    identity = await require_admin(db, jwt_cookies(stranger), SETTINGS)
    assert identity == Identity(user_id=None, email="OPS@delightbridge.EXAMPLE", name=None,
                                is_admin=True, via="jwt")


async def test_non_admin_is_forbidden(db: asyncpg.Pool) -> None:
    cookies = jwt_cookies(claims_of(EDITOR))
    identity = await resolve_identity(db, cookies, SETTINGS)
    assert identity.is_admin is False
    assert identity.user_id == "user-222"
    with pytest.raises(Forbidden) as info:
        await require_admin(db, cookies, SETTINGS)
    assert info.value.code == "forbidden"
    assert info.value.identity == identity
    # Unknown user, address not in ADMIN_EMAILS: signed in, not an admin.
    with pytest.raises(Forbidden):
        await require_admin(db, jwt_cookies({"sub": "404", "email": "x@y.example"}), SETTINGS)


async def test_admin_permission_follows_sub_not_email(db: asyncpg.Pool) -> None:
    # The token claims the admin's address but the editor's sub: not an admin.
    forged_email = {**claims_of(EDITOR), "email": ADMIN["email"]}
    with pytest.raises(Forbidden):
        await require_admin(db, jwt_cookies(forged_email), SETTINGS)


async def test_identity_falls_back_to_the_user_row(db: asyncpg.Pool) -> None:
    identity = await resolve_identity(db, jwt_cookies({"sub": "111"}), SETTINGS)
    assert (identity.email, identity.name, identity.is_admin) == (ADMIN["email"], "Ada", True)
    with pytest.raises(Unauthenticated) as info:
        await resolve_identity(db, jwt_cookies({"sub": "nobody"}), SETTINGS)
    assert info.value.reason == "unknown_user"


async def test_secure_and_chunked_cookies(db: asyncpg.Pool) -> None:
    big = {**claims_of(ADMIN), "padding": "x" * 9000}
    cookies = jwt_cookies(big, secure=True)
    assert len(cookies) >= 3
    assert all(name.startswith("__Secure-") for name in cookies)
    identity = await require_admin(db, {"unrelated": "1", **cookies}, SETTINGS)
    assert identity.user_id == "user-111"
    # Both names present: __Secure- wins (here the plain one is the editor's).
    both = {**jwt_cookies(claims_of(EDITOR)), **jwt_cookies(claims_of(ADMIN), secure=True)}
    assert (await resolve_identity(db, both, SETTINGS)).user_id == "user-111"


@pytest.mark.parametrize(
    ("cookies", "reason"),
    [
        ({}, "missing"),
        ({"authjs.session-token": ""}, "missing"),
        ({"next-auth.session-token": "x"}, "missing"),
        ({"authjs.session-token": "garbage.with.four.dots.here"}, "malformed"),
        (jwt_cookies(claims_of(ADMIN), secret="some-other-secret"), "invalid"),
        (jwt_cookies(claims_of(ADMIN), now=1_000_000_000, max_age=60), "expired"),
        # Minted for the __Secure- name, sent under the plain one.
        ({SESSION_COOKIE_NAME: next(iter(jwt_cookies(claims_of(ADMIN), secure=True).values()))},
         "invalid"),
    ],
    ids=["none", "empty", "other-cookie", "malformed", "wrong-secret", "expired",
         "wrong-name"],
)
async def test_invalid_sessions_are_unauthenticated(
    db: asyncpg.Pool, cookies: dict[str, str], reason: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    with pytest.raises(Unauthenticated) as info:
        await require_admin(db, cookies, SETTINGS)
    assert info.value.reason == reason
    assert info.value.code == "unauthenticated"
    for value in cookies.values():
        if value:
            assert value not in caplog.text
            assert value not in str(info.value)
    assert SECRET not in caplog.text


async def test_tampered_jwt_is_unauthenticated(db: asyncpg.Pool) -> None:
    (name, token), = jwt_cookies(claims_of(ADMIN)).items()
    parts = token.split(".")
    parts[3] = ("B" if parts[3][0] == "A" else "A") + parts[3][1:]
    with pytest.raises(Unauthenticated) as info:
        await resolve_identity(db, {name: ".".join(parts)}, SETTINGS)
    assert info.value.reason == "invalid"
    truncated = {name: token[:-20]}
    with pytest.raises(Unauthenticated):
        await resolve_identity(db, truncated, SETTINGS)


async def test_jwt_without_auth_secret_is_refused(
    db: asyncpg.Pool, caplog: pytest.LogCaptureFixture
) -> None:
    with pytest.raises(Unauthenticated) as info:
        await resolve_identity(db, jwt_cookies(claims_of(ADMIN)), Settings())
    assert info.value.reason == "no_secret"
    assert "AUTH_SECRET" in caplog.text


# --- database sessions ---------------------------------------------------------------


async def _session(conn: asyncpg.Pool | asyncpg.Connection, token: str, user_id: str,
                   expires: datetime) -> None:
    await conn.execute(
        "INSERT INTO sessions (session_token, user_id, expires) VALUES ($1, $2, $3)",
        token, user_id, expires,
    )


def _in(seconds: int) -> datetime:
    return datetime.now(UTC) + timedelta(seconds=seconds)


async def test_database_session_of_an_admin(db: asyncpg.Pool) -> None:
    token = "0b1f8c3e-64ad-4c8b-9a0e-0d1d5f6a7b8c"
    await _session(db, token, "user-111", _in(3600))
    cookies = {SESSION_COOKIE_NAME: token}
    expected = Identity(user_id="user-111", email=ADMIN["email"], name="Ada", is_admin=True,
                        via="database")
    assert await require_admin(db, cookies, SETTINGS) == expected
    # The __Secure- name works the same way (no key derivation involved).
    assert await require_admin(db, {SECURE_SESSION_COOKIE_NAME: token}, SETTINGS) == expected
    # Database sessions need no AUTH_SECRET.
    assert (await resolve_identity(db, cookies, Settings())).user_id == "user-111"


async def test_database_session_admin_emails_and_non_admin(db: asyncpg.Pool) -> None:
    await _session(db, "ops-token", "user-333", _in(3600))
    await _session(db, "editor-token", "user-222", _in(3600))
    assert (await require_admin(db, {SESSION_COOKIE_NAME: "ops-token"}, SETTINGS)).is_admin
    with pytest.raises(Forbidden):
        await require_admin(db, {SESSION_COOKIE_NAME: "editor-token"}, SETTINGS)


@pytest.mark.parametrize(
    ("token", "reason"),
    [
        ("expired-token", "expired"),
        ("unknown-token", "unknown_session"),
        ("x" * 5000, "unknown_session"),
        ("tab\there", "unknown_session"),
        ("'; DROP TABLE users; --", "unknown_session"),
    ],
)
async def test_invalid_database_sessions_are_unauthenticated(
    db: asyncpg.Pool, token: str, reason: str
) -> None:
    await _session(db, "expired-token", "user-111", _in(-1))
    with pytest.raises(Unauthenticated) as info:
        await resolve_identity(db, {SESSION_COOKIE_NAME: token}, SETTINGS)
    assert info.value.reason == reason
    assert token not in str(info.value)
    assert await db.fetchval("SELECT count(*) FROM users") == 3


async def test_without_a_sessions_table_a_database_session_is_unknown(
    pool: asyncpg.Pool,
) -> None:
    """The service creates no sessions table; a deployment without one has no such session."""
    await _insert_users(pool)
    assert await pool.fetchval("SELECT to_regclass('public.sessions')") is None
    with pytest.raises(Unauthenticated) as info:
        await resolve_identity(pool, {SESSION_COOKIE_NAME: "some-token"}, SETTINGS)
    assert info.value.reason == "unknown_session"


async def test_deleting_a_user_deletes_its_sessions(db: asyncpg.Pool) -> None:
    await _session(db, "t", "user-222", _in(3600))
    await db.execute("DELETE FROM users WHERE id = 'user-222'")
    assert await db.fetchval("SELECT count(*) FROM sessions") == 0


# --- an existing adapter table -------------------------------------------------------


@pytest.fixture
async def adapter_pool(reference_database: str, request: pytest.FixtureRequest
                       ) -> AsyncIterator[asyncpg.Pool]:
    """A DelightBridge database whose web app already keeps Auth.js sessions its own way."""
    layout: str = request.param
    conn = await asyncpg.connect(reference_database)
    try:
        await conn.execute(layout)
        before = await conn.fetch(
            "SELECT column_name, data_type FROM information_schema.columns "
            "WHERE table_name = 'sessions' ORDER BY ordinal_position"
        )
        await migrate(conn)
        after = await conn.fetch(
            "SELECT column_name, data_type FROM information_schema.columns "
            "WHERE table_name = 'sessions' ORDER BY ordinal_position"
        )
        assert after == before, "migrations must leave an existing sessions table alone"
        await conn.execute("DELETE FROM users")
        await _insert_users(conn)
    finally:
        await conn.close()
    # A session time zone far from UTC, so a naive timestamp misread as local time shows.
    created = await asyncpg.create_pool(
        reference_database, min_size=1, max_size=2,
        server_settings={"TimeZone": "America/Los_Angeles"},
    )
    assert created is not None
    yield created
    await created.close()


# @auth/pg-adapter's schema.sql, with "userId" holding DelightBridge's text user ids.
PG_ADAPTER = """
CREATE TABLE sessions (
  id SERIAL,
  "userId" TEXT NOT NULL REFERENCES users ON DELETE CASCADE,
  expires TIMESTAMPTZ NOT NULL,
  "sessionToken" VARCHAR(255) UNIQUE NOT NULL,
  PRIMARY KEY (id)
)"""
# Prisma/Drizzle-style: uuid token, timestamp without time zone holding UTC.
UUID_NAIVE = """
CREATE TABLE sessions (
  "sessionToken" uuid PRIMARY KEY,
  "userId" text NOT NULL,
  expires timestamp(3) NOT NULL
)"""


@pytest.mark.parametrize("adapter_pool", [PG_ADAPTER, UUID_NAIVE], indirect=True,
                         ids=["pg-adapter", "uuid-naive-timestamp"])
async def test_existing_adapter_sessions_table_is_read(adapter_pool: asyncpg.Pool) -> None:
    live, expired = "2c8a2b5e-5a51-4a0b-8f0e-6f3b8c1f9d11", "7d1e1c55-0c1a-4f4e-9a57-1b2c3d4e5f60"
    naive = await adapter_pool.fetchval(
        "SELECT data_type = 'timestamp without time zone' FROM information_schema.columns "
        "WHERE table_name = 'sessions' AND column_name = 'expires'"
    )
    for token, seconds in ((live, 3600), (expired, -60)):
        when = _in(seconds)
        await adapter_pool.execute(
            'INSERT INTO sessions ("sessionToken", "userId", expires) VALUES ($1, $2, $3)',
            uuid.UUID(token) if naive else token, "user-111",
            when.replace(tzinfo=None) if naive else when,
        )
    identity = await require_admin(adapter_pool, {SESSION_COOKIE_NAME: live}, SETTINGS)
    assert identity == Identity(user_id="user-111", email=ADMIN["email"], name="Ada",
                                is_admin=True, via="database")
    for token, reason in ((expired, "expired"), ("not-a-uuid", "unknown_session")):
        with pytest.raises(Unauthenticated) as info:
            await resolve_identity(adapter_pool, {SESSION_COOKIE_NAME: token}, SETTINGS)
        assert info.value.reason == reason


@pytest.mark.parametrize(
    "adapter_pool",
    [
        # The adapter's own integer user ids cannot name a DelightBridge user.
        PG_ADAPTER.replace('"userId" TEXT NOT NULL REFERENCES users ON DELETE CASCADE',
                           '"userId" INTEGER NOT NULL'),
        # Not an Auth.js table at all.
        "CREATE TABLE sessions (sid text PRIMARY KEY, data jsonb)",
    ],
    indirect=True, ids=["integer-user-ids", "unrelated-table"],
)
async def test_unusable_sessions_tables_refuse_without_errors(adapter_pool: asyncpg.Pool) -> None:
    if await adapter_pool.fetchval(
        "SELECT count(*) FROM information_schema.columns "
        "WHERE table_name = 'sessions' AND column_name = 'userId'"
    ):
        await adapter_pool.execute(
            'INSERT INTO sessions ("userId", expires, "sessionToken") VALUES (1, $1, $2)',
            _in(3600), "tok",
        )
    with pytest.raises(Unauthenticated) as info:
        await resolve_identity(adapter_pool, {SESSION_COOKIE_NAME: "tok"}, SETTINGS)
    assert info.value.reason in {"unknown_user", "unknown_session"}


# --- minting admin cookies -----------------------------------------------------------


def _cookies(header: str) -> dict[str, str]:
    return dict(part.split("=", 1) for part in header.split("; "))


async def test_minted_admin_cookie_is_accepted(db: asyncpg.Pool) -> None:
    header = mint_admin_cookie(SETTINGS, "ops@delightbridge.example")
    assert header.startswith("authjs.session-token=")
    identity = await require_admin(db, _cookies(header), SETTINGS)
    assert identity.email == "ops@delightbridge.example"
    assert identity.via == "jwt"
    secure = mint_admin_cookie(SETTINGS, "ed@delightbridge.example", sub="111", name="Ada",
                               secure=True)
    assert secure.startswith("__Secure-authjs.session-token=")
    assert (await require_admin(db, _cookies(secure), SETTINGS)).user_id == "user-111"


def test_minting_needs_auth_secret_and_an_address() -> None:
    with pytest.raises(ConfigError, match="AUTH_SECRET"):
        mint_admin_cookie(Settings(), "ops@delightbridge.example")
    with pytest.raises(ValueError):
        mint_admin_cookie(SETTINGS, "not an address")


def _args(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    admin_session_cli.configure(parser)
    return parser.parse_args(argv)


async def test_cli_prints_a_cookie_for_admin_emails_without_a_database(
    db: asyncpg.Pool, capsys: pytest.CaptureFixture[str]
) -> None:
    # No DATABASE_URL: an ADMIN_EMAILS address needs no database at all.
    assert await admin_session_cli.run(SETTINGS, _args("--email", "OPS@delightbridge.example")
                                       ) == 0
    out = capsys.readouterr()
    assert out.out.count("\n") == 1
    assert out.out.startswith("authjs.session-token=")
    assert "valid 12 h" in out.err
    assert (await require_admin(db, _cookies(out.out.strip()), SETTINGS)).is_admin


async def test_cli_looks_up_admin_users(
    db: asyncpg.Pool, db_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    settings = Settings(auth_secret=SECRET, database_url=db_url)
    args = _args("--email", "ADA@delightbridge.example", "--secure", "--max-age", "600")
    assert await admin_session_cli.run(settings, args) == 0
    header = capsys.readouterr().out.strip()
    assert header.startswith("__Secure-authjs.session-token=")
    identity = await require_admin(db, _cookies(header), settings)
    assert identity == Identity(user_id="user-111", email=ADMIN["email"], name="Ada",
                                is_admin=True, via="jwt")
    with pytest.raises(Forbidden, match="not an admin"):
        await admin_session_cli.run(settings, _args("--email", EDITOR["email"]))
    with pytest.raises(Forbidden, match="not an admin"):
        await admin_session_cli.run(settings, _args("--email", "nobody@delightbridge.example"))


async def test_cli_refuses_without_auth_secret() -> None:
    with pytest.raises(ConfigError, match="AUTH_SECRET: is not set"):
        await admin_session_cli.run(Settings(), _args("--email", "ops@delightbridge.example"))


def test_cli_rejects_bad_max_age() -> None:
    with pytest.raises(SystemExit):
        _args("--email", "a@b.example", "--max-age", "0")
