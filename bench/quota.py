"""Scenario 1: a full sync under Gmail's per-user quota, against the original algorithm.

One mailbox of ``quota_messages`` messages (three a thread on average); the
simulator enforces 250 units per user per moving second with Gmail's documented
costs and answers every HTTP request (each batch part alike) after 50 ms. The engine
runs with its production defaults (batches of at most 50 calls and 35 units, 4 in
flight, paced to 98 % of 250 units/s). The reference, the original algorithm
(:mod:`bench.reference`), syncs an identical copy of the mailbox held by a second
simulator process, at the same time: each has its own quota, counters and CPU
process, and the ratio of their rates comes from one run on one machine state.

Figures: messages mirrored per second; quota ceiling used = units Gmail charged /
(elapsed x 250); rate-limited = (429 + 403 rate-limit answers) / API calls, from the
simulator's counters. The pacer probe records, for every reservation, how long the
engine waited for quota and how long the call was in flight (send to answer).
"""

from __future__ import annotations

import asyncio
from typing import Any

from bench import procs, report
from bench.harness import Harness
from bench.sim import gmail_totals
from bench.stats import med, spread, target

SERVICE = "svc-quota"


async def _prepare(h: Harness) -> tuple[Any, Any, Any, Any]:
    n = h.sizes.quota_messages
    names = ["bulk", "reference"] + (["compare"] if h.compare_engine else [])
    seeded = await asyncio.gather(*(h.seeded(name, n) for name in names))
    (sim, box), (ref_sim, ref_box) = seeded[0], seeded[1]
    for s, _ in seeded:
        await s.quota(units_per_second=h.sizes.quota_units_per_second, window_seconds=1.0,
                      exceeded_response="429")
        await s.faults(latency_ms=h.sizes.quota_latency_ms, jitter_ms=0.0)
    return sim, box, ref_sim, ref_box


async def _one(h: Harness, sim: Any, box: Any, ref_sim: Any, ref_box: Any, index: int,
               with_reference: bool) -> dict[str, Any]:
    db = await h.service_db(f"quota{index}", sim, box, SERVICE)
    ref_db = await h.service_db(f"quotaref{index}", ref_sim, ref_box, SERVICE)
    await sim.reset_counters()
    await ref_sim.reset_counters()
    engine_job = procs.run_job("full_sync", {
        "db_url": db, "service_id": SERVICE, "sim": h.sim_spec(sim), "probe_pacer": True,
        "engine": h.engine_options,
    }, limit=3600)
    jobs = [engine_job]
    if with_reference:
        jobs.append(procs.run_job("reference_sync", {
            "db_url": ref_db, "service_id": SERVICE, "sim": h.sim_spec(ref_sim),
            "max_threads": h.sizes.reference_threads,
        }, limit=3600))
    compare = None
    if h.compare_engine:
        compare = h.sims["compare"], h.mailboxes[f"compare:{h.sizes.quota_messages}"]
        cmp_db = await h.service_db(f"quotacmp{index}", compare[0], compare[1], SERVICE)
        await compare[0].reset_counters()
        jobs.append(procs.run_job("full_sync", {
            "db_url": cmp_db, "service_id": SERVICE, "sim": h.sim_spec(compare[0]),
            "probe_pacer": True, "engine": h.engine_options,
        }, limit=3600, engine_path=h.compare_engine))
    results = await asyncio.gather(*jobs)
    ceiling = h.sizes.quota_units_per_second
    run: dict[str, Any] = {
        "engine": _engine_figures(results[0], await sim.counters(), ceiling)}
    if compare is not None:
        run["compare"] = _engine_figures(results[-1], await compare[0].counters(), ceiling)
        run["compare_ratio"] = (run["compare"]["messages_per_s"]
                                / run["engine"]["messages_per_s"])
        await h.pg.drop(cmp_db)
    if with_reference:
        ref = results[1]
        ref_counters = gmail_totals(await ref_sim.counters())
        run["reference"] = {
            **{k: ref[k] for k in ("elapsed_s", "cpu_s", "messages", "threads_fetched",
                                   "threads_listed", "complete")},
            "messages_per_s": ref["messages"] / ref["elapsed_s"],
            "gmail": ref_counters,
            "quota_used_pct": 100 * ref_counters["units"] / (ref["elapsed_s"] * ceiling),
        }
        run["speedup"] = run["engine"]["messages_per_s"] / run["reference"]["messages_per_s"]
    await h.pg.drop(db)
    await h.pg.drop(ref_db)
    return run


