"""Sender: creates the meetings concurrently, as fast as HubSpot allows and never twice.

Workers take rows from a queue; every request waits for its turn at the run's pacer (importer.pacing).
Around each create the ledger records `sending` before (a chunk's rows in one commit, as the chunk comes)
and `created` after. Only an answer that proves nothing was created allows an immediate resend: a 429, a
423/477, a connection that never opened. Every other failure after the request went out (a 5xx, a timeout, a reset, a 2xx without an id) leaves the
outcome unknown: the row is set aside in doubt and searched for, at RECHECKS times HubSpot's search lag
after the attempt, because a negative search may only mean the index has not caught up. A meeting the
search finds is adopted only when it is surely this row's (importer.existing.match, and no other row
holds its id); the row is sent again only after every search came back empty. A row still unsettled when
the run ends stays in doubt, and the next run searches for it first, counting the lag from its own start:
the lock proves the old process sends nothing after that.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import sqlite3
import time
from collections import deque
from collections.abc import AsyncIterable, AsyncIterator, Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Generic, Literal, TypeVar

import httpx

from importer import problems as codes
from importer.changes import Change, snapshot
from importer.errors import AuthError
from importer.existing import Finding, find_exact, narrow
from importer.hubspot import (
    RETRIABLE_READ_ERRORS,
    ApiError,
    AuthFailed,
    CreatedWithoutId,
    DailyLimitReached,
    HubSpotClient,
    HubSpotError,
    NotSent,
    OutcomeUnknown,
    RateLimited,
    Rejected,
    ServerError,
    TryLater,
)
from importer.ledger import IN_DOUBT, Entry, Ledger
from importer.mapper import ASSOCIATION_TYPE_IDS, CreateRequest
from importer.messages import N_, _, ngettext
from importer.models import RowOutcome, RowStatus

log = logging.getLogger(__name__)

StopKind = Literal["signal", "daily_limit", "token_refused", "lookups_failed", "hubspot_failing", "error"]
"""Why a run stopped, for monitoring (`--summary-json`'s `stop_kind`): the reason itself is in the run's
language."""
DAILY_LIMIT_REACHED = N_("HubSpot's daily request limit is reached")
TOKEN_REFUSED = N_("HubSpot refused the access token")
RETRIABLE_CREATE_ERRORS: tuple[type[HubSpotError], ...] = (RateLimited, TryLater, NotSent)
"""Errors after which HubSpot certainly did not create the meeting, and may on another try."""
UNKNOWN_CREATE_ERRORS: tuple[type[HubSpotError], ...] = (OutcomeUnknown, ServerError)
"""Errors after which HubSpot may have created the meeting: never resent before a search."""
HUBSPOT_TROUBLE = RETRIABLE_READ_ERRORS
"""Errors that are HubSpot's state, not the row's (the ones a read retries): unreachable, no answer, a 5xx,
a 423, 429s through every retry."""
FAILING_IN_A_ROW = 20
"""Requests in a row (a create, a batch, an update; each attempt of a look-up whose retries ran out) that
ended in HUBSPOT_TROUBLE, none answered between them: HubSpot is down. Sending then pauses, a thirtieth
of `outage_s` at first and twice as long after each next failure (at most a fifth), and goes on one
request at a time, a probe after each pause, until one is answered: a break costs a pause, not a row for
every request sent into it (each failed, or in doubt: a search). Look-ups that fail wait as long, on
their own. Once every request has failed for `outage_s`, the run stops; the next run sends the rest."""
HUBSPOT_FAILING = N_("HubSpot failed every request for {seconds} s ({count} in a row; the last: {error})")
HUBSPOT_PAUSE = N_(
    "HubSpot failed {count} requests in a row (the last: {error}); sending again in {seconds} s"
)
LOOKUPS_PAUSE = N_(
    "HubSpot failed the look-ups through every retry (the last: {error}); looking up again in {seconds} s"
)


class OutageWatch:
    """Whether HubSpot is down, from what the run's requests for rows came to: each sender's creates,
    batches and updates, and the look-ups'. One for the whole run: the run stops once, when every request
    of every stage has failed for `outage_s`, and not while any stage is still answered (HubSpot's
    search down, say, while its creates work)."""

    def __init__(self, outage_s: float = 300.0, clock: Callable[[], float] = time.time) -> None:
        self.outage_s = outage_s
        self._clock = clock
        self.failing = 0  # requests in a row that HubSpot failed, and since when
        self._since = 0.0
        self._pauses = 0  # the senders' since the last answer
        self._lookup_pauses = 0
        self.paused_until = -math.inf
        self.down = False  # the senders paused: until a request is answered they go one at a time
        self.one_at_a_time = asyncio.Lock()  # the senders' probes after a pause
        self.verdict: str | None = None  # the stop's reason, once HubSpot is down for good
        self._on_verdict: list[Callable[[str], None]] = []
        self._woken = asyncio.Event()  # bound to the run's loop on first use, as the lock is

    def on_verdict(self, stop: Callable[[str], None]) -> None:
        """Call `stop(reason)` once HubSpot has failed every request for `outage_s`."""
        self._on_verdict.append(stop)

    def heard(self, error: HubSpotError | None = None) -> None:
        """What a sender's request came to: answered (None, or an error of the row's own, a 400 say) or
        failed by HubSpot. FAILING_IN_A_ROW failed in a row pause the senders."""
        if not isinstance(error, HUBSPOT_TROUBLE):
            self.failing = self._pauses = self._lookup_pauses = 0
            self.down = False
            return
        now = self._failed()
        if self.failing < FAILING_IN_A_ROW or now < self.paused_until or self._over(now, error):
            return  # too few yet, a request sent before the pause, or the run stops
        pause = self._length(self._pauses)
        self._pauses += 1
        self.paused_until, self.down = now + pause, True
        log.warning("%s", _(HUBSPOT_PAUSE).format(count=self.failing, error=error, seconds=_told(pause)))

    def lookup_failed(self, error: HubSpotError) -> float | None:
        """A look-up whose retries all ended in HUBSPOT_TROUBLE, each counted as a failure in a row: the
        seconds the look-ups wait before they ask again, or None once the run stops. The pauses are the
        senders' lengths, but the look-ups' own: creates HubSpot answers meanwhile go on."""
        now = self._failed(error.attempts)
        if self._over(now, error):
            return None
        pause = self._length(self._lookup_pauses)
        self._lookup_pauses += 1
        log.warning("%s", _(LOOKUPS_PAUSE).format(error=error, seconds=_told(pause)))
        return pause

    async def wait(self, seconds: float) -> None:
        """Sleep `seconds`; a stop of the run (see `wake`) ends it at once."""
        if not self._woken.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._woken.wait(), seconds)

    def wake(self) -> None:
        """The run is stopping: no look-up waits any more."""
        self._woken.set()

    def _failed(self, requests: int = 1) -> float:
        now = self._clock()
        if self.failing == 0:
            self._since = now
        self.failing += requests
        return now

    def _over(self, now: float, error: HubSpotError) -> bool:
        """Whether the run stops: it does (told once) when every request has failed for `outage_s`."""
        if self.verdict is None and now - self._since >= self.outage_s:
            seconds = _told(now - self._since)
            self.verdict = _(HUBSPOT_FAILING).format(seconds=seconds, count=self.failing, error=error)
            for stop in self._on_verdict:
                stop(self.verdict)
            self.wake()
        return self.verdict is not None

    def _length(self, pauses: int) -> float:
        """A thirtieth of `outage_s` at first, twice as long after each next failure, at most a fifth."""
        return min(self.outage_s / 30 * 2.0**pauses, self.outage_s / 5)


def _told(seconds: float) -> str:
    return f"{seconds:.0f}" if seconds >= 10 else f"{seconds:.1f}"  # a short outage_s: no "0 s"


RECHECKS = (1, 3, 10)
"""A row in doubt is searched for at these multiples of `search_lag_s` after its attempt (30 s, 90 s and
300 s by default); it is sent again only when all of them found nothing."""


@dataclass(frozen=True, slots=True)
class SendJob:
    """One row to create: its index in the results, its key (identity) and its request."""

    index: int
    row_key: str
    request: CreateRequest
    content_key: str | None = None  # the row's content fingerprint, kept in the ledger with the snapshot


@dataclass(frozen=True, slots=True)
class UpdateJob:
    """One edited row: the meeting it has, and the change that brings it to the row's content."""

    job: SendJob
    meeting_id: str
    change: Change


