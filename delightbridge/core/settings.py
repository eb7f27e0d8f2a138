"""One typed settings object, read from the environment and an optional ``.env`` file.

Every variable is declared once, as a field of :class:`Settings` (:func:`setting`):
name, type, default, parser with its bounds, and meaning. The README's table and
``.env.example`` document the same list with the same defaults, and a test keeps them
in step; the consumer's configuration takes its defaults and bounds from here.
An invalid value raises :class:`ConfigError` naming the variable, never echoing a
secret's value.
"""

from __future__ import annotations

import base64
import binascii
import os
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, Literal, cast, get_args
from urllib.parse import urlsplit

from dotenv import dotenv_values

from delightbridge.core.demo_dir import running_env
from delightbridge.core.errors import ConfigError

LogFormat = Literal["json", "text"]
ConsumerMode = Literal["pull", "push"]

_LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")
_PROJECT_RE = re.compile(r"^(?:[a-z][a-z0-9.-]*:)?[a-z][a-z0-9-]{4,28}[a-z0-9]$")
_RESOURCE_ID_RE = re.compile(r"^[A-Za-z][A-Za-z0-9\-_.~+%]{2,254}$")
_EMAIL_RE = re.compile(r"^[^@\s,]+@[^@\s,]+$")


DEFAULT_DATA_DIR = Path(".delightbridge")
GOOGLE_CERTS_URL = "https://www.googleapis.com/oauth2/v1/certs"


# --- parsers: each takes the stripped raw value and raises ValueError(problem) --------


def _postgres_url(raw: str) -> str:
    parts = urlsplit(raw)
    if parts.scheme not in ("postgres", "postgresql"):
        raise ValueError("must be a postgresql:// URL")
    if not parts.path.strip("/") and "dbname=" not in parts.query:
        raise ValueError("must name a database (postgresql://user@host:5432/dbname)")
    try:
        _ = parts.port
    except ValueError:
        raise ValueError("has an invalid port") from None
    return raw


def _http_url(raw: str) -> str:
    parts = urlsplit(raw)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(f"must be an http(s) URL, got {raw!r}")
    if parts.query or parts.fragment:
        raise ValueError("must not carry a query string or fragment")
    try:
        _ = parts.port
    except ValueError:
        raise ValueError("has an invalid port") from None
    return raw.rstrip("/")


def _return_url(raw: str) -> str:
    """An http(s) URL that may carry a query string (the web app's page and its tab)."""
    parts = urlsplit(raw)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(f"must be an http(s) URL, got {raw!r}")
    if parts.fragment:
        raise ValueError("must not carry a fragment")
    try:
        _ = parts.port
    except ValueError:
        raise ValueError("has an invalid port") from None
    return raw


def _int_between(low: int, high: int) -> Callable[[str], int]:
    def parse(raw: str) -> int:
        try:
            value = int(raw)
        except ValueError:
            raise ValueError(f"must be an integer from {low} to {high}, got {raw!r}") from None
        if not low <= value <= high:
            raise ValueError(f"must be from {low} to {high}, got {value}")
        return value

    return parse


def _emails(raw: str) -> frozenset[str]:
    items = [item for item in re.split(r"[,\s]+", raw) if item]
    bad = [item for item in items if not _EMAIL_RE.match(item)]
    if bad:
        raise ValueError(f"must be comma-separated email addresses; {bad[0]!r} is not one")
    return frozenset(item.lower() for item in items)


def _number(low: float, high: float) -> Callable[[str], float]:
    def parse(raw: str) -> float:
        try:
            value = float(raw)
        except ValueError:
            raise ValueError(f"must be a number from {low:g} to {high:g}, got {raw!r}") from None
        if not low <= value <= high:  # also refuses nan
            raise ValueError(f"must be from {low:g} to {high:g}, got {raw!r}")
        return value

    return parse


def _bool(raw: str) -> bool:
    value = raw.lower()
    if value in ("1", "true", "yes", "on"):
        return True
    if value in ("0", "false", "no", "off"):
        return False
    raise ValueError(f"must be true or false, got {raw!r}")


