"""``delightbridge demo``: what ``python3 dev.py run`` runs.

With no Google configuration it starts everything locally in one process: the
embedded PostgreSQL, the Gmail simulator with two seeded support mailboxes and new
mail every few seconds, Google's Pub/Sub emulator when java and its jar are here,
the API, the consumer and the watch renewal schedule. It prints an admin cookie and
the seed's curl command, shows the initial full syncs, then a line per synced
notification, and stops cleanly on Ctrl-C. Without the emulator (no java), the
consumer runs in push mode: the simulator POSTs Pub/Sub push envelopes to it,
signed with OIDC tokens that the consumer verifies against the simulator's
certificates, as it verifies Google's in production.

With real settings (``GOOGLE_CLIENT_ID`` and a ``DATABASE_URL``) the same command
runs the real service: the API, the consumer and the renewal schedule together.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import logging
import os
import random
import secrets
import signal
import sys
from collections.abc import Awaitable
from datetime import UTC, datetime
from pathlib import Path

import asyncpg
from gmailsim import Simulator, oidc
from gmailsim.push import PushConfig
from gmailsim.server import RunningSimulator, serve

from delightbridge.api.server import Ports, serving
from delightbridge.api.sessions import mint_admin_cookie
from delightbridge.cli.sync import ProgressLine
from delightbridge.consumer.config import ConsumerConfig
from delightbridge.consumer.handler import Delivery, Outcome
from delightbridge.consumer.worker import Worker
from delightbridge.core import demo_dir, logs
from delightbridge.core.httpserver import check_free
from delightbridge.core.settings import Settings
from delightbridge.db import demo as demo_db
from delightbridge.db.pool import database_url, open_pool
from delightbridge.local import pubsub_emulator
from delightbridge.sync import imports
from delightbridge.sync.engine import EngineConfig, SyncEngine
from delightbridge.sync.watch import WatchSettings, renew_all, renewal_schedule

log = logging.getLogger("demo")

MAILBOXES = (  # (service id, name, address, messages, threads)
    ("demo-noji", "Noji Support", "support@noji.example", 300, 100),
    ("demo-anki", "AnkiPro Help", "help@ankipro.example", 150, 50),
)
ADMIN = "admin@delightbridge.example"
#: A mailbox's quota in the demo, where the simulator enforces none.
DEMO_USER_UNITS = 1_000_000_000
#: The push tokens' audience when the simulator pushes to the consumer (no emulator).
PUSH_AUDIENCE = "https://delightbridge-demo.local/pubsub/push"


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--port", type=int, default=8000, help="API port (default 8000)")
    parser.add_argument("--mail-every", type=float, default=4.0, metavar="SECONDS",
                        help="new mail arrives this often in the demo (default 4)")
    parser.add_argument("--seed", type=int, default=1, help="seed of the demo mailboxes")


def _say(text: str) -> None:
    print(text, flush=True)


def _stop_event() -> asyncio.Event:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    return stop


async def run(settings: Settings, args: argparse.Namespace) -> int:
    if settings.google_client_id and settings.database_url:
        return await _run_service(settings, args)
    return await _run_local(settings, args)


# --- the real service -----------------------------------------------------------------


async def _run_service(settings: Settings, args: argparse.Namespace) -> int:
    stop = _stop_event()
    worker = Worker(settings, ConsumerConfig.from_settings(settings))
    async with serving(settings, "127.0.0.1", args.port, "127.0.0.1", 0) as ports:
        _say(f"API on http://127.0.0.1:{ports.api} (operations: http://127.0.0.1:"
             f"{ports.ops}/metrics); consumer on {settings.subscription_path}; Ctrl-C stops")
        consumer = asyncio.create_task(worker.run(), name="consumer")
        renewal = asyncio.create_task(_renewal_loop(settings, stop), name="renewal")
        await _until(stop, consumer)
        worker.stop.set()
        renewal.cancel()
        code = await consumer
        with contextlib.suppress(asyncio.CancelledError):
            await renewal
    return code


# --- the local demo ------------------------------------------------------------------


async def _run_local(settings: Settings, args: argparse.Namespace) -> int:
    data_dir = settings.data_dir.expanduser().resolve()
    # The demo's own lines tell what happens; logs show only what goes wrong, as text
    # even when piped, unless LOG_LEVEL or LOG_FORMAT say otherwise.
    settings = dataclasses.replace(
        settings,
        log_level=settings.log_level if "LOG_LEVEL" in os.environ else "WARNING",
        log_format=settings.log_format if "LOG_FORMAT" in os.environ else "text")
    logs.configure(settings)
    with demo_dir.hold(data_dir):  # a second demo stops here, having touched nothing
        check_free("127.0.0.1", args.port, "the demo's API (--port)")
        return await _run_local_held(settings, args, data_dir)


async def _run_local_held(settings: Settings, args: argparse.Namespace, data_dir: Path) -> int:
    stop = _stop_event()
    settings = dataclasses.replace(
        settings, database_url=await database_url(settings),
        auth_secret=settings.auth_secret or await asyncio.to_thread(_demo_secret, data_dir),
        admin_emails=settings.admin_emails | {ADMIN},
        pubsub_project="delightbridge-demo",
        # The demo's simulator enforces no quota: neither do its engines (under the 2026
        # model a mailbox's first import would hold its new mail for the rest of the
        # minute, as Google would).
        gmail_quota_user_units=DEMO_USER_UNITS)
    code = 0
    async with contextlib.AsyncExitStack() as stack:
        emulator = await _start_emulator(stack, data_dir)
        if emulator:
            settings = dataclasses.replace(settings, pubsub_emulator_host=emulator)
            await asyncio.to_thread(pubsub_emulator.ensure_topic, emulator,
                                    settings.topic_path, settings.subscription_path)
        sim = Simulator(seed=args.seed)
        sim.quota.units_per_second = None  # a demo has no reason to wait on quota
        running = await stack.enter_async_context(serve(
            sim, pubsub_emulator_host=emulator, push=PushConfig(push_audience=PUSH_AUDIENCE)))
        settings = dataclasses.replace(
            settings, gmail_api_endpoint=running.base_url,
            google_oauth_token_uri=running.token_uri,
            google_client_id=sim.client_id, google_client_secret=sim.client_secret)
        kept = _Kept(sim, data_dir / demo_dir.GMAIL_STATE)
        resumed = await _restore_or_create(settings, sim, kept, args.seed)
        ports = await stack.enter_async_context(
            serving(settings, "127.0.0.1", args.port, "127.0.0.1", 0))
        await asyncio.to_thread(demo_dir.write_env, data_dir, _demo_env(settings, ports))
        stack.push_async_callback(kept.save)  # the mailboxes as they are when it stops
        async with open_pool(settings, max_size=4) as pool, SyncEngine.open(
            pool, EngineConfig.from_settings(settings)
        ) as engine:
            await renew_all(engine, WatchSettings.from_settings(settings))
            for service_id, *_ in MAILBOXES:
                if not await _unless_stopped(stop, _first_sync(engine, service_id, resumed)):
                    _say("demo stopped")
                    return 0  # stopped as asked
            tasks = [asyncio.create_task(_new_mail(sim, args.mail_every, stop), name="mail"),
                     asyncio.create_task(_renewal_loop(settings, stop), name="renewal"),
                     asyncio.create_task(kept.every(15.0, stop), name="keep")]
            worker = Worker(settings, _consumer_config(settings, running, emulator),
                            observers=[_live_line])
            consumer = asyncio.create_task(worker.run(), name="consumer")
            started = asyncio.create_task(worker.started.wait())
            await _until(stop, consumer, started)
            if worker.started.is_set():
                if not emulator and worker.push_port is not None:
                    await running.notifier.set_push_endpoint(
                        f"http://127.0.0.1:{worker.push_port}/pubsub/push")
                _banner(settings, ports, emulator, worker, resumed)
                _say("live: a line per synced notification (Ctrl-C stops)")
                await _until(stop, consumer, *tasks)
            worker.stop.set()
            code = await consumer
            stop.set()
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
    _say("demo stopped")
    return code


class _Kept:
    """The simulated mailboxes, kept in the data directory across restarts."""

    def __init__(self, sim: Simulator, path: Path) -> None:
        self.sim = sim
        self.path = path

    async def load(self) -> bool:
        """Take up the kept mailboxes; False when there are none (or unreadable)."""
        try:
            data = await asyncio.to_thread(self.path.read_bytes)
        except FileNotFoundError:
            return False
        try:
            await asyncio.to_thread(self.sim.load_state, data)  # megabytes to unpickle
        except Exception as exc:  # another seed, an older release: start afresh
            _say(f"kept mailboxes not usable ({type(exc).__name__}): starting afresh")
            return False
        return True

    async def save(self) -> None:
        await asyncio.to_thread(self._write)  # megabytes to pickle, off the loop

    def _write(self) -> None:
        data = self.sim.dump_state()
        partial = self.path.with_suffix(".partial")
        fd = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "wb") as out:
            out.write(data)
        os.replace(partial, self.path)

    async def every(self, seconds: float, stop: asyncio.Event) -> None:
        """Save every ``seconds`` until stopped (the stop's own save is the last)."""
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), timeout=seconds)
            if stop.is_set():
                return
            await self.save()


