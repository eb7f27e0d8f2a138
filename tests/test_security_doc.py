"""SECURITY.md names the test of each control: every test it names exists."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_every_test_security_md_names_exists() -> None:
    text = (ROOT / "SECURITY.md").read_text()
    references = re.findall(r"`(tests/[^`\s]+)`", text)
    assert len(references) >= 12
    missing = []
    for reference in references:
        path, _, name = reference.partition("::")
        target = ROOT / path
        defined = target.exists() and (
            not name or f"def {name.split('[')[0]}(" in target.read_text())
        if not defined:
            missing.append(reference)
    assert not missing, missing
