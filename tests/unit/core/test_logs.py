"""Logging: one JSON object per line, extras kept, secrets never written."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator

import pytest

from delightbridge.core import logs
from delightbridge.core.settings import Settings


@pytest.fixture
def captured() -> Iterator[io.StringIO]:
    stream = io.StringIO()
    root = logging.getLogger()
    saved = (list(root.handlers), root.level)
    settings = Settings(
        auth_secret="auth-secret-value-123456", google_client_secret="client-secret-xyz",
        log_format="json",
    )
    logs.configure(settings, stream)
    yield stream
    root.handlers[:] = saved[0]
    root.setLevel(saved[1])


def _lines(stream: io.StringIO) -> list[dict[str, object]]:
    return [json.loads(line) for line in stream.getvalue().splitlines()]


def test_json_lines_carry_extras(captured: io.StringIO) -> None:
    logging.getLogger("t").info("synced %d", 3, extra={"action": "sync.done", "service": "s1"})
    [line] = _lines(captured)
    assert line["message"] == "synced 3"
    assert line["action"] == "sync.done"
    assert line["service"] == "s1"
    assert line["level"] == "info"
    assert line["logger"] == "t"


@pytest.mark.parametrize(
    "leak",
    [
        "Authorization: Bearer ya29.a0AfH6SMBxyzsecret",
        "cookie authjs.session-token=eyJhbGciOiJkaXIiLCJlbmMiOiJBMjU2Q0JDLUhTNTEyIn0..abc.def.ghi",
        '{"refresh_token": "1//0gLongRefreshTokenValue"}',
        "callback?state=s&code=4/0AVG7fiQ-secret-code",
        "configured secret auth-secret-value-123456 appeared",
        "and client-secret-xyz too",
    ],
)
def test_secrets_are_redacted_in_messages_extras_and_tracebacks(
    captured: io.StringIO, leak: str
) -> None:
    log = logging.getLogger("t")
    log.warning("message: %s", leak, extra={"detail": leak})
    try:
        raise RuntimeError(leak)
    except RuntimeError:
        log.exception("failed")
    text = captured.getvalue()
    for fragment in ("ya29.a0AfH6", "eyJhbGci", "1//0gLong", "4/0AVG7", "auth-secret-value",
                     "client-secret-xyz"):
        assert fragment not in text
    assert logs.REDACTED in text


def test_runtime_secrets_can_be_registered(captured: io.StringIO) -> None:
    logs.secrets.add("opaque-token-from-somewhere")
    logging.getLogger("t").info("got opaque-token-from-somewhere")
    assert "opaque-token" not in captured.getvalue()


FORGED = "\n12:00:00 ERROR   api: forged line\r\x1b[2K\u2028\x00\x85"


@pytest.mark.parametrize("log_format", ["text", "json"])
def test_control_characters_cannot_forge_a_line(log_format: str) -> None:
    """``GET /x%0a12:00:00%20ERROR%20api:%20forged`` is logged with its path decoded:
    every field an outsider can fill (message, extras, exception text) stays on the
    record's own line(s), whatever the format."""
    stream = io.StringIO()
    root = logging.getLogger()
    saved = (list(root.handlers), root.level)
    logs.configure(Settings(log_format=log_format), stream)  # type: ignore[arg-type]
    try:
        log = logging.getLogger("api")
        log.info("GET /x%s 404", FORGED, extra={"route": FORGED, FORGED.strip(): 1})
        try:
            raise ValueError(FORGED)
        except ValueError:
            log.exception("failed on %s", FORGED)
    finally:
        root.handlers[:] = saved[0]
        root.setLevel(saved[1])
    text = stream.getvalue()
    assert not any(ch in text for ch in "\r\x1b\x00\x85\u2028")
    lines = text.splitlines()
    # Only the two records start a line; a traceback's own lines are indented.
    starts = [line for line in lines if not line.startswith((" ", "\t"))]
    assert len(starts) == 2, lines
    assert not any(line.startswith("12:00:00") for line in lines)
    if log_format == "json":
        assert [json.loads(line)["logger"] for line in lines] == ["api", "api"]
