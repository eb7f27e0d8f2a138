"""The simulator: mailboxes, their mutations and the control operations. No I/O.

:class:`Simulator` is what tests, the demo and the HTTP server share. It owns the
mailboxes, the OAuth tokens, the clock, the quota and fault settings and the
counters; the server (:mod:`gmailsim.server`) only translates HTTP to calls on it.
All methods are thread-safe (one re-entrant lock), so a test may mutate a mailbox
while the server answers requests.

Message and thread ids are 16 lowercase hex digits, unique across the mailboxes of
one simulator, increasing, and deterministic for a given ``seed`` and sequence of
calls; a thread's id is the id of its first message, as in Gmail.
"""

from __future__ import annotations

import hashlib
import pickle
import threading
from collections import deque
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from gmailsim import labels as L
from gmailsim.clock import Clock
from gmailsim.counters import Counters
from gmailsim.errors import GmailError
from gmailsim.faults import FaultConfig
from gmailsim.ids import IdAllocator, seeded
from gmailsim.mime import (
    AttachmentSpec,
    Envelope,
    GeneratedMessage,
    MessageFactory,
    Person,
)
from gmailsim.model import HistoryRecord, MailboxState, StoredMessage
from gmailsim.oauth import DEFAULT_SCOPES, TokenStore
from gmailsim.payload import DEFAULT_LARGE_BODY_THRESHOLD, AttachmentIds, parse
from gmailsim.quota import DEFAULT_PROFILE, QuotaConfig, QuotaTracker
from gmailsim.seeding import plan_seed, reply_subject, seed_labels, unicode_subject
from gmailsim.sendas import UnknownSendAs
from gmailsim.snapshot import MailboxSnapshot, MessageSnapshot, message_snapshot
from gmailsim.watch import ChangeEvent, Watch, passes_filter

WATCH_TTL_SECONDS = 7 * 86_400
DEFAULT_RETENTION_SECONDS = 7 * 86_400
DEFAULT_INBOUND_LABELS = (L.INBOX, L.UNREAD, L.CATEGORY_PERSONAL)


class UnknownMailbox(KeyError):
    """No mailbox has this address."""


class UnknownMessage(KeyError):
    """The mailbox has no message (or thread) with this id."""


@dataclass(frozen=True, slots=True)
class Mailbox:
    """A created mailbox: its address and a fresh, valid refresh token."""

    address: str
    name: str
    refresh_token: str


@dataclass(slots=True)
class _ThreadInfo:
    """Conversation context the generator needs to write the next message."""

    subject: str
    counterpart: Person
    references: list[str] = field(default_factory=list)
    last_text: str | None = None


def _person(value: Person | str | None, fallback: Callable[[], Person]) -> Person:
    if isinstance(value, Person):
        return value
    if isinstance(value, str):
        from email.utils import parseaddr

        name, address = parseaddr(value)
        return Person(name, address or value)
    return fallback()


def _truth_from_parse(raw: bytes) -> tuple[str | None, str | None]:
    parsed = parse(raw)
    text = html = None
    for part in parsed.walk():
        if part.data is None or part.filename or part.disposition == "attachment":
            continue
        try:
            decoded = part.data.decode(part.charset or "us-ascii")
        except (LookupError, UnicodeDecodeError):
            continue
        if part.mime_type == "text/plain" and text is None:
            text = decoded
        elif part.mime_type == "text/html" and html is None:
            html = decoded
    return text, html


