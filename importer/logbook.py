"""Logbook: meetings logged in HubSpot without a calendar event, up to 100 in one request, each exactly once.

`--mode log` sends every row, `--mode auto` the rows whose meeting ended before the run started, through the
CRM batch create (`POST /crm/v3/objects/meetings/batch/create`) instead of the Scheduler: no calendar event,
no invitation, and up to a hundred meetings for one request of the rolling window. `route` splits the send
stage's jobs; `BatchSender` sends the logged ones.

BatchSender is the Sender (importer.sender) with its creates batched: the ledger moves, the handling of
rows an earlier run left and the rules for rows in doubt are the Sender's own, applied row by row.
- Every row of a batch is marked `sending` before the request goes out, and every row HubSpot reports as
  created is marked `created` with its id, a batch's marks in one commit. HubSpot returns a batch's results in no particular order, so a
  result is matched to its row by `objectWriteTraceId` (the row key); one that lacks it, by the owner,
  start and title sent (`batches` never puts two rows that share them in one batch) and the rest that
  `existing.match` compares. Never by position.
- A 207 refuses some inputs: those rows fail with HubSpot's message; HubSpot created none of them.
- A 429, a 423/477 or a connection that never opened: nothing was created, and the batch is sent again
  whole (the client's retry policy, as for a single create).
- A 4xx for the whole batch (a 403 for the scope one row's association needs, a validation HubSpot applies
  to the batch as a whole): nothing was created; the batch is halved and each half sent, until the rows at
  fault fail on their own and the others are created.
- A lost answer (a 5xx, a timeout, a reset, a 2xx that cannot be read) and any row a 2xx answer does not
  account for: those rows are in doubt. Each is searched for at the Sender's RECHECKS, adopted only when
  the meeting found is surely its own, and sent again, in a new batch, only when every search came back
  empty. A 201 says every input was created: a row it does not account for is never sent again.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

from importer.changes import snapshot
from importer.existing import match
from importer.hubspot import (
    BATCH_CREATE_LIMIT,
    AuthFailed,
    BatchCreated,
    CreatedWithoutId,
    HubSpotError,
    LoggedMeeting,
    Record,
    Rejected,
)
from importer.ledger import Entry
from importer.mapper import CreateRequest, crm_input
from importer.sender import (
    RETRIABLE_CREATE_ERRORS,
    UNKNOWN_CREATE_ERRORS,
    Jobs,
    Sender,
    SendJob,
    _Doubt,  # the Sender's record of a row in doubt: the two senders settle their doubts alike
    in_chunks,
)

Mode = Literal["schedule", "log", "auto"]
UNACCOUNTED = "HubSpot's answer to its batch named neither a meeting nor an error for it"


@dataclass(frozen=True)
class Routing:
    """Which way a run's rows went: logged (CRM batch create) or scheduled (calendar events); in schedule
    mode, also how many of the scheduled ones had ended before the run started."""

    mode: Mode
    logged: int
    scheduled: int
    past_scheduled: int = 0

    def to_json(self) -> dict[str, Any]:
        return {
            "mode": self.mode,
            "logged": self.logged,
            "scheduled": self.scheduled,
            "past_scheduled": self.past_scheduled,
        }


def route(
    jobs: Sequence[SendJob], mode: Mode, run_started_ms: int
) -> tuple[list[SendJob], list[SendJob], Routing]:
    """The jobs to log, the jobs to schedule, and their counts. `auto` logs the meetings whose end is
    before the run's start and schedules the rest."""
    past = {job.index for job in jobs if ends_before(job.request, run_started_ms)}
    if mode == "log":
        logged, scheduled = list(jobs), []
    elif mode == "auto":
        logged = [job for job in jobs if job.index in past]
        scheduled = [job for job in jobs if job.index not in past]
    else:
        logged, scheduled = [], list(jobs)
    past_scheduled = len(past) if mode == "schedule" else 0
    return logged, scheduled, Routing(mode, len(logged), len(scheduled), past_scheduled)


def ends_before(request: CreateRequest, instant_ms: int) -> bool:
    """Whether the request's meeting ends before `instant_ms` (epoch milliseconds)."""
    end = datetime.fromisoformat(request.body["properties"]["hs_meeting_end_time"])
    return round(end.timestamp() * 1000) < instant_ms


def batches(jobs: Sequence[SendJob], size: int = BATCH_CREATE_LIMIT) -> list[list[SendJob]]:
    """`jobs` in batches of at most `size`, in order, save that no batch holds two rows with the same
    owner, start and title: a result that comes back without its trace id then matches one row at most."""
    filled: list[list[SendJob]] = []
    next_batch: dict[tuple[str, int, str], int] = {}  # the first batch a row with this key may join
    first_open = 0
    for job in jobs:
        key = (job.request.owner_id, job.request.start_ms, job.request.title)
        at = max(first_open, next_batch.get(key, 0))
        while at < len(filled) and len(filled[at]) >= size:
            at += 1
        if at == len(filled):
            filled.append([])
        filled[at].append(job)
        next_batch[key] = at + 1
        while first_open < len(filled) and len(filled[first_open]) >= size:
            first_open += 1
    return filled


