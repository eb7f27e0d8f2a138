"""Prometheus metrics of the consumer process, in a registry of its own (one per worker)."""

from __future__ import annotations

from dataclasses import dataclass, field

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from delightbridge.consumer.notification import Reason
from delightbridge.sync.metrics import SYNC_SECONDS_BUCKETS, EngineMetrics
from delightbridge.sync.outbox import Attempt


@dataclass
class ConsumerMetrics:
    registry: CollectorRegistry = field(default_factory=CollectorRegistry)

    def __post_init__(self) -> None:
        r = self.registry
        #: Gmail calls, syncs and imports: the engine's observer (``engine.observers``).
        self.engine = EngineMetrics(r)
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
        self.lag_seconds = Histogram(
            "delightbridge_consumer_lag_seconds",
            "From Pub/Sub publish time to the commit of the sync that covered the message",
            ["source"], buckets=SYNC_SECONDS_BUCKETS, registry=r)
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
            "From an event's commit to its delivery", buckets=SYNC_SECONDS_BUCKETS, registry=r)
        self.events_pending = Gauge(
            "delightbridge_events_pending",
            "Events recorded and not yet delivered (every service)", registry=r)
        self.events_oldest_pending_seconds = Gauge(
            "delightbridge_events_oldest_pending_seconds",
            "Age of the oldest undelivered event: alert when it grows", registry=r)
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
