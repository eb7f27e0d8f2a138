"""The control API over HTTP: the :class:`~gmailsim.simulator.Simulator` operations
under ``<base>/_sim/`` (no authentication; the simulator is a local test tool).

=======  ===========================================================  =========================
method   path (below ``/_sim``)                                        Python equivalent
=======  ===========================================================  =========================
GET      ``/config``                                                   ``sim.client_id`` ...
GET      ``/mailboxes``                                                ``sim.addresses()``
POST     ``/mailboxes`` ``{address, name?}``                           ``create_mailbox``
POST     ``/mailboxes/{a}/seed`` ``{messages, threads, seed?}``        ``seed``
POST     ``/mailboxes/{a}/labels`` ``{name}``                          ``create_label``
GET      ``/mailboxes/{a}/send-as``                                    ``send_as``
POST     ``/mailboxes/{a}/send-as`` ``{sendAsEmail, ...}``             ``add_send_as``
DELETE   ``/mailboxes/{a}/send-as/{email}``                            ``remove_send_as``
POST     ``/mailboxes/{a}/deliver`` ``{threadId?, sender?, ...}``      ``deliver``
POST     ``/mailboxes/{a}/threads/{t}/reply`` ``{text?, html?}``       ``reply``
POST     ``/mailboxes/{a}/threads/{t}/draft`` ``{text?, html?}``       ``draft``
PUT      ``/mailboxes/{a}/messages/{m}/draft`` ``{text?, html?}``      ``update_draft``
POST     ``/mailboxes/{a}/messages/{m}/send``                          ``send_draft``
POST     ``/mailboxes/{a}/messages/{m}/modify`` ``{add, remove}``      ``modify_labels``
POST     ``/mailboxes/{a}/messages/{m}/trash`` / ``untrash``           ``trash`` / ``untrash``
DELETE   ``/mailboxes/{a}/messages/{m}``                               ``delete``
GET      ``/mailboxes/{a}/snapshot``                                   ``snapshot``
POST     ``/mailboxes/{a}/refresh-tokens`` ``{scopes?}``               ``issue_refresh_token``
POST     ``/mailboxes/{a}/access-token``                               ``access_token``
POST     ``/mailboxes/{a}/authorization-code`` ``{redirectUri}``       ``issue_authorization_code``
POST     ``/mailboxes/{a}/revoke``                                     ``revoke_refresh_token``
POST     ``/mailboxes/{a}/expire-history`` ``{upTo?}``                 ``expire_history``
POST     ``/tokens/expire`` ``{address?}``                             ``expire_access_tokens``
GET/POST ``/clock``, ``/clock/advance`` ``{seconds}``                  ``clock.now()``, ``advance``
GET/PATCH ``/faults``; POST ``/faults/fail-next``, ``/faults/reset``   ``sim.faults``
GET/PATCH ``/quota`` ``{profile, units_per_second, ...}``              ``sim.quota``
GET      ``/quota/usage``; POST ``/quota/reset``                       ``sim.quota_tracker``
GET/PATCH ``/settings`` ``{historyRetentionSeconds, ...}``             ``sim.history_retention_*``
GET      ``/counters``; POST ``/counters/reset``                       ``sim.counters``
GET      ``/notifications``; PUT ``/push`` ``{endpoint, subscription}`` ``notifier.deliveries``
=======  ===========================================================  =========================

``PATCH /quota`` takes :class:`~gmailsim.quota.QuotaConfig` field names; ``profile``
(``legacy`` or ``2026``) first resets every profile value, then the body's other fields
apply. ``GET /quota/usage`` answers :meth:`~gmailsim.quota.QuotaTracker.snapshot`:
``{profile, day, project: {window_units, window_seconds, window_budget, today_units,
daily_budget}, users: {address: {...}}}``.

Errors answer ``{"error": "..."}`` with 404 (unknown mailbox, message or send-as address)
or 400.

``POST /send-as`` takes the ``SendAs`` member names: ``sendAsEmail`` (required),
``displayName``, ``replyToAddress``, ``signature`` (strings), ``isDefault``,
``treatAsAlias`` (booleans) and ``verificationStatus`` (``accepted``, the default, or
``pending``); it answers the new alias's ``SendAs`` JSON. ``GET`` answers ``{"sendAs": [...]}``, as
``users.settings.sendAs.list`` does.
"""

from __future__ import annotations

import base64
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web

from gmailsim.mime import AttachmentSpec
from gmailsim.oauth import DEFAULT_SCOPES
from gmailsim.push import Notifier
from gmailsim.simulator import Simulator, UnknownMailbox, UnknownMessage, UnknownSendAs

Handler = Callable[[web.Request], Awaitable[Any]]


