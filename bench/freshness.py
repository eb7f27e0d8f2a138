"""Scenario 3: freshness, from a change in Gmail to its committed row.

The watched fleet (:mod:`bench.fleet`), the consumer running as its own process
(``Worker``: streaming pull, per-mailbox coalescing, 4 syncs at once, the engine
paced to 250 units/s per mailbox, which the simulator enforces). The harness delivers
new mail at ``freshness_rate`` per second, round robin over the mailboxes (each one
changes every ``mailboxes / rate`` seconds), through the simulator's control API;
the simulator publishes each change to the Pub/Sub emulator as Gmail does.

Latency of one change = when PostgreSQL commits its ``emails`` row (a NOTIFY fired
by a benchmark-only trigger, delivered at commit to a listener in the harness) minus
the moment the harness sent the change (just before the control call, so the
figure slightly overstates). Both clocks are the harness's ``time.monotonic``.
Measured with Gmail answering at once and with 50 ms per request.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from typing import Any

import asyncpg

from bench import fleet as fleet_mod
from bench import procs, report
from bench.harness import Harness
from bench.stats import percentile, target

DRAIN_SECONDS = 30.0


async def _variant(h: Harness, fleet: Any, latency_ms: float) -> dict[str, Any]:
    await fleet.sim.faults(latency_ms=latency_ms, jitter_ms=0.0)
    committed: dict[str, float] = {}
    changed = asyncio.Event()

    def on_commit(_conn: Any, _pid: int, _channel: str, payload: object) -> None:
        committed.setdefault(str(payload), time.monotonic())
        changed.set()

    listener = await asyncpg.connect(fleet.db_url)
    await listener.add_listener(fleet_mod.COMMIT_CHANNEL, on_commit)
    sent: dict[str, float] = {}
    failures = 0
    subscription = await asyncio.to_thread(fleet.topic.subscribe)
    spec = fleet_mod.consumer_spec(h, fleet, subscription)
    try:
        async with procs.Child("consumer", spec) as consumer:
            await consumer.wait_for("ready", 120)
            await asyncio.sleep(1.0)  # the stream opens after "ready": let it settle
            rate, seconds = h.sizes.freshness_rate, h.sizes.freshness_seconds
            total = int(rate * seconds)
            boxes = fleet.mailboxes
            cpu0 = procs.cpu_seconds(consumer.pid)

            async def change(i: int) -> None:
                nonlocal failures
                box = boxes[i % len(boxes)]
                started = time.monotonic()
                try:
                    info = await fleet.sim.deliver(box.address, subject=f"Freshness {i}",
                                                   text="Where is my order?")
                except Exception:  # counted: a change that could not be made
                    failures += 1
                    return
                sent[info["id"]] = started

            begin = time.monotonic()
            tasks = []
            for i in range(total):
                delay = begin + i / rate - time.monotonic()
                if delay > 0:
                    await asyncio.sleep(delay)
                tasks.append(asyncio.create_task(change(i)))
            await asyncio.gather(*tasks)
            driven = time.monotonic() - begin
            deadline = time.monotonic() + DRAIN_SECONDS
            while time.monotonic() < deadline and not set(sent) <= set(committed):
                changed.clear()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(changed.wait(), timeout=1.0)
            consumer_cpu = procs.cpu_seconds(consumer.pid) - cpu0
            consumer_rss = procs.rss_mb(consumer.pid)
            consumer.stop()
            outcome = await consumer.result(120)
    finally:
        await listener.close()
        await asyncio.to_thread(fleet.topic.unsubscribe, subscription)
    latencies = [committed[m] - t for m, t in sent.items() if m in committed]
    missing = len([m for m in sent if m not in committed])
    ms = [1000 * x for x in latencies]
    return {
        "gmail_latency_ms": latency_ms, "changes": len(sent), "change_failures": failures,
        "committed": len(latencies), "missing": missing,
        "rate_per_s": len(sent) / driven if driven else None,
        "p50_ms": percentile(ms, 50), "p90_ms": percentile(ms, 90),
        "p99_ms": percentile(ms, 99), "max_ms": max(ms) if ms else None,
        "consumer_cpu_s": consumer_cpu, "consumer_rss_mb": consumer_rss,
        "consumer_outcomes": outcome.get("statuses"), "syncs": outcome.get("syncs_started"),
    }


async def run(h: Harness) -> dict[str, Any]:
    fleet = await fleet_mod.get(h)
    await fleet_mod.watch_all(fleet)
    variants = []
    for latency in h.sizes.freshness_latencies_ms:
        variants.append(await _variant(h, fleet, latency))
    await fleet.sim.faults(latency_ms=0.0)
    targets = []
    for v in variants:
        label = f"Gmail {v['gmail_latency_ms']:g} ms"
        note = f"{v['missing']} of {v['changes']} changes not committed" if v["missing"] else None
        targets.append(target(f"p50, {label}", "<= 200 ms", v["p50_ms"], "ms", at_most=200.0,
                              note=note))
        targets.append(target(f"p99, {label}", "<= 1,000 ms", v["p99_ms"], "ms",
                              at_most=1000.0, note=note))
    return {
        "scenario": "freshness",
        "title": report.TITLES["freshness"],
        "params": {"mailboxes": h.sizes.fleet_mailboxes, "changes_per_s": h.sizes.freshness_rate,
                   "seconds": h.sizes.freshness_seconds, "change": "new mail (deliver)",
                   "spread": "round robin over the mailboxes",
                   "consumer": "own process, pull, concurrency 4, engine paced to 250 u/s",
                   "simulator_push": "Pub/Sub emulator, <= 1 notification/s per mailbox",
                   "quota": "250 units/s per mailbox, enforced"},
        "variants": variants,
        "summary": {f"gmail_{v['gmail_latency_ms']:g}ms": {
            k: v[k] for k in ("p50_ms", "p90_ms", "p99_ms", "max_ms", "missing")}
            for v in variants},
        "targets": targets,
    }
