"""Where the engine's time goes: a cProfile run reduced to categories and top functions.

Every CPU second is given to the nearest frame (itself or up its callers) whose code
belongs to a known category: parsing, JSON decoding, batch encoding/decoding, SQL
(asyncpg and the engine's store), the HTTP client, request building
(google-api-python-client), the Gmail client's pacing and retries, the event loop.
Builtins and the standard library are thereby charged to whoever called them (``re``
called from the parser is parsing). Time the loop spends blocked in ``epoll`` is
reported apart, as idle.

cProfile slows Python-heavy code more than C code, so shares are indicative; the
profiled run is never one of the measured ones.
"""

from __future__ import annotations

import pstats
from collections import defaultdict
from typing import Any

Func = tuple[str, int, str]

# (category, path fragment, function name or None), first match wins.
RULES: tuple[tuple[str, str, str | None], ...] = (
    ("idle: event loop waiting (epoll)", "~", "<method 'poll' of 'select.epoll' objects>"),
    ("JSON decode (answers)", "delightbridge/sync/gmail/calls.py", "json_body"),
    ("JSON decode (answers)", "/json/", None),
    ("JSON encode (sync_runs progress, attachments)", "json/encoder.py", None),
    ("batch encode/decode (multipart)", "delightbridge/sync/gmail/batch.py", None),
    ("parse: format=full -> columns", "delightbridge/sync/parse.py", None),
    ("parse: format=full -> columns", "delightbridge/sync/mime_text.py", None),
    ("request building (google-api-python-client)", "delightbridge/sync/gmail/calls.py", None),
    ("request building (google-api-python-client)", "googleapiclient/", None),
    ("request building (google-api-python-client)", "uritemplate/", None),
    ("SQL: store, thread summaries (asyncpg)", "delightbridge/sync/store.py", None),
    ("SQL: store, thread summaries (asyncpg)", "delightbridge/sync/threads.py", None),
    ("SQL: store, thread summaries (asyncpg)", "delightbridge/sync/runs.py", None),
    ("SQL: store, thread summaries (asyncpg)", "asyncpg/", None),
    ("SQL: store, thread summaries (asyncpg)", "db/", None),
    ("Gmail client: pacing, retries, OAuth", "delightbridge/sync/gmail/", None),
    ("Gmail client: pacing, retries, OAuth", "tenacity/", None),
    ("HTTP client (aiohttp)", "aiohttp/", None),
    ("HTTP client (aiohttp)", "yarl/", None),
    ("HTTP client (aiohttp)", "multidict/", None),
    ("engine orchestration (full sync, pages, lock)", "delightbridge/sync/", None),
    ("event loop and tasks (asyncio)", "asyncio/", None),
    ("event loop and tasks (asyncio)", "selectors.py", None),
)
UNKNOWN = "other"


def _own_category(func: Func) -> str | None:
    path, _, name = func
    for category, fragment, function in RULES:
        if function is not None:
            if name == function and (fragment == "~" or fragment in path):
                return category
        elif fragment in path:
            return category
    return None


def summarize(stats_path: str, wall_seconds: float, top: int = 15) -> dict[str, Any]:
    stats = pstats.Stats(stats_path)
    table: dict[Func, Any] = stats.stats  # type: ignore[attr-defined]
    memo: dict[Func, dict[str, float]] = {}

    def shares(func: Func, depth: int = 0) -> dict[str, float]:
        """How this function's own time splits over categories (sums to 1)."""
        if func in memo:
            return memo[func]
        own = _own_category(func)
        if own is not None:
            memo[func] = {own: 1.0}
            return memo[func]
        memo[func] = {UNKNOWN: 1.0}  # cycle guard
        callers = table[func][4] if func in table else {}
        total = sum(entry[2] for entry in callers.values()) if callers else 0.0
        if depth > 40 or not callers or total <= 0:
            return memo[func]
        out: dict[str, float] = defaultdict(float)
        for caller, entry in callers.items():
            for category, share in shares(caller, depth + 1).items():
                out[category] += share * entry[2] / total
        memo[func] = dict(out)
        return memo[func]

    categories: dict[str, float] = defaultdict(float)
    total = 0.0
    for func, (_, _, tottime, _, _) in table.items():
        total += tottime
        for category, share in shares(func).items():
            categories[category] += tottime * share
    busy = total - categories.get("idle: event loop waiting (epoll)", 0.0)
    rows = sorted(categories.items(), key=lambda kv: -kv[1])
    functions = sorted(table.items(), key=lambda kv: -kv[1][2])[:top]
    return {
        "profiled_wall_s": wall_seconds,
        "profiled_total_s": total,
        "busy_s": busy,
        "categories": [
            {"category": name, "seconds": round(sec, 3),
             "share_of_busy": round(sec / busy, 4) if busy and not name.startswith("idle")
             else None}
            for name, sec in rows],
        "top_functions": [
            {"function": f"{_short(path)}:{line}({name})", "calls": entry[1],
             "tottime_s": round(entry[2], 3), "cumtime_s": round(entry[3], 3)}
            for (path, line, name), entry in functions],
    }


def _short(path: str) -> str:
    for marker in ("site-packages/", "lib/python3.11/", "/work/main/"):
        if marker in path:
            return path.split(marker, 1)[1]
    return path
