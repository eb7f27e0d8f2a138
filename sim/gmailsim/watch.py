"""A mailbox's watch (``users.watch``) and the label filter deciding what it reports.

``labelIds`` + ``labelFilterBehavior``: with ``include`` a change is reported when a
touched message carries (or gains, or loses) one of the labels; with ``exclude``
unless every touched message carries one of them. No labels: every change.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from gmailsim.model import HistoryRecord


@dataclass(slots=True)
class Watch:
    topic: str
    label_ids: tuple[str, ...]
    behavior: str  # "include" | "exclude"
    expiration_ms: int
    history_id: int


@dataclass(frozen=True, slots=True)
class ChangeEvent:
    """A watched mailbox changed in a way its watch's label filter lets through."""

    address: str
    history_id: int
    topic: str
    time: float


def passes_filter(watch: Watch, record: HistoryRecord) -> bool:
    """Whether a change gets through a watch's label filter."""
    if not watch.label_ids:
        return True
    wanted = set(watch.label_ids)
    touched: list[set[str]] = []
    for ref in (*record.added, *record.deleted):
        touched.append(set(ref.labels))
    for ref, changed in (*record.labels_added, *record.labels_removed):
        touched.append(set(ref.labels) | set(changed))
    if watch.behavior == "include":
        return any(labels & wanted for labels in touched)
    return any(not (labels & wanted) for labels in touched)