@dataclass(frozen=True, slots=True)
class _Ready:
    """A create's request and the ledger's snapshot of it, made before its turn. Its row is marked
    `sending` already; `before`, its entry until then (None: a new row)."""

    request: httpx.Request
    snapshot: str
    before: Entry | None


@dataclass
class _Doubt:
    job: SendJob
    since: float  # wall-clock time from which HubSpot's search lag is counted
    why: list[str]  # each reason, in the user's language
    checks: int = 0
    earlier_run: bool = False
    surely_created: bool = False  # a 2xx without an id: never sent again, only searched for


T = TypeVar("T")


class Feed(Generic[T]):
    """Chunks of work handed from the look-ups to a sender as they are ready. `put` waits while `ahead`
    chunks are waiting, so the look-ups run only a little ahead of the sending (and the requests they
    build are not all held at once); a sender that stops abandons its feed, and `put` then drops."""

    def __init__(self, ahead: int = 2) -> None:
        self._chunks: deque[Sequence[T]] = deque()
        self._ahead = ahead
        self._closed = False
        self._abandoned = False
        self._changed = asyncio.Event()

    async def put(self, chunk: Sequence[T]) -> None:
        while len(self._chunks) >= self._ahead and not self._abandoned:
            await self._wait()
        if chunk and not self._abandoned:
            self._chunks.append(chunk)
            self._changed.set()

    def close(self) -> None:
        """No more chunks: the sender finishes what it was given."""
        self._closed = True
        self._changed.set()

    def abandon(self) -> None:
        self._abandoned = True
        self._chunks.clear()
        self._changed.set()

    async def __aiter__(self) -> AsyncIterator[Sequence[T]]:
        while not self._abandoned:
            if self._chunks:
                chunk = self._chunks.popleft()
                self._changed.set()  # room for the next one
                yield chunk
            elif self._closed:
                return
            else:
                await self._wait()

    async def _wait(self) -> None:
        # One event loop: nothing changes between the test above and this clear.
        self._changed.clear()
        await self._changed.wait()


