"""Hostile Pub/Sub messages through a running consumer (issue #9), found by hypothesis.

Pull: one :class:`~delightbridge.consumer.worker.Worker` pulls from the official Pub/Sub
emulator for the whole test and syncs into a real PostgreSQL from the Gmail simulator. Hypothesis
generates batches of messages (arbitrary bytes; JSON of the wrong shape or types;
notification-shaped JSON with unknown, malformed or unicode addresses and negative,
huge, float or non-numeric history ids; bodies of 300 kB and JSON nested past the
parser's limit; random attributes) mixed with valid notifications announcing a real
change of a mailbox, and publishes each batch with the real google-cloud-pubsub
publisher. Each case carries the outcomes its input allows, stated from the notification
format, not computed by the decoder. Properties, checked on the worker's outcome
observer (events), its metrics and the database:

* the worker never dies: its task is running and ``/healthz`` and ``/readyz`` answer 200;
* every message is acked on its first delivery, with a status its case allows: bad input
  as its reason (counted in ``messages_ignored_total``), none nacked, none redelivered
  (so none comes near the 5 delivery attempts before dead-lettering);
* every valid notification leads to a committed sync: the service's cursor reaches the
  mailbox's history id and the announced message is in the database;
* at the end nothing is outstanding: the worker holds no message, the scheduler nothing,
  a pull that lasts past the ack deadline gets nothing (the one bounded wait: an ack
  that never reached Pub/Sub has no event, it would only come back after the deadline),
  and nothing was dead-lettered.

Push: the same message cases as push requests to a worker in push mode, with fuzzed
tokens (none, garbage, unsigned, ``alg: none``, forged, signed with one wrong claim),
envelopes and headers: 401/403/400/413 as the contract says, 204 with the right outcome
for a well-formed envelope, never a 5xx, nothing refused reaches the handler.

The default run is derandomized (the same examples every time, no example database):
about 10 s of fuzzing for the pull test plus its 12 s final pull, 3 s for push.
``FUZZ_EXAMPLES=1000`` runs that many batches per test with a random seed instead
(hypothesis prints the falsifying batch and how to reproduce it on failure).

What it found is at the end of the file, each with a focused regression test.
"""

from __future__ import annotations

import asyncio
import base64
import json
import logging
import os
import re
import time
from collections import Counter
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import Any

import aiohttp
import pytest
from google.api_core.exceptions import DeadlineExceeded
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from delightbridge.consumer.notification import Reason, Rejection, decode_pull, decode_push
from tests.consumer.conftest import MAX_DELIVERY_ATTEMPTS, Env, RunningWorker
from tests.consumer.oidc import AUDIENCE, PUSH_ACCOUNT, CertsServer, SigningKey
from tests.plugins.pubsub import publisher, subscriber

SERVICES = {"service-fuzz-a": "alpha@fuzz.example", "service-fuzz-b": "beta@fuzz.example"}
ADDRESSES = tuple(SERVICES.values())
GONE = "gone@fuzz.example"  # a service whose Gmail grant was revoked
MAX_ID = 2**64 - 1  # Gmail history ids are unsigned 64-bit integers

FUZZ_EXAMPLES = int(os.environ.get("FUZZ_EXAMPLES", "0"))
EXAMPLES = FUZZ_EXAMPLES or 80
SETTLE_WITHIN = 30.0  # seconds for one batch to be settled: generous for a loaded CI box

#: Everything a message that can never become a sync may be acked as.
REJECTED = frozenset(r.value for r in Reason) - {Reason.UP_TO_DATE.value}
NOT_AN_ADDRESS = frozenset({Reason.BAD_EMAIL.value, Reason.UNKNOWN_ADDRESS.value})


# --- cases ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Case:
    """One message to publish, and the statuses it may be acked with."""

    kind: str
    data: bytes | None  # None: a notification for ``built`` made when published
    expect: frozenset[str]
    attributes: dict[str, str] = field(default_factory=dict)
    address: str | None = None  # a known mailbox this message makes the consumer sync
    built: str | None = None  # the mailbox of a notification made when published
    variant: str = "same"  # how the address is written in a built notification
    as_text: bool = False  # built notification: historyId as a JSON string
    wrap: bool = False  # built notification: sent as base64 text of the JSON
    permille: int = 1000  # "beyond": where between the mailbox's and the largest id;
    #                       "stale": where between 1 and the stored cursor

    def __repr__(self) -> str:  # what hypothesis prints for a falsifying batch
        shown = self.data if self.data is None or len(self.data) <= 200 else (
            self.data[:200] + b"...")
        return (f"Case({self.kind}, data={shown!r}, attributes={self.attributes!r}, "
                f"expect={sorted(self.expect)}, built={self.built!r}, "
                f"variant={self.variant!r}, as_text={self.as_text}, wrap={self.wrap}, "
                f"permille={self.permille})")

    def _repr_pretty_(self, printer: Any, cycle: bool) -> None:  # hypothesis's printer
        printer.text(repr(self))


def encoded(document: Any) -> bytes:
    return json.dumps(document).encode()


_text = st.text(max_size=40)
_unicode = st.text(st.characters(codec=None), max_size=30)  # any code point, surrogates too
_surrogate = st.sampled_from(["\ud800", "\udbff\u0041", "\udfff"])
_control = st.sampled_from(["\x00", "\x01", "\x1f", "\x7f", "\u0085", "\u2028", "\ufeff"])
_scalar = st.one_of(st.none(), st.booleans(), st.integers(), st.floats(), _text)
_json_values = st.recursive(
    _scalar, lambda inner: st.lists(inner, max_size=4) | st.dictionaries(_text, inner, max_size=4),
    max_leaves=12)
_valid_ids = st.integers(min_value=1, max_value=10**9)