def _wrap(handler: Handler) -> Callable[[web.Request], Awaitable[web.Response]]:
    async def run(request: web.Request) -> web.Response:
        try:
            result = await handler(request)
        except (UnknownMailbox, UnknownMessage, UnknownSendAs) as exc:
            return web.json_response({"error": f"not found: {exc.args[0]}"}, status=404)
        except (ValueError, TypeError, KeyError) as exc:
            return web.json_response({"error": str(exc)}, status=400)
        return web.json_response({} if result is None else result)

    return run


async def _body(request: web.Request) -> dict[str, Any]:
    if not request.can_read_body:
        return {}
    try:
        value = await request.json()
    except ValueError:
        raise ValueError("body must be JSON") from None
    if not isinstance(value, dict):
        raise ValueError("body must be a JSON object")
    return value


def _history(value: int | None) -> dict[str, Any]:
    return {"historyId": str(value) if value is not None else None}


class _Control:
    """One method per control operation; each returns JSON-able data."""

    def __init__(self, sim: Simulator, notifier: Notifier) -> None:
        self.sim = sim
        self.notifier = notifier

    async def config(self, request: web.Request) -> Any:
        sim = self.sim
        return {"clientId": sim.client_id, "clientSecret": sim.client_secret,
                "mailboxes": sim.addresses()}

    async def mailboxes(self, request: web.Request) -> Any:
        sim = self.sim
        return {"mailboxes": [
            {**sim.profile(address), "refreshTokens": len(sim.tokens.refresh_tokens(address))}
            for address in sim.addresses()]}

    async def create(self, request: web.Request) -> Any:
        body = await _body(request)
        created = self.sim.create_mailbox(str(body["address"]), name=body.get("name"))
        return {"address": created.address, "name": created.name,
                "refreshToken": created.refresh_token}

    async def seed(self, request: web.Request) -> Any:
        body = await _body(request)
        ids = self.sim.seed(request.match_info["address"], messages=int(body["messages"]),
                            threads=int(body["threads"]), seed=int(body.get("seed", 0)))
        return {"messageIds": ids}

    async def label(self, request: web.Request) -> Any:
        body = await _body(request)
        return {"id": self.sim.create_label(request.match_info["address"], str(body["name"]))}

    async def send_as(self, request: web.Request) -> Any:
        return {"sendAs": self.sim.send_as(request.match_info["address"])}

    async def add_send_as(self, request: web.Request) -> Any:
        body = await _body(request)
        unknown = set(body) - _SEND_AS_FIELDS
        if unknown:
            raise ValueError(f"unknown send-as field {sorted(unknown)[0]!r}")
        return self.sim.add_send_as(
            request.match_info["address"], _text(body, "sendAsEmail", required=True),
            display_name=_text(body, "displayName"), reply_to=_text(body, "replyToAddress"),
            signature=_text(body, "signature"),
            is_default=_flag(body, "isDefault", False),
            treat_as_alias=_flag(body, "treatAsAlias", True),
            verification_status=_text(body, "verificationStatus") or "accepted")

    async def remove_send_as(self, request: web.Request) -> Any:
        info = request.match_info
        self.sim.remove_send_as(info["address"], info["email"])

    async def deliver(self, request: web.Request) -> Any:
        body = await _body(request)
        address = request.match_info["address"]
        raw = body.get("raw")
        options: dict[str, Any] = {
            "thread_id": body.get("threadId"), "sender": body.get("sender"),
            "subject": body.get("subject"), "text": body.get("text"), "html": body.get("html"),
            "kind": body.get("kind"),
            "attachments": [_attachment(a) for a in body.get("attachments") or []],
            "raw": _unb64(raw) if raw else None,
        }
        if "labels" in body:
            options["labels"] = list(body["labels"])
        return _message_info(self.sim, address, self.sim.deliver(address, **options))

    async def reply(self, request: web.Request) -> Any:
        body = await _body(request)
        address = request.match_info["address"]
        message_id = self.sim.reply(address, request.match_info["thread"],
                                    text=body.get("text"), html=body.get("html"),
                                    kind=body.get("kind"))
        return _message_info(self.sim, address, message_id)

    async def draft(self, request: web.Request) -> Any:
        body = await _body(request)
        address = request.match_info["address"]
        message_id = self.sim.draft(address, request.match_info["thread"],
                                    text=body.get("text"), html=body.get("html"))
        return _message_info(self.sim, address, message_id)

    async def update_draft(self, request: web.Request) -> Any:
        body = await _body(request)
        address = request.match_info["address"]
        message_id = self.sim.update_draft(address, request.match_info["message"],
                                           text=body.get("text"), html=body.get("html"))
        return _message_info(self.sim, address, message_id)

    async def send_draft(self, request: web.Request) -> Any:
        info = request.match_info
        return _history(self.sim.send_draft(info["address"], info["message"]))

    async def modify(self, request: web.Request) -> Any:
        body = await _body(request)
        return _history(self.sim.modify_labels(
            request.match_info["address"], request.match_info["message"],
            add=body.get("add") or [], remove=body.get("remove") or []))

    async def trash(self, request: web.Request) -> Any:
        info = request.match_info
        return _history(self.sim.trash(info["address"], info["message"]))

    async def untrash(self, request: web.Request) -> Any:
        info = request.match_info
        return _history(self.sim.untrash(info["address"], info["message"]))

    async def delete(self, request: web.Request) -> Any:
        info = request.match_info
        return _history(self.sim.delete(info["address"], info["message"]))

    async def snapshot(self, request: web.Request) -> Any:
        return self.sim.snapshot(request.match_info["address"]).to_json()

    async def refresh_token(self, request: web.Request) -> Any:
        scopes = (await _body(request)).get("scopes") or DEFAULT_SCOPES
        return {"refreshToken": self.sim.issue_refresh_token(request.match_info["address"],
                                                             scopes)}

    async def access_token(self, request: web.Request) -> Any:
        scopes = (await _body(request)).get("scopes") or DEFAULT_SCOPES
        return {"accessToken": self.sim.access_token(request.match_info["address"], scopes)}

    async def auth_code(self, request: web.Request) -> Any:
        body = await _body(request)
        return {"code": self.sim.issue_authorization_code(
            request.match_info["address"], redirect_uri=str(body["redirectUri"]),
            scopes=body.get("scopes") or DEFAULT_SCOPES)}

    async def revoke(self, request: web.Request) -> Any:
        self.sim.revoke_refresh_token(request.match_info["address"])

    async def expire_history(self, request: web.Request) -> Any:
        up_to = (await _body(request)).get("upTo")
        self.sim.expire_history(request.match_info["address"],
                                int(up_to) if up_to is not None else None)

    async def expire_tokens(self, request: web.Request) -> Any:
        return {"expired": self.sim.expire_access_tokens((await _body(request)).get("address"))}

    async def clock(self, request: web.Request) -> Any:
        return {"now": self.sim.clock.now(), "nowMs": self.sim.clock.now_ms()}

    async def advance(self, request: web.Request) -> Any:
        return {"now": self.sim.advance(float((await _body(request))["seconds"]))}

    async def faults(self, request: web.Request) -> Any:
        if request.method == "PATCH":
            self.sim.faults.update(**await _body(request))
        return self.sim.faults.to_dict()

    async def fail_next(self, request: web.Request) -> Any:
        body = await _body(request)
        self.sim.faults.fail_next(body.get("method"), code=int(body.get("code", 500)),
                                  times=int(body.get("times", 1)))
        return self.sim.faults.to_dict()

    async def reset_faults(self, request: web.Request) -> Any:
        self.sim.faults.reset()
        return self.sim.faults.to_dict()

    async def settings(self, request: web.Request) -> Any:
        sim = self.sim
        if request.method == "PATCH":
            body = await _body(request)
            unknown = set(body) - set(_SETTINGS)
            if unknown:
                raise ValueError(f"unknown setting {sorted(unknown)[0]!r}")
            for key, value in body.items():
                _SETTINGS[key][1](sim, value)
        return {key: getter(sim) for key, (getter, _) in _SETTINGS.items()}

    async def quota(self, request: web.Request) -> Any:
        if request.method == "PATCH":
            self.sim.quota.update(**await _body(request))
        return self.sim.quota.to_dict()

    async def quota_usage(self, request: web.Request) -> Any:
        return self.sim.quota_tracker.snapshot()

    async def reset_quota(self, request: web.Request) -> Any:
        self.sim.quota_tracker.reset()
        return self.sim.quota_tracker.snapshot()

    async def counters(self, request: web.Request) -> Any:
        return self.sim.counters.snapshot()

    async def reset_counters(self, request: web.Request) -> Any:
        self.sim.counters.reset()

    async def notifications(self, request: web.Request) -> Any:
        return {"notifications": [
            {"address": d.address, "historyId": str(d.history_id), "topic": d.topic,
             "sink": d.sink, "ok": d.ok, "dropped": d.dropped, "messageId": d.message_id,
             "data": d.payload()}
            for d in self.notifier.deliveries]}

    async def push(self, request: web.Request) -> Any:
        body = await _body(request)
        await self.notifier.set_push_endpoint(body.get("endpoint"), body.get("subscription"))
        config = self.notifier.config
        return {"endpoint": config.push_endpoint, "subscription": config.push_subscription}


