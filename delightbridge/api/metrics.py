"""Prometheus metrics of the API process, in a registry of its own (one per app)."""

from __future__ import annotations

from dataclasses import dataclass, field

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from delightbridge.sync.metrics import EngineMetrics


@dataclass
class ApiMetrics:
    registry: CollectorRegistry = field(default_factory=CollectorRegistry)

    def __post_init__(self) -> None:
        r = self.registry
        #: Gmail calls, syncs and imports: the engine's observer (``engine.observers``).
        self.engine = EngineMetrics(r)
        self.requests = Counter("delightbridge_http_requests_total", "HTTP requests",
                                ["route", "method", "status"], registry=r)
        self.request_seconds = Histogram("delightbridge_http_request_seconds",
                                         "HTTP request duration", ["route"], registry=r)
        self.watches = Gauge(
            "delightbridge_watches",
            "Connected services by Gmail watch state, read from the database at scrape "
            "time (active, expiring within two days, lapsed or missing, failing: last "
            "renewal failed), whichever process renews them", ["state"], registry=r)
        self.watch_stops_pending = Gauge(
            "delightbridge_watch_stops_pending",
            "Watches of disconnected or deleted services still to stop (users.stop)",
            registry=r)
