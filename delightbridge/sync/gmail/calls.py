"""Gmail API calls as data, built by google-api-python-client from its discovery document.

``CallBuilder`` wraps a discovery-built ``gmail v1`` service pointed at the configured
endpoint and turns each method into a :class:`GmailCall` (method, absolute URL, body,
quota cost) without executing it. Building the service reads a file: construct the
builder off the event loop (:func:`call_builder`), once per endpoint.

The per-message calls of a sync (``messages.get``, ``threads.get``: thousands a
minute) skip the discovery machinery (~0.1 ms a call): the library builds their URL
once per format with a placeholder id, and each call substitutes the id, quoted as
the library quotes it (``tests/unit/sync/test_gmail_pure.py`` checks they agree).
They ask for compact JSON (``prettyPrint=false``), cheaper to send and to decode.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cache
from typing import Any
from urllib.parse import quote

import httplib2
from googleapiclient.discovery import build

# Stands for the id in a URL template; no Gmail id looks like it, and quoting keeps it.
_ID = "DBSYNCIDPLACEHOLDER"

HISTORY_TYPES = ("messageAdded", "messageDeleted", "labelAdded", "labelRemoved")
MAX_PAGE = 500


@dataclass(frozen=True, slots=True)
class GmailCall:
    """One Gmail call as data; ``name`` keys its cost (delightbridge.sync.gmail.quota)."""

    name: str
    method: str
    url: str
    body: bytes | None = None


class CallBuilder:
    """Builds calls against ``<endpoint>/gmail/v1/`` for the authorised user (``me``)."""

    def __init__(self, api_endpoint: str) -> None:
        service = build(
            "gmail",
            "v1",
            static_discovery=True,
            http=httplib2.Http(),  # never used: calls are sent by aiohttp
            client_options={"api_endpoint": api_endpoint.rstrip("/") + "/"},
            cache_discovery=False,
        )
        users = service.users()
        self._users = users
        self._messages = users.messages()
        self._attachments = self._messages.attachments()
        self._history = users.history()
        self._threads = users.threads()
        self._templates: dict[tuple[str, str], tuple[str, str]] = {}

    @staticmethod
    def _call(name: str, request: Any) -> GmailCall:
        body = request.body
        if isinstance(body, str):
            body = body.encode()
        return GmailCall(name=name, method=request.method, url=request.uri, body=body)

    def profile(self) -> GmailCall:
        return self._call("users.getProfile", self._users.getProfile(userId="me"))

    def list_labels(self) -> GmailCall:
        return self._call("labels.list", self._users.labels().list(userId="me"))

    def list_messages(
        self, page_token: str | None = None, *, max_results: int = MAX_PAGE,
        include_spam_trash: bool = False, q: str | None = None,
        label_ids: Sequence[str] = (),
    ) -> GmailCall:
        kwargs: dict[str, Any] = {"userId": "me", "maxResults": max_results,
                                  "includeSpamTrash": include_spam_trash}
        if page_token:
            kwargs["pageToken"] = page_token
        if q:
            kwargs["q"] = q
        if label_ids:
            kwargs["labelIds"] = list(label_ids)
        return self._call("messages.list", self._messages.list(**kwargs))

    def _by_id(self, name: str, resource: Any, ident: str, format: str) -> GmailCall:
        """``resource.get(id=ident, format=format)`` from a URL template built once."""
        template = self._templates.get((name, format))
        if template is None:
            request = resource.get(userId="me", id=_ID, format=format, prettyPrint=False)
            template = self._templates[(name, format)] = (request.method, request.uri)
        method, uri = template
        head, _, tail = uri.rpartition(_ID)
        return GmailCall(name, method, head + quote(ident, safe="") + tail)

    def get_message(self, message_id: str, *, format: str = "full") -> GmailCall:
        return self._by_id("messages.get", self._messages, message_id, format)

    def list_threads(self, page_token: str | None = None, *, max_results: int = MAX_PAGE
                     ) -> GmailCall:
        kwargs: dict[str, Any] = {"userId": "me", "maxResults": max_results}
        if page_token:
            kwargs["pageToken"] = page_token
        return self._call("threads.list", self._threads.list(**kwargs))

    def get_thread(self, thread_id: str, *, format: str = "minimal") -> GmailCall:
        return self._by_id("threads.get", self._threads, thread_id, format)

    def get_attachment(self, message_id: str, attachment_id: str) -> GmailCall:
        return self._call(
            "messages.attachments.get",
            self._attachments.get(userId="me", messageId=message_id, id=attachment_id),
        )

    def list_history(
        self, start_history_id: int, page_token: str | None = None, *,
        max_results: int = MAX_PAGE, history_types: Sequence[str] = HISTORY_TYPES,
    ) -> GmailCall:
        kwargs: dict[str, Any] = {"userId": "me", "startHistoryId": str(start_history_id),
                                  "maxResults": max_results, "historyTypes": list(history_types)}
        if page_token:
            kwargs["pageToken"] = page_token
        return self._call("history.list", self._history.list(**kwargs))

    def watch(
        self, topic: str, label_ids: Sequence[str] = (), behavior: str | None = None
    ) -> GmailCall:
        body: dict[str, Any] = {"topicName": topic}
        if label_ids:
            body["labelIds"] = list(label_ids)
            body["labelFilterBehavior"] = behavior or "include"
        return self._call("users.watch", self._users.watch(userId="me", body=body))

    def stop(self) -> GmailCall:
        return self._call("users.stop", self._users.stop(userId="me"))

    def list_send_as(self) -> GmailCall:
        return self._call("settings.sendAs.list",
                          self._users.settings().sendAs().list(userId="me"))


@cache
def _builder(api_endpoint: str) -> CallBuilder:
    return CallBuilder(api_endpoint)


async def call_builder(api_endpoint: str) -> CallBuilder:
    """The process's builder for ``api_endpoint``, built off the event loop once."""
    return await asyncio.to_thread(_builder, api_endpoint)


def json_body(content: bytes) -> dict[str, Any]:
    if not content:
        return {}
    value = json.loads(content)
    if not isinstance(value, dict):
        raise ValueError("Gmail answered with JSON that is not an object")
    return value
