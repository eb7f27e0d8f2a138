"""A stateful Gmail API v1 simulator (aiohttp) for tests, the demo and benchmarks.

:class:`Simulator` holds the mailboxes and every control (pure Python, no I/O);
:func:`gmailsim.server.serve` exposes it over HTTP with Gmail's wire format, batch,
OAuth, push notifications and the ``/_sim`` control API::

    sim = Simulator(seed=1)
    mailbox = sim.create_mailbox("support@example.com")
    sim.seed(mailbox.address, messages=200, threads=40)
    async with serve(sim) as running:
        # GMAIL_API_ENDPOINT=running.base_url, GOOGLE_OAUTH_TOKEN_URI=running.token_uri,
        # GOOGLE_CLIENT_ID/SECRET=sim.client_id/sim.client_secret,
        # refresh token: mailbox.refresh_token; batches go to running.batch_uri
        message_id = sim.deliver(mailbox.address)       # new mail, with its history
        sim.faults.error_rate = 0.05                     # 5 % of calls answer 500
        truth = sim.snapshot(mailbox.address)            # what the database must hold

Modules, one concept each: ``model`` (mailbox, history), ``history`` (history.list),
``resources`` (Message/Thread JSON, list methods), ``sendas`` (send-as identities),
``query`` (``q``), ``mime`` (deterministic messages), ``payload`` (MIME to Gmail parts),
``seeding``, ``snapshot``, ``watch``, ``oauth``, ``quota``, ``faults``, ``counters``,
``clock``, ``ids``, ``calls`` / ``methods`` / ``api`` (the HTTP pipeline), ``batch``,
``push``, ``control``, ``server``, ``cli``.
"""

from gmailsim.clock import Clock
from gmailsim.counters import Counters
from gmailsim.errors import GmailError
from gmailsim.faults import FaultConfig
from gmailsim.mime import AttachmentSpec, AttachmentTruth, Person
from gmailsim.quota import QuotaConfig, QuotaProfile, QuotaUsage
from gmailsim.simulator import (
    ChangeEvent,
    Mailbox,
    MailboxSnapshot,
    MessageSnapshot,
    Simulator,
    UnknownMailbox,
    UnknownMessage,
    UnknownSendAs,
)

__all__ = [
    "AttachmentSpec",
    "AttachmentTruth",
    "ChangeEvent",
    "Clock",
    "Counters",
    "FaultConfig",
    "GmailError",
    "Mailbox",
    "MailboxSnapshot",
    "MessageSnapshot",
    "Person",
    "QuotaConfig",
    "QuotaProfile",
    "QuotaUsage",
    "Simulator",
    "UnknownMailbox",
    "UnknownMessage",
    "UnknownSendAs",
]
