"""Typed application keys: every resource the API's handlers share."""

from __future__ import annotations

import asyncio

import asyncpg
from aiohttp import web

from api.metrics import ApiMetrics
from delightbridge.settings import Settings
from syncengine.engine import SyncEngine

SETTINGS = web.AppKey("settings", Settings)
POOL = web.AppKey("pool", asyncpg.Pool)
ENGINE = web.AppKey("engine", SyncEngine)
METRICS = web.AppKey("metrics", ApiMetrics)
BACKGROUND = web.AppKey("background", set[asyncio.Task[object]])
