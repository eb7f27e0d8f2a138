"""When a watch is renewed, alone: due dates and a stable per-service offset."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from delightbridge.sync import watch
from delightbridge.sync.watch import renewal_due

NOW = datetime(2026, 11, 23, 12, tzinfo=UTC)


@pytest.mark.parametrize(
    ("expires", "renewed", "due"),
    [
        (None, None, True),  # never watched
        (NOW + timedelta(days=6), NOW - timedelta(hours=1), False),
        (NOW + timedelta(days=6), NOW - timedelta(hours=25), True),  # a day old
        (NOW + timedelta(days=1), NOW - timedelta(hours=1), True),  # about to lapse
        (NOW - timedelta(minutes=1), NOW - timedelta(hours=1), True),  # lapsed
    ],
)
def test_renewal_due(expires: datetime | None, renewed: datetime | None, due: bool) -> None:
    assert renewal_due("svc", expires, renewed, NOW) is due


def test_jitter_spreads_services_but_is_stable() -> None:
    offsets = {watch.jitter_for(f"svc-{n}") for n in range(50)}
    assert len(offsets) == 50
    assert all(timedelta(0) <= o < watch.JITTER for o in offsets)
    assert watch.jitter_for("svc-1") == watch.jitter_for("svc-1")
