"""Seeded mailboxes look like Gmail's: long-tailed conversations, none over 100 messages."""

from __future__ import annotations

import random
from collections import Counter

import pytest
from gmailsim import Simulator
from gmailsim.seeding import MAX_THREAD_MESSAGES, plan_seed


def test_no_conversation_holds_more_than_gmails_limit() -> None:
    # Harmonic weights would give the heaviest thread thousands of these messages.
    plan = plan_seed(random.Random(1), 20_000, 300, now_ms=10**13, days=365)
    sizes = Counter(thread for thread, _, _ in plan)
    assert len(plan) == 20_000
    assert len(sizes) == 300
    assert max(sizes.values()) == MAX_THREAD_MESSAGES
    # Still long-tailed: most conversations are short.
    assert sorted(sizes.values())[150] < MAX_THREAD_MESSAGES


def test_more_than_fits_is_a_clear_error() -> None:
    with pytest.raises(ValueError, match="do not fit in 2 threads"):
        plan_seed(random.Random(1), 201, 2, now_ms=10**13, days=1)


def test_a_seeded_mailbox_respects_the_limit() -> None:
    sim = Simulator(seed=3)
    sim.create_mailbox("big@example.com")
    sim.seed("big@example.com", messages=2_000, threads=40, seed=3)
    sizes = Counter(m.thread_id for m in sim.snapshot("big@example.com").messages)
    assert sum(sizes.values()) == 2_000
    assert max(sizes.values()) <= MAX_THREAD_MESSAGES
