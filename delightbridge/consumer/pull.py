"""Streaming pull: google-cloud-pubsub's threads on one side, the asyncio loop on the other.

The library calls :meth:`PullBridge._callback` on its own thread pool; the callback only
hands the message to the loop (``call_soon_threadsafe``) and returns, so neither side
ever waits for the other. Flow control (``max_outstanding``) bounds the messages held
by the loop and not yet acked or nacked: past it, the library pauses the stream.

Ack and nack go through the message object (thread-safe) while the stream is open,
which keeps the library's flow control and lease extension right. :meth:`stop` stops
pulling at once; messages still being handled are then settled with unary
``Acknowledge`` / ``ModifyAckDeadline(0)`` calls, because the library's dispatcher is
gone by then.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from datetime import datetime
from typing import Any, Protocol

import grpc  # type: ignore[import-untyped]
from google.api_core import exceptions as google_exceptions
from google.cloud import pubsub_v1  # type: ignore[import-untyped]
from google.pubsub_v1.services.subscriber.transports.grpc import SubscriberGrpcTransport

from delightbridge.consumer.metrics import ConsumerMetrics
from delightbridge.core.errors import DelightBridgeError

log = logging.getLogger("consumer.pull")

STOP_TIMEOUT = 30.0  # for the library's shutdown thread and each unary settle call
CHECK_TIMEOUT = 15.0


class PubSubError(DelightBridgeError):
    """The subscription is missing or unusable, or the stream ended on its own."""

    code = "pubsub_error"


class PulledMessage(Protocol):
    """What the consumer uses of ``google.cloud.pubsub_v1.subscriber.message.Message``."""

    @property
    def data(self) -> bytes: ...
    @property
    def message_id(self) -> str: ...
    @property
    def ack_id(self) -> str: ...
    @property
    def publish_time(self) -> datetime: ...
    @property
    def delivery_attempt(self) -> int | None: ...
    def ack(self) -> None: ...
    def nack(self) -> None: ...


def subscriber_client(emulator_host: str | None) -> Any:
    """A ``SubscriberClient``; over an insecure channel to ``emulator_host`` when given
    (the library does the same when ``PUBSUB_EMULATOR_HOST`` is in the environment)."""
    if emulator_host:
        transport = SubscriberGrpcTransport(channel=grpc.insecure_channel(emulator_host))
        return pubsub_v1.SubscriberClient(transport=transport)
    return pubsub_v1.SubscriberClient()


class PullBridge:
    def __init__(self, client: Any, subscription: str, *, max_outstanding: int,
                 on_message: Callable[[PulledMessage], None],
                 metrics: ConsumerMetrics) -> None:
        self._client = client
        self.subscription = subscription
        self._max_outstanding = max_outstanding
        self._on_message = on_message
        self._metrics = metrics
        self._loop: asyncio.AbstractEventLoop | None = None
        self._future: Any = None
        self._ended = asyncio.Event()
        self._stopping = False

    # ------------------------------------------------------------------ lifecycle

    async def check(self) -> None:
        """Fail early, with a clear message, when the subscription is not usable."""
        try:
            await asyncio.to_thread(self._client.get_subscription,
                                    subscription=self.subscription, timeout=CHECK_TIMEOUT)
        except google_exceptions.NotFound:
            raise PubSubError(f"Pub/Sub subscription {self.subscription} does not exist.") from None
        except google_exceptions.GoogleAPICallError as exc:
            raise PubSubError(
                f"Pub/Sub subscription {self.subscription} is not usable: {exc}") from exc

    def start(self) -> None:
        """Open the stream (from the loop thread)."""
        if self._future is not None:
            raise RuntimeError("the stream is already open")
        self._loop = asyncio.get_running_loop()
        flow = pubsub_v1.types.FlowControl(max_messages=self._max_outstanding)
        self._future = self._client.subscribe(self.subscription, self._callback,
                                              flow_control=flow)
        self._future.add_done_callback(self._on_stream_end)
        self._metrics.stream_open.set(1)
        log.info("pulling", extra={"action": "consumer.pull_started",
                                   "subscription": self.subscription,
                                   "max_outstanding": self._max_outstanding})

    @property
    def is_open(self) -> bool:
        return self._future is not None and not self._stopping and not self._ended.is_set()

    async def watch(self) -> None:
        """Returns when the stream ends because of :meth:`stop`; raises if it ends on its
        own (subscription deleted, permission revoked: errors the library does not retry)."""
        await self._ended.wait()
        if self._stopping:
            return
        error = self._future.exception() if self._future is not None else None
        raise PubSubError(f"the streaming pull of {self.subscription} ended: {error}")

    async def stop(self) -> None:
        """Stop pulling. The library nacks what it had not handed over yet."""
        if self._stopping or self._future is None:
            self._stopping = True
            return
        self._stopping = True
        self._future.cancel()
        try:
            await asyncio.to_thread(self._future.result, timeout=STOP_TIMEOUT)
        except Exception as exc:  # the stream's own error, or a slow shutdown: log, go on
            log.warning("the streaming pull did not close cleanly: %s", exc, extra={
                "action": "consumer.pull_close_failed", "subscription": self.subscription})
        self._metrics.stream_open.set(0)
        log.info("stopped pulling", extra={"action": "consumer.pull_stopped",
                                           "subscription": self.subscription})

    async def extend(self, messages: list[PulledMessage], seconds: int) -> None:
        """After :meth:`stop`: keep ``messages`` leased for ``seconds`` (the library no
        longer extends leases), so none is redelivered while its sync may still commit."""
        if not messages:
            return
        try:
            await asyncio.to_thread(self._client.modify_ack_deadline,
                                    subscription=self.subscription,
                                    ack_ids=[m.ack_id for m in messages],
                                    ack_deadline_seconds=max(10, min(600, seconds)),
                                    timeout=STOP_TIMEOUT)
        except google_exceptions.GoogleAPICallError as exc:
            log.warning("could not extend the leases of in-flight messages: %s", exc, extra={
                "action": "consumer.extend_failed", "messages": len(messages)})

    # ------------------------------------------------------------------ messages

    async def settle(self, message: PulledMessage, ack: bool) -> None:
        """Ack or nack ``message`` (from the loop thread)."""
        if not self._stopping:
            if ack:
                message.ack()
            else:
                message.nack()
            return
        try:
            if ack:
                await asyncio.to_thread(self._client.acknowledge, subscription=self.subscription,
                                        ack_ids=[message.ack_id], timeout=STOP_TIMEOUT)
            else:
                await asyncio.to_thread(self._client.modify_ack_deadline,
                                        subscription=self.subscription, ack_ids=[message.ack_id],
                                        ack_deadline_seconds=0, timeout=STOP_TIMEOUT)
        except google_exceptions.GoogleAPICallError as exc:
            log.warning("could not %s a message after the stream closed: %s",
                        "ack" if ack else "nack", exc, extra={
                            "action": "consumer.settle_failed", "message_id": message.message_id})

    # ------------------------------------------------------------------ library threads

    def _callback(self, message: PulledMessage) -> None:
        """On a library thread: hand over to the loop, never wait."""
        loop = self._loop
        try:
            if loop is None:
                raise RuntimeError("the bridge is not started")
            loop.call_soon_threadsafe(self._on_message, message)
        except RuntimeError:  # the loop is closed: let Pub/Sub redeliver
            message.nack()

    def _on_stream_end(self, _future: object) -> None:
        loop = self._loop
        if loop is None:
            return
        with contextlib.suppress(RuntimeError):  # the loop is closed: nobody to tell
            loop.call_soon_threadsafe(self._ended.set)
