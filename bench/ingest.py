"""Scenario 2: the ingest ceiling, quota and latency off.

The same 10,000-message mailbox, the simulator answering at once with no quota and
the engine's pacer budget out of reach (1,000,000 units/s); batches of 50, 4 in
flight as in production. The engine runs in its own process, the simulator in
another, PostgreSQL in its own: on a 2-core machine they share the cores, and the
simulator rendering ``format=full`` answers costs CPU too. So each run reports:

* end to end: messages parsed and stored per second (wall clock of the sync);
* the engine process's own CPU seconds per message (all its threads), and the
  simulator's, so the engine's own ceiling is ``1 / (engine CPU s per message)``
  (one process whose Python code holds the GIL: at most one core) when nothing else
  needs that core;
* how busy the machine was (all processes, /proc/stat).

Then the sync is profiled (not measured): cProfile reduced to categories
(:mod:`bench.profiling`) and, when installed, a pyinstrument tree. Profiled runs parse
inline on the event loop (``asyncio.to_thread`` replaced) so one profiler sees all
the work.
"""

from __future__ import annotations

import os
from typing import Any

from bench import procs, profiling, report
from bench.harness import Harness
from bench.sim import gmail_totals
from bench.stats import med, spread, target

SERVICE = "svc-ingest"
UNLIMITED = {"quota": "unlimited"}


async def _prepare(h: Harness) -> tuple[Any, Any]:
    sim, box = await h.seeded("bulk", h.sizes.quota_messages)
    await sim.quota(units_per_second=None)
    await sim.faults(latency_ms=0.0, jitter_ms=0.0)
    return sim, box


async def measure_sync(h: Harness, sim: Any, box: Any, label: str, *,
                       profile: str | None = None, profile_out: str | None = None,
                       engine_path: str | None = None, tracemalloc: bool = False
                       ) -> dict[str, Any]:
    db = await h.service_db(label, sim, box, SERVICE)
    await sim.reset_counters()
    sim_cpu0, pg_cpu0 = sim.cpu_seconds(), h.pg.cpu_seconds()
    busy0, total0 = procs.machine_busy()
    result = await procs.run_job("full_sync", {
        "db_url": db, "service_id": SERVICE, "sim": h.sim_spec(sim),
        "engine": {**UNLIMITED, **h.engine_options},
        "profile": profile, "profile_out": profile_out, "tracemalloc": tracemalloc,
    }, limit=3600, engine_path=engine_path)
    busy1, total1 = procs.machine_busy()
    sim_cpu = sim.cpu_seconds() - sim_cpu0
    pg_cpu1 = h.pg.cpu_seconds()
    pg_cpu = pg_cpu1 - pg_cpu0 if pg_cpu0 is not None and pg_cpu1 is not None else None
    ticks = os.sysconf("SC_CLK_TCK")
    machine_cpu = (busy1 - busy0) / ticks
    counters = gmail_totals(await sim.counters())
    await h.pg.drop(db)
    n = max(1, result["messages"])
    cores = os.cpu_count() or 1
    return {
        "messages": result["messages"], "elapsed_s": result["elapsed_s"],
        "messages_per_s": result["messages"] / result["elapsed_s"],
        "engine_cpu_s": result["cpu_s"], "engine_cpu_ms_per_message": 1000 * result["cpu_s"] / n,
        "engine_cpu_share_of_one_core": result["cpu_s"] / result["elapsed_s"],
        "simulator_cpu_s": sim_cpu, "simulator_cpu_ms_per_message": 1000 * sim_cpu / n,
        "postgres_cpu_s": pg_cpu,
        "postgres_cpu_ms_per_message": 1000 * pg_cpu / n if pg_cpu is not None else None,
        "machine_busy_pct": 100 * (busy1 - busy0) / max(1, total1 - total0),
        # Whatever else ran on the machine meanwhile (other test suites, the harness).
        "other_cpu_s": (machine_cpu - result["cpu_s"] - sim_cpu - (pg_cpu or 0.0)),
        # The engine is one process whose Python code holds the GIL: one core at most.
        "engine_only_ceiling_messages_per_s": n / result["cpu_s"],
        "cores": cores,
        "peak_rss_mb": result["peak_rss_mb"], "rss_before_mb": result["rss_before_mb"],
        "rss_quartiles_mb": _quartiles(result.get("rss_timeline") or []),
        "gmail": counters,
        **({"memory_trace": {k: result.get(k) for k in (
            "traced_peak_mb", "held_at_peak", "retained_after_sync")}} if tracemalloc else {}),
    }