Jobs = Sequence[T] | AsyncIterable[Sequence[T]]
"""The jobs of a run: all at once, or in chunks as the look-ups make them."""


class Sender:
    """Sends jobs with `client`, recording every move in `ledger`."""

    def __init__(
        self,
        client: HubSpotClient,
        ledger: Ledger,
        *,
        run_id: str,
        concurrency: int,
        max_attempts: int,
        search_lag_s: float,
        on_outcome: Callable[[int, RowOutcome], None] = lambda index, outcome: None,
        daily_remaining: Callable[[], int | None] = lambda: None,
        clock: Callable[[], float] = time.time,
        sleep: Callable[[float], Awaitable[None]] | None = None,
        recreate_missing: bool = False,
        on_phase: Callable[[str], None] = lambda text: None,
        watch: OutageWatch | None = None,
    ) -> None:
        self._recreate_missing = recreate_missing
        self._on_phase = on_phase
        self._client = client
        self._ledger = ledger
        self._run_id = run_id
        self._concurrency = concurrency
        self._max_attempts = max_attempts
        self._search_lag_s = search_lag_s
        self._on_outcome = on_outcome
        self._daily_remaining = daily_remaining  # from HubSpot's X-HubSpot-RateLimit-Daily-Remaining
        self._clock = clock
        self._sleep = sleep or self._pause
        self._started = clock()
        self._stopped: asyncio.Event | None = None
        self._wakers: set[asyncio.Event] = set()  # of the work queues waiting for a chunk: a stop ends them
        self._attempts: dict[int, int] = {}  # of the jobs not yet finished
        self._doubts: list[_Doubt] = []
        # Jobs given and not yet finished, by row index: only these are held, not every job of the run.
        self._unfinished_creates: dict[int, SendJob] = {}
        self._unfinished_updates: dict[int, SendJob] = {}
        # Built with their chunk, warm, not each alone after its wait (see HubSpotClient.create_request).
        self._ready: dict[int, _Ready] = {}
        self._watch = watch or OutageWatch(clock=clock)  # the run's, shared with its other stages
        self._watch.on_verdict(lambda reason: self.stop(reason, "hubspot_failing"))
        self.stop_reason: str | None = None
        self.stop_kind: StopKind | None = None
        self.auth_error: AuthFailed | None = None

    def stop(self, reason: str, kind: StopKind = "signal") -> None:
        """Take no more rows (a signal, the daily cap, a refused token, HubSpot failing); rows in flight
        finish. The first reason, and its kind, stay."""
        if self.stop_reason is None:
            self.stop_reason, self.stop_kind = reason, kind
        if self._stopped is not None:
            self._stopped.set()
        for waker in self._wakers:
            waker.set()
        self._watch.wake()  # the look-ups' pause too: the run takes no more rows

    def _heard(self, error: HubSpotError | None = None) -> None:
        """What a request for a row came to, told to the run's outage watch."""
        self._watch.heard(error)

    async def _pause(self, seconds: float) -> None:
        """Sleep, but wake at once when the run stops: waiting out the search lag is no work in flight."""
        if self._stopped is None:
            self._stopped = asyncio.Event()
        if self.stop_reason is not None:
            return
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._stopped.wait(), seconds)

    async def send_all(self, jobs: Jobs[SendJob]) -> None:
        """An outcome for every job, told to `on_outcome`: created, skipped (HubSpot had it), failed, in
        doubt or not sent. None is kept here once told: a big run's would all stay objects."""
        given = self._unfinished_creates

        async def fresh() -> AsyncIterator[Sequence[SendJob]]:
            async for chunk in in_chunks(jobs):
                given.update((job.index, job) for job in chunk)
                yield self._fresh(chunk)

        try:
            await self._run_queue(fresh())
            await self._settle_doubts()
        except BaseException:
            with contextlib.suppress(sqlite3.Error):  # else they stay `sending`: searched, never resent blind
                self._unmark_unsent()
            raise
        self._unmark_unsent()
        for doubt in self._doubts:
            self._finish(doubt.job, self._unsettled(doubt))
        for job in list(given.values()):
            self._finish(job, self._not_sent(attempts=self._tries(job)))
        self._raise_auth_error()

    def _fresh(self, jobs: Sequence[SendJob]) -> list[SendJob]:
        """The jobs to send now; those the ledger knows are settled, or set aside in doubt, here."""
        ledger = self._ledger.entries(job.row_key for job in jobs)
        fresh: list[SendJob] = []
        for job in jobs:
            entry = ledger.get(job.row_key)
            if entry is not None and entry.state == "created":
                self._finish(job, RowOutcome(RowStatus.SKIPPED, entry.meeting_id))
            elif entry is not None and entry.state in IN_DOUBT:
                why = (
                    _("an earlier run lost HubSpot's answer ({detail})").format(detail=entry.error)
                    if entry.error
                    else _("an earlier run ended before HubSpot's answer came, maybe before sending it")
                )
                self._doubts.append(_Doubt(job, self._started, [why], earlier_run=True))
            else:
                fresh.append(job)
        self._prepare(fresh, ledger)
        return fresh

    def _prepare(self, jobs: Sequence[SendJob], before: Mapping[str, Entry]) -> None:
        """Each job's create request and snapshot, made with its chunk's (the send takes them), and its
        `sending` mark: the chunk's in one commit. A paced create wakes on cold caches, where a commit
        of its own cost it a tenth of its CPU; a run stopped before sending a row takes its mark back
        (_unmark_unsent), and a killed one leaves it in doubt: searched for, never sent blind."""
        if not jobs:
            return
        self._mark_sending(jobs)
        for job in jobs:
            request = job.request
            made = self._client.create_request(request.organizer_user_id, request.body)
            self._ready[job.index] = _Ready(made, snapshot(request), before.get(job.row_key))

    def _mark_sending(self, jobs: Iterable[SendJob]) -> None:
        """Each job's row `sending`, all in one commit (and one sync)."""
        with self._ledger.transaction():
            for job in jobs:
                request = job.request
                self._ledger.mark_sending(
                    job.row_key, request.owner_id, request.start_ms, request.title, self._run_id
                )

    def _unmark_unsent(self) -> None:
        """The rows marked with their chunk that the run stopped before sending, as they were: the next
        run sends them without a search."""
        unsent, self._ready = self._ready, {}
        if not unsent:
            return
        with self._ledger.transaction():
            for index, ready in unsent.items():
                self._ledger.unmark(self._unfinished_creates[index].row_key, ready.before)

    def _not_sent(self, detail: HubSpotError | None = None, attempts: int = 0) -> RowOutcome:
        """A row the run stopped before sending (or while retrying it): the next run sends it."""
        if self.stop_reason is None:
            return RowOutcome(RowStatus.NOT_SENT, attempts=attempts)
        reason: codes.Param = self.stop_reason
        if detail is not None:
            reason = codes.Text(
                N_("{reason} ({detail})"), {"reason": self.stop_reason, "detail": str(detail)}
            )
        stopped = codes.Problem(codes.RUN_STOPPED, params={"reason": reason})
        return codes.outcome(RowStatus.NOT_SENT, stopped, attempts=attempts)

    def _raise_auth_error(self) -> None:
        if self.auth_error is not None:
            raise AuthError(_("HubSpot refused the access token: {error}").format(error=self.auth_error))

    async def update_all(self, updates: Jobs[UpdateJob]) -> None:
        """Bring each edited row's meeting to the row's content: updated, failed or not sent (told to
        `on_outcome`)."""
        given = self._unfinished_updates

        async def taken() -> AsyncIterator[Sequence[UpdateJob]]:
            async for chunk in in_chunks(updates):
                given.update((update.job.index, update.job) for update in chunk)
                yield chunk

        await self._run_queue(taken(), self._update)
        for job in list(given.values()):
            self._finish(job, self._not_sent())
        self._raise_auth_error()

    async def _run_queue(
        self, jobs: Jobs[Any], handle: Callable[[Any], Awaitable[None]] | None = None
    ) -> None:
        """Send `jobs` with `concurrency` workers; chunks that arrive later join the queue as they come."""
        await self._work(in_chunks(jobs), lambda chunk: chunk, handle or self._send)

    async def _work(
        self,
        chunks: AsyncIterable[Sequence[Any]],
        items: Callable[[Sequence[Any]], Iterable[Any]],
        handle: Callable[[Any], Awaitable[Iterable[Any] | None]],
    ) -> None:
        """Workers take `items(chunk)` of each chunk as it arrives and `handle` each; what `handle` returns
        (a batch's halves) goes back in the queue. Ends once the chunks are over and every item handled,
        or when the run stops (the rest is left unsent).

        The next chunk is taken only once the queue is down to a worker's item each: the chunks waiting in
        `chunks` are then enough to go on, and the look-ups that make them wait in turn, instead of
        running a whole sheet ahead of the sending with every row's request held in the queue."""
        queue: deque[Any] = deque()
        changed, room = asyncio.Event(), asyncio.Event()
        state = {"feeding": True, "busy": 0}

        async def feed() -> None:
            try:
                async for chunk in chunks:
                    queue.extend(items(chunk))
                    changed.set()
                    while len(queue) > self._concurrency and self.stop_reason is None:
                        room.clear()
                        await room.wait()
                    if self.stop_reason is not None:
                        return
            except Exception as error:
                # A chunk that could not be taken (its ledger marks on a full disk): as a worker's failure.
                self.stop(str(error), "error")
                raise
            finally:
                state["feeding"] = False
                changed.set()

        async def worker() -> None:
            while self.stop_reason is None:
                if self._daily_remaining() == 0:
                    self.stop(_(DAILY_LIMIT_REACHED), "daily_limit")
                    return
                if not queue:
                    if not state["feeding"] and not state["busy"]:
                        return
                    changed.clear()
                    await changed.wait()
                    continue
                item = queue.popleft()
                if len(queue) <= self._concurrency:
                    room.set()
                state["busy"] += 1
                try:
                    queue.extend(await self._handled(item, handle) or ())
                except Exception as error:
                    # A failure no row's outcome covers (a results checkpoint on a full disk, say): the
                    # other workers take no more rows, and finish the ones in flight, recorded.
                    self.stop(str(error), "error")
                    raise
                finally:
                    state["busy"] -= 1
                    changed.set()

        feeding = asyncio.ensure_future(feed())
        workers = [asyncio.ensure_future(worker()) for _ in range(self._concurrency)]
        self._wakers.update((changed, room))
        try:
            await asyncio.gather(*workers)
        except Exception:
            await asyncio.gather(*workers, return_exceptions=True)  # the others' rows in flight, first
            raise
        finally:
            self._wakers.difference_update((changed, room))
            if not feeding.done():
                feeding.cancel()  # stopped: a feed waiting for look-ups has nothing more to give
            await asyncio.gather(feeding, return_exceptions=True)
        if not feeding.cancelled() and (failure := feeding.exception()) is not None:
            raise failure

    async def _handled(self, item: Any, handle: Callable[[Any], Awaitable[Iterable[Any] | None]]) -> Any:
        """`handle(item)`; while HubSpot is failing (FAILING_IN_A_ROW), one item at a time, after the pause:
        each a probe whether HubSpot is back. One the run stopped meanwhile is left unsent."""
        if not self._watch.down:
            return await handle(item)
        async with self._watch.one_at_a_time:
            if (pause := self._watch.paused_until - self._clock()) > 0:
                await self._sleep(pause)  # a stop wakes it
            if self.stop_reason is not None:
                return None
            return await handle(item)

    async def _update(self, update: UpdateJob) -> None:
        """PATCH the properties, then remove and add associations. Each step is safe to repeat, so the
        client retries them on every transient error; a run stopped halfway leaves the ledger's old
        snapshot, and the next run sends what is still different."""
        job, meeting_id, change = update.job, update.meeting_id, update.change
        try:
            if change.properties:
                await self._client.update_meeting(meeting_id, change.properties)
            for object_type, ids in _by_type(change.remove).items():
                await self._client.dissociate(object_type, [(meeting_id, i) for i in ids])
            for object_type, ids in _by_type(change.add).items():
                type_id = ASSOCIATION_TYPE_IDS[object_type]
                await self._client.associate(object_type, [(meeting_id, i, type_id) for i in ids])
        except Rejected as error:
            self._heard(error)
            if error.status == 404 and self._recreate_missing:
                self._ledger.forget(job.row_key)
                await self._send(job)
                return
            if error.status == 404:
                deleted = codes.Problem(codes.MEETING_DELETED, params={"meeting_id": meeting_id})
                self._finish(
                    job,
                    codes.outcome(
                        RowStatus.FAILED,
                        deleted,
                        meeting_id=meeting_id,
                        http_status=404,
                        correlation_id=error.correlation_id,
                    ),
                )
                return
            self._fail(job, error, mark=False)
            return
        except HubSpotError as error:
            self._fail(job, error, mark=False)
            self._heard(error)
            return
        self._heard()
        self._ledger.mark_updated(job.row_key, job.content_key or "", snapshot(job.request))
        outcome = RowOutcome(RowStatus.UPDATED, meeting_id)
        self._finish(job, outcome.noted(*codes.rendered(update_notes(change))))

    async def _send(self, job: SendJob) -> None:
        request = job.request
        ready = self._ready.pop(job.index, None)
        if ready is None:  # not marked with its chunk: a resend after its searches, say
            self._ledger.mark_sending(
                job.row_key, request.owner_id, request.start_ms, request.title, self._run_id
            )

        async def attempt() -> Any:
            self._attempts[job.index] = self._tries(job) + 1
            made = ready.request if ready else None
            return await self._client.create_meeting(request.organizer_user_id, request.body, request=made)

        try:
            created = await self._client.retrying(
                attempt, RETRIABLE_CREATE_ERRORS, keep_going=lambda: self.stop_reason is None
            )
        except UNKNOWN_CREATE_ERRORS as error:
            self._ledger.mark_in_doubt(job.row_key, str(error))
            created = isinstance(error, CreatedWithoutId)
            why = _("HubSpot's answer was lost ({detail})").format(detail=error)
            self._doubts.append(_Doubt(job, self._clock(), [why], surely_created=created))
            self._heard(error)
            return
        except HubSpotError as error:
            self._fail(job, error)
            self._heard(error)
            return
        self._heard()
        sent = ready.snapshot if ready else snapshot(request)
        self._ledger.mark_created(job.row_key, created.id, content_key=job.content_key, sent=sent)
        self._created(job, created.id, created.status, created.correlation_id)

    def _created(self, job: SendJob, meeting_id: str, status: int, correlation_id: str | None) -> None:
        """The outcome of a row whose create HubSpot answered with its meeting's id."""
        outcome = RowOutcome(
            RowStatus.CREATED,
            meeting_id,
            http_status=status,
            correlation_id=correlation_id,
            attempts=self._tries(job),
        )
        self._finish(job, outcome.noted(*codes.rendered(job.request.notes)))

    def _fail(self, job: SendJob, error: HubSpotError, *, mark: bool = True) -> None:
        """A create (or update) HubSpot certainly did not carry out: record it, and stop the run if
        nothing can go. An update's row stays created in the ledger (`mark=False`)."""
        if mark:
            self._ledger.mark_failed(job.row_key, str(error))
        status = RowStatus.FAILED
        if isinstance(error, DailyLimitReached):
            self.stop(_(DAILY_LIMIT_REACHED), "daily_limit")
            status = RowStatus.NOT_SENT
        elif isinstance(error, RETRIABLE_CREATE_ERRORS) and self.stop_reason is not None:
            status = RowStatus.NOT_SENT  # retries cut short by the stop; HubSpot did not create it
        elif isinstance(error, AuthFailed) and error.status == 401:
            # A 403 on one create (a scope an association needs) is that row's; a 401 is every row's.
            self.auth_error = self.auth_error or error
            self.stop(_(TOKEN_REFUSED), "token_refused")
            status = RowStatus.NOT_SENT
        api = error if isinstance(error, ApiError) else None
        if status is RowStatus.FAILED:
            # Retries spent on answers that prove nothing was created (429, 423, a refused connection)
            # are HubSpot's unavailability; any other answer is HubSpot refusing the row.
            code = (
                codes.HUBSPOT_UNAVAILABLE
                if isinstance(error, RETRIABLE_CREATE_ERRORS)
                else codes.HUBSPOT_REFUSED
            )
            outcome = codes.outcome(status, codes.Problem(code, params={"detail": str(error)}))
        else:
            outcome = self._not_sent(error)
        outcome.http_status = api.status if api else None
        outcome.correlation_id = api.correlation_id if api else None
        outcome.attempts = self._tries(job)
        self._finish(job, outcome)

    # --- rows in doubt ---

    async def _settle_doubts(self) -> None:
        """Search for every row in doubt as its checks fall due: adopt what is surely its meeting, send it
        again once every check came back empty, until nothing is left or the run stops."""
        while self._doubts and self.stop_reason is None:
            due_at = min(self._due(doubt) for doubt in self._doubts)
            if (wait := due_at - self._clock()) > 0:
                waiting = ngettext(
                    "waiting {seconds} s for HubSpot's search to catch up ({count} row whose answer was lost)",
                    "waiting {seconds} s for HubSpot's search to catch up ({count} rows whose answer was lost)",
                    len(self._doubts),
                )
                self._on_phase(waiting.format(seconds=f"{wait:.0f}", count=len(self._doubts)))
                await self._sleep(wait)
            if self.stop_reason is not None:
                return  # stopped while waiting: they stay in doubt for the next run
            now = self._clock()
            due = [d for d in self._doubts if self._due(d) <= now]
            self._doubts = [d for d in self._doubts if self._due(d) > now]
            found = await find_exact(self._client, [d.job.request for d in due])
            taken = self._ledger.holders({i for f in found if isinstance(f, Finding) for i in f.same})
            findings = await asyncio.gather(
                *(self._narrowed(d, f, taken) for d, f in zip(due, found, strict=True)),
                return_exceptions=True,
            )
            again = [d for d, f in zip(due, findings, strict=True) if self._check(d, f, taken)]
            if self.stop_reason is not None:
                self._doubts.extend(again)  # cleared for a resend as the run stopped: still in doubt
                return
            await self._run_queue([d.job for d in again])

    async def _narrowed(
        self, doubt: _Doubt, finding: Finding | BaseException, taken: dict[str, set[str]]
    ) -> Finding | BaseException:
        """The finding, several meetings no other row holds narrowed by their associations."""
        if isinstance(finding, BaseException):
            return finding
        free = [i for i in finding.same if not (taken.get(i, set()) - {doubt.job.row_key})]
        if len(free) < 2:
            return finding
        return Finding(tuple(await narrow(self._client, doubt.job.request, free)), finding.differing)

    def _due(self, doubt: _Doubt) -> float:
        return doubt.since + self._search_lag_s * RECHECKS[doubt.checks]

    def _check(self, doubt: _Doubt, finding: Finding | BaseException, taken: dict[str, set[str]]) -> bool:
        """Settle one row in doubt from its search; True when it is to be sent again."""
        job = doubt.job
        doubt.checks += 1
        if isinstance(finding, BaseException):
            if isinstance(finding, AuthFailed) and finding.status == 401:
                self.auth_error = self.auth_error or finding
                self.stop(_(TOKEN_REFUSED), "token_refused")
            elif isinstance(finding, DailyLimitReached):
                self.stop(_(DAILY_LIMIT_REACHED), "daily_limit")
            self._keep_or_give_up(doubt)  # could not look now: a later check, or the next run
            return False
        ours = [i for i in finding.same if not (taken.get(i, set()) - {job.row_key})]
        if len(ours) == 1:
            self._ledger.mark_created(
                job.row_key, ours[0], content_key=job.content_key, sent=snapshot(job.request)
            )
            status = RowStatus.SKIPPED if doubt.earlier_run else RowStatus.CREATED
            outcome = RowOutcome(status, ours[0], attempts=self._tries(job))
            lost = codes.Problem(codes.FOUND_AFTER_LOST_ANSWER)
            self._finish(job, outcome.noted(*codes.rendered((*job.request.notes, lost))))
            taken.setdefault(ours[0], set()).add(job.row_key)
            return False
        if len(ours) > 1:
            several = _("HubSpot has several meetings that could be this row's: {ids}; not guessed")
            doubt.why = [several.format(ids=", ".join(ours))]
            self._finish(job, self._unsettled(doubt))
            return False
        if doubt.checks < len(RECHECKS):
            self._doubts.append(doubt)  # a negative search is no proof yet: the index may lag
            return False
        if doubt.surely_created:
            doubt.why.append(_("HubSpot said it created the meeting but search has not shown it yet"))
            self._finish(job, self._unsettled(doubt))
            return False
        if self._tries(job) >= self._max_attempts:
            attempts = self._tries(job)
            tried = ngettext(
                "not found in HubSpot after {count} attempt",
                "not found in HubSpot after {count} attempts",
                attempts,
            )
            doubt.why.append(tried.format(count=attempts))
            self._finish(job, self._unsettled(doubt))
            return False
        return True

    def _keep_or_give_up(self, doubt: _Doubt) -> None:
        if doubt.checks < len(RECHECKS) and self.stop_reason is None:
            self._doubts.append(doubt)
        else:
            doubt.why.append(_("its search failed"))
            self._finish(doubt.job, self._unsettled(doubt))

    def _unsettled(self, doubt: _Doubt) -> RowOutcome:
        why = (
            doubt.why
            if self.stop_reason is None
            else [*doubt.why, _("the run stopped before it was settled")]
        )
        unknown = codes.Problem(codes.OUTCOME_UNKNOWN, params={"why": codes.MESSAGE_SEPARATOR.join(why)})
        return codes.outcome(RowStatus.IN_DOUBT, unknown, attempts=self._tries(doubt.job))

    def _tries(self, job: SendJob) -> int:
        return self._attempts.get(job.index, 0)

    def _finish(self, job: SendJob, outcome: RowOutcome) -> None:
        self._unfinished_creates.pop(job.index, None)
        self._unfinished_updates.pop(job.index, None)
        self._attempts.pop(job.index, None)
        self._on_outcome(job.index, outcome)


def update_notes(change: Change) -> list[codes.Problem]:
    """What an update changes (or, in a plan, would), and what it cannot change, as warnings."""
    notes = [codes.Problem(codes.CHANGED_COLUMNS, params={"fields": ", ".join(change.fields)})]
    if change.not_updatable:
        kept = ", ".join(change.not_updatable)
        notes.append(codes.Problem(codes.NOT_UPDATABLE, params={"fields": kept}))
    return notes


def _by_type(pairs: list[tuple[str, str]]) -> dict[str, list[str]]:
    grouped: dict[str, list[str]] = {}
    for object_type, object_id in pairs:
        grouped.setdefault(object_type, []).append(object_id)
    return grouped


async def in_chunks(jobs: Jobs[T]) -> AsyncIterator[Sequence[T]]:
    """`jobs` as chunks: a sequence is one."""
    if isinstance(jobs, AsyncIterable):
        async for chunk in jobs:
            yield chunk
    else:
        yield jobs
