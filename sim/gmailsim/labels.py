"""Gmail's system labels and the user labels of one mailbox."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

INBOX = "INBOX"
SENT = "SENT"
UNREAD = "UNREAD"
STARRED = "STARRED"
IMPORTANT = "IMPORTANT"
SPAM = "SPAM"
TRASH = "TRASH"
DRAFT = "DRAFT"
CHAT = "CHAT"
CATEGORY_PERSONAL = "CATEGORY_PERSONAL"
CATEGORY_SOCIAL = "CATEGORY_SOCIAL"
CATEGORY_PROMOTIONS = "CATEGORY_PROMOTIONS"
CATEGORY_UPDATES = "CATEGORY_UPDATES"
CATEGORY_FORUMS = "CATEGORY_FORUMS"

CATEGORIES = (
    CATEGORY_PERSONAL,
    CATEGORY_SOCIAL,
    CATEGORY_PROMOTIONS,
    CATEGORY_UPDATES,
    CATEGORY_FORUMS,
)

SYSTEM_LABELS: tuple[str, ...] = (
    CHAT, SENT, INBOX, IMPORTANT, TRASH, DRAFT, SPAM, *CATEGORIES, STARRED, UNREAD,
)

# Labels a client may not add or remove through messages.modify.
NOT_MODIFIABLE = frozenset({DRAFT, SENT, CHAT})

# Labels hidden from the label list but still valid on messages (Gmail's behaviour).
_HIDDEN_SYSTEM = frozenset({CHAT, *CATEGORIES})


@dataclass(slots=True)
class UserLabel:
    """A label created by the mailbox owner; ids look like ``Label_12``."""

    id: str
    name: str


def system_label_resource(label_id: str) -> dict[str, Any]:
    """The ``Label`` resource of a system label, as labels.list returns it."""
    resource: dict[str, Any] = {"id": label_id, "name": label_id, "type": "system"}
    if label_id not in _HIDDEN_SYSTEM:
        resource["messageListVisibility"] = "hide" if label_id in (SPAM, TRASH) else "show"
        resource["labelListVisibility"] = "labelShow"
    return resource


def user_label_resource(label: UserLabel) -> dict[str, Any]:
    return {
        "id": label.id,
        "name": label.name,
        "messageListVisibility": "show",
        "labelListVisibility": "labelShow",
        "type": "user",
    }


def order_labels(labels: set[str] | frozenset[str]) -> list[str]:
    """Stable output order: user labels, then system labels in Gmail's usual order."""
    system_rank = {label: i for i, label in enumerate(SYSTEM_LABELS)}
    return sorted(labels, key=lambda label: (label in system_rank, system_rank.get(label, 0),
                                             label))
