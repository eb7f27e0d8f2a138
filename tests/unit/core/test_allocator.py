"""The allocator's settings: applied in a fresh process, left alone where the
environment sets them."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

SCRIPT = "from delightbridge.core import allocator; print(allocator.tune())"


def _tune(**env: str) -> str:
    base = {k: v for k, v in os.environ.items() if not k.startswith("MALLOC_")}
    result = subprocess.run([sys.executable, "-c", SCRIPT], env={**base, **env},
                            capture_output=True, text=True, check=True, timeout=60)
    return result.stdout.strip()


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's mallopt")
def test_it_tunes_glibc_unless_the_environment_does() -> None:
    assert _tune() == "True"
    assert _tune(MALLOC_ARENA_MAX="4") == "False"
    assert _tune(MALLOC_MMAP_THRESHOLD_="65536") == "False"
