"""Jobs run in a process of their own: ``python -m bench.child JOB`` (see bench.procs).

* ``full_sync``: one ``SyncEngine.sync(mode="full")`` of a service, exactly as the CLI
  and the API run it; optionally profiled (cProfile or pyinstrument), with the
  quota pacer instrumented (timestamps only, behaviour unchanged) or with
  ``tracemalloc`` reporting what the sync held at its peak and what it left allocated
  (:class:`MemoryTrace`); RSS is sampled each second.
* ``reference_sync``: the original algorithm (:mod:`bench.reference`).
* ``consumer``: the consumer's ``Worker`` (streaming pull, coalescing scheduler,
  engine), as ``delightbridge consume`` runs it, with an observer that timestamps
  every message's outcome; it stops when stdin closes or after ``expect`` outcomes.

Each result carries the process's CPU seconds for the measured part
(``time.process_time``: every thread) and its peak RSS (``ru_maxrss``).
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import resource
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any


def emit(event: str, **fields: Any) -> None:
    sys.stdout.write(json.dumps({"event": event, **fields}, default=str) + "\n")
    sys.stdout.flush()


def _rss_mb() -> float:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def _peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


def settings_for(spec: dict[str, Any], **extra: Any) -> Any:
    from delightbridge.core.settings import Settings

    sim = spec["sim"]
    values: dict[str, Any] = {
        "database_url": spec["db_url"],
        "gmail_api_endpoint": sim["base_url"], "google_oauth_token_uri": sim["token_uri"],
        "google_client_id": sim["client_id"], "google_client_secret": sim["client_secret"],
        "log_format": "json", "log_level": "WARNING",
        # The scenarios' simulators enforce the legacy model (250 units/s) unless told.
        "gmail_quota_profile": spec.get("quota_profile", "legacy"),
    }
    values.update(spec.get("settings", {}))
    values.update(extra)
    return Settings(**values)


def engine_config(settings: Any, overrides: dict[str, Any]) -> Any:
    from delightbridge.sync.engine import EngineConfig
    from delightbridge.sync.gmail.quota import QuotaProfile

    if overrides.get("quota") == "unlimited":  # JSON cannot carry the profile itself
        overrides = {**overrides, "quota": QuotaProfile.unlimited()}
    elif isinstance(overrides.get("quota"), dict):
        # Changes to the settings' profile: windows shortened to compress time.
        from dataclasses import replace

        from delightbridge.sync.gmail.quota import profile_from_settings

        overrides = {**overrides,
                     "quota": replace(profile_from_settings(settings), **overrides["quota"])}
    return EngineConfig.from_settings(settings, **overrides)


# --------------------------------------------------------------------------- pacer probe


class PacerProbe:
    """Timestamps of every quota reservation: asked, granted, answered (settled)."""

    def __init__(self) -> None:
        self.pending: dict[int, list[float]] = {}
        self.done: list[list[float]] = []

    def install(self) -> None:
        from delightbridge.sync.gmail import pacing

        original_acquire = pacing.QuotaPacer.acquire
        original_settle = pacing.QuotaPacer.settle
        probe = self

        async def acquire(self: Any, units: int, *, bulk: bool = False) -> Any:
            asked = time.monotonic()
            entry = await original_acquire(self, units, bulk=bulk)
            probe.pending[id(entry)] = [asked, time.monotonic(), float(units)]
            return entry

        def settle(self: Any, entry: Any) -> None:
            original_settle(self, entry)
            record = probe.pending.pop(id(entry), None)
            if record is not None:
                probe.done.append([*record, time.monotonic()])

        pacing.QuotaPacer.acquire = acquire  # type: ignore[method-assign]
        pacing.QuotaPacer.settle = settle  # type: ignore[method-assign]

    def summary(self, started: float, ended: float) -> dict[str, Any]:
        """Reservations, and where the sync's time went (``started``/``ended``: the
        sync's monotonic bounds): before the first reservation, after the last answer,
        and between them while no call waited for the pacer (it had nothing to send)."""
        from statistics import median

        if not self.done:
            return {}
        waits = [g - a for a, g, _, _ in self.done]
        flights = [s - g for _, g, _, s in self.done]
        units = [u for _, _, u, _ in self.done]
        first = min(a for a, _, _, _ in self.done)
        last = max(s for _, _, _, s in self.done)
        # Time between first and last when no call was asked-but-not-granted.
        waiting = sorted((a, g) for a, g, _, _ in self.done if g > a)
        covered, reach = 0.0, first
        gaps: list[tuple[float, float]] = []  # (length, offset from the sync's start)
        for a, g in waiting:
            if a > reach:
                gaps.append((a - reach, reach - started))
            if g > reach:
                covered += g - max(a, reach)
                reach = g
        gaps.sort(reverse=True)
        return {"reservations": len(self.done), "units": sum(units),
                "median_units": median(units), "median_wait_s": median(waits),
                "median_in_flight_s": median(flights), "max_in_flight_s": max(flights),
                "unit_weighted_in_flight_s": sum(u * f for u, f in zip(units, flights,
                                                                      strict=True)) / sum(units),
                "total_wait_s": sum(waits), "head_s": first - started,
                "tail_s": ended - last, "pacer_idle_s": (last - first) - covered,
                "pacer_idle_gaps": len(gaps),
                "pacer_idle_median_gap_s": median([g for g, _ in gaps]) if gaps else 0.0,
                "pacer_idle_longest": [[round(g, 3), round(t, 2)] for g, t in gaps[:5]]}


# --------------------------------------------------------------------------- profiling


def _inline_to_thread() -> None:
    """Profilers see one thread: run ``asyncio.to_thread`` work inline on the loop."""

    async def inline(func: Any, /, *args: Any, **kwargs: Any) -> Any:
        return func(*args, **kwargs)

    asyncio.to_thread = inline


class Profile:
    def __init__(self, kind: str | None, out: str | None) -> None:
        self.kind = kind
        self.out = Path(out) if out else None
        self._profiler: Any = None

    def __enter__(self) -> Profile:
        if self.kind == "cprofile":
            import cProfile

            self._profiler = cProfile.Profile()
            self._profiler.enable()
        elif self.kind == "pyinstrument":
            from pyinstrument import Profiler

            self._profiler = Profiler(interval=0.001, async_mode="disabled")
            self._profiler.start()
        return self

    def __exit__(self, *exc: object) -> None:
        if self._profiler is None:
            return
        if self.kind == "cprofile":
            self._profiler.disable()
            if self.out:
                self._profiler.dump_stats(str(self.out))
        else:
            self._profiler.stop()
            if self.out:
                self.out.write_text(self._profiler.output_text(unicode=True, color=False,
                                                               show_all=False))


# --------------------------------------------------------------------------- jobs


class RssSampler:
    """The process's RSS once a second while the sync runs: a plateau with spikes is a
    bounded working set; a steady climb is something kept per message."""

    def __init__(self) -> None:
        self.samples: list[tuple[float, float]] = []
        self._task: asyncio.Task[None] | None = None

    async def _run(self, started: float) -> None:
        while True:
            self.samples.append((time.perf_counter() - started, _rss_mb()))
            await asyncio.sleep(1.0)

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(time.perf_counter()))

    def stop(self) -> list[list[float]]:
        if self._task:
            self._task.cancel()
        self.samples.append((self.samples[-1][0] + 1 if self.samples else 0.0, _rss_mb()))
        return [[round(t, 1), round(r, 1)] for t, r in self.samples]


class MemoryTrace:
    """``tracemalloc`` around a sync: what it held at its peak and what it left allocated.

    Every ``every`` seconds, while the traced memory is above its earlier highest, a
    snapshot is taken (slow: this is a diagnosis, not a measurement; RSS figures of a
    traced run are not comparable). ``held_at_peak``: the allocations of the highest
    snapshot that were not there before the sync, by line, largest first: what the
    sync holds at once (pages in flight, sets growing with the mailbox...).
    ``retained_after_sync``: the same after it, once collected: caches and leaks.
    """

    def __init__(self, every: float = 2.0, top: int = 15) -> None:
        import tracemalloc

        self._every, self._top = every, top
        tracemalloc.start(1)
        self._before = tracemalloc.take_snapshot()
        self._peak: Any = None
        self._peak_bytes = 0
        self._task = asyncio.create_task(self._run())

    async def _run(self) -> None:
        import tracemalloc

        while True:
            await asyncio.sleep(self._every)
            current = tracemalloc.get_traced_memory()[0]
            if current > self._peak_bytes:
                self._peak_bytes, self._peak = current, tracemalloc.take_snapshot()

    def _diff(self, after: Any) -> list[dict[str, Any]]:
        stats = after.compare_to(self._before, "lineno")[:self._top]
        return [{"where": str(s.traceback[0]), "kib": round(s.size_diff / 1024, 1),
                 "blocks": s.count_diff} for s in stats]

    def stop(self) -> dict[str, Any]:
        import gc
        import tracemalloc

        self._task.cancel()
        gc.collect()
        after = tracemalloc.take_snapshot()
        tracemalloc.stop()
        return {"traced_peak_mb": round(self._peak_bytes / 2**20, 1),
                "held_at_peak": self._diff(self._peak) if self._peak is not None else None,
                "retained_after_sync": self._diff(after)}


async def full_sync(spec: dict[str, Any]) -> dict[str, Any]:
    from delightbridge.db.pool import create_pool
    from delightbridge.sync.engine import SyncEngine

    probe = PacerProbe() if spec.get("probe_pacer") else None
    if probe:
        probe.install()
    if spec.get("profile"):
        _inline_to_thread()
    settings = settings_for(spec)
    config = engine_config(settings, spec.get("engine", {}))
    pool = await create_pool(spec["db_url"])
    try:
        async with SyncEngine.open(pool, config) as engine:
            rss_before = _rss_mb()
            traced = MemoryTrace() if spec.get("tracemalloc") else None
            sampler = RssSampler()
            sampler.start()
            cpu0, wall0, started = time.process_time(), time.perf_counter(), time.monotonic()
            emit("started", monotonic=started)
            with Profile(spec.get("profile"), spec.get("profile_out")):
                result = await engine.sync(spec["service_id"], mode="full", trigger="cli")
            wall, cpu = time.perf_counter() - wall0, time.process_time() - cpu0
            ended = time.monotonic()
            timeline = sampler.stop()
            memory = traced.stop() if traced is not None else {}
    finally:
        await pool.close()
    return {
        "elapsed_s": wall, "cpu_s": cpu, "rss_before_mb": rss_before,
        "peak_rss_mb": _peak_rss_mb(), "rss_after_mb": _rss_mb(),
        "messages": result.messages_processed, "threads": result.threads_processed,
        "mode": result.mode, "engine_duration_s": result.duration,
        "pacer": probe.summary(started, ended) if probe else None, "rss_timeline": timeline,
        **memory,
    }


async def reference_sync(spec: dict[str, Any]) -> dict[str, Any]:
    from bench.reference import run_reference
    from delightbridge.db.pool import create_pool
    from delightbridge.sync.engine import SyncEngine

    settings = settings_for(spec)
    config = engine_config(settings, spec.get("engine", {}))
    pool = await create_pool(spec["db_url"])
    try:
        async with SyncEngine.open(pool, config) as engine:
            cpu0, wall0 = time.process_time(), time.perf_counter()
            outcome = await run_reference(engine, spec["service_id"],
                                          max_threads=spec.get("max_threads"),
                                          page_size=spec.get("page_size", 100))
            wall, cpu = time.perf_counter() - wall0, time.process_time() - cpu0
    finally:
        await pool.close()
    return {"elapsed_s": wall, "cpu_s": cpu, "peak_rss_mb": _peak_rss_mb(), **outcome}


async def consumer(spec: dict[str, Any]) -> dict[str, Any]:
    from delightbridge.consumer.config import ConsumerConfig
    from delightbridge.consumer.handler import Delivery, Outcome
    from delightbridge.consumer.worker import Worker

    pubsub = spec["pubsub"]
    settings = settings_for(spec, pubsub_project=pubsub["project"],
                            pubsub_topic=pubsub["topic_id"],
                            pubsub_subscription=pubsub["subscription_id"],
                            pubsub_emulator_host=pubsub["host"])
    config = ConsumerConfig(**{
        "http_host": "127.0.0.1", "http_port": 0, "sweep_interval": 3600.0,
        "stale_after": 86_400.0, "shutdown_timeout": 10.0, **spec.get("consumer", {})})
    expect: int | None = spec.get("expect")
    outcomes: list[tuple[float, str]] = []
    done = asyncio.Event()

    def observe(delivery: Delivery, outcome: Outcome) -> None:
        outcomes.append((time.monotonic(), outcome.status))
        if expect is not None and len(outcomes) >= expect:
            done.set()

    worker = Worker(settings, config,
                    engine_config=engine_config(settings, spec.get("engine", {})),
                    observers=[observe])
    task = asyncio.create_task(worker.run())
    started = asyncio.create_task(worker.started.wait())
    await asyncio.wait({task, started}, timeout=60, return_when=asyncio.FIRST_COMPLETED)
    if task.done():
        task.result()
        raise RuntimeError("the consumer worker ended during start-up")
    if not worker.started.is_set():
        raise RuntimeError("the consumer worker did not start within 60 s")
    cpu0, ready_at = time.process_time(), time.monotonic()
    emit("ready", monotonic=ready_at)

    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)

    async def stdin_closed() -> None:
        while await reader.read(1024):
            pass

    closed = asyncio.create_task(stdin_closed())
    waiter = asyncio.create_task(done.wait())
    await asyncio.wait({closed, waiter, task}, timeout=spec.get("timeout", 600),
                       return_when=asyncio.FIRST_COMPLETED)
    finished_at = time.monotonic()
    cpu = time.process_time() - cpu0
    syncs = worker.scheduler.syncs_started if worker.scheduler else None
    worker.stop.set()
    code = await asyncio.wait_for(task, 120)
    closed.cancel()
    waiter.cancel()
    statuses = Counter(status for _, status in outcomes)
    return {
        "exit_code": code, "ready_at": ready_at, "finished_at": finished_at,
        "outcomes": len(outcomes), "statuses": dict(statuses),
        "first_outcome_at": outcomes[0][0] if outcomes else None,
        "last_outcome_at": outcomes[-1][0] if outcomes else None,
        "outcome_times": [t for t, _ in outcomes] if spec.get("times") else None,
        "syncs_started": syncs, "cpu_s": cpu, "peak_rss_mb": _peak_rss_mb(),
    }


async def many_full_syncs(spec: dict[str, Any]) -> dict[str, Any]:
    """Full syncs (imports) of several services at once in one engine: one consumer
    process's share of a deployment importing many mailboxes (the project budget is
    shared with the other processes through PostgreSQL)."""
    from delightbridge.db.pool import create_pool
    from delightbridge.sync.engine import SyncEngine

    settings = settings_for(spec)
    config = engine_config(settings, spec.get("engine", {}))
    services: list[str] = spec["services"]
    pool = await create_pool(spec["db_url"], max_size=spec.get("pool_size", 20))
    try:
        async with SyncEngine.open(pool, config) as engine:
            emit("started", monotonic=time.monotonic())
            cpu0, wall0 = time.process_time(), time.perf_counter()
            slots = asyncio.Semaphore(spec.get("at_once", 10))

            async def one(service: str) -> Any:
                async with slots:
                    return await engine.sync(service, mode="full", trigger="cli")

            results = await asyncio.gather(*(one(s) for s in services),
                                           return_exceptions=True)
            wall, cpu = time.perf_counter() - wall0, time.process_time() - cpu0
    finally:
        await pool.close()
    failed = [f"{type(r).__name__}: {r}" for r in results if isinstance(r, BaseException)]
    return {"elapsed_s": wall, "cpu_s": cpu, "peak_rss_mb": _peak_rss_mb(),
            "messages": sum(r.messages_processed for r in results
                            if not isinstance(r, BaseException)),
            "failed": failed[:5], "failures": len(failed)}


JOBS = {"full_sync": full_sync, "reference_sync": reference_sync, "consumer": consumer,
        "many_full_syncs": many_full_syncs}


def main() -> int:
    from delightbridge.core import allocator

    allocator.tune()  # as the console script does: the engine measured as it runs
    job = sys.argv[1]
    spec = json.loads(sys.stdin.readline())
    # BENCH_CHILD_LOG_LEVEL=INFO: the children's logs (in <results>/logs) tell more.
    logging.basicConfig(level=os.environ.get("BENCH_CHILD_LOG_LEVEL", "WARNING"),
                        stream=sys.stderr, format="%(asctime)s %(name)s %(message)s")
    try:
        result = asyncio.run(JOBS[job](spec))
    except BaseException as exc:
        logging.exception("bench job %s failed", job)
        emit("error", error=f"{type(exc).__name__}: {exc}")
        return 1
    emit("result", **result)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
