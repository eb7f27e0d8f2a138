"""Google's official Pub/Sub emulator, started once per test session.

``pubsub_emulator`` starts ``cloud-pubsub-emulator-*.jar`` with ``java`` directly
(not through gcloud) on a free port of 127.0.0.1, waits until it accepts
connections and yields ``"127.0.0.1:PORT"``; the process is killed at the end of
the session. Tests using it are skipped only where java or the jar is missing.
``pubsub_topic`` creates a fresh topic and a pull subscription on it.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from delightbridge.local import pubsub_emulator as pubsub_emulator_process

PROJECT = "gmailsim-test"


@pytest.fixture(scope="session")
def pubsub_emulator(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """``host:port`` of a running Pub/Sub emulator."""
    try:
        emulator = pubsub_emulator_process.find()
    except pubsub_emulator_process.EmulatorUnavailable as exc:
        pytest.skip(str(exc))
    log_path = Path(tmp_path_factory.mktemp("pubsub")) / "emulator.log"
    with pubsub_emulator_process.running(log_path, emulator) as host:
        yield host


@dataclass(frozen=True)
class PubSubTopic:
    host: str
    topic: str  # projects/P/topics/T
    subscription: str  # projects/P/subscriptions/S

    def pull(self, max_messages: int = 10, timeout: float = 10.0) -> list[Any]:
        """Blocking pull + ack of up to ``max_messages`` (run it in a thread)."""
        client = subscriber(self.host)
        try:
            response = client.pull(
                request={"subscription": self.subscription, "max_messages": max_messages},
                timeout=timeout,
            )
            received = list(response.received_messages)
            if received:
                client.acknowledge(request={"subscription": self.subscription,
                                            "ack_ids": [m.ack_id for m in received]})
            return [m.message for m in received]
        finally:
            client.close()


publisher = pubsub_emulator_process.publisher
subscriber = pubsub_emulator_process.subscriber


@pytest.fixture
def pubsub_topic(pubsub_emulator: str) -> Iterator[PubSubTopic]:
    """A new topic with a pull subscription, in the emulator."""
    name = uuid.uuid4().hex[:12]
    topic = f"projects/{PROJECT}/topics/gmail-{name}"
    subscription = f"projects/{PROJECT}/subscriptions/gmail-{name}"
    pub = publisher(pubsub_emulator)
    sub = subscriber(pubsub_emulator)
    try:
        pub.create_topic(request={"name": topic})
        sub.create_subscription(request={"name": subscription, "topic": topic,
                                         "ack_deadline_seconds": 10})
        yield PubSubTopic(pubsub_emulator, topic, subscription)
    finally:
        sub.close()
        pub.transport.close()
