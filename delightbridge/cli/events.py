"""``delightbridge events``: list, replay and deliver new-mail events.

* ``events list [--service S] [--pending] [--limit N]``: the newest events first, one
  line each (id, service, kind, state, attempts, last error);
* ``events replay ID... | --service S --since TIME``: send them again, in their original
  order (the receiver drops what it has seen by the event's id);
* ``events deliver [--once]``: run the dispatcher here (the consumer runs it already);
  ``--once`` sends what is due and exits, 1 if something is still undelivered.
"""

from __future__ import annotations

import argparse
import asyncio
import signal
from datetime import UTC, datetime

import aiohttp
import asyncpg

from delightbridge.core.errors import ConfigError
from delightbridge.core.settings import Settings
from delightbridge.db import events as events_db
from delightbridge.db.pool import open_pool
from delightbridge.sync.outbox import Dispatcher, OutboxConfig


def _time(raw: str) -> datetime:
    try:
        moment = datetime.fromisoformat(raw)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"not an ISO 8601 time: {raw!r} (e.g. 2026-12-01T09:00Z)") from None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def _event_id(raw: str) -> int:
    if not raw.isdigit() or len(raw) > 18:
        raise argparse.ArgumentTypeError(f"not an event id: {raw!r}")
    return int(raw)


def configure(parser: argparse.ArgumentParser) -> None:
    actions = parser.add_subparsers(dest="action", required=True, metavar="ACTION")
    listing = actions.add_parser("list", help="show recorded events, newest first")
    listing.add_argument("--service", help="only this service's events")
    listing.add_argument("--pending", action="store_true", help="only undelivered events")
    listing.add_argument("--limit", type=int, default=50, help="how many (default 50)")
    replay = actions.add_parser("replay", help="deliver events again, in order")
    replay.add_argument("ids", nargs="*", type=_event_id, metavar="ID")
    replay.add_argument("--service", help="every event of this service since --since")
    replay.add_argument("--since", type=_time, help="ISO 8601 time, with --service")
    deliver = actions.add_parser("deliver", help="deliver due events (until SIGTERM)")
    deliver.add_argument("--once", action="store_true",
                         help="deliver what is due now and exit")


async def run(settings: Settings, args: argparse.Namespace) -> int:
    if args.action == "replay" and not args.ids and not (args.service and args.since):
        raise ConfigError("events replay", "give event ids, or --service and --since")
    if args.action == "list" and not 1 <= args.limit <= 10_000:
        raise ConfigError("events list", "--limit must be between 1 and 10000")
    async with open_pool(settings, max_size=6) as pool:
        if args.action == "list":
            rows = await events_db.recent(pool, service_id=args.service,
                                          pending_only=args.pending, limit=args.limit)
            for r in rows:
                state = ("delivered " + r.delivered_at.isoformat(timespec="seconds")
                         if r.delivered_at else "pending")
                print(f"{r.id:>8}  {r.service_id:<20} {r.kind:<22} {state:<35} "
                      f"attempts={r.attempts} thread={r.payload.get('threadId', '-')}"
                      + (f" error={r.last_error}" if r.last_error else ""))
            if not rows:
                print("no events")
            return 0
        if args.action == "replay":
            queued = await events_db.replay(pool, ids=args.ids or [], service_id=args.service,
                                            since=args.since)
            print(f"{queued} event(s) queued for delivery again")
            return 0 if queued else 1
        return await _deliver(settings, pool, once=args.once)


async def _deliver(settings: Settings, pool: asyncpg.Pool, *, once: bool) -> int:
    config = OutboxConfig.from_settings(settings)
    if config is None:
        raise ConfigError("EVENTS_URL", "is required to deliver events")
    async with aiohttp.ClientSession() as session:
        dispatcher = Dispatcher(pool, config, session)
        if once:
            made = await dispatcher.deliver_due()
            backlog = await events_db.backlog(pool)
            print(f"attempts {made}; still undelivered {backlog.pending}")
            return 1 if backlog.pending else 0
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        await dispatcher.run(stop)
        return 0
