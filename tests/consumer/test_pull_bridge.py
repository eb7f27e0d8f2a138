"""The pull bridge's own RPCs after the stream stopped, against the emulator.

Once the streaming pull is closed the library's dispatcher is gone, so the bridge acks
and nacks with unary ``Acknowledge`` / ``ModifyAckDeadline`` calls. Messages here are
taken with a synchronous Pull (the emulator is exact for those), then settled by the
bridge; a message's own ``ack()``/``nack()`` must not be used any more.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from delightbridge.consumer.metrics import ConsumerMetrics
from delightbridge.consumer.pull import PullBridge, subscriber_client
from tests.consumer.conftest import PubSub
from tests.plugins.pubsub import subscriber


@dataclass
class Received:
    """A synchronously pulled message in the shape the bridge settles."""

    received: Any

    @property
    def data(self) -> bytes:
        return bytes(self.received.message.data)

    @property
    def message_id(self) -> str:
        return str(self.received.message.message_id)

    @property
    def ack_id(self) -> str:
        return str(self.received.ack_id)

    @property
    def publish_time(self) -> datetime:
        return datetime.fromtimestamp(0)

    @property
    def delivery_attempt(self) -> int | None:
        return None

    def ack(self) -> None:
        raise AssertionError("the library's dispatcher is gone after stop()")

    def nack(self) -> None:
        raise AssertionError("the library's dispatcher is gone after stop()")


def pull_one(pubsub: PubSub) -> Received:
    client = subscriber(pubsub.host)
    try:
        response = client.pull(request={"subscription": pubsub.subscription,
                                        "max_messages": 1}, timeout=10)
    finally:
        client.close()
    (received,) = response.received_messages
    return Received(received)


def nack_by_hand(pubsub: PubSub, ack_id: str) -> None:
    client = subscriber(pubsub.host)
    try:
        client.modify_ack_deadline(request={"subscription": pubsub.subscription,
                                            "ack_ids": [ack_id], "ack_deadline_seconds": 0})
    finally:
        client.close()


async def stopped_bridge(pubsub: PubSub) -> tuple[PullBridge, Any]:
    client = subscriber_client(pubsub.host)
    bridge = PullBridge(client, pubsub.subscription, max_outstanding=10,
                        on_message=lambda message: None, metrics=ConsumerMetrics())
    await bridge.check()
    await bridge.stop()
    return bridge, client


async def test_a_nack_after_stop_makes_the_message_available_at_once(pubsub: PubSub) -> None:
    bridge, client = await stopped_bridge(pubsub)
    try:
        message_id = await pubsub.send(b'{"emailAddress": "a@b.example", "historyId": 1}')
        message = await asyncio.to_thread(pull_one, pubsub)
        assert message.message_id == message_id
        assert await pubsub.backlog() == []  # leased by us
        await bridge.settle(message, ack=False)
        assert [m.message_id for m in await pubsub.backlog(wait=5)] == [message_id]
    finally:
        await asyncio.to_thread(client.close)


async def test_an_ack_after_stop_is_final(pubsub: PubSub) -> None:
    bridge, client = await stopped_bridge(pubsub)
    try:
        await pubsub.send(b'{"emailAddress": "a@b.example", "historyId": 2}')
        message = await asyncio.to_thread(pull_one, pubsub)
        await bridge.settle(message, ack=True)
        # An acked message cannot be brought back: a nack by hand finds nothing to nack.
        await asyncio.to_thread(nack_by_hand, pubsub, message.ack_id)
        assert await pubsub.backlog() == []
        # (And the same by-hand nack does bring back a message nobody acked.)
        control_id = await pubsub.send(b"{}")
        control = await asyncio.to_thread(pull_one, pubsub)
        await asyncio.to_thread(nack_by_hand, pubsub, control.ack_id)
        assert [m.message_id for m in await pubsub.backlog()] == [control_id]
    finally:
        await asyncio.to_thread(client.close)
