"""Notifications through Google's official Pub/Sub emulator and the real client library."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest
from gmailsim import Simulator
from googleapiclient.errors import HttpError

from tests.gmailsim.discovery import validate_error, validate_response
from tests.plugins.pubsub import PubSubTopic

A = "support@example.com"


async def pull(topic: PubSubTopic, count: int) -> list[Any]:
    """Pull until ``count`` messages arrived (each pull blocks in a worker thread)."""
    received: list[Any] = []
    async with asyncio.timeout(30):
        while len(received) < count:
            received += await asyncio.to_thread(topic.pull, 10, 5.0)
    return received


async def test_watch_publishes_to_the_topic_through_the_emulator(
        gmail_sim_factory: Any, pubsub_topic: PubSubTopic) -> None:
    sim = Simulator(seed=4)
    mailbox = sim.create_mailbox(A)
    async with gmail_sim_factory(sim, pubsub_emulator_host=pubsub_topic.host) as g:
        def watch() -> dict[str, Any]:
            body = g.service(mailbox.refresh_token).users().watch(
                userId="me", body={"topicName": pubsub_topic.topic, "labelIds": ["INBOX"]},
            ).execute()
            validate_response("gmail.users.watch", body)
            return body

        watched = await asyncio.to_thread(watch)
        assert watched["historyId"] == str(sim.history_id(A))
        sim.deliver(A)
        [message] = await pull(pubsub_topic, 1)
        assert json.loads(message.data) == {"emailAddress": A, "historyId": sim.history_id(A)}
        assert dict(message.attributes) == {}
        sim.deliver(A)  # within the second: folded, sent once the interval has passed
        sim.deliver(A)
        [later] = await pull(pubsub_topic, 1)
        assert json.loads(later.data)["historyId"] == sim.history_id(A)
        sent = [d for d in g.server.notifier.deliveries if d.sink == "pubsub"]
        assert [d.ok for d in sent] == [True, True]
        assert all(d.message_id for d in sent)


async def test_watch_on_a_missing_topic_is_refused(gmail_sim_factory: Any,
                                                  pubsub_topic: PubSubTopic) -> None:
    sim = Simulator(seed=4)
    mailbox = sim.create_mailbox(A)
    missing = pubsub_topic.topic + "-missing"
    async with gmail_sim_factory(sim, pubsub_emulator_host=pubsub_topic.host) as g:
        def watch() -> HttpError:
            with pytest.raises(HttpError) as caught:
                g.service(mailbox.refresh_token).users().watch(
                    userId="me", body={"topicName": missing}).execute()
            return caught.value

        refused = await asyncio.to_thread(watch)
    assert refused.resp.status == 400
    validate_error(json.loads(refused.content), 400)
    assert sim.active_watch(A) is None
