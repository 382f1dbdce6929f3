"""Sender: creates the meetings concurrently, as fast as HubSpot allows and never twice.

Workers take rows from a queue; every request waits for its turn at the run's pacer (importer.pacing).
Around each create the ledger records `sending` before and `created` after. A create that HubSpot refused
for a passing reason (429, 5xx, a connection that never opened) is retried with backoff. One whose answer
was lost may have been created, so it is never resent blindly: it is set aside, and once HubSpot's search
has caught up (`search_lag_s`) the sender searches for it by owner and start time, adopts the meeting it
finds, or sends it again. Rows a killed run left in doubt get the same check at the start of the next run.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from importer.errors import AuthError
from importer.hubspot import (
    ApiError,
    AuthFailed,
    DailyLimitReached,
    HubSpotClient,
    HubSpotError,
    NotSent,
    OutcomeUnknown,
    RateLimited,
    Record,
    Unavailable,
)
from importer.ledger import IN_DOUBT, Ledger
from importer.mapper import CreateRequest
from importer.models import RowStatus

SEARCH_GROUPS = 5  # HubSpot ORs at most 5 filter groups in one search
DAILY_LIMIT_REACHED = "HubSpot's daily request limit is reached; the next run sends the rest"
RETRIABLE_CREATE_ERRORS: tuple[type[HubSpotError], ...] = (RateLimited, Unavailable, NotSent)
"""Errors after which HubSpot certainly did not create the meeting, and may on another try."""


@dataclass(frozen=True, slots=True)
class SendJob:
    """One row to create: its index in the results, its key and its request."""

    index: int
    row_key: str
    request: CreateRequest


@dataclass(slots=True)
class Outcome:
    """What became of one job."""

    status: RowStatus
    meeting_id: str | None = None
    error: str | None = None
    http_status: int | None = None
    correlation_id: str | None = None
    attempts: int = 0
    note: str | None = None


@dataclass
class _Doubt:
    job: SendJob
    since: float  # wall-clock time of the attempt whose answer was lost
    earlier_run: bool = False


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
        on_outcome: Callable[[int, Outcome], None] = lambda index, outcome: None,
        daily_remaining: Callable[[], int | None] = lambda: None,
        clock: Callable[[], float] = time.time,
        sleep: Callable[[float], Awaitable[None]] | None = None,
    ) -> None:
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
        self._stopped: asyncio.Event | None = None
        self._outcomes: dict[int, Outcome] = {}
        self._attempts: dict[int, int] = {}
        self._doubts: list[_Doubt] = []
        self.stop_reason: str | None = None
        self.auth_error: AuthFailed | None = None

    def stop(self, reason: str) -> None:
        """Take no more rows (a signal, the daily cap, a refused token); rows in flight finish."""
        if self.stop_reason is None:
            self.stop_reason = reason
        if self._stopped is not None:
            self._stopped.set()

    async def _pause(self, seconds: float) -> None:
        """Sleep, but wake at once when the run stops: waiting out the search lag is no work in flight."""
        if self._stopped is None:
            self._stopped = asyncio.Event()
        if self.stop_reason is not None:
            return
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._stopped.wait(), seconds)

    async def send_all(self, jobs: Sequence[SendJob]) -> dict[int, Outcome]:
        """An outcome for every job: created, skipped (an earlier run created it), failed or not_sent."""
        ledger = self._ledger.entries(job.row_key for job in jobs)
        fresh: list[SendJob] = []
        for job in jobs:
            entry = ledger.get(job.row_key)
            if entry is not None and entry.state == "created":
                self._finish(job, Outcome(RowStatus.SKIPPED, entry.meeting_id, attempts=0))
            elif entry is not None and entry.state in IN_DOUBT:
                self._doubts.append(_Doubt(job, entry.updated_at, earlier_run=True))
            else:
                fresh.append(job)
        await self._run_queue(fresh)
        while self._doubts and self.stop_reason is None and await self._reconcile():
            pass
        for doubt in self._doubts:
            self._finish(doubt.job, self._unresolved(doubt.job))
        for job in jobs:
            if job.index not in self._outcomes:
                self._finish(
                    job, Outcome(RowStatus.NOT_SENT, error=self.stop_reason, attempts=self._tries(job))
                )
        if self.auth_error is not None:
            raise AuthError(f"HubSpot refused the access token: {self.auth_error}")
        return self._outcomes

    async def _run_queue(self, jobs: Sequence[SendJob]) -> None:
        queue: asyncio.Queue[SendJob] = asyncio.Queue()
        for job in jobs:
            queue.put_nowait(job)

        async def worker() -> None:
            while self.stop_reason is None:
                if self._daily_remaining() == 0:
                    self.stop(DAILY_LIMIT_REACHED)
                    return
                try:
                    job = queue.get_nowait()
                except asyncio.QueueEmpty:
                    return
                await self._send(job)

        await asyncio.gather(*(worker() for _ in range(min(self._concurrency, max(1, len(jobs))))))

    async def _send(self, job: SendJob) -> None:
        request = job.request
        self._ledger.mark_sending(
            job.row_key, request.owner_id, request.start_ms, request.title, self._run_id
        )

        async def attempt() -> Any:
            self._attempts[job.index] = self._tries(job) + 1
            return await self._client.create_meeting(request.organizer_user_id, request.body)

        try:
            created = await self._client.retrying(
                attempt, RETRIABLE_CREATE_ERRORS, keep_going=lambda: self.stop_reason is None
            )
        except OutcomeUnknown as error:
            self._ledger.mark_in_doubt(job.row_key, str(error))
            self._doubts.append(_Doubt(job, self._clock()))
            return
        except HubSpotError as error:
            self._fail(job, error)
            return
        self._ledger.mark_created(job.row_key, created.id)
        outcome = Outcome(
            RowStatus.CREATED,
            created.id,
            http_status=created.status,
            correlation_id=created.correlation_id,
            attempts=self._tries(job),
            note=_notes(request),
        )
        self._finish(job, outcome)

    def _fail(self, job: SendJob, error: HubSpotError) -> None:
        """A create HubSpot certainly did not carry out: record it, and stop the run if nothing can go."""
        self._ledger.mark_failed(job.row_key, str(error))
        status = RowStatus.FAILED
        if isinstance(error, DailyLimitReached):
            self.stop(DAILY_LIMIT_REACHED)
            status = RowStatus.NOT_SENT
        elif isinstance(error, RETRIABLE_CREATE_ERRORS) and self.stop_reason is not None:
            status = RowStatus.NOT_SENT  # retries cut short by the stop; HubSpot did not create it
        elif isinstance(error, AuthFailed):
            self.auth_error = self.auth_error or error
            self.stop("HubSpot refused the access token")
            status = RowStatus.NOT_SENT
        api = error if isinstance(error, ApiError) else None
        message = str(error) if status is RowStatus.FAILED else f"{self.stop_reason} ({error})"
        self._finish(
            job,
            Outcome(
                status,
                error=message,
                http_status=api.status if api else None,
                correlation_id=api.correlation_id if api else None,
                attempts=self._tries(job),
            ),
        )

    async def _reconcile(self) -> bool:
        """Check every row in doubt once HubSpot's search has caught up; adopt it or send it again.

        True when rows were sent again (which may leave new doubts to check), False when nothing more
        can be settled in this run."""
        doubts, self._doubts = self._doubts, []
        wait = max(d.since for d in doubts) + self._search_lag_s - self._clock()
        if wait > 0:
            await self._sleep(wait)
        if self.stop_reason is not None:
            self._doubts = doubts  # stopped while waiting: they stay in doubt for the next run
            return False
        found = await self._find_all([d.job for d in doubts])
        again: list[SendJob] = []
        for doubt, meeting_id in zip(doubts, found, strict=True):
            if isinstance(meeting_id, BaseException):
                if isinstance(meeting_id, AuthFailed):
                    self.auth_error = self.auth_error or meeting_id
                    self.stop("HubSpot refused the access token")
                self._doubts.append(doubt)  # could not check now: stays in doubt for the next run
                continue
            if meeting_id is not None:
                self._ledger.mark_created(doubt.job.row_key, meeting_id)
                status = RowStatus.SKIPPED if doubt.earlier_run else RowStatus.CREATED
                note = "; ".join(
                    [*doubt.job.request.notes, "found in HubSpot after an earlier attempt lost its answer"]
                )
                outcome = Outcome(status, meeting_id, attempts=self._tries(doubt.job), note=note)
                self._finish(doubt.job, outcome)
            elif self._tries(doubt.job) < self._max_attempts:
                again.append(doubt.job)
            else:
                self._doubts.append(doubt)
        if not again:
            return False
        await self._run_queue(again)
        return True

    async def _find_all(self, jobs: list[SendJob]) -> list[str | BaseException | None]:
        """For each job, the id of the meeting HubSpot has for its owner, start and title, None if there is
        none, or the error that kept us from looking. One search covers SEARCH_GROUPS jobs (ORed groups)."""
        chunks = [jobs[i : i + SEARCH_GROUPS] for i in range(0, len(jobs), SEARCH_GROUPS)]
        answers = await asyncio.gather(*(self._find_chunk(chunk) for chunk in chunks), return_exceptions=True)
        found: list[str | BaseException | None] = []
        for chunk, answer in zip(chunks, answers, strict=True):
            found.extend(answer if isinstance(answer, list) else [answer] * len(chunk))
        return found

    async def _find_chunk(self, jobs: list[SendJob]) -> list[str | None]:
        groups = [
            {
                "filters": [
                    {"propertyName": "hubspot_owner_id", "operator": "EQ", "value": job.request.owner_id},
                    {
                        "propertyName": "hs_meeting_start_time",
                        "operator": "EQ",
                        "value": str(job.request.start_ms),
                    },
                ]
            }
            for job in jobs
        ]
        properties = ["hs_meeting_title", "hs_meeting_start_time", "hubspot_owner_id"]
        records = await self._client.search("meetings", groups, properties=properties)
        return [_match(job.request, records) for job in jobs]

    def _unresolved(self, job: SendJob) -> Outcome:
        why = (
            "its search did not settle it" if self.stop_reason is None else "the run stopped before checking"
        )
        return Outcome(
            RowStatus.FAILED,
            error=f"outcome unknown: HubSpot's answer was lost and {why}; "
            "the next run checks HubSpot before sending this row again",
            attempts=self._tries(job),
        )

    def _tries(self, job: SendJob) -> int:
        return self._attempts.get(job.index, 0)

    def _finish(self, job: SendJob, outcome: Outcome) -> None:
        self._outcomes[job.index] = outcome
        self._on_outcome(job.index, outcome)


def _match(request: CreateRequest, records: list[Record]) -> str | None:
    """The oldest meeting among `records` that is this request's: same owner, start and exact title
    (search matches text loosely, and one search answers for several rows)."""
    ids = [
        record.id
        for record in records
        if record.properties.get("hs_meeting_title") == request.title
        and str(record.properties.get("hubspot_owner_id")) == request.owner_id
        and _epoch_ms(record.properties.get("hs_meeting_start_time")) == request.start_ms
    ]
    return min(ids, key=lambda i: (len(i), i)) if ids else None


def _epoch_ms(value: object) -> int | None:
    """HubSpot returns date-times as ISO 8601 (`...Z`) in search results; epoch milliseconds also occur."""
    text = str(value or "")
    if text.isdigit():
        return int(text)
    try:
        return round(datetime.fromisoformat(text).timestamp() * 1000)
    except ValueError:
        return None


def _notes(request: CreateRequest) -> str | None:
    return "; ".join(request.notes) or None
