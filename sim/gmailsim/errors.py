"""Gmail's error envelope, and the exception that carries one through the simulator.

Google APIs answer every error as::

    {"error": {"code": 404, "message": "...", "status": "NOT_FOUND",
               "errors": [{"message": "...", "domain": "global", "reason": "notFound"}]}}

:class:`GmailError` is raised by the model and the routes; the server renders it.
The constructors below reproduce the messages Google sends for each case.
"""

from __future__ import annotations

from typing import Any

_STATUS = {
    400: "INVALID_ARGUMENT",
    401: "UNAUTHENTICATED",
    403: "PERMISSION_DENIED",
    404: "NOT_FOUND",
    409: "ABORTED",
    412: "FAILED_PRECONDITION",
    429: "RESOURCE_EXHAUSTED",
    500: "INTERNAL",
    501: "UNIMPLEMENTED",
    503: "UNAVAILABLE",
}


class GmailError(Exception):
    """An error answered in Google's JSON envelope."""

    def __init__(
        self,
        code: int,
        message: str,
        *,
        reason: str,
        domain: str = "global",
        status: str | None = None,
        headers: dict[str, str] | None = None,
        extra: dict[str, str] | None = None,
        detail: str | None = None,
    ) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.reason = reason
        self.domain = domain
        self.status = status or _STATUS.get(code, "UNKNOWN")
        self.headers = dict(headers or {})
        self.extra = dict(extra or {})
        self.detail = detail or message

    def envelope(self) -> dict[str, Any]:
        """The JSON body Google sends for this error."""
        detail: dict[str, str] = {
            "message": self.detail,
            "domain": self.domain,
            "reason": self.reason,
        }
        detail.update(self.extra)
        return {
            "error": {
                "code": self.code,
                "message": self.message,
                "errors": [detail],
                "status": self.status,
            }
        }

    @property
    def key(self) -> str:
        """``"<code>/<reason>"``, the bucket counters use."""
        return f"{self.code}/{self.reason}"


def not_found() -> GmailError:
    return GmailError(404, "Requested entity was not found.", reason="notFound")


def bad_request(message: str, reason: str = "invalidArgument") -> GmailError:
    return GmailError(400, message, reason=reason)


def unknown_parameter(name: str) -> GmailError:
    return GmailError(
        400,
        f'Invalid JSON payload received. Unknown name "{name}": Cannot bind query parameter. '
        f"Field '{name}' could not be found in request message.",
        reason="invalid",
    )


def invalid_value(field: str, type_name: str, value: str) -> GmailError:
    return GmailError(
        400, f"Invalid value at '{field}' ({type_name}), \"{value}\"", reason="invalid"
    )


def unauthenticated() -> GmailError:
    return GmailError(
        401,
        "Request had invalid authentication credentials. Expected OAuth 2 access token, "
        "login cookie or other valid authentication credential. "
        "See https://developers.google.com/identity/sign-in/web/devconsole-project.",
        reason="authError",
        extra={"location": "Authorization", "locationType": "header"},
        headers={"WWW-Authenticate": 'Bearer realm="https://accounts.google.com/"'},
        detail="Invalid Credentials",
    )


def delegation_denied(user_id: str) -> GmailError:
    return GmailError(403, f"Delegation denied for {user_id}", reason="forbidden")


def insufficient_scope() -> GmailError:
    return GmailError(
        403,
        "Request had insufficient authentication scopes.",
        reason="insufficientPermissions",
        detail="Insufficient Permission",
        headers={"WWW-Authenticate": 'Bearer realm="https://accounts.google.com/", '
                 'error="insufficient_scope"'},
    )


def backend_error() -> GmailError:
    return GmailError(500, "Backend Error", reason="backendError", status="INTERNAL")


def unavailable() -> GmailError:
    return GmailError(
        503, "The service is currently unavailable.", reason="backendError",
        status="UNAVAILABLE",
    )


def not_implemented(method: str) -> GmailError:
    return GmailError(
        501, f"The Gmail simulator does not implement {method}.", reason="notImplemented"
    )
