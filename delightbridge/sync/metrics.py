"""The engine's Prometheus metrics: the one :class:`~delightbridge.sync.observer.SyncObserver`
the API and the consumer both register, each in its own registry. Every metric of
Gmail calls, syncs and imports is declared here once."""

from __future__ import annotations

import contextlib

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from delightbridge.sync.budget import SharedBudget
from delightbridge.sync.gmail.client import error_reason
from delightbridge.sync.runs import MODES, Mode, Progress, Trigger

SYNC_SECONDS_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 30, 60, 120, 300, 900, 3600)


class EngineMetrics:
    """Gmail calls, units and errors as they happen; syncs and imports as they end;
    the project's daily budget as this process's leases see it."""

    def __init__(self, registry: CollectorRegistry) -> None:
        r = registry
        self.gmail_calls = Counter(
            "delightbridge_gmail_calls_total", "Gmail calls, by method", ["method"],
            registry=r)
        self.gmail_units = Counter(
            "delightbridge_gmail_units_total", "Gmail quota units spent, by method", ["method"],
            registry=r)
        self.gmail_errors = Counter(
            "delightbridge_gmail_errors_total",
            "Gmail answers that were errors, by reason (rateLimitExceeded: over a limit) "
            "and HTTP status (429: the per-user rate; empty: no answer)",
            ["reason", "status"], registry=r)
        self.gmail_daily_units = Gauge(
            "delightbridge_gmail_daily_units",
            "Units the project has leased today (Pacific day), every process", registry=r)
        self.gmail_daily_budget = Gauge(
            "delightbridge_gmail_daily_budget_units",
            "The project's daily Gmail budget (0: none)", registry=r)
        self.gmail_daily_guard = Gauge(
            "delightbridge_gmail_daily_guard_units",
            "Past this many units a day imports stop: alert when daily_units reaches it",
            registry=r)
        self.gmail_window_units = Gauge(
            "delightbridge_gmail_project_window_units",
            "Units the project has leased in its last per-minute window, every process",
            registry=r)
        self.gmail_window_budget = Gauge(
            "delightbridge_gmail_project_window_budget_units",
            "The most the project's leases may hold in one window", registry=r)
        self.sync_runs = Counter(
            "delightbridge_sync_runs_total", "Syncs run by this process, by outcome",
            ["mode", "trigger", "outcome"], registry=r)
        self.sync_seconds = Histogram(
            "delightbridge_sync_seconds", "Duration of this process's syncs (a lock wait "
            "included)", ["mode"], buckets=SYNC_SECONDS_BUCKETS, registry=r)
        self.import_done = Gauge(
            "delightbridge_import_messages_done",
            "Messages a running import has dealt with (stored, skipped)", ["service"],
            registry=r)
        self.import_total = Gauge(
            "delightbridge_import_messages_total",
            "Messages in the mailbox when its running import started", ["service"], registry=r)
        self.import_eta = Gauge(
            "delightbridge_import_eta_seconds",
            "Estimated time left of a running import", ["service"], registry=r)
        self.imports = Counter(
            "delightbridge_imports_total", "Imports that ended in this process, by outcome",
            ["outcome"], registry=r)
        for mode in MODES:  # dashboards see zeros, not gaps
            self.sync_seconds.labels(mode)

    # GmailListener
    def gmail_called(self, method: str, units: int) -> None:
        self.gmail_calls.labels(method).inc()
        self.gmail_units.labels(method).inc(units)

    def gmail_failed(self, key: str) -> None:
        status, sep, _ = key.partition(":")
        self.gmail_errors.labels(error_reason(key), status if sep else "").inc()

    # SyncObserver
    def sync_finished(self, mode: Mode, trigger: Trigger, outcome: str,
                      seconds: float) -> None:
        self.sync_runs.labels(mode, trigger, outcome).inc()
        if outcome == "succeeded":
            self.sync_seconds.labels(mode).observe(seconds)

    def import_progress(self, service_id: str, progress: Progress) -> None:
        self.import_done.labels(service_id).set(progress.done)
        if progress.total is not None:
            self.import_total.labels(service_id).set(progress.total)
        eta = progress.eta()
        if eta is not None:
            self.import_eta.labels(service_id).set(eta)

    def import_finished(self, service_id: str, outcome: str) -> None:
        for gauge in (self.import_done, self.import_total, self.import_eta):
            with contextlib.suppress(KeyError):
                gauge.remove(service_id)
        self.imports.labels(outcome).inc()

    def watch_budget(self, budget: SharedBudget | None) -> None:
        """The project's budgets, per window and per day, as this process's leases see
        them."""
        if budget is None:
            return
        config = budget.config
        self.gmail_daily_units.set_function(budget.units_today)
        self.gmail_daily_budget.set(config.daily_limit(bulk=False) or 0)
        self.gmail_daily_guard.set(config.daily_limit(bulk=True) or 0)
        self.gmail_window_units.set_function(budget.units_in_window)
        self.gmail_window_budget.set(config.window_limit(bulk=False))
