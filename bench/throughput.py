"""Scenario 4: notifications processed per second by one consumer process.

A backlog, as after an outage: with the watches stopped (so the simulator publishes
nothing itself), each mailbox of the fleet gets ``consumer_changes_per_mailbox``
changes (one new mail, then star/unstar label changes on its messages), and the
harness publishes one Gmail-shaped notification per change (``{"emailAddress",
"historyId"}``, the history id that change produced), interleaved across mailboxes.
Then one consumer process starts (streaming pull, 500 messages outstanding at most,
4 syncs at once, coalescing per mailbox) and the clock runs from its "ready" until
its last message is settled.

Figures: notifications settled per second, the syncs they needed (coalescing), the
statuses (``synced`` after a sync, ``up_to_date`` when the stored cursor already
covered it), and whether every service's cursor reached its mailbox's history id.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

from bench import fleet as fleet_mod
from bench import procs, report
from bench.harness import Harness
from bench.stats import med, spread, target


async def _changes(fleet: Any, per_mailbox: int, run_index: int) -> list[list[tuple[str, int]]]:
    """``per_mailbox`` changes in every mailbox; each mailbox's (address, history id)s."""
    sim = fleet.sim
    starred: dict[str, bool] = {}

    async def mailbox(box: Any) -> list[tuple[str, int]]:
        out: list[tuple[str, int]] = []
        info = await sim.deliver(box.address, subject=f"Backlog {run_index}",
                                 text="Any news about my refund?")
        out.append((box.address, int(info["historyId"])))
        targets = [*box.message_ids, info["id"]]
        for k in range(per_mailbox - 1):
            message = targets[k % len(targets)]
            key = f"{box.address}/{message}"
            for _ in range(2):  # a no-op change (already starred) records nothing
                add = not starred.get(key, False)
                body = {"add": ["STARRED"]} if add else {"remove": ["STARRED"]}
                result = await sim._call(
                    "POST", f"/mailboxes/{box.address}/messages/{message}/modify", body)
                starred[key] = add
                if result.get("historyId"):
                    out.append((box.address, int(result["historyId"])))
                    break
        return out

    slots = asyncio.Semaphore(16)

    async def limited(box: Any) -> list[tuple[str, int]]:
        async with slots:
            return await mailbox(box)

    return list(await asyncio.gather(*(limited(b) for b in fleet.mailboxes)))


async def _one(h: Harness, fleet: Any, index: int) -> dict[str, Any]:
    subscription = await asyncio.to_thread(fleet.topic.subscribe)
    try:
        return await _measure(h, fleet, index, subscription)
    finally:
        await asyncio.to_thread(fleet.topic.unsubscribe, subscription)


async def _measure(h: Harness, fleet: Any, index: int, subscription: str
                   ) -> dict[str, Any]:
    per_box = await _changes(fleet, h.sizes.consumer_changes_per_mailbox, index)
    payloads = []
    for position in range(max(len(c) for c in per_box)):
        for changes in per_box:
            if position < len(changes):
                address, history_id = changes[position]
                payloads.append(json.dumps({"emailAddress": address,
                                            "historyId": history_id}).encode())
    await asyncio.to_thread(fleet.topic.publish_many, payloads)
    total = len(payloads)
    spec = fleet_mod.consumer_spec(h, fleet, subscription, expect=total, timeout=600)
    async with procs.Child("consumer", spec) as consumer:
        await consumer.wait_for("ready", 120)
        result = await consumer.result(900)
    elapsed = result["last_outcome_at"] - result["ready_at"] if result["outcomes"] else None
    steady = (result["last_outcome_at"] - result["first_outcome_at"]
              if result["outcomes"] > 1 else None)
    state = await fleet_mod.converged(fleet)
    return {
        "notifications": total, "settled": result["outcomes"],
        "statuses": result["statuses"], "syncs": result["syncs_started"],
        "elapsed_s": elapsed,
        "notifications_per_s": result["outcomes"] / elapsed if elapsed else None,
        "first_message_after_ready_s": (result["first_outcome_at"] - result["ready_at"]
                                        if result["outcomes"] else None),
        "steady_notifications_per_s": (result["outcomes"] - 1) / steady if steady else None,
        "notifications_per_sync": total / result["syncs_started"]
        if result["syncs_started"] else None,
        "consumer_cpu_s": result["cpu_s"], "consumer_peak_rss_mb": result["peak_rss_mb"],
        "services_behind_after": state["behind"],
    }


async def run(h: Harness) -> dict[str, Any]:
    fleet = await fleet_mod.get(h)
    await fleet_mod.stop_all(fleet)
    await fleet.sim.faults(latency_ms=0.0)
    try:
        runs = [await _one(h, fleet, i) for i in range(max(h.sizes.consumer_runs, h.repeat))]
    finally:
        await fleet_mod.watch_all(fleet)
    rate = med([r["notifications_per_s"] for r in runs])
    behind = max(r["services_behind_after"] for r in runs)
    return {
        "scenario": "consumer",
        "title": report.TITLES["consumer"],
        "params": {"mailboxes": h.sizes.fleet_mailboxes,
                   "notifications_per_mailbox": h.sizes.consumer_changes_per_mailbox,
                   "backlog": "one notification per change, published before the consumer "
                              "starts", "consumer": "one process, pull, max outstanding 500, "
                              "concurrency 4", "gmail_latency_ms": 0,
                   "quota": "250 units/s per mailbox, enforced", "runs": len(runs)},
        "runs": runs,
        "summary": {"notifications_per_s": rate,
                    "spread": spread([r["notifications_per_s"] for r in runs]),
                    "notifications_per_sync": med([r["notifications_per_sync"] for r in runs]),
                    "services_behind_after": behind},
        "targets": [
            target("notifications processed per second", ">= 500/s", rate, "msg/s",
                   at_least=500.0,
                   note=f"{behind} services behind afterwards" if behind else None),
        ],
    }
