"""``delightbridge verify SERVICE_ID | --all [--deep] [--repair]``.

Prints one summary line per service (and the first drifted ids). Exit code 0 when
every mirror equals its mailbox, 1 on drift. ``--repair`` runs the smallest sync
that fixes it (the drifted messages read again, or a full sync when the history is
gone), verifies again, and exits 0 only if the mirror is then equal.
"""

from __future__ import annotations

import argparse

from delightbridge.core.settings import Settings
from delightbridge.db import watches
from delightbridge.db.pool import open_pool
from delightbridge.sync.engine import EngineConfig, SyncEngine
from delightbridge.sync.runs import Mode
from delightbridge.sync.verify import Drift, verify

SHOW = 10


def configure(parser: argparse.ArgumentParser) -> None:
    target = parser.add_mutually_exclusive_group(required=True)
    target.add_argument("service_id", nargs="?", help="the service to verify")
    target.add_argument("--all", action="store_true", help="every connected service")
    parser.add_argument("--deep", action="store_true",
                        help="also fetch every message and compare content hashes")
    parser.add_argument("--repair", action="store_true",
                        help="run the smallest sync that fixes any drift found")


def _report(drift: Drift) -> None:
    print(drift.summary())
    for name in ("missing", "extra", "labels", "threads", "content"):
        ids: list[str] = getattr(drift, name)
        if ids:
            more = f" (+{len(ids) - SHOW} more)" if len(ids) > SHOW else ""
            print(f"  {name}: {', '.join(ids[:SHOW])}{more}")


async def run(settings: Settings, args: argparse.Namespace) -> int:
    drifted = 0
    async with open_pool(settings) as pool, SyncEngine.open(
        pool, EngineConfig.from_settings(settings)
    ) as engine:
        services = ([s.id for s in await watches.connected(pool)] if args.all
                    else [args.service_id])
        for service_id in services:
            drift = await verify(engine, service_id, deep=args.deep)
            _report(drift)
            if drift.equal:
                continue
            if args.repair:
                mode: Mode = "full" if drift.history_expired else "incremental"
                result = await engine.sync(service_id, mode=mode, trigger="repair", wait=60,
                                           repair=drift.drifted)
                article = "an" if result.mode == "incremental" else "a"
                print(f"  repaired by {article} {result.mode} sync (run {result.run_id})")
                drift = await verify(engine, service_id, deep=args.deep)
                _report(drift)
            drifted += 0 if drift.equal else 1
    return 1 if drifted else 0