def _digits(text: str) -> bool:
    return re.fullmatch(r"[0-9]+", text) is not None


#: historyId values that are not a positive 64-bit integer (nor its decimal string).
_bad_ids = st.one_of(
    st.integers(max_value=0),
    st.integers(min_value=MAX_ID + 1, max_value=2**200),
    st.floats(allow_nan=True, allow_infinity=True),
    st.booleans(),
    st.text(st.characters(codec=None), min_size=1, max_size=24).filter(lambda t: not _digits(t)),
    st.sampled_from(["-1", "0", "1.5", "1e9", "0x10", " 12", "12 ", "\u0663", "١٢٣", "+5",
                     str(MAX_ID + 1), "9" * 40]),
    st.lists(_scalar, max_size=3), st.dictionaries(_text, _scalar, max_size=3),
)

#: Strings that are not this deployment's addresses: any code point, controls, NUL,
#: lone surrogates, with or without an @ and a dot.
_junk_addresses = st.one_of(
    _unicode,
    st.builds(lambda a, b, c: f"{a}@{b}.{c}", _unicode, _unicode, _unicode),
    st.builds(lambda a, x, b: f"{a}{x}@{b}.example", _text, _control | _surrogate, _text),
    st.builds(lambda a, x: f"alpha{x}@fuzz.example{a}", _text, _control | _surrogate),
    st.just("a" * 400 + "@fuzz.example"),
).filter(lambda a: a.strip().lower() not in (*ADDRESSES, GONE, ""))  # "": missing


def _json_case(kind: str, document: Any, expect: frozenset[str]) -> st.SearchStrategy[Case]:
    """A JSON document as the data, or (objects) as base64 text of it, as some
    publishers send (a double encoding the consumer accepts)."""
    wraps = st.booleans() if isinstance(document, dict) else st.just(False)
    return wraps.map(lambda wrap: Case(
        kind + ("+b64" if wrap else ""),
        base64.b64encode(encoded(document)) if wrap else encoded(document), expect))


@st.composite
def _wrong_shape(draw: st.DrawFn) -> Case:
    top = draw(_json_values.filter(lambda v: not isinstance(v, dict)))
    return Case("not_object", encoded(top), frozenset({Reason.NOT_OBJECT.value}))


@st.composite
def _missing_field(draw: st.DrawFn) -> Case:
    document: dict[str, Any] = draw(st.dictionaries(_text, _json_values, max_size=4))
    email = draw(st.sampled_from([*ADDRESSES, "someone@elsewhere.example"]))
    present = draw(st.sampled_from(["emailAddress", "historyId", None]))
    empty = draw(st.sampled_from([None, ""]))
    document.pop("emailAddress", None)
    document.pop("historyId", None)
    if present == "emailAddress":
        document["emailAddress"] = email
        if draw(st.booleans()):
            document["historyId"] = empty
    elif present == "historyId":
        document["historyId"] = draw(_valid_ids)
        if draw(st.booleans()):
            document["emailAddress"] = empty
    return draw(_json_case("missing_field", document, frozenset({Reason.MISSING_FIELD.value})))


@st.composite
def _email_of_wrong_type(draw: st.DrawFn) -> Case:
    email = draw(st.one_of(st.integers(), st.floats(allow_nan=False), st.booleans(),
                           st.lists(st.sampled_from(ADDRESSES), min_size=1, max_size=2),
                           st.just({"address": ADDRESSES[0]})))
    document = {"emailAddress": email, "historyId": draw(_valid_ids)}
    return draw(_json_case("email_type", document, frozenset({Reason.BAD_EMAIL.value})))


@st.composite
def _bad_history_id(draw: st.DrawFn) -> Case:
    email = draw(st.sampled_from([*ADDRESSES, GONE, "someone@elsewhere.example"]))
    history_id = draw(_bad_ids)
    document = {"emailAddress": email, "historyId": history_id}
    return draw(_json_case("bad_history_id", document,
                           frozenset({Reason.BAD_HISTORY_ID.value})))


@st.composite
def _unknown_address(draw: st.DrawFn) -> Case:
    email = draw(st.emails().filter(lambda a: a.lower() not in (*ADDRESSES, GONE)))
    history_id = draw(_valid_ids | _valid_ids.map(str))
    document = {"emailAddress": email, "historyId": history_id}
    return draw(_json_case("unknown_address", document,
                           frozenset({Reason.UNKNOWN_ADDRESS.value})))


@st.composite
def _junk_address(draw: st.DrawFn) -> Case:
    document = {"emailAddress": draw(_junk_addresses), "historyId": draw(_valid_ids)}
    return draw(_json_case("junk_address", document, NOT_AN_ADDRESS))


@st.composite
def _disconnected(draw: st.DrawFn) -> Case:
    document = {"emailAddress": draw(st.sampled_from([GONE, GONE.upper()])),
                "historyId": draw(st.integers(min_value=1, max_value=MAX_ID))}
    return draw(_json_case("disconnected", document, frozenset({Reason.DISCONNECTED.value})))


def _huge_body() -> st.SearchStrategy[Case]:
    document = {"emailAddress": "someone@elsewhere.example", "historyId": 7,
                "padding": "x" * 300_000}
    return _json_case("huge_body", document, frozenset({Reason.UNKNOWN_ADDRESS.value}))


def _deeply_nested() -> bytes:
    """Valid JSON nested deeper than the parser's recursion limit."""
    return b'{"a":' * 5000 + b"1" + b"}" * 5000


def _unclosed() -> bytes:
    return b"[" * 100_000


