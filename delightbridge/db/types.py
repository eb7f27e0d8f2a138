"""Type aliases for asyncpg objects the project passes around."""

from __future__ import annotations

from typing import TypeAlias

import asyncpg
from asyncpg.pool import PoolConnectionProxy

# A connection, whether acquired from a pool or opened directly.
Connection: TypeAlias = asyncpg.Connection | PoolConnectionProxy
# What a single statement runs on: a connection (in its transaction), or the pool.
Executor: TypeAlias = Connection | asyncpg.Pool
