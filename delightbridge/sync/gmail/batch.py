"""Gmail's batch format: ``multipart/mixed`` of ``application/http`` parts.

Encoding follows google-api-python-client's ``BatchHttpRequest`` (Content-ID
``<base+N>``; the answer to part N carries ``<response-base+N>``); answers are matched
by Content-ID, not position. Pure functions over bytes, and the sizing of batches
(:func:`batch_units`, :func:`plan`).
"""

from __future__ import annotations

import math
import re
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cache
from urllib.parse import urlsplit

from delightbridge.sync.gmail.calls import GmailCall

MAX_BATCH = 100
BATCHES_PER_WINDOW = 4
_BOUNDARY_RE = re.compile(r'boundary="?([^";]+)"?', re.IGNORECASE)
_STATUS_RE = re.compile(rb"^HTTP/\d(?:\.\d)?\s+(\d{3})")
_CONTENT_ID_RE = re.compile(r"<(?:response-)?([^>]+)>")


@dataclass(frozen=True, slots=True)
class PartResponse:
    status: int
    headers: dict[str, str]
    body: bytes


class BatchFormatError(ValueError):
    """The batch answer could not be read; the calls in it must be retried."""


def encode(calls: Sequence[GmailCall]) -> tuple[str, bytes, list[str]]:
    """(content type, body, content ids in call order) of one batch request."""
    if not 0 < len(calls) <= MAX_BATCH:
        raise ValueError(f"a batch holds 1 to {MAX_BATCH} calls, not {len(calls)}")
    base = uuid.uuid4().hex
    boundary = "===============" + uuid.uuid4().hex + "=="
    ids = [f"{base}+{n}" for n in range(1, len(calls) + 1)]
    out = bytearray()
    for content_id, call in zip(ids, calls, strict=True):
        parts = urlsplit(call.url)
        target = parts.path + (f"?{parts.query}" if parts.query else "")
        out += f"--{boundary}\r\n".encode()
        out += b"Content-Type: application/http\r\nContent-Transfer-Encoding: binary\r\n"
        out += f"MIME-Version: 1.0\r\nContent-ID: <{content_id}>\r\n\r\n".encode()
        out += f"{call.method} {target} HTTP/1.1\r\n".encode()
        if call.body is not None:
            out += b"Content-Type: application/json\r\n"
            out += f"Content-Length: {len(call.body)}\r\n\r\n".encode()
            out += call.body
        else:
            out += b"\r\n"
        out += b"\r\n"
    out += f"--{boundary}--\r\n".encode()
    return f'multipart/mixed; boundary="{boundary}"', bytes(out), ids


def _head_end(body: bytes, start: int, stop: int) -> tuple[int, int]:
    """(end of the header block starting at ``start``, start of what follows it)."""
    for sep in (b"\r\n\r\n", b"\n\n"):
        at = body.find(sep, start, stop)
        if at >= 0:
            return at, at + len(sep)
    return stop, stop


def _headers(head: bytes) -> dict[str, str]:
    headers: dict[str, str] = {}
    for line in head.decode("latin-1").splitlines():
        name, colon, value = line.partition(":")
        if colon:
            headers[name.strip().lower()] = value.strip()
    return headers


def decode(content_type: str, body: bytes, ids: Sequence[str]) -> list[PartResponse]:
    """Answers in the order of ``ids``; a missing or unreadable answer is an error.

    Each part's payload is copied out of ``body`` once, and nothing else is: a batch
    answer can hold a thread of thousands of messages (tens of MB).
    """
    match = _BOUNDARY_RE.search(content_type)
    if not match:
        raise BatchFormatError(f"batch answer is not multipart: {content_type!r}")
    delimiter = b"--" + match.group(1).encode()
    by_id: dict[str, PartResponse] = {}
    at = body.find(delimiter)
    while at >= 0:
        start = at + len(delimiter)
        if body.startswith(b"--", start):
            break
        following = body.find(delimiter, start)
        stop = len(body) if following < 0 else following
        while start < stop and body[start] in b"\r\n":
            start += 1
        head_end, rest = _head_end(body, start, stop)
        part_headers = _headers(body[start:head_end])
        id_match = _CONTENT_ID_RE.search(part_headers.get("content-id", ""))
        http_end, payload_start = _head_end(body, rest, stop)
        http_head = body[rest:http_end]
        status = _STATUS_RE.match(http_head)
        if not id_match or not status:
            raise BatchFormatError("batch answer has a part without Content-ID or status line")
        http_headers = _headers(http_head.partition(b"\n")[2])
        payload_stop = stop - 2 if body.startswith(b"\r\n", stop - 2) and stop - 2 >= \
            payload_start else stop
        by_id[id_match.group(1)] = PartResponse(int(status.group(1)), http_headers,
                                                body[payload_start:payload_stop])
        at = following
    missing = [i for i in ids if i not in by_id]
    if missing:
        raise BatchFormatError(f"batch answer lacks {len(missing)} of {len(ids)} parts")
    return [by_id[i] for i in ids]


# --------------------------------------------------------------------------- sizing


@cache
def batch_units(allowance: float, step: int, largest: int) -> int:
    """Quota units one batch may cost, for calls costing multiples of ``step`` units
    (the dearest ``largest``) under a pacer letting ``allowance`` units through per window.

    Near the quota a batch's units stay reserved while it is in flight and for a window
    after its answer. Batches that divide the allowance exactly leave no units idle, and
    several of them a window (at least :data:`BATCHES_PER_WINDOW`) keep few units in
    flight: 245 units (98 % of 250) -> 35 (7 ``messages.get``, or 3 ``threads.get`` and
    1 ``messages.get``); 250 -> 50. When no multiple of ``step`` divides it, the largest
    that fits :data:`BATCHES_PER_WINDOW` times; never less than ``largest``.
    """
    whole = int(allowance)
    cap = whole // BATCHES_PER_WINDOW
    cap -= cap % step
    for units in range(cap, largest - 1, -step):
        if units > 0 and whole % units == 0:
            return units
    return max(largest, cap)


def plan(costs: Sequence[int], *, max_calls: int, max_units: int,
         heavy: Sequence[bool] = (), max_heavy: int = MAX_BATCH) -> list[list[int]]:
    """Calls (by index into ``costs``) grouped into batches of at most ``max_calls`` calls
    costing at most ``max_units`` in all, and holding at most ``max_heavy`` of the calls
    ``heavy`` marks (those whose answers may be large: a whole thread), as few and as
    full as first-fit decreasing makes them: the dearest calls first, cheaper ones in
    the room they leave. A call dearer than ``max_units`` goes alone."""
    batches: list[list[int]] = []
    rooms: list[int] = []
    heavies: list[int] = []
    open_: list[int] = []  # batches with room left, in creation order
    for index in sorted(range(len(costs)), key=lambda i: -costs[i]):
        cost = costs[index]
        weight = 1 if index < len(heavy) and heavy[index] else 0
        target = next((b for b in open_
                       if rooms[b] >= cost and heavies[b] + weight <= max_heavy), None)
        if target is None:
            target = len(batches)
            batches.append([])
            rooms.append(max_units)
            heavies.append(0)
            open_.append(target)
        batches[target].append(index)
        rooms[target] -= cost
        heavies[target] += weight
        if rooms[target] <= 0 or len(batches[target]) >= max_calls:
            open_.remove(target)
    return batches


def cost_step(costs: Sequence[int]) -> int:
    """The largest number of units every cost is a multiple of (1 for no costs)."""
    return math.gcd(*costs) or 1