_raw = st.one_of(
    st.binary(max_size=200),
    st.sampled_from([b"", b" ", b"\x00", b"{", b"[", b"null", b"{}", b"[]", b'""', b"\xff\xfe",
                     b"e30=", b"eyJ9", b"====", b"\xef\xbb\xbf{}"]),
    st.builds(_deeply_nested), st.builds(_unclosed),
    _unicode.map(lambda t: t.encode("utf-8", "surrogatepass")),  # lone surrogates: bad UTF-8
).map(lambda data: Case("raw", data, REJECTED))

#: Notifications for a known mailbox, built when published: "valid" after a new message
#: was delivered to it (its historyId is then the mailbox's), "beyond" with an id past
#: the mailbox's (up to the largest 64-bit one), "stale" with one the stored cursor
#: already covers (``permille`` of it).
_EXPECT_BUILT = {"valid": frozenset({"synced", Reason.UP_TO_DATE.value}),
                 "beyond": frozenset({"synced"}),
                 "stale": frozenset({Reason.UP_TO_DATE.value})}


def _built(kind: str) -> st.SearchStrategy[Case]:
    return st.builds(
        lambda address, variant, as_text, wrap, permille: Case(
            kind, None, _EXPECT_BUILT[kind], address=None if kind == "stale" else address,
            built=address, variant=variant, as_text=as_text, wrap=wrap, permille=permille),
        st.sampled_from(ADDRESSES), st.sampled_from(["same", "upper", "spaced"]),
        st.booleans(), st.booleans(), st.integers(min_value=0, max_value=1000))


_attributes = st.dictionaries(
    st.text(st.characters(codec="utf-8"), min_size=1, max_size=40)
    .filter(lambda k: not k.lower().startswith("goog")),
    st.text(st.characters(codec="utf-8"), max_size=100), max_size=6)

_case = st.one_of(_raw, _wrong_shape(), _missing_field(), _email_of_wrong_type(),
                  _bad_history_id(), _unknown_address(), _junk_address(), _disconnected(),
                  _built("valid"), _built("valid"), _built("beyond"), _built("stale"),
                  _huge_body())
_message = st.builds(lambda case, attributes: Case(**{**case.__dict__, "attributes": attributes}),
                     _case, _attributes)
batches = st.lists(_message, min_size=1, max_size=10)


# --- the harness ---------------------------------------------------------------------------


@dataclass
class Ledger:
    """Every message published in the test, by Pub/Sub message id."""

    cases: dict[str, Case] = field(default_factory=dict)
    announced: dict[str, set[str]] = field(default_factory=dict)  # address -> message ids


