"""Google's official Pub/Sub emulator as a child process, for the demo, tests and benchmarks.

The emulator jar ships with the Google Cloud SDK; it is started with ``java``
directly (not through gcloud, so that stopping it stops it) on a free port of
127.0.0.1. :func:`find` says whether it can run here; :func:`running` starts it,
waits until it accepts connections and kills it on exit. :func:`ensure_topic`
creates a topic and a pull subscription through the real google-cloud-pubsub
clients.
"""

from __future__ import annotations

import contextlib
import glob
import os
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

JAR_GLOB = os.environ.get(
    "PUBSUB_EMULATOR_JAR",
    "/usr/lib/google-cloud-sdk/platform/pubsub-emulator/lib/cloud-pubsub-emulator-*.jar",
)
STARTUP_TIMEOUT = 90.0


class EmulatorUnavailable(RuntimeError):
    """java or the emulator jar is missing on this machine."""


@dataclass(frozen=True, slots=True)
class Emulator:
    java: str
    jar: str


def find() -> Emulator:
    """The java binary and emulator jar, or :class:`EmulatorUnavailable` saying which lacks."""
    java = shutil.which("java")
    jars = sorted(glob.glob(JAR_GLOB))
    if java is None:
        raise EmulatorUnavailable("java is not installed: the Pub/Sub emulator cannot run")
    if not jars:
        raise EmulatorUnavailable(f"the Pub/Sub emulator jar is not installed ({JAR_GLOB})")
    return Emulator(java, jars[-1])


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _accepts(port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(0.5)
        return sock.connect_ex(("127.0.0.1", port)) == 0


@contextlib.contextmanager
def running(log_path: Path, emulator: Emulator | None = None) -> Iterator[str]:
    """Start the emulator; yield ``"127.0.0.1:PORT"``; kill it on exit. Blocking."""
    emulator = emulator or find()
    port = free_port()
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with log_path.open("wb") as log:
        process = subprocess.Popen(  # noqa: S603 - fixed argv, no shell
            [emulator.java, "-jar", emulator.jar, "--host=127.0.0.1", f"--port={port}"],
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


def publisher(host: str) -> Any:
    import grpc  # type: ignore[import-untyped]
    from google.cloud import pubsub_v1  # type: ignore[import-untyped]
    from google.pubsub_v1.services.publisher.transports import PublisherGrpcTransport

    return pubsub_v1.PublisherClient(
        transport=PublisherGrpcTransport(channel=grpc.insecure_channel(host)))


def subscriber(host: str) -> Any:
    import grpc
    from google.cloud import pubsub_v1
    from google.pubsub_v1.services.subscriber.transports import SubscriberGrpcTransport

    return pubsub_v1.SubscriberClient(
        transport=SubscriberGrpcTransport(channel=grpc.insecure_channel(host)))


def ensure_topic(host: str, topic: str, subscription: str, *, ack_deadline: int = 60) -> None:
    """Create ``topic`` and a pull ``subscription`` on it, unless they exist. Blocking."""
    from google.api_core.exceptions import AlreadyExists

    pub, sub = publisher(host), subscriber(host)
    try:
        with contextlib.suppress(AlreadyExists):
            pub.create_topic(request={"name": topic})
        with contextlib.suppress(AlreadyExists):
            sub.create_subscription(request={"name": subscription, "topic": topic,
                                             "ack_deadline_seconds": ack_deadline})
    finally:
        sub.close()
        pub.transport.close()
