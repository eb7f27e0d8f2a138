"""Per-method counters of calls, quota units and errors, readable by benchmarks."""

from __future__ import annotations

import threading
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any


@dataclass(slots=True)
class MethodCounter:
    calls: int = 0
    units: int = 0
    errors: dict[str, int] = field(default_factory=lambda: defaultdict(int))

    def to_dict(self) -> dict[str, Any]:
        return {"calls": self.calls, "units": self.units, "errors": dict(self.errors)}


class Counters:
    """Thread-safe counters keyed by method name (``users.messages.get``, ``push.sent``...).

    ``errors`` is keyed ``"<status>/<reason>"``, e.g. ``"429/rateLimitExceeded"``.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._methods: dict[str, MethodCounter] = defaultdict(MethodCounter)

    def call(self, method: str) -> None:
        with self._lock:
            self._methods[method].calls += 1

    def units(self, method: str, units: int) -> None:
        with self._lock:
            self._methods[method].units += units

    def error(self, method: str, key: str) -> None:
        with self._lock:
            self._methods[method].errors[key] += 1

    def get(self, method: str) -> MethodCounter:
        """A copy of one method's counter (zeros when never called)."""
        with self._lock:
            counter = self._methods.get(method, MethodCounter())
            return MethodCounter(counter.calls, counter.units, defaultdict(int, counter.errors))

    def calls(self, method: str) -> int:
        return self.get(method).calls

    def total_units(self) -> int:
        with self._lock:
            return sum(c.units for c in self._methods.values())

    def total_errors(self) -> int:
        with self._lock:
            return sum(sum(c.errors.values()) for c in self._methods.values())

    def snapshot(self) -> dict[str, dict[str, Any]]:
        with self._lock:
            return {name: c.to_dict() for name, c in sorted(self._methods.items())}

    def reset(self) -> None:
        with self._lock:
            self._methods.clear()
