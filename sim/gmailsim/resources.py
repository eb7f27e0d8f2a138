"""Model to Gmail JSON: ``Message`` in each format, ``Thread``, and the list methods.

Field names and types follow the discovery document: ids are strings, ``historyId``
and ``internalDate`` decimal strings, ``sizeEstimate`` an integer, binary data
base64url. Empty repeated fields (``labelIds`` of a message without labels) are
omitted, as Gmail's JSON does.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Callable, Sequence
from typing import Any, Literal

from gmailsim import errors
from gmailsim import labels as L
from gmailsim.model import MailboxState, StoredMessage
from gmailsim.payload import b64url, metadata_payload, part_resource
from gmailsim.query import parse_query

Format = Literal["full", "metadata", "minimal", "raw"]
FORMATS: tuple[str, ...] = ("full", "metadata", "minimal", "raw")
DEFAULT_PAGE = 100
MAX_PAGE = 500


def message_resource(
    message: StoredMessage,
    fmt: str,
    *,
    metadata_headers: Sequence[str] = (),
    attachment_id: Callable[[str, str], str],
    large_threshold: int,
) -> dict[str, Any]:
    """The ``Message`` JSON of ``message`` in format ``fmt``."""
    resource: dict[str, Any] = {"id": message.id, "threadId": message.thread_id}
    if message.labels:
        resource["labelIds"] = L.order_labels(message.labels)
    resource["snippet"] = message.parsed.snippet
    if fmt == "full":
        resource["payload"] = part_resource(
            message.parsed.root, lambda part_id: attachment_id(message.id, part_id),
            large_threshold)
    elif fmt == "metadata":
        resource["payload"] = metadata_payload(message.parsed, metadata_headers or None)
    elif fmt == "raw":
        resource["raw"] = b64url(message.raw)
    resource["sizeEstimate"] = message.parsed.size_estimate
    resource["historyId"] = str(message.history_id)
    resource["internalDate"] = str(message.internal_date)
    return resource


def thread_resource(
    mailbox: MailboxState,
    thread_id: str,
    fmt: str,
    *,
    metadata_headers: Sequence[str] = (),
    attachment_id: Callable[[str, str], str],
    large_threshold: int,
) -> dict[str, Any]:
    """The ``Thread`` JSON: every message of the thread, oldest first."""
    thread = mailbox.threads[thread_id]
    return {
        "id": thread.id,
        "historyId": str(thread.history_id),
        "messages": [
            message_resource(m, fmt, metadata_headers=metadata_headers,
                             attachment_id=attachment_id, large_threshold=large_threshold)
            for m in mailbox.thread_messages(thread_id)
        ],
    }


# --- list methods -------------------------------------------------------------------


def _encode_cursor(date: int, ident: str) -> str:
    blob = json.dumps({"d": date, "i": ident}, separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(blob).decode().rstrip("=")


def _decode_cursor(token: str) -> tuple[int, str]:
    try:
        data = json.loads(base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)))
        return int(data["d"]), str(data["i"])
    except (ValueError, KeyError, TypeError, binascii.Error):
        raise errors.bad_request("Invalid pageToken", reason="invalid") from None


def _selector(mailbox: MailboxState, label_ids: Sequence[str], q: str | None,
              include_spam_trash: bool, now_ms: int) -> Callable[[StoredMessage], bool]:
    query = parse_query(q, mailbox, now_ms) if q else None
    wanted = set(label_ids)
    hide_spam_trash = not include_spam_trash and not (query and query.reaches_spam_trash)
    hide_spam_trash = hide_spam_trash and not (wanted & {L.SPAM, L.TRASH})

    def select(message: StoredMessage) -> bool:
        if not wanted <= message.labels:
            return False
        if hide_spam_trash and (L.SPAM in message.labels or L.TRASH in message.labels):
            return False
        return query is None or query.matches(message)

    return select


def _page(keyed: list[tuple[tuple[int, str], Any]], max_results: int, page_token: str | None
          ) -> tuple[list[Any], str | None]:
    keyed.sort(key=lambda item: item[0], reverse=True)
    if page_token:
        cursor = _decode_cursor(page_token)
        keyed = [item for item in keyed if item[0] < cursor]
    limit = max(1, min(max_results, MAX_PAGE))
    page = keyed[:limit]
    token = _encode_cursor(*page[-1][0]) if len(keyed) > limit else None
    return [value for _, value in page], token


def list_messages(mailbox: MailboxState, *, label_ids: Sequence[str] = (), q: str | None = None,
                  include_spam_trash: bool = False, max_results: int = DEFAULT_PAGE,
                  page_token: str | None = None, now_ms: int) -> dict[str, Any]:
    """``users.messages.list``: newest first, ``{id, threadId}`` per message."""
    select = _selector(mailbox, label_ids, q, include_spam_trash, now_ms)
    matching = [m for m in mailbox.messages.values() if select(m)]
    keyed = [((m.internal_date, m.id), m) for m in matching]
    page, token = _page(keyed, max_results, page_token)
    response: dict[str, Any] = {}
    if page:
        response["messages"] = [{"id": m.id, "threadId": m.thread_id} for m in page]
    if token:
        response["nextPageToken"] = token
    response["resultSizeEstimate"] = len(matching)
    return response


def list_threads(mailbox: MailboxState, *, label_ids: Sequence[str] = (), q: str | None = None,
                 include_spam_trash: bool = False, max_results: int = DEFAULT_PAGE,
                 page_token: str | None = None, now_ms: int) -> dict[str, Any]:
    """``users.threads.list``: threads with a matching message, most recent first."""
    select = _selector(mailbox, label_ids, q, include_spam_trash, now_ms)
    latest: dict[str, StoredMessage] = {}
    for message in mailbox.messages.values():
        if select(message):
            best = latest.get(message.thread_id)
            if best is None or (message.internal_date, message.id) > (best.internal_date,
                                                                       best.id):
                latest[message.thread_id] = message
    keyed = [((m.internal_date, m.thread_id), m.thread_id) for m in latest.values()]
    page, token = _page(keyed, max_results, page_token)
    response: dict[str, Any] = {}
    if page:
        threads = []
        for thread_id in page:
            thread = mailbox.threads[thread_id]
            last = mailbox.thread_messages(thread_id)[-1]
            threads.append({"id": thread_id, "snippet": last.parsed.snippet,
                            "historyId": str(thread.history_id)})
        response["threads"] = threads
    if token:
        response["nextPageToken"] = token
    response["resultSizeEstimate"] = len(latest)
    return response