def _engine_figures(engine: dict[str, Any], raw_counters: dict[str, Any], ceiling: float
                    ) -> dict[str, Any]:
    counters = gmail_totals(raw_counters)  # its simulator serves this engine only
    return {
        **{k: engine[k] for k in ("elapsed_s", "cpu_s", "messages", "threads", "peak_rss_mb")},
        "messages_per_s": engine["messages"] / engine["elapsed_s"],
        "gmail": counters,
        "quota_used_pct": 100 * counters["units"] / (engine["elapsed_s"] * ceiling),
        "rate_limited_pct": 100 * counters["rate_limited"] / max(1, counters["calls"]),
        "pacer": engine["pacer"],
    }


async def run(h: Harness, *, with_reference: bool = True) -> dict[str, Any]:
    sim, box, ref_sim, ref_box = await _prepare(h)
    runs = [await _one(h, sim, box, ref_sim, ref_box, i, with_reference)
            for i in range(h.repeat)]
    engine_rate = med([r["engine"]["messages_per_s"] for r in runs])
    used = med([r["engine"]["quota_used_pct"] for r in runs])
    limited = med([r["engine"]["rate_limited_pct"] for r in runs])
    speedup = med([r.get("speedup") for r in runs])
    ref_rate = med([r["reference"]["messages_per_s"] for r in runs]) if with_reference else None
    pacer = runs[-1]["engine"]["pacer"] or {}
    ceiling = h.sizes.quota_units_per_second
    # What the answer-time stamping allows: every unit holds the budget while in flight
    # and for one window after its answer (flight weighted by units: a slow answer holds
    # all of its batch's units).
    flight = pacer.get("unit_weighted_in_flight_s", pacer.get("median_in_flight_s"))
    pacing_bound = (100 * 0.98 / (1 + flight)) if flight is not None else None
    ref_complete = all(r.get("reference", {}).get("complete", True) for r in runs)
    return {
        "scenario": "quota",
        "title": report.TITLES["quota"],
        "params": {"messages": h.sizes.quota_messages, "avg_messages_per_thread": 3,
                   "quota_units_per_second": ceiling, "window_s": 1.0,
                   "latency_ms_per_http_request": h.sizes.quota_latency_ms,
                   "engine": "defaults: batches of <= 50 calls and <= 35 units (7 fill the "
                             "pacer's 245-unit window), 4 in flight, paced to 98 %",
                   "engine_options": h.engine_options or None,
                   "reference_threads": h.sizes.reference_threads or "all",
                   "runs": h.repeat,
                   "layout": "engine and reference run at the same time, each in its own "
                             "process against its own simulator process (identical "
                             "mailbox, own quota)"},
        "runs": runs,
        "summary": {
            "engine_messages_per_s": engine_rate,
            "engine_elapsed_s": spread([r["engine"]["elapsed_s"] for r in runs]),
            "quota_used_pct": used, "rate_limited_pct": limited,
            "reference_messages_per_s": ref_rate, "speedup_vs_reference": speedup,
            "reference_complete": ref_complete,
            "pacer_unit_weighted_in_flight_s": flight,
            "pacing_bound_pct": pacing_bound,
            "ceiling_messages_per_s_messages_get": ceiling / 5,
            "ceiling_messages_per_s_threads_get": ceiling / 10 * 3,
            **_compare_summary(h, runs),
        },
        "targets": [
            target("quota ceiling used", ">= 90 %", used, "%", at_least=90.0),
            target("calls rate-limited (429/403)", "<= 1 %", limited, "%", at_most=1.0),
            target("speed vs the original algorithm", ">= 10x", speedup, "x", at_least=10.0,
                   note=None if ref_complete else "reference on a slice of the threads"),
        ],
    }


def _compare_summary(h: Harness, runs: list[dict[str, Any]]) -> dict[str, Any]:
    if not h.compare_engine:
        return {}
    return {"compare_engine_path": h.compare_engine,
            "compare_messages_per_s": med([r["compare"]["messages_per_s"] for r in runs]),
            "compare_quota_used_pct": med([r["compare"]["quota_used_pct"] for r in runs]),
            "compare_rate_limited_pct": med([r["compare"]["rate_limited_pct"] for r in runs]),
            "compare_ratio": med([r["compare_ratio"] for r in runs]),
            "compare_speedup_vs_reference": med([
                r["compare"]["messages_per_s"] / r["reference"]["messages_per_s"]
                for r in runs if r.get("reference")])}
