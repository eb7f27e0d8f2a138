"""One mailbox: messages, threads, labels, send-as identities, the history id and the
history log.

Every mutation appends exactly the history record Gmail would and stamps the
touched message (and its thread) with that record's id:

* a new message: ``messagesAdded`` (with the message's labels);
* a label change: ``labelsAdded`` and/or ``labelsRemoved`` (with the labels that
  actually changed, and the message's labels after the change); no record when
  nothing changed;
* trash: ``TRASH`` added and ``INBOX`` (and ``SPAM``) removed, in one record;
* delete: ``messagesDeleted``.

History ids grow monotonically with random gaps, as Gmail documents ("increase
chronologically but are not contiguous"). Old records are discarded by a
retention window; a ``startHistoryId`` older than what is retained is answered
with 404, as Gmail does.
"""

from __future__ import annotations

import random
from collections.abc import Iterable
from dataclasses import dataclass, field

from gmailsim import labels as L
from gmailsim.mime import GeneratedMessage
from gmailsim.payload import ParsedMessage
from gmailsim.sendas import SendAsSettings
from gmailsim.watch import Watch


@dataclass(frozen=True, slots=True)
class MessageRef:
    """A message as a history record names it, with its labels at that moment."""

    id: str
    thread_id: str
    labels: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class HistoryRecord:
    id: int
    time: float
    added: tuple[MessageRef, ...] = ()
    deleted: tuple[MessageRef, ...] = ()
    labels_added: tuple[tuple[MessageRef, tuple[str, ...]], ...] = ()
    labels_removed: tuple[tuple[MessageRef, tuple[str, ...]], ...] = ()

    def messages(self) -> list[MessageRef]:
        seen: dict[str, MessageRef] = {}
        for ref in (*self.added, *self.deleted, *(r for r, _ in self.labels_added),
                    *(r for r, _ in self.labels_removed)):
            seen.setdefault(ref.id, ref)
        return list(seen.values())


@dataclass(slots=True)
class StoredMessage:
    id: str
    thread_id: str
    raw: bytes
    parsed: ParsedMessage
    labels: set[str]
    history_id: int
    internal_date: int
    truth: GeneratedMessage | None = None

    def ref(self) -> MessageRef:
        return MessageRef(self.id, self.thread_id, tuple(L.order_labels(self.labels)))


@dataclass(slots=True)
class Thread:
    id: str
    message_ids: list[str] = field(default_factory=list)
    history_id: int = 0


class MailboxState:
    """The state of one mailbox. Not thread-safe: the simulator serialises access."""

    def __init__(self, address: str, name: str | None, *, rng: random.Random,
                 max_gap: int = 25) -> None:
        self.address = address
        self.name = name or address.partition("@")[0]
        self._rng = rng
        self._max_gap = max(1, max_gap)
        self.history_id = 1000 + rng.randrange(1_000_000)
        self.floor = self.history_id
        self.history: list[HistoryRecord] = []
        self.messages: dict[str, StoredMessage] = {}
        self.threads: dict[str, Thread] = {}
        self.user_labels: dict[str, L.UserLabel] = {}
        self.watch: Watch | None = None
        self.send_as = SendAsSettings(address, name or "")
        self._label_serial = 0

    # --- labels --------------------------------------------------------------------

    def known_label(self, label_id: str) -> bool:
        return label_id in L.SYSTEM_LABELS or label_id in self.user_labels

    def create_label(self, name: str) -> L.UserLabel:
        for label in self.user_labels.values():
            if label.name == name:
                return label
        self._label_serial += 1
        label = L.UserLabel(f"Label_{self._label_serial}", name)
        self.user_labels[label.id] = label
        return label

    # --- history ---------------------------------------------------------------------

    def _next_history_id(self) -> int:
        self.history_id += self._rng.randint(1, self._max_gap)
        return self.history_id

    def _append(self, record: HistoryRecord) -> HistoryRecord:
        self.history.append(record)
        return record

    def bump(self) -> int:
        """Advance the history id without a visible record (Gmail's silent changes)."""
        return self._next_history_id()

    def trim(self, *, keep_records: int | None, keep_seconds: float | None,
             now: float) -> None:
        """Discard records beyond the retention window; raise the floor accordingly."""
        drop = 0
        if keep_records is not None and len(self.history) > keep_records:
            drop = len(self.history) - keep_records
        if keep_seconds is not None:
            limit = now - keep_seconds
            while drop < len(self.history) and self.history[drop].time < limit:
                drop += 1
        if drop:
            self.floor = max(self.floor, self.history[drop - 1].id)
            del self.history[:drop]

    def expire_history(self, up_to: int | None = None) -> None:
        """Forget every record with id <= ``up_to`` (default: all of them)."""
        limit = self.history_id if up_to is None else min(up_to, self.history_id)
        self.history = [r for r in self.history if r.id > limit]
        self.floor = max(self.floor, limit)

    # --- mutations -------------------------------------------------------------------

    def add_message(self, message: StoredMessage, now: float) -> HistoryRecord:
        hid = self._next_history_id()
        message.history_id = hid
        self.messages[message.id] = message
        thread = self.threads.setdefault(message.thread_id, Thread(message.thread_id))
        thread.message_ids.append(message.id)
        thread.history_id = hid
        return self._append(HistoryRecord(hid, now, added=(message.ref(),)))

    def change_labels(self, message_id: str, add: Iterable[str], remove: Iterable[str],
                      now: float) -> HistoryRecord | None:
        message = self.messages[message_id]
        to_add = [label for label in dict.fromkeys(add) if label not in message.labels]
        to_remove = [label for label in dict.fromkeys(remove)
                     if label in message.labels and label not in to_add]
        if not to_add and not to_remove:
            return None
        message.labels.update(to_add)
        message.labels.difference_update(to_remove)
        hid = self._next_history_id()
        message.history_id = hid
        self.threads[message.thread_id].history_id = hid
        ref = message.ref()
        record = HistoryRecord(
            hid, now,
            labels_added=((ref, tuple(to_add)),) if to_add else (),
            labels_removed=((ref, tuple(to_remove)),) if to_remove else (),
        )
        return self._append(record)

    def trash(self, message_id: str, now: float) -> HistoryRecord | None:
        message = self.messages[message_id]
        if L.TRASH in message.labels:
            return None
        remove = [label for label in (L.INBOX, L.SPAM) if label in message.labels]
        return self.change_labels(message_id, [L.TRASH], remove, now)

    def untrash(self, message_id: str, now: float) -> HistoryRecord | None:
        return self.change_labels(message_id, [], [L.TRASH], now)

    def delete_message(self, message_id: str, now: float) -> HistoryRecord:
        message = self.messages.pop(message_id)
        hid = self._next_history_id()
        thread = self.threads[message.thread_id]
        thread.message_ids.remove(message_id)
        thread.history_id = hid
        if not thread.message_ids:
            del self.threads[thread.id]
        return self._append(HistoryRecord(hid, now, deleted=(message.ref(),)))

    # --- reads -----------------------------------------------------------------------

    def thread_messages(self, thread_id: str) -> list[StoredMessage]:
        thread = self.threads[thread_id]
        return sorted((self.messages[m] for m in thread.message_ids),
                      key=lambda m: (m.internal_date, m.id))
