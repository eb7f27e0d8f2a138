"""The consumer's configuration: defaults, Settings attributes, CLI overrides, validation."""

from __future__ import annotations

import argparse
from typing import Any

import pytest

from delightbridge.cli import consume as cli
from delightbridge.consumer.config import ConsumerConfig
from delightbridge.core.errors import ConfigError
from delightbridge.core.settings import GOOGLE_CERTS_URL, Settings


def test_defaults_follow_the_issue() -> None:
    config = ConsumerConfig.from_settings(Settings())
    assert config.mode == "pull"
    assert config.stale_after == 600.0  # "has not synced for N minutes (default 10)"
    assert config.concurrency == 4
    assert config.push_certs_url == GOOGLE_CERTS_URL
    assert 0 < config.shutdown_timeout < 30  # inside Kubernetes' default grace period


def test_the_environment_reaches_the_config_then_options_override_it() -> None:
    settings = Settings.from_env({
        "CONSUMER_MODE": "push", "CONSUMER_CONCURRENCY": "8", "CONSUMER_MAX_OUTSTANDING": "50",
        "CONSUMER_LOCK_WAIT_SECONDS": "5", "CONSUMER_HTTP_HOST": "127.0.0.1",
        "CONSUMER_HTTP_PORT": "9000", "SWEEP_INTERVAL_MINUTES": "2",
        "SWEEP_STALE_AFTER_MINUTES": "15", "CONSUMER_SHUTDOWN_TIMEOUT_SECONDS": "12",
        "PUSH_AUDIENCE": "https://x.example/push",
        "PUSH_SERVICE_ACCOUNT": "push@p.iam.gserviceaccount.com",
        "PUSH_CERTS_URL": "http://127.0.0.1:1/certs", "PUSH_CLOCK_SKEW_SECONDS": "3"})
    config = ConsumerConfig.from_settings(settings, concurrency=2)
    assert config == ConsumerConfig(
        mode="push", concurrency=2, max_outstanding=50, lock_wait=5.0, http_host="127.0.0.1",
        http_port=9000, sweep_interval=120.0, stale_after=900.0, shutdown_timeout=12.0,
        push_audience="https://x.example/push",
        push_service_account="push@p.iam.gserviceaccount.com",
        push_certs_url="http://127.0.0.1:1/certs", push_clock_skew=3.0)


def test_defaults_and_bounds_are_the_settings_declarations() -> None:
    declared = Settings()
    config = ConsumerConfig()
    assert (config.concurrency, config.http_port, config.stale_after) == (
        declared.consumer_concurrency, declared.consumer_http_port,
        60 * declared.sweep_stale_after_minutes)
    # The same bounds and words as the environment variable's.
    with pytest.raises(ConfigError) as from_env:
        Settings.from_env({"CONSUMER_CONCURRENCY": "257"})
    with pytest.raises(ConfigError) as from_code:
        ConsumerConfig(concurrency=257)
    assert str(from_code.value) == str(from_env.value)


@pytest.mark.parametrize(("values", "variable"), [
    ({"mode": "carrier-pigeon"}, "CONSUMER_MODE"),
    ({"concurrency": 0}, "CONSUMER_CONCURRENCY"),
    ({"max_outstanding": 0}, "CONSUMER_MAX_OUTSTANDING"),
    ({"http_port": 70000}, "CONSUMER_HTTP_PORT"),
    ({"lock_wait": -1.0}, "CONSUMER_LOCK_WAIT_SECONDS"),
    ({"shutdown_timeout": float("nan")}, "CONSUMER_SHUTDOWN_TIMEOUT_SECONDS"),
    ({"sweep_interval": 0.0}, "SWEEP_INTERVAL_MINUTES"),
    ({"stale_after": -5.0}, "SWEEP_STALE_AFTER_MINUTES"),
    ({"mode": "push", "push_service_account": "a@b.example"}, "PUSH_AUDIENCE"),
    ({"mode": "push", "push_audience": "https://x.example"}, "PUSH_SERVICE_ACCOUNT"),
])
def test_invalid_values_name_their_variable(values: dict[str, Any], variable: str) -> None:
    with pytest.raises(ConfigError) as caught:
        ConsumerConfig(**values)
    assert caught.value.variable == variable


def test_command_line_options_override_the_environment() -> None:
    parser = argparse.ArgumentParser()
    cli.configure(parser)
    args = parser.parse_args(["--mode", "push", "--port", "0", "--host", "127.0.0.1",
                              "--concurrency", "7", "--shutdown-timeout", "3"])
    with pytest.raises(ConfigError, match="PUSH_AUDIENCE"):
        cli.config_from(Settings(), args)
    args = parser.parse_args(["--port", "0", "--concurrency", "7", "--shutdown-timeout", "3"])
    config = cli.config_from(Settings(), args)
    assert (config.mode, config.http_port, config.concurrency, config.shutdown_timeout) == (
        "pull", 0, 7, 3.0)
    assert config.http_host == ConsumerConfig().http_host  # not given: the default
