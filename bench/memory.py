"""Scenario 5: peak RSS of the engine process during a full sync, by mailbox size.

The sync runs in a child process (``bench.child full_sync``) and reports its own
``ru_maxrss``; the simulator, which keeps every mailbox in RAM, is another process
and is not counted. Quota and latency are off (the ingest settings): memory depends
on what the engine holds, not on how long it waits. The 10,000-message point comes
from the ingest runs (their median peak); larger sizes (``--size large``: 100,000)
are seeded in a simulator process of their own and measured once.

"Flat" means the peak grows by at most 10 % from the smallest to the largest size
measured; a point measured by an earlier command is kept, with its date, until
measured again. ``--tracemalloc`` adds a traced sync of each size, after the measured
ones: what it held at its peak and what it left allocated (``memory_trace``).
"""

from __future__ import annotations

from typing import Any

from bench import ingest, report
from bench.harness import Harness
from bench.stats import med, target

FLAT_TOLERANCE = 0.10


async def run(h: Harness, ingest_result: dict[str, Any] | None) -> dict[str, Any]:
    points: list[dict[str, Any]] = []
    bulk = h.sizes.quota_messages
    if ingest_result and ingest_result.get("runs"):
        runs = ingest_result["runs"]
        points.append({"messages": bulk, "peak_rss_mb": med([r["peak_rss_mb"] for r in runs]),
                       "rss_before_sync_mb": med([r["rss_before_mb"] for r in runs]),
                       "rss_quartiles_mb": runs[0].get("rss_quartiles_mb"),
                       "elapsed_s": med([r["elapsed_s"] for r in runs]),
                       "runs": len(runs), "source": "ingest runs (median)"})
    else:
        sim, box = await ingest._prepare(h)
        r = await ingest.measure_sync(h, sim, box, "memory")
        points.append({"messages": bulk, "peak_rss_mb": r["peak_rss_mb"],
                       "rss_before_sync_mb": r["rss_before_mb"], "elapsed_s": r["elapsed_s"],
                       "rss_quartiles_mb": r.get("rss_quartiles_mb"),
                       "runs": 1, "source": "one run"})
    for size in h.sizes.memory_sizes:
        if size == bulk:
            continue
        sim, box = await h.seeded(f"memory{size}", size)
        await sim.quota(units_per_second=None)
        await sim.faults(latency_ms=0.0, jitter_ms=0.0)
        r = await ingest.measure_sync(h, sim, box, f"memory{size}")
        points.append({"messages": size, "peak_rss_mb": r["peak_rss_mb"],
                       "rss_before_sync_mb": r["rss_before_mb"], "elapsed_s": r["elapsed_s"],
                       "messages_per_s": r["messages_per_s"],
                       "simulator_rss_mb": sim.rss_mb(), "runs": 1,
                       "rss_quartiles_mb": r.get("rss_quartiles_mb"),
                       "source": "measured once (--size large)"})
    if h.trace_memory:  # a diagnosis: traced runs are slower and their RSS is not kept
        for point in points:
            size = point["messages"]
            if size == bulk:
                sim, box = await ingest._prepare(h)
            else:
                sim, box = await h.seeded(f"memory{size}", size)
            traced = await ingest.measure_sync(h, sim, box, f"trace{size}", tracemalloc=True)
            point["memory_trace"] = traced["memory_trace"]
    return summarize({"scenario": "memory", "title": report.TITLES["memory"],
                      "params": {"quota": "off", "latency_ms": 0,
                                 "measure": "ru_maxrss of the engine's own process"},
                      "points": points})


def summarize(result: dict[str, Any]) -> dict[str, Any]:
    """Targets from whatever points the result holds (merged ones included)."""
    points = sorted(result["points"], key=lambda p: p["messages"])
    result["points"] = points
    peak = max((p["peak_rss_mb"] for p in points), default=None)
    growth = None
    if len(points) >= 2:
        growth = 100 * (points[-1]["peak_rss_mb"] / points[0]["peak_rss_mb"] - 1)
    sizes = ", ".join(f"{p['messages']:,}" for p in points)
    result["summary"] = {"peak_rss_mb": peak, "growth_pct": growth, "sizes": sizes}
    result["targets"] = [
        target(f"peak RSS ({sizes} messages)", "<= 300 MB", peak, "MB", at_most=300.0),
        target("flat from the smallest to the largest size", "<= +10 %", growth, "%",
               at_most=100 * FLAT_TOLERANCE,
               note=None if growth is not None else "needs two sizes: run --size large"),
    ]
    return result
