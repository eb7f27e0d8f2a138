"""The OpenAPI 3.1 document of the API, served at ``GET /api/openapi.json``.

Written by hand next to the handlers it describes; its enums and bounds (error codes,
modes, triggers, run states, the runs' limit) are the code's own definitions.
``tests/api`` validate every response they receive against it and run schemathesis
over it, so it cannot drift from the behaviour unnoticed.
"""

from __future__ import annotations

import copy
from typing import Any

from delightbridge.api.errors import STATUSES
from delightbridge.api.views.connect import REASONS
from delightbridge.api.views.sync import MAX_RUNS, RECENT_RUNS
from delightbridge.sync.runs import MODES, RUN_STATES, TRIGGERS

_JSON = "application/json"

_ERROR_CODES = list(STATUSES)


def _ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


def _json(schema: dict[str, Any], description: str,
          headers: dict[str, Any] | None = None) -> dict[str, Any]:
    response: dict[str, Any] = {"description": description,
                                "content": {_JSON: {"schema": schema}}}
    if headers:
        response["headers"] = headers
    return response


def _error(description: str, *codes: str, headers: dict[str, Any] | None = None
           ) -> dict[str, Any]:
    """An error response that answers ``codes`` (each one the API's: :data:`STATUSES`)."""
    unknown = set(codes) - STATUSES.keys()
    if unknown:
        raise AssertionError(f"not codes the API answers: {sorted(unknown)}")
    schema: dict[str, Any] = {"allOf": [_ref("Error")]}
    if codes:
        schema = {"allOf": [_ref("Error"),
                            {"properties": {"error": {"enum": list(codes)}}}]}
    return _json(schema, description, headers)


_RETRY_AFTER = {"Retry-After": {
    "description": "Seconds to wait before trying again.", "required": True,
    "schema": {"type": "string", "pattern": "^[0-9]+$"}}}
_LOCATION = {"Location": {"description": "Where the browser goes next.", "required": True,
                          "schema": {"type": "string"}}}

_SERVICE_ID = {
    "name": "id", "in": "path", "required": True,
    "description": "The service's id (`gmail_accounts.id`).",
    "schema": {"type": "string", "minLength": 1}, "example": "service-123",
}
_RUN_ID = {
    "name": "runId", "in": "path", "required": True,
    "description": "A sync run's id, as returned by the sync endpoint.",
    "schema": {"type": "string", "format": "uuid"},
}

_AUTH_ERRORS: dict[str, Any] = {
    "401": {"$ref": "#/components/responses/Unauthenticated"},
    "403": {"$ref": "#/components/responses/Forbidden"},
}
_SERVICE_ERRORS: dict[str, Any] = {
    **_AUTH_ERRORS,
    "404": {"$ref": "#/components/responses/ServiceNotFound"},
    "500": {"$ref": "#/components/responses/Internal"},
    "503": {"$ref": "#/components/responses/Unavailable"},
}
_ADMIN: list[dict[str, list[str]]] = [{"adminSession": []}]

