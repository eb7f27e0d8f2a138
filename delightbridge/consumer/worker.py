"""The consumer process: resources, side tasks, supervision and an orderly stop.

``Worker.run()`` opens the pool and the engine, starts the scheduler's workers, the
sweep, the import worker, the HTTP server, (pull mode) the streaming pull and (with
``EVENTS_URL``) the new-mail event dispatcher, then waits for the stop
event or for any side task to end. A side task ending on its own is a crash: it is
logged at CRITICAL and the worker stops with exit code 1. SIGTERM/SIGINT set the stop
event (a second signal cuts the grace period short). Stopping: stop pulling, let
running syncs finish within ``shutdown_timeout``, nack everything else, close.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import time
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import aiohttp

from delightbridge.consumer.config import ConsumerConfig
from delightbridge.consumer.handler import Delivery, NotificationHandler, Observer, engine_sync_fn
from delightbridge.consumer.health import (
    HttpServer,
    Readiness,
    create_app,
    create_push_app,
    database_check,
)
from delightbridge.consumer.importer import IMPORTS_AT_ONCE, ImportWorker
from delightbridge.consumer.metrics import ConsumerMetrics
from delightbridge.consumer.notification import decode_pull
from delightbridge.consumer.pull import PullBridge, PulledMessage, subscriber_client
from delightbridge.consumer.push import CertificateCache, OidcVerifier, PushEndpoint
from delightbridge.consumer.scheduler import Scheduler
from delightbridge.consumer.sweep import Sweeper, SweepReport
from delightbridge.core.healthcheck import PeriodicCheck
from delightbridge.core.settings import Settings
from delightbridge.db.pool import open_pool
from delightbridge.sync.engine import EngineConfig, SyncEngine
from delightbridge.sync.outbox import Attempt, Dispatcher, OutboxConfig
from delightbridge.sync.runs import SyncResult
from delightbridge.sync.watch import RenewReport, WatchSettings, renewal_schedule

log = logging.getLogger("consumer")

SETTLE_TIMEOUT = 10.0  # after the syncs: for message handlers to ack/nack


class Worker:
    def __init__(self, settings: Settings, config: ConsumerConfig, *,
                 engine_config: EngineConfig | None = None,
                 metrics: ConsumerMetrics | None = None,
                 observers: Sequence[Observer] = (),
                 sweep_observers: Sequence[Callable[[SweepReport], None]] = (),
                 renewal_observers: Sequence[Callable[[RenewReport], None]] = (),
                 event_observers: Sequence[Callable[[Attempt], None]] = (),
                 import_observers: Sequence[
                     Callable[[str, SyncResult | BaseException | None], None]] = ()) -> None:
        self.settings = settings
        self.config = config
        self.engine_config = engine_config or EngineConfig.from_settings(settings)
        self.metrics = metrics or ConsumerMetrics()
        self.observers = list(observers)  # told of every message's outcome
        self.sweep_observers = list(sweep_observers)  # told of every sweep's report
        self.renewal_observers = list(renewal_observers)  # told of every renewal pass
        self.event_observers = list(event_observers)  # told of every event delivery attempt
        self.import_observers = list(import_observers)  # told of every import's end
        self.importer: ImportWorker | None = None
        self.stop = asyncio.Event()  # set by signals or tests: stop gracefully
        self.force = asyncio.Event()  # set by a second signal: skip the grace period
        self.started = asyncio.Event()  # set once everything is up
        self.stopping = asyncio.Event()  # set when the orderly stop begins
        self.http_port: int | None = None
        self.push_port: int | None = None  # push mode only
        self.database_check: PeriodicCheck[bool] | None = None
        self.scheduler: Scheduler | None = None
        self._bridge: PullBridge | None = None
        self._handler: NotificationHandler | None = None
        self._messages: dict[asyncio.Task[None], PulledMessage] = {}

    @property
    def in_flight(self) -> int:
        """Pulled messages being handled: neither acked nor nacked yet."""
        return len(self._messages)

    # ------------------------------------------------------------------ signals

    @contextlib.contextmanager
    def signal_handlers(self) -> Iterator[None]:
        """SIGTERM/SIGINT stop the worker; a second one skips the grace period."""
        loop = asyncio.get_running_loop()
        signals = (signal.SIGTERM, signal.SIGINT)
        for sig in signals:
            loop.add_signal_handler(sig, self._on_signal, sig)
        try:
            yield
        finally:
            for sig in signals:
                loop.remove_signal_handler(sig)

    def _on_signal(self, sig: signal.Signals) -> None:
        if self.stop.is_set():
            log.warning("second %s: cancelling running syncs now", sig.name, extra={
                "action": "consumer.force_stop", "signal": sig.name})
            self.force.set()
            return
        log.info("%s: stopping", sig.name, extra={"action": "consumer.signal",
                                                  "signal": sig.name})
        self.stop.set()

    # ------------------------------------------------------------------ run

    async def run(self) -> int:
        """Run until stopped; 0 after a requested stop, 1 after a side task crashed."""
        cfg = self.config
        async with contextlib.AsyncExitStack() as stack:
            pool = await stack.enter_async_context(
                # A lock's connection and a working one per sync and per import, and spare.
                open_pool(self.settings, max_size=2 * (cfg.concurrency + IMPORTS_AT_ONCE) + 4))
            engine = await stack.enter_async_context(SyncEngine.open(pool, self.engine_config))
            engine.observers.append(self.metrics.engine)
            self.metrics.engine.watch_budget(engine.budget)
            scheduler = self.scheduler = Scheduler(
                engine_sync_fn(engine, lock_wait=cfg.lock_wait),
                concurrency=cfg.concurrency)
            self.metrics.syncs_running.set_function(lambda: scheduler.running)
            self.metrics.mailboxes_waiting.set_function(lambda: scheduler.waiting)
            self._handler = NotificationHandler(pool, scheduler, self.metrics, self.observers)
            push = await self._open_edge(stack)

            bridge = self._bridge
            self.database_check = await stack.enter_async_context(
                database_check(pool).running())
            readiness = Readiness(self.database_check,
                                  (lambda: bridge.is_open) if bridge else None,
                                  self.stopping.is_set)
            http = HttpServer(create_app(readiness, self.metrics), cfg.http_host,
                              cfg.http_port, shutdown_timeout=cfg.shutdown_timeout + 5,
                              settings=self.settings)
            await http.start()
            stack.push_async_callback(http.stop)
            self.http_port = http.port
            if push is not None:
                public = HttpServer(create_push_app(push), cfg.http_host, cfg.push_port,
                                    shutdown_timeout=cfg.shutdown_timeout + 5,
                                    settings=self.settings,
                                    what="the push endpoint (CONSUMER_PUSH_PORT)")
                await public.start()
                stack.push_async_callback(public.stop)
                self.push_port = public.port

            watched: dict[asyncio.Task[Any], str] = {}
            stack.push_async_callback(self._abort, watched)  # if cancelled or failing
            watched.update({task: task.get_name() for task in scheduler.start()})
            sweeper = Sweeper(pool, scheduler, self.metrics, interval=cfg.sweep_interval,
                              stale_after=cfg.stale_after, observers=self.sweep_observers)
            watched[asyncio.create_task(sweeper.run(self.stop), name="sweep")] = "sweep"
            importer = self.importer = ImportWorker(engine, on_done=self._import_done)
            engine.import_runner = importer.request
            watched[asyncio.create_task(importer.run(self.stop), name="imports")] = "imports"
            outbox = OutboxConfig.from_settings(self.settings)
            if outbox is not None:
                session = await stack.enter_async_context(aiohttp.ClientSession())
                dispatcher = Dispatcher(pool, outbox, session, on_attempt=self._event_attempted,
                                        on_backlog=self.metrics.set_event_backlog)
                watched[asyncio.create_task(dispatcher.run(self.stop), name="events")] = "events"
            if cfg.renew_watches:
                renewal = renewal_schedule(engine, WatchSettings.from_settings(self.settings),
                                           self.stop, on_report=self._count_renewals)
                watched[asyncio.create_task(renewal, name="renewal")] = "renewal"
            if bridge is not None:
                bridge.start()
                watched[asyncio.create_task(bridge.watch(), name="pull")] = "pull"
            log.info("consumer started", extra={
                "action": "consumer.started", "mode": cfg.mode, "concurrency": cfg.concurrency,
                "subscription": self.settings.subscription_path if bridge else None,
                "http_port": self.http_port, "push_port": self.push_port})
            self.started.set()

            code = await self._supervise(watched)
            await self._drain(scheduler, watched, http)
            return code
        raise AssertionError("unreachable")  # pragma: no cover - the stack re-raises

    def _import_done(self, service_id: str, outcome: SyncResult | BaseException | None) -> None:
        for observer in self.import_observers:
            observer(service_id, outcome)

    def _event_attempted(self, attempt: Attempt) -> None:
        self.metrics.count_event_attempt(attempt)
        for observer in self.event_observers:
            observer(attempt)

    def _count_renewals(self, report: RenewReport) -> None:
        self.metrics.watch_renewals.labels("renewed").inc(len(report.renewed))
        self.metrics.watch_renewals.labels("failed").inc(len(report.failed))
        pending = len(report.stops_pending)
        self.metrics.watch_renewals.labels("stopped").inc(len(report.stops) - pending)
        self.metrics.watch_renewals.labels("stop_failed").inc(pending)
        for observer in self.renewal_observers:
            observer(report)

    async def _open_edge(self, stack: contextlib.AsyncExitStack) -> PushEndpoint | None:
        """Pull: check the subscription and prepare the bridge. Push: the endpoint."""
        cfg = self.config
        assert self._handler is not None
        if cfg.mode == "pull":
            client = subscriber_client(self.settings.pubsub_emulator_host)
            stack.push_async_callback(asyncio.to_thread, client.close)
            self._bridge = PullBridge(
                client, self.settings.subscription_path, max_outstanding=cfg.max_outstanding,
                on_message=self._on_pulled, metrics=self.metrics)
            await self._bridge.check()
            return None
        session = await stack.enter_async_context(aiohttp.ClientSession())
        verifier = OidcVerifier(
            CertificateCache(session, cfg.push_certs_url), audience=cfg.push_audience or "",
            service_account=cfg.push_service_account or "", clock_skew=cfg.push_clock_skew)
        return PushEndpoint(verifier, self._handler, self.metrics)

    async def _abort(self, watched: dict[asyncio.Task[Any], str]) -> None:
        """Whatever an orderly stop did not end (run() cancelled or failed): end it now."""
        if self._bridge is not None:
            await self._bridge.stop()
        leftovers = [t for t in (*watched, *self._messages) if not t.done()]
        for task in leftovers:
            task.cancel()
        await asyncio.gather(*leftovers, return_exceptions=True)

    async def _supervise(self, watched: dict[asyncio.Task[Any], str]) -> int:
        stop = asyncio.create_task(self.stop.wait())
        try:
            done, _ = await asyncio.wait({stop, *watched}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            stop.cancel()
        code = 0
        for task in done:
            if task is stop:
                continue
            error = None if task.cancelled() else task.exception()
            if error is None and self.stop.is_set():
                continue  # it saw the stop request first and returned: not a crash
            code = 1
            log.critical("side task %s ended unexpectedly: %s", watched[task],
                         error or "returned", exc_info=error, extra={
                             "action": "consumer.side_task_crashed", "task": watched[task]})
        self.stop.set()
        return code

    async def _drain(self, scheduler: Scheduler, watched: dict[asyncio.Task[Any], str],
                     http: HttpServer) -> None:
        started = time.monotonic()
        self.stopping.set()
        log.info("stopping: no new messages; running syncs get %ss", self.config.shutdown_timeout,
                 extra={"action": "consumer.stopping", "running": scheduler.running,
                        "messages": len(self._messages)})
        if self._bridge is not None:
            await self._bridge.stop()
            grace = self.config.shutdown_timeout + SETTLE_TIMEOUT + 5
            await self._bridge.extend(list(self._messages.values()), int(grace))
        for task, name in watched.items():
            if name == "sweep":
                task.cancel()
        cancelled = await scheduler.close(self.config.shutdown_timeout, force=self.force)
        if self._messages:
            _, late = await asyncio.wait(set(self._messages), timeout=SETTLE_TIMEOUT)
            for task in late:
                task.cancel()
            await asyncio.gather(*late, return_exceptions=True)
        await http.stop()
        for task in watched:
            if not task.done():
                task.cancel()
        await asyncio.gather(*watched, return_exceptions=True)
        log.info("consumer stopped", extra={
            "action": "consumer.stopped", "cancelled_syncs": cancelled,
            "seconds": round(time.monotonic() - started, 3)})

    # ------------------------------------------------------------------ pulled messages

    def _on_pulled(self, message: PulledMessage) -> None:
        """On the loop (via call_soon_threadsafe): one task per message."""
        task = asyncio.create_task(self._settle_pulled(message))
        self._messages[task] = message
        task.add_done_callback(self._forget)

    def _forget(self, task: asyncio.Task[None]) -> None:
        self._messages.pop(task, None)

    async def _settle_pulled(self, message: PulledMessage) -> None:
        assert self._handler is not None
        assert self._bridge is not None
        bridge = self._bridge
        try:
            delivery = Delivery("pull", message.message_id, message.publish_time,
                                message.delivery_attempt)
            outcome = await self._handler.handle(decode_pull(message.data), delivery)
        except asyncio.CancelledError:
            await asyncio.shield(bridge.settle(message, ack=False))
            raise
        try:
            await bridge.settle(message, ack=outcome.ack)
        except Exception:  # the message is redelivered when its lease expires
            log.exception("could not settle a message", extra={
                "action": "consumer.settle_failed", "message_id": message.message_id})
