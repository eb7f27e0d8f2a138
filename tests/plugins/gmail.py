"""Fixtures for the Gmail API simulator (``gmailsim``).

* ``gmail_simulator``: a fresh :class:`gmailsim.Simulator` (no server).
* ``gmail_sim``: the simulator served on 127.0.0.1 (a :class:`GmailSim`: ``.sim``,
  ``.base_url`` for ``GMAIL_API_ENDPOINT``, ``.token_uri``, ``.batch_uri``, and
  helpers to build google-api-python-client services against it).
* ``gmail_sim_factory``: ``async with gmail_sim_factory(prefix="/p", ...) as g:`` for
  servers with other options (path prefix, Pub/Sub emulator, push endpoint).
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any

import pytest
from gmailsim import Simulator
from gmailsim.server import RunningSimulator, serve


def gmail_settings(server: RunningSimulator) -> dict[str, Any]:
    """The settings that point the service at this simulator: Gmail, its OAuth client,
    and the quota model it enforces."""
    return {"gmail_api_endpoint": server.base_url, "google_oauth_token_uri": server.token_uri,
            "google_client_id": server.sim.client_id,
            "google_client_secret": server.sim.client_secret,
            "gmail_quota_profile": server.sim.quota.profile}


@dataclass
class GmailSim:
    """A simulator and its running server."""

    sim: Simulator
    server: RunningSimulator

    @property
    def base_url(self) -> str:
        return self.server.base_url

    @property
    def token_uri(self) -> str:
        return self.server.token_uri

    @property
    def batch_uri(self) -> str:
        return self.server.batch_uri

    def credentials(self, refresh_token: str) -> Any:
        """google-auth user credentials that refresh against the simulator."""
        from google.oauth2.credentials import Credentials

        return Credentials(
            None, refresh_token=refresh_token, token_uri=self.token_uri,
            client_id=self.sim.client_id, client_secret=self.sim.client_secret,
        )

    def service(self, refresh_token: str) -> Any:
        """A blocking Gmail client (bundled discovery document) aimed at the simulator.

        Call it from a worker thread (``asyncio.to_thread``) inside async tests.
        """
        from googleapiclient.discovery import build

        return build(
            "gmail", "v1", credentials=self.credentials(refresh_token), static_discovery=True,
            cache_discovery=False, client_options={"api_endpoint": self.base_url},
        )

    def batch(self, callback: Callable[[str, Any, Exception | None], None] | None = None
              ) -> Any:
        """A ``BatchHttpRequest`` posting to the simulator's batch endpoint."""
        from googleapiclient.http import BatchHttpRequest

        return BatchHttpRequest(callback=callback, batch_uri=self.batch_uri)


@pytest.fixture
def gmail_simulator() -> Simulator:
    return Simulator(seed=0)


@pytest.fixture
def gmail_sim_factory(gmail_simulator: Simulator
                      ) -> Callable[..., contextlib.AbstractAsyncContextManager[GmailSim]]:
    @contextlib.asynccontextmanager
    async def start(sim: Simulator | None = None, **options: Any) -> AsyncIterator[GmailSim]:
        target = sim or gmail_simulator
        async with serve(target, **options) as running:
            yield GmailSim(target, running)

    return start


@pytest.fixture
async def gmail_sim(gmail_simulator: Simulator) -> AsyncIterator[GmailSim]:
    async with serve(gmail_simulator) as running:
        yield GmailSim(gmail_simulator, running)
