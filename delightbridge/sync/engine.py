"""The sync engine's entry point, shared by the API, the consumer and the CLI.

``SyncEngine.sync(service_id, mode=..., trigger=...)`` takes the service's lock, opens
a run (a ``delightbridge_sync.runs`` row), runs a full or incremental sync with the
service's Gmail client, and records the outcome on the run and the service. No stored
cursor, or a cursor Gmail no longer has history for (404), means a full sync, recorded
as a fallback.
``invalid_grant`` disconnects the service (its data stays) and raises
:class:`ServiceNotConnected`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import uuid
from collections.abc import AsyncIterator, Callable, Collection
from contextlib import asynccontextmanager
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime

import aiohttp
import asyncpg

from delightbridge.core import logs
from delightbridge.core.errors import (
    DailyBudgetExhausted,
    DatabaseError,
    DelightBridgeError,
    HistoryExpired,
    OAuthRefused,
    ServiceNotConnected,
    ServiceNotFound,
    SyncInProgress,
)
from delightbridge.core.settings import Settings
from delightbridge.db import imports as imports_db
from delightbridge.db import services as services_db
from delightbridge.sync import crypto, imports
from delightbridge.sync.budget import SHARED_USER_WINDOW, BudgetConfig, SharedBudget
from delightbridge.sync.context import SyncContext
from delightbridge.sync.gmail import oauth
from delightbridge.sync.gmail.calls import CallBuilder, call_builder
from delightbridge.sync.gmail.client import GmailClient
from delightbridge.sync.gmail.oauth import AccessToken, OAuthClient, ServiceTokens
from delightbridge.sync.gmail.pacing import QuotaPacer
from delightbridge.sync.gmail.quota import QuotaProfile, profile_from_settings
from delightbridge.sync.gmail.retry import RetryPolicy
from delightbridge.sync.incremental import apply, run_incremental
from delightbridge.sync.lock import IMPORT_CLASS, service_lock
from delightbridge.sync.observer import SyncObserver
from delightbridge.sync.runs import Mode, Progress, Run, SyncResult, Trigger
from delightbridge.sync.store import advance_cursor

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class EngineConfig:
    gmail_api_endpoint: str
    batch_uri: str
    batch_size: int
    oauth: OAuthClient
    keyring: crypto.Keyring
    quota: QuotaProfile
    concurrency: int = 4
    # Record new-mail events for the web app (EVENTS_URL is set).
    events: bool = False
    # Share of the project's daily budget imports may use (GMAIL_QUOTA_DAILY_GUARD).
    daily_guard: float = 0.9
    retry: RetryPolicy = field(default_factory=RetryPolicy)
    # Pacing: at most pace_fraction of a mailbox's budget in any window (units are
    # stamped when answered, so latency jitter needs no further margin).
    pace_fraction: float = 0.98
    # While an import runs, fresh mail can always get the units of a history.list and
    # this many messages.get at once (delightbridge.sync.gmail.pacing); beyond them, it takes
    # the import's units first as they leave the window.
    fresh_reserve_gets: int = 5
    # A mailbox's budget is shared by every process through PostgreSQL when its window
    # is this long (delightbridge.sync.budget.SHARED_USER_WINDOW; tests compress time).
    share_mailbox_budget_from: float = SHARED_USER_WINDOW

    @property
    def gmail_base_url(self) -> str:
        """The Gmail API's REST root (``…/gmail/v1/``)."""
        return f"{self.gmail_api_endpoint}/gmail/v1/"

    @classmethod
    def from_settings(cls, settings: Settings, **overrides: object) -> EngineConfig:
        config = cls(
            gmail_api_endpoint=settings.gmail_api_endpoint,
            batch_uri=settings.gmail_batch_uri,
            batch_size=settings.gmail_batch_size,
            oauth=OAuthClient(settings.google_oauth_token_uri, settings.google_client_id or "",
                              settings.google_client_secret or ""),
            keyring=crypto.Keyring(settings.token_encryption_key,
                                   settings.token_encryption_old_keys),
            events=settings.events_url is not None,
            daily_guard=settings.gmail_quota_daily_guard,
            quota=profile_from_settings(settings),
            concurrency=settings.gmail_fetch_concurrency,
        )
        return cls(**{**{f: getattr(config, f) for f in cls.__dataclass_fields__}, **overrides})


