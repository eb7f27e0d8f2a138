"""Push notifications: what a watched mailbox publishes when it changes.

For each change that passes the watch's label filter (decided by the simulator),
the notifier publishes ``{"emailAddress": ..., "historyId": ...}`` to the watch's
topic. At most one notification per second per mailbox: changes arriving sooner
fold into the next one, which carries the latest history id. Delivery goes to

* Google Cloud Pub/Sub through the real ``google-cloud-pubsub`` client (in tests,
  the official emulator at ``pubsub_emulator_host``), and/or
* a push endpoint, POSTed as Pub/Sub's push envelope
  ``{"message": {"data", "messageId", "publishTime", ...}, "subscription"}``, with an
  OIDC token in ``Authorization`` signed like Google's (:mod:`gmailsim.oidc`; the
  certificates at ``<base>/oauth2/v1/certs``), retried with back-off on a non-2xx
  answer like Pub/Sub does,

and is always recorded in :attr:`Notifier.deliveries`. Fault settings can drop,
duplicate, delay or reorder notifications.

Gmail sends ``historyId`` as a JSON number in practice (its guide shows a string);
``history_id_as_string`` switches to the string form.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import functools
import importlib
import itertools
import json
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import aiohttp

from gmailsim import oidc
from gmailsim.simulator import ChangeEvent, Simulator

log = logging.getLogger("gmailsim.push")


@dataclass(slots=True)
class PushConfig:
    pubsub_emulator_host: str | None = None
    push_endpoint: str | None = None
    push_subscription: str = "projects/gmailsim/subscriptions/gmail-push"
    min_interval: float = 1.0
    history_id_as_string: bool = False
    push_attempts: int = 5
    push_backoff: float = 0.1
    #: The push token's ``aud``; None: the push endpoint's URL (Pub/Sub's default).
    push_audience: str | None = None
    push_service_account: str = oidc.PUSH_SERVICE_ACCOUNT


@dataclass(frozen=True, slots=True)
class Notification:
    address: str
    history_id: int
    topic: str

    def data(self, as_string: bool) -> bytes:
        history: int | str = str(self.history_id) if as_string else self.history_id
        return json.dumps({"emailAddress": self.address, "historyId": history}).encode()


@dataclass(frozen=True, slots=True)
class Delivery:
    """One notification that left the simulator (or was dropped on purpose)."""

    address: str
    history_id: int
    topic: str
    data: bytes
    sink: str  # "pubsub", "push", "memory"
    ok: bool
    message_id: str | None = None
    dropped: bool = False

    def payload(self) -> dict[str, Any]:
        value: dict[str, Any] = json.loads(self.data)
        return value


@dataclass(slots=True)
class _Rate:
    last: float | None = None
    pending: Notification | None = None
    handle: asyncio.TimerHandle | None = None


@dataclass(slots=True)
class _Pending:
    tasks: set[asyncio.Task[None]] = field(default_factory=set)
    timers: set[asyncio.TimerHandle] = field(default_factory=set)


class Notifier:
    """Turns the simulator's change events into published notifications."""

    def __init__(self, sim: Simulator, config: PushConfig | None = None) -> None:
        self.sim = sim
        self.config = config or PushConfig()
        self.deliveries: list[Delivery] = []
        self._loop: asyncio.AbstractEventLoop | None = None
        self._rates: dict[str, _Rate] = {}
        self._held: Notification | None = None
        self._pending = _Pending()
        self._session: aiohttp.ClientSession | None = None
        self._publisher: Any = None
        self._waiters: set[asyncio.Event] = set()
        self._ids = itertools.count(1)
        self.signer: oidc.SigningKey | None = None

    # --- life cycle ------------------------------------------------------------------

    async def start(self) -> None:
        self._loop = asyncio.get_running_loop()
        self.signer = await asyncio.to_thread(oidc.shared_key)
        self._session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=10))
        if self.config.pubsub_emulator_host:
            self._publisher = await asyncio.to_thread(_publisher, self.config.pubsub_emulator_host)
        self.sim.add_listener(self._on_change)

    async def close(self) -> None:
        self.sim.remove_listener(self._on_change)
        for rate in self._rates.values():
            if rate.handle:
                rate.handle.cancel()
        for timer in self._pending.timers:
            timer.cancel()
        for task in list(self._pending.tasks):
            task.cancel()
        await asyncio.gather(*self._pending.tasks, return_exceptions=True)
        if self._session is not None:
            await self._session.close()
        if self._publisher is not None:
            publisher, self._publisher = self._publisher, None
            await asyncio.to_thread(_close_publisher, publisher)

    async def set_push_endpoint(self, url: str | None, subscription: str | None = None) -> None:
        self.config.push_endpoint = url
        if subscription:
            self.config.push_subscription = subscription

    # --- topics ----------------------------------------------------------------------

    async def topic_exists(self, topic: str) -> bool:
        """With Pub/Sub configured, whether the topic exists (watch checks it)."""
        if self._publisher is None:
            return True
        return await asyncio.to_thread(_topic_exists, self._publisher, topic)

    # --- events ----------------------------------------------------------------------

    def _on_change(self, event: ChangeEvent) -> None:
        loop = self._loop
        if loop is None or loop.is_closed():
            return
        notification = Notification(event.address, event.history_id, event.topic)
        loop.call_soon_threadsafe(self._rate_limit, notification)

    def _rate_limit(self, notification: Notification) -> None:
        loop = self._require_loop()
        rate = self._rates.setdefault(notification.address.lower(), _Rate())
        if rate.pending is not None:
            rate.pending = _latest(rate.pending, notification)
            return
        now = loop.time()
        interval = self.config.min_interval
        if rate.last is None or now - rate.last >= interval:
            rate.last = now
            self._emit(notification)
            return
        rate.pending = notification
        rate.handle = loop.call_at(rate.last + interval, self._flush, rate)

    def _flush(self, rate: _Rate) -> None:
        notification, rate.pending, rate.handle = rate.pending, None, None
        if notification is not None:
            rate.last = self._require_loop().time()
            self._emit(notification)

    def _emit(self, notification: Notification) -> None:
        counters = self.sim.counters
        drop, duplicate, delay, reorder = self.sim.faults.notification_fate()
        self._wake()
        if drop:
            counters.call("push.dropped")
            self._record(Delivery(notification.address, notification.history_id,
                                  notification.topic, self._data(notification), "memory",
                                  ok=False, dropped=True))
            return
        if reorder and self._held is None:
            counters.call("push.reordered")
            self._held = notification
            self._later(max(3 * self.config.min_interval, 1.0), self._release_held)
            return
        # A held (reordered) notification goes out right after this one is delivered.
        held, self._held = self._held, None
        if duplicate:
            counters.call("push.duplicated")
            self._spawn(notification)
        if delay:
            counters.call("push.delayed")
            self._later(delay, functools.partial(self._spawn, notification, held))
        else:
            self._spawn(notification, held)

    def _release_held(self) -> None:
        held, self._held = self._held, None
        if held is not None:
            self._spawn(held)

    def _later(self, delay: float, callback: Callable[[], None]) -> None:
        loop = self._require_loop()

        def fire() -> None:
            self._pending.timers.discard(handle)
            callback()

        handle = loop.call_later(delay, fire)
        self._pending.timers.add(handle)

    def _spawn(self, notification: Notification, then: Notification | None = None) -> None:
        task = self._require_loop().create_task(self._deliver(notification, then))
        self._pending.tasks.add(task)
        task.add_done_callback(self._pending.tasks.discard)

    def _data(self, notification: Notification) -> bytes:
        return notification.data(self.config.history_id_as_string)

    # --- delivery --------------------------------------------------------------------

    async def _deliver(self, notification: Notification, then: Notification | None) -> None:
        data = self._data(notification)
        sent = False
        if self._publisher is not None:
            try:
                message_id = await asyncio.to_thread(_publish, self._publisher,
                                                     notification.topic, data)
                sent = True
                await self._done(notification, data, "pubsub", True, message_id)
            except Exception as exc:  # a failed publish is recorded, not raised
                log.warning("publish to %s failed: %s", notification.topic, exc)
                await self._done(notification, data, "pubsub", False, None)
        if self.config.push_endpoint:
            ok, message_id = await self._post(data)
            sent = sent or ok
            await self._done(notification, data, "push", ok, message_id)
        if self._publisher is None and not self.config.push_endpoint:
            await self._done(notification, data, "memory", True, str(next(self._ids)))
            sent = True
        self.sim.counters.call("push.sent" if sent else "push.failed")
        if then is not None:
            self._spawn(then)

    async def _post(self, data: bytes) -> tuple[bool, str]:
        assert self._session is not None
        message_id = str(next(self._ids))
        now = datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
        envelope = {
            "message": {
                "data": base64.b64encode(data).decode(),
                "attributes": {},
                "messageId": message_id, "message_id": message_id,
                "publishTime": now, "publish_time": now,
            },
            "subscription": self.config.push_subscription,
        }
        delay = self.config.push_backoff
        for _attempt in range(max(1, self.config.push_attempts)):
            url = self.config.push_endpoint
            if not url:
                return False, message_id
            assert self.signer is not None
            token = self.signer.token(audience=self.config.push_audience or url,
                                      account=self.config.push_service_account)
            try:
                async with self._session.post(
                        url, json=envelope, headers={"Authorization": f"Bearer {token}"}
                ) as response:
                    if 200 <= response.status < 300 or response.status == 102:
                        return True, message_id
            except (aiohttp.ClientError, TimeoutError) as exc:
                log.debug("push to %s failed: %s", url, exc)
            await asyncio.sleep(delay)
            delay *= 2
        return False, message_id

    async def _done(self, notification: Notification, data: bytes, sink: str, ok: bool,
                    message_id: str | None) -> None:
        self._record(Delivery(notification.address, notification.history_id,
                              notification.topic, data, sink, ok, message_id))

    def _record(self, delivery: Delivery) -> None:
        self.deliveries.append(delivery)
        self._wake()

    def _wake(self) -> None:
        for waiter in self._waiters:
            waiter.set()

    async def wait_for(self, predicate: Callable[[list[Delivery]], bool]) -> list[Delivery]:
        """Wait until ``predicate(deliveries)`` holds (wrap in ``asyncio.timeout``).

        The predicate is re-checked after every emitted or delivered notification.
        """
        waiter = asyncio.Event()
        self._waiters.add(waiter)
        try:
            while not predicate(self.deliveries):
                waiter.clear()
                await waiter.wait()
        finally:
            self._waiters.discard(waiter)
        return list(self.deliveries)

    def _require_loop(self) -> asyncio.AbstractEventLoop:
        if self._loop is None:
            raise RuntimeError("notifier not started")
        return self._loop


def _latest(a: Notification, b: Notification) -> Notification:
    return b if b.history_id >= a.history_id else a


# --- google-cloud-pubsub (blocking; always called through asyncio.to_thread) ------------


def _publisher(host: str) -> Any:
    """A PublisherClient on an insecure channel to the emulator (no global env change)."""
    grpc = importlib.import_module("grpc")
    pubsub = importlib.import_module("google.cloud.pubsub_v1")
    transports = importlib.import_module("google.pubsub_v1.services.publisher.transports")
    transport = transports.PublisherGrpcTransport(channel=grpc.insecure_channel(host))
    return pubsub.PublisherClient(transport=transport)


def _publish(publisher: Any, topic: str, data: bytes) -> str:
    future = publisher.publish(topic, data)
    return str(future.result(timeout=30))


def _topic_exists(publisher: Any, topic: str) -> bool:
    not_found = importlib.import_module("google.api_core.exceptions").NotFound
    try:
        publisher.get_topic(request={"topic": topic}, timeout=10)
    except not_found:
        return False
    return True


def _close_publisher(publisher: Any) -> None:
    with contextlib.suppress(Exception):
        publisher.stop()
    with contextlib.suppress(Exception):
        publisher.transport.close()
