"""Gmail push watches: start, renew daily, stop; decisions pure, I/O at the edges.

Gmail drops a watch seven days after ``users.watch`` and recommends renewing daily.
:func:`renewal_due` decides (pure): no watch, an expired or soon-expiring watch, or
one renewed more than a day ago (less a per-service jitter, so a fleet of services
does not renew in one burst). :func:`renew` calls ``users.watch`` with the configured
topic and label filter; when Gmail answers "Only one user push notification client
allowed per developer" it calls ``users.stop`` and watches again. Outcomes are
recorded on the service (``watch_*`` columns); a refused refresh token disconnects
the service as a sync would.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import asyncpg

from db.queries import query
from delightbridge import logs
from delightbridge.errors import DelightBridgeError, GmailError, OAuthRefused
from delightbridge.settings import Settings
from syncengine.engine import SyncEngine

log = logging.getLogger(__name__)

RENEW_EVERY = timedelta(days=1)
JITTER = timedelta(hours=2)
EXPIRY_MARGIN = timedelta(days=2)  # renew at once when less than this is left
ONE_CLIENT = "only one user push notification client"


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


@dataclass
class RenewReport:
    renewed: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    failed: dict[str, str] = field(default_factory=dict)


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
        await engine.pool.execute(query("sync_disconnect"), service_id,
                                  service.stored_refresh_token, exc.reason)
        raise
    expires = _epoch_ms(answer["expiration"])
    await engine.pool.execute(query("watch_record_success"), service_id, expires,
                              str(answer.get("historyId") or ""), now or datetime.now(UTC))
    log.info("watch renewed", extra={"action": "watch.renewed", "service": service_id,
                                     "expires": expires.isoformat()})
    return expires


async def stop(engine: SyncEngine, service_id: str) -> None:
    """Stop the service's watch (on disconnect or deletion)."""
    service = await engine.service(service_id)
    await engine.client_for(service).stop()
    await engine.pool.execute(query("watch_record_stopped"), service_id)


async def renew_all(engine: SyncEngine, config: WatchSettings, *, now: datetime | None = None,
                    force: bool = False, services: Sequence[str] | None = None) -> RenewReport:
    """One pass over every connected service; failures are recorded, not raised."""
    now = now or datetime.now(UTC)
    report = RenewReport()
    for row in await engine.pool.fetch(query("watch_services")):
        service_id = row["id"]
        if services is not None and service_id not in services:
            continue
        if not force and not renewal_due(service_id, row["watch_expires_at"],
                                         row["watch_renewed_at"], now):
            report.skipped.append(service_id)
            continue
        try:
            await renew(engine, service_id, config, now)
        except DelightBridgeError as exc:
            message = logs.scrub(str(exc))[:500]
            report.failed[service_id] = message
            await engine.pool.execute(query("watch_record_failure"), service_id, message, now)
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
        except (DelightBridgeError, OSError, asyncpg.PostgresError,
                asyncpg.InterfaceError) as exc:
            log.error("watch renewal pass failed: %s", logs.scrub(str(exc)),
                      extra={"action": "watch.pass_failed"})
        else:
            if on_report:
                on_report(report)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), timeout=interval)
