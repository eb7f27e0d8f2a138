"""The consumer's own knobs, with defaults, read from the one ``Settings`` object.

``ConsumerConfig.from_settings`` reads each knob from its ``Settings`` attribute when
``Settings`` has it (``consumer_concurrency`` for ``CONSUMER_CONCURRENCY``, ...; see
``_FROM_SETTINGS``) and keeps the default otherwise, so the environment variables work
as soon as ``delightbridge/core/settings.py`` declares them. Durations here are seconds.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Literal

from delightbridge.core.errors import ConfigError
from delightbridge.core.settings import Settings

Mode = Literal["pull", "push"]
MODES: tuple[Mode, ...] = ("pull", "push")

GOOGLE_CERTS_URL = "https://www.googleapis.com/oauth2/v1/certs"


@dataclass(frozen=True, slots=True)
class ConsumerConfig:
    """Everything the worker needs besides the database, the engine and Pub/Sub names."""

    mode: Mode = "pull"
    concurrency: int = 4  # syncs running at once in this process, across mailboxes
    max_outstanding: int = 500  # Pub/Sub flow control: messages delivered, not yet acked
    lock_wait: float = 60.0  # wait this long for another process's sync of a mailbox
    http_host: str = "0.0.0.0"  # noqa: S104 - probes and push come from outside the pod
    http_port: int = 8081  # health, readiness and metrics (internal); 0: any free
    push_port: int = 8080  # push mode: POST /pubsub/push (public); 0: any free
    sweep_interval: float = 60.0  # how often the safety-net sweep looks for stale services
    stale_after: float = 600.0  # a connected service not synced for this long is swept
    shutdown_timeout: float = 25.0  # in-flight syncs get this long after SIGTERM
    push_audience: str | None = None  # expected ``aud`` of push OIDC tokens
    push_service_account: str | None = None  # expected ``email`` of push OIDC tokens
    push_certs_url: str = GOOGLE_CERTS_URL  # Google's signing certificates (PEM by kid)
    push_clock_skew: float = 10.0  # tolerated skew on ``iat``/``exp``, seconds
    renew_watches: bool = False  # also run the watch renewal schedule (no cron needed)

    def __post_init__(self) -> None:
        _check(self.mode in MODES, "CONSUMER_MODE", f"must be pull or push, got {self.mode!r}")
        _check(1 <= self.concurrency <= 256, "CONSUMER_CONCURRENCY", "must be from 1 to 256")
        _check(1 <= self.max_outstanding <= 100_000, "CONSUMER_MAX_OUTSTANDING",
               "must be from 1 to 100000")
        _check(0 <= self.http_port < 65536, "CONSUMER_HTTP_PORT", "must be from 0 to 65535")
        _check(0 <= self.push_port < 65536, "CONSUMER_PUSH_PORT", "must be from 0 to 65535")
        _check(self.mode != "push" or self.push_port == 0 or self.push_port != self.http_port,
               "CONSUMER_PUSH_PORT", "must differ from CONSUMER_HTTP_PORT: the push port is "
               "public, the other internal")
        for variable, value in (
            ("CONSUMER_LOCK_WAIT_SECONDS", self.lock_wait),
            ("CONSUMER_SHUTDOWN_TIMEOUT_SECONDS", self.shutdown_timeout),
            ("PUSH_CLOCK_SKEW_SECONDS", self.push_clock_skew),
        ):
            _check(math.isfinite(value) and value >= 0, variable, "must be a number >= 0")
        for variable, value in (
            ("SWEEP_INTERVAL_MINUTES", self.sweep_interval),
            ("SWEEP_STALE_AFTER_MINUTES", self.stale_after),
        ):
            _check(math.isfinite(value) and value > 0, variable, "must be a number > 0")
        if self.mode == "push":
            _check(bool(self.push_audience), "PUSH_AUDIENCE",
                   "is required when CONSUMER_MODE=push")
            _check(bool(self.push_service_account), "PUSH_SERVICE_ACCOUNT",
                   "is required when CONSUMER_MODE=push")

    @classmethod
    def from_settings(cls, settings: Settings, **overrides: Any) -> ConsumerConfig:
        """Defaults, then any matching ``Settings`` attribute, then ``overrides``."""
        values: dict[str, Any] = {}
        for name, (attr, scale) in _FROM_SETTINGS.items():
            value = getattr(settings, attr, None)
            if value is not None:
                values[name] = value * scale if scale != 1 else value
        values.update(overrides)
        return cls(**values)


# field -> (Settings attribute, factor to seconds): the attribute names the lead is
# asked to add to Settings (see the module docstring); absent ones keep the default.
_FROM_SETTINGS: dict[str, tuple[str, int]] = {
    "mode": ("consumer_mode", 1),
    "concurrency": ("consumer_concurrency", 1),
    "max_outstanding": ("consumer_max_outstanding", 1),
    "lock_wait": ("consumer_lock_wait_seconds", 1),
    "http_host": ("consumer_http_host", 1),
    "http_port": ("consumer_http_port", 1),
    "push_port": ("consumer_push_port", 1),
    "sweep_interval": ("sweep_interval_minutes", 60),
    "stale_after": ("sweep_stale_after_minutes", 60),
    "shutdown_timeout": ("consumer_shutdown_timeout_seconds", 1),
    "push_audience": ("push_audience", 1),
    "push_service_account": ("push_service_account", 1),
    "push_certs_url": ("push_certs_url", 1),
    "push_clock_skew": ("push_clock_skew_seconds", 1),
    "renew_watches": ("consumer_renew_watches", 1),
}


def _check(ok: bool, variable: str, problem: str) -> None:
    if not ok:
        raise ConfigError(variable, problem)
