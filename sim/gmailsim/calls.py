"""One Gmail call on the wire: request, response, typed query parameters.

Shared by the HTTP server, the batch endpoint and the method handlers.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from gmailsim import errors
from gmailsim.errors import GmailError
from gmailsim.model import MailboxState
from gmailsim.oauth import AccessToken
from gmailsim.simulator import Simulator

JSON_TYPE = "application/json; charset=UTF-8"


@dataclass(frozen=True, slots=True)
class ApiRequest:
    method: str
    path: str  # below the base URL, e.g. "/gmail/v1/users/me/profile"
    query: Sequence[tuple[str, str]] = ()
    headers: Mapping[str, str] = field(default_factory=dict)
    body: bytes = b""

    def header(self, name: str) -> str | None:
        lowered = name.lower()
        return next((v for k, v in self.headers.items() if k.lower() == lowered), None)


@dataclass(slots=True)
class ApiResponse:
    status: int
    body: bytes = b""
    headers: dict[str, str] = field(default_factory=dict)

    def json(self) -> Any:
        return json.loads(self.body) if self.body else None

    @property
    def reason(self) -> str:
        return _REASONS.get(self.status, "Unknown")


_REASONS = {200: "OK", 204: "No Content", 400: "Bad Request", 401: "Unauthorized",
            403: "Forbidden", 404: "Not Found", 429: "Too Many Requests",
            500: "Internal Server Error", 501: "Not Implemented", 503: "Service Unavailable"}


class Params:
    """Query parameters of one call, typed on access."""

    def __init__(self, pairs: Sequence[tuple[str, str]]) -> None:
        self._values: dict[str, list[str]] = {}
        for key, value in pairs:
            self._values.setdefault(key, []).append(value)

    def names(self) -> set[str]:
        return set(self._values)

    def one(self, name: str) -> str | None:
        values = self._values.get(name)
        return values[-1] if values else None

    def many(self, name: str, *, split_commas: bool = False) -> list[str]:
        out: list[str] = []
        for value in self._values.get(name, []) + self._values.get(name + "[]", []):
            if split_commas:
                out.extend(v.strip() for v in value.split(",") if v.strip())
            else:
                out.append(value)
        return out

    def uint(self, name: str, wire: str, default: int, type_name: str = "TYPE_UINT32") -> int:
        raw = self.one(name)
        if raw is None or raw == "":
            return default
        if not raw.isdigit():
            raise errors.invalid_value(wire, type_name, raw)
        return int(raw)

    def flag(self, name: str, wire: str, default: bool = False) -> bool:
        raw = self.one(name)
        if raw is None:
            return default
        if raw.lower() not in ("true", "false"):
            raise errors.invalid_value(wire, "TYPE_BOOL", raw)
        return raw.lower() == "true"


@dataclass(slots=True)
class Call:
    sim: Simulator
    state: MailboxState
    token: AccessToken
    path: dict[str, str]
    params: Params
    body: bytes

    def json_body(self) -> dict[str, Any]:
        if not self.body.strip():
            return {}
        try:
            value = json.loads(self.body)
        except (ValueError, UnicodeDecodeError):
            raise errors.bad_request("Invalid JSON payload received.", "parseError") from None
        if not isinstance(value, dict):
            raise errors.bad_request("Invalid JSON payload received.", "parseError")
        return value


def json_response(status: int, body: Any, *, pretty: bool = True,
                  headers: Mapping[str, str] | None = None) -> ApiResponse:
    text = json.dumps(body, indent=2 if pretty else None, ensure_ascii=False)
    return ApiResponse(status, text.encode("utf-8"),
                       {"Content-Type": JSON_TYPE, **(headers or {})})


def error_response(error: GmailError) -> ApiResponse:
    return json_response(error.code, error.envelope(), headers=error.headers)
