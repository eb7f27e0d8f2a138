"""Hostile Pub/Sub messages through a running consumer (issue #9), found by hypothesis.

One :class:`~consumer.worker.Worker` pulls from the official Pub/Sub emulator for the
whole test and syncs into a real PostgreSQL from the Gmail simulator. Hypothesis
generates batches of messages (arbitrary bytes; JSON of the wrong shape or types;
notification-shaped JSON with unknown, malformed or unicode addresses and negative,
huge, float or non-numeric history ids; random attributes) mixed with valid
notifications announcing a real change of a mailbox, and publishes each batch with the
real google-cloud-pubsub publisher. Each case carries the outcomes its input allows,
stated from the notification format, not from the decoder.

Properties, checked on the worker's outcome observer (events), its metrics and the
database, never on sleeps:

* the worker never dies: its task is running and ``/healthz`` and ``/readyz`` answer 200;
* every message is acked on its first delivery, with a status its case allows: bad input
  as its reason (counted in ``messages_ignored_total``), none nacked, none redelivered;
* every valid notification leads to a committed sync: the service's cursor reaches the
  mailbox's history id and the announced message is in the database;
* at the end nothing is outstanding: a pull on the subscription returns nothing and
  nothing was dead-lettered.

The default run is derandomized (the same examples every time, no example database) and
takes about half a minute. ``FUZZ_EXAMPLES=500`` runs that many batches with a random
seed instead (printed by hypothesis on failure, with the falsifying batch).
"""

from __future__ import annotations

import asyncio
import base64
import json
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

from consumer.notification import Reason, Rejection, decode_pull, decode_push
from tests.consumer.conftest import MAX_DELIVERY_ATTEMPTS, Env, RunningWorker
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
_unicode = st.text(st.characters(codec=None), max_size=30)  # any code point but surrogates
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
    _unicode.map(lambda t: t.encode("utf-8")),
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
        "max_examples": EXAMPLES, "deadline": None, "database": None,
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
        "INSERT INTO gmail_accounts (id, name, email, refresh_token, disconnected_reason) "
        "VALUES ('service-fuzz-gone', 'Gone', $1, NULL, 'revoked')", GONE)
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