def _consumer_mode(raw: str) -> ConsumerMode:
    for mode in get_args(ConsumerMode):
        if raw.lower() == mode:
            return cast(ConsumerMode, mode)
    raise ValueError(f"must be pull or push, got {raw!r}")


def _plain(raw: str) -> str:
    return raw


#: Auth.js's own generator (``npx auth secret``) gives 32 random bytes, 44 characters.
MIN_AUTH_SECRET_LENGTH = 32


def _auth_secret(raw: str) -> str:
    # A short secret lets anyone who guesses it mint admin sessions; never echo it.
    if len(raw) < MIN_AUTH_SECRET_LENGTH:
        raise ValueError(f"must be at least {MIN_AUTH_SECRET_LENGTH} characters (this one "
                         f"has {len(raw)}); generate one with `npx auth secret` or "
                         "`openssl rand -base64 32`, and give the web app the same")
    return raw


def _aes_key(raw: str) -> bytes:
    try:
        padded = raw + "=" * (-len(raw) % 4)
        key = base64.b64decode(padded.replace("-", "+").replace("_", "/"), validate=True)
    except (binascii.Error, ValueError):
        raise ValueError("must be base64 (standard or URL-safe)") from None
    if len(key) != 32:
        raise ValueError(f"must decode to 32 bytes for AES-256-GCM, got {len(key)}")
    return key


def _aes_keys(raw: str) -> tuple[bytes, ...]:
    keys = []
    for n, item in enumerate((i.strip() for i in raw.split(",")), start=1):
        if not item:
            continue
        try:
            keys.append(_aes_key(item))
        except ValueError as exc:
            raise ValueError(f"key {n}: {exc}") from None
    return tuple(dict.fromkeys(keys))


def _signing_secret(raw: str) -> str:
    if len(raw) < 32:
        raise ValueError(f"must be at least 32 characters, got {len(raw)}")
    return raw


def _quota_profile(raw: str) -> str:
    if raw not in ("2026", "legacy"):
        raise ValueError(f"must be 2026 or legacy, got {raw!r}")
    return raw


def _costs(raw: str) -> dict[str, int]:
    costs: dict[str, int] = {}
    for item in (i.strip() for i in raw.split(",")):
        if not item:
            continue
        method, sep, units = item.partition("=")
        if not sep or not method.strip() or not units.strip().isdigit():
            raise ValueError(f"must be method=units pairs, comma-separated; {item!r} is not")
        costs[method.strip()] = int(units)
    return costs


def _replaced_units_per_second(raw: str) -> str:
    raise ValueError("was replaced: set GMAIL_QUOTA_PROFILE (2026 or legacy) and, to "
                     "override its per-mailbox budget, GMAIL_QUOTA_USER_UNITS and "
                     "GMAIL_QUOTA_USER_WINDOW_SECONDS")


def _project(raw: str) -> str:
    if not _PROJECT_RE.match(raw):
        raise ValueError(f"is not a Google Cloud project id: {raw!r}")
    return raw


def _resource(kind: str) -> Callable[[str], str]:
    def parse(raw: str) -> str:
        match = re.fullmatch(rf"projects/([^/]+)/{kind}/([^/]+)", raw)
        name = match.group(2) if match else raw
        if match and not _PROJECT_RE.match(match.group(1)):
            raise ValueError(f"names an invalid project in {raw!r}")
        if not _RESOURCE_ID_RE.match(name) or name.lower().startswith("goog"):
            raise ValueError(f"is not a valid Pub/Sub {kind[:-1]} name: {raw!r}")
        return raw

    return parse


def _host_port(raw: str) -> str:
    host, sep, port = raw.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise ValueError(f"must be host:port, got {raw!r}")
    return raw


def _label_ids(raw: str) -> tuple[str, ...]:
    labels = tuple(item for item in re.split(r"[,\s]+", raw) if item)
    bad = [label for label in labels if not re.fullmatch(r"[A-Za-z0-9_]+", label)]
    if bad:
        raise ValueError(f"must be comma-separated Gmail label ids; {bad[0]!r} is not one")
    return labels


def _behavior(raw: str) -> str:
    value = raw.lower()
    if value not in ("include", "exclude"):
        raise ValueError(f"must be include or exclude, got {raw!r}")
    return value


