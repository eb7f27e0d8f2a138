"""Send-as identities (``users.settings.sendAs``) of one mailbox, and their ``SendAs`` JSON.

Every mailbox has its primary address from creation: ``isPrimary``, default until
an alias is made the default, and not removable. Custom "from" aliases are added
and removed by the simulator's controls. Exactly one identity is the default:
making an alias the default clears ``isDefault`` on the others, as Gmail does, and
removing the default alias gives the default back to the primary address. Only an
accepted alias can be the default (Gmail offers "make default" only once an alias
is verified).

The JSON follows the discovery document's ``SendAs`` schema and Gmail's encoding:
the primary address always carries ``displayName``, ``replyToAddress`` and
``signature`` (empty strings included) and ``isPrimary``, never
``verificationStatus``; elsewhere empty strings and false booleans are omitted.
``smtpMsa`` is not simulated (it is never set, so never sent).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

VERIFICATION_STATUSES = ("accepted", "pending", "verificationStatusUnspecified")


class UnknownSendAs(KeyError):
    """The mailbox has no send-as identity with this address."""


@dataclass(slots=True)
class SendAs:
    """One send-as identity (the primary address or a custom "from" alias)."""

    email: str
    display_name: str = ""
    reply_to: str = ""
    signature: str = ""
    is_primary: bool = False
    is_default: bool = False
    treat_as_alias: bool = False
    verification_status: str | None = None

    def resource(self) -> dict[str, Any]:
        """The ``SendAs`` JSON, members in Gmail's order."""
        out: dict[str, Any] = {"sendAsEmail": self.email}
        strings = (("displayName", self.display_name), ("replyToAddress", self.reply_to),
                   ("signature", self.signature))
        for key, value in strings:
            if value or self.is_primary:
                out[key] = value
        if self.is_primary:
            out["isPrimary"] = True
        if self.is_default:
            out["isDefault"] = True
        if self.treat_as_alias:
            out["treatAsAlias"] = True
        if self.verification_status is not None and not self.is_primary:
            out["verificationStatus"] = self.verification_status
        return out


def _check_address(email: str) -> None:
    local, at, domain = email.rpartition("@")
    if not (local and at and domain) or any(c.isspace() for c in email):
        raise ValueError(f"invalid send-as address {email!r}")


class SendAsSettings:
    """A mailbox's send-as identities, the primary first. Not thread-safe (the
    simulator serialises access)."""

    def __init__(self, address: str, display_name: str = "") -> None:
        self._identities: dict[str, SendAs] = {
            address.lower(): SendAs(address, display_name, is_primary=True, is_default=True)}

    def add(self, email: str, *, display_name: str = "", is_default: bool = False,
            treat_as_alias: bool = True, verification_status: str = "accepted",
            reply_to: str = "", signature: str = "") -> SendAs:
        """Add a custom "from" alias; raise ValueError for a bad or existing address."""
        _check_address(email)
        if email.lower() in self._identities:
            raise ValueError(f"send-as address {email} already exists")
        if verification_status not in VERIFICATION_STATUSES:
            raise ValueError("verification_status must be one of "
                             + ", ".join(VERIFICATION_STATUSES))
        if is_default and verification_status != "accepted":
            raise ValueError("only an accepted alias can be the default")
        if reply_to:
            _check_address(reply_to)
        alias = SendAs(email, display_name, reply_to, signature, is_primary=False,
                       is_default=False, treat_as_alias=treat_as_alias,
                       verification_status=verification_status)
        self._identities[email.lower()] = alias
        if is_default:
            self._make_default(alias)
        return alias

    def remove(self, email: str) -> None:
        """Remove an alias; the primary address cannot be removed (ValueError)."""
        identity = self.get(email)
        if identity.is_primary:
            raise ValueError(f"{identity.email} is the primary address; it cannot be removed")
        del self._identities[email.lower()]
        if identity.is_default:
            self._make_default(self.primary)

    def get(self, email: str) -> SendAs:
        try:
            return self._identities[email.lower()]
        except KeyError:
            raise UnknownSendAs(email) from None

    @property
    def primary(self) -> SendAs:
        return next(s for s in self._identities.values() if s.is_primary)

    def _make_default(self, target: SendAs) -> None:
        for identity in self._identities.values():
            identity.is_default = identity is target

    def resources(self) -> list[dict[str, Any]]:
        """Every identity's ``SendAs`` JSON, the primary first, then in order of addition."""
        return [identity.resource() for identity in self._identities.values()]
