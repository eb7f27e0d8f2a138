"""Pure parts of the Gmail client: retry decisions, batch codec, pacing, calls."""

from __future__ import annotations

import asyncio
import random
from datetime import UTC, datetime
from typing import cast
from urllib.parse import parse_qs, quote, urlsplit

import aiohttp
import httplib2
import pytest
from googleapiclient.discovery import build

from delightbridge.sync.gmail import batch
from delightbridge.sync.gmail.batch import batch_units
from delightbridge.sync.gmail.calls import CallBuilder, GmailCall
from delightbridge.sync.gmail.client import THREADS_PER_BATCH, GmailClient, _Gate
from delightbridge.sync.gmail.oauth import ServiceTokens
from delightbridge.sync.gmail.pacing import QuotaPacer
from delightbridge.sync.gmail.quota import COSTS_2026, LEGACY_COSTS
from delightbridge.sync.gmail.retry import (
    RetryPolicy,
    Verdict,
    classify,
    error_info,
    retry_after_seconds,
)
from tests.gmailsim import discovery


@pytest.mark.parametrize(
    ("status", "reason", "verdict"),
    [
        (200, None, Verdict.OK),
        (429, None, Verdict.RATE_LIMITED),
        (429, "rateLimitExceeded", Verdict.RATE_LIMITED),
        (403, "userRateLimitExceeded", Verdict.RATE_LIMITED),
        (403, "rateLimitExceeded", Verdict.RATE_LIMITED),
        (403, "insufficientPermissions", Verdict.FAILED),
        (403, None, Verdict.FAILED),
        (500, None, Verdict.UNAVAILABLE),
        (502, None, Verdict.UNAVAILABLE),
        (503, "backendError", Verdict.UNAVAILABLE),
        (504, None, Verdict.UNAVAILABLE),
        (501, None, Verdict.FAILED),
        (401, "authError", Verdict.UNAUTHORIZED),
        (404, "notFound", Verdict.NOT_FOUND),
        (400, "invalidArgument", Verdict.FAILED),
    ],
)
def test_classify(status: int, reason: str | None, verdict: Verdict) -> None:
    assert classify(status, reason) is verdict


def test_error_info_reads_google_envelope_and_tolerates_garbage() -> None:
    body = (b'{"error": {"code": 403, "message": "Rate Limit Exceeded", "status": '
            b'"PERMISSION_DENIED", "errors": [{"domain": "usageLimits", '
            b'"reason": "userRateLimitExceeded", "message": "Rate Limit Exceeded"}]}}')
    info = error_info(body)
    assert (info.message, info.reason) == ("Rate Limit Exceeded", "userRateLimitExceeded")
    assert error_info(b"<html>oops</html>").reason is None
    assert error_info(b'{"error": "string"}').reason is None


def test_retry_after_forms() -> None:
    now = datetime(2026, 1, 1, 12, 0, 0, tzinfo=UTC)
    assert retry_after_seconds("7") == 7.0
    assert retry_after_seconds("Thu, 01 Jan 2026 12:00:30 GMT", now) == 30.0
    assert retry_after_seconds("Thu, 01 Jan 2026 11:00:00 GMT", now) == 0.0
    assert retry_after_seconds("soon") is None
    assert retry_after_seconds(None) is None


def test_backoff_grows_is_capped_starts_at_initial_and_honours_retry_after() -> None:
    policy = RetryPolicy(initial=1.0, maximum=8.0)
    rng = random.Random(1)
    waits = [policy.backoff(n, rng=rng) for n in range(1, 10)]
    assert all(1.0 <= w <= 8.0 for w in waits)
    assert max(policy.backoff(1, rng=rng) for _ in range(50)) == 1.0  # first wait: exactly 1 s
    assert max(policy.backoff(6, rng=rng) for _ in range(200)) > 4.0  # grows
    assert policy.backoff(1, retry_after=20.0, rng=rng) == 20.0


def _call(n: int) -> GmailCall:
    return GmailCall("messages.get", "GET",
                     f"http://h:1/prefix/gmail/v1/users/me/messages/{n:016x}?format=full")


