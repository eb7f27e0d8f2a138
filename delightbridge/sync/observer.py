"""What the engine tells as it works: one interface for whoever counts it.

The API and the consumer both register an observer (their Prometheus metrics,
:class:`delightbridge.sync.metrics.EngineMetrics`) in :attr:`SyncEngine.observers
<delightbridge.sync.engine.SyncEngine.observers>`; the engine and the Gmail clients it makes
call it as things happen. Observers must be quick and must not raise: they run on the
event loop, in the middle of a sync.
"""

from __future__ import annotations

from typing import Protocol

from delightbridge.sync.gmail.listener import GmailListener
from delightbridge.sync.runs import Mode, Progress, Trigger


class SyncObserver(GmailListener, Protocol):
    """Told of every Gmail call and error, every sync's end and every import's
    progress and end."""

    def sync_finished(self, mode: Mode, trigger: Trigger, outcome: str,
                      seconds: float) -> None:
        """A sync ended: ``outcome`` is ``succeeded``, ``cancelled``, ``internal`` or a
        domain error's code; ``seconds`` from the call (a lock wait included)."""
        ...

    def import_progress(self, service_id: str, progress: Progress) -> None:
        """A running import committed more of its work."""
        ...

    def import_finished(self, service_id: str, outcome: str) -> None:
        """An import ended here: ``succeeded``, ``not_run`` (another process holds it),
        ``cancelled`` or an error's code."""
        ...
