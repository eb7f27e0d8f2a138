"""Typed application keys: every resource the API's handlers share."""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING

import asyncpg
from aiohttp import web

from api.config import ApiConfig
from api.metrics import ApiMetrics

if TYPE_CHECKING:
    from api.ops import DatabaseHealth
from delightbridge.healthcheck import PeriodicCheck
from delightbridge.settings import Settings
from syncengine.engine import SyncEngine

SETTINGS = web.AppKey("settings", Settings)
API_CONFIG = web.AppKey("api_config", ApiConfig)
POOL = web.AppKey("pool", asyncpg.Pool)
ENGINE = web.AppKey("engine", SyncEngine)
METRICS = web.AppKey("metrics", ApiMetrics)
BACKGROUND = web.AppKey("background", set[asyncio.Task[object]])
#: The database health check behind /readyz and /metrics (see api.ops).
HEALTH: web.AppKey[PeriodicCheck[DatabaseHealth]] = web.AppKey("health")
#: On the operations app: the API app whose health and metrics it serves.
MAIN_APP = web.AppKey("main_app", web.Application)