def add_routes(app: web.Application, root: str, sim: Simulator, notifier: Notifier
               ) -> None:
    """Register the control API under ``root`` (e.g. ``/_sim``)."""
    c = _Control(sim, notifier)
    mb = root + "/mailboxes/{address}"
    routes: list[tuple[str, str, Handler]] = [
        ("GET", root + "/config", c.config),
        ("GET", root + "/mailboxes", c.mailboxes),
        ("POST", root + "/mailboxes", c.create),
        ("POST", mb + "/seed", c.seed),
        ("POST", mb + "/labels", c.label),
        ("GET", mb + "/send-as", c.send_as),
        ("POST", mb + "/send-as", c.add_send_as),
        ("DELETE", mb + "/send-as/{email}", c.remove_send_as),
        ("POST", mb + "/deliver", c.deliver),
        ("POST", mb + "/threads/{thread}/reply", c.reply),
        ("POST", mb + "/threads/{thread}/draft", c.draft),
        ("PUT", mb + "/messages/{message}/draft", c.update_draft),
        ("POST", mb + "/messages/{message}/send", c.send_draft),
        ("POST", mb + "/messages/{message}/modify", c.modify),
        ("POST", mb + "/messages/{message}/trash", c.trash),
        ("POST", mb + "/messages/{message}/untrash", c.untrash),
        ("DELETE", mb + "/messages/{message}", c.delete),
        ("GET", mb + "/snapshot", c.snapshot),
        ("POST", mb + "/refresh-tokens", c.refresh_token),
        ("POST", mb + "/access-token", c.access_token),
        ("POST", mb + "/authorization-code", c.auth_code),
        ("POST", mb + "/revoke", c.revoke),
        ("POST", mb + "/expire-history", c.expire_history),
        ("POST", root + "/tokens/expire", c.expire_tokens),
        ("GET", root + "/clock", c.clock),
        ("POST", root + "/clock/advance", c.advance),
        ("GET", root + "/faults", c.faults),
        ("PATCH", root + "/faults", c.faults),
        ("POST", root + "/faults/fail-next", c.fail_next),
        ("POST", root + "/faults/reset", c.reset_faults),
        ("GET", root + "/settings", c.settings),
        ("PATCH", root + "/settings", c.settings),
        ("GET", root + "/quota", c.quota),
        ("PATCH", root + "/quota", c.quota),
        ("GET", root + "/quota/usage", c.quota_usage),
        ("POST", root + "/quota/reset", c.reset_quota),
        ("GET", root + "/counters", c.counters),
        ("POST", root + "/counters/reset", c.reset_counters),
        ("GET", root + "/notifications", c.notifications),
        ("PUT", root + "/push", c.push),
    ]
    for method, path, handler in routes:
        app.router.add_route(method, path, _wrap(handler))