async def _restore_or_create(settings: Settings, sim: Simulator, kept: _Kept,
                             seed: int) -> bool:
    """The kept mailboxes and services when both are there (True); else fresh ones."""
    async with open_pool(settings, max_size=2) as pool:
        present = await demo_db.refresh_tokens(
            pool, service_ids=[service_id for service_id, *_ in MAILBOXES])
        if len(present) == len(MAILBOXES) and await kept.load() and all(
                sim.tokens.knows_refresh_token(token) for token in present.values()):
            return True
        await _demo_services(pool, sim, seed)
        return False


async def _first_sync(engine: SyncEngine, service_id: str, resumed: bool) -> None:
    """A new demo imports each mailbox; a restarted one catches up with what changed
    while it was stopped (and resumes an import it left unfinished)."""
    bar = ProgressLine(sys.stdout)
    try:
        if resumed:
            _say(f"catching up with {service_id}:")
            result = await engine.sync(service_id, trigger="poll", on_progress=bar)
            job = await imports.get(engine.pool, service_id)
            if job is not None and job.status in ("pending", "running"):
                result = await engine.run_import(service_id, trigger="connect",
                                                 on_progress=bar) or result
        else:
            _say(f"initial full sync of {service_id}:")
            result = await engine.sync(service_id, mode="full", trigger="connect",
                                       on_progress=bar)
    finally:
        bar.close()
    _say(f"  {result.mode}: {result.messages_processed} messages in "
         f"{result.threads_processed} threads, {result.duration:.1f} s")


