"""``delightbridge consume``: the long-running Pub/Sub consumer.

``configure(parser)`` and ``run(settings, args)`` are what ``delightbridge/cli/main.py``
registers. Command-line
options override the environment (``CONSUMER_MODE``, ``CONSUMER_HTTP_PORT``, ...).
Exit code 0 after SIGTERM/SIGINT, 1 when a side task crashed or start-up failed.
"""

from __future__ import annotations

import argparse

from delightbridge.consumer.config import MODES, ConsumerConfig
from delightbridge.consumer.worker import Worker
from delightbridge.core.settings import Settings


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--mode", choices=MODES, default=None,
                        help="pull from PUBSUB_SUBSCRIPTION (default) or serve POST /pubsub/push")
    parser.add_argument("--host", default=None,
                        help="address of the HTTP ports (default 0.0.0.0)")
    parser.add_argument("--port", type=int, default=None,
                        help="internal port of /healthz, /readyz, /metrics (default 8081)")
    parser.add_argument("--push-port", type=int, default=None,
                        help="push mode: public port of POST /pubsub/push (default 8080)")
    parser.add_argument("--concurrency", type=int, default=None,
                        help="syncs at once across mailboxes (default 4)")
    parser.add_argument("--shutdown-timeout", type=float, default=None, metavar="SECONDS",
                        help="after SIGTERM, how long running syncs may take (default 25)")


def config_from(settings: Settings, args: argparse.Namespace) -> ConsumerConfig:
    overrides = {
        name: value for name, value in (
            ("mode", args.mode), ("http_host", args.host), ("http_port", args.port),
            ("push_port", args.push_port),
            ("concurrency", args.concurrency), ("shutdown_timeout", args.shutdown_timeout),
        ) if value is not None
    }
    return ConsumerConfig.from_settings(settings, **overrides)


async def run(settings: Settings, args: argparse.Namespace) -> int:
    worker = Worker(settings, config_from(settings, args))
    with worker.signal_handlers():
        return await worker.run()
