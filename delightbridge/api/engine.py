"""The sync engine as the API runs it.

:func:`start_sync` runs a sync in a background task tracked in ``app[BACKGROUND]``
(shutdown waits for it; a client hanging up does not cancel it). The engine tells the
app's metrics (``app[METRICS].engine``, registered in ``engine.observers``) of every
Gmail call, sync and import.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import Callable
from typing import Any

from aiohttp import web

from delightbridge.api.keys import BACKGROUND, ENGINE
from delightbridge.core.errors import DelightBridgeError
from delightbridge.sync.runs import Mode, Run, SyncResult, Trigger

log = logging.getLogger(__name__)


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
    """A sync by the app's engine (which tells the app's metrics), in a background task
    of the app."""
    task = asyncio.create_task(
        app[ENGINE].sync(service_id, mode=mode, trigger=trigger, wait=wait, run_id=run_id,
                         on_start=on_start),
        name=f"sync:{service_id}:{trigger}",
    )
    track(app, task)
    return task