class Fuzzer:
    def __init__(self, env: Env, running: RunningWorker, loop: asyncio.AbstractEventLoop
                 ) -> None:
        self.env = env
        self.running = running
        self.loop = loop
        self.ledger = Ledger()
        self.publisher = publisher(env.pubsub.host)

    # On the hypothesis thread.
    def run_batch(self, batch: list[Case]) -> None:
        asyncio.run_coroutine_threadsafe(self.batch(batch), self.loop).result(
            timeout=SETTLE_WITHIN + 30)

    def _publish(self, data: bytes, attributes: dict[str, str]) -> Future[str]:
        future: Future[str] = self.publisher.publish(self.env.pubsub.topic, data, **attributes)
        return future

    async def batch(self, batch: list[Case]) -> None:
        futures = []
        for case in batch:
            data = case.data if case.data is not None else await self._build(case)
            if not data and not case.attributes:
                # Pub/Sub refuses a message with neither data nor attributes (publishing
                # raises): what arrives empty carries at least one attribute.
                case = Case(**{**case.__dict__, "attributes": {"empty": ""}})
            futures.append((case, self._publish(data, case.attributes)))
        sent: dict[str, Case] = {}
        for case, future in futures:
            message_id = await asyncio.to_thread(future.result, 30)
            sent[message_id] = case
        self.ledger.cases.update(sent)
        recorder = self.running.recorder
        await recorder.wait_for(lambda r: all(self._settled(r.of(m)) for m in sent),
                                within=SETTLE_WITHIN)
        for message_id, case in sent.items():
            deliveries = recorder.of(message_id)
            statuses = [(o.ack, o.status) for _, o in deliveries]
            assert statuses[-1][0], f"{case!r} never acked: {statuses}"
            assert len(deliveries) == 1, f"{case!r} delivered {len(deliveries)} times: {statuses}"
            assert statuses[0][1] in case.expect, f"{case!r} acked as {statuses[0][1]}"
        await self.check_alive()
        for address in {c.address for c in sent.values() if c.address}:
            await self.check_synced(address)

    async def _build(self, case: Case) -> bytes:
        address = case.built
        assert address is not None
        if case.kind == "valid":
            new_id = self.env.sim.deliver(address, subject="Fuzzed company",
                                          text="Announced by a fuzzed batch")
            self.ledger.announced.setdefault(address, set()).add(new_id)
            history_id = self.env.sim.history_id(address)
        elif case.kind == "beyond":
            current = self.env.sim.history_id(address)
            history_id = current + 1 + (MAX_ID - current - 1) * case.permille // 1000
        else:  # stale: the stored cursor only grows, so it covers this id when handled
            cursor = int(await self.env.pool.fetchval(
                "SELECT last_history_id FROM gmail_accounts WHERE lower(email) = $1", address))
            history_id = max(1, cursor * case.permille // 1000)
        written = {"same": address, "upper": address.upper(),
                   "spaced": f"  {address}\t"}[case.variant]
        data = encoded({"emailAddress": written,
                        "historyId": str(history_id) if case.as_text else history_id})
        return base64.b64encode(data) if case.wrap else data

    @staticmethod
    def _settled(deliveries: list[Any]) -> bool:
        """Acked, or nacked as many times as Pub/Sub delivers before dead-lettering."""
        return any(o.ack for _, o in deliveries) or len(deliveries) >= MAX_DELIVERY_ATTEMPTS

    async def check_alive(self) -> None:
        assert not self.running.task.done(), "the worker ended"
        async with aiohttp.ClientSession() as session:
            for path in ("/healthz", "/readyz"):
                async with session.get(f"http://127.0.0.1:{self.running.port}{path}") as r:
                    assert r.status == 200, f"{path}: {r.status} {await r.text()}"

    async def check_synced(self, address: str) -> None:
        """The sync the notifications led to committed: cursor at the mailbox's history
        id, every announced message mirrored."""
        service = next(s for s, a in SERVICES.items() if a == address)
        cursor = await self.env.pool.fetchval(
            "SELECT last_history_id FROM gmail_accounts WHERE id = $1", service)
        assert cursor == str(self.env.sim.history_id(address))
        missing = self.ledger.announced.get(address, set()) - set(
            await self.env.mirrored(service))
        assert not missing, f"announced but not synced: {missing}"

    def close(self) -> None:
        self.publisher.transport.close()


async def ack_deadline(env: Env) -> int:
    """The subscription's ack deadline, as the emulator has it."""
    def read() -> int:
        client = subscriber(env.pubsub.host)
        try:
            return int(client.get_subscription(
                request={"subscription": env.pubsub.subscription}).ack_deadline_seconds)
        finally:
            client.close()

    return await asyncio.to_thread(read)


def final_pull(env: Env, seconds: float) -> list[Any]:
    """What the subscription delivers within ``seconds`` (long-polls; blocking)."""
    client = subscriber(env.pubsub.host)
    deadline = time.monotonic() + seconds
    try:
        while (left := deadline - time.monotonic()) > 0.1:
            try:
                response = client.pull(request={"subscription": env.pubsub.subscription,
                                                "max_messages": 100}, timeout=left)
            except DeadlineExceeded:
                return []
            if response.received_messages:
                return [m.message for m in response.received_messages]
        return []
    finally:
        client.close()


def _settings() -> Callable[[Any], Any]:
    common: dict[str, Any] = {
        "max_examples": EXAMPLES, "deadline": None, "database": None, "print_blob": True,
        "suppress_health_check": [HealthCheck.too_slow, HealthCheck.data_too_large,
                                  HealthCheck.filter_too_much],
    }
    if FUZZ_EXAMPLES:
        return settings(**common)
    return settings(derandomize=True, **common)


# The worker's threads (gRPC, the streaming pull) draw from the global random module
# while hypothesis generates on its own thread; hypothesis would blame its strategies.
@pytest.mark.filterwarnings(
    "ignore:Do not use the `random` module inside strategies:"
    "hypothesis.errors.HypothesisDeprecationWarning")
async def test_hostile_messages_never_crash_the_consumer_nor_come_back(env: Env) -> None:
    for service, address in SERVICES.items():
        await env.connect(service, address, messages=3, threads=2, watch=False)
    await env.pool.execute(
        "INSERT INTO gmail_accounts (id, name, email) VALUES ('service-fuzz-gone', 'Gone', $1)",
        GONE)
    await env.pool.execute(
        "INSERT INTO delightbridge_sync.services (account_id, disconnected_reason) "
        "VALUES ('service-fuzz-gone', 'revoked')")
    loop = asyncio.get_running_loop()
    async with env.run() as running:
        fuzzer = Fuzzer(env, running, loop)
        try:
            @_settings()
            @given(batches)
            def fuzz(batch: list[Case]) -> None:
                fuzzer.run_batch(batch)

            fuzzing = time.monotonic()
            await asyncio.to_thread(fuzz)
            fuzzed = time.monotonic() - fuzzing
        finally:
            await asyncio.to_thread(fuzzer.close)
        ledger, recorder = fuzzer.ledger, running.recorder
        # Nothing outstanding: a pull finds no message to (re)deliver, even once the ack
        # deadline of the last batch has passed (an ack that never reached Pub/Sub would
        # come back by then; its absence has no event, so this one wait is bounded) ...
        draining = time.monotonic()
        leftover = await asyncio.to_thread(final_pull, env, await ack_deadline(env) + 2)
        drained = time.monotonic() - draining
        assert leftover == [], [m.message_id for m in leftover]
        # ... and no message was ever delivered twice, nor one not published here.
        delivered = Counter(d.message_id for d, _ in recorder.outcomes)
        assert set(delivered) == set(ledger.cases)
        assert max(delivered.values()) == 1
        assert not running.task.done()
        scheduler = running.worker.scheduler
        assert scheduler is not None
        assert (running.worker.in_flight, scheduler.running, scheduler.waiting) == (0, 0, 0)
        # The metrics count what the observer saw: every message acked, every bad one
        # counted under its reason, none nacked.
        total = len(ledger.cases)
        assert running.sample("delightbridge_consumer_messages_received_total",
                              source="pull") == total
        assert running.sample("delightbridge_consumer_messages_acked_total",
                              source="pull") == total
        statuses = Counter(o.status for _, o in recorder.outcomes)
        for reason in Reason:
            assert running.sample("delightbridge_consumer_messages_ignored_total",
                                  reason=reason.value) == statuses.get(reason.value, 0)
        kinds = Counter(c.kind.removesuffix("+b64") for c in ledger.cases.values())
        attributed = sum(1 for c in ledger.cases.values() if c.attributes)
        print(f"{total} messages ({attributed} with attributes) in {EXAMPLES} batches; "
              f"in {fuzzed:.1f} s, then {drained:.1f} s of final pull; "
              f"kinds {dict(sorted(kinds.items()))}; outcomes {dict(sorted(statuses.items()))}")
    assert await env.pubsub.dead_lettered() == []
    for service, address in SERVICES.items():
        await env.assert_mirrors(service, address)


# --- what the fuzz found ---------------------------------------------------------------------

#: Addresses PostgreSQL cannot take as a query parameter. Before the fix, the lookup failed
#: on every delivery (NUL: CharacterNotInRepertoireError; a lone surrogate: asyncpg's
#: DataError, it cannot encode it), so the message was nacked as "database_error" on each
#: delivery until Pub/Sub dead-lettered it.
UNSTORABLE = ["support\x00@noji.example", "\ud800support@noji.example",
              "support@noji.example\x00", "sup\udfffport@noji.example"]


@pytest.mark.parametrize("address", UNSTORABLE)
def test_an_address_with_nul_or_a_lone_surrogate_is_not_an_address(address: str) -> None:
    data = encoded({"emailAddress": address, "historyId": 5})
    assert decode_pull(data) == Rejection(Reason.BAD_EMAIL,
                                          "emailAddress is not an email address")
    assert isinstance(decode_push(base64.b64encode(data).decode()), Rejection)


async def test_unstorable_addresses_are_acked_once_as_bad_email(env: Env) -> None:
    address = "support@noji.example"
    await env.connect("service-noji", address, watch=False)
    async with env.run() as running:
        sent = [await env.pubsub.send({"emailAddress": a, "historyId": 5}) for a in UNSTORABLE]
        env.sim.deliver(address, subject="After the hostile ones")
        good = await env.pubsub.send({"emailAddress": address,
                                      "historyId": env.sim.history_id(address)})
        await running.recorder.wait_for_message(good, status="synced")
        for message_id in sent:
            outcome = await running.recorder.wait_for_message(message_id)
            assert (outcome.ack, outcome.status) == (True, "bad_email")
        assert running.sample("delightbridge_consumer_messages_ignored_total",
                              reason="bad_email") == len(UNSTORABLE)
        assert await env.pubsub.backlog() == []
        assert not running.task.done()
    assert all(len(running.recorder.of(m)) == 1 for m in sent)
    assert await env.pubsub.dead_lettered() == []
    await env.assert_mirrors("service-noji", address)


# --- the push endpoint -------------------------------------------------------------------------
#
# The same message cases, delivered as push requests to POST /pubsub/push of a worker in
# push mode, with fuzzed tokens, envelopes and headers. The contract
# (delightbridge/consumer/push.py):
# 401/403 for a refused token (checked first), 400 for a malformed envelope, 413 for a
# body over 1 MiB, 204 once a well-formed envelope's data is handled (bad data is acked,
# as in pull mode); 503 only for what a retry may fix, which no case here provokes; never
# another 5xx. Whatever is refused never reaches the handler.

ISSUERS = ("accounts.google.com", "https://accounts.google.com")
KID = "\x00kid"  # in a fuzzed token header: replaced by the real key id when sent


@dataclass(frozen=True)
class Auth:
    kind: str
    refused: int | None  # the status the token must get, None when it is accepted
    header: str | None = None  # a fixed Authorization value ("garbage")
    segments: tuple[Any, Any, bytes] | None = None  # "unsigned": header, claims, signature
    claims: dict[str, Any] = field(default_factory=dict)  # "claims": signed, these replaced
    scheme: str = "Bearer"


@dataclass(frozen=True)
class Push:
    auth: Auth
    kind: str  # "envelope", or what is wrong with the body
    status: int  # expected when the token is accepted
    case: Case | None = None  # "envelope": the message it carries
    body: bytes | None = None  # anything else: the body as sent
    envelope: dict[str, Any] = field(default_factory=dict)  # fuzzed envelope fields
    message: dict[str, Any] = field(default_factory=dict)  # fuzzed message fields
    suffix: str = ""  # appended to the message id
    id_key: str = "messageId"
    b64: str = "standard"  # how the data is base64-encoded
    headers: dict[str, str] = field(default_factory=dict)

    def _repr_pretty_(self, printer: Any, cycle: bool) -> None:
        shown = self.body if self.body is None or len(self.body) <= 200 else self.body[:200]
        printer.text(f"Push({self.auth!r}, {self.kind}, {self.status}, {self.case!r}, "
                     f"body={shown!r}, envelope={self.envelope!r}, message={self.message!r}, "
                     f"suffix={self.suffix!r}, id_key={self.id_key}, b64={self.b64}, "
                     f"headers={self.headers!r})")


_ABSENT = object()
_VALID = Auth("valid", None)
_printable = st.text(st.characters(min_codepoint=0x20, max_codepoint=0x7E), max_size=60)
_b64url = st.binary(max_size=64).map(lambda b: base64.urlsafe_b64encode(b).rstrip(b"="))


def _not(*values: object) -> Callable[[object], bool]:
    """Values of any JSON type that equal none of ``values`` (and are not bool-equal)."""
    return lambda v: not any(type(v) is type(x) and v == x for x in values)


_past = st.integers(min_value=-(2**40), max_value=0).map(lambda d: int(time.time()) - 3600 + d)
_future = st.integers(min_value=3600, max_value=2**40).map(lambda d: int(time.time()) + d)
_non_numbers = st.one_of(_text, st.lists(_scalar, max_size=3),
                         st.dictionaries(_text, _scalar, max_size=3))

#: One claim of a token signed by the real key made wrong, and the status it must get.
_bad_claims = st.one_of(
    st.tuples(st.just("iss"), _json_values.filter(_not(*ISSUERS)), st.just(401)),
    st.tuples(st.just("aud"), _json_values.filter(_not(AUDIENCE)), st.just(401)),
    st.tuples(st.just("exp"), _past | _non_numbers | st.none() | st.booleans(), st.just(401)),
    st.tuples(st.just("iat"), _future | _non_numbers | st.none(), st.just(401)),
    st.tuples(st.just("email"), _json_values.filter(
        lambda v: not (isinstance(v, str) and v.lower() == PUSH_ACCOUNT)), st.just(403)),
    st.tuples(st.just("email_verified"), _json_values.filter(lambda v: v is not True),
              st.just(403)),
).map(lambda c: Auth("claims", c[2], claims={c[0]: c[1]}))

_unsigned = st.builds(
    lambda header, claims, signature: Auth("unsigned", 401,
                                           segments=(header, claims, signature)),
    st.fixed_dictionaries({"alg": st.sampled_from(["RS256", "none", "HS256", "ES256", ""])
                           | _json_values},
                          optional={"kid": st.just(KID) | _json_values, "typ": _json_values}),
    st.fixed_dictionaries({}, optional={"iss": st.sampled_from(ISSUERS), "aud": st.just(AUDIENCE),
                                        "email": st.just(PUSH_ACCOUNT),
                                        "email_verified": st.just(True),
                                        "iat": st.just(int(time.time())),
                                        "exp": _future}) | _json_values,
    _b64url)

#: A JWT whose header is JSON nested deeper than the parser's recursion limit.
_nested_jwt = st.builds(
    lambda depth, bracket: Auth("garbage", 401, header="Bearer " + base64.urlsafe_b64encode(
        bracket * depth).decode().rstrip("=") + ".e30.c2ln"),
    st.integers(900, 5000), st.sampled_from([b"[", b'{"a":']))

_refused = st.one_of(
    st.just(Auth("none", 401)),
    _nested_jwt,
    _printable.map(lambda h: Auth("garbage", 401, header=h)),
    st.builds(lambda s, h: Auth("garbage", 401, header=f"{s} {h}"),
              st.sampled_from(["Bearer", "Basic", "bearer"]), _printable),
    _unsigned,
    st.just(Auth("forged", 401)),
    _bad_claims,
)
_accepted = st.sampled_from(["Bearer", "bearer", "BEARER"]).map(
    lambda s: Auth("valid", None, scheme=s))
#: Three requests in four carry a valid token, so that most bodies reach the handler.
_auths = st.integers(0, 3).flatmap(lambda n: _refused if n == 0 else _accepted)

#: Bodies that are not a push envelope (400), or too big to read (413).
_malformed = st.one_of(
    st.binary(max_size=200).map(lambda b: Push(_VALID, "bytes", 400, body=b)),
    _json_values.filter(lambda v: not isinstance(v, dict)).map(
        lambda v: Push(_VALID, "not_object", 400, body=encoded(v))),
    st.dictionaries(_text.filter(lambda k: k != "message"), _json_values, max_size=4).map(
        lambda d: Push(_VALID, "no_message", 400, body=encoded(d))),
    _json_values.filter(lambda v: not isinstance(v, dict)).map(
        lambda v: Push(_VALID, "message_not_object", 400, body=encoded({"message": v}))),
    st.builds(lambda data: Push(_VALID, "data_not_text", 400, body=encoded(
        {"message": {"messageId": "x", "data": data}})),
        _json_values.filter(lambda v: v is not None and not isinstance(v, str))),
    st.builds(lambda mid: Push(_VALID, "bad_message_id", 400, body=encoded(
        {"message": {"data": "e30=", **({} if mid is _ABSENT else {"messageId": mid})}})),
        st.just(_ABSENT) | _json_values.filter(lambda v: not isinstance(v, str) or v == "")),
    # JSON nested past the parser's recursion limit (a RecursionError, once a 500).
    st.builds(lambda depth, wrap: Push(_VALID, "nested", 400, body=wrap + b"[" * depth),
              st.integers(900, 200_000),
              st.sampled_from([b"", b'{"message": ', b'{"message": {"data": '])),
    # A header the HTTP parser refuses (over 32 KiB): 431 before anything else.
    st.integers(33 * 1024, 64 * 1024).map(lambda n: Push(
        _VALID, "huge_header", 431, body=b"{}", headers={"X-Huge": "h" * n})),
    st.just(Push(_VALID, "too_big", 413, body=encoded(
        {"message": {"messageId": "big", "data": "A" * (1024 * 1024 + 10)}}))),
    # A body that does not decode as its Content-Encoding says.
    st.sampled_from(["gzip", "deflate", "br", "zstd"]).map(lambda e: Push(
        _VALID, "bad_encoding", 400, body=encoded({"message": {"messageId": "enc",
                                                              "data": "e30="}}),
        headers={"Content-Encoding": e})),
)

_PUSHED = _case.filter(lambda c: not c.wrap and not c.kind.endswith("+b64"))  # pull only
_FRAMING = {"content-length", "transfer-encoding", "content-encoding", "host", "authorization",
            "connection", "expect", "upgrade", "te", "trailer", "keep-alive"}
_header_names = st.text(st.sampled_from("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
                                        "0123456789-_.!#$%&'*+^`|~"), min_size=1, max_size=20)
_headers = st.dictionaries(_header_names.filter(lambda n: n.lower() not in _FRAMING),
                           _printable, max_size=4)
_timestamps = st.one_of(
    st.datetimes(timezones=st.timezones()).map(lambda d: d.isoformat()),
    st.sampled_from(["2026-11-23T22:30:00.123456789Z", "2026-11-23T22:30:00z",
                     "0001-01-01T00:00:00Z", "9999-12-31T23:59:59.999999999Z", "yesterday", ""]),
    _json_values)

_envelope = st.builds(
    lambda case, extra, message, suffix, id_key, b64: Push(
        _VALID, "envelope", 204, case=case, envelope=extra, message=message, suffix=suffix,
        id_key=id_key, b64=b64),
    _PUSHED,
    st.fixed_dictionaries({}, optional={"subscription": _json_values,
                                        "deliveryAttempt": _json_values | st.integers()}),
    st.fixed_dictionaries({}, optional={"publishTime": _timestamps,
                                        "publish_time": _timestamps,
                                        "attributes": _json_values,
                                        "orderingKey": _json_values}),
    _unicode, st.sampled_from(["messageId", "message_id"]),
    st.sampled_from(["standard", "urlsafe", "unpadded"]))

_pushes = st.builds(
    lambda push, auth, headers: Push(**{**push.__dict__, "auth": auth,
                                        "headers": {**headers, **push.headers}}),
    st.integers(0, 3).flatmap(lambda n: _malformed if n == 0 else _envelope), _auths, _headers)
push_batches = st.lists(_pushes, min_size=1, max_size=8)


class PushFuzzer:
    def __init__(self, fuzzer: Fuzzer, key: SigningKey, impostor: SigningKey,
                 session: aiohttp.ClientSession) -> None:
        self.fuzzer = fuzzer
        self.key = key
        self.impostor = impostor
        self.session = session
        self.url = f"http://127.0.0.1:{fuzzer.running.push_port}/pubsub/push"
        self.sent = 0
        self.accepted: dict[str, Push] = {}  # message id -> envelope handled
        self.statuses: Counter[int] = Counter()
        self.refused: Counter[int] = Counter()  # by status, for the auth failure metric

    def run_batch(self, batch: list[Push]) -> None:  # on the hypothesis thread
        asyncio.run_coroutine_threadsafe(self.batch(batch), self.fuzzer.loop).result(
            timeout=SETTLE_WITHIN + 30)

    def authorization(self, auth: Auth) -> str | None:
        if auth.kind == "valid":
            return f"{auth.scheme} {self.key.token()}"
        if auth.kind == "forged":
            return f"Bearer {self.impostor.token()}"
        if auth.kind == "claims":
            return f"Bearer {self.key.token(**auth.claims)}"
        if auth.kind == "unsigned":
            assert auth.segments is not None
            header, claims, signature = auth.segments
            if isinstance(header, dict) and header.get("kid") == KID:
                header = {**header, "kid": self.key.kid}
            parts = [base64.urlsafe_b64encode(encoded(x)).rstrip(b"=") for x in (header, claims)]
            return "Bearer " + b".".join([*parts, signature]).decode()
        return auth.header

    async def body(self, push: Push, message_id: str) -> bytes:
        if push.body is not None:
            return push.body
        case = push.case
        assert case is not None
        if case.data is not None:
            data = case.data
        elif push.auth.refused:  # the change would never be synced: announce none
            data = encoded({"emailAddress": case.built, "historyId": 1})
        else:
            data = await self.fuzzer._build(case)
        text = {"standard": base64.b64encode(data),
                "urlsafe": base64.urlsafe_b64encode(data),
                "unpadded": base64.urlsafe_b64encode(data).rstrip(b"=")}[push.b64].decode()
        message: dict[str, Any] = {**push.message, push.id_key: message_id}
        if text:  # Pub/Sub leaves data out when it is empty
            message["data"] = text
        return encoded({**push.envelope, "message": message})

    async def batch(self, batch: list[Push]) -> None:
        requests = []
        for push in batch:
            self.sent += 1
            message_id = f"p{self.sent}-{push.suffix}"[:200]
            headers = dict(push.headers)
            authorization = self.authorization(push.auth)
            if authorization is not None:
                headers["Authorization"] = authorization
            requests.append((push, message_id, await self.body(push, message_id), headers))
        recorder = self.fuzzer.running.recorder
        before = len(recorder.outcomes)
        answers = await asyncio.gather(*(self.post(body, headers)
                                         for _, _, body, headers in requests))
        for (push, message_id, _, _), (status, text) in zip(requests, answers, strict=True):
            self.statuses[status] += 1
            assert status < 500, f"{push!r}: {status} {text}"
            expected = {push.auth.refused or push.status}
            if push.kind == "huge_header":
                expected = {431}  # refused by the HTTP parser, before the token is read
            if push.kind == "bad_encoding":
                # aiohttp's parser may refuse the body (400) before the token is checked:
                # always for an encoding it has no decoder for (br, zstd here), and for
                # gzip/deflate when the body arrives before the handler runs.
                expected.add(400)
            assert status in expected, f"{push!r}: {status}, not {expected}: {text}"
            if push.auth.refused and status == push.auth.refused:
                self.refused[status] += 1
            if status == 204:
                assert push.case is not None
                self.accepted[message_id] = push
                deliveries = recorder.of(message_id)
                assert len(deliveries) == 1, f"{push!r}: handled {len(deliveries)} times"
                outcome = deliveries[0][1]
                assert outcome.ack, f"{push!r} nacked as {outcome.status}"
                assert outcome.status in push.case.expect, f"{push!r} acked as {outcome.status}"
            else:
                assert recorder.of(message_id) == [], f"{push!r} reached the handler"
        handled = sum(1 for push, _, _, _ in requests if push.kind == "envelope"
                      and not push.auth.refused)
        assert len(recorder.outcomes) - before == handled
        await self.fuzzer.check_alive()
        touched = {p.case.address for p, _, _, _ in requests
                   if p.case is not None and p.case.address and not p.auth.refused}
        for address in touched:
            await self.fuzzer.check_synced(address)

    async def post(self, body: bytes, headers: dict[str, str]) -> tuple[int, str]:
        async with self.session.post(self.url, data=body, headers=headers) as response:
            return response.status, await response.text()


@pytest.mark.filterwarnings(
    "ignore:Do not use the `random` module inside strategies:"
    "hypothesis.errors.HypothesisDeprecationWarning")
async def test_hostile_push_requests_are_4xx_never_5xx(env: Env, certs: CertsServer,
                                                       google_key: SigningKey,
                                                       caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO)
    for service, address in SERVICES.items():
        await env.connect(service, address, messages=3, threads=2, watch=False)
    await env.pool.execute(
        "INSERT INTO gmail_accounts (id, name, email) VALUES ('service-fuzz-gone', 'Gone', $1)",
        GONE)
    await env.pool.execute(
        "INSERT INTO delightbridge_sync.services (account_id, disconnected_reason) "
        "VALUES ('service-fuzz-gone', 'revoked')")
    impostor = SigningKey(kid=google_key.kid)  # the same key id, another private key
    loop = asyncio.get_running_loop()
    async with env.run(mode="push", push_audience=AUDIENCE, push_service_account=PUSH_ACCOUNT,
                       push_certs_url=certs.url) as running, aiohttp.ClientSession() as session:
        pusher = PushFuzzer(Fuzzer(env, running, loop), google_key, impostor, session)

        @_settings()
        @given(push_batches)
        def fuzz(batch: list[Push]) -> None:
            pusher.run_batch(batch)

        started = time.monotonic()
        await asyncio.to_thread(fuzz)
        elapsed = time.monotonic() - started
        assert not running.task.done()
        accepted = len(pusher.accepted)
        assert running.sample("delightbridge_consumer_messages_received_total",
                              source="push") == accepted
        assert running.sample("delightbridge_consumer_messages_acked_total",
                              source="push") == accepted
        for status in (401, 403):
            assert running.sample("delightbridge_consumer_push_auth_failures_total",
                                  status=str(status)) == pusher.refused[status]
        statuses = Counter(o.status for _, o in running.recorder.outcomes)
        for reason in Reason:
            assert running.sample("delightbridge_consumer_messages_ignored_total",
                                  reason=reason.value) == statuses.get(reason.value, 0)
        # Nothing the fuzzer sent made an ERROR line or a traceback (hardening #17).
        loud = [f"{r.name}: {r.getMessage()}" for r in caplog.records
                if r.levelno >= logging.ERROR or r.exc_info or r.exc_text]
        assert not loud, loud[:5]
        print(f"{pusher.sent} push requests in {EXAMPLES} batches in {elapsed:.1f} s; "
              f"answers {dict(sorted(pusher.statuses.items()))}; "
              f"outcomes {dict(sorted(statuses.items()))}")
    for service, address in SERVICES.items():
        await env.assert_mirrors(service, address)


async def test_a_signed_token_whose_issuer_is_not_text_is_401_not_500(
        env: Env, certs: CertsServer, google_key: SigningKey) -> None:
    """Found by the push fuzz: ``iss`` as a JSON list or object made the issuer check
    raise (unhashable), a 500 that Pub/Sub would retry forever."""
    async with env.run(mode="push", push_audience=AUDIENCE, push_service_account=PUSH_ACCOUNT,
                       push_certs_url=certs.url) as running, aiohttp.ClientSession() as session:
        url = f"http://127.0.0.1:{running.push_port}/pubsub/push"
        for issuer in ([], ["accounts.google.com"], {"iss": "accounts.google.com"}):
            async with session.post(url, data=encoded({"message": {"messageId": "1"}}),
                                    headers={"Authorization": "Bearer " + google_key.token(
                                        iss=issuer)}) as response:
                assert response.status == 401, await response.text()
        assert running.sample("delightbridge_consumer_push_auth_failures_total",
                              status="401") == 3
        assert running.recorder.outcomes == []


@pytest.mark.parametrize("encoding", ["gzip", "deflate"])
async def test_a_body_that_is_not_in_its_content_encoding_is_400_not_500(
        env: Env, certs: CertsServer, google_key: SigningKey, encoding: str) -> None:
    """Found by the push fuzz: aiohttp raises a payload error when the body is read, which
    the endpoint let through as a 500."""
    async with env.run(mode="push", push_audience=AUDIENCE, push_service_account=PUSH_ACCOUNT,
                       push_certs_url=certs.url) as running, aiohttp.ClientSession() as session:
        url = f"http://127.0.0.1:{running.push_port}/pubsub/push"
        for _ in range(5):  # each on a connection of its own: the server closes it
            async with session.post(url, data=encoded({"message": {"messageId": "1"}}),
                                    headers={"Authorization": "Bearer " + google_key.token(),
                                             "Content-Encoding": encoding}) as response:
                assert response.headers.get("Connection") == "close"
                assert response.status == 400, await response.text()
        assert running.recorder.outcomes == []
        assert not running.task.done()


@pytest.mark.parametrize("encoding", ["gzip", "deflate"])
async def test_an_unreadable_body_behind_a_refused_token_is_no_error_line(
        env: Env, certs: CertsServer, encoding: str,
        caplog: pytest.LogCaptureFixture) -> None:
    """Found by the push fuzz once it watched the logs (hardening #17): a 401 leaves the
    body unread, aiohttp drains it, the drain fails to decompress it, and aiohttp logged
    an ERROR "Unhandled exception" with a traceback."""
    caplog.set_level(logging.INFO)
    async with env.run(mode="push", push_audience=AUDIENCE, push_service_account=PUSH_ACCOUNT,
                       push_certs_url=certs.url) as running, aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(force_close=True)) as session:
        url = f"http://127.0.0.1:{running.push_port}/pubsub/push"
        for _ in range(3):
            async with session.post(url, data=b"\x00not compressed" * 2000,
                                    headers={"Authorization": "Bearer forged",
                                             "Content-Encoding": encoding}) as response:
                assert response.status in (400, 401), await response.text()
        # The server logs the drain's failure after answering: stop it, then look.
        assert await running.stop() == 0
    loud = [f"{r.name}: {r.getMessage()}" for r in caplog.records
            if r.levelno >= logging.ERROR or r.exc_info or r.exc_text]
    assert not loud, loud
