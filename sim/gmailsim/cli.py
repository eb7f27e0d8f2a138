"""``delightbridge simulator``: the simulator as a standalone server.

Seeds a couple of mailboxes, prints the base URL (``GMAIL_API_ENDPOINT``), the
token URI, the OAuth client id/secret and each mailbox's refresh token, then runs
until SIGINT/SIGTERM. ``python -m gmailsim`` runs the same without the project's
settings.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import signal
import sys
from typing import Any, TextIO

from gmailsim.quota import DEFAULT_PROFILE, PROFILES
from gmailsim.server import serve
from gmailsim.simulator import Simulator

DEFAULT_MAILBOXES = ("support@delightbridge.test", "billing@delightbridge.test")


def configure(parser: argparse.ArgumentParser) -> None:
    """Add the simulator's options to ``parser``."""
    parser.add_argument("--host", default="127.0.0.1", help="interface (default 127.0.0.1)")
    parser.add_argument("--port", type=int, default=8089, help="port (0 picks a free one)")
    parser.add_argument("--prefix", default="", help="path prefix of the base URL")
    parser.add_argument("--mailbox", action="append", dest="mailboxes", metavar="ADDRESS",
                        help="a mailbox to create (repeatable; default two demo mailboxes)")
    parser.add_argument("--messages", type=int, default=40, help="messages seeded per mailbox")
    parser.add_argument("--threads", type=int, default=12, help="threads seeded per mailbox")
    parser.add_argument("--seed", type=int, default=0, help="seed of ids and content")
    parser.add_argument("--pubsub-emulator-host", default=None, metavar="HOST:PORT",
                        help="publish notifications to this Pub/Sub emulator")
    parser.add_argument("--push-endpoint", default=None, metavar="URL",
                        help="POST notifications as Pub/Sub push envelopes to this URL")
    parser.add_argument("--client-id", default=None, help="OAuth client id to accept")
    parser.add_argument("--client-secret", default=None, help="OAuth client secret to accept")
    parser.add_argument("--quota-profile", choices=sorted(PROFILES), default=DEFAULT_PROFILE,
                        help=f"Gmail quota model to enforce (default {DEFAULT_PROFILE})")


async def run(settings: Any, args: argparse.Namespace, *, out: TextIO | None = None,
              stop: asyncio.Event | None = None) -> int:
    """Serve until SIGINT/SIGTERM (or ``stop`` is set).

    ``settings`` (``delightbridge.core.settings.Settings`` or None) supplies defaults the
    options leave open: the OAuth client (``GOOGLE_CLIENT_ID``/``_SECRET``) and the
    Pub/Sub emulator (``PUBSUB_EMULATOR_HOST``), so the demo's configuration and the
    simulator agree.
    """
    out = out or sys.stdout
    client_id = args.client_id or getattr(settings, "google_client_id", None)
    client_secret = args.client_secret or getattr(settings, "google_client_secret", None)
    pubsub_host = args.pubsub_emulator_host or getattr(settings, "pubsub_emulator_host", None)
    sim = Simulator(seed=args.seed, client_id=client_id, client_secret=client_secret,
                    quota_profile=getattr(args, "quota_profile", None) or DEFAULT_PROFILE)
    mailboxes = []
    for number, address in enumerate(args.mailboxes or DEFAULT_MAILBOXES):
        mailbox = sim.create_mailbox(address)
        if args.messages > 0:
            sim.seed(address, messages=args.messages,
                     threads=max(1, min(args.threads, args.messages)), seed=args.seed + number)
        mailboxes.append(mailbox)
    stop = stop or asyncio.Event()
    loop = asyncio.get_running_loop()
    installed = []
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
            loop.add_signal_handler(sig, stop.set)
            installed.append(sig)
    try:
        async with serve(sim, host=args.host, port=args.port, prefix=args.prefix,
                         pubsub_emulator_host=pubsub_host,
                         push_endpoint=args.push_endpoint) as running:
            lines = [
                f"GMAIL_API_ENDPOINT={running.base_url}",
                f"GOOGLE_OAUTH_TOKEN_URI={running.token_uri}",
                f"GOOGLE_CLIENT_ID={sim.client_id}",
                f"GOOGLE_CLIENT_SECRET={sim.client_secret}",
                f"# consent page: {running.auth_uri}",
                f"# control API:  {running.control_url}",
            ]
            for mailbox in mailboxes:
                lines.append(f"# mailbox {mailbox.address} refresh_token={mailbox.refresh_token}")
            print("\n".join(lines), file=out, flush=True)
            await stop.wait()
    finally:
        for sig in installed:
            loop.remove_signal_handler(sig)
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="gmailsim", description=__doc__)
    configure(parser)
    args = parser.parse_args(argv)
    try:
        return asyncio.run(run(None, args))
    except KeyboardInterrupt:
        return 130