def match_results(batch: Sequence[SendJob], logged: Sequence[LoggedMeeting]) -> dict[str, LoggedMeeting]:
    """Row key -> the meeting a batch create made for it: by the trace id HubSpot echoed, else (a result
    without one) by the properties sent; never by position. A result naming a trace id of no row in the
    batch is left unmatched: its rows are searched for instead."""
    keys = {job.row_key for job in batch}
    found = {meeting.trace_id: meeting for meeting in logged if meeting.trace_id in keys}
    untraced = [meeting for meeting in logged if meeting.trace_id is None]
    for job in batch:
        if job.row_key in found or not untraced:
            continue
        same = [m for m in untraced if match(job.request, [Record(m.id, m.properties)]).same]
        if len(same) == 1:
            found[job.row_key] = same[0]
            untraced.remove(same[0])
    return found


class BatchSender(Sender):
    """Logs jobs with `client` in CRM batch creates of up to BATCH_CREATE_LIMIT rows, `concurrency` batches
    in flight at most, recording every row's move in `ledger` (see the module docstring)."""

    async def _run_queue(
        self, jobs: Jobs[Any], handle: Callable[[Any], Awaitable[None]] | None = None
    ) -> None:
        if handle is not None:  # not creates (updates of edited rows): one request a row, as the Sender does
            await super()._run_queue(jobs, handle)
            return
        await self._work(in_chunks(jobs), batches, self._send_batch)

    def _prepare(self, jobs: Sequence[SendJob], before: Mapping[str, Entry]) -> None:
        """Nothing ahead: a batch's one request is built, and its rows marked, with the batch."""

    async def _send_batch(self, batch: list[SendJob]) -> list[list[SendJob]]:
        """One batch create, and every row's outcome; returns the halves of a batch HubSpot refused whole."""
        # The ledger's own transaction: every row still moves by its transition, but the batch's marks are
        # one commit (and sync) instead of a hundred, each batch's before its request goes out.
        self._mark_sending(batch)
        inputs = [crm_input(job.request, job.row_key) for job in batch]

        async def attempt() -> BatchCreated:
            for job in batch:
                self._attempts[job.index] = self._tries(job) + 1
            return await self._client.batch_create_meetings(inputs)

        try:
            answer = await self._client.retrying(
                attempt, RETRIABLE_CREATE_ERRORS, keep_going=lambda: self.stop_reason is None
            )
        except UNKNOWN_CREATE_ERRORS as error:
            why = f"HubSpot's answer was lost ({error})"
            self._set_aside(batch, why, str(error), surely_created=isinstance(error, CreatedWithoutId))
            self._heard(error)
            return []
        except HubSpotError as error:
            self._heard(error)
            if len(batch) > 1 and _refused_whole(error):
                with self._ledger.transaction():
                    for job in batch:
                        self._ledger.mark_failed(job.row_key, str(error))  # certainly not created
                half = len(batch) // 2
                return [batch[:half], batch[half:]]
            for job in batch:
                self._fail(job, error)
            return []
        self._heard()
        self._record(batch, answer)
        return []

    def _record(self, batch: list[SendJob], answer: BatchCreated) -> None:
        """Settle each row of a batch HubSpot answered: created, refused, or not accounted for (in doubt)."""
        made = match_results(batch, answer.logged)
        refused = {key: refusal.error for refusal in answer.refused for key in refusal.trace_ids}
        with self._ledger.transaction():  # every created row in one commit, before anything is reported
            for job in batch:
                if (logged := made.get(job.row_key)) is not None:
                    # The content and what was sent too, so an edited row later updates this meeting.
                    sent = snapshot(job.request)
                    self._ledger.mark_created(job.row_key, logged.id, content_key=job.content_key, sent=sent)
        unaccounted: list[SendJob] = []
        for job in batch:
            meeting = made.get(job.row_key)
            if meeting is not None:
                self._created(job, meeting.id, answer.status, answer.correlation_id)
            elif job.row_key in refused:
                self._fail(job, refused[job.row_key])
            else:
                unaccounted.append(job)
        if unaccounted:
            # Only an answer that refused nothing proves these were created too (their ids unknown).
            self._set_aside(unaccounted, UNACCOUNTED, UNACCOUNTED, surely_created=not answer.refused)

    def _set_aside(self, jobs: list[SendJob], why: str, error: str, *, surely_created: bool) -> None:
        """Rows whose create may have happened: in doubt until a search settles them."""
        since = self._clock()
        with self._ledger.transaction():
            for job in jobs:
                self._ledger.mark_in_doubt(job.row_key, error)
        self._doubts.extend(_Doubt(job, since, [why], surely_created=surely_created) for job in jobs)


def _refused_whole(error: HubSpotError) -> bool:
    """A 4xx for the whole batch that one row may have caused; a 401 is every row's and stops the run."""
    return isinstance(error, Rejected) or (isinstance(error, AuthFailed) and error.status == 403)
