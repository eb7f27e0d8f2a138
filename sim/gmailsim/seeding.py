"""How a seeded mailbox looks: thread sizes, dates, and each message's labels.

Sizes follow a long-tailed distribution (a few long conversations, many short
ones), none longer than Gmail's 100 messages (Gmail starts a new conversation after
that: Gmail Help, "Group emails into conversations"); dates spread over the last
``days`` days, chronological within a thread; inbound labels mix inbox, read/unread,
archive, categories, stars, spam, trash and user labels; outbound messages are SENT.
"""

from __future__ import annotations

import random
from collections.abc import Sequence

from gmailsim import labels as L

#: Gmail starts a new conversation once one holds this many messages.
MAX_THREAD_MESSAGES = 100


def reply_subject(subject: str) -> str:
    return subject if subject.lower().startswith("re:") else f"Re: {subject}"


def unicode_subject(rng: random.Random, subject: str) -> str:
    extras = ("Café", "naïve", "注文", "주문", "Grüße", "🎉", "—")
    return f"{subject} {rng.choice(extras)}"


def seed_labels(rng: random.Random, outbound: bool, user_labels: Sequence[str]) -> list[str]:
    if outbound:
        labels = [L.SENT]
        if rng.random() < 0.1:
            labels.append(L.IMPORTANT)
        return labels
    labels = [rng.choices(L.CATEGORIES, weights=(60, 5, 10, 20, 5))[0]]
    fate = rng.random()
    if fate < 0.03:
        return [*labels, L.SPAM, L.UNREAD]
    if fate < 0.07:
        labels.append(L.TRASH)
    elif fate > 0.2:
        labels.append(L.INBOX)
    if rng.random() < 0.35:
        labels.append(L.UNREAD)
    if rng.random() < 0.06:
        labels.append(L.STARRED)
    if rng.random() < 0.3:
        labels.append(L.IMPORTANT)
    if user_labels and rng.random() < 0.1:
        labels.append(rng.choice(user_labels))
    return labels


def plan_seed(rng: random.Random, messages: int, threads: int, *, now_ms: int,
               days: float) -> list[tuple[int, int, int]]:
    """(thread number, position in thread, internalDate) for each message, oldest first."""
    if messages > threads * MAX_THREAD_MESSAGES:
        raise ValueError(f"{messages} messages do not fit in {threads} threads of at most "
                         f"{MAX_THREAD_MESSAGES} messages (Gmail's limit)")
    sizes = [1] * threads
    weights = [1.0 / (i + 1) for i in range(threads)]
    rng.shuffle(weights)
    for _ in range(messages - threads):
        chosen = rng.choices(range(threads), weights=weights)[0]
        sizes[chosen] += 1
        if sizes[chosen] == MAX_THREAD_MESSAGES:
            weights[chosen] = 0.0  # full: later messages go to other conversations
    span_ms = int(days * 86_400_000)
    latest = now_ms - 60_000
    plan: list[tuple[int, int, int]] = []
    for thread_no, size in enumerate(sizes):
        date = latest - rng.randrange(max(span_ms, 1))
        for position in range(size):
            plan.append((thread_no, position, min(date, latest)))
            date += rng.randrange(60_000, 6 * 3_600_000)
    plan.sort(key=lambda item: (item[2], item[0], item[1]))
    # Positions must follow the date order within a thread (dates were capped).
    seen: dict[int, int] = {}
    ordered = []
    for thread_no, _, date in plan:
        position = seen.get(thread_no, 0)
        seen[thread_no] = position + 1
        ordered.append((thread_no, position, date))
    return ordered
