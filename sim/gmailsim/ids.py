"""Deterministic randomness and Gmail-shaped ids.

The simulator's randomness is for realism and reproducibility, never security:
every generator is seeded, so the same seed gives the same ids and content.
"""

from __future__ import annotations

import random


def seeded(*parts: object) -> random.Random:
    """A generator seeded from ``parts`` (stable across runs and platforms)."""
    return random.Random(":".join(str(p) for p in parts))  # noqa: S311 - not for security


class IdAllocator:
    """Increasing ids of 16 lowercase hex digits, like Gmail's message ids."""

    def __init__(self, seed: int) -> None:
        self._rng = seeded("gmailsim-ids", seed)
        self._next = 0x18A0_0000_0000_0000 + self._rng.getrandbits(44)

    def next(self) -> str:
        self._next += self._rng.randint(1, 1 << 20)
        return f"{self._next:016x}"
