"""``delightbridge sync`` as an operator runs it, against the simulator."""

from __future__ import annotations

import asyncio
import io
import logging
import os
import re
import sys

from delightbridge.settings import variable_names
from syncengine.cli import CLEAR_LINE, ProgressLine
from syncengine.runs import Progress
from tests.syncengine.conftest import SyncSetup


async def _run(setup: SyncSetup, db_url: str, *args: str) -> tuple[int, str, str]:
    env = {k: v for k, v in os.environ.items() if k not in variable_names()}
    env.update({
        "DATABASE_URL": db_url, "GMAIL_API_ENDPOINT": setup.gmail.base_url,
        "GOOGLE_OAUTH_TOKEN_URI": setup.gmail.token_uri,
        "GOOGLE_CLIENT_ID": setup.sim.client_id, "GOOGLE_CLIENT_SECRET": setup.sim.client_secret,
        "GMAIL_QUOTA_USER_UNITS": "100000000", "LOG_FORMAT": "json",
    })
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "delightbridge.cli", "sync", *args, env=env,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    out, err = await asyncio.wait_for(proc.communicate(), timeout=120)
    assert proc.returncode is not None
    return proc.returncode, out.decode(), err.decode()


async def test_sync_command_prints_a_summary(setup: SyncSetup, db_url: str) -> None:
    setup.sim.seed(setup.address, messages=30, threads=8, seed=12)
    code, out, err = await _run(setup, db_url, setup.account_id, "--mode", "full")
    assert code == 0, err
    [line] = out.strip().splitlines()
    assert line.startswith(f"ok: full sync of {setup.account_id} in ")
    stored = await setup.pool.fetchval("SELECT count(*) FROM emails")
    assert f"messagesProcessed={stored}" in line
    assert "importing" in err  # progress lines on stderr, with done of total
    assert re.search(r"done \d+/\d+ \(\d+ %\)", err), err
    assert setup.mailbox.refresh_token not in out + err


async def test_sync_command_unknown_service_is_one_line(setup: SyncSetup, db_url: str) -> None:
    code, _out, err = await _run(setup, db_url, "svc-nope")
    assert code == 1
    assert err.strip().splitlines()[-1] == "delightbridge: No service 'svc-nope' exists."
    assert "Traceback" not in err


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


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