def _quartiles(timeline: list[list[float]]) -> list[float] | None:
    """Highest RSS seen in each quarter of the sync (MB): flat or climbing?"""
    if len(timeline) < 4:
        return None
    n = len(timeline)
    return [max(r for _, r in timeline[q * n // 4:(q + 1) * n // 4]) for q in range(4)]


async def run(h: Harness) -> dict[str, Any]:
    sim, box = await _prepare(h)
    runs, compared = [], []
    for i in range(max(h.sizes.ingest_runs, h.repeat)):
        runs.append(await measure_sync(h, sim, box, f"ingest{i}"))
        if h.compare_engine:  # alternating, so that drifting load hits both alike
            compared.append(await measure_sync(h, sim, box, f"ingestcmp{i}",
                                               engine_path=h.compare_engine))
    profiles: dict[str, Any] = {}
    out_dir = h.results_dir
    out_dir.mkdir(parents=True, exist_ok=True)
    for kind in h.sizes.ingest_profile:
        if kind == "pyinstrument":
            try:
                import pyinstrument  # noqa: F401
            except ImportError:
                profiles[kind] = {"skipped": "pyinstrument is not installed"}
                continue
        path = out_dir / ("ingest.pstats" if kind == "cprofile" else "ingest-pyinstrument.txt")
        profiled = await measure_sync(h, sim, box, f"ingestprof{kind}", profile=kind,
                                      profile_out=str(path))
        entry: dict[str, Any] = {"file": path.name, "elapsed_s": profiled["elapsed_s"],
                                 "messages_per_s": profiled["messages_per_s"]}
        if kind == "cprofile":
            entry.update(profiling.summarize(str(path), profiled["elapsed_s"]))
        profiles[kind] = entry
    rate = med([r["messages_per_s"] for r in runs])
    cpu_ms = med([r["engine_cpu_ms_per_message"] for r in runs])
    ceiling = med([r["engine_only_ceiling_messages_per_s"] for r in runs])
    return {
        "scenario": "ingest",
        "title": report.TITLES["ingest"],
        "params": {"messages": h.sizes.quota_messages, "quota": "off", "latency_ms": 0,
                   "engine": "batch 50, 4 in flight, pacer budget 1,000,000 units/s",
                   "engine_options": h.engine_options or None,
                   "runs": len(runs), "layout": "engine, simulator and PostgreSQL in "
                   "separate processes sharing the machine's cores"},
        "runs": runs,
        "summary": {
            "messages_per_s": rate,
            "messages_per_s_spread": spread([r["messages_per_s"] for r in runs]),
            "engine_cpu_ms_per_message": cpu_ms,
            "simulator_cpu_ms_per_message": med([r["simulator_cpu_ms_per_message"]
                                                  for r in runs]),
            "postgres_cpu_ms_per_message": med([r["postgres_cpu_ms_per_message"]
                                                 for r in runs]),
            "other_cpu_s": med([r["other_cpu_s"] for r in runs]),
            "engine_only_ceiling_messages_per_s": ceiling,
            "machine_busy_pct": med([r["machine_busy_pct"] for r in runs]),
            "peak_rss_mb": med([r["peak_rss_mb"] for r in runs]),
        },
        "profiles": profiles,
        **({"compare": {
            "engine_path": h.compare_engine, "runs": compared,
            "messages_per_s": med([r["messages_per_s"] for r in compared]),
            "engine_cpu_ms_per_message": med([r["engine_cpu_ms_per_message"] for r in compared]),
            "simulator_cpu_ms_per_message": med([r["simulator_cpu_ms_per_message"]
                                                  for r in compared]),
            "engine_only_ceiling_messages_per_s": med([
                r["engine_only_ceiling_messages_per_s"] for r in compared]),
            "ratio_messages_per_s": med([c["messages_per_s"] / r["messages_per_s"]
                                         for r, c in zip(runs, compared, strict=True)]),
            "ratio_engine_cpu": med([c["engine_cpu_ms_per_message"]
                                     / r["engine_cpu_ms_per_message"]
                                     for r, c in zip(runs, compared, strict=True)]),
        }} if compared else {}),
        "targets": [
            target("messages parsed and stored per second (end to end)", ">= 3,000/s", rate,
                   "msg/s", at_least=3000.0),
            target("engine's own ceiling (1 / engine CPU s per message)", ">= 3,000/s",
                   ceiling, "msg/s", at_least=3000.0,
                   note="what the engine process could do on a core of its own, if the "
                        "simulator and PostgreSQL needed none of it"),
        ],
    }
