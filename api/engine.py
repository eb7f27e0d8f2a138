"""The sync engine as the API runs it: every sync counted, every Gmail call too.

:class:`ObservedEngine` is the engine itself, with one addition: the Gmail clients it
makes for a sync started through :func:`run_sync` are remembered (in a context
variable of that sync's task), so that when the sync ends their call and error
counters become Prometheus metrics. :func:`start_sync` runs a sync in a background
task tracked in ``app[BACKGROUND]`` (shutdown waits for it; a client hanging up does
not cancel it).
"""

from __future__ import annotations

import asyncio
import contextvars
import logging
import uuid
from collections.abc import Callable
from typing import Any

from aiohttp import web

from api.keys import BACKGROUND, ENGINE, METRICS
from api.metrics import ApiMetrics
from delightbridge.errors import DelightBridgeError
from syncengine.engine import ServiceRow, SyncEngine
from syncengine.gmail.client import GmailClient, error_reason
from syncengine.runs import Mode, Run, SyncResult, Trigger

log = logging.getLogger(__name__)

_clients: contextvars.ContextVar[list[GmailClient] | None] = contextvars.ContextVar(
    "api_gmail_clients", default=None
)


class ObservedEngine(SyncEngine):
    """A :class:`SyncEngine` whose Gmail clients report to the API's metrics."""

    def client_for(self, service: ServiceRow, *, bulk: bool = False) -> GmailClient:
        client = super().client_for(service, bulk=bulk)
        collected = _clients.get()
        if collected is not None:
            collected.append(client)
        return client


def _record_gmail(metrics: ApiMetrics, clients: list[GmailClient]) -> None:
    for client in clients:
        for method, count in client.stats.calls.items():
            metrics.gmail_calls.labels(method).inc(count)
        for key, count in client.stats.errors.items():
            metrics.gmail_errors.labels(error_reason(key)).inc(count)





class GmailObserver:
    """Collects the Gmail clients made meanwhile; counts their calls on exit."""

    def __init__(self, metrics: ApiMetrics) -> None:
        self._metrics = metrics
        self._clients: list[GmailClient] = []
        self._token: contextvars.Token[list[GmailClient] | None] | None = None

    def __enter__(self) -> GmailObserver:
        self._token = _clients.set(self._clients)
        return self

    def __exit__(self, *exc: object) -> None:
        _record_gmail(self._metrics, self._clients)
        if self._token is not None:
            _clients.reset(self._token)


async def run_sync(
    app: web.Application,
    service_id: str,
    *,
    mode: Mode,
    trigger: Trigger,
    wait: float | None = None,
    run_id: uuid.UUID | None = None,
    on_start: Callable[[Run], None] | None = None,
) -> SyncResult:
    """One sync through the app's engine, counted in the app's metrics."""
    engine, metrics = app[ENGINE], app[METRICS]
    with GmailObserver(metrics):
        try:
            result = await engine.sync(service_id, mode=mode, trigger=trigger, wait=wait,
                                       run_id=run_id, on_start=on_start)
        except asyncio.CancelledError:
            metrics.sync_runs.labels(mode, trigger, "cancelled").inc()
            raise
        except DelightBridgeError as exc:
            metrics.sync_runs.labels(mode, trigger, exc.code).inc()
            raise
        except BaseException:
            metrics.sync_runs.labels(mode, trigger, "internal").inc()
            raise
    metrics.sync_runs.labels(result.mode, trigger, "succeeded").inc()
    metrics.sync_seconds.labels(result.mode).observe(result.duration)
    return result


def track(app: web.Application, task: asyncio.Task[Any]) -> None:
    """Keep ``task`` until it ends (shutdown waits for it) and never lose its error."""
    app[BACKGROUND].add(task)
    task.add_done_callback(app[BACKGROUND].discard)
    task.add_done_callback(_retrieve)


def _retrieve(task: asyncio.Task[Any]) -> None:
    if task.cancelled():
        return
    exc = task.exception()
    if exc is not None and not isinstance(exc, DelightBridgeError):
        # Domain errors are logged by the engine (and answered by the API when awaited).
        log.error("background task failed: %s", type(exc).__name__, exc_info=exc,
                  extra={"action": "api.background_failed", "task": task.get_name()})


def start_sync(
    app: web.Application,
    service_id: str,
    *,
    mode: Mode,
    trigger: Trigger,
    wait: float | None = None,
    run_id: uuid.UUID | None = None,
    on_start: Callable[[Run], None] | None = None,
) -> asyncio.Task[SyncResult]:
    """:func:`run_sync` in a background task of the app."""
    task = asyncio.create_task(
        run_sync(app, service_id, mode=mode, trigger=trigger, wait=wait, run_id=run_id,
                 on_start=on_start),
        name=f"sync:{service_id}:{trigger}",
    )
    track(app, task)
    return task
