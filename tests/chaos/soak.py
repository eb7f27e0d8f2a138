"""The parts of the chaos soak: sizes, mutations, the notification relay, consumer
processes, and the tally of everything injected.

Everything here drives real components: the Gmail simulator's own mutation methods,
Google's Pub/Sub emulator through the official client, ``delightbridge consume`` as OS
processes. Randomness comes from one seeded ``random.Random`` per part.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import json
import os
import random
import signal
import sys
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from gmailsim import Simulator
from gmailsim import labels as L

from delightbridge.core.settings import variable_names
from tests.plugins.pubsub import publisher, subscriber

ROOT = Path(__file__).resolve().parents[2]


@dataclass(frozen=True)
class Sizes:
    name: str
    mailboxes: int
    seed_messages: int  # per mailbox, before the soak
    mutations: int
    kills: int
    pg_restarts: int
    history_shrinks: int
    api_syncs: int
    chaos_seconds: float  # mutations and injections are spread over this long
    burst_every: float  # a burst of 429s about this often
    max_delay: float  # notifications are held up to this long
    sweep_interval_minutes: float
    stale_after_minutes: float
    quiesce_within: float  # seconds for every cursor to reach its mailbox afterwards


SHORT = Sizes("short", mailboxes=5, seed_messages=12, mutations=300, kills=3, pg_restarts=1,
              history_shrinks=1, api_syncs=2, chaos_seconds=25.0, burst_every=4.0,
              max_delay=3.0, sweep_interval_minutes=0.03, stale_after_minutes=0.15,
              quiesce_within=120.0)
LONG = Sizes("long", mailboxes=20, seed_messages=40, mutations=5000, kills=20, pg_restarts=2,
             history_shrinks=1, api_syncs=12, chaos_seconds=300.0, burst_every=6.0,
             max_delay=5.0, sweep_interval_minutes=0.05, stale_after_minutes=0.25,
             quiesce_within=300.0)


@dataclass
class Tally:
    """Counts of everything injected, printed at the end."""

    mutations: Counter[str] = field(default_factory=Counter)
    notifications: Counter[str] = field(default_factory=Counter)
    faults: Counter[str] = field(default_factory=Counter)
    fault_methods: Counter[str] = field(default_factory=Counter)
    kills: int = 0
    pg_restarts: int = 0
    history_shrinks: int = 0
    api_syncs: Counter[str] = field(default_factory=Counter)
    consumer_exits: list[str] = field(default_factory=list)
    consumer_errors: Counter[str] = field(default_factory=Counter)  # logged, by action

    def lines(self) -> list[str]:
        def fmt(counter: Counter[str]) -> str:
            return ", ".join(f"{k} {v}" for k, v in sorted(counter.items())) or "none"

        return [
            f"mutations: {sum(self.mutations.values())} ({fmt(self.mutations)})",
            f"notifications: {fmt(self.notifications)}",
            f"gmail faults by code: {fmt(self.faults)}",
            f"gmail faults by method: {fmt(self.fault_methods)}",
            f"consumer SIGKILLs: {self.kills}",
            f"postgresql restarts: {self.pg_restarts}",
            f"history shrinks: {self.history_shrinks}",
            f"api full syncs: {sum(self.api_syncs.values())} ({fmt(self.api_syncs)})",
            f"consumer exits besides the kills: {len(self.consumer_exits)}",
            f"consumer error log lines by action: {fmt(self.consumer_errors)}",
        ]


# --- mutations ------------------------------------------------------------------------------

MUTATION_WEIGHTS = {
    "new_mail": 14, "new_in_thread": 10, "reply": 12, "label": 14, "mark_read": 12,
    "archive": 8, "trash": 9, "untrash": 7, "delete": 7, "mark_unread": 4,
}


class Mutator:
    """Random mailbox changes through the simulator's own methods (as Gmail users make)."""

    def __init__(self, sim: Simulator, addresses: list[str], rng: random.Random,
                 tally: Tally) -> None:
        self.sim = sim
        self.addresses = addresses
        self.rng = rng
        self.tally = tally
        self.user_labels = {a: [sim.create_label(a, n) for n in ("Support", "Follow-up",
                                                                  "Billing")]
                            for a in addresses}
        kinds = list(MUTATION_WEIGHTS)
        self._kinds = kinds
        self._weights = [MUTATION_WEIGHTS[k] for k in kinds]

    def _messages(self, address: str, having: str | None = None, lacking: str | None = None
                  ) -> list[str]:
        with self.sim.lock:
            state = self.sim.state(address)
            return [m.id for m in state.messages.values()
                    if (having is None or having in m.labels)
                    and (lacking is None or lacking not in m.labels)]

    def _threads(self, address: str) -> list[str]:
        with self.sim.lock:
            return list(self.sim.state(address).threads)

    def one(self) -> str:
        """Apply one random change that really changes the mailbox; its kind."""
        while True:
            address = self.rng.choice(self.addresses)
            kind = self.rng.choices(self._kinds, self._weights)[0]
            if self._apply(kind, address):
                self.tally.mutations[kind] += 1
                return kind

    def _apply(self, kind: str, address: str) -> bool:  # noqa: C901 - one branch per kind
        sim, rng = self.sim, self.rng
        if kind == "new_mail":
            sim.deliver(address)
            return True
        if kind in ("new_in_thread", "reply"):
            threads = self._threads(address)
            if not threads:
                return False
            thread = rng.choice(threads)
            if kind == "reply":
                sim.reply(address, thread)
            else:
                sim.deliver(address, thread_id=thread)
            return True
        pools = {
            "mark_read": (L.UNREAD, None), "mark_unread": (None, L.UNREAD),
            "archive": (L.INBOX, None), "trash": (None, L.TRASH), "untrash": (L.TRASH, None),
            "label": (None, None), "delete": (None, None),
        }
        having, lacking = pools[kind]
        candidates = self._messages(address, having, lacking)
        if not candidates:
            return False
        message = rng.choice(candidates)
        if kind == "mark_read":
            return sim.mark_read(address, message) is not None
        if kind == "mark_unread":
            return sim.modify_labels(address, message, add=[L.UNREAD]) is not None
        if kind == "archive":
            return sim.archive(address, message) is not None
        if kind == "trash":
            return sim.trash(address, message) is not None
        if kind == "untrash":
            return sim.untrash(address, message) is not None
        if kind == "delete":
            sim.delete(address, message)
            return True
        label = rng.choice([*self.user_labels[address], L.STARRED, L.IMPORTANT])
        with sim.lock:
            present = label in sim.state(address).messages[message].labels
        if present:
            return sim.modify_labels(address, message, remove=[label]) is not None
        return sim.modify_labels(address, message, add=[label]) is not None


