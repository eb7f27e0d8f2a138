"""The Gmail client of one service: paced, authorised, retried, batched.

Every call pays its quota units to the service's :class:`QuotaPacer` before it is
sent, carries a fresh bearer token (refreshed once on a 401), and is retried with
tenacity when the answer is retryable (:mod:`delightbridge.sync.gmail.retry`). Message and
thread fetches go in batches of at most ``batch_size`` calls, sized in quota units so
that several fill the pacer's window exactly, several batches in flight; inside a
batch, only the parts that failed transiently are sent again. ``threads.get`` answers
can weigh megabytes: a batch carries at most :data:`THREADS_PER_BATCH` of them and at
most :data:`THREADS_IN_FLIGHT` are in flight, counted once the quota is paid.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import Counter
from collections.abc import AsyncIterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, NoReturn

import aiohttp
from tenacity import (
    AsyncRetrying,
    RetryCallState,
    retry_if_exception_type,
    stop_after_attempt,
    stop_after_delay,
)
from tenacity.stop import stop_base

from delightbridge.core.errors import (
    GmailError,
    GmailQuotaExceeded,
    GmailUnavailable,
    HistoryExpired,
)
from delightbridge.sync.budget import SharedBudget
from delightbridge.sync.gmail import batch as batch_format
from delightbridge.sync.gmail.calls import CallBuilder, GmailCall, json_body
from delightbridge.sync.gmail.listener import GmailListener
from delightbridge.sync.gmail.oauth import ServiceTokens
from delightbridge.sync.gmail.pacing import QuotaPacer
from delightbridge.sync.gmail.quota import COSTS_2026
from delightbridge.sync.gmail.retry import (
    RetryPolicy,
    Verdict,
    classify,
    error_info,
    retry_after_seconds,
)

log = logging.getLogger(__name__)

Resource = dict[str, Any]

#: ``threads.get`` calls a batch holds at most, and those in flight at once: an answer
#: holds up to 100 messages (Gmail's limit of a conversation), each of which may quote
#: all the earlier ones, so a few of them weigh megabytes.
THREADS_PER_BATCH = 3
THREADS_IN_FLIGHT = 8


class _Gate:
    """At most ``limit`` units of something at once; more than that alone waits for
    none to be out."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.out = 0
        self._freed = asyncio.Event()

    @contextlib.asynccontextmanager
    async def hold(self, units: int) -> AsyncIterator[None]:
        while units and self.out and self.out + units > self.limit:
            self._freed.clear()
            await self._freed.wait()
        self.out += units
        try:
            yield
        finally:
            self.out -= units
            self._freed.set()


class _Transient(Exception):
    """A retryable answer; becomes GmailQuotaExceeded/GmailUnavailable when retries run out."""

    def __init__(self, verdict: Verdict, message: str, *, status: int | None = None,
                 reason: str | None = None, retry_after: float | None = None,
                 unreachable: bool = False) -> None:
        super().__init__(message)
        self.verdict = verdict
        self.status = status
        self.reason = reason
        self.retry_after = retry_after
        self.unreachable = unreachable  # no connection at all: tried connect_attempts times

    def final(self) -> GmailError:
        if self.unreachable:
            return GmailUnavailable(f"{self}: giving up", retry_after=self.retry_after or 1.0)
        kind = GmailQuotaExceeded if self.verdict is Verdict.RATE_LIMITED else GmailUnavailable
        return kind(f"Gmail {self}: giving up after retries", status=self.status,
                    reason=self.reason, retry_after=self.retry_after or 1.0)


class _StopUnreachable(stop_base):
    """Stop retrying a host that could not be reached ``attempts`` times in a row."""

    def __init__(self, attempts: int) -> None:
        self.attempts = attempts

    def __call__(self, state: RetryCallState) -> bool:
        exc = state.outcome.exception() if state.outcome else None
        return (isinstance(exc, _Transient) and exc.unreachable
                and state.attempt_number >= self.attempts)