def test_batch_roundtrip_matches_answers_by_content_id_not_position() -> None:
    calls = [_call(n) for n in range(3)]
    content_type, body, ids = batch.encode(calls)
    text = body.decode()
    assert "GET /prefix/gmail/v1/users/me/messages/0000000000000001?format=full HTTP/1.1" in text
    assert text.count("Content-Type: application/http") == 3
    boundary = content_type.split('boundary="')[1].rstrip('"')
    assert text.endswith(f"--{boundary}--\r\n")
    # An answer in a different order, as Google's batch endpoint may send.
    answer = "".join(
        f"--resp\r\nContent-Type: application/http\r\nContent-ID: <response-{ids[i]}>\r\n\r\n"
        f"HTTP/1.1 {status} X\r\nContent-Type: application/json\r\n\r\n{payload}\r\n"
        for i, status, payload in [(2, 404, '{"error": {}}'), (0, 200, '{"id": "a"}'),
                                   (1, 429, "{}")]
    ) + "--resp--\r\n"
    parts = batch.decode("multipart/mixed; boundary=resp", answer.encode(), ids)
    assert [p.status for p in parts] == [200, 429, 404]
    assert parts[0].body == b'{"id": "a"}'
    assert parts[0].headers["content-type"] == "application/json"


def test_batch_limits_and_broken_answers() -> None:
    with pytest.raises(ValueError, match="1 to 100"):
        batch.encode([_call(n) for n in range(101)])
    _, _, ids = batch.encode([_call(1)])
    with pytest.raises(batch.BatchFormatError, match="not multipart"):
        batch.decode("application/json", b"{}", ids)
    with pytest.raises(batch.BatchFormatError, match="lacks 1 of 1"):
        batch.decode("multipart/mixed; boundary=b", b"--b--\r\n", ids)


def test_calls_are_built_from_the_discovery_document_under_a_path_prefix() -> None:
    builder = CallBuilder("http://127.0.0.1:8080/prefix")
    get = builder.get_message("18c1", format="metadata")
    assert get.method == "GET"
    assert (LEGACY_COSTS[get.name], COSTS_2026[get.name]) == (5, 20)
    assert urlsplit(get.url).path == "/prefix/gmail/v1/users/me/messages/18c1"
    history = builder.list_history(4200, "tok")
    query = parse_qs(urlsplit(history.url).query)
    assert query["startHistoryId"] == ["4200"]
    assert query["pageToken"] == ["tok"]
    assert query["historyTypes"] == ["messageAdded", "messageDeleted", "labelAdded",
                                     "labelRemoved"]
    assert LEGACY_COSTS[history.name] == COSTS_2026[history.name] == 2
    watch = builder.watch("projects/p/topics/t", ["INBOX"])
    assert watch.method == "POST"
    assert COSTS_2026[watch.name] == 100
    assert watch.body == b'{"topicName": "projects/p/topics/t", "labelIds": ["INBOX"], ' \
                         b'"labelFilterBehavior": "include"}'
    assert {c.name for c in (builder.profile(), builder.list_messages(), builder.stop(),
                             builder.get_attachment("m", "a"), builder.list_send_as())} \
        <= set(COSTS_2026) == set(LEGACY_COSTS)


class FakeTime:
    def __init__(self) -> None:
        self.now = 0.0

    async def sleep(self, seconds: float) -> None:
        self.now += seconds


async def test_pacer_never_exceeds_its_limit_in_any_window() -> None:
    t = FakeTime()
    pacer = QuotaPacer(250, window=1.0, clock=lambda: t.now, sleep=t.sleep)
    stamps: list[tuple[float, int]] = []
    for cost in [1, 5] + [240] * 5 + [5] * 30:
        ticket = await pacer.acquire(cost)
        t.now += 0.05  # the call's latency: Google charges it somewhere in between
        pacer.settle(ticket)
        stamps.append((t.now, cost))
    for start, _ in stamps:
        in_window = sum(c for s, c in stamps if start - 0.05 <= s < start + 1.0)
        assert in_window <= 250
    # ... and it does not wait much more than it must: 1,356 units at 250 per second.
    assert t.now < 1356 / 250 + 2.0
    assert pacer.spent == 1356


async def test_pacer_waits_for_calls_in_flight() -> None:
    t = FakeTime()
    pacer = QuotaPacer(100, window=1.0, clock=lambda: t.now, sleep=t.sleep)
    first = await pacer.acquire(80)
    second = asyncio.create_task(pacer.acquire(50))
    await asyncio.sleep(0)
    assert not second.done()  # 80 units in flight: 50 more would not fit
    t.now = 0.3
    pacer.settle(first)  # answered at 0.3: its units count until 1.3
    pacer.settle(await second)
    assert t.now == pytest.approx(1.3)


