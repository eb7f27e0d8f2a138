"""Reconciliation: compare the mirror with the mailbox and report the drift.

Under the service's lock (no sync moves the mirror meanwhile), the mailbox is read
with ``threads.list`` + ``threads.get?format=minimal`` (ids, thread membership and
labels of every message) and compared with the database: messages missing from the
mirror, extra in it, and stored with the wrong labels or thread. With ``deep``, every
message present on both sides is fetched in full, parsed, and its content hash
compared. Changes Gmail made after the mirror's cursor (read from ``history.list``)
are reported as *pending*: the next incremental sync applies them; they are not
drift. :func:`drift_ids` feeds ``SyncEngine.sync(..., repair=...)``, the smallest
sync that fixes what was found.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Any

from delightbridge.core.errors import HistoryExpired
from delightbridge.db import mirror
from delightbridge.sync import history
from delightbridge.sync.engine import ServiceRow, SyncEngine
from delightbridge.sync.gmail.client import GmailClient
from delightbridge.sync.lock import service_lock
from delightbridge.sync.parse import ParsedMessage, is_mirrored, parse_message


@dataclass
class Drift:
    service_id: str
    cursor: int | None
    mailbox_history_id: int
    checked: int = 0
    missing: list[str] = field(default_factory=list)
    extra: list[str] = field(default_factory=list)
    labels: list[str] = field(default_factory=list)
    threads: list[str] = field(default_factory=list)
    content: list[str] = field(default_factory=list)
    pending: int = 0
    history_expired: bool = False

    @property
    def drifted(self) -> list[str]:
        return sorted({*self.missing, *self.extra, *self.labels, *self.threads, *self.content})

    @property
    def equal(self) -> bool:
        return not self.drifted and not self.history_expired

    def summary(self) -> str:
        state = "equal" if self.equal else "DRIFT"
        return (f"{self.service_id}: {state}: {self.checked} messages checked, "
                f"missing {len(self.missing)}, extra {len(self.extra)}, "
                f"wrong labels {len(self.labels)}, wrong thread {len(self.threads)}, "
                f"wrong content {len(self.content)}, pending {self.pending}"
                + (", history expired (needs a full sync)" if self.history_expired else ""))


async def _gmail_state(client: GmailClient) -> dict[str, tuple[str, frozenset[str]]]:
    """Every mirrored message of the mailbox: id -> (thread id, labels)."""
    found: dict[str, tuple[str, frozenset[str]]] = {}
    page_token: str | None = None
    while True:
        listing = await client.list_threads(page_token)
        ids = [t["id"] for t in listing.get("threads") or () if isinstance(t.get("id"), str)]
        for thread in (await client.get_threads(ids)).values():
            for message in (thread or {}).get("messages") or ():
                labels = frozenset(message.get("labelIds") or ())
                if is_mirrored(labels):
                    found[message["id"]] = (message["threadId"], labels)
        page_token = listing.get("nextPageToken")
        if not page_token:
            return found


async def _pending(client: GmailClient, cursor: int | None) -> set[str] | None:
    """Ids Gmail changed after the cursor; None when the history is gone (or no cursor)."""
    if cursor is None:
        return None
    touched: set[str] = set()
    page_token: str | None = None
    try:
        while True:
            page = await client.list_history(cursor, page_token)
            plan = history.plan(page.get("history") or ())
            touched |= plan.fetch | plan.delete
            page_token = page.get("nextPageToken")
            if not page_token:
                return touched
    except HistoryExpired:
        return None


async def verify(engine: SyncEngine, service_id: str, *, deep: bool = False,
                 wait: float = 60.0) -> Drift:
    await engine.reachable(service_id)
    async with service_lock(engine.pool, service_id, wait=wait):
        service = await engine.service(service_id)
        client = engine.client_for(service)
        profile = await client.profile()
        drift = Drift(service_id, service.last_history_id, int(profile["historyId"]))
        gmail = await _gmail_state(client)
        # After Gmail's state is read: every change that state shows but the mirror (held
        # still by the lock) cannot is in the history after the cursor, so it is pending,
        # not drift, even when the mailbox changes while it is read.
        pending = await _pending(client, service.last_history_id)
        drift.history_expired = pending is None
        pending = pending or set()
        stored = await mirror.stored_state(engine.pool, service_id=service_id)
        drift.checked = len(gmail.keys() | stored.keys())
        drift.pending = len(pending & (gmail.keys() | stored.keys()))
        for mid in sorted(gmail.keys() | stored.keys()):
            if mid in pending:
                continue
            if mid not in stored:
                drift.missing.append(mid)
            elif mid not in gmail:
                drift.extra.append(mid)
            else:
                thread_id, labels = gmail[mid]
                if stored[mid].label_ids != labels:
                    drift.labels.append(mid)
                if stored[mid].gmail_thread_id != thread_id:
                    drift.threads.append(mid)
        if deep:
            both = [mid for mid in sorted(gmail.keys() & stored.keys()) if mid not in pending]
            drift.content = await _content_drift(client, service, both, stored)
        return drift


async def _content_drift(client: GmailClient, service: ServiceRow, ids: list[str],
                         stored: dict[str, mirror.MirroredState]) -> list[str]:
    wrong: list[str] = []
    page = 500
    for start in range(0, len(ids), page):
        chunk = ids[start:start + page]
        fetched = {mid: res for mid, res in (await client.get_messages(chunk)).items()
                   if res is not None}  # None: deleted this very moment, the next sync's
        parsed_all = await asyncio.to_thread(_parse_all, fetched, service.email)
        for mid, parsed in parsed_all.items():
            if parsed.missing_body_parts:
                continue  # the stored hash includes bodies fetched separately
            if parsed.content_hash != stored[mid].content_hash:
                wrong.append(mid)
    return wrong


def _parse_all(resources: dict[str, Any], mailbox: str) -> dict[str, ParsedMessage]:
    return {mid: parse_message(res, mailbox) for mid, res in resources.items()}