_SCHEMAS: dict[str, Any] = {
    "Error": {
        "type": "object",
        "required": ["ok", "error", "message"],
        "properties": {
            "ok": {"const": False},
            "error": {"type": "string", "enum": _ERROR_CODES,
                      "description": "A stable, machine-readable code."},
            "message": {"type": "string", "minLength": 1,
                        "description": "A sentence for humans (never a stack trace)."},
            "connectUrl": {"type": "string",
                           "description": "service_not_connected: where an admin reconnects "
                                          "the service (the connect endpoint)."},
            "runId": {"type": "string", "format": "uuid",
                      "description": "sync_in_progress: the run holding the lock."},
        },
    },
    "SyncResult": {
        "type": "object",
        "required": ["ok", "mode", "threadsProcessed", "messagesProcessed"],
        "properties": {
            "ok": {"const": True},
            "mode": {"enum": list(MODES),
                     "description": "The mode used: full when an incremental sync had no "
                                    "usable cursor and fell back."},
            "threadsProcessed": {"type": "integer", "minimum": 0},
            "messagesProcessed": {"type": "integer", "minimum": 0},
            "messagesDeleted": {"type": "integer", "minimum": 0},
            "runId": {"type": "string", "format": "uuid"},
            "historyId": {"type": ["string", "null"], "pattern": "^[0-9]+$",
                          "description": "Gmail's historyId the service is now synced to."},
            "fellBackToFull": {"type": "boolean"},
            "durationSeconds": {"type": "number", "minimum": 0},
        },
    },
    "SyncStarted": {
        "type": "object",
        "required": ["ok", "mode", "runId"],
        "properties": {
            "ok": {"const": True},
            "mode": {"enum": list(MODES), "description": "The mode requested."},
            "runId": {"type": "string", "format": "uuid"},
        },
    },
    "Run": {
        "type": "object",
        "required": ["runId", "serviceId", "mode", "trigger", "state", "threadsProcessed",
                     "messagesProcessed", "startedAt"],
        "properties": {
            "runId": {"type": "string", "format": "uuid"},
            "serviceId": {"type": "string"},
            "mode": {"enum": list(MODES)},
            "trigger": {"enum": list(TRIGGERS)},
            "state": {"enum": list(RUN_STATES)},
            "fellBackToFull": {"type": "boolean"},
            "startHistoryId": {"type": ["string", "null"]},
            "historyId": {"type": ["string", "null"]},
            "threadsProcessed": {"type": "integer", "minimum": 0},
            "messagesProcessed": {"type": "integer", "minimum": 0},
            "messagesDeleted": {"type": "integer", "minimum": 0},
            "progress": {
                "type": ["object", "null"],
                "description": "Counters while it runs: phase, listed, fetched, stored…",
                "properties": {"phase": {"type": "string"}},
            },
            "error": {
                "type": ["object", "null"],
                "required": ["code", "message"],
                "properties": {"code": {"type": "string"},
                               "message": {"type": ["string", "null"]}},
            },
            "startedAt": {"type": "string", "format": "date-time"},
            "finishedAt": {"type": ["string", "null"], "format": "date-time"},
            "durationSeconds": {"type": ["number", "null"], "minimum": 0},
        },
    },
    "RunList": {
        "type": "object",
        "required": ["ok", "runs"],
        "properties": {"ok": {"const": True},
                       "runs": {"type": "array", "items": _ref("Run")}},
    },
    "RunEnvelope": {
        "type": "object",
        "required": ["ok", "run"],
        "properties": {"ok": {"const": True}, "run": _ref("Run")},
    },
    "ConnectResult": {
        "type": "object",
        "required": ["ok", "serviceId", "message"],
        "properties": {
            "ok": {"type": "boolean"},
            "serviceId": {"type": ["string", "null"]},
            "runId": {"type": ["string", "null"], "format": "uuid",
                      "description": "The initial full sync's run, when connected."},
            "reason": {"enum": [*REASONS, "unknown"],
                       "description": "Why the connect attempt failed."},
            "message": {"type": "string"},
        },
    },
    "Disconnected": {
        "type": "object",
        "required": ["ok", "serviceId", "wasConnected", "watchStopped", "grantRevoked",
                     "stopPending"],
        "properties": {
            "ok": {"const": True},
            "serviceId": {"type": "string"},
            "wasConnected": {"type": "boolean",
                             "description": "False: the service had no tokens; nothing "
                                            "changed."},
            "watchStopped": {"type": "boolean",
                             "description": "Gmail stopped publishing the mailbox's changes "
                                            "(users.stop answered, or the watch had "
                                            "lapsed)."},
            "grantRevoked": {"type": "boolean",
                             "description": "Google revoked the refresh token."},
            "stopPending": {"type": "boolean",
                            "description": "Gmail or Google did not answer: the stop and "
                                           "revocation are queued and retried by the "
                                           "watch renewal job."},
            "error": {"type": ["string", "null"]},
        },
    },
    "Ok": {"type": "object", "required": ["ok"], "properties": {"ok": {"const": True}}},
}

_RESPONSES: dict[str, Any] = {
    "Unauthenticated": _error(
        "No valid session: missing, malformed, forged, tampered with, truncated, issued "
        "with another secret, or expired.", "unauthenticated"),
    "Forbidden": _error("Signed in, but not an admin.", "forbidden"),
    "ServiceNotFound": _error("No such service (or no such endpoint).",
                              "service_not_found", "not_found"),
    "BadParameter": _error("A query parameter has a value the endpoint does not accept.",
                           "invalid_mode", "invalid_wait", "invalid_limit"),
    "Internal": _error("A bug, or a server misconfiguration; never a stack trace.",
                       "internal", "token_decryption_failed"),
    "Unavailable": _error("The database is not reachable (or Gmail is not answering, for "
                          "a sync).", "database_unavailable", "gmail_unavailable",
                          headers=_RETRY_AFTER),
}

