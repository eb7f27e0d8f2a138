"""Who is told of every Gmail call and error as it happens (process-wide metrics)."""

from __future__ import annotations

from typing import Protocol


class GmailListener(Protocol):
    """Told of every call (its method and quota units) and every error answer (its key:
    ``"429:rateLimitExceeded"``, ``"connection"``)."""

    def gmail_called(self, method: str, units: int) -> None: ...
    def gmail_failed(self, key: str) -> None: ...
