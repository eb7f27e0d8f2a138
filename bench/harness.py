"""What the scenarios share: sizes, PostgreSQL, simulator processes, Pub/Sub, services.

Simulator processes are started on first use and kept for the whole command, so
``python -m bench all`` seeds each mailbox once: the 10,000-message mailbox serves
the quota, ingest and memory scenarios (a second simulator process holds an identical
copy for the reference algorithm, so that both run at once, each under its own
quota), and one Pub/Sub-enabled simulator holds the watched fleet of the freshness
and consumer scenarios.
"""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import asyncpg

from bench import env
from bench.sim import Mailbox, SimProcess

BULK_ADDRESS = "bulk@bench.example"


@dataclass(frozen=True)
class Sizes:
    """Every knob of every scenario for one ``--size``."""

    name: str
    # 1. full sync under quota
    quota_messages: int
    quota_latency_ms: float
    reference_threads: int | None  # None: the whole mailbox
    # 2. ingest ceiling
    ingest_runs: int
    ingest_profile: tuple[str, ...]
    # 5. memory: message counts measured (the bulk mailbox's size is always one)
    memory_sizes: tuple[int, ...]
    # 3. freshness
    fleet_mailboxes: int
    fleet_seed_messages: int
    freshness_rate: float
    freshness_seconds: float
    freshness_latencies_ms: tuple[float, ...]
    # 4. consumer throughput
    consumer_changes_per_mailbox: int
    consumer_runs: int
    # transport comparison
    transport_messages: int
    quota_units_per_second: float = 250.0
    # 6. imports under both quota models
    import_compress: float = 10.0  # the 2026 minute is 60/import_compress seconds
    inbox_messages: int = 3000
    inbox_threads: int = 100
    project_mailboxes: int = 50  # per process, 3 processes
    project_at_once: int = 10  # importing at a time per process
    project_messages: int = 100  # per mailbox
    project_units: int = 40_000  # the project's budget per (compressed) minute
    fresh_import_messages: int = 100_000  # the mailbox importing while new mail arrives
    fresh_warmup_s: float = 70.0  # the import runs this long first (past its burst)
    fresh_seconds: float = 60.0
    fresh_rate: float = 0.5  # new messages a second


SIZES: dict[str, Sizes] = {
    "smoke": Sizes(
        name="smoke", quota_messages=150, quota_latency_ms=10, reference_threads=None,
        ingest_runs=1, ingest_profile=("cprofile",), memory_sizes=(),
        fleet_mailboxes=4, fleet_seed_messages=3, freshness_rate=4.0, freshness_seconds=2.0,
        freshness_latencies_ms=(0.0,), consumer_changes_per_mailbox=5, consumer_runs=1,
        transport_messages=60, import_compress=60.0, inbox_messages=300, inbox_threads=20,
        project_mailboxes=4, project_at_once=2, project_messages=10, project_units=3000,
        fresh_import_messages=600, fresh_warmup_s=1.0, fresh_seconds=3.0, fresh_rate=2.0),
    "default": Sizes(
        name="default", quota_messages=10_000, quota_latency_ms=50, reference_threads=None,
        ingest_runs=3, ingest_profile=("cprofile", "pyinstrument"), memory_sizes=(),
        fleet_mailboxes=100, fleet_seed_messages=6, freshness_rate=20.0,
        freshness_seconds=30.0, freshness_latencies_ms=(0.0, 50.0),
        consumer_changes_per_mailbox=50, consumer_runs=3, transport_messages=600),
    "large": Sizes(
        name="large", quota_messages=10_000, quota_latency_ms=50, reference_threads=None,
        ingest_runs=3, ingest_profile=("cprofile", "pyinstrument"), memory_sizes=(100_000,),
        fleet_mailboxes=100, fleet_seed_messages=6, freshness_rate=20.0,
        freshness_seconds=120.0, freshness_latencies_ms=(0.0, 50.0),
        consumer_changes_per_mailbox=50, consumer_runs=3, transport_messages=600),
}


def threads_for(messages: int) -> int:
    """Threads of a mailbox averaging three messages a thread."""
    return max(1, round(messages / 3))


@dataclass
class Fleet:
    """The watched mailboxes of scenarios 3 and 4, synced into one database."""

    sim: SimProcess
    topic: env.PubSubTopic
    db_url: str
    mailboxes: list[Mailbox]
    services: list[str]


@dataclass
class Harness:
    sizes: Sizes
    pg: env.Postgres
    results_dir: Path
    repeat: int = 1
    stack: contextlib.AsyncExitStack = field(default_factory=contextlib.AsyncExitStack)
    sims: dict[str, SimProcess] = field(default_factory=dict)
    mailboxes: dict[str, Mailbox] = field(default_factory=dict)
    pubsub_host: str | None = None
    fleet: Fleet | None = None
    cache: dict[str, Any] = field(default_factory=dict)
    # EngineConfig overrides for every engine process (``--engine-option``): what-ifs.
    engine_options: dict[str, Any] = field(default_factory=dict)
    # Another engine (a directory holding delightbridge/sync/) measured in the same command,
    # alternating with the default one (``--compare-engine-path``): same-run ratios.
    compare_engine: str | None = None
    # Memory scenario: also a tracemalloc-traced sync of each size (``--tracemalloc``).
    trace_memory: bool = False
    _locks: dict[str, asyncio.Lock] = field(default_factory=dict)

    def lock(self, name: str) -> asyncio.Lock:
        return self._locks.setdefault(name, asyncio.Lock())

    async def sim(self, name: str, **options: Any) -> SimProcess:
        if name not in self.sims:
            self.sims[name] = await self.stack.enter_async_context(SimProcess.start(**options))
        return self.sims[name]

    async def seeded(self, name: str, messages: int) -> tuple[SimProcess, Mailbox]:
        """Simulator process ``name`` holding the bulk mailbox with ``messages`` messages
        (seed 1, three messages a thread): identical content in every process."""
        async with self.lock(name):
            sim = await self.sim(name)
            key = f"{name}:{messages}"
            if key not in self.mailboxes:
                box = await sim.create_mailbox(BULK_ADDRESS, "Bulk")
                await sim.seed(box, messages, threads_for(messages), seed=1)
                self.mailboxes[key] = box
            return sim, self.mailboxes[key]

    async def pubsub(self) -> str:
        async with self.lock("pubsub"):
            if self.pubsub_host is None:
                self.pubsub_host = await self.stack.enter_async_context(
                    env.pubsub_emulator(self.results_dir / "logs"))
            return self.pubsub_host

    async def service_db(self, label: str, sim: SimProcess, mailbox: Mailbox,
                         service_id: str = "svc-bench") -> str:
        """A fresh database with ``mailbox`` connected as ``service_id``."""
        url = await self.pg.fresh(label)
        await env.add_service(url, service_id, mailbox.address, mailbox.refresh_token)
        return url

    @staticmethod
    def sim_spec(sim: SimProcess) -> dict[str, Any]:
        return {"base_url": sim.base_url, "token_uri": sim.token_uri,
                "client_id": sim.client_id, "client_secret": sim.client_secret}

    async def close(self) -> None:
        await self.stack.aclose()


async def count_rows(url: str, service_id: str) -> int:
    conn = await asyncpg.connect(url)
    try:
        return int(await conn.fetchval(
            "SELECT count(*) FROM emails e JOIN email_threads t ON t.id = e.thread_id "
            "WHERE t.account_id = $1", service_id))
    finally:
        await conn.close()
