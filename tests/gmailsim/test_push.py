"""Push notifications to a push endpoint: envelope, rate limit, label filter, faults."""

from __future__ import annotations

import asyncio
import base64
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import pytest
from aiohttp import web
from gmailsim import Simulator
from gmailsim.push import PushConfig
from gmailsim.server import RunningSimulator, serve

A = "a@example.com"
TOPIC = "projects/demo/topics/gmail"


@dataclass
class Receiver:
    url: str
    queue: asyncio.Queue[tuple[float, dict[str, Any]]] = field(default_factory=asyncio.Queue)
    fail_first: int = 0
    attempts: int = 0

    async def next(self) -> tuple[float, dict[str, Any]]:
        async with asyncio.timeout(5.0):
            return await self.queue.get()


def notification(envelope: dict[str, Any]) -> dict[str, Any]:
    data: dict[str, Any] = json.loads(base64.b64decode(envelope["message"]["data"]))
    return data


@pytest.fixture
async def receiver() -> AsyncIterator[Receiver]:
    loop = asyncio.get_running_loop()
    box = Receiver("")

    async def handle(request: web.Request) -> web.Response:
        box.attempts += 1
        if box.fail_first > 0:
            box.fail_first -= 1
            return web.Response(status=503)
        await box.queue.put((loop.time(), await request.json()))
        return web.Response(status=204)

    app = web.Application()
    app.router.add_post("/push", handle)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    box.url = f"http://127.0.0.1:{runner.addresses[0][1]}/push"
    yield box
    await runner.cleanup()


@pytest.fixture
async def running(receiver: Receiver) -> AsyncIterator[RunningSimulator]:
    sim = Simulator(seed=2)
    sim.create_mailbox(A)
    config = PushConfig(push_endpoint=receiver.url, min_interval=0.2,
                        push_subscription="projects/demo/subscriptions/push", push_backoff=0.05)
    async with serve(sim, push=config) as server:
        yield server


async def test_a_change_is_pushed_as_a_pubsub_envelope(running: RunningSimulator,
                                                      receiver: Receiver) -> None:
    sim = running.sim
    sim.watch(A, TOPIC)
    sim.deliver(A)
    _, envelope = await receiver.next()
    assert envelope["subscription"] == "projects/demo/subscriptions/push"
    message = envelope["message"]
    assert {"data", "messageId", "publishTime"} <= set(message)
    assert notification(envelope) == {"emailAddress": A, "historyId": sim.history_id(A)}


async def test_history_id_may_be_sent_as_a_string(running: RunningSimulator,
                                                 receiver: Receiver) -> None:
    running.notifier.config.history_id_as_string = True
    running.sim.watch(A, TOPIC)
    running.sim.deliver(A)
    _, envelope = await receiver.next()
    assert notification(envelope)["historyId"] == str(running.sim.history_id(A))


async def test_at_most_one_notification_per_interval_later_changes_fold(
        running: RunningSimulator, receiver: Receiver) -> None:
    sim = running.sim
    sim.watch(A, TOPIC)
    sim.deliver(A)
    first_id = sim.history_id(A)
    for _ in range(4):
        sim.deliver(A)
    first_at, first = await receiver.next()
    second_at, second = await receiver.next()
    assert notification(first)["historyId"] == first_id
    assert notification(second)["historyId"] == sim.history_id(A)
    assert second_at - first_at >= 0.15
    async with asyncio.timeout(5):
        await running.notifier.wait_for(lambda d: len(d) == 2)
    assert receiver.queue.empty()
    assert len(sim.changes) == 5


async def test_the_default_rate_is_one_per_second(receiver: Receiver) -> None:
    sim = Simulator(seed=3)
    sim.create_mailbox(A)
    async with serve(sim, push_endpoint=receiver.url):
        sim.watch(A, TOPIC)
        sim.deliver(A)
        sim.deliver(A)
        first_at, _ = await receiver.next()
        second_at, second = await receiver.next()
    assert second_at - first_at >= 0.9
    assert notification(second)["historyId"] == sim.history_id(A)


