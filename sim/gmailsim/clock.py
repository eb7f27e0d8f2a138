"""The simulator's clock: wall time that tests can jump forward (or freeze).

Everything time-dependent in the simulator reads this clock: access-token expiry,
watch expiry, ``internalDate`` of new mail, history retention and the quota window.
``advance(seconds)`` moves it forward without waiting, so a test can expire a
watch (7 days) or an access token (1 hour) instantly.
"""

from __future__ import annotations

import threading
import time


class Clock:
    """Epoch seconds = real elapsed time (unless frozen) + an adjustable offset."""

    def __init__(self, start: float | None = None, *, frozen: bool = False) -> None:
        self._lock = threading.Lock()
        self._base = time.time() if start is None else float(start)
        self._origin = time.monotonic()
        self._offset = 0.0
        self._frozen_at: float | None = 0.0 if frozen else None

    def now(self) -> float:
        """Current simulated time, epoch seconds."""
        with self._lock:
            elapsed = self._frozen_at if self._frozen_at is not None else self._elapsed()
            return self._base + elapsed + self._offset

    def now_ms(self) -> int:
        """Current simulated time, epoch milliseconds (Gmail's ``internalDate`` unit)."""
        return int(self.now() * 1000)

    def advance(self, seconds: float) -> float:
        """Jump forward by ``seconds`` (must be >= 0); returns the new time."""
        if seconds < 0:
            raise ValueError("the clock only moves forward")
        with self._lock:
            self._offset += seconds
        return self.now()

    @property
    def frozen(self) -> bool:
        return self._frozen_at is not None

    def freeze(self) -> None:
        """Stop real time from flowing; only :meth:`advance` moves the clock."""
        with self._lock:
            if self._frozen_at is None:
                self._frozen_at = self._elapsed()

    def unfreeze(self) -> None:
        """Let real time flow again from the frozen instant."""
        with self._lock:
            if self._frozen_at is not None:
                self._offset += self._frozen_at - self._elapsed()
                self._frozen_at = None

    def _elapsed(self) -> float:
        return time.monotonic() - self._origin