def _demo_env(settings: Settings, ports: Ports) -> dict[str, str]:
    """What another delightbridge command needs to reach this demo."""
    values = {
        "DATABASE_URL": settings.database_url or "",
        "AUTH_SECRET": settings.auth_secret or "",
        "ADMIN_EMAILS": ",".join(sorted(settings.admin_emails)),
        "GOOGLE_CLIENT_ID": settings.google_client_id or "",
        "GOOGLE_CLIENT_SECRET": settings.google_client_secret or "",
        "GOOGLE_OAUTH_TOKEN_URI": settings.google_oauth_token_uri,
        "GMAIL_API_ENDPOINT": settings.gmail_api_endpoint,
        "PUBSUB_PROJECT": settings.pubsub_project,
        "GMAIL_QUOTA_USER_UNITS": str(DEMO_USER_UNITS),
        "PUBLIC_BASE_URL": f"http://127.0.0.1:{ports.api}",
    }
    if settings.pubsub_emulator_host:
        values["PUBSUB_EMULATOR_HOST"] = settings.pubsub_emulator_host
    return values


def _consumer_config(settings: Settings, running: RunningSimulator, emulator: str | None
                     ) -> ConsumerConfig:
    """Streaming pull from the emulator; else push mode, the simulator pushing signed
    envelopes (verified against its certificates) to the consumer's port."""
    config = ConsumerConfig.from_settings(settings, http_host="127.0.0.1", http_port=0,
                                          push_port=0, sweep_interval=30.0)
    if emulator:
        return config
    return dataclasses.replace(config, mode="push", push_audience=PUSH_AUDIENCE,
                               push_service_account=oidc.PUSH_SERVICE_ACCOUNT,
                               push_certs_url=running.certs_url)


def _demo_secret(data_dir: Path) -> str:
    """A stable AUTH_SECRET for the demo, so cookies survive restarts."""
    path = data_dir / "demo-auth-secret"
    if not path.exists():
        data_dir.mkdir(parents=True, exist_ok=True)
        path.write_text(secrets.token_urlsafe(32))
        path.chmod(0o600)
    return path.read_text().strip()


async def _start_emulator(stack: contextlib.AsyncExitStack, data_dir: Path) -> str | None:
    try:
        emulator = pubsub_emulator.find()
    except pubsub_emulator.EmulatorUnavailable as exc:
        _say(f"Pub/Sub emulator unavailable ({exc}): the simulator pushes to the "
             "consumer directly (Pub/Sub push mode)")
        return None
    _say("starting Google's Pub/Sub emulator ...")
    context = pubsub_emulator.running(data_dir / "pubsub-emulator.log", emulator)
    host = await asyncio.to_thread(context.__enter__)
    stack.push_async_callback(asyncio.to_thread, context.__exit__, None, None, None)
    return host


