"""``delightbridge sync SERVICE_ID --mode full|incremental``: one sync from a terminal.

Shows a progress line while it runs (redrawn in place on a terminal, one line per
phase change otherwise) and a summary at the end. Exit code 0 on success, 1 on a
domain error (printed by the console script as one line).
"""

from __future__ import annotations

import argparse
import logging
import sys
import time
from typing import TextIO

from delightbridge.core.settings import Settings
from delightbridge.db.pool import open_pool
from delightbridge.sync.engine import EngineConfig, SyncEngine
from delightbridge.sync.runs import MODES, Progress

CLEAR_LINE = "\x1b[K"  # erase to the end of the line (ANSI)


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("service_id", help="the service (gmail_accounts.id) to sync")
    parser.add_argument("--mode", choices=MODES, default="incremental",
                        help="incremental (default) or full")
    parser.add_argument("--wait", type=float, default=None, metavar="SECONDS",
                        help="wait up to SECONDS for a running sync of the service to end")


def progress_text(p: Progress) -> str:
    """One line: the phase, the counts, and for an import done of total and time left."""
    line = (f"{p.phase:<16} listed {p.listed:>7}  fetched {p.fetched:>7}  "
            f"stored {p.stored:>7}  deleted {p.deleted:>5}  threads {len(p.threads):>6}")
    if p.total:
        eta = p.eta()
        line += (f"  done {p.done}/{p.total} ({min(100, 100 * p.done // p.total)} %)"
                 + (f", about {_duration(eta)} left" if eta is not None else ""))
    return line


def _duration(seconds: float) -> str:
    minutes, secs = divmod(int(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h{minutes:02d}m" if hours else f"{minutes}m{secs:02d}s"


class ProgressLine(logging.Filter):
    """A progress line redrawn in place on a terminal. While it is drawn, a log record
    first clears it (the record is then written on a line of its own; the next update
    draws the progress again), so the two never share a line."""

    def __init__(self, stream: TextIO) -> None:
        super().__init__()
        self._stream = stream
        self._tty = stream.isatty()
        self._last_phase = ""
        self._last_draw = 0.0
        self._drawn = False
        self._handlers = list(logging.getLogger().handlers) if self._tty else []
        for handler in self._handlers:
            handler.addFilter(self)

    def __call__(self, p: Progress) -> None:
        now = time.monotonic()
        if self._tty and now - self._last_draw < 0.1 and p.phase == self._last_phase:
            return
        line = progress_text(p)
        if self._tty:
            self._stream.write("\r" + CLEAR_LINE + line)
            self._drawn = True
        elif p.phase != self._last_phase:
            self._stream.write(line + "\n")
        self._stream.flush()
        self._last_phase, self._last_draw = p.phase, now

    def filter(self, record: logging.LogRecord) -> bool:
        if self._drawn:
            self._stream.write("\r" + CLEAR_LINE)
            self._stream.flush()
            self._drawn = False
            self._last_draw = 0.0  # drawn again at the next update
        return True

    def close(self) -> None:
        for handler in self._handlers:
            handler.removeFilter(self)
        if self._tty and self._last_phase:
            self._stream.write("\n")


async def run(settings: Settings, args: argparse.Namespace) -> int:
    bar = ProgressLine(sys.stderr)
    async with open_pool(settings) as pool, SyncEngine.open(
        pool, EngineConfig.from_settings(settings)
    ) as engine:
        try:
            await engine.reachable(args.service_id)  # fails fast, before the sync lock
            result = await engine.sync(args.service_id, mode=args.mode, trigger="cli",
                                       wait=args.wait, on_progress=bar)
        finally:
            bar.close()
    fallback = " (fell back to full)" if result.fell_back_to_full else ""
    print(f"ok: {result.mode} sync{fallback} of {result.service_id} in {result.duration:.1f}s: "
          f"threadsProcessed={result.threads_processed} "
          f"messagesProcessed={result.messages_processed} "
          f"deleted={result.messages_deleted} historyId={result.history_id} "
          f"run={result.run_id}")
    return 0
