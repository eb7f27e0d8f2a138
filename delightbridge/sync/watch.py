"""Gmail push watches: start, renew daily, stop; decisions pure, I/O at the edges.

Gmail drops a watch seven days after ``users.watch`` and recommends renewing daily.
:func:`renewal_due` decides (pure): no watch, an expired or soon-expiring watch, or
one renewed more than a day ago (less a per-service jitter, so a fleet of services
does not renew in one burst). :func:`renew` calls ``users.watch`` with the configured
topic and label filter; when Gmail answers "Only one user push notification client
allowed per developer" it calls ``users.stop`` and watches again. Outcomes are
recorded on the service (``watch_*`` columns); a refused refresh token disconnects
the service as a sync would. Each renewal also refreshes the service's sender
identities (:mod:`delightbridge.sync.identities`).

Stopping: :func:`disconnect` (the API's ``DELETE /api/services/{id}/connection``)
clears a service's tokens and queues its watch in ``delightbridge_sync.watch_stops`` in
one statement; deleting a ``gmail_accounts`` row (as the web app does) queues it
through a trigger. :func:`drain_stops` then calls ``users.stop`` and revokes the grant at
Google; what fails for a passing reason stays queued for the next renewal pass, so a
stop is never lost, and a watch that lapsed meanwhile needs no call.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from delightbridge.core import logs
from delightbridge.core.errors import (
    DelightBridgeError,
    GmailError,
    OAuthRefused,
    ServiceNotFound,
    TokenDecryptionError,
)
from delightbridge.core.settings import Settings
from delightbridge.db import services as services_db
from delightbridge.db import watches
from delightbridge.db.connection import transaction
from delightbridge.sync import identities, tokens
from delightbridge.sync.engine import SyncEngine

log = logging.getLogger(__name__)

RENEW_EVERY = timedelta(days=1)
JITTER = timedelta(hours=2)
EXPIRY_MARGIN = timedelta(days=2)  # renew at once when less than this is left
ONE_CLIENT = "only one user push notification client"
DISCONNECTED_BY_ADMIN = "disconnected_by_admin"


@dataclass(frozen=True, slots=True)
class WatchSettings:
    topic: str
    label_ids: tuple[str, ...] = ()
    behavior: str = "include"

    @classmethod
    def from_settings(cls, settings: Settings) -> WatchSettings:
        return cls(settings.topic_path, settings.gmail_watch_label_ids,
                   settings.gmail_watch_label_filter_behavior)


def jitter_for(service_id: str) -> timedelta:
    """A stable offset in [0, JITTER) per service: renewals spread over two hours."""
    digest = hashlib.sha256(service_id.encode()).digest()
    return JITTER * (int.from_bytes(digest[:4], "big") / 2**32)


def renewal_due(service_id: str, expires_at: datetime | None, renewed_at: datetime | None,
                now: datetime) -> bool:
    if expires_at is None or renewed_at is None:
        return True
    if expires_at - now < EXPIRY_MARGIN:
        return True
    return now - renewed_at >= RENEW_EVERY - jitter_for(service_id)


@dataclass(frozen=True, slots=True)
class StopOutcome:
    """What stopping one queued watch did."""

    service_id: str
    stopped: bool  # users.stop answered, or the watch had lapsed already
    revoked: bool  # Google revoked the grant (False: it was gone already, or not tried)
    pending: bool  # failed for a passing reason: queued for the next renewal pass
    error: str | None = None


@dataclass
class RenewReport:
    renewed: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    failed: dict[str, str] = field(default_factory=dict)
    stops: list[StopOutcome] = field(default_factory=list)

    @property
    def stops_pending(self) -> dict[str, str]:
        return {s.service_id: s.error or "" for s in self.stops if s.pending}


def _epoch_ms(value: object) -> datetime:
    return datetime.fromtimestamp(int(str(value)) / 1000, UTC)


async def renew(engine: SyncEngine, service_id: str, config: WatchSettings,
                now: datetime | None = None) -> datetime:
    """Start or renew the service's watch; return its new expiration."""
    service = await engine.service(service_id)
    client = engine.client_for(service)
    try:
        try:
            answer = await client.watch(config.topic, config.label_ids, config.behavior)
        except GmailError as exc:
            if exc.status != 400 or ONE_CLIENT not in str(exc).lower():
                raise
            log.warning("watch refused as a second client: stop, then watch again",
                        extra={"action": "watch.restart", "service": service_id})
            await client.stop()
            answer = await client.watch(config.topic, config.label_ids, config.behavior)
    except OAuthRefused as exc:
        await services_db.disconnect(engine.pool, service_id=service_id,
                                     refresh_token=service.stored_refresh_token,
                                     reason=exc.reason)
        raise
    expires = _epoch_ms(answer["expiration"])
    await watches.record_success(engine.pool, service_id=service_id, expires_at=expires,
                                 history_id=str(answer.get("historyId") or ""),
                                 renewed_at=now or datetime.now(UTC))
    log.info("watch renewed", extra={"action": "watch.renewed", "service": service_id,
                                     "expires": expires.isoformat()})
    await _refresh_identities(engine, service_id)
    return expires