class Simulator:
    """Gmail mailboxes plus every control the tests need."""

    def __init__(
        self,
        *,
        seed: int = 0,
        clock: Clock | None = None,
        client_id: str | None = None,
        client_secret: str | None = None,
        access_token_ttl: int = 3599,
        history_retention_seconds: float | None = DEFAULT_RETENTION_SECONDS,
        history_retention_records: int | None = None,
        large_body_threshold: int = DEFAULT_LARGE_BODY_THRESHOLD,
        watch_ttl_seconds: float = WATCH_TTL_SECONDS,
        quota_profile: str = DEFAULT_PROFILE,
    ) -> None:
        self.random_seed = seed
        self.clock = clock or Clock()
        rng = seeded("gmailsim", seed)
        self.client_id = client_id or (
            f"{rng.randrange(10**11, 10**12)}-gmailsim.apps.googleusercontent.com")
        self.client_secret = client_secret or "GOCSPX-" + hashlib.sha256(
            f"secret:{seed}:{rng.random()}".encode()).hexdigest()[:28]
        self.tokens = TokenStore(self.client_id, self.client_secret, self.clock,
                                 access_ttl=access_token_ttl)
        self.quota = QuotaConfig(quota_profile)
        self.quota_tracker = QuotaTracker(self.quota, self.clock)
        self.faults = FaultConfig(seed=seed)
        self.counters = Counters()
        self.history_retention_seconds = history_retention_seconds
        self.history_retention_records = history_retention_records
        self.large_body_threshold = large_body_threshold
        self.watch_ttl_seconds = watch_ttl_seconds
        self.attachment_ids = AttachmentIds(hashlib.sha256(f"att:{seed}".encode()).digest())
        self.lock = threading.RLock()
        self.changes: deque[ChangeEvent] = deque(maxlen=10_000)
        self._ids = IdAllocator(seed)
        self._rng = rng
        self._factory = MessageFactory(seed)
        self._mailboxes: dict[str, MailboxState] = {}
        self._threads: dict[tuple[str, str], _ThreadInfo] = {}
        self._listeners: list[Callable[[ChangeEvent], None]] = []

    # --- mailboxes -----------------------------------------------------------------

    def create_mailbox(self, address: str, *, name: str | None = None,
                       scopes: Sequence[str] = DEFAULT_SCOPES) -> Mailbox:
        """A new, empty mailbox and a refresh token for it."""
        with self.lock:
            key = address.lower()
            if key in self._mailboxes:
                raise ValueError(f"mailbox {address} already exists")
            state = MailboxState(address, name,
                                 rng=seeded(self.random_seed, key))
            self._mailboxes[key] = state
        token = self.tokens.issue_refresh_token(address, scopes)
        return Mailbox(address, state.name, token)

    def state(self, address: str) -> MailboxState:
        """The live state of a mailbox (hold :attr:`lock` while using it)."""
        try:
            return self._mailboxes[address.lower()]
        except KeyError:
            raise UnknownMailbox(address) from None

    # --- keeping state across restarts (the demo) -----------------------------------

    _KEPT = ("_mailboxes", "_threads", "_ids", "_rng", "_factory")

    def dump_state(self) -> bytes:
        """The mailboxes, their history and every token, as bytes for
        :meth:`load_state` in a later process (a pickle: load only what you wrote)."""
        with self.lock:
            kept = {name: getattr(self, name) for name in self._KEPT}
            kept["tokens"] = self.tokens.dump()
            kept["client"] = (self.client_id, self.client_secret)
            return pickle.dumps(kept, protocol=pickle.HIGHEST_PROTOCOL)

    def load_state(self, data: bytes) -> None:
        """Take up the state :meth:`dump_state` gave, in place of this one's: the same
        mailboxes, history ids and tokens (the OAuth client must be the same)."""
        kept = pickle.loads(data)  # noqa: S301 - the demo's own file, written by dump_state
        if kept["client"] != (self.client_id, self.client_secret):
            raise ValueError("the state was dumped by a simulator with another OAuth client")
        with self.lock:
            for name in self._KEPT:
                setattr(self, name, kept[name])
            self.tokens.load(kept["tokens"])

    def addresses(self) -> list[str]:
        with self.lock:
            return [m.address for m in self._mailboxes.values()]

    def create_label(self, address: str, name: str) -> str:
        """A user label (or the existing one with that name); returns its id."""
        with self.lock:
            return self.state(address).create_label(name).id

    # --- send-as identities (users.settings.sendAs) -------------------------------------

    def add_send_as(self, address: str, email: str, *, display_name: str = "",
                    is_default: bool = False, treat_as_alias: bool = True,
                    verification_status: str = "accepted", reply_to: str = "",
                    signature: str = "") -> dict[str, Any]:
        """Add a custom "from" alias to the mailbox; its ``SendAs`` JSON.

        ``is_default`` makes it the default address (clearing ``isDefault`` on the
        others); only an ``accepted`` alias can be the default. ValueError for a bad
        or already present address or an unknown ``verification_status``.
        """
        with self.lock:
            return self.state(address).send_as.add(
                email, display_name=display_name, is_default=is_default,
                treat_as_alias=treat_as_alias, verification_status=verification_status,
                reply_to=reply_to, signature=signature).resource()

    def remove_send_as(self, address: str, email: str) -> None:
        """Remove an alias (the primary address gets the default back if the alias had it).

        ValueError for the primary address; :class:`UnknownSendAs` for an address the
        mailbox does not have.
        """
        with self.lock:
            self.state(address).send_as.remove(email)

    def send_as(self, address: str) -> list[dict[str, Any]]:
        """The mailbox's send-as identities as ``users.settings.sendAs.list`` lists them."""
        with self.lock:
            return self.state(address).send_as.resources()

    # --- tokens ----------------------------------------------------------------------

    def issue_refresh_token(self, address: str,
                            scopes: Sequence[str] = DEFAULT_SCOPES) -> str:
        self.state(address)
        return self.tokens.issue_refresh_token(address, scopes)

    def access_token(self, address: str, scopes: Sequence[str] = DEFAULT_SCOPES) -> str:
        """A valid access token for direct HTTP use (skips the OAuth round trip)."""
        self.state(address)
        return self.tokens.issue_access_token(address, scopes).token

    def revoke_refresh_token(self, address: str) -> None:
        """Revoke every grant of the mailbox: refreshing now answers ``invalid_grant``."""
        self.state(address)
        self.tokens.revoke_mailbox(address)

    def expire_access_tokens(self, address: str | None = None) -> int:
        return self.tokens.expire_access_tokens(address)

    def issue_authorization_code(self, address: str, *, redirect_uri: str,
                                 scopes: Sequence[str] = DEFAULT_SCOPES) -> str:
        """A one-time code, as Google's consent page would redirect with."""
        self.state(address)
        return self.tokens.issue_code(address, redirect_uri=redirect_uri, scopes=scopes)

    # --- clock -------------------------------------------------------------------------

    def advance(self, seconds: float) -> float:
        """Move the clock forward (expires tokens, watches, history); returns the time."""
        now = self.clock.advance(seconds)
        with self.lock:
            for state in self._mailboxes.values():
                self.trim_history(state)
        return now

    # --- mutations ---------------------------------------------------------------------

    def _store(self, state: MailboxState, generated: GeneratedMessage, *, thread_id: str | None,
               labels: Iterable[str], internal_date: int) -> StoredMessage:
        labels = list(labels)
        for label in labels:
            if not state.known_label(label):
                raise ValueError(f"unknown label {label!r}")
        if thread_id is not None and thread_id not in state.threads:
            raise UnknownMessage(thread_id)
        message_id = self._ids.next()
        message = StoredMessage(
            id=message_id, thread_id=thread_id or message_id, raw=generated.raw,
            parsed=parse(generated.raw), labels=set(labels), history_id=0,
            internal_date=internal_date, truth=generated)
        record = state.add_message(message, self.clock.now())
        self._after_change(state, record)
        return message

    def _thread_info(self, state: MailboxState, thread_id: str) -> _ThreadInfo:
        key = (state.address.lower(), thread_id)
        info = self._threads.get(key)
        if info is None:
            if thread_id not in state.threads:
                raise UnknownMessage(thread_id)
            first = state.thread_messages(thread_id)[0]
            subject = first.parsed.header("Subject") or ""
            sender = _person(first.parsed.header("From"), self._factory.person)
            msg_ids = [m.parsed.header("Message-ID") for m in state.thread_messages(thread_id)]
            info = _ThreadInfo(subject, sender, [m for m in msg_ids if m])
            self._threads[key] = info
        return info

    def deliver(
        self,
        address: str,
        *,
        thread_id: str | None = None,
        sender: Person | str | None = None,
        subject: str | None = None,
        text: str | None = None,
        html: str | None = None,
        attachments: Sequence[AttachmentSpec] = (),
        kind: str | None = None,
        raw: bytes | None = None,
        labels: Sequence[str] = DEFAULT_INBOUND_LABELS,
        internal_date: int | None = None,
    ) -> str:
        """New mail arrives (into ``thread_id``'s conversation or a new one); its id."""
        with self.lock:
            state = self.state(address)
            me = Person(state.name, state.address)
            date_ms = internal_date if internal_date is not None else self.clock.now_ms()
            if raw is not None:
                text_truth, html_truth = _truth_from_parse(raw)
                parsed = parse(raw)
                generated = GeneratedMessage(raw, "raw", parsed.header("Subject") or "",
                                             parsed.header("Message-ID") or "", (),
                                             text_truth, html_truth)
            else:
                info = self._thread_info(state, thread_id) if thread_id else None
                who = _person(sender, self._factory.person) if sender or not info \
                    else info.counterpart
                envelope = Envelope(
                    sender=who, to=[me],
                    subject=subject or (reply_subject(info.subject) if info
                                        else self._factory.subject()),
                    date=datetime.fromtimestamp(date_ms / 1000, UTC),
                    in_reply_to=info.references[-1] if info and info.references else None,
                    references=tuple(info.references[-10:]) if info else (),
                    quote=info.last_text if info else None,
                )
                generated = self._factory.compose(envelope, kind=kind, text=text, html=html,
                                                  attachments=attachments)
            message = self._store(state, generated, thread_id=thread_id, labels=labels,
                                  internal_date=date_ms)
            self._remember(state, message, generated)
            return message.id

    def reply(
        self,
        address: str,
        thread_id: str,
        *,
        text: str | None = None,
        html: str | None = None,
        kind: str | None = None,
        attachments: Sequence[AttachmentSpec] = (),
        labels: Sequence[str] = (L.SENT,),
        internal_date: int | None = None,
    ) -> str:
        """The mailbox answers in ``thread_id`` (labelled SENT); the new message's id."""
        return self._outbound(address, thread_id, labels=labels, remember=True, text=text,
                              html=html, kind=kind, attachments=attachments,
                              internal_date=internal_date)

    def draft(self, address: str, thread_id: str, *, text: str | None = None,
              html: str | None = None, kind: str | None = None) -> str:
        """A reply drafted in ``thread_id``: a message labelled DRAFT (``messagesAdded``)."""
        return self._outbound(address, thread_id, labels=(L.DRAFT,), remember=False,
                              text=text, html=html, kind=kind)

    def update_draft(self, address: str, message_id: str, *, text: str | None = None,
                     html: str | None = None) -> str:
        """Edit a draft. Gmail stores the edit as a new message: the new one is added and
        the old one deleted (two records). Returns the new message id."""
        with self.lock:
            old = self._message(self.state(address), message_id)
            if L.DRAFT not in old.labels:
                raise ValueError(f"message {message_id} is not a draft")
            new_id = self._outbound(address, old.thread_id, labels=(L.DRAFT,),
                                    remember=False, text=text, html=html)
            self.delete(address, message_id)
            return new_id

    def send_draft(self, address: str, message_id: str) -> int:
        """Send a draft: DRAFT removed and SENT added, one record, same message id."""
        with self.lock:
            state = self.state(address)
            message = self._message(state, message_id)
            if L.DRAFT not in message.labels:
                raise ValueError(f"message {message_id} is not a draft")
            record = state.change_labels(message_id, [L.SENT], [L.DRAFT], self.clock.now())
            self._after_change(state, record)
            if message.truth is not None:
                self._remember(state, message, message.truth)
            assert record is not None
            return record.id

    def _outbound(self, address: str, thread_id: str, *, labels: Sequence[str], remember: bool,
                  text: str | None = None, html: str | None = None, kind: str | None = None,
                  attachments: Sequence[AttachmentSpec] = (),
                  internal_date: int | None = None) -> str:
        with self.lock:
            state = self.state(address)
            info = self._thread_info(state, thread_id)
            date_ms = internal_date if internal_date is not None else self.clock.now_ms()
            envelope = Envelope(
                sender=Person(state.name, state.address), to=[info.counterpart],
                subject=reply_subject(info.subject),
                date=datetime.fromtimestamp(date_ms / 1000, UTC),
                in_reply_to=info.references[-1] if info.references else None,
                references=tuple(info.references[-10:]), quote=info.last_text, outbound=True,
            )
            generated = self._factory.compose(envelope, kind=kind, text=text, html=html,
                                              attachments=attachments)
            message = self._store(state, generated, thread_id=thread_id, labels=labels,
                                  internal_date=date_ms)
            if remember:
                self._remember(state, message, generated)
            return message.id

    def _remember(self, state: MailboxState, message: StoredMessage,
                  generated: GeneratedMessage) -> None:
        key = (state.address.lower(), message.thread_id)
        info = self._threads.get(key)
        if info is None:
            sender = _person(message.parsed.header("From"), self._factory.person)
            info = _ThreadInfo(generated.subject, sender)
            self._threads[key] = info
        if generated.message_id:
            info.references.append(generated.message_id)
        info.last_text = generated.text

    def _message(self, state: MailboxState, message_id: str) -> StoredMessage:
        try:
            return state.messages[message_id]
        except KeyError:
            raise UnknownMessage(message_id) from None

    def modify_labels(self, address: str, message_id: str, add: Iterable[str] = (),
                      remove: Iterable[str] = ()) -> int | None:
        """Add/remove labels (read = remove UNREAD, archive = remove INBOX).

        Returns the new history id, or None when nothing changed.
        """
        add, remove = list(add), list(remove)
        with self.lock:
            state = self.state(address)
            self._message(state, message_id)
            for label in (*add, *remove):
                if not state.known_label(label):
                    raise ValueError(f"unknown label {label!r}")
            record = state.change_labels(message_id, add, remove, self.clock.now())
            self._after_change(state, record)
            return record.id if record else None

    def mark_read(self, address: str, message_id: str) -> int | None:
        return self.modify_labels(address, message_id, remove=[L.UNREAD])

    def archive(self, address: str, message_id: str) -> int | None:
        return self.modify_labels(address, message_id, remove=[L.INBOX])

    def trash(self, address: str, message_id: str) -> int | None:
        """Move to trash: TRASH added, INBOX/SPAM removed, in one history record."""
        with self.lock:
            state = self.state(address)
            self._message(state, message_id)
            record = state.trash(message_id, self.clock.now())
            self._after_change(state, record)
            return record.id if record else None

    def untrash(self, address: str, message_id: str) -> int | None:
        """Out of the trash (TRASH removed; like Gmail, INBOX is not restored)."""
        with self.lock:
            state = self.state(address)
            self._message(state, message_id)
            record = state.untrash(message_id, self.clock.now())
            self._after_change(state, record)
            return record.id if record else None

    def delete(self, address: str, message_id: str) -> int:
        """Delete permanently: a ``messagesDeleted`` record. Returns its history id."""
        with self.lock:
            state = self.state(address)
            self._message(state, message_id)
            record = state.delete_message(message_id, self.clock.now())
            self._after_change(state, record)
            return record.id

    def expire_history(self, address: str, up_to: int | None = None) -> None:
        """Forget history up to ``up_to`` (default: all): older start ids then get 404."""
        with self.lock:
            self.state(address).expire_history(up_to)

    # --- seeding -------------------------------------------------------------------------

    def seed(self, address: str, *, messages: int, threads: int, seed: int = 0,
             days: float = 30.0) -> list[str]:
        """Fill the mailbox with ``messages`` messages in ``threads`` conversations.

        Content, participants, labels and dates are deterministic for ``seed`` (dates
        relative to the clock). Messages are added oldest first, each with its
        ``messagesAdded`` record. Returns the new message ids, oldest first.
        """
        if messages < 0 or threads < 0 or (messages and not threads) or threads > messages:
            raise ValueError("need 1 <= threads <= messages (or both 0)")
        with self.lock:
            state = self.state(address)
            plan = plan_seed(seeded(seed), messages, threads,
                              now_ms=self.clock.now_ms(), days=days)
            user_labels = [state.create_label(name).id for name in ("Support", "Follow-up")]
            factory = MessageFactory(seed)
            rng = seeded("labels", seed)
            me = Person(state.name, state.address)
            contexts: dict[int, tuple[str, _ThreadInfo]] = {}
            ids: list[str] = []
            for thread_no, position, date_ms in plan:
                outbound = position > 0 and rng.random() < 0.4
                entry = contexts.get(thread_no)
                thread_id: str | None = entry[0] if entry else None
                if entry is None:
                    info = _ThreadInfo(factory.subject(), factory.person())
                    if rng.random() < 0.2:
                        info.subject = unicode_subject(rng, info.subject)
                else:
                    info = entry[1]
                envelope = Envelope(
                    sender=me if outbound else info.counterpart,
                    to=[info.counterpart] if outbound else [me],
                    subject=info.subject if position == 0 else reply_subject(info.subject),
                    date=datetime.fromtimestamp(date_ms / 1000, UTC),
                    in_reply_to=info.references[-1] if info.references else None,
                    references=tuple(info.references[-10:]), quote=info.last_text,
                    outbound=outbound,
                )
                generated = factory.compose(envelope)
                labels = seed_labels(rng, outbound, user_labels)
                message = self._store(state, generated, thread_id=thread_id, labels=labels,
                                      internal_date=date_ms)
                info.references.append(generated.message_id)
                info.last_text = generated.text
                contexts[thread_no] = (message.thread_id, info)
                self._threads[(state.address.lower(), message.thread_id)] = info
                ids.append(message.id)
            return ids

    # --- watch ---------------------------------------------------------------------------

    def watch(self, address: str, topic: str, label_ids: Sequence[str] = (),
              behavior: str = "include") -> dict[str, str]:
        """Start (or replace) the mailbox's watch; Gmail's ``WatchResponse``."""
        if behavior not in ("include", "exclude"):
            raise ValueError("behavior must be include or exclude")
        with self.lock:
            state = self.state(address)
            expiration = int((self.clock.now() + self.watch_ttl_seconds) * 1000)
            state.watch = Watch(topic, tuple(label_ids), behavior, expiration,
                                state.history_id)
            return {"historyId": str(state.history_id), "expiration": str(expiration)}

    def stop(self, address: str) -> None:
        with self.lock:
            self.state(address).watch = None

    def active_watch(self, address: str) -> Watch | None:
        with self.lock:
            watch = self.state(address).watch
            if watch is None or watch.expiration_ms <= self.clock.now_ms():
                return None
            return watch

    def add_listener(self, listener: Callable[[ChangeEvent], None]) -> None:
        """Called (under the lock, keep it quick) for each change passing a watch."""
        with self.lock:
            self._listeners.append(listener)

    def remove_listener(self, listener: Callable[[ChangeEvent], None]) -> None:
        with self.lock:
            if listener in self._listeners:
                self._listeners.remove(listener)

    def trim_history(self, state: MailboxState) -> None:
        state.trim(keep_records=self.history_retention_records,
                   keep_seconds=self.history_retention_seconds, now=self.clock.now())

    def _after_change(self, state: MailboxState, record: HistoryRecord | None) -> None:
        if record is None:
            return
        self.trim_history(state)
        watch = state.watch
        if watch is None or watch.expiration_ms <= self.clock.now_ms():
            return
        if not passes_filter(watch, record):
            return
        event = ChangeEvent(state.address, state.history_id, watch.topic, self.clock.now())
        self.changes.append(event)
        for listener in list(self._listeners):
            listener(event)

    # --- reads -------------------------------------------------------------------------

    def profile(self, address: str) -> dict[str, Any]:
        with self.lock:
            state = self.state(address)
            return {
                "emailAddress": state.address,
                "messagesTotal": len(state.messages),
                "threadsTotal": len(state.threads),
                "historyId": str(state.history_id),
            }

    def history_id(self, address: str) -> int:
        with self.lock:
            return self.state(address).history_id

    def snapshot(self, address: str) -> MailboxSnapshot:
        """Exact state: every message with ids, labels, history id and ground truth."""
        with self.lock:
            state = self.state(address)
            messages = tuple(message_snapshot(m) for m in
                             sorted(state.messages.values(), key=lambda m: m.id))
            threads = {t.id: tuple(m.id for m in state.thread_messages(t.id))
                       for t in sorted(state.threads.values(), key=lambda t: t.id)}
            return MailboxSnapshot(state.address, state.history_id, messages, threads,
                                   {k: v.name for k, v in state.user_labels.items()})


__all__ = [
    "ChangeEvent",
    "GmailError",
    "IdAllocator",
    "Mailbox",
    "MailboxSnapshot",
    "MessageSnapshot",
    "Simulator",
    "UnknownMailbox",
    "UnknownMessage",
    "UnknownSendAs",
]