_SYNC_DESCRIPTION = """\
Synchronizes the service's Gmail mailbox into the DelightBridge database: `incremental`
replays Gmail's history since the stored cursor (falling back to a full sync when there
is none or Gmail no longer has it), `full` re-reads the whole mailbox and removes what
it no longer has. Admins only. One sync per service at a time, across every process.

By default the answer comes when the sync ends (200). With `wait=false` it comes (202)
as soon as the sync holds the service's lock, and the run is followed at
`GET /api/services/{id}/sync/runs/{runId}`.
"""


def _sync_operation() -> dict[str, Any]:
    return {
        "operationId": "syncService",
        "summary": "Sync Service Emails",
        "description": _SYNC_DESCRIPTION,
        "tags": ["sync"],
        "security": _ADMIN,
        "parameters": [
            _SERVICE_ID,
            {"name": "mode", "in": "query", "required": False,
             "description": "`incremental` (default) or `full`.",
             "schema": {"type": "string", "enum": sorted(MODES, reverse=True),
                        "default": "incremental"}},
            {"name": "wait", "in": "query", "required": False,
             "description": "`false`: answer 202 once the sync has started.",
             "schema": {"type": "boolean", "default": True}},
        ],
        "responses": {
            "200": _json(_ref("SyncResult"), "The sync finished."),
            "202": _json(_ref("SyncStarted"), "The sync started (`wait=false`)."),
            "400": {"$ref": "#/components/responses/BadParameter"},
            **_SERVICE_ERRORS,
            "409": _error("The service is not connected to Gmail (no refresh token, or "
                          "Google refused it: `connectUrl` names the connect endpoint), or "
                          "a sync of it is already running.",
                          "service_not_connected", "sync_in_progress"),
            "429": _error("Gmail kept rate-limiting after retries.", "gmail_quota_exceeded",
                          headers=_RETRY_AFTER),
            "502": _error("Gmail answered with an error that retrying does not fix.",
                          "gmail_error"),
        },
    }


def _runs_operation() -> dict[str, Any]:
    return {
        "operationId": "listSyncRuns",
        "summary": "Recent sync runs of a service, newest first",
        "tags": ["sync"],
        "security": _ADMIN,
        "parameters": [
            _SERVICE_ID,
            {"name": "limit", "in": "query", "required": False,
             "schema": {"type": "integer", "minimum": 1, "maximum": MAX_RUNS,
                        "default": RECENT_RUNS}},
        ],
        "responses": {
            "200": _json(_ref("RunList"), "The runs."),
            "400": {"$ref": "#/components/responses/BadParameter"},
            **_SERVICE_ERRORS,
        },
    }


def _run_operation() -> dict[str, Any]:
    return {
        "operationId": "getSyncRun",
        "summary": "One sync run: its state and progress",
        "tags": ["sync"],
        "security": _ADMIN,
        "parameters": [_SERVICE_ID, _RUN_ID],
        "responses": {
            "200": _json(_ref("RunEnvelope"), "The run."),
            **_SERVICE_ERRORS,
            "404": _error("No such service, or the service has no run with that id.",
                          "service_not_found", "run_not_found", "not_found"),
        },
    }


def _disconnect_operation() -> dict[str, Any]:
    return {
        "operationId": "disconnectService",
        "summary": "Disconnect a service's Gmail mailbox",
        "description": "Clears the service's tokens at once (syncs refuse it from then on; "
                       "its mirrored mail stays), then stops its Gmail watch and revokes "
                       "its grant at Google. What Google does not answer now is queued and "
                       "retried by the watch renewal job, so no watch is left publishing. "
                       "Idempotent: disconnecting a disconnected service changes nothing.",
        "tags": ["connect"],
        "security": _ADMIN,
        "parameters": [_SERVICE_ID],
        "responses": {
            "200": _json(_ref("Disconnected"), "The service is disconnected."),
            **_SERVICE_ERRORS,
        },
    }