async def _refresh_identities(engine: SyncEngine, service_id: str) -> None:
    """The sender identities ride along with each renewal (about daily); a failure is
    logged and leaves the watch renewed: the next renewal tries again."""
    try:
        await identities.refresh(engine, service_id)
    except DelightBridgeError as exc:
        log.warning("sender identities not refreshed: %s", logs.scrub(f"{exc.code}: {exc}"),
                    extra={"action": "watch.identities_failed", "service": service_id})


async def stop(engine: SyncEngine, service_id: str) -> None:
    """Stop the watch of a service that stays connected (its tokens are kept)."""
    service = await engine.service(service_id)
    await engine.client_for(service).stop()
    await watches.record_stopped(engine.pool, service_id=service_id)


async def disconnect(engine: SyncEngine, service_id: str,
                     reason: str = DISCONNECTED_BY_ADMIN) -> StopOutcome | None:
    """Disconnect a service: its tokens are cleared at once (syncs refuse it from now
    on), then its watch is stopped and its grant revoked (:func:`drain_stops`).

    None when the service was not connected; :class:`ServiceNotFound` when it does
    not exist. Mirrored mail stays: a reconnect resumes from the stored cursor.
    """
    stop_id = await watches.queue_disconnect(engine.pool, service_id=service_id, reason=reason)
    if stop_id is None:
        if not await services_db.exists(engine.pool, service_id=service_id):
            raise ServiceNotFound(service_id)
        return None
    log.info("service disconnected", extra={"action": "watch.disconnected",
                                            "service": service_id})
    outcomes = await drain_stops(engine, only=stop_id)
    return outcomes[0] if outcomes else None


async def drain_stops(engine: SyncEngine, *, only: int | None = None,
                      now: datetime | None = None) -> list[StopOutcome]:
    """Stop every queued watch (or only the queued stop ``only``) and revoke its grant.

    The stops left queued keep their tokens sealed with the current key (a trigger or a
    disconnect queues them as the web app's columns had them, plain).
    """
    now = now or datetime.now(UTC)
    outcomes = [await _stop_queued(engine, row, now)
                for row in await watches.stops_pending(engine.pool, only=only)]
    async with transaction(engine.pool) as conn:
        await tokens.seal_queued_tokens(conn, engine.config.keyring)
    return outcomes


