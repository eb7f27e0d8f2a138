"""Prometheus metrics of the API process, in a registry of its own (one per app)."""

from __future__ import annotations

from dataclasses import dataclass, field

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram


@dataclass
class ApiMetrics:
    registry: CollectorRegistry = field(default_factory=CollectorRegistry)

    def __post_init__(self) -> None:
        r = self.registry
        self.requests = Counter("delightbridge_http_requests_total", "HTTP requests",
                                ["route", "method", "status"], registry=r)
        self.request_seconds = Histogram("delightbridge_http_request_seconds",
                                         "HTTP request duration", ["route"], registry=r)
        self.sync_runs = Counter("delightbridge_sync_runs_total", "Sync runs by outcome",
                                 ["mode", "trigger", "outcome"], registry=r)
        self.sync_seconds = Histogram(
            "delightbridge_sync_seconds", "Sync run duration", ["mode"], registry=r,
            buckets=(0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 900, 3600))
        self.gmail_calls = Counter("delightbridge_gmail_calls_total", "Gmail API calls",
                                   ["method"], registry=r)
        self.gmail_errors = Counter("delightbridge_gmail_errors_total",
                                    "Gmail API error answers", ["reason"], registry=r)
        self.watches = Gauge(
            "delightbridge_watches",
            "Connected services by Gmail watch state, read from the database at scrape "
            "time (active, expiring within two days, lapsed or missing, failing: last "
            "renewal failed), whichever process renews them", ["state"], registry=r)
        self.watch_stops_pending = Gauge(
            "delightbridge_watch_stops_pending",
            "Watches of disconnected or deleted services still to stop (users.stop)",
            registry=r)