# --- the notification relay -----------------------------------------------------------------


class Relay:
    """Between the simulator and the consumers: drops, duplicates, delays, reorders.

    The simulator publishes to a raw topic; the relay pulls each notification, decides
    its fate with a seeded generator and republishes it to the consumers' topic. While
    ``chaos`` is off it forwards everything at once.
    """

    DROP, DUPLICATE = 0.10, 0.10

    def __init__(self, host: str, raw_subscription: str, topic: str, rng: random.Random,
                 tally: Tally, max_delay: float) -> None:
        self.host = host
        self.raw_subscription = raw_subscription
        self.topic = topic
        self.rng = rng
        self.tally = tally
        self.max_delay = max_delay
        self.chaos = True
        self._publisher = publisher(host)
        self._received = 0
        self._highest_sent = -1
        self._pending: set[asyncio.Task[None]] = set()

    async def run(self, stop: asyncio.Event) -> None:
        client = subscriber(self.host)
        try:
            while not stop.is_set():
                messages = await asyncio.to_thread(self._pull, client)
                for data in messages:
                    self._route(data)
        finally:
            await asyncio.to_thread(client.close)

    def _pull(self, client: Any) -> list[bytes]:
        from google.api_core import exceptions

        try:
            response = client.pull(request={"subscription": self.raw_subscription,
                                            "max_messages": 100}, timeout=2)
        except (exceptions.DeadlineExceeded, exceptions.ServiceUnavailable):
            return []
        received = list(response.received_messages)
        if received:
            client.acknowledge(request={"subscription": self.raw_subscription,
                                        "ack_ids": [m.ack_id for m in received]})
        return [m.message.data for m in received]

    def _route(self, data: bytes) -> None:
        seq = self._received
        self._received += 1
        self.tally.notifications["received"] += 1
        if not self.chaos:
            self._send(data, seq, 0.0)
            return
        roll = self.rng.random()
        if roll < self.DROP:
            self.tally.notifications["dropped"] += 1
            return
        if roll < self.DROP + self.DUPLICATE:
            self.tally.notifications["duplicated"] += 1
            self._send(data, seq, self.rng.uniform(0, self.max_delay))
        delay = self.rng.uniform(0, self.max_delay)
        self.tally.notifications["delayed"] += 1
        self._send(data, seq, delay)

    def _send(self, data: bytes, seq: int, delay: float) -> None:
        task = asyncio.create_task(self._publish_later(data, seq, delay))
        self._pending.add(task)
        task.add_done_callback(self._pending.discard)

    async def _publish_later(self, data: bytes, seq: int, delay: float) -> None:
        await asyncio.sleep(delay)  # the injected delay itself, not a synchronisation
        if seq < self._highest_sent:
            self.tally.notifications["reordered"] += 1
        self._highest_sent = max(self._highest_sent, seq)
        await asyncio.to_thread(
            lambda: self._publisher.publish(self.topic, data).result(timeout=30))
        self.tally.notifications["forwarded"] += 1

    async def close(self) -> None:
        await asyncio.gather(*self._pending, return_exceptions=True)
        await asyncio.to_thread(self._publisher.transport.close)