def _connect_operation() -> dict[str, Any]:
    return {
        "operationId": "connectService",
        "summary": "Connect (or reconnect) a service's Gmail mailbox",
        "description": "Redirects an admin's browser to Google's consent screen (offline "
                       "access, gmail.readonly and gmail.send), binding the attempt to a "
                       "short-lived HttpOnly cookie that the callback checks.",
        "tags": ["connect"],
        "security": _ADMIN,
        "parameters": [_SERVICE_ID],
        "responses": {
            "302": {"description": "To Google's consent screen.", "headers": {
                **_LOCATION,
                "Set-Cookie": {"description": "The connect attempt's state cookie.",
                               "required": True, "schema": {"type": "string"}}}},
            **_SERVICE_ERRORS,
            "503": _error("The database is not reachable (Retry-After), this server has "
                          "no Google OAuth client configured, or PUBLIC_BASE_URL is not set "
                          "and the request is not to localhost.", "database_unavailable",
                          "oauth_not_configured", "public_base_url_required",
                          headers={"Retry-After": {**_RETRY_AFTER["Retry-After"],
                                                   "required": False}}),
        },
    }


def _callback_operation() -> dict[str, Any]:
    query = [
        {"name": name, "in": "query", "required": False, "schema": {"type": "string"},
         "description": description}
        for name, description in (("code", "The authorization code."),
                                  ("state", "The connect attempt's state."),
                                  ("error", "Set by Google when consent failed."),
                                  ("scope", "The scopes granted."))
    ]
    return {
        "operationId": "oauthCallback",
        "summary": "Google's redirect after consent",
        "description": "Checks the state, exchanges the code, checks the mailbox's address, "
                       "stores the tokens, then starts the watch and an initial full sync in "
                       "the background. Always redirects to the return page, with "
                       "`status=connected&runId=…` or `status=failed&reason=…`.",
        "tags": ["connect"],
        "parameters": query,
        "responses": {"302": {"description": "To the return page.", "headers": _LOCATION}},
    }


def _result_operation() -> dict[str, Any]:
    return {
        "operationId": "connectResult",
        "summary": "How a connect attempt ended (the callback's default return page)",
        "tags": ["connect"],
        "parameters": [
            {"name": name, "in": "query", "required": False, "schema": {"type": "string"}}
            for name in ("status", "service", "reason", "runId")
        ],
        "responses": {"200": _json(_ref("ConnectResult"), "The outcome.")},
    }


def _plain(description: str, schema_ref: str = "Ok") -> dict[str, Any]:
    return _json(_ref(schema_ref), description)


_DOCUMENT: dict[str, Any] = {
    "openapi": "3.1.0",
    "info": {
        "title": "DelightBridge Sync API",
        "version": "1.0.0",
        "description": "Mirrors support teams' Gmail mailboxes into DelightBridge's "
                       "PostgreSQL database. Admin endpoints take the web app's Auth.js "
                       "session cookie. Every error is "
                       "`{\"ok\": false, \"error\": code, \"message\": sentence}`. "
                       "Readiness (`/readyz`) and Prometheus metrics (`/metrics`) are "
                       "served on the internal operations port (`serve --ops-port`, "
                       "default 9000), not here.",
    },
    "paths": {
        "/api/services/{id}/sync": {"post": _sync_operation()},
        "/api/services/{id}/sync/runs": {"get": _runs_operation()},
        "/api/services/{id}/sync/runs/{runId}": {"get": _run_operation()},
        "/api/services/{id}/connect": {"get": _connect_operation()},
        "/api/services/{id}/connection": {"delete": _disconnect_operation()},
        "/api/services/oauth/callback": {"get": _callback_operation()},
        "/api/services/oauth/result": {"get": _result_operation()},
        "/healthz": {"get": {
            "operationId": "healthz", "summary": "The process is alive", "tags": ["ops"],
            "responses": {"200": _plain("Alive.")}}},
        "/api/openapi.json": {"get": {
            "operationId": "openapi", "summary": "This document", "tags": ["ops"],
            "responses": {"200": _json({"type": "object", "required": ["openapi", "paths"]},
                                       "The OpenAPI document.")}}},
    },
    "components": {
        "securitySchemes": {
            "adminSession": {
                "type": "apiKey", "in": "cookie", "name": "authjs.session-token",
                "description": "The web app's Auth.js session of an admin (JWT sessions: "
                               "a JWE under AUTH_SECRET; database sessions: the token). "
                               "`__Secure-authjs.session-token` and chunked cookies "
                               "(`.0`, `.1`…) are accepted too. "
                               "`delightbridge admin-session --email E` prints one.",
            },
        },
        "schemas": _SCHEMAS,
        "responses": _RESPONSES,
    },
}


def document() -> dict[str, Any]:
    """A fresh copy of the document (callers may change it)."""
    return copy.deepcopy(_DOCUMENT)