def _log_level(raw: str) -> str:
    level = raw.upper()
    if level not in _LOG_LEVELS:
        raise ValueError(f"must be one of {', '.join(_LOG_LEVELS)}, got {raw!r}")
    return level


def _log_format(raw: str) -> str:
    value = raw.lower()
    if value not in ("json", "text"):
        raise ValueError(f"must be json or text, got {raw!r}")
    return value


def _path(raw: str) -> Path:
    return Path(raw).expanduser()


def setting(name: str, default: Any, parse: Callable[[str], Any], doc: str, *,
            secret: bool = False) -> Any:
    """A field of :class:`Settings`, declared once: its environment variable, default,
    parser (which holds its bounds) and documentation. The variables read, the README's
    table and ``.env.example`` (checked by tests/unit/core/test_settings.py) and the
    consumer's configuration all come from these declarations."""
    var = Variable(name, parse, doc, secret)
    if isinstance(default, dict | list | set):
        factory = type(default)
        return field(default_factory=lambda: factory(default), repr=not secret,
                      metadata={"variable": var})
    return field(default=default, repr=not secret, metadata={"variable": var})


@dataclass(frozen=True, slots=True)
class Variable:
    """One environment variable: its name, parser (bounds included) and meaning."""

    name: str
    parse: Callable[[str], Any]
    doc: str
    secret: bool = False

    def check(self, value: object) -> None:
        """Raise :class:`ConfigError` when ``value`` is outside what the variable
        accepts (for values set another way: command-line options, say)."""
        try:
            self.parse(str(value))
        except ValueError as exc:
            raise ConfigError(self.name, str(exc)) from None


