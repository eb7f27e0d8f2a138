"""Prometheus metrics of the consumer process, in a registry of its own (one per worker)."""

from __future__ import annotations

import contextlib
from dataclasses import dataclass, field

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from consumer.notification import Reason
from syncengine.budget import SharedBudget
from syncengine.gmail.client import error_reason
from syncengine.outbox import Attempt
from syncengine.runs import Progress

_LATENCY_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 30, 60, 120, 300, 900, 3600)


@dataclass
class ConsumerMetrics:
    registry: CollectorRegistry = field(default_factory=CollectorRegistry)

    def __post_init__(self) -> None:
        r = self.registry
        self.received = Counter(
            "delightbridge_consumer_messages_received_total",
            "Pub/Sub messages received", ["source"], registry=r)
        self.acked = Counter(
            "delightbridge_consumer_messages_acked_total",
            "Messages acked (pull) or answered 2xx (push)", ["source"], registry=r)
        self.nacked = Counter(
            "delightbridge_consumer_messages_nacked_total",
            "Messages nacked (pull) or answered 5xx (push), to be redelivered",
            ["source", "reason"], registry=r)
        self.ignored = Counter(
            "delightbridge_consumer_messages_ignored_total",
            "Messages acked without a sync, by reason", ["reason"], registry=r)
        self.watch_renewals = Counter(
            "delightbridge_consumer_watch_renewals_total",
            "Gmail watch renewals and stops by the in-consumer schedule, by outcome "
            "(renewed, failed, stopped, stop_failed)", ["outcome"],
            registry=r)
        self.syncs = Counter(
            "delightbridge_consumer_syncs_total", "Syncs run by the consumer, by outcome",
            ["trigger", "outcome"], registry=r)
        self.sync_seconds = Histogram(
            "delightbridge_consumer_sync_seconds", "Duration of the consumer's syncs",
            ["trigger"], buckets=_LATENCY_BUCKETS, registry=r)
        self.lag_seconds = Histogram(
            "delightbridge_consumer_lag_seconds",
            "From Pub/Sub publish time to the commit of the sync that covered the message",
            ["source"], buckets=_LATENCY_BUCKETS, registry=r)
        self.syncs_running = Gauge(
            "delightbridge_consumer_syncs_running", "Syncs running now", registry=r)
        self.mailboxes_waiting = Gauge(
            "delightbridge_consumer_mailboxes_waiting",
            "Mailboxes with notifications waiting for a sync slot", registry=r)
        self.stream_open = Gauge(
            "delightbridge_consumer_stream_open",
            "1 while the streaming pull is open (pull mode)", registry=r)
        self.push_auth_failures = Counter(
            "delightbridge_consumer_push_auth_failures_total",
            "Push requests refused for their OIDC token", ["status"], registry=r)
        self.sweeps = Counter(
            "delightbridge_consumer_sweeps_total", "Safety-net sweeps run", registry=r)
        self.events_delivered = Counter(
            "delightbridge_events_delivered_total",
            "New-mail events the receiver took (2xx), by kind", ["kind"], registry=r)
        self.events_failed = Counter(
            "delightbridge_events_failed_attempts_total",
            "Event deliveries that failed and will be retried, by reason "
            "(http_<status>, connection, timeout)", ["reason"], registry=r)
        self.events_delivery_seconds = Histogram(
            "delightbridge_events_delivery_seconds",
            "From an event's commit to its delivery", buckets=_LATENCY_BUCKETS, registry=r)
        self.events_pending = Gauge(
            "delightbridge_events_pending",
            "Events recorded and not yet delivered (every service)", registry=r)
        self.events_oldest_pending_seconds = Gauge(
            "delightbridge_events_oldest_pending_seconds",
            "Age of the oldest undelivered event: alert when it grows", registry=r)
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
            "delightbridge_imports_total", "Imports that ended here, by outcome",
            ["outcome"], registry=r)
        self.gmail_calls = Counter(
            "delightbridge_gmail_calls_total", "Gmail calls, by method", ["method"],
            registry=r)
        self.gmail_units = Counter(
            "delightbridge_gmail_units_total", "Gmail quota units spent, by method", ["method"],
            registry=r)
        self.gmail_errors = Counter(
            "delightbridge_gmail_errors_total",
            "Gmail answers that were errors, by reason (rateLimitExceeded: a 429 or 403 "
            "over a limit)", ["reason"], registry=r)
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
        self.swept = Counter(
            "delightbridge_consumer_swept_services_total",
            "Services the sweep found stale and synced", registry=r)
        # Every reason exists from the start, so dashboards see zeros, not gaps.
        for reason in Reason:
            self.ignored.labels(reason.value)
        for source in ("pull", "push"):
            self.received.labels(source)
            self.acked.labels(source)

    def count_event_attempt(self, attempt: Attempt) -> None:
        if attempt.delivered:
            self.events_delivered.labels(attempt.kind).inc()
            self.events_delivery_seconds.observe(attempt.age)
        else:
            self.events_failed.labels(attempt.error or "unknown").inc()

    def set_event_backlog(self, pending: int, oldest_seconds: float) -> None:
        self.events_pending.set(pending)
        self.events_oldest_pending_seconds.set(oldest_seconds)

    def set_import_progress(self, service_id: str, progress: Progress) -> None:
        self.import_done.labels(service_id).set(progress.done)
        if progress.total is not None:
            self.import_total.labels(service_id).set(progress.total)
        eta = progress.eta()
        if eta is not None:
            self.import_eta.labels(service_id).set(eta)

    def import_finished(self, service_id: str, outcome: object) -> None:
        for gauge in (self.import_done, self.import_total, self.import_eta):
            with contextlib.suppress(KeyError):
                gauge.remove(service_id)
        if outcome is None:
            self.imports.labels("not_run").inc()
        elif isinstance(outcome, BaseException):
            self.imports.labels(getattr(outcome, "code", type(outcome).__name__)).inc()
        else:
            self.imports.labels("succeeded").inc()

    # GmailListener: every call and error of this process's clients, as they happen.
    def gmail_called(self, method: str, units: int) -> None:
        self.gmail_calls.labels(method).inc()
        self.gmail_units.labels(method).inc(units)

    def gmail_failed(self, key: str) -> None:
        self.gmail_errors.labels(error_reason(key)).inc()

    def watch_budget(self, budget: SharedBudget | None) -> None:
        """The project's daily budget as this process's leases see it."""
        if budget is None:
            return
        daily = budget.config.daily_limit(bulk=False) or 0
        guard = budget.config.daily_limit(bulk=True) or 0
        self.gmail_daily_units.set_function(lambda: budget.day_units)
        self.gmail_daily_budget.set(daily)
        self.gmail_daily_guard.set(guard)
