"""Ground truth of a mailbox, to compare with what a sync stored in the database."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any

from gmailsim.mime import AttachmentTruth
from gmailsim.model import StoredMessage


@dataclass(frozen=True, slots=True)
class MessageSnapshot:
    """Ground truth of one message, to compare with what a sync stored."""

    id: str
    thread_id: str
    label_ids: tuple[str, ...]
    history_id: int
    internal_date: int
    subject: str | None
    text: str | None
    html: str | None
    raw_sha256: str
    size: int
    attachments: tuple[AttachmentTruth, ...]
    malformed: bool
    kind: str

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id, "threadId": self.thread_id, "labelIds": list(self.label_ids),
            "historyId": str(self.history_id), "internalDate": str(self.internal_date),
            "subject": self.subject, "text": self.text, "html": self.html,
            "rawSha256": self.raw_sha256, "size": self.size, "malformed": self.malformed,
            "kind": self.kind,
            "attachments": [
                {"filename": a.filename, "mimeType": a.mime_type, "size": a.size,
                 "sha256": a.sha256, "inline": a.inline, "contentId": a.content_id}
                for a in self.attachments
            ],
        }


@dataclass(frozen=True, slots=True)
class MailboxSnapshot:
    address: str
    history_id: int
    messages: tuple[MessageSnapshot, ...]
    threads: dict[str, tuple[str, ...]]
    labels: dict[str, str]

    def message(self, message_id: str) -> MessageSnapshot:
        for message in self.messages:
            if message.id == message_id:
                return message
        raise KeyError(message_id)

    @property
    def message_ids(self) -> set[str]:
        return {m.id for m in self.messages}

    def to_json(self) -> dict[str, Any]:
        return {
            "address": self.address, "historyId": str(self.history_id),
            "messages": [m.to_json() for m in self.messages],
            "threads": {k: list(v) for k, v in self.threads.items()},
            "labels": dict(self.labels),
        }


def message_snapshot(message: StoredMessage) -> MessageSnapshot:
    truth = message.truth
    return MessageSnapshot(
        id=message.id, thread_id=message.thread_id,
        label_ids=tuple(sorted(message.labels)), history_id=message.history_id,
        internal_date=message.internal_date,
        subject=message.parsed.header("Subject"),
        text=truth.text if truth else None, html=truth.html if truth else None,
        raw_sha256=hashlib.sha256(message.raw).hexdigest(), size=len(message.raw),
        attachments=truth.attachments if truth else (),
        malformed=truth.malformed if truth else False, kind=truth.kind if truth else "raw",
    )
