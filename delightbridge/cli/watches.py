"""``delightbridge renew-watches``: one renewal pass (for cron), or a daily loop.

Exit code 0 when every due watch was renewed, 1 when any could not be (each failure
is also recorded on its service and logged).
"""

from __future__ import annotations

import argparse
import asyncio
import signal

from delightbridge.core.errors import ConfigError
from delightbridge.core.settings import Settings
from delightbridge.db.pool import open_pool
from delightbridge.sync.engine import EngineConfig, SyncEngine
from delightbridge.sync.watch import WatchSettings, renew_all, renewal_schedule

LOOP_INTERVAL = 3600.0  # check hourly; each service renews about daily


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--force", action="store_true",
                        help="renew every connected service now, due or not")
    parser.add_argument("--loop", action="store_true",
                        help="keep running, checking hourly, until SIGTERM")


async def run(settings: Settings, args: argparse.Namespace) -> int:
    if not settings.pubsub_topic:
        raise ConfigError("PUBSUB_TOPIC", "is required to start Gmail watches")
    config = WatchSettings.from_settings(settings)
    async with open_pool(settings) as pool, SyncEngine.open(
        pool, EngineConfig.from_settings(settings)
    ) as engine:
        if not args.loop:
            report = await renew_all(engine, config, force=args.force)
            pending = report.stops_pending
            print(f"renewed {len(report.renewed)}, not due {len(report.skipped)}, "
                  f"failed {len(report.failed)}; watches stopped "
                  f"{len(report.stops) - len(pending)}, stops to retry {len(pending)}")
            for service_id, error in sorted(report.failed.items()):
                print(f"  failed {service_id}: {error}")
            for service_id, error in sorted(pending.items()):
                print(f"  stop failed {service_id}: {error}")
            return 1 if report.failed or pending else 0
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        await renewal_schedule(engine, config, stop, interval=LOOP_INTERVAL)
        return 0