@dataclass(frozen=True, slots=True)
class Settings:
    """Configuration of every DelightBridge Sync process: one field per environment
    variable, each declared once (:func:`setting`)."""

    database_url: str | None = setting(
        "DATABASE_URL", None, _postgres_url,
        "PostgreSQL URL; unset starts an embedded server under DELIGHTBRIDGE_DATA_DIR")
    auth_secret: str | None = setting(
        "AUTH_SECRET", None, _auth_secret,
        "the web app's Auth.js secret, to read its admin session cookies (at least 32 "
        "characters)", secret=True)
    admin_emails: frozenset[str] = setting(
        "ADMIN_EMAILS", frozenset(), _emails,
        "comma-separated addresses treated as admins besides users.permission='admin'")
    google_client_id: str | None = setting(
        "GOOGLE_CLIENT_ID", None, _plain,
        "OAuth client id")
    google_client_secret: str | None = setting(
        "GOOGLE_CLIENT_SECRET", None, _plain,
        "OAuth client secret", secret=True)
    google_oauth_token_uri: str = setting(
        "GOOGLE_OAUTH_TOKEN_URI", "https://oauth2.googleapis.com/token", _http_url,
        "OAuth token endpoint")
    google_oauth_auth_uri: str = setting(
        "GOOGLE_OAUTH_AUTH_URI", "https://accounts.google.com/o/oauth2/v2/auth", _http_url,
        "OAuth consent screen the connect endpoint redirects admins to")
    public_base_url: str | None = setting(
        "PUBLIC_BASE_URL", None, _http_url,
        "the API's public origin (and path prefix), for the OAuth redirect URI and "
        "reconnect links; unset: the origin of each request")
    connect_return_url: str | None = setting(
        "CONNECT_RETURN_URL", None, _return_url,
        "where the OAuth callback sends the browser afterwards (status, reason, runId "
        "added to its query); unset: the API's /api/services/oauth/result")
    gmail_api_endpoint: str = setting(
        "GMAIL_API_ENDPOINT", "https://gmail.googleapis.com", _http_url,
        "Gmail API base URL (may carry a path prefix)")
    gmail_batch_size: int = setting(
        "GMAIL_BATCH_SIZE", 50, _int_between(1, 100),
        "requests per Gmail batch call; 1 disables batching")
    gmail_quota_profile: str = setting(
        "GMAIL_QUOTA_PROFILE", "2026", _quota_profile,
        "Gmail's quota model: 2026 (projects created since 2026-05-01) or legacy")
    gmail_quota_user_units: int | None = setting(
        "GMAIL_QUOTA_USER_UNITS", None, _int_between(1, 10**9),
        "override: units per mailbox per window (2026: 6000, legacy: 250)")
    gmail_quota_user_window_seconds: float | None = setting(
        "GMAIL_QUOTA_USER_WINDOW_SECONDS", None, _number(0.1, 3600),
        "override: the per-mailbox window (2026: 60, legacy: 1)")
    gmail_quota_project_units_per_minute: int | None = setting(
        "GMAIL_QUOTA_PROJECT_UNITS_PER_MINUTE", None, _int_between(1, 10**10),
        "override: units per minute for every mailbox together "
        "(1200000)")
    gmail_quota_daily_units: int | None = setting(
        "GMAIL_QUOTA_DAILY_UNITS", None, _int_between(0, 10**12),
        "override: units per Pacific day for the project (2026: 80000000; 0: none)")
    gmail_quota_costs: Mapping[str, int] = setting(
        "GMAIL_QUOTA_COSTS", {}, _costs,
        "override: units per method, e.g. messages.get=20,threads.get=40")
    gmail_quota_daily_guard: float = setting(
        "GMAIL_QUOTA_DAILY_GUARD", 0.9, _number(0.1, 1.0),
        "share of the daily budget imports may use (the rest is kept for fresh mail); "
        "also the daily alert threshold (default 0.9)")
    gmail_fetch_concurrency: int = setting(
        "GMAIL_FETCH_CONCURRENCY", 4, _int_between(1, 64),
        "batches (or single calls) in flight per mailbox")
    pubsub_project: str = setting(
        "PUBSUB_PROJECT", "delightbridge-local", _project,
        "Google Cloud project of the topic")
    pubsub_topic: str = setting(
        "PUBSUB_TOPIC", "gmail-push", _resource("topics"),
        "topic Gmail publishes to (id or projects/P/topics/T)")
    pubsub_subscription: str = setting(
        "PUBSUB_SUBSCRIPTION", "gmail-push-sync", _resource("subscriptions"),
        "subscription the consumer pulls (id or projects/P/subscriptions/S)")
    pubsub_emulator_host: str | None = setting(
        "PUBSUB_EMULATOR_HOST", None, _host_port,
        "host:port of the Pub/Sub emulator, standard for Google's clients")
    gmail_watch_label_ids: tuple[str, ...] = setting(
        "GMAIL_WATCH_LABEL_IDS", (), _label_ids,
        "labels the Gmail watch is limited to (e.g. INBOX); empty: every change")
    gmail_watch_label_filter_behavior: str = setting(
        "GMAIL_WATCH_LABEL_FILTER_BEHAVIOR", "include", _behavior,
        "include (notify for those labels) or exclude (for all but them)")
    consumer_mode: ConsumerMode = setting(
        "CONSUMER_MODE", "pull", _consumer_mode,
        "pull (streaming pull, default) or push (POST /pubsub/push)")
    consumer_concurrency: int = setting(
        "CONSUMER_CONCURRENCY", 4, _int_between(1, 256),
        "syncs at once across mailboxes in one consumer (default 4)")
    consumer_max_outstanding: int = setting(
        "CONSUMER_MAX_OUTSTANDING", 500, _int_between(1, 100_000),
        "Pub/Sub flow control: messages held, not yet acked (default 500)")
    consumer_lock_wait_seconds: float = setting(
        "CONSUMER_LOCK_WAIT_SECONDS", 60.0, _number(0, 3600),
        "wait this long for another process's sync of a mailbox (default 60)")
    consumer_http_host: str = setting(
        "CONSUMER_HTTP_HOST", "0.0.0.0", _plain,  # noqa: S104 - probes and push come from outside the pod
        "address of the consumer's HTTP ports (default 0.0.0.0)")
    consumer_http_port: int = setting(
        "CONSUMER_HTTP_PORT", 8081, _int_between(0, 65535),
        "the consumer's internal port: /healthz, /readyz, /metrics (default 8081; 0: any "
        "free port)")
    consumer_push_port: int = setting(
        "CONSUMER_PUSH_PORT", 8080, _int_between(0, 65535),
        "push mode: the public port of POST /pubsub/push, apart from the internal one "
        "(default 8080; 0: any free port)")
    sweep_interval_minutes: float = setting(
        "SWEEP_INTERVAL_MINUTES", 1.0, _number(0.0001, 1440),
        "how often the safety-net sweep runs (default 1)")
    sweep_stale_after_minutes: float = setting(
        "SWEEP_STALE_AFTER_MINUTES", 10.0, _number(0.0001, 10080),
        "a connected service not synced this long is synced by the sweep (default 10)")
    http_idle_timeout_seconds: float = setting(
        "HTTP_IDLE_TIMEOUT_SECONDS", 15.0, _number(0.5, 3600),
        "both HTTP servers close a connection that has not sent a whole request head "
        "this long after opening, or stays idle this long between requests (default 15)")
    consumer_shutdown_timeout_seconds: float = setting(
        "CONSUMER_SHUTDOWN_TIMEOUT_SECONDS", 25.0, _number(0, 3600),
        "grace for running syncs after SIGTERM (default 25)")
    consumer_renew_watches: bool = setting(
        "CONSUMER_RENEW_WATCHES", False, _bool,
        "also run the watch renewal schedule inside the consumer (default false)")
    push_audience: str | None = setting(
        "PUSH_AUDIENCE", None, _plain,
        "push mode: the OIDC token's expected audience")
    push_service_account: str | None = setting(
        "PUSH_SERVICE_ACCOUNT", None, _plain,
        "push mode: the service account Pub/Sub signs push requests as")
    push_certs_url: str = setting(
        "PUSH_CERTS_URL", GOOGLE_CERTS_URL, _http_url,
        "push mode: Google's signing certificates (default Google's)")
    push_clock_skew_seconds: float = setting(
        "PUSH_CLOCK_SKEW_SECONDS", 10.0, _number(0, 300),
        "push mode: tolerated clock skew on token times (default 10)")
    token_encryption_key: bytes | None = setting(
        "TOKEN_ENCRYPTION_KEY", None, _aes_key,
        "32 bytes, base64: encrypts the service's own copies of OAuth tokens "
        "(AES-256-GCM); the web app's token columns stay plain", secret=True)
    token_encryption_old_keys: tuple[bytes, ...] = setting(
        "TOKEN_ENCRYPTION_OLD_KEYS", (), _aes_keys,
        "comma-separated earlier keys, still accepted for reading (key rotation; "
        "reseal-tokens re-encrypts with TOKEN_ENCRYPTION_KEY)", secret=True)
    events_url: str | None = setting(
        "EVENTS_URL", None, _http_url,
        "where new-mail events are POSTed (the web app's receiver); unset: none recorded")
    events_secret: str | None = setting(
        "EVENTS_SECRET", None, _signing_secret,
        "HMAC-SHA256 key signing each event (32+ characters; required with EVENTS_URL)",
        secret=True)
    log_level: str = setting(
        "LOG_LEVEL", "INFO", _log_level,
        "DEBUG, INFO, WARNING, ERROR")
    log_format: LogFormat = setting(
        "LOG_FORMAT", "json", _log_format,
        "json or text; default text on a terminal, json otherwise")
    data_dir: Path = setting(
        "DELIGHTBRIDGE_DATA_DIR", DEFAULT_DATA_DIR, _path,
        "local state (embedded PostgreSQL data); default ./.delightbridge")

    @classmethod
    def from_env(
        cls,
        environ: Mapping[str, str] | None = None,
        *,
        env_file: Path | None = None,
        demo: bool | None = None,
    ) -> Settings:
        """Read settings from ``environ`` (default ``os.environ``) over a ``.env`` file.

        The file is ``DELIGHTBRIDGE_ENV_FILE`` when set (it must exist), else ``./.env``
        when present. Real environment variables win over the file. With ``demo``
        (default: when reading ``os.environ``), the settings of a demo running from the
        data directory come between the two (:mod:`delightbridge.core.demo_dir`), so that
        ``status``, ``sync`` or ``admin-session`` reach it.
        """
        env = dict(os.environ if environ is None else environ)
        merged = {**_read_env_file(env, env_file), **env}
        if demo if demo is not None else environ is None:
            raw_dir = merged.get("DELIGHTBRIDGE_DATA_DIR", "").strip()
            data_dir = _path(raw_dir) if raw_dir else DEFAULT_DATA_DIR
            merged = {**_read_env_file(env, env_file), **running_env(data_dir), **env}
        values: dict[str, Any] = {}
        for name, parse in _RETIRED.items():
            if merged.get(name, "").strip():
                try:
                    parse(merged[name].strip())
                except ValueError as exc:
                    raise ConfigError(name, str(exc)) from None
        for attr, var in _declared():
            raw = merged.get(var.name)
            if raw is None or raw.strip() == "":
                continue
            try:
                values[attr] = var.parse(raw.strip())
            except ValueError as exc:
                raise ConfigError(var.name, str(exc)) from None
        if "events_url" in values and "events_secret" not in values:
            raise ConfigError("EVENTS_SECRET", "is required when EVENTS_URL is set: events "
                              "are signed with it")
        if "log_format" not in values:
            values["log_format"] = "text" if _stderr_is_tty() else "json"
        return cls(**values)

    @property
    def gmail_base_url(self) -> str:
        """Root of Gmail's REST paths: ``<endpoint>/gmail/v1/``."""
        return f"{self.gmail_api_endpoint}/gmail/v1/"

    @property
    def gmail_batch_uri(self) -> str:
        """Gmail's batch endpoint under the configured base: ``<endpoint>/batch/gmail/v1``."""
        return f"{self.gmail_api_endpoint}/batch/gmail/v1"

    @property
    def topic_path(self) -> str:
        return _resource_path(self.pubsub_project, "topics", self.pubsub_topic)

    @property
    def subscription_path(self) -> str:
        return _resource_path(self.pubsub_project, "subscriptions", self.pubsub_subscription)

    def secret_values(self) -> list[str]:
        """Values that must never appear in a log line: those of the variables declared
        secret (keys in both base64 alphabets), and the database URL's password."""
        secrets: list[str | None] = []
        for attr, var in _declared():
            if not var.secret:
                continue
            value = getattr(self, attr)
            for item in value if isinstance(value, tuple) else (value,):
                if isinstance(item, bytes):
                    secrets += [base64.urlsafe_b64encode(item).decode(),
                                base64.b64encode(item).decode()]
                else:
                    secrets.append(item)
        password = urlsplit(self.database_url).password if self.database_url else None
        secrets.append(password)
        return [s for s in secrets if s]


