"""The seed's sync endpoint and the runs it records.

``POST /api/services/{id}/sync?mode=full|incremental[&wait=false]`` runs one sync
through the engine and answers with the seed's fields (``ok``, ``mode``,
``threadsProcessed``, ``messagesProcessed``) plus ``runId``, ``historyId`` and
``fellBackToFull``. With ``wait=false`` it answers 202 as soon as the sync holds the
service's lock, and the run is followed at ``GET .../sync/runs/{runId}``.

Every endpoint checks the admin session first (401/403), then its parameters (400),
then the service (404): nobody learns which services exist without being an admin.
"""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

from aiohttp import web

from delightbridge.api import paths
from delightbridge.api.engine import start_sync
from delightbridge.api.errors import InvalidParameter, error_response, to_response
from delightbridge.api.keys import POOL, SETTINGS
from delightbridge.api.sessions import require_admin
from delightbridge.core.errors import DatabaseError, ServiceNotFound, SyncInProgress
from delightbridge.db import runs as runs_db
from delightbridge.db import services
from delightbridge.sync.runs import MODES, Mode, Run, SyncResult

routes = web.RouteTableDef()

RECENT_RUNS = 20
MAX_RUNS = 100


async def _admin(request: web.Request) -> None:
    await require_admin(request.app[POOL], request.cookies, request.app[SETTINGS])


def _mode(request: web.Request) -> Mode:
    raw = request.query.get("mode", "incremental")
    for mode in MODES:
        if raw == mode:
            return mode
    raise InvalidParameter("invalid_mode",
                           f"mode must be 'full' or 'incremental', not {raw[:40]!r}.")


def _wait(request: web.Request) -> bool:
    raw = request.query.get("wait", "true").lower()
    if raw not in ("true", "false", "1", "0"):
        raise InvalidParameter("invalid_wait",
                               f"wait must be true or false, not {raw[:40]!r}.")
    return raw in ("true", "1")


def _limit(request: web.Request) -> int:
    raw = request.query.get("limit", str(RECENT_RUNS))
    if not (raw.isascii() and raw.isdigit() and 1 <= int(raw) <= MAX_RUNS):
        raise InvalidParameter("invalid_limit",
                               f"limit must be a whole number from 1 to {MAX_RUNS}.")
    return int(raw)


def result_body(result: SyncResult) -> dict[str, Any]:
    return {
        "ok": True,
        "mode": result.mode,
        "threadsProcessed": result.threads_processed,
        "messagesProcessed": result.messages_processed,
        "messagesDeleted": result.messages_deleted,
        "runId": str(result.run_id),
        "historyId": None if result.history_id is None else str(result.history_id),
        "fellBackToFull": result.fell_back_to_full,
        "durationSeconds": round(result.duration, 3),
    }


async def _in_progress(request: web.Request, exc: SyncInProgress) -> web.Response:
    """409 sync_in_progress, naming the running run when this database knows it."""
    response = to_response(request, exc)
    try:
        run_id = await runs_db.running(request.app[POOL], service_id=exc.service_id)
    except DatabaseError:
        run_id = None
    if run_id is None:
        return response
    return error_response(SyncInProgress.code,
                          f"A sync of service {exc.service_id[:100]!r} is already running; "
                          f"follow it at its run {run_id}.", runId=str(run_id))


@routes.post("/api/services/{service_id}/sync")
async def trigger_sync(request: web.Request) -> web.Response:
    await _admin(request)
    mode, wait = _mode(request), _wait(request)
    service_id = paths.service_id(request)
    started: asyncio.Future[Run] = asyncio.get_running_loop().create_future()

    def on_start(run: Run) -> None:
        if not started.done():
            started.set_result(run)

    # The sync runs in a task of its own: a client that hangs up does not cancel it,
    # and shutdown waits for it (delightbridge.api.app drains app[BACKGROUND]).
    task = start_sync(request.app, service_id, mode=mode, trigger="api", on_start=on_start)
    try:
        if wait:
            return web.json_response(result_body(await asyncio.shield(task)))
        waiters: set[asyncio.Future[Any]] = {task, started}
        await asyncio.wait(waiters, return_when=asyncio.FIRST_COMPLETED)
        if not started.done():
            task.result()  # raises the domain error (not found, not connected, in progress)
    except SyncInProgress as exc:
        return await _in_progress(request, exc)
    finally:
        if not started.done():
            started.cancel()
    run = started.result()
    return web.json_response({"ok": True, "mode": mode, "runId": str(run.id)}, status=202)


def run_body(row: runs_db.RunRow) -> dict[str, Any]:
    started, finished = row.started_at, row.finished_at
    return {
        "runId": str(row.id),
        "serviceId": row.service_id,
        "mode": row.mode,
        "trigger": row.trigger,
        "state": row.status,
        "fellBackToFull": row.fell_back_to_full,
        "startHistoryId": row.start_history_id,
        "historyId": row.end_history_id,
        "threadsProcessed": row.threads_processed,
        "messagesProcessed": row.messages_processed,
        "messagesDeleted": row.messages_deleted,
        "progress": row.progress,
        "error": ({"code": row.error_code, "message": row.error}
                  if row.error_code else None),
        "startedAt": started.isoformat(),
        "finishedAt": finished.isoformat() if finished else None,
        "durationSeconds": round((finished - started).total_seconds(), 3) if finished else None,
    }


async def _existing_service(request: web.Request) -> str:
    service_id = paths.service_id(request)
    if not await services.exists(request.app[POOL], service_id=service_id):
        raise ServiceNotFound(service_id)
    return service_id


@routes.get("/api/services/{service_id}/sync/runs")
async def list_runs(request: web.Request) -> web.Response:
    await _admin(request)
    limit = _limit(request)
    service_id = await _existing_service(request)
    rows = await runs_db.recent(request.app[POOL], service_id=service_id, limit=limit)
    return web.json_response({"ok": True, "runs": [run_body(r) for r in rows]})


@routes.get("/api/services/{service_id}/sync/runs/{run_id}")
async def get_run(request: web.Request) -> web.Response:
    await _admin(request)
    service_id = await _existing_service(request)
    try:
        run_id: uuid.UUID | None = uuid.UUID(request.match_info["run_id"])
    except ValueError:
        run_id = None
    row = run_id and await runs_db.get(request.app[POOL], service_id=service_id, run_id=run_id)
    if not row:
        return error_response("run_not_found",
                              f"Service {service_id[:100]!r} has no sync run with that id.")
    return web.json_response({"ok": True, "run": run_body(row)})
