"""Google's official Pub/Sub emulator, started once per test session.

``pubsub_emulator`` starts ``cloud-pubsub-emulator-*.jar`` with ``java`` directly
(not through gcloud) on a free port of 127.0.0.1, waits until it accepts
connections and yields ``"127.0.0.1:PORT"``; the process is killed at the end of
the session. Tests using it are skipped only where java or the jar is missing.
``pubsub_topic`` creates a fresh topic and a pull subscription on it.
"""

from __future__ import annotations

import glob
import os
import shutil
import socket
import subprocess
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

JAR_GLOB = os.environ.get(
    "PUBSUB_EMULATOR_JAR",
    "/usr/lib/google-cloud-sdk/platform/pubsub-emulator/lib/cloud-pubsub-emulator-*.jar",
)
PROJECT = "gmailsim-test"
STARTUP_TIMEOUT = 90.0


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _accepts(port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(0.5)
        return sock.connect_ex(("127.0.0.1", port)) == 0


@pytest.fixture(scope="session")
def pubsub_emulator(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """``host:port`` of a running Pub/Sub emulator."""
    java = shutil.which("java")
    jars = sorted(glob.glob(JAR_GLOB))
    if java is None:
        pytest.skip("java is not installed: the Pub/Sub emulator cannot run")
    if not jars:
        pytest.skip(f"the Pub/Sub emulator jar is not installed ({JAR_GLOB})")
    port = _free_port()
    log_path = Path(tmp_path_factory.mktemp("pubsub")) / "emulator.log"
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            [java, "-jar", jars[-1], "--host=127.0.0.1", f"--port={port}"],
            stdout=log, stderr=subprocess.STDOUT,
        )
    try:
        deadline = time.monotonic() + STARTUP_TIMEOUT
        while not _accepts(port):
            if process.poll() is not None:
                raise RuntimeError("the Pub/Sub emulator exited:\n" + log_path.read_text())
            if time.monotonic() > deadline:
                raise RuntimeError("the Pub/Sub emulator did not start:\n" + log_path.read_text())
            time.sleep(0.1)  # polling a socket until the server accepts
        yield f"127.0.0.1:{port}"
    finally:
        process.kill()
        process.wait(timeout=30)


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


def publisher(host: str) -> Any:
    import grpc
    from google.cloud import pubsub_v1
    from google.pubsub_v1.services.publisher.transports import PublisherGrpcTransport

    return pubsub_v1.PublisherClient(
        transport=PublisherGrpcTransport(channel=grpc.insecure_channel(host)))


def subscriber(host: str) -> Any:
    import grpc
    from google.cloud import pubsub_v1
    from google.pubsub_v1.services.subscriber.transports import SubscriberGrpcTransport

    return pubsub_v1.SubscriberClient(
        transport=SubscriberGrpcTransport(channel=grpc.insecure_channel(host)))


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