#: Variables of earlier releases, refused with what replaced them.
_RETIRED: dict[str, Callable[[str], Any]] = {
    "GMAIL_QUOTA_UNITS_PER_SECOND": _replaced_units_per_second,
}


def _declared() -> tuple[tuple[str, Variable], ...]:
    return tuple((f.name, f.metadata["variable"]) for f in fields(Settings))


def variable(name: str) -> Variable:
    """The declaration of environment variable ``name``."""
    for _, var in _declared():
        if var.name == name:
            return var
    raise KeyError(name)

ENV_FILE_VARIABLE = "DELIGHTBRIDGE_ENV_FILE"


def variable_names() -> list[str]:
    """Every environment variable the settings read, in documentation order."""
    return [var.name for _, var in _declared()] + list(_RETIRED)


def _read_env_file(env: Mapping[str, str], env_file: Path | None) -> dict[str, str]:
    if env_file is None and env.get(ENV_FILE_VARIABLE):
        env_file = Path(env[ENV_FILE_VARIABLE])
        if not env_file.is_file():
            raise ConfigError(ENV_FILE_VARIABLE, f"no such file: {env_file}")
    if env_file is None:
        env_file = Path(".env")
        if not env_file.is_file():
            return {}
    return {k: v for k, v in dotenv_values(env_file).items() if v is not None}


def _resource_path(project: str, kind: str, name: str) -> str:
    return name if name.startswith("projects/") else f"projects/{project}/{kind}/{name}"


def _stderr_is_tty() -> bool:
    try:
        return os.isatty(2)
    except OSError:
        return False
