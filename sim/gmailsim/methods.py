"""The Gmail methods themselves: one function per method, on a parsed :class:`Call`.

Handlers run under the simulator's lock and return the response body (a dict) or
None for 204; errors are raised as :class:`~gmailsim.errors.GmailError`.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from typing import Any

from gmailsim import errors
from gmailsim import labels as L
from gmailsim.calls import Call
from gmailsim.errors import GmailError
from gmailsim.history import HISTORY_TYPES, list_history
from gmailsim.oauth import (
    GMAIL_METADATA,
    GMAIL_MODIFY,
    GMAIL_READONLY,
    GMAIL_SETTINGS_BASIC,
    MAIL_GOOGLE,
    AccessToken,
)
from gmailsim.payload import b64url
from gmailsim.resources import (
    FORMATS,
    list_messages,
    list_threads,
    message_resource,
    thread_resource,
)
from gmailsim.simulator import Simulator

READ_SCOPES = frozenset({MAIL_GOOGLE, GMAIL_MODIFY, GMAIL_READONLY, GMAIL_METADATA})
MODIFY_SCOPES = frozenset({MAIL_GOOGLE, GMAIL_MODIFY})
DELETE_SCOPES = frozenset({MAIL_GOOGLE})
SETTINGS_READ_SCOPES = frozenset({MAIL_GOOGLE, GMAIL_MODIFY, GMAIL_READONLY,
                                  GMAIL_SETTINGS_BASIC})
_HEX_ID = re.compile(r"^[0-9a-fA-F]{1,16}$")
_TOPIC = re.compile(r"^projects/[^/]+/topics/[^/]+$")


def _attachment_id(sim: Simulator) -> Callable[[str, str], str]:
    return sim.attachment_ids.make


def _message_id(call: Call, key: str = "id") -> str:
    message_id = call.path[key]
    if not _HEX_ID.match(message_id):
        raise errors.bad_request("Invalid id value")
    return message_id.lower()


def _format(call: Call, allowed: Sequence[str] = FORMATS) -> str:
    fmt = (call.params.one("format") or "full").lower()
    if fmt not in allowed:
        raise errors.invalid_value("format", "type.googleapis.com/google.apps.gmail.v1.Format",
                                   call.params.one("format") or "")
    if fmt in ("full", "raw") and _metadata_only(call.token):
        raise GmailError(403, f"Metadata scope doesn't allow format {fmt.upper()}",
                         reason="forbidden")
    return fmt


def _metadata_only(token: AccessToken) -> bool:
    return GMAIL_METADATA in token.scopes and not (READ_SCOPES - {GMAIL_METADATA}) & set(
        token.scopes)


def _query(call: Call) -> str | None:
    q = call.params.one("q")
    if q and _metadata_only(call.token):
        raise GmailError(403, "Metadata scope does not support 'q' parameter",
                         reason="forbidden")
    return q


def profile(call: Call) -> dict[str, Any]:
    return call.sim.profile(call.state.address)


def labels_list(call: Call) -> dict[str, Any]:
    labels = [L.system_label_resource(label) for label in L.SYSTEM_LABELS]
    labels += [L.user_label_resource(label) for label in call.state.user_labels.values()]
    return {"labels": labels}


def labels_get(call: Call) -> dict[str, Any]:
    label_id = call.path["id"]
    state = call.state
    if label_id in L.SYSTEM_LABELS:
        resource = L.system_label_resource(label_id)
    elif label_id in state.user_labels:
        resource = L.user_label_resource(state.user_labels[label_id])
    else:
        raise errors.not_found()
    carrying = [m for m in state.messages.values() if label_id in m.labels]
    unread = [m for m in carrying if L.UNREAD in m.labels]
    resource.update(
        messagesTotal=len(carrying), messagesUnread=len(unread),
        threadsTotal=len({m.thread_id for m in carrying}),
        threadsUnread=len({m.thread_id for m in unread}),
    )
    return resource


def send_as_list(call: Call) -> dict[str, Any]:
    return {"sendAs": call.state.send_as.resources()}


def messages_list(call: Call) -> dict[str, Any]:
    return list_messages(
        call.state, label_ids=call.params.many("labelIds"), q=_query(call),
        include_spam_trash=call.params.flag("includeSpamTrash", "include_spam_trash"),
        max_results=call.params.uint("maxResults", "max_results", 100),
        page_token=call.params.one("pageToken"), now_ms=call.sim.clock.now_ms())


def threads_list(call: Call) -> dict[str, Any]:
    return list_threads(
        call.state, label_ids=call.params.many("labelIds"), q=_query(call),
        include_spam_trash=call.params.flag("includeSpamTrash", "include_spam_trash"),
        max_results=call.params.uint("maxResults", "max_results", 100),
        page_token=call.params.one("pageToken"), now_ms=call.sim.clock.now_ms())


def messages_get(call: Call) -> dict[str, Any]:
    fmt = _format(call)
    message = call.state.messages.get(_message_id(call))
    if message is None:
        raise errors.not_found()
    return message_resource(
        message, fmt, metadata_headers=call.params.many("metadataHeaders", split_commas=True),
        attachment_id=_attachment_id(call.sim), large_threshold=call.sim.large_body_threshold)


def threads_get(call: Call) -> dict[str, Any]:
    fmt = _format(call, ("full", "metadata", "minimal"))
    thread_id = _message_id(call)
    if thread_id not in call.state.threads:
        raise errors.not_found()
    headers = call.params.many("metadataHeaders", split_commas=True)
    return thread_resource(
        call.state, thread_id, fmt, metadata_headers=headers,
        attachment_id=_attachment_id(call.sim), large_threshold=call.sim.large_body_threshold)


def attachments_get(call: Call) -> dict[str, Any]:
    message_id = _message_id(call, "messageId")
    message = call.state.messages.get(message_id)
    if message is None:
        raise errors.not_found()
    target = call.sim.attachment_ids.resolve(call.path["id"])
    if target is None:
        raise errors.bad_request("Invalid attachment token")
    if target[0] != message_id:
        raise errors.not_found()
    part = message.parsed.part(target[1])
    if part is None or part.data is None:
        raise errors.not_found()
    return {"size": len(part.data), "data": b64url(part.data)}


def history_list(call: Call) -> dict[str, Any]:
    raw = call.params.one("startHistoryId")
    if not raw:
        raise errors.bad_request("Missing required parameter: startHistoryId", "required")
    if not raw.isdigit():
        raise errors.invalid_value("start_history_id", "TYPE_UINT64", raw)
    types = []
    for value in call.params.many("historyTypes"):
        normal = _HISTORY_TYPE_ALIASES.get(value.lower().replace("_", ""))
        if normal is None:
            raise errors.invalid_value(
                "history_types", "type.googleapis.com/google.apps.gmail.v1.HistoryType", value)
        types.append(normal)
    call.sim.trim_history(call.state)  # retention also moves with the clock
    return list_history(
        call.state, start_history_id=int(raw), history_types=types,
        label_id=call.params.one("labelId"),
        max_results=call.params.uint("maxResults", "max_results", 100),
        page_token=call.params.one("pageToken"))


_HISTORY_TYPE_ALIASES = {t.lower(): t for t in HISTORY_TYPES}


def _short_message(call: Call, message_id: str) -> dict[str, Any]:
    message = call.state.messages[message_id]
    resource: dict[str, Any] = {"id": message.id, "threadId": message.thread_id}
    if message.labels:
        resource["labelIds"] = L.order_labels(message.labels)
    return resource


def _existing(call: Call) -> str:
    message_id = _message_id(call)
    if message_id not in call.state.messages:
        raise errors.not_found()
    return message_id


def _check_labels(call: Call, label_ids: Sequence[str]) -> None:
    for label in label_ids:
        if not isinstance(label, str) or not call.state.known_label(label) \
                or label in L.NOT_MODIFIABLE:
            raise errors.bad_request(f"Invalid label: {label}")


def modify(call: Call) -> dict[str, Any]:
    message_id = _existing(call)
    body = call.json_body()
    add = list(body.get("addLabelIds") or [])
    remove = list(body.get("removeLabelIds") or [])
    _check_labels(call, add + remove)
    call.sim.modify_labels(call.state.address, message_id, add, remove)
    return _short_message(call, message_id)


def trash(call: Call) -> dict[str, Any]:
    message_id = _existing(call)
    call.sim.trash(call.state.address, message_id)
    return _short_message(call, message_id)


def untrash(call: Call) -> dict[str, Any]:
    message_id = _existing(call)
    call.sim.untrash(call.state.address, message_id)
    return _short_message(call, message_id)


def delete(call: Call) -> None:
    call.sim.delete(call.state.address, _existing(call))


def stop(call: Call) -> None:
    call.sim.stop(call.state.address)


def watch_request(call: Call) -> tuple[str, list[str], str]:
    body = call.json_body()
    topic = body.get("topicName")
    if not isinstance(topic, str) or not topic:
        raise errors.bad_request("Invalid topicName")
    if not _TOPIC.match(topic):
        raise errors.bad_request(
            "Invalid topicName does not match projects/SOME-ANDROID-PROJECT/topics/*")
    label_ids = body.get("labelIds") or []
    if not isinstance(label_ids, list):
        raise errors.bad_request("Invalid value for labelIds")
    for label in label_ids:
        if not isinstance(label, str) or not call.state.known_label(label):
            raise errors.bad_request(f"Invalid label: {label}")
    behavior = str(body.get("labelFilterBehavior") or body.get("labelFilterAction")
                   or "include").lower()
    if behavior not in ("include", "exclude"):
        raise errors.invalid_value("label_filter_behavior",
                                   "type.googleapis.com/google.apps.gmail.v1.LabelFilterBehavior",
                                   behavior)
    return topic, label_ids, behavior


# --- routing ------------------------------------------------------------------------