async def _stop_queued(engine: SyncEngine, row: watches.QueuedStop, now: datetime
                       ) -> StopOutcome:
    service_id = row.service_id
    lapsed = row.watch_expires_at is None or row.watch_expires_at <= now
    stopped = revoked = False
    try:
        service = engine.service_from_tokens(
            service_id, row.email, row.refresh_token, row.access_token,
            row.access_token_expires_at)
        client = engine.client_for(service)
        if not lapsed:
            await client.stop()
        stopped = True
        revoked = await client.revoke()
    except OAuthRefused:
        # The grant is dead already: nothing can stop the watch, and it lapses by
        # itself within seven days; nothing is left to revoke either.
        outcome = StopOutcome(service_id, stopped, False, False, "grant already revoked")
    except TokenDecryptionError as exc:
        # The only copy of the tokens, under a key this process lacks (rotated without
        # TOKEN_ENCRYPTION_OLD_KEYS): kept queued, with why, until a process with the key
        # stops the watch. Dropping it would leave the watch publishing and the grant alive.
        message = logs.scrub(str(exc))[:500]
        await watches.stop_failed(engine.pool, stop_id=row.id, message=message)
        log.error("watch stop impossible without the key: %s", message, extra={
            "action": "watch.stop_key_missing", "service": service_id})
        return StopOutcome(service_id, False, False, True, message)
    except GmailError as exc:
        message = logs.scrub(f"{exc.code}: {exc}")[:500]
        if exc.status is None or exc.status == 429 or exc.status >= 500:
            await watches.stop_failed(engine.pool, stop_id=row.id, message=message)
            log.warning("watch stop failed, will retry: %s", message, extra={
                "action": "watch.stop_retry", "service": service_id})
            return StopOutcome(service_id, stopped, False, True, message)
        outcome = StopOutcome(service_id, stopped, False, False, message)
    else:
        outcome = StopOutcome(service_id, True, revoked, False)
    await watches.stop_done(engine.pool, stop_id=row.id)
    extra = {"service": service_id, "reason": row.reason, "lapsed": lapsed,
             "revoked": outcome.revoked}
    if outcome.error is None:
        log.info("watch stopped", extra={"action": "watch.stopped", **extra})
    else:
        log.warning("watch stop given up: %s", outcome.error,
                    extra={"action": "watch.stop_given_up", **extra})
    return outcome


async def renew_all(engine: SyncEngine, config: WatchSettings, *, now: datetime | None = None,
                    force: bool = False, services: Sequence[str] | None = None) -> RenewReport:
    """One pass over every connected service; failures are recorded, not raised."""
    now = now or datetime.now(UTC)
    report = RenewReport()
    if services is None:
        report.stops = await drain_stops(engine, now=now)
    for row in await watches.connected(engine.pool):
        service_id = row.id
        if services is not None and service_id not in services:
            continue
        if not force and not renewal_due(service_id, row.expires_at, row.renewed_at, now):
            report.skipped.append(service_id)
            continue
        try:
            await renew(engine, service_id, config, now)
        except DelightBridgeError as exc:
            message = logs.scrub(str(exc))[:500]
            report.failed[service_id] = message
            await watches.record_failure(engine.pool, service_id=service_id, message=message,
                                         at=now)
            log.error("watch renewal failed: %s", message, extra={
                "action": "watch.failed", "service": service_id, "error_code": exc.code})
        else:
            report.renewed.append(service_id)
    return report


async def renewal_schedule(
    engine: SyncEngine,
    config: WatchSettings,
    stop: asyncio.Event,
    *,
    interval: float = 3600.0,
    on_report: Callable[[RenewReport], None] | None = None,
) -> None:
    """Renew due watches every ``interval`` seconds until ``stop`` is set.

    Each service renews about daily (:func:`renewal_due`); checking hourly catches
    lapses and new services quickly. A pass that cannot reach the database is logged
    and retried at the next tick: the schedule itself never dies of it.
    """
    while not stop.is_set():
        try:
            report = await renew_all(engine, config)
        except (DelightBridgeError, OSError) as exc:
            log.error("watch renewal pass failed: %s", logs.scrub(str(exc)),
                      extra={"action": "watch.pass_failed"})
        else:
            if on_report:
                on_report(report)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), timeout=interval)
