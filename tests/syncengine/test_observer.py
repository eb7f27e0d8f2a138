"""One observer: the engine tells whoever registered (the API's and the consumer's
metrics) of every Gmail call, every sync's end and an import's progress and end."""

from __future__ import annotations

from dataclasses import dataclass, field

import pytest
from prometheus_client import CollectorRegistry

from delightbridge.core.errors import ServiceNotFound
from delightbridge.sync.metrics import EngineMetrics
from delightbridge.sync.runs import Mode, Progress, Trigger
from tests.syncengine.conftest import SyncSetup


@dataclass
class Recorder:
    calls: list[tuple[str, int]] = field(default_factory=list)
    syncs: list[tuple[Mode, Trigger, str]] = field(default_factory=list)
    progress: list[tuple[str, int, int | None]] = field(default_factory=list)
    imports: list[tuple[str, str]] = field(default_factory=list)

    def gmail_called(self, method: str, units: int) -> None:
        self.calls.append((method, units))

    def gmail_failed(self, key: str) -> None:
        pass

    def sync_finished(self, mode: Mode, trigger: Trigger, outcome: str,
                      seconds: float) -> None:
        assert seconds >= 0
        self.syncs.append((mode, trigger, outcome))

    def import_progress(self, service_id: str, progress: Progress) -> None:
        self.progress.append((service_id, progress.done, progress.total))

    def import_finished(self, service_id: str, outcome: str) -> None:
        self.imports.append((service_id, outcome))


async def test_the_engine_tells_its_observers_what_it_does(setup: SyncSetup) -> None:
    setup.sim.seed(setup.address, messages=30, threads=10, seed=5)
    seen = Recorder()
    registry = CollectorRegistry()
    metrics = EngineMetrics(registry)
    setup.engine.observers += [seen, metrics]

    await setup.engine.sync(setup.account_id, mode="full", trigger="cli")
    await setup.engine.sync(setup.account_id, trigger="notification")
    with pytest.raises(ServiceNotFound):
        await setup.engine.sync("no-such-service", trigger="api")

    assert seen.syncs == [("full", "cli", "succeeded"), ("incremental", "notification",
                                                         "succeeded"),
                          ("incremental", "api", "service_not_found")]
    assert seen.imports == [(setup.account_id, "succeeded")]
    assert seen.progress[-1][1] == seen.progress[-1][2]  # done of total, at the end
    assert {m for m, _ in seen.calls} >= {"messages.list", "history.list"}
    units = registry.get_sample_value("delightbridge_gmail_units_total",
                                      {"method": "history.list"})
    assert units == sum(u for m, u in seen.calls if m == "history.list") > 0
    assert registry.get_sample_value("delightbridge_sync_runs_total", {
        "mode": "full", "trigger": "cli", "outcome": "succeeded"}) == 1
    # A finished import leaves no gauge behind.
    assert registry.get_sample_value("delightbridge_import_messages_done",
                                     {"service": setup.account_id}) is None
