"""Gmail API v1 routing and the request pipeline (the methods are in :mod:`gmailsim.methods`).

One :class:`GmailApi` answers an :class:`ApiRequest` (method, path under the base
URL, query, headers, body) with an :class:`ApiResponse`; the aiohttp server and
the batch endpoint both go through :meth:`GmailApi.handle`, so a batch part is
treated exactly like a single request. The pipeline, in Google's order:

route -> count the call -> bearer token (401) -> parameters (400) -> userId (403)
-> injected faults (500/503, expired token 401) -> quota (429/403) -> concurrency
(429) -> latency -> the method -> ``fields`` -> JSON.
"""

from __future__ import annotations

import asyncio
import inspect
import re
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote

from gmailsim import errors, methods
from gmailsim.calls import ApiRequest, ApiResponse, Call, Params, error_response, json_response
from gmailsim.errors import GmailError
from gmailsim.fields import apply_fields, parse_fields
from gmailsim.methods import DELETE_SCOPES, MODIFY_SCOPES, READ_SCOPES, SETTINGS_READ_SCOPES
from gmailsim.model import MailboxState
from gmailsim.oauth import AccessToken
from gmailsim.simulator import Simulator

SYSTEM_PARAMS = frozenset({
    "alt", "fields", "prettyPrint", "quotaUser", "key", "access_token", "oauth_token",
    "callback", "$.xgafv", "upload_protocol", "uploadType", "userIp", "trace",
})

TopicChecker = Callable[[str], Awaitable[bool]]
Handler = Callable[[Call], "dict[str, Any] | Awaitable[dict[str, Any] | None] | None"]


@dataclass(frozen=True, slots=True)
class Route:
    name: str
    http_method: str
    pattern: re.Pattern[str]
    params: frozenset[str]
    scopes: frozenset[str]
    handler: Handler
    status: int = 200


# --- handlers -------------------------------------------------------------------------


_U = r"^/gmail/v1/users/(?P<userId>[^/]+)"


def _route(name: str, method: str, tail: str, handler: Handler, params: Sequence[str] = (),
           scopes: frozenset[str] = READ_SCOPES, status: int = 200) -> Route:
    return Route(name, method, re.compile(_U + tail + "$"), frozenset(params), scopes, handler,
                 status)


_LIST = ("labelIds", "q", "includeSpamTrash", "maxResults", "pageToken")


