"""The CLI's progress line and log lines never share a line."""

from __future__ import annotations

import io
import logging

from delightbridge.cli.sync import CLEAR_LINE, ProgressLine
from delightbridge.sync.runs import Progress


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def _render(output: str) -> list[str]:
    """The terminal's lines: \\r back to column 0, ESC[K erases to the end of the line,
    other characters overwrite what is under the cursor."""
    lines, line, cursor, i = [], "", 0, 0
    while i < len(output):
        if output.startswith(CLEAR_LINE, i):
            line, i = line[:cursor], i + len(CLEAR_LINE)
            continue
        char = output[i]
        if char == "\r":
            cursor = 0
        elif char == "\n":
            lines.append(line)
            line, cursor = "", 0
        else:
            line = line[:cursor] + char + line[cursor + 1:]
            cursor += 1
        i += 1
    return [text for text in [*lines, line] if text]


def test_a_log_line_never_shares_a_line_with_the_progress_line() -> None:
    """Found by a newcomer: 'threads     9919:41:00 INFO …', a log record written after
    the progress line redrawn in place."""
    terminal = _Terminal()
    handler = logging.StreamHandler(terminal)
    root = logging.getLogger()
    root.addHandler(handler)
    try:
        bar = ProgressLine(terminal)
        bar(Progress(phase="importing", listed=500, stored=120))
        logging.getLogger("tests.progress").warning("something went wrong")
        bar(Progress(phase="importing", listed=1000, stored=700))
        bar.close()
        logging.getLogger("tests.progress").warning("after the bar")
    finally:
        root.removeHandler(handler)
    screen = _render(terminal.getvalue())
    assert [line for line in screen if "something went wrong" in line] == [
        "something went wrong"]
    assert screen[-2].startswith("importing ")
    assert "stored     700" in screen[-2]
    assert screen[-1] == "after the bar"