def _optional_float(value: Any) -> float | None:
    return None if value is None else float(value)


def _optional_int(value: Any) -> int | None:
    return None if value is None else int(value)


_SETTINGS: dict[str, tuple[Callable[[Simulator], Any], Callable[[Simulator, Any], None]]] = {
    "historyRetentionSeconds": (
        lambda s: s.history_retention_seconds,
        lambda s, v: setattr(s, "history_retention_seconds", _optional_float(v))),
    "historyRetentionRecords": (
        lambda s: s.history_retention_records,
        lambda s, v: setattr(s, "history_retention_records", _optional_int(v))),
    "largeBodyThreshold": (
        lambda s: s.large_body_threshold,
        lambda s, v: setattr(s, "large_body_threshold", int(v))),
    "accessTokenTtl": (
        lambda s: s.tokens.access_ttl,
        lambda s, v: setattr(s.tokens, "access_ttl", int(v))),
    "watchTtlSeconds": (
        lambda s: s.watch_ttl_seconds,
        lambda s, v: setattr(s, "watch_ttl_seconds", float(v))),
}


_SEND_AS_FIELDS = frozenset({"sendAsEmail", "displayName", "replyToAddress", "signature",
                             "isDefault", "treatAsAlias", "verificationStatus"})


def _text(body: dict[str, Any], key: str, *, required: bool = False) -> str:
    value = body.get(key)
    if value is None:
        if required:
            raise ValueError(f"{key} is required")
        return ""
    if not isinstance(value, str):
        raise ValueError(f"{key} must be a string")
    return value


def _flag(body: dict[str, Any], key: str, default: bool) -> bool:
    value = body.get(key, default)
    if not isinstance(value, bool):
        raise ValueError(f"{key} must be true or false")
    return value


def _unb64(value: str) -> bytes:
    return base64.urlsafe_b64decode(value + "=" * (-len(value) % 4))


def _attachment(spec: dict[str, Any]) -> AttachmentSpec:
    return AttachmentSpec(str(spec["filename"]), str(spec["mimeType"]), _unb64(spec["data"]),
                          bool(spec.get("inline", False)), spec.get("contentId"))


def _message_info(sim: Simulator, address: str, message_id: str) -> dict[str, Any]:
    with sim.lock:
        message = sim.state(address).messages[message_id]
        return {"id": message.id, "threadId": message.thread_id,
                "historyId": str(message.history_id)}