@dataclass(frozen=True, slots=True)
class ServiceRow:
    id: str
    email: str
    refresh_token: str
    stored_refresh_token: str  # as the row holds it (maybe sealed), to clear exactly it
    access_token: AccessToken | None
    last_history_id: int | None
    adopted: bool = True  # this service has run a full sync of it (see _sync_mode)
    synced_before: bool = True  # a sync of it succeeded before: not its initial import


class SyncEngine:
    def __init__(self, pool: asyncpg.Pool, config: EngineConfig, session: aiohttp.ClientSession,
                 calls: CallBuilder) -> None:
        self.pool = pool
        self.config = config
        self._session = session
        self._calls = calls
        self._pacers: dict[str, QuotaPacer] = {}
        #: The project's budget as this process leases it (shared with every process);
        #: None without one worth counting (tests and benchmarks without quota).
        self.budget = None if config.quota.name == "unlimited" else SharedBudget(
            pool, BudgetConfig.from_profile(config.quota, daily_guard=config.daily_guard))
        self._mailbox_budgets: dict[str, SharedBudget | None] = {}
        #: Told of every Gmail call and error, sync and import (the API's and the
        #: consumer's metrics).
        self.observers: list[SyncObserver] = []
        #: Who runs the imports incremental syncs turn into (the consumer's worker);
        #: None: the sync that turns into one runs it to its end.
        self.import_runner: Callable[[str], None] | None = None

    @classmethod
    @asynccontextmanager
    async def open(cls, pool: asyncpg.Pool, config: EngineConfig) -> AsyncIterator[SyncEngine]:
        calls = await call_builder(config.gmail_api_endpoint)
        timeout = aiohttp.ClientTimeout(total=120, connect=15)
        connector = aiohttp.TCPConnector(limit=100, limit_per_host=32)
        async with aiohttp.ClientSession(timeout=timeout, connector=connector) as session:
            yield cls(pool, config, session, calls)

    # ------------------------------------------------------------------ grant

    async def exchange_code(self, code: str, redirect_uri: str, verifier: str
                            ) -> oauth.GrantedTokens:
        """A connect's authorization code for the mailbox's tokens (or GrantRefused)."""
        return await oauth.exchange_code(self._session, self.config.oauth, code,
                                         redirect_uri, verifier)

    async def mailbox_address(self, access_token: str) -> str:
        """The address of the mailbox a fresh grant opens (or GrantRefused)."""
        return await oauth.mailbox_address(self._session, self.config.gmail_base_url,
                                           access_token, self.observers)

    # ------------------------------------------------------------------ sync

    async def sync(
        self,
        service_id: str,
        *,
        mode: Mode = "incremental",
        trigger: Trigger,
        wait: float | None = None,
        run_id: uuid.UUID | None = None,
        on_progress: Callable[[Progress], None] | None = None,
        on_start: Callable[[Run], None] | None = None,
        repair: Collection[str] = (),
    ) -> SyncResult:
        """Run one sync (:meth:`_sync`); its end is told to the :attr:`observers`."""
        started = time.monotonic()
        outcome = "internal"
        try:
            result = await self._sync(service_id, mode=mode, trigger=trigger, wait=wait,
                                      run_id=run_id, on_progress=on_progress,
                                      on_start=on_start, repair=repair)
            outcome = "succeeded"
            mode = result.mode
            return result
        except BaseException as exc:
            outcome = _outcome(exc)
            raise
        finally:
            for observer in self.observers:
                observer.sync_finished(mode, trigger, outcome, time.monotonic() - started)

    async def _sync(
        self,
        service_id: str,
        *,
        mode: Mode,
        trigger: Trigger,
        wait: float | None,
        run_id: uuid.UUID | None,
        on_progress: Callable[[Progress], None] | None,
        on_start: Callable[[Run], None] | None,
        repair: Collection[str],
    ) -> SyncResult:
        """Run one sync. ``wait``: seconds to wait for another sync's lock (None: fail).

        ``mode="full"`` is an import (:mod:`delightbridge.sync.imports`), run here to its end. An
        incremental sync that must become one (no cursor yet, Gmail's history expired, rows
        the web app wrote to adopt) records the import under its own run and moves the
        cursor to now, so the next incremental works at once; then, when the engine has
        an :attr:`import_runner` (the consumer's), hands the import to it and returns, or
        else runs it here to its end (its result is returned).

        ``on_start`` is called once the lock is held and the run recorded, so a caller
        running this in the background can answer "started" only when it truly has.
        ``repair``: Gmail message ids whose mirror is wrong (from verify): after the
        sync, each is read again and stored or removed.
        """
        await self._load(service_id)  # fail fast on unknown or disconnected services
        if mode == "full":
            await imports.request(self.pool, service_id, "full", run_id)
            result = await self.run_import(service_id, trigger=trigger, on_progress=on_progress,
                                           on_start=on_start)
            if result is None:
                raise SyncInProgress(service_id)  # another process is importing it
            return result
        async with service_lock(self.pool, service_id, wait=wait):
            service = await self._load(service_id)  # the cursor may have moved meanwhile
            run = Run(self.pool, service_id, mode, trigger, run_id, on_progress)
            run.start_history_id = service.last_history_id
            await run.start()
            if on_start:
                on_start(run)
            try:
                handed = await self._incremental(service, run, repair)
            except BaseException as exc:
                await self._record_failure(service, run, exc)
                if isinstance(exc, OAuthRefused):
                    raise ServiceNotConnected(service_id, exc.reason) from None
                raise
            if not handed:
                return await self._succeeded(service_id, run, trigger)
        # The run continues as an import, outside the sync lock.
        if self.import_runner is not None:
            self.import_runner(service_id)
            return run.result()
        result = await self.run_import(service_id, trigger=trigger, on_progress=on_progress,
                                       requested=mode)
        return result if result is not None else run.result()

    async def _succeeded(self, service_id: str, run: Run, trigger: Trigger) -> SyncResult:
        await run.finish()
        await services_db.mark_succeeded(self.pool, service_id=service_id,
                                         full=run.mode == "full")
        result = run.result()
        log.info("sync finished", extra={
            "action": "sync.finished", "service": service_id, "mode": result.mode,
            "trigger": trigger, "run": str(result.run_id),
            "messages": result.messages_processed, "threads": result.threads_processed,
            "history_id": result.history_id, "seconds": round(result.duration, 3)})
        return result

    async def _incremental(self, service: ServiceRow, run: Run,
                           repair: Collection[str] = ()) -> bool:
        """The incremental sync; True when it became an import (handed on, run open)."""
        ctx = self._context(service, run)
        kind = self._needs_import(service) or await self._adoption(service)
        if kind is None:
            assert service.last_history_id is not None
            try:
                await run_incremental(ctx, service.last_history_id)
            except HistoryExpired:
                log.warning("history expired: a repairing import follows", extra={
                    "action": "sync.history_expired", "service": service.id,
                    "cursor": service.last_history_id})
                kind = "repair"
        if kind is None:
            if repair:
                run.progress.phase = "repairing"
                await apply(ctx, set(repair), ())
            return False
        # Incrementals go on from now, beside the import, which takes up this run.
        profile = await ctx.client.profile()
        await advance_cursor(self.pool, service.id, int(profile["historyId"]))
        import_run = await imports.request(self.pool, service.id, kind, run.id)
        run.mode, run.fell_back_to_full = "full", True
        if import_run != run.id:
            # An import was pending or running already: it covers this, or (history lost
            # while it ran) the repair now queued to follow it does.
            run.progress.phase = "import already running"
            await self._succeeded(service.id, run, run.trigger)
            return True
        run.progress.phase = "import requested"
        await run.save_progress()
        return True

    @staticmethod
    def _needs_import(service: ServiceRow) -> imports.Kind | None:
        return "full" if service.last_history_id is None else None

    async def _adoption(self, service: ServiceRow) -> imports.Kind | None:
        if service.adopted or not await services_db.has_unknown_messages(
                self.pool, service_id=service.id):
            return None
        # Taking over from the web app's own sync: its rows carry no labels here, so
        # threads would keep their statuses only as the web app last saw them. An import
        # reconciles every row with Gmail first (once: it marks the service).
        log.info("adopting rows written by the web app: an import first", extra={
            "action": "sync.adopt", "service": service.id})
        return "full"

    def _context(self, service: ServiceRow, run: Run, *, bulk: bool = False) -> SyncContext:
        return SyncContext(self.pool, self.client_for(service, bulk=bulk), service.id,
                           service.email, run,
                           emit_events=self.config.events and service.synced_before)

    async def run_import(
        self,
        service_id: str,
        *,
        trigger: Trigger,
        on_progress: Callable[[Progress], None] | None = None,
        on_start: Callable[[Run], None] | None = None,
        requested: Mode = "full",
    ) -> SyncResult | None:
        """Run (or resume) the service's pending import to its end, under its import lock;
        None when there is none, or another process holds it. ``requested``: the mode of
        the sync that turned into it, as its result says."""
        async with contextlib.AsyncExitStack() as stack:
            try:
                await stack.enter_async_context(
                    service_lock(self.pool, service_id, lock_class=IMPORT_CLASS))
            except SyncInProgress:
                self._import_finished(service_id, "not_run")
                return None
            result: SyncResult | None = None
            # One import, and the repair that follows it when Gmail's history expired
            # while it ran (imports.run leaves that one pending).
            while (job := await imports.get(self.pool, service_id)) is not None and (
                    job.status in ("pending", "running")):
                result = await self._import(job, trigger, on_progress, on_start, requested)
                on_start, requested = None, "full"
            return result
        raise AssertionError("unreachable")  # pragma: no cover - the stack re-raises

    async def _import(self, job: imports.ImportJob, trigger: Trigger,
                      on_progress: Callable[[Progress], None] | None,
                      on_start: Callable[[Run], None] | None, requested: Mode) -> SyncResult:
        """Run one import, under the import lock the caller holds."""
        service_id = job.service_id
        service = await self._load(service_id)

        def progress(p: Progress) -> None:
            if on_progress is not None:
                on_progress(p)
            for observer in self.observers:
                observer.import_progress(service_id, p)

        run = Run(self.pool, service_id, requested, trigger, job.run_id, progress)
        run.mode = "full"
        await run.start()
        if on_start:
            on_start(run)
        try:
            await imports.run(self._context(service, run, bulk=True), job)
        except BaseException as exc:
            self._import_finished(service_id, ServiceNotConnected.code if isinstance(
                exc, OAuthRefused) else _outcome(exc))
            if isinstance(exc, DailyBudgetExhausted):
                # Not a failure: the day's budget is kept for fresh mail; resume then.
                await asyncio.shield(imports_db.defer(
                    self.pool, service_id=service_id, run_id=job.run_id,
                    until=exc.resumes_at, reason=str(exc)))
            elif not isinstance(exc, asyncio.CancelledError):
                # Failed: it stays so until a sync asks for it again, and resumes
                # then; cancelled (a stop): it stays running, to be resumed.
                await asyncio.shield(imports_db.finish(
                    self.pool, service_id=service_id, run_id=job.run_id, status="failed",
                    error=logs.scrub(f"{type(exc).__name__}: {exc}")[:1000]))
            await self._record_failure(service, run, exc)
            if isinstance(exc, OAuthRefused):
                raise ServiceNotConnected(service_id, exc.reason) from None
            raise
        result = await self._succeeded(service_id, run, trigger)
        self._import_finished(service_id, "succeeded")
        return result

    def _import_finished(self, service_id: str, outcome: str) -> None:
        for observer in self.observers:
            observer.import_finished(service_id, outcome)

    async def _record_failure(self, service: ServiceRow, run: Run, exc: BaseException) -> None:
        code = _outcome(exc)
        if code == "cancelled":
            message = "the sync was stopped before it finished"
        elif isinstance(exc, DelightBridgeError):
            message = logs.scrub(str(exc))
        else:
            message = f"{type(exc).__name__}: {logs.scrub(str(exc))}"[:1000]
        log.log(logging.INFO if code == "cancelled" else logging.ERROR, "sync failed: %s",
                message, extra={"action": "sync.failed", "service": service.id,
                                "run": str(run.id), "error_code": code})
        try:
            await run.finish(error_code=code, error=message)
            if isinstance(exc, OAuthRefused):
                await asyncio.shield(services_db.disconnect(
                    self.pool, service_id=service.id,
                    refresh_token=service.stored_refresh_token, reason=exc.reason))
            elif code != "cancelled":
                await asyncio.shield(services_db.mark_failed(
                    self.pool, service_id=service.id, error=f"{code}: {message}"))
        except DatabaseError:
            log.exception("could not record the failed sync", extra={
                "action": "sync.record_failed", "service": service.id})

    # ------------------------------------------------------------------ services

    async def _load(self, service_id: str) -> ServiceRow:
        row = await services_db.for_sync(self.pool, service_id=service_id)
        if row is None:
            raise ServiceNotFound(service_id)
        if not row.refresh_token:
            raise ServiceNotConnected(service_id, row.disconnected_reason)
        cursor = row.last_history_id
        service = self.service_from_tokens(
            service_id, row.email, row.refresh_token, row.access_token,
            row.access_token_expires_at,
            last_history_id=int(cursor) if cursor and cursor.isdigit() else None)
        return replace(service, adopted=row.last_full_sync_at is not None,
                       synced_before=row.last_synced_at is not None)

    def service_from_tokens(self, service_id: str, email: str, refresh_token: str,
                            access_token: str | None, access_expires_at: datetime | None,
                            *, last_history_id: int | None = None) -> ServiceRow:
        """A service from its tokens as stored (unsealed here; also for queued watch stops)."""
        keys = self.config.keyring
        refresh = crypto.unseal(refresh_token, keys, account_id=service_id,
                                column="refresh_token")
        access = None
        if access_token and access_expires_at:
            value = crypto.unseal(access_token, keys, account_id=service_id,
                                  column="access_token")
            access = AccessToken(value, access_expires_at.timestamp())
        return ServiceRow(
            id=service_id, email=email, refresh_token=refresh,
            stored_refresh_token=refresh_token, access_token=access,
            last_history_id=last_history_id,
        )

    def client_for(self, service: ServiceRow, *, bulk: bool = False) -> GmailClient:
        """A Gmail client for ``service`` (also used by watch renewal); ``bulk``: an
        import's, whose calls yield to fresh mail's."""

        async def persist(token: AccessToken) -> None:
            # Plain: the web app sends mail with the access token it finds there.
            expires = datetime.fromtimestamp(token.expires_at, UTC)
            await services_db.store_access_token(
                self.pool, service_id=service.id, access_token=token.value, expires_at=expires,
                refresh_token=service.stored_refresh_token)

        tokens = ServiceTokens(self._session, self.config.oauth, service.refresh_token,
                               service.access_token, persist)
        return GmailClient(
            self._session, self._calls, tokens, self.pacer_for(service.id),
            costs=self.config.quota.costs, budget=self.budget,
            mailbox_budget=self.mailbox_budget_for(service.id), bulk=bulk,
            listeners=self.observers, batch_uri=self.config.batch_uri,
            batch_size=self.config.batch_size, concurrency=self.config.concurrency,
            policy=self.config.retry,
        )

    def pacer_for(self, service_id: str) -> QuotaPacer:
        """The mailbox's pacer, one per engine: every client of the mailbox in this
        process (a sync, a renewal, a disconnect) draws on the same budget."""
        pacer = self._pacers.get(service_id)
        if pacer is None:
            quota = self.config.quota
            pacer = self._pacers[service_id] = QuotaPacer(
                quota.user_units * self.config.pace_fraction, window=quota.user_window,
                reserve=self._fresh_reserve())
        return pacer

    def mailbox_budget_for(self, service_id: str) -> SharedBudget | None:
        """The mailbox's budget as every process shares it (minute-long windows only:
        :mod:`delightbridge.sync.budget`); imports leave fresh mail's reserve free in it."""
        if service_id not in self._mailbox_budgets:
            config = BudgetConfig.for_mailbox(self.config.quota,
                                              margin=self.config.pace_fraction,
                                              reserve=int(self._fresh_reserve()),
                                              shared_from=self.config.share_mailbox_budget_from)
            self._mailbox_budgets[service_id] = None if config is None else SharedBudget(
                self.pool, config, scope=f"user:{service_id}")
        return self._mailbox_budgets[service_id]

    def _fresh_reserve(self) -> float:
        """Units fresh mail can always get: one history.list and fresh_reserve_gets
        messages.get (at most half the mailbox's budget)."""
        quota = self.config.quota
        return min(quota.user_units * self.config.pace_fraction / 2,
                   quota.cost("history.list")
                   + self.config.fresh_reserve_gets * quota.cost("messages.get"))

    async def reachable(self, service_id: str) -> None:
        """One ``getProfile`` (1 unit) before any lock is taken: an unreachable Gmail, an
        unknown service or a revoked grant fails here, in seconds, holding nothing (an
        operator's command must not keep a mailbox's lock while it retries)."""
        await self.client_for(await self._load(service_id)).profile()

    async def service(self, service_id: str) -> ServiceRow:
        return await self._load(service_id)


def _outcome(exc: BaseException) -> str:
    """A sync's or an import's outcome, as metrics label it, from what it raised."""
    if isinstance(exc, asyncio.CancelledError):
        return "cancelled"
    if isinstance(exc, DelightBridgeError):
        return exc.code
    return "internal"
