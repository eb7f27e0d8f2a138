"""The demo's data directory: one demo at a time, and its settings for other commands.

``python3 dev.py run`` keeps everything local under ``DELIGHTBRIDGE_DATA_DIR``
(``./.delightbridge``): the embedded PostgreSQL, the simulated mailboxes
(``demo-gmail.state``) and, while it runs, the settings it runs with (``demo.env``:
database, simulator endpoints, OAuth client, ``AUTH_SECRET``). A running demo holds an
exclusive lock on ``demo.lock`` (``flock``: the kernel releases it when the process
ends, however it ends), so

* a second demo on the same directory refuses before touching anything
  (:func:`hold`), and
* the other commands (``status``, ``sync``, ``verify``, ``admin-session``) read
  ``demo.env`` only while the lock is held (:func:`running_env`): a file left by a
  killed demo is ignored.

Files here hold secrets of the demo (its session secret, simulated tokens): they are
created readable by their owner only.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
from collections.abc import Iterator, Mapping
from pathlib import Path

from dotenv import dotenv_values

from delightbridge.core.errors import DemoAlreadyRunning

LOCK = "demo.lock"
ENV = "demo.env"
GMAIL_STATE = "demo-gmail.state"


@contextlib.contextmanager
def hold(data_dir: Path) -> Iterator[None]:
    """Hold the directory's demo lock, or raise :class:`DemoAlreadyRunning` at once.
    On leaving, ``demo.env`` is removed and the lock released."""
    data_dir.mkdir(parents=True, exist_ok=True)
    fd = os.open(data_dir / LOCK, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        pid = _pid(data_dir / LOCK)
        os.close(fd)
        raise DemoAlreadyRunning(str(data_dir), pid) from None
    try:
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode())
        yield
    finally:
        with contextlib.suppress(FileNotFoundError):
            (data_dir / ENV).unlink()
        os.close(fd)


def is_running(data_dir: Path) -> bool:
    """Whether a demo holds ``data_dir``'s lock now."""
    try:
        fd = os.open(data_dir / LOCK, os.O_RDONLY)
    except FileNotFoundError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    finally:
        os.close(fd)  # releases the shared lock, if taken
    return False


def running_env(data_dir: Path) -> dict[str, str]:
    """The settings of the demo running from ``data_dir``; empty when none runs."""
    path = data_dir / ENV
    if not path.is_file() or not is_running(data_dir):
        return {}
    return {k: v for k, v in dotenv_values(path).items() if v is not None}


def write_env(data_dir: Path, values: Mapping[str, str]) -> Path:
    """Write ``demo.env`` (owner-only, replaced atomically)."""
    path = data_dir / ENV
    partial = path.with_suffix(".partial")
    fd = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as out:
        out.write("# Written by the running demo; read by delightbridge commands while it runs.\n")
        for name, value in values.items():
            out.write(f"{name}={_quoted(value)}\n")
    os.replace(partial, path)
    return path


def _quoted(value: str) -> str:
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


def _pid(path: Path) -> int | None:
    with contextlib.suppress(OSError, ValueError):
        return int(path.read_text().strip())
    return None