async def _demo_services(pool: asyncpg.Pool, sim: Simulator, seed: int) -> None:
    """Fresh demo mailboxes and their services (the first start, or kept ones lost)."""
    for n, (service_id, name, address, messages, threads) in enumerate(MAILBOXES):
        mailbox = sim.create_mailbox(address, name=name)
        sim.seed(address, messages=messages, threads=threads, seed=seed + n)
        await demo_db.replace_service(pool, service_id=service_id, name=name,
                                      address=address, refresh_token=mailbox.refresh_token)


def _banner(settings: Settings, ports: Ports, emulator: str | None, worker: Worker,
            resumed: bool) -> None:
    cookie = mint_admin_cookie(settings, ADMIN)
    base = f"http://127.0.0.1:{ports.api}"
    consumer = f"http://127.0.0.1:{worker.http_port}/healthz, /readyz and /metrics"
    if worker.push_port is not None:
        consumer += f"; push endpoint http://127.0.0.1:{worker.push_port}/pubsub/push"
    kept = "kept from the last run" if resumed else "new"
    _say(f"""
DelightBridge Sync demo
  API            {base}   (OpenAPI: {base}/api/openapi.json)
  operations     http://127.0.0.1:{ports.ops}/metrics and /readyz
  consumer       {consumer}
  Gmail          simulator at {settings.gmail_api_endpoint}
  Pub/Sub        {"emulator at " + emulator if emulator else "push from the simulator"}
  database       {settings.database_url}
  services       {", ".join(f"{s} <{a}>" for s, _, a, *_ in MAILBOXES)} ({kept})
  data           {settings.data_dir}  (other delightbridge commands reach this demo:
                 try `.venv/bin/delightbridge status`)

Admin cookie:
  {cookie}

Try the seed's request:
  curl --request POST --url '{base}/api/services/demo-noji/sync' --cookie '{cookie}'
""")


def _live_line(delivery: Delivery, outcome: Outcome) -> None:
    if outcome.status != "synced":
        return
    lag = ""
    if delivery.publish_time is not None:
        ms = (datetime.now(UTC) - delivery.publish_time).total_seconds() * 1000
        lag = f", {ms:.0f} ms after Gmail published it"
    _say(f"{datetime.now():%H:%M:%S} notification {delivery.message_id} synced{lag}")


async def _new_mail(sim: Simulator, every: float, stop: asyncio.Event) -> None:
    """Customers write, agents reply and read: the mailboxes keep changing."""
    rng = random.Random(7)  # noqa: S311 - demo traffic, not cryptography
    while not stop.is_set():
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), timeout=every)
        if stop.is_set():
            return
        address = rng.choice(MAILBOXES)[2]
        inbox = [m for m in sim.snapshot(address).messages if "INBOX" in m.label_ids]
        roll = rng.random()
        if roll < 0.6 or not inbox:
            sim.deliver(address)
        elif roll < 0.8:
            sim.reply(address, rng.choice(inbox).thread_id)
        else:
            sim.mark_read(address, rng.choice(inbox).id)


async def _renewal_loop(settings: Settings, stop: asyncio.Event) -> None:
    async with open_pool(settings, max_size=2) as pool, SyncEngine.open(
        pool, EngineConfig.from_settings(settings)
    ) as engine:
        await renewal_schedule(engine, WatchSettings.from_settings(settings), stop)


async def _until(stop: asyncio.Event, *tasks: asyncio.Task[object] | Awaitable[object]) -> None:
    """Wait for the stop event, or for any task to end (a crash stops the demo)."""
    waiter = asyncio.create_task(stop.wait())
    watched = {asyncio.ensure_future(t) for t in tasks}
    done, _ = await asyncio.wait({waiter, *watched}, return_when=asyncio.FIRST_COMPLETED)
    waiter.cancel()
    for task in done - {waiter}:
        if task.exception() is not None:
            log.error("demo component failed", exc_info=task.exception(),
                      extra={"action": "demo.failed", "task": task.get_name()})


async def _unless_stopped(stop: asyncio.Event, step: Awaitable[None]) -> bool:
    """Run ``step`` to its end (True, or its error), or cancel it if the demo is stopped
    first (False): Ctrl-C during a first import stops at once, and the import resumes
    on the next start."""
    task = asyncio.ensure_future(step)
    waiter = asyncio.create_task(stop.wait())
    await asyncio.wait({task, waiter}, return_when=asyncio.FIRST_COMPLETED)
    waiter.cancel()
    if not task.done():
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        return False
    task.result()
    return True