async def test_an_import_bursts_once_then_spends_smoothly_leaving_fresh_mail_its_reserve(
) -> None:
    """6,000 units a minute (5,880 paced), 102 kept for fresh mail: the import takes the
    first minute's burst at once, then its rate, never in bursts again. Found by the
    bench: re-spending the whole window each time the last burst left it, the import
    held a mailbox's new mail for up to a minute."""
    t = FakeTime()
    pacer = QuotaPacer(5880, window=60.0, clock=lambda: t.now, sleep=t.sleep, reserve=102,
                       smooth=2.0)
    stamps: list[tuple[float, int]] = []
    while t.now < 600:
        ticket = await pacer.acquire(20, bulk=True)
        t.now += 0.05
        pacer.settle(ticket)
        stamps.append((t.now, 20))

    def spent(start: float, end: float) -> int:
        return sum(c for s, c in stamps if start < s <= end)

    rate = (5880 - 102) / 60
    assert spent(0, 30) >= 5880 - 102 - 20  # the first minute's burst, at once
    # Never more than the window less the reserve: fresh mail finds 102 units at once.
    assert max(spent(end - 60, end) for end in range(1, 600)) <= 5880 - 102
    # After the first window, the rate: no five seconds hold a burst.
    assert max(spent(end - 5, end) for end in range(65, 600)) <= 5 * rate + 2 * rate + 20
    # ... and the window is used: from the third minute on, within 1 % of the bulk limit.
    assert min(spent(end - 60, end) for end in range(130, 600, 7)) >= 0.99 * (5880 - 102)


async def test_under_a_long_window_batches_hold_about_a_second_of_units() -> None:
    pacer = QuotaPacer(5880, window=60.0, reserve=102)
    assert pacer.batch_allowance == pytest.approx(4 * (5880 - 102) / 60)
    assert batch_units(pacer.batch_allowance, 20, 40) <= 100  # five messages.get
    assert QuotaPacer(245, window=1.0).batch_allowance == 245


async def test_under_a_one_second_window_imports_keep_no_reserve() -> None:
    t = FakeTime()
    pacer = QuotaPacer(245, window=1.0, clock=lambda: t.now, sleep=t.sleep, reserve=27)
    assert pacer.reserve == 0
    for _ in range(49):
        pacer.settle(await pacer.acquire(5, bulk=True))
    assert t.now == 0  # all 245 units at once: fresh mail waits one window at most


async def test_pacer_lets_an_oversized_call_through_alone_and_penalties_block() -> None:
    t = FakeTime()
    pacer = QuotaPacer(100, window=1.0, clock=lambda: t.now, sleep=t.sleep)
    pacer.settle(await pacer.acquire(10))
    pacer.settle(await pacer.acquire(300))  # more than the limit: waits for an empty window
    assert t.now == pytest.approx(1.0)
    pacer.settle(await pacer.acquire(1))
    assert t.now == pytest.approx(2.0)
    pacer.penalize(5.0)
    pacer.settle(await pacer.acquire(1))
    assert t.now == pytest.approx(7.0)


@pytest.mark.parametrize("endpoint", ["http://127.0.0.1:8080/prefix", "https://gmail.googleapis.com"])
def test_templated_get_urls_are_what_the_discovery_document_builds(endpoint: str) -> None:
    # messages.get and threads.get skip googleapiclient per call: each URL must be exactly
    # what the library builds from the discovery document, whatever the id and format.
    service = build("gmail", "v1", static_discovery=True, http=httplib2.Http(),
                    client_options={"api_endpoint": endpoint + "/"}, cache_discovery=False)
    builder = CallBuilder(endpoint)
    methods = discovery.document()["resources"]["users"]["resources"]
    for name, resource, ours in [
        ("messages", service.users().messages(), builder.get_message),
        ("threads", service.users().threads(), builder.get_thread),
    ]:
        path = methods[name]["methods"]["get"]["path"]  # gmail/v1/users/{userId}/...{id}
        for fmt in ["full", "metadata", "minimal", "raw"][: 4 if name == "messages" else 3]:
            for ident in ["18c1f0a2b3c4d5e6", "a/b c+ü%", "DBSYNC", ""]:
                call = ours(ident, format=fmt)
                expected = resource.get(userId="me", id=ident, format=fmt, prettyPrint=False)
                assert (call.method, call.url) == (expected.method, expected.uri)
                assert call.name == f"{name}.get"
                assert urlsplit(call.url).path == urlsplit(endpoint).path + "/" + path.replace(
                    "{userId}", "me").replace("{id}", quote(ident, safe=""))
                assert parse_qs(urlsplit(call.url).query)["prettyPrint"] == ["false"]
    with pytest.raises(TypeError):  # the library still checks the format, once per format
        builder.get_message("x", format="bogus")


