"""A service's sender identities: the addresses its agents may answer from.

The web app reads ``service_sender_identities`` to offer and use a reply's From (each
thread's ``reply_from_email`` is chosen among them, see :mod:`delightbridge.sync.threads`). They
are the mailbox's Gmail "send as" addresses (``users.settings.sendAs.list``), refreshed
at connect and with each watch renewal, by the web app's rules:

* the address lower-cased and trimmed (entries without one are skipped), the display
  name trimmed;
* default: Gmail's default address (the primary one when Gmail marks none; the web app
  marks the primary address default too, so that an alias made default gives two);
* enabled: an alias whose verification Gmail has accepted (the primary address, which
  has no verification status, always).

:func:`identities_from` is that mapping, pure; :func:`refresh` fetches and stores. An
empty answer changes nothing (a mailbox always has its primary address: nothing listed
means Gmail did not say).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from typing import Any

from delightbridge.db import identities as identities_db
from delightbridge.sync.engine import SyncEngine
from delightbridge.sync.threads import SenderIdentity

log = logging.getLogger(__name__)


def identities_from(answer: Mapping[str, Any]) -> list[tuple[SenderIdentity, str]]:
    """(identity, display name) of each listed address, first occurrence of each."""
    entries = answer.get("sendAs")
    listed = [e for e in (entries if isinstance(entries, list) else []) if isinstance(e, Mapping)]
    marked = any(e.get("isDefault") for e in listed)
    found: dict[str, tuple[SenderIdentity, str]] = {}
    for entry in listed:
        address = str(entry.get("sendAsEmail") or "").strip().lower()
        if not address or address in found:
            continue
        status = entry.get("verificationStatus")
        enabled = str(status).lower() == "accepted" if status else True
        default = bool(entry.get("isDefault") if marked else entry.get("isPrimary"))
        name = str(entry.get("displayName") or "").strip()
        found[address] = (SenderIdentity(address, default, enabled), name)
    return list(found.values())


def identity_row_id(service_id: str, address: str) -> str:
    """``service_sender_identities.id``, as the web app forms it."""
    return f"sender-{service_id}-{address}"


async def refresh(engine: SyncEngine, service_id: str) -> int:
    """Replace the service's identities with Gmail's; return how many it has now."""
    service = await engine.service(service_id)
    answer = await engine.client_for(service).list_send_as()
    listed = identities_from(answer)
    if not listed:
        log.warning("Gmail listed no send-as address: sender identities kept", extra={
            "action": "identities.empty", "service": service_id})
        return 0
    await store(engine, service_id, listed)
    log.info("sender identities refreshed", extra={
        "action": "identities.refreshed", "service": service_id, "count": len(listed)})
    return len(listed)


async def store(engine: SyncEngine, service_id: str,
                listed: Sequence[tuple[SenderIdentity, str]]) -> None:
    """Upsert ``listed`` and remove the service's other identities, in one transaction.

    Rows keep their id and creation time across refreshes (the first enabled identity,
    the fallback default, stays the same one).
    """
    await identities_db.replace_all(engine.pool, service_id=service_id, identities=[
        identities_db.IdentityRow(identity_row_id(service_id, i.email), i.email, name,
                                  i.is_default, i.is_enabled) for i, name in listed])
