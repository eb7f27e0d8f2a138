"""``python -m bench``: every benchmark, or some, against the simulator and a real PostgreSQL.

    python -m bench all                   # every scenario, default sizes (< 10 minutes)
    python -m bench quota ingest          # some scenarios
    python -m bench memory --size large   # 100,000 messages too (seeding alone: minutes)
    python -m bench all --size smoke --no-markdown --results-dir /tmp/b   # CI smoke

Scenarios: quota (1. full sync under quota, with the original algorithm as
reference), ingest (2. ingest ceiling, profiled), freshness (3.), consumer (4.
consumer throughput), memory (5.), transport (the Gmail transport comparison),
imports (6. imports under the 2026 and legacy quota models: issue #16).

Results go to ``<results-dir>/latest.json`` (merged with earlier results, one entry
per scenario) and, unless ``--no-markdown``, into the generated blocks of
BENCHMARKS.md. PostgreSQL: ``BENCH_DATABASE_URL`` or an embedded server; Pub/Sub:
``BENCH_PUBSUB_EMULATOR_HOST`` or the emulator started with java. A scenario that
cannot run here (no java for Pub/Sub) is recorded as not runnable, with the reason.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import shlex
import sys
import time
import traceback
from pathlib import Path
from typing import Any

from bench import env, procs, report
from bench.harness import SIZES, Harness

SCENARIOS = ("quota", "ingest", "memory", "freshness", "consumer", "transport", "imports")
DEFAULT_RESULTS = procs.ROOT / "bench" / "results"
DEFAULT_MARKDOWN = procs.ROOT / "BENCHMARKS.md"


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("scenarios", nargs="+", choices=("all", *SCENARIOS))
    parser.add_argument("--size", choices=tuple(SIZES), default="default")
    parser.add_argument("--repeat", type=int, default=1,
                        help="runs of the quota scenario (others have their own counts, "
                             "raised to this)")
    parser.add_argument("--no-reference", action="store_true",
                        help="quota: skip the original algorithm")
    parser.add_argument("--reference-threads", type=int, default=None,
                        help="quota: the reference syncs only this many threads (a slice)")
    parser.add_argument("--results-dir", type=Path, default=DEFAULT_RESULTS)
    parser.add_argument("--markdown", type=Path, default=DEFAULT_MARKDOWN)
    parser.add_argument("--no-markdown", action="store_true")
    parser.add_argument("--engine-path", default=None,
                        help="a directory holding another delightbridge/ to measure "
                             "(a prototype)")
    parser.add_argument("--compare-engine-path", default=None, metavar="DIR",
                        help="quota and ingest: also measure the delightbridge/ in DIR, "
                             "in the same command (alternating runs), and report the ratio")
    parser.add_argument("--engine-option", action="append", default=[], metavar="KEY=VALUE",
                        help="an EngineConfig override for every engine process, e.g. "
                             "batch_size=7 (VALUE is JSON when it parses as JSON)")
    parser.add_argument("--tracemalloc", action="store_true",
                        help="memory: also a tracemalloc-traced sync of each size, reporting "
                             "what it held at its peak and left allocated (slow)")
    parser.add_argument("--messages", type=int, default=None,
                        help="size of the bulk mailbox (quota, ingest, memory) instead of "
                             "the size's default")
    parser.add_argument("--compress", type=float, default=None, metavar="FACTOR",
                        help="imports: the 2026 minute is 60/FACTOR seconds (default 10; "
                             "1: Google's real minute, a 10,000-message import then takes "
                             "about 20 minutes)")
    return parser.parse_args(argv)


async def _scenario(name: str, h: Harness, args: argparse.Namespace,
                    done: dict[str, Any]) -> dict[str, Any]:
    if name == "quota":
        from bench import quota

        return await quota.run(h, with_reference=not args.no_reference)
    if name == "ingest":
        from bench import ingest

        return await ingest.run(h)
    if name == "memory":
        from bench import memory

        return await memory.run(h, done.get("ingest"))
    if name == "freshness":
        from bench import freshness

        return await freshness.run(h)
    if name == "consumer":
        from bench import throughput

        return await throughput.run(h)
    if name == "imports":
        from bench import imports

        return await imports.run(h)
    from bench import transport

    return await transport.run(h)


def _engine_options(pairs: list[str]) -> dict[str, Any]:
    options: dict[str, Any] = {}
    for pair in pairs:
        key, sep, raw = pair.partition("=")
        if not sep:
            raise SystemExit(f"--engine-option needs KEY=VALUE, got {pair!r}")
        try:
            options[key.strip()] = json.loads(raw)
        except ValueError:
            options[key.strip()] = raw
    return options


def _setup_in_background(h: Harness, names: list[str]) -> list[asyncio.Task[Any]]:
    """While the quota scenario waits on quota (its processes are nearly idle), prepare
    what later scenarios need: the watched fleet, the transport mailbox. Nothing runs in
    the background during the CPU-bound scenarios: this is awaited before them."""
    if "quota" not in names:
        return []
    tasks: list[asyncio.Task[Any]] = []
    if {"freshness", "consumer"} & set(names):
        from bench import fleet

        tasks.append(asyncio.create_task(fleet.get(h)))
    if "transport" in names:
        from bench import transport

        tasks.append(asyncio.create_task(transport.prepared(h)))
    return tasks


async def _settle(tasks: list[asyncio.Task[Any]]) -> None:
    """Wait for background setup; a failure shows again when its scenario asks for it."""
    if tasks:
        await asyncio.gather(*tasks, return_exceptions=True)
        tasks.clear()


async def run(args: argparse.Namespace, command: str) -> dict[str, Any]:
    names = list(SCENARIOS) if "all" in args.scenarios else [
        s for s in SCENARIOS if s in args.scenarios]
    sizes = SIZES[args.size]
    from dataclasses import replace

    if args.reference_threads is not None:
        sizes = replace(sizes, reference_threads=args.reference_threads)
    if args.messages is not None:
        sizes = replace(sizes, quota_messages=args.messages)
    if args.compress is not None:
        sizes = replace(sizes, import_compress=args.compress)
    started_at, started = env.now_iso(), time.perf_counter()
    machine = env.machine()
    results: dict[str, Any] = {}
    with env.Postgres.start() as pg:
        await pg.prepare()
        h = Harness(sizes, pg, args.results_dir, repeat=max(1, args.repeat),
                    engine_options=_engine_options(args.engine_option),
                    compare_engine=args.compare_engine_path,
                    trace_memory=args.tracemalloc)
        background = _setup_in_background(h, names)
        try:
            for name in names:
                if name != "quota" and background:
                    await _settle(background)
                print(f"[bench] {name} ({sizes.name}) ...", file=sys.stderr, flush=True)
                t0 = time.perf_counter()
                try:
                    result = await _scenario(name, h, args, results)
                except env.PubSubUnavailable as exc:
                    result = {"scenario": name, "status": "not_runnable", "reason": str(exc)}
                except Exception as exc:  # one scenario failing must not hide the others
                    traceback.print_exc()
                    result = {"scenario": name, "status": "error",
                              "reason": f"{type(exc).__name__}: {exc}"}
                result.setdefault("status", "ok")
                result.setdefault("title", name)
                result.update(measured_at=env.now_iso(), command=command, size=sizes.name,
                              seconds=time.perf_counter() - t0, engine_path=args.engine_path,
                              engine_options=h.engine_options or None,
                              compare_engine_path=args.compare_engine_path)
                for point in result.get("points") or ():
                    point.setdefault("measured_at", result["measured_at"])
                results[name] = result
                print(f"[bench] {name}: {result['status']} in {result['seconds']:.0f} s",
                      file=sys.stderr, flush=True)
                for t in result.get("targets") or ():
                    print(f"[bench]   {t['name']}: {report.fmt(t['measured'], 1)} {t['unit']} "
                          f"(goal {t['target']}) met={t['met']}", file=sys.stderr, flush=True)
        finally:
            await _settle(background)
            await h.close()
            await pg.cleanup()
        pg_version = pg.version
    environment = {"machine": machine, "versions": env.versions(pg_version),
                   "postgres_source": pg.source, "command": command, "size": sizes.name,
                   "started_at": started_at, "duration_s": time.perf_counter() - started,
                   "engine_path": args.engine_path}
    return {"environment": environment, "scenarios": results}


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    procs.ENGINE_PATH = args.engine_path
    procs.LOG_DIR = args.results_dir / "logs"
    command = "python -m bench " + " ".join(shlex.quote(a) for a in (argv or sys.argv[1:]))
    current = asyncio.run(run(args, command))
    latest = args.results_dir / "latest.json"
    merged = report.merge(report.load(latest), current)
    report.save(latest, merged)
    report.save(args.results_dir / "last-command.json", current)
    if not args.no_markdown:
        report.write_markdown(args.markdown, merged)
    print(f"[bench] results: {latest}", file=sys.stderr)
    failed = [n for n, r in current["scenarios"].items() if r["status"] == "error"]
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