def error_reason(key: str) -> str:
    """A metrics label from an error key (``"429:rateLimitExceeded"``, ``"connection"``)."""
    status, sep, reason = key.partition(":")
    if not sep:
        return key
    return reason or f"http_{status}"


@dataclass
class ClientStats:
    calls: Counter[str] = field(default_factory=Counter)
    units: int = 0
    http_requests: int = 0
    retries: int = 0
    errors: Counter[str] = field(default_factory=Counter)
    listeners: Sequence[GmailListener] = ()

    def called(self, method: str, units: int) -> None:
        self.calls[method] += 1
        self.units += units
        for listener in self.listeners:
            listener.gmail_called(method, units)

    def failed(self, key: str) -> None:
        self.errors[key] += 1
        for listener in self.listeners:
            listener.gmail_failed(key)


@dataclass(frozen=True, slots=True)
class _Answer:
    status: int
    headers: dict[str, str]
    body: bytes


class GmailClient:
    def __init__(
        self,
        session: aiohttp.ClientSession,
        calls: CallBuilder,
        tokens: ServiceTokens,
        pacer: QuotaPacer,
        *,
        costs: Mapping[str, int] = COSTS_2026,
        budget: SharedBudget | None = None,
        mailbox_budget: SharedBudget | None = None,
        bulk: bool = False,
        listeners: Sequence[GmailListener] = (),
        batch_uri: str,
        batch_size: int = 50,
        concurrency: int = 4,
        policy: RetryPolicy | None = None,
    ) -> None:
        self.calls = calls
        self._session = session
        self._tokens = tokens
        self._pacer = pacer
        self._costs = costs
        self._budget = budget
        self._mailbox_budget = mailbox_budget  # every process's calls of this mailbox
        self._bulk = bulk  # an import's calls: they yield to fresh mail's
        self._batch_uri = batch_uri
        self._batch_size = max(1, min(batch_size, batch_format.MAX_BATCH))
        self.concurrency = max(1, concurrency)
        self._slots = asyncio.Semaphore(self.concurrency)
        self._threads = _Gate(THREADS_IN_FLIGHT)
        self._policy = policy or RetryPolicy()
        self.stats = ClientStats(listeners=listeners)

    def cost(self, call: GmailCall) -> int:
        """The quota units ``call`` costs in the configured model."""
        return self._costs[call.name]

    # ------------------------------------------------------------------ public calls

    async def profile(self) -> Resource:
        return await self.execute(self.calls.profile())

    async def list_labels(self) -> Resource:
        return await self.execute(self.calls.list_labels())

    async def list_messages(self, page_token: str | None = None, *,
                            label_ids: Sequence[str] = ()) -> Resource:
        return await self.execute(self.calls.list_messages(page_token, label_ids=label_ids))

    async def list_history(self, start_history_id: int, page_token: str | None = None
                           ) -> Resource:
        call = self.calls.list_history(start_history_id, page_token)
        result = await self.execute_optional(call)
        if result is None:
            raise HistoryExpired(
                f"history before {start_history_id} is no longer available", status=404
            )
        return result

    async def watch(self, topic: str, label_ids: Sequence[str] = (),
                    behavior: str | None = None) -> Resource:
        return await self.execute(self.calls.watch(topic, label_ids, behavior))

    async def stop(self) -> None:
        await self.execute(self.calls.stop())

    async def list_send_as(self) -> Resource:
        return await self.execute(self.calls.list_send_as())

    async def revoke(self) -> bool:
        """Revoke the service's grant at Google: True if revoked, False if already gone."""
        return await self._tokens.revoke()

    async def list_threads(self, page_token: str | None = None) -> Resource:
        return await self.execute(self.calls.list_threads(page_token))

    async def get_messages(self, ids: Sequence[str], *, format: str = "full"
                           ) -> dict[str, Resource | None]:
        """Current state of each message; None for those Gmail no longer has (404)."""
        return await self.get_many(ids, [self.calls.get_message(i, format=format) for i in ids])

    async def get_threads(self, ids: Sequence[str], *, format: str = "minimal"
                          ) -> dict[str, Resource | None]:
        """Each thread with its messages; None for those Gmail no longer has (404)."""
        return await self.get_many(ids, [self.calls.get_thread(i, format=format) for i in ids])

    async def get_many(self, ids: Sequence[str], calls: list[GmailCall]
                       ) -> dict[str, Resource | None]:
        """Answers to ``calls`` keyed by ``ids``, batched and paced; None for a 404."""
        return dict(zip(ids, await self.fetch_all(calls), strict=True))

    async def fetch_all(self, calls: Sequence[GmailCall]) -> list[Resource | None]:
        """Answers to ``calls`` (any mix of methods) in call order, None for a 404,
        batched as :meth:`plan_batches` says."""
        batches, _ = self.plan_batches(calls)
        parts = await asyncio.gather(*(self.fetch_batch([calls[i] for i in b])
                                       for b in batches))
        results: list[Resource | None] = [None] * len(calls)
        for batch, answers in zip(batches, parts, strict=True):
            for index, answer in zip(batch, answers, strict=True):
                results[index] = answer
        return results

    def plan_batches(self, calls: Sequence[GmailCall], *, hold_last: bool = False
                     ) -> tuple[list[list[int]], list[int]]:
        """(batches to send, calls held back), by index into ``calls``.

        At most ``batch_size`` calls a batch, at most the units of
        :func:`~delightbridge.sync.gmail.batch.batch_units` (a batch never costs more than the
        pacer lets through in one window, and several of them fill it exactly) and at
        most :data:`THREADS_PER_BATCH` ``threads.get`` (each answer may hold 100
        messages: the calls in flight bound the memory a sync needs). With
        ``hold_last``, a last batch that could still take a call is held back, to be
        filled by the calls a caller plans next.
        """
        if not calls:
            return [], []
        costs = [self.cost(c) for c in calls]
        units = batch_format.batch_units(self._pacer.batch_allowance,
                                         batch_format.cost_step(costs), max(costs))
        batches = batch_format.plan(costs, max_calls=self._batch_size, max_units=units,
                                    heavy=[c.name == "threads.get" for c in calls],
                                    max_heavy=THREADS_PER_BATCH)
        last = batches[-1]
        if hold_last and len(last) < self._batch_size and \
                sum(costs[i] for i in last) + min(costs) <= units:
            return batches[:-1], last
        return batches, []

    async def fetch_batch(self, calls: Sequence[GmailCall]) -> list[Resource | None]:
        """Answers to one batch of calls, in call order (None for a 404); one call is
        sent plain. Parts that fail transiently are sent again."""
        if len(calls) == 1:
            return [await self._bounded_single(calls[0])]
        return await self._batch(list(calls))

    # ------------------------------------------------------------------ single calls

    async def _bounded_single(self, call: GmailCall) -> Resource | None:
        async with self._slots:
            return await self.execute_optional(call)

    async def execute(self, call: GmailCall) -> Resource:
        """Send ``call``; its JSON answer, or a typed error (404 included)."""
        result = await self._execute(call, not_found_ok=False)
        assert result is not None
        return result

    async def execute_optional(self, call: GmailCall) -> Resource | None:
        """Like :meth:`execute`, but None when Gmail answers 404."""
        return await self._execute(call, not_found_ok=True)

    async def _execute(self, call: GmailCall, *, not_found_ok: bool) -> Resource | None:
        try:
            async for attempt in self._retrying():
                with attempt:
                    answer = await self._send_authorised(call)
                    return self._interpret(call, answer, not_found_ok)
        except _Transient as exc:
            raise exc.final() from None
        raise AssertionError("unreachable")  # pragma: no cover

    def _retrying(self) -> AsyncRetrying:
        return AsyncRetrying(
            retry=retry_if_exception_type(_Transient),
            stop=stop_after_attempt(self._policy.max_attempts)
            | stop_after_delay(self._policy.max_elapsed)
            | _StopUnreachable(self._policy.connect_attempts),
            wait=self._wait,
            before_sleep=self._count_retry,
            reraise=True,
        )

    def _wait(self, state: RetryCallState) -> float:
        exc = state.outcome.exception() if state.outcome else None
        retry_after = exc.retry_after if isinstance(exc, _Transient) else None
        return self._policy.backoff(state.attempt_number, retry_after)

    def _count_retry(self, state: RetryCallState) -> None:
        self.stats.retries += 1

    async def _send_authorised(self, call: GmailCall) -> _Answer:
        cost = self.cost(call)
        self.stats.called(call.name, cost)
        token = await self._tokens.token()
        threads = int(call.name == "threads.get")
        answer = await self._paced_http(cost, call.method, call.url, token, call.body,
                                        "application/json", threads)
        if answer.status == 401:
            token = await self._tokens.refreshed(token)
            answer = await self._paced_http(cost, call.method, call.url, token, call.body,
                                            "application/json", threads)
        return answer

    async def _paced_http(self, cost: int, method: str, url: str, token: str,
                          body: bytes | None, content_type: str, threads: int = 0) -> _Answer:
        """Pay the quota, then send; ``threads``: the ``threads.get`` calls it carries
        (sent only while :data:`THREADS_IN_FLIGHT` allows: after the pacer, so calls
        waiting for the quota do not count)."""
        if self._budget is not None:
            await self._budget.spend(cost, bulk=self._bulk)
        ticket = await self._pacer.acquire(cost, bulk=self._bulk)
        try:
            if self._mailbox_budget is not None:  # leased right before it is spent
                await self._mailbox_budget.spend(cost, bulk=self._bulk)
            async with self._threads.hold(threads):
                return await self._http(method, url, token, body, content_type)
        finally:
            self._pacer.settle(ticket)

    async def _http(self, method: str, url: str, token: str, body: bytes | None,
                    content_type: str) -> _Answer:
        headers = {"Authorization": f"Bearer {token}", "Accept": "application/json"}
        if body is not None:
            headers["Content-Type"] = content_type
        self.stats.http_requests += 1
        try:
            async with self._session.request(method, url, data=body, headers=headers) as resp:
                payload = await resp.read()
                return _Answer(resp.status, {k.lower(): v for k, v in resp.headers.items()},
                               payload)
        except aiohttp.ClientConnectorError as exc:  # no such host, refused: unreachable
            self.stats.failed("connection")
            why = exc.os_error.strerror or type(exc.os_error).__name__
            raise _Transient(Verdict.UNAVAILABLE, f"Gmail unreachable at {exc.host}:{exc.port} "
                             f"({why})", unreachable=True) from None
        except (aiohttp.ClientError, TimeoutError) as exc:
            self.stats.failed("connection")
            raise _Transient(Verdict.UNAVAILABLE, f"connection failed ({type(exc).__name__})"
                             ) from None

    def _interpret(self, call: GmailCall, answer: _Answer, not_found_ok: bool
                   ) -> Resource | None:
        info = error_info(answer.body) if answer.status >= 400 else None
        verdict = classify(answer.status, info.reason if info else None)
        if verdict is Verdict.OK:
            return json_body(answer.body)
        assert info is not None
        self.stats.failed(f"{answer.status}:{info.reason or ''}")
        if verdict is Verdict.NOT_FOUND and not_found_ok:
            return None
        if verdict in (Verdict.RATE_LIMITED, Verdict.UNAVAILABLE):
            retry_after = retry_after_seconds(answer.headers.get("retry-after"))
            if verdict is Verdict.RATE_LIMITED:
                self._pacer.penalize(retry_after or self._policy.initial)
            raise _Transient(verdict, f"{call.name} answered {answer.status} {info.message}",
                             status=answer.status, reason=info.reason, retry_after=retry_after)
        self._fail(call, answer.status, info.reason, info.message)

    @staticmethod
    def _fail(call: GmailCall, status: int, reason: str | None, message: str) -> NoReturn:
        raise GmailError(f"{call.name} failed: {status} {reason or ''} {message}".strip(),
                         status=status, reason=reason)

    # ------------------------------------------------------------------ batches

    async def _batch(self, calls: list[GmailCall]) -> list[Resource | None]:
        """Results in call order; parts that fail transiently are sent again."""
        results: dict[int, Resource | None] = {}
        pending = list(range(len(calls)))
        started = time.monotonic()
        attempt = 0
        last: _Transient | None = None
        while pending:
            attempt += 1
            if attempt > self._policy.max_attempts or (
                attempt > 1 and time.monotonic() - started > self._policy.max_elapsed
            ) or (last is not None and last.unreachable
                  and attempt > self._policy.connect_attempts):
                assert last is not None
                raise last.final()
            async with self._slots:
                retry, last = await self._batch_round([calls[i] for i in pending], pending,
                                                      results)
            if retry:
                self.stats.retries += 1
                assert last is not None
                await asyncio.sleep(self._policy.backoff(attempt, last.retry_after))
            pending = retry
        return [results[i] for i in range(len(calls))]

    async def _batch_round(
        self, calls: list[GmailCall], positions: list[int], results: dict[int, Resource | None]
    ) -> tuple[list[int], _Transient | None]:
        """Send one batch; store final results; return positions to retry."""
        try:
            answers = await self._send_batch(calls)
        except _Transient as exc:
            return positions, exc
        retry: list[int] = []
        last: _Transient | None = None
        for position, call in zip(positions, calls, strict=True):
            answer = answers.pop(0)  # each body freed once read: a part can be tens of MB
            try:
                results[position] = self._interpret(call, answer, not_found_ok=True)
            except _Transient as exc:
                retry.append(position)
                last = exc
            del answer
        return retry, last

    async def _send_batch(self, calls: list[GmailCall]) -> list[_Answer]:
        if len(calls) == 1:
            return [await self._send_authorised(calls[0])]
        cost = sum(self.cost(c) for c in calls)
        for call in calls:
            self.stats.called(call.name, self.cost(call))
        content_type, body, ids = batch_format.encode(calls)
        threads = sum(c.name == "threads.get" for c in calls)
        token = await self._tokens.token()
        outer = await self._paced_http(cost, "POST", self._batch_uri, token, body, content_type,
                                       threads)
        if outer.status == 401:
            token = await self._tokens.refreshed(token)
            outer = await self._paced_http(cost, "POST", self._batch_uri, token, body,
                                           content_type, threads)
        if outer.status != 200:
            info = error_info(outer.body)
            verdict = classify(outer.status, info.reason)
            if verdict in (Verdict.RATE_LIMITED, Verdict.UNAVAILABLE):
                raise _Transient(verdict, f"batch answered {outer.status} {info.message}",
                                 status=outer.status, reason=info.reason,
                                 retry_after=retry_after_seconds(outer.headers.get("retry-after")))
            raise GmailError(f"batch failed: {outer.status} {info.message}",
                             status=outer.status, reason=info.reason)
        try:
            parts = batch_format.decode(outer.headers.get("content-type", ""), outer.body, ids)
        except batch_format.BatchFormatError as exc:
            raise _Transient(Verdict.UNAVAILABLE, str(exc)) from None
        answers = [_Answer(p.status, p.headers, p.body) for p in parts]
        if any(a.status == 401 for a in answers):
            # The token expired between the outer call and a part: refresh, resend those.
            await self._tokens.refreshed(token)
            raise _Transient(Verdict.UNAVAILABLE, "batch part answered 401", status=401)
        return answers

