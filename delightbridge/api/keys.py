"""Typed application keys: every resource the API's handlers share."""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING

import asyncpg
from aiohttp import web

from delightbridge.api.config import ApiConfig
from delightbridge.api.metrics import ApiMetrics

if TYPE_CHECKING:
    from delightbridge.api.ops import DatabaseHealth
from delightbridge.core.healthcheck import PeriodicCheck
from delightbridge.core.settings import Settings
from delightbridge.sync.engine import SyncEngine

SETTINGS = web.AppKey("settings", Settings)
API_CONFIG = web.AppKey("api_config", ApiConfig)
POOL = web.AppKey("pool", asyncpg.Pool)
ENGINE = web.AppKey("engine", SyncEngine)
METRICS = web.AppKey("metrics", ApiMetrics)
BACKGROUND = web.AppKey("background", set[asyncio.Task[object]])
#: The database health check behind /readyz and /metrics (see delightbridge.api.ops).
HEALTH: web.AppKey[PeriodicCheck[DatabaseHealth]] = web.AppKey("health")
#: On the operations app: the API app whose health and metrics it serves.
MAIN_APP = web.AppKey("main_app", web.Application)
