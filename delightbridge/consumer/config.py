"""The consumer's own knobs, taken from the one ``Settings`` object.

Each knob's environment variable, default and bounds are declared once, in
:mod:`delightbridge.core.settings`; :class:`ConsumerConfig` takes its defaults from
those declarations and checks a value set another way (a command-line option, a
test) against the same parser. Durations here are seconds (the sweep's variables are
in minutes).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any, get_args

from delightbridge.core.errors import ConfigError
from delightbridge.core.settings import ConsumerMode, Settings, variable

Mode = ConsumerMode
MODES: tuple[Mode, ...] = get_args(ConsumerMode)
_DEFAULT = Settings()  # the declared defaults


@dataclass(frozen=True, slots=True)
class ConsumerConfig:
    """Everything the worker needs besides the database, the engine and Pub/Sub names."""

    mode: Mode = _DEFAULT.consumer_mode
    concurrency: int = _DEFAULT.consumer_concurrency  # syncs at once, across mailboxes
    max_outstanding: int = _DEFAULT.consumer_max_outstanding  # delivered, not yet acked
    lock_wait: float = _DEFAULT.consumer_lock_wait_seconds  # for another process's sync
    http_host: str = _DEFAULT.consumer_http_host
    http_port: int = _DEFAULT.consumer_http_port  # health, readiness, metrics; 0: any
    push_port: int = _DEFAULT.consumer_push_port  # push mode: POST /pubsub/push; 0: any
    sweep_interval: float = 60 * _DEFAULT.sweep_interval_minutes
    stale_after: float = 60 * _DEFAULT.sweep_stale_after_minutes
    shutdown_timeout: float = _DEFAULT.consumer_shutdown_timeout_seconds
    push_audience: str | None = _DEFAULT.push_audience  # expected ``aud`` of push tokens
    push_service_account: str | None = _DEFAULT.push_service_account  # their ``email``
    push_certs_url: str = _DEFAULT.push_certs_url  # Google's signing certificates
    push_clock_skew: float = _DEFAULT.push_clock_skew_seconds  # on ``iat``/``exp``
    renew_watches: bool = _DEFAULT.consumer_renew_watches  # the renewal schedule too

    def __post_init__(self) -> None:
        for name, value in (
            ("CONSUMER_MODE", self.mode),
            ("CONSUMER_CONCURRENCY", self.concurrency),
            ("CONSUMER_MAX_OUTSTANDING", self.max_outstanding),
            ("CONSUMER_LOCK_WAIT_SECONDS", self.lock_wait),
            ("CONSUMER_HTTP_PORT", self.http_port),
            ("CONSUMER_PUSH_PORT", self.push_port),
            ("SWEEP_INTERVAL_MINUTES", self.sweep_interval / 60),
            ("SWEEP_STALE_AFTER_MINUTES", self.stale_after / 60),
            ("CONSUMER_SHUTDOWN_TIMEOUT_SECONDS", self.shutdown_timeout),
            ("PUSH_CLOCK_SKEW_SECONDS", self.push_clock_skew),
        ):
            variable(name).check(value)
        _check(self.mode != "push" or self.push_port == 0 or self.push_port != self.http_port,
               "CONSUMER_PUSH_PORT", "must differ from CONSUMER_HTTP_PORT: the push port is "
               "public, the other internal")
        if self.mode == "push":
            _check(bool(self.push_audience), "PUSH_AUDIENCE",
                   "is required when CONSUMER_MODE=push")
            _check(bool(self.push_service_account), "PUSH_SERVICE_ACCOUNT",
                   "is required when CONSUMER_MODE=push")

    @classmethod
    def from_settings(cls, settings: Settings, **overrides: Any) -> ConsumerConfig:
        """The settings' values, then ``overrides`` (command-line options)."""
        config = cls(
            mode=settings.consumer_mode,
            concurrency=settings.consumer_concurrency,
            max_outstanding=settings.consumer_max_outstanding,
            lock_wait=settings.consumer_lock_wait_seconds,
            http_host=settings.consumer_http_host,
            http_port=settings.consumer_http_port,
            push_port=settings.consumer_push_port,
            sweep_interval=60 * settings.sweep_interval_minutes,
            stale_after=60 * settings.sweep_stale_after_minutes,
            shutdown_timeout=settings.consumer_shutdown_timeout_seconds,
            push_audience=settings.push_audience,
            push_service_account=settings.push_service_account,
            push_certs_url=settings.push_certs_url,
            push_clock_skew=settings.push_clock_skew_seconds,
            renew_watches=settings.consumer_renew_watches,
        )
        return replace(config, **overrides) if overrides else config


def _check(ok: bool, variable: str, problem: str) -> None:
    if not ok:
        raise ConfigError(variable, problem)