async def test_label_filter_include_and_exclude(running: RunningSimulator,
                                               receiver: Receiver) -> None:
    sim = running.sim
    sim.watch(A, TOPIC, label_ids=["INBOX"], behavior="include")
    thread = sim.deliver(A, labels=["SENT"])
    sim.reply(A, thread)
    assert list(sim.changes) == [], "SENT-only changes do not pass an INBOX filter"
    inbound = sim.deliver(A)
    assert [c.history_id for c in sim.changes] == [sim.history_id(A)]
    sim.archive(A, inbound)  # losing INBOX is a change to an INBOX message
    assert len(sim.changes) == 2
    _, envelope = await receiver.next()
    assert notification(envelope)["historyId"] >= sim.history_id(A) - 1000

    sim.watch(A, TOPIC, label_ids=["SPAM"], behavior="exclude")
    sim.deliver(A, labels=["SPAM"])
    assert len(sim.changes) == 2
    sim.deliver(A)
    assert len(sim.changes) == 3


async def test_watch_expires_after_seven_days_and_stop_ends_it(running: RunningSimulator,
                                                              receiver: Receiver) -> None:
    sim = running.sim
    sim.watch(A, TOPIC)
    sim.advance(7 * 86_400 - 60)
    sim.deliver(A)
    assert len(sim.changes) == 1
    sim.advance(120)
    assert sim.active_watch(A) is None
    sim.deliver(A)
    assert len(sim.changes) == 1
    sim.watch(A, TOPIC)
    sim.stop(A)
    sim.deliver(A)
    assert len(sim.changes) == 1
    _, envelope = await receiver.next()
    assert notification(envelope)["emailAddress"] == A


async def test_dropped_notifications_never_arrive(running: RunningSimulator,
                                                 receiver: Receiver) -> None:
    sim = running.sim
    sim.faults.notification_drop_rate = 1.0
    sim.watch(A, TOPIC)
    sim.deliver(A)
    async with asyncio.timeout(5):
        deliveries = await running.notifier.wait_for(lambda d: len(d) == 1)
    assert deliveries[0].dropped
    assert not deliveries[0].ok
    assert receiver.attempts == 0
    assert receiver.queue.empty()
    assert sim.counters.calls("push.dropped") == 1


async def test_duplicated_notifications_arrive_twice(running: RunningSimulator,
                                                    receiver: Receiver) -> None:
    sim = running.sim
    sim.faults.notification_duplicate_rate = 1.0
    sim.watch(A, TOPIC)
    sim.deliver(A)
    (_, one), (_, two) = await receiver.next(), await receiver.next()
    assert notification(one) == notification(two)
    assert one["message"]["messageId"] != two["message"]["messageId"]


async def test_delayed_notifications(running: RunningSimulator, receiver: Receiver) -> None:
    sim = running.sim
    loop = asyncio.get_running_loop()
    sim.faults.update(notification_delay_rate=1.0, notification_delay_seconds=0.3)
    sim.watch(A, TOPIC)
    sent_at = loop.time()
    sim.deliver(A)
    arrived_at, envelope = await receiver.next()
    assert arrived_at - sent_at >= 0.29
    assert notification(envelope)["historyId"] == sim.history_id(A)
    assert sim.counters.calls("push.delayed") == 1


async def test_reordered_notifications(running: RunningSimulator, receiver: Receiver) -> None:
    sim = running.sim
    for address in ("b@example.com", "c@example.com"):
        sim.create_mailbox(address)
        sim.watch(address, TOPIC)
    sim.faults.notification_reorder_rate = 1.0
    sim.deliver("b@example.com")
    async with asyncio.timeout(5):
        await running.notifier.wait_for(lambda d: sim.counters.calls("push.reordered") == 1)
    sim.faults.notification_reorder_rate = 0.0
    sim.deliver("c@example.com")
    (_, early), (_, late) = await receiver.next(), await receiver.next()
    assert notification(early)["emailAddress"] == "c@example.com"
    assert notification(late)["emailAddress"] == "b@example.com"


async def test_a_failing_push_endpoint_is_retried(running: RunningSimulator,
                                                 receiver: Receiver) -> None:
    receiver.fail_first = 2
    running.sim.watch(A, TOPIC)
    running.sim.deliver(A)
    _, envelope = await receiver.next()
    assert receiver.attempts == 3
    assert notification(envelope)["historyId"] == running.sim.history_id(A)
