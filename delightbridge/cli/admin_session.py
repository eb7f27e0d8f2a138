"""``delightbridge admin-session --email E``: an admin session cookie for operators and curl.

Prints one line, ``authjs.session-token=<JWE>`` (chunks joined with ``; `` when the
token is long), to pass as ``curl --cookie "$(delightbridge admin-session --email E)"``.
The cookie is a JWT session exactly as the web app's Auth.js would issue it, so the
web app accepts it too. It is minted only for an admin: an address in
``ADMIN_EMAILS`` (no database needed), or a user whose ``permission`` is ``'admin'``
(its ``google_id`` becomes the token's ``sub``). Without ``AUTH_SECRET`` it refuses
with a configuration error.

Wire it into ``delightbridge/cli/main.py`` as
``Command("admin-session", HELP, run, configure)``.
"""

from __future__ import annotations

import argparse
import sys

from delightbridge.api.sessions import ADMIN_COOKIE_MAX_AGE, Forbidden, mint_admin_cookie
from delightbridge.core.errors import ConfigError
from delightbridge.core.settings import Settings
from delightbridge.db import users
from delightbridge.db.pool import open_pool

HELP = "print an Auth.js admin session cookie (for curl --cookie)"


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--email", required=True, help="the admin's email address")
    parser.add_argument(
        "--name", default=None, help="display name in the token (default: the user's)"
    )
    parser.add_argument(
        "--secure",
        action="store_true",
        help="use the __Secure-authjs.session-token name (web app served over https)",
    )
    parser.add_argument(
        "--max-age",
        type=_positive_seconds,
        default=ADMIN_COOKIE_MAX_AGE,
        metavar="SECONDS",
        help=f"lifetime of the session (default {ADMIN_COOKIE_MAX_AGE})",
    )


def _positive_seconds(raw: str) -> int:
    try:
        value = int(raw)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number of seconds: {raw!r}") from None
    if value <= 0:
        raise argparse.ArgumentTypeError("must be a positive number of seconds")
    return value


async def run(settings: Settings, args: argparse.Namespace) -> int:
    if not settings.auth_secret:
        raise ConfigError(
            "AUTH_SECRET",
            "is not set: admin-session needs the web app's Auth.js secret to mint a cookie",
        )
    email: str = args.email.strip()
    name: str | None = args.name
    sub: str | None = None
    if email.lower() not in settings.admin_emails:
        async with open_pool(settings, max_size=1) as pool:
            user = await users.by_email(pool, email=email)
        if user is None or not user.is_admin:
            raise Forbidden(
                message=(
                    f"{email} is not an admin: add it to ADMIN_EMAILS, or set "
                    "users.permission = 'admin' for it"
                )
            )
        email, sub = user.email, user.google_id
        name = name or user.name
    try:
        cookie = mint_admin_cookie(
            settings, email, sub=sub, name=name, max_age=args.max_age, secure=args.secure
        )
    except ValueError as exc:
        print(f"delightbridge: {exc}: {email!r}", file=sys.stderr)
        return 2
    print(cookie)
    hours = args.max_age / 3600
    print(f"(admin session for {email}, valid {hours:g} h)", file=sys.stderr)
    return 0
