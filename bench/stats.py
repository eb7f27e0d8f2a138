"""Small statistics: medians of runs, percentiles of latencies, targets."""

from __future__ import annotations

import math
from collections.abc import Sequence
from statistics import median
from typing import Any


def med(values: Sequence[float | None]) -> float | None:
    clean = [v for v in values if v is not None and not math.isnan(v)]
    return median(clean) if clean else None


def percentile(values: Sequence[float], q: float) -> float | None:
    """The q-th percentile (0-100), nearest-rank on sorted values."""
    if not values:
        return None
    ordered = sorted(values)
    rank = max(1, math.ceil(q / 100 * len(ordered)))
    return ordered[rank - 1]


def spread(values: Sequence[float | None]) -> dict[str, Any]:
    clean = [v for v in values if v is not None]
    if not clean:
        return {"n": 0}
    return {"n": len(clean), "median": median(clean), "min": min(clean), "max": max(clean)}


def target(name: str, goal: str, measured: float | None, unit: str, *,
           at_least: float | None = None, at_most: float | None = None,
           note: str | None = None) -> dict[str, Any]:
    """A target row: met when ``measured`` is within the bound (None: not measured)."""
    met: bool | None
    if measured is None:
        met = None
    elif at_least is not None:
        met = measured >= at_least
    elif at_most is not None:
        met = measured <= at_most
    else:
        met = None
    return {"name": name, "target": goal, "measured": measured, "unit": unit, "met": met,
            "note": note}