def test_batches_fill_the_pacers_window_exactly() -> None:
    # 98 % of 250 units: 35 a batch (7 messages.get, or 3 threads.get and 1 messages.get).
    assert batch.batch_units(245.0, 5, 10) == 35
    assert batch.batch_units(250.0, 5, 10) == 50
    assert batch.batch_units(1_000_000.0, 5, 10) == 250_000  # quota off: batch_size rules
    assert batch.batch_units(241.0, 5, 10) == 60  # no divisor: the largest that fits 4 times
    assert batch.batch_units(20.0, 5, 10) == 10  # never below the dearest call
    costs = [10] * 10 + [5] * 12
    plan = batch.plan(costs, max_calls=50, max_units=35)
    assert sorted(i for b in plan for i in b) == list(range(len(costs)))  # each call once
    assert [sum(costs[i] for i in b) for b in plan] == [35, 35, 35, 35, 20]
    assert all(len(b) <= 4 for b in batch.plan(costs, max_calls=4, max_units=1000))
    assert batch.plan([300, 5], max_calls=50, max_units=35) == [[0], [1]]  # too dear: alone
    assert batch.plan([], max_calls=50, max_units=35) == []


def test_a_batch_holds_at_most_max_heavy_thread_fetches() -> None:
    costs = [10] * 12 + [5] * 30
    heavy = [True] * 12 + [False] * 30
    plan = batch.plan(costs, max_calls=50, max_units=1000, heavy=heavy, max_heavy=5)
    assert sorted(i for b in plan for i in b) == list(range(len(costs)))
    assert [sum(heavy[i] for i in b) for b in plan] == [5, 5, 2]
    # The room the thread fetches leave goes to the others, first fit.
    assert [len(b) for b in plan] == [35, 5, 2]


def test_plan_batches_holds_back_a_last_batch_that_could_take_more_calls() -> None:
    builder = CallBuilder("http://gmail.invalid")
    client = GmailClient(cast(aiohttp.ClientSession, None), builder,
                         cast(ServiceTokens, None), QuotaPacer(245), costs=LEGACY_COSTS,
                         batch_uri="http://b")
    ten = [builder.get_message(f"m{i}", format="full") for i in range(10)]
    assert client.plan_batches(ten) == ([list(range(7)), [7, 8, 9]], [])
    # More calls are coming (the next page): the partial batch waits to be filled.
    assert client.plan_batches(ten, hold_last=True) == ([list(range(7))], [7, 8, 9])
    # A full last batch (35 units) is never held back.
    assert client.plan_batches(ten[:7], hold_last=True) == ([list(range(7))], [])
    # At most THREADS_PER_BATCH thread fetches a batch, whatever the units allow.
    unpaced = GmailClient(cast(aiohttp.ClientSession, None), builder,
                          cast(ServiceTokens, None), QuotaPacer(1_000_000),
                          batch_uri="http://b")
    threads = [builder.get_thread(f"t{i}", format="full") for i in range(12)]
    batches, held = unpaced.plan_batches(threads + ten)
    assert held == []
    per_batch = [sum(i < 12 for i in b) for b in batches]
    assert sum(per_batch) == 12
    assert max(per_batch) == THREADS_PER_BATCH


async def test_few_thread_answers_are_in_flight_at_once() -> None:
    gate = _Gate(4)
    async with gate.hold(9):  # more than the limit alone: goes when none are out
        assert gate.out == 9
    release = asyncio.Event()

    async def holder(units: int) -> None:
        async with gate.hold(units):
            await release.wait()

    first = asyncio.create_task(holder(3))
    await asyncio.sleep(0)
    second = asyncio.create_task(holder(2))  # 3 + 2 > 4: waits for the first
    await asyncio.sleep(0)
    assert gate.out == 3
    release.set()
    await asyncio.wait_for(asyncio.gather(first, second), timeout=5)
    assert gate.out == 0
