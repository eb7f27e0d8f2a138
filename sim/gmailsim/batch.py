"""Google's batch endpoint: ``POST /batch/gmail/v1`` with a ``multipart/mixed`` body.

Each part is ``application/http``: a request line, headers and an optional body.
Parts are answered in order, each in its own ``application/http`` part whose
``Content-ID`` is ``<response-`` + the request part's id + ``>``, which is what
google-api-python-client's ``BatchHttpRequest`` parses. At most 100 parts; each
counts against quota like a single call and runs concurrently with the others (so
the per-user concurrency limit applies to them). A part without an
``Authorization`` header inherits the outer request's.
"""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import Mapping
from email import policy
from email.message import Message
from email.parser import BytesParser
from urllib.parse import parse_qsl, urlsplit

from gmailsim.api import ApiRequest, ApiResponse, GmailApi, error_response
from gmailsim.errors import GmailError

MAX_PARTS = 100
CRLF = "\r\n"


def _bad(message: str) -> ApiResponse:
    return error_response(GmailError(400, message, reason="badRequest"))


def _parse_part(part: Message, prefix: str, outer_auth: str | None) -> ApiRequest | None:
    payload = part.get_payload()
    if not isinstance(payload, str):
        return None
    data = payload.encode("utf-8", "surrogateescape")
    for separator in (b"\r\n\r\n", b"\n\n"):
        head, found, body = data.partition(separator)
        if found:
            break
    else:
        head, body = data, b""
    lines = head.decode("utf-8", "replace").splitlines()
    if not lines:
        return None
    request_line = lines[0].split(" ")
    if len(request_line) < 2:
        return None
    method, target = request_line[0].upper(), request_line[1]
    headers: dict[str, str] = {}
    for line in lines[1:]:
        name, sep, value = line.partition(":")
        if sep:
            headers[name.strip()] = value.strip()
    if outer_auth and not any(k.lower() == "authorization" for k in headers):
        headers["Authorization"] = outer_auth
    url = urlsplit(target)
    path = url.path
    if prefix and path.startswith(prefix + "/"):
        path = path[len(prefix):]
    return ApiRequest(method, path, parse_qsl(url.query, keep_blank_values=True), headers,
                      body.rstrip(b"\r\n") if body.strip() else b"")


def _render_part(response: ApiResponse, content_id: str | None) -> str:
    lines = ["Content-Type: application/http"]
    if content_id:
        inner = content_id.strip()
        inner = inner[1:-1] if inner.startswith("<") and inner.endswith(">") else inner
        lines.append(f"Content-ID: <response-{inner}>")
    lines += ["", f"HTTP/1.1 {response.status} {response.reason}"]
    lines += [f"{name}: {value}" for name, value in response.headers.items()]
    lines.append(f"Content-Length: {len(response.body)}")
    lines += ["", response.body.decode("utf-8")]
    return CRLF.join(lines)


async def handle_batch(api: GmailApi, content_type: str, body: bytes,
                       headers: Mapping[str, str], prefix: str = "") -> ApiResponse:
    """Answer one batch request."""
    api.sim.counters.call("batch")
    if not content_type.lower().startswith("multipart/mixed"):
        api.sim.counters.error("batch", "400/badRequest")
        return _bad("Batch request must be multipart/mixed.")
    message = BytesParser(policy=policy.compat32).parsebytes(
        f"Content-Type: {content_type}\r\n\r\n".encode() + body)
    payload = message.get_payload() if message.is_multipart() else None
    parts: list[Message] = [p for p in payload if isinstance(p, Message)] \
        if isinstance(payload, list) else []
    if not parts:
        api.sim.counters.error("batch", "400/badRequest")
        return _bad("Batch request contains no parts.")
    if len(parts) > MAX_PARTS:
        api.sim.counters.error("batch", "400/badRequest")
        return _bad(f"A batch request cannot contain more than {MAX_PARTS} requests.")
    outer_auth = next((v for k, v in headers.items() if k.lower() == "authorization"), None)
    requests = [_parse_part(part, prefix, outer_auth) for part in parts]

    async def answer(request: ApiRequest | None) -> ApiResponse:
        if request is None:
            return _bad("Invalid batch part.")
        return await api.handle(request)

    responses = await asyncio.gather(*(answer(r) for r in requests))
    boundary = "batch_" + secrets.token_hex(12)
    chunks = [
        f"--{boundary}{CRLF}{_render_part(response, part.get('Content-ID'))}{CRLF}"
        for part, response in zip(parts, responses, strict=True)
    ]
    chunks.append(f"--{boundary}--{CRLF}")
    return ApiResponse(200, "".join(chunks).encode("utf-8"),
                       {"Content-Type": f"multipart/mixed; boundary={boundary}"})