class GmailApi:
    """Answers Gmail requests for one simulator."""

    def __init__(self, sim: Simulator, *, topic_checker: TopicChecker | None = None) -> None:
        self.sim = sim
        self.topic_checker = topic_checker
        m, one = "/messages", "/messages/(?P<id>[^/]+)"
        get_params = ("format", "metadataHeaders")
        self.routes: tuple[Route, ...] = (
            _route("users.getProfile", "GET", "/profile", methods.profile),
            _route("users.watch", "POST", "/watch", self._watch),
            _route("users.stop", "POST", "/stop", methods.stop, status=204),
            _route("users.labels.list", "GET", "/labels", methods.labels_list),
            _route("users.labels.get", "GET", "/labels/(?P<id>[^/]+)", methods.labels_get),
            _route("users.messages.list", "GET", m, methods.messages_list, _LIST),
            _route("users.messages.get", "GET", one, methods.messages_get, get_params),
            _route("users.messages.attachments.get", "GET",
                   m + "/(?P<messageId>[^/]+)/attachments/(?P<id>[^/]+)",
                   methods.attachments_get),
            _route("users.messages.modify", "POST", one + "/modify", methods.modify,
                   scopes=MODIFY_SCOPES),
            _route("users.messages.trash", "POST", one + "/trash", methods.trash,
                   scopes=MODIFY_SCOPES),
            _route("users.messages.untrash", "POST", one + "/untrash", methods.untrash,
                   scopes=MODIFY_SCOPES),
            _route("users.messages.delete", "DELETE", one, methods.delete,
                   scopes=DELETE_SCOPES, status=204),
            _route("users.threads.list", "GET", "/threads", methods.threads_list, _LIST),
            _route("users.threads.get", "GET", "/threads/(?P<id>[^/]+)", methods.threads_get,
                   get_params),
            _route("users.history.list", "GET", "/history", methods.history_list,
                   ("startHistoryId", "historyTypes", "labelId", "maxResults", "pageToken")),
            _route("users.settings.sendAs.list", "GET", "/settings/sendAs",
                   methods.send_as_list, scopes=SETTINGS_READ_SCOPES),
        )

    async def _watch(self, call: Call) -> dict[str, Any]:
        topic, label_ids, behavior = methods.watch_request(call)
        if self.topic_checker is not None and not await self.topic_checker(topic):
            name = topic.rpartition("/")[2]
            raise errors.bad_request(
                f"Error sending test message to Cloud PubSub {topic} : "
                f"Resource not found (resource={name}).", reason="failedPrecondition")
        return self.sim.watch(call.state.address, topic, label_ids, behavior)

    def match(self, method: str, path: str) -> tuple[Route, dict[str, str]] | None:
        for route in self.routes:
            if route.http_method != method:
                continue
            found = route.pattern.match(path)
            if found:
                return route, {k: unquote(v) for k, v in found.groupdict().items()}
        return None

    # --- the pipeline ---------------------------------------------------------------------

    def _authenticate(self, request: ApiRequest, params: Params) -> AccessToken:
        header = request.header("Authorization")
        token = None
        if header:
            scheme, _, value = header.partition(" ")
            if scheme.lower() == "bearer" and value.strip():
                token = value.strip()
        token = token or params.one("access_token") or params.one("oauth_token")
        if not token:
            raise GmailError(
                401,
                "Request is missing required authentication credential. Expected OAuth 2 "
                "access token, login cookie or other valid authentication credential. See "
                "https://developers.google.com/identity/sign-in/web/devconsole-project.",
                reason="required", detail="Login Required.",
                extra={"location": "Authorization", "locationType": "header"},
                headers={"WWW-Authenticate": 'Bearer realm="https://accounts.google.com/"'})
        access = self.sim.tokens.authenticate(token)
        if access is None:
            raise errors.unauthenticated()
        return access

    def _user(self, user_id: str, token: AccessToken) -> MailboxState:
        if user_id != "me" and user_id.lower() != token.address.lower():
            raise errors.delegation_denied(user_id)
        try:
            return self.sim.state(token.address)
        except KeyError:
            raise errors.unauthenticated() from None

    async def handle(self, request: ApiRequest) -> ApiResponse:
        """Answer one Gmail request (a whole HTTP request or one batch part)."""
        found = self.match(request.method, request.path)
        if found is None:
            self.sim.counters.call("unknown")
            self.sim.counters.error("unknown", "404/notFound")
            return error_response(GmailError(404, "Not Found", reason="notFound"))
        route, path = found
        name = route.name
        self.sim.counters.call(name)
        params = Params(request.query)
        try:
            result = await self._run(route, path, params, request)
        except GmailError as exc:
            self.sim.counters.error(name, exc.key)
            return error_response(exc)
        if route.status == 204 or result is None:
            return ApiResponse(204)
        selection = params.one("fields")
        try:
            body = apply_fields(result, parse_fields(selection)) if selection else result
        except GmailError as exc:
            self.sim.counters.error(name, exc.key)
            return error_response(exc)
        pretty = (params.one("prettyPrint") or "true").lower() != "false"
        return json_response(200, body, pretty=pretty)

    async def _run(self, route: Route, path: dict[str, str], params: Params,
                   request: ApiRequest) -> dict[str, Any] | None:
        sim = self.sim
        token = self._authenticate(request, params)
        unknown = params.names() - route.params - SYSTEM_PARAMS - {
            p + "[]" for p in route.params}
        if unknown:
            raise errors.unknown_parameter(sorted(unknown)[0])
        if not set(token.scopes) & route.scopes:
            raise errors.insufficient_scope()
        state = self._user(path["userId"], token)
        injected = sim.faults.request_error(route.name)
        if injected is not None:
            raise injected
        if sim.faults.token_expires_now(route.name):
            sim.tokens.expire(token.token)
            raise errors.unauthenticated()
        sim.counters.units(route.name, sim.quota_tracker.charge(state.address, route.name))
        sim.quota_tracker.acquire(state.address)
        try:
            delay = sim.faults.latency()
            if delay:
                await asyncio.sleep(delay)
            call = Call(sim, state, token, path, params, request.body)
            if inspect.iscoroutinefunction(route.handler):
                outcome = await route.handler(call)
            else:
                with sim.lock:
                    outcome = route.handler(call)
            if inspect.isawaitable(outcome):
                outcome = await outcome
            result: dict[str, Any] | None = outcome
            return result
        finally:
            sim.quota_tracker.release(state.address)


__all__ = ["ApiRequest", "ApiResponse", "GmailApi", "Route", "error_response", "json_response"]
