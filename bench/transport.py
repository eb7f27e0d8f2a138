"""Transport comparison: google-api-python-client (threads) vs the engine's aiohttp client.

Fetches the same messages (format=full) from the simulator with a fixed latency per
HTTP request and no quota, so the figure is the transport's own throughput. The
simulator runs in its own process (:mod:`bench.sim`), not on this event loop:

    python -m bench.transport [--messages 600] [--latency-ms 50]
    python -m bench transport        # the same, recorded in BENCHMARKS.md
"""

from __future__ import annotations

import argparse
import asyncio
import threading
import time
from typing import Any

from googleapiclient.discovery import build
from googleapiclient.http import BatchHttpRequest

from bench import report
from bench.sim import SimProcess
from delightbridge.sync.gmail.calls import CallBuilder
from delightbridge.sync.gmail.client import GmailClient
from delightbridge.sync.gmail.oauth import OAuthClient, ServiceTokens
from delightbridge.sync.gmail.pacing import QuotaPacer


def _google_service(base_url: str, token_uri: str, sim: Any, refresh: str) -> Any:
    from google.oauth2.credentials import Credentials

    creds = Credentials(None, refresh_token=refresh, token_uri=token_uri,  # type: ignore[no-untyped-call]
                        client_id=sim.client_id, client_secret=sim.client_secret)
    return build("gmail", "v1", credentials=creds, static_discovery=True, cache_discovery=False,
                 client_options={"api_endpoint": base_url})


async def googleapiclient_threads(base: str, token_uri: str, sim: Any, refresh: str,
                                  ids: list[str], threads: int) -> float:
    local = threading.local()

    def fetch(mid: str) -> None:
        if not hasattr(local, "svc"):  # httplib2 is not thread-safe: one client a thread
            local.svc = _google_service(base, token_uri, sim, refresh)
        local.svc.users().messages().get(userId="me", id=mid, format="full").execute()

    slots = asyncio.Semaphore(threads)

    async def one(mid: str) -> None:
        async with slots:
            await asyncio.to_thread(fetch, mid)

    started = time.perf_counter()
    await asyncio.gather(*(one(m) for m in ids))
    return time.perf_counter() - started


async def googleapiclient_batch(base: str, token_uri: str, sim: Any, refresh: str,
                                ids: list[str], size: int, batch_uri: str) -> float:
    def run() -> None:
        svc = _google_service(base, token_uri, sim, refresh)
        for start in range(0, len(ids), size):
            batch = BatchHttpRequest(batch_uri=batch_uri)
            for mid in ids[start:start + size]:
                batch.add(svc.users().messages().get(userId="me", id=mid, format="full"))
            batch.execute()

    started = time.perf_counter()
    await asyncio.to_thread(run)
    return time.perf_counter() - started


async def aiohttp_client(base: str, token_uri: str, sim: Any, refresh: str,
                         ids: list[str], batch_size: int, batch_uri: str) -> float:
    import aiohttp

    async def persist(_: Any) -> None:
        return None

    calls = CallBuilder(base)
    async with aiohttp.ClientSession() as session:
        tokens = ServiceTokens(session, OAuthClient(token_uri, sim.client_id, sim.client_secret),
                               refresh, None, persist)
        client = GmailClient(session, calls, tokens, QuotaPacer(1e9), batch_uri=batch_uri,
                             batch_size=batch_size, concurrency=8)
        started = time.perf_counter()
        await client.get_messages(ids)
        return time.perf_counter() - started


async def compare(sim: SimProcess, refresh: str, ids: list[str]) -> list[tuple[str, float]]:
    """Seconds each transport takes to fetch ``ids`` from the running simulator."""
    args = (sim.base_url, sim.token_uri, sim, refresh, ids)
    return [
        ("googleapiclient, 8 threads, one call each",
         await googleapiclient_threads(*args, threads=8)),
        ("googleapiclient, BatchHttpRequest of 50, sequential",
         await googleapiclient_batch(*args, size=50, batch_uri=sim.batch_uri)),
        ("aiohttp client, 8 in flight, one call each",
         await aiohttp_client(*args, batch_size=1, batch_uri=sim.batch_uri)),
        ("aiohttp client, batches of 50, 8 in flight",
         await aiohttp_client(*args, batch_size=50, batch_uri=sim.batch_uri)),
    ]


async def prepare(sim: SimProcess, messages: int, latency_ms: float) -> tuple[str, list[str]]:
    await sim.quota(units_per_second=None)
    box = await sim.create_mailbox("transport@bench.example")
    ids = await sim.seed(box, messages, max(1, messages // 3), seed=1)
    await sim.faults(latency_ms=latency_ms, jitter_ms=0.0)
    return box.refresh_token, ids


async def main(messages: int, latency_ms: float) -> list[tuple[str, float]]:
    async with SimProcess.start(seed=1) as sim:
        refresh, ids = await prepare(sim, messages, latency_ms)
        return await compare(sim, refresh, ids)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--messages", type=int, default=600)
    parser.add_argument("--latency-ms", type=float, default=50.0)
    ns = parser.parse_args()
    for name, seconds in asyncio.run(main(ns.messages, ns.latency_ms)):
        print(f"{name:<55} {ns.messages / seconds:8.0f} messages/s  ({seconds:.2f} s)")


async def prepared(h: Any) -> tuple[SimProcess, str, list[str]]:
    """The transport mailbox of the harness (seeded once; may run in the background)."""
    async with h.lock("transport"):
        if "transport" not in h.cache:
            sim = await h.sim("transport")
            refresh, ids = await prepare(sim, h.sizes.transport_messages, 50.0)
            h.cache["transport"] = (sim, refresh, ids)
        result: tuple[SimProcess, str, list[str]] = h.cache["transport"]
        return result


async def run(h: Any) -> dict[str, Any]:
    """The harness's ``transport`` scenario: medians of several rounds, same process."""
    from bench.stats import med

    sizes = h.sizes
    sim, refresh, ids = await prepared(h)
    rounds = 1 if sizes.name == "smoke" else max(3, h.repeat)
    seconds: dict[str, list[float]] = {}
    for _ in range(rounds):
        for name, elapsed in await compare(sim, refresh, ids):
            seconds.setdefault(name, []).append(elapsed)
    rows = []
    for name, values in seconds.items():
        middle = med(values) or float("nan")
        rows.append({"transport": name, "messages_per_s": len(ids) / middle,
                     "seconds": middle, "rounds": len(values)})
    return {"scenario": "transport", "title": report.TITLES["transport"],
            "params": {"messages": len(ids), "format": "full", "latency_ms": 50,
                       "quota": "off", "rounds": rounds,
                       "layout": "clients in the harness process, simulator in its own"},
            "rows": rows, "summary": {r["transport"]: r["messages_per_s"] for r in rows},
            "targets": []}
