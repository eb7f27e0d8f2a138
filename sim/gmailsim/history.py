"""``users.history.list``: filtering, paging and rendering of history records.

Records are returned in increasing id order, ``maxResults`` at a time (default 100,
at most 500). ``historyTypes`` keeps only the named kinds of change; ``labelId``
keeps only changes to messages carrying that label (or gaining/losing it). Each
page carries the mailbox's current ``historyId``; when the last page has been
served there is no ``nextPageToken``. A ``startHistoryId`` older than the retained
window is answered with 404; one newer than the mailbox's current id yields an
empty page.
"""

from __future__ import annotations

import base64
import binascii
import bisect
import itertools
import json
from collections.abc import Sequence
from typing import Any

from gmailsim import errors
from gmailsim.model import HistoryRecord, MailboxState, MessageRef

HISTORY_TYPES = ("messageAdded", "messageDeleted", "labelAdded", "labelRemoved")
DEFAULT_PAGE = 100
MAX_PAGE = 500


def _ref_resource(ref: MessageRef, with_labels: bool) -> dict[str, Any]:
    resource: dict[str, Any] = {"id": ref.id, "threadId": ref.thread_id}
    if with_labels and ref.labels:
        resource["labelIds"] = list(ref.labels)
    return resource


def _filter(record: HistoryRecord, types: frozenset[str], label_id: str | None
            ) -> HistoryRecord | None:
    def keep(ref: MessageRef, changed: Sequence[str] = ()) -> bool:
        return label_id is None or label_id in ref.labels or label_id in changed

    added = tuple(r for r in record.added if keep(r)) if "messageAdded" in types else ()
    deleted = tuple(r for r in record.deleted if keep(r)) if "messageDeleted" in types else ()
    labels_added = (tuple(e for e in record.labels_added if keep(*e))
                    if "labelAdded" in types else ())
    labels_removed = (tuple(e for e in record.labels_removed if keep(*e))
                      if "labelRemoved" in types else ())
    if not (added or deleted or labels_added or labels_removed):
        return None
    return HistoryRecord(record.id, record.time, added, deleted, labels_added, labels_removed)


def record_resource(record: HistoryRecord) -> dict[str, Any]:
    """The ``History`` JSON of one record."""
    resource: dict[str, Any] = {
        "id": str(record.id),
        "messages": [_ref_resource(ref, False) for ref in record.messages()],
    }
    if record.added:
        resource["messagesAdded"] = [{"message": _ref_resource(r, True)} for r in record.added]
    if record.deleted:
        resource["messagesDeleted"] = [{"message": _ref_resource(r, False)}
                                       for r in record.deleted]
    if record.labels_added:
        resource["labelsAdded"] = [{"message": _ref_resource(r, True), "labelIds": list(ids)}
                                   for r, ids in record.labels_added]
    if record.labels_removed:
        resource["labelsRemoved"] = [{"message": _ref_resource(r, True), "labelIds": list(ids)}
                                     for r, ids in record.labels_removed]
    return resource


def _encode_token(cursor: int, start: int) -> str:
    blob = json.dumps({"c": cursor, "s": start}, separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(blob).decode().rstrip("=")


def _decode_token(token: str) -> tuple[int, int]:
    try:
        blob = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
        data = json.loads(blob)
        return int(data["c"]), int(data["s"])
    except (ValueError, KeyError, TypeError, binascii.Error):
        raise errors.bad_request("Invalid pageToken", reason="invalid") from None


def list_history(
    mailbox: MailboxState,
    *,
    start_history_id: int,
    history_types: Sequence[str] = (),
    label_id: str | None = None,
    max_results: int = DEFAULT_PAGE,
    page_token: str | None = None,
) -> dict[str, Any]:
    """One page of ``users.history.list`` for ``mailbox``."""
    cursor = start_history_id
    if page_token:
        cursor, token_start = _decode_token(page_token)
        if token_start != start_history_id:
            raise errors.bad_request("Invalid pageToken", reason="invalid")
    if start_history_id < mailbox.floor or cursor < mailbox.floor:
        raise errors.not_found()
    types = frozenset(history_types or HISTORY_TYPES)
    limit = max(1, min(max_results, MAX_PAGE))
    page: list[HistoryRecord] = []
    more = False
    first = bisect.bisect_right(mailbox.history, cursor, key=lambda r: r.id)
    for record in itertools.islice(mailbox.history, first, None):
        kept = _filter(record, types, label_id)
        if kept is None:
            continue
        if len(page) == limit:
            more = True
            break
        page.append(kept)
    response: dict[str, Any] = {}
    if page:
        response["history"] = [record_resource(r) for r in page]
    if more:
        response["nextPageToken"] = _encode_token(page[-1].id, start_history_id)
    response["historyId"] = str(mailbox.history_id)
    return response
