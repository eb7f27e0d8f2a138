"""One notification, whatever carried it: decoded data in, ack or nack out.

The same path serves pull and push: find the service by address, skip what is
already synced, else submit the mailbox to the scheduler and wait for a sync that
covers the notification to commit. Input that can never become a sync is acked
(redelivery cannot fix it), with one log line and a metric; failures a retry may fix
are nacked so that Pub/Sub redelivers with its backoff.
"""

from __future__ import annotations

import enum
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Literal

import asyncpg

from delightbridge.consumer.metrics import ConsumerMetrics
from delightbridge.consumer.notification import Decoded, Reason, Rejection
from delightbridge.consumer.scheduler import Scheduler, ShuttingDown, SyncFn
from delightbridge.core import logs
from delightbridge.core.errors import (
    DatabaseError,
    DelightBridgeError,
    GmailError,
    ServiceNotConnected,
    ServiceNotFound,
)
from delightbridge.db import services
from delightbridge.sync.engine import SyncEngine
from delightbridge.sync.runs import SyncResult, Trigger

log = logging.getLogger("consumer")

Source = Literal["pull", "push"]


class Disposition(enum.StrEnum):
    ACK = "ack"
    NACK = "nack"


@dataclass(frozen=True, slots=True)
class Outcome:
    disposition: Disposition
    status: str  # "synced", an ignore reason, or why it was nacked
    retry_after: float | None = None

    @property
    def ack(self) -> bool:
        return self.disposition is Disposition.ACK


@dataclass(frozen=True, slots=True)
class Delivery:
    """Where a message came from, for logs and the lag metric."""

    source: Source
    message_id: str
    publish_time: datetime | None = None
    delivery_attempt: int | None = None


# Log level of each ignore reason: broken input is a warning, the rest is expected.
_IGNORE_LEVEL = {
    Reason.UP_TO_DATE: logging.DEBUG,
    Reason.UNKNOWN_ADDRESS: logging.INFO,
    Reason.DISCONNECTED: logging.INFO,
}


Observer = Callable[[Delivery, Outcome], None]


class NotificationHandler:
    def __init__(self, pool: asyncpg.Pool, scheduler: Scheduler, metrics: ConsumerMetrics,
                 observers: Sequence[Observer] = ()) -> None:
        self.pool = pool
        self.scheduler = scheduler
        self.metrics = metrics
        self.observers = list(observers)  # told of every outcome (tests, tracing)

    async def handle(self, decoded: Decoded, delivery: Delivery) -> Outcome:
        """What to do with one message; never raises (except cancellation)."""
        self.metrics.received.labels(delivery.source).inc()
        try:
            outcome = await self._handle(decoded, delivery)
        except Exception:
            log.exception("notification handling failed", extra={
                "action": "consumer.error", **_context(delivery)})
            outcome = Outcome(Disposition.NACK, "internal")
        self.count(outcome, delivery.source)
        for observer in self.observers:
            observer(delivery, outcome)
        return outcome

    def count(self, outcome: Outcome, source: Source) -> None:
        if outcome.ack:
            self.metrics.acked.labels(source).inc()
        else:
            self.metrics.nacked.labels(source, outcome.status).inc()

    async def _handle(self, decoded: Decoded, delivery: Delivery) -> Outcome:
        if isinstance(decoded, Rejection):
            return self._ignore(decoded.reason, decoded.detail, delivery, {})
        context: dict[str, object] = {"email": decoded.email,
                                      "history_id": decoded.history_id}
        try:
            service = await services.by_address(self.pool, email=decoded.email)
        except DatabaseError as exc:
            return self._nack("database_error", str(exc), delivery, context)
        if service is None:
            return self._ignore(Reason.UNKNOWN_ADDRESS, "no service has this address",
                                delivery, context)
        context["service"] = service.id
        if not service.connected:
            return self._ignore(Reason.DISCONNECTED, "the service is not connected to Gmail",
                                delivery, context)
        if service.cursor is not None and service.cursor >= decoded.history_id:
            return self._ignore(Reason.UP_TO_DATE, f"stored cursor is {service.cursor}",
                                delivery, context)
        return await self._sync(service.id, decoded.history_id, delivery, context)

    async def _sync(self, service_id: str, history_id: int, delivery: Delivery,
                    context: dict[str, object]) -> Outcome:
        try:
            result = await self.scheduler.submit(service_id, history_id=history_id,
                                                 trigger="notification")
        except ShuttingDown as exc:
            return self._nack("shutting_down", str(exc), delivery, context)
        except ServiceNotFound:
            return self._ignore(Reason.UNKNOWN_ADDRESS, "the service was deleted", delivery,
                                context)
        except ServiceNotConnected as exc:
            return self._ignore(Reason.DISCONNECTED, str(exc), delivery, context)
        except GmailError as exc:
            return self._nack(exc.code, str(exc), delivery, context, exc.retry_after)
        except DatabaseError as exc:
            return self._nack("database_error", str(exc), delivery, context)
        except DelightBridgeError as exc:
            return self._nack(exc.code, str(exc), delivery, context)
        lag = _lag(delivery.publish_time)
        if lag is not None:
            self.metrics.lag_seconds.labels(delivery.source).observe(lag)
        log.info("notification synced", extra={
            "action": "consumer.synced", **_context(delivery), **context,
            "run": str(result.run_id), "cursor": result.history_id,
            "lag_seconds": None if lag is None else round(lag, 3)})
        return Outcome(Disposition.ACK, "synced")

    def _ignore(self, reason: Reason, detail: str, delivery: Delivery,
                context: dict[str, object]) -> Outcome:
        self.metrics.ignored.labels(reason.value).inc()
        log.log(_IGNORE_LEVEL.get(reason, logging.WARNING), "notification ignored: %s",
                logs.scrub(detail), extra={"action": "consumer.ignored", "reason": reason.value,
                                           **_context(delivery), **context})
        return Outcome(Disposition.ACK, reason.value)

    def _nack(self, status: str, detail: str, delivery: Delivery, context: dict[str, object],
              retry_after: float | None = None) -> Outcome:
        level = logging.INFO if status == "shutting_down" else logging.WARNING
        log.log(level, "notification nacked: %s", logs.scrub(detail), extra={
            "action": "consumer.nacked", "error_code": status, **_context(delivery),
            **context})
        return Outcome(Disposition.NACK, status, retry_after)


def engine_sync_fn(engine: SyncEngine, *, lock_wait: float) -> SyncFn:
    """The scheduler's sync function: an incremental sync, waiting (bounded) for another
    process's lock. The engine tells its observers (the metrics) how it ended."""

    async def sync(service_id: str, trigger: Trigger) -> SyncResult:
        return await engine.sync(service_id, mode="incremental", trigger=trigger,
                                 wait=lock_wait or None)

    return sync


def _lag(published: datetime | None) -> float | None:
    if published is None:
        return None
    if published.tzinfo is None:
        published = published.replace(tzinfo=UTC)
    return max(0.0, (datetime.now(UTC) - published).total_seconds())


def _context(delivery: Delivery) -> dict[str, object]:
    context: dict[str, object] = {"source": delivery.source, "message_id": delivery.message_id}
    if delivery.delivery_attempt is not None:
        context["delivery_attempt"] = delivery.delivery_attempt
    return context