# --- consumer processes ---------------------------------------------------------------------


def process_env(variables: dict[str, str]) -> dict[str, str]:
    clean = {k: v for k, v in os.environ.items()
             if k not in variable_names() and k != "DELIGHTBRIDGE_ENV_FILE"}
    return {**clean, "PYTHONPATH": str(ROOT), **variables}


class ConsumerSlot:
    """One consumer: ``delightbridge consume`` kept running like a pod (restarted when it
    exits); :meth:`kill` SIGKILLs it and it comes back after ``downtime``."""

    def __init__(self, name: str, env: dict[str, str], cwd: Path, tally: Tally,
                 db_down: Callable[[], bool]) -> None:
        self.name = name
        self.env = env
        self.cwd = cwd
        self.tally = tally
        self.db_down = db_down
        self.proc: asyncio.subprocess.Process | None = None
        self.tail: collections.deque[str] = collections.deque(maxlen=60)
        self.errors: list[str] = []
        self.started = asyncio.Event()
        self._killed = False
        self._downtime = 0.0
        self._stopping = False
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.create_task(self._supervise(), name=f"consumer-{self.name}")

    @property
    def alive(self) -> bool:
        return self.proc is not None and self.proc.returncode is None and not self._killed

    async def _spawn(self) -> asyncio.subprocess.Process:
        self.started.clear()
        self.tail.clear()
        return await asyncio.create_subprocess_exec(
            sys.executable, "-m", "delightbridge.cli.main", "consume", "--host", "127.0.0.1",
            "--port", "0",
            env=self.env, cwd=self.cwd, stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.PIPE)

    async def _read(self, proc: asyncio.subprocess.Process) -> None:
        assert proc.stderr is not None
        async for raw in proc.stderr:
            line = raw.decode("utf-8", "replace").rstrip("\n")
            self.tail.append(line)
            with contextlib.suppress(ValueError):
                record = json.loads(line)
                if record.get("action") == "consumer.started":
                    self.started.set()
                if str(record.get("level")).lower() in ("error", "critical"):
                    self.errors.append(line)
                    self.tally.consumer_errors[str(record.get("action"))] += 1

    async def _supervise(self) -> None:
        while not self._stopping:
            started_at = time.monotonic()
            db_down_at_start = self.db_down()
            proc = self.proc = await self._spawn()
            reader = asyncio.create_task(self._read(proc))
            code = await proc.wait()
            await reader
            if self._stopping:
                return
            if self._killed:
                self._killed = False
                await asyncio.sleep(self._downtime)  # the injected outage of this consumer
                continue
            # Not ours: a crash. Starting while the database is down is the only excuse.
            excused = db_down_at_start or self.db_down()
            self.tally.consumer_exits.append(
                f"{self.name} exited {code} after {time.monotonic() - started_at:.1f}s"
                f"{' (database down at start-up)' if excused else ''}: "
                + " | ".join(list(self.tail)[-5:]))
            await asyncio.sleep(1.0)  # a pod's restart back-off

    def kill(self, downtime: float) -> None:
        """SIGKILL now; the supervisor starts it again after ``downtime`` seconds."""
        proc = self.proc
        assert proc is not None
        assert self.alive
        self._killed, self._downtime = True, downtime
        proc.send_signal(signal.SIGKILL)
        self.tally.kills += 1

    async def stop(self) -> int | None:
        """SIGTERM and the exit code (None when it was not running)."""
        self._stopping = True
        proc = self.proc
        code: int | None = None
        if proc is not None and proc.returncode is None:
            proc.send_signal(signal.SIGTERM)
            async with asyncio.timeout(60):
                code = await proc.wait()
        if self._task is not None:
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        return code

    async def abort(self) -> None:
        self._stopping = True
        proc = self.proc
        if proc is not None and proc.returncode is None:
            proc.kill()
            await proc.wait()
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(BaseException):
                await self._task

    def unexpected_exits(self) -> list[str]:
        return [e for e in self.tally.consumer_exits if e.startswith(self.name + " ")
                and "(database down at start-up)" not in e]
