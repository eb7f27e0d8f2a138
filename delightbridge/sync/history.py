"""What a page of Gmail history means for the mirror: a pure fold of its records.

The sync never applies label deltas blindly: every message a record touches is read
again in its current state (so reordering, duplicates and overlapping pages cannot
leave a wrong label set), except messages Gmail reports deleted, which are removed.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

_TOUCHING = ("messagesAdded", "labelsAdded", "labelsRemoved")


@dataclass(frozen=True, slots=True)
class HistoryPlan:
    fetch: frozenset[str]  # read the current state (store it, or delete if gone/unmirrored)
    delete: frozenset[str]  # Gmail deleted these
    last_record_id: int | None  # highest record id seen (a valid cursor for the next page)


def _message_id(entry: Any) -> str | None:
    if isinstance(entry, Mapping):
        message = entry.get("message")
        if isinstance(message, Mapping) and isinstance(message.get("id"), str):
            return str(message["id"])
    return None


def plan(records: Iterable[Mapping[str, Any]]) -> HistoryPlan:
    fetch: set[str] = set()
    delete: set[str] = set()
    last: int | None = None
    for record in records:
        record_id = record.get("id")
        if isinstance(record_id, str) and record_id.isdigit():
            last = max(last or 0, int(record_id))
        for key in _TOUCHING:
            for entry in record.get(key) or ():
                if (mid := _message_id(entry)) is not None:
                    fetch.add(mid)
        for entry in record.get("messagesDeleted") or ():
            if (mid := _message_id(entry)) is not None:
                delete.add(mid)
    return HistoryPlan(frozenset(fetch - delete), frozenset(delete), last)
