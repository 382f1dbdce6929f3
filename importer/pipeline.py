"""The import, stage by stage: read -> validate -> map -> send -> report. Each stage is its own module."""

from __future__ import annotations

import asyncio
import logging
import signal
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterable
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import polars as pl

from importer.config import Settings
from importer.errors import AuthError, ConfigError
from importer.hubspot import AuthFailed, HubSpotClient, HubSpotError, RetryPolicy
from importer.ledger import Ledger, open_ledger, state_lock
from importer.mapper import build_directory, map_meeting
from importer.models import Meeting, RowResult, RowStatus
from importer.pacing import Pacer
from importer.reader import ParsedRow, load_sheet, parse_rows
from importer.reporter import (
    count_statuses,
    default_results_path,
    read_statuses,
    results_frame,
    write_results,
)
from importer.sender import Outcome, Sender, SendJob

log = logging.getLogger(__name__)
CHECKPOINT_S = 2.0  # how often the results file is rewritten while rows finish
_DONE = {RowStatus.CREATED, RowStatus.SKIPPED}

_SIGNALS = (signal.SIGINT, signal.SIGTERM)
Progress = Callable[[int, int], None]
"""Told (rows finished, rows to send) as rows finish."""


@dataclass(frozen=True)
class RunSummary:
    """What a run did, for the exit code, the terminal and monitoring."""

    input_path: Path
    results_path: Path
    counts: dict[str, int]
    duration_s: float
    send_s: float = 0.0
    requests: int = 0
    rate_limited: int = 0
    stop_reason: str | None = None
    top_errors: list[tuple[str, int]] = field(default_factory=list)

    @property
    def complete(self) -> bool:
        """True when no row is left invalid, failed or unsent."""
        return not any(self.counts[s] for s in (RowStatus.INVALID, RowStatus.FAILED, RowStatus.NOT_SENT))

    def to_json(self) -> dict[str, Any]:
        """For `--summary-json`: what monitoring needs."""
        return {
            "input": str(self.input_path),
            "results": str(self.results_path),
            "complete": self.complete,
            "counts": self.counts,
            "duration_s": round(self.duration_s, 3),
            "send_s": round(self.send_s, 3),
            "requests": self.requests,
            "requests_per_s": round(self.requests / self.send_s, 3) if self.send_s else 0.0,
            "rate_limited_429s": self.rate_limited,
            "stop_reason": self.stop_reason,
            "top_errors": [{"error": error, "rows": rows} for error, rows in self.top_errors],
        }


def run_import(input_path: Path, settings: Settings, progress: Progress | None = None) -> RunSummary:
    """Import `input_path` as `settings` say and write the results file; a bad row never raises.

    Raises StopRun for what stops the whole run (unusable input or settings, a refused token) and
    LockHeld when another run holds the state; the results file is written whenever rows were read.
    """
    started = time.monotonic()
    results_path = settings.results or default_results_path(input_path)
    state_path = settings.state_path or results_path.parent / ".meeting-importer" / "state.sqlite"
    token = settings.token.get_secret_value() if settings.token else None
    if not settings.dry_run and not token:
        raise ConfigError(f"no HubSpot access token: set the environment variable {settings.token_env}")
    with ExitStack() as stack:
        if not settings.dry_run:
            stack.enter_context(state_lock(state_path))
        sheet = load_sheet(
            input_path,
            columns=settings.columns,
            encoding=settings.encoding,
            sheet=settings.sheet,
            header_row=settings.header_row,
        )
        chunks = parse_rows(
            sheet,
            default_timezone=settings.default_timezone or "UTC",
            default_outcome=settings.default_outcome,
            default_reminders=settings.default_reminders,
            build_meetings=not settings.dry_run,
        )
        results, meetings = triage(chunks)
        log.info("read %s: %d rows, %d to send", input_path, len(results), len(meetings))
        run = _Run(settings, sheet.frame, results, results_path, progress)
        if token and not settings.dry_run and meetings:
            previous = read_statuses(settings.only_failed) if settings.only_failed else {}
            try:
                asyncio.run(run.send(meetings, token, input_path, state_path, previous))
            finally:
                run.checkpoint(final=True)
        else:
            run.checkpoint(final=True)
    return RunSummary(
        input_path,
        results_path,
        count_statuses(results),
        time.monotonic() - started,
        send_s=run.send_s,
        requests=run.requests,
        rate_limited=run.rate_limited,
        stop_reason=run.stop_reason,
        top_errors=_top_errors(results),
    )


def triage(chunks: Iterable[list[ParsedRow]]) -> tuple[list[RowResult], list[tuple[int, Meeting]]]:
    """A result for every row, valid or invalid, and the built meetings with their result's index."""
    results: list[RowResult] = []
    meetings: list[tuple[int, Meeting]] = []
    for chunk in chunks:
        for parsed in chunk:
            if parsed.error:
                results.append(
                    RowResult(parsed.row, RowStatus.INVALID, error=parsed.error, warning=parsed.warning)
                )
                continue
            row_key = None
            if parsed.meeting is not None:
                meetings.append((len(results), parsed.meeting))
                row_key = parsed.meeting.row_key
            results.append(RowResult(parsed.row, RowStatus.VALID, row_key, warning=parsed.warning))
    return results, meetings


def _split_twins(
    meetings: list[tuple[int, Meeting]],
) -> tuple[list[tuple[int, Meeting]], list[tuple[int, int]]]:
    """The first row of each row key, and (index, index of its first) for the repeats: a sheet that lists
    one meeting twice must still create it once."""
    firsts: dict[str, int] = {}
    unique: list[tuple[int, Meeting]] = []
    twins: list[tuple[int, int]] = []
    for index, meeting in meetings:
        first = firsts.setdefault(meeting.row_key, index)
        if first == index:
            unique.append((index, meeting))
        else:
            twins.append((index, first))
    return unique, twins


def _twin_outcome(first: RowResult) -> Outcome:
    same = f"same meeting as row {first.row}"
    if first.status in _DONE:
        return Outcome(RowStatus.SKIPPED, first.meeting_id, note=same)
    return Outcome(first.status, error=f"{same}: {first.error}")


def _top_errors(results: list[RowResult], most: int = 5) -> list[tuple[str, int]]:
    errors = Counter(r.error for r in results if r.error and r.status not in _DONE)
    return errors.most_common(most)


class _Run:
    """The networked part of one run: map, then send, filling in `results` as rows finish."""

    def __init__(
        self,
        settings: Settings,
        inputs: pl.DataFrame,
        results: list[RowResult],
        results_path: Path,
        progress: Progress | None,
    ) -> None:
        self.settings = settings
        self.inputs = inputs
        self.results = results
        self.results_path = results_path
        self.progress = progress
        self.requests = 0
        self.rate_limited = 0
        self.send_s = 0.0
        self.stop_reason: str | None = None
        self._to_send = 0
        self._finished = 0
        self._last_checkpoint = time.monotonic()
        self._write_s = 0.0
        self._sender: Sender | None = None

    def checkpoint(self, *, final: bool = False) -> None:
        """Rewrite the results file (atomically) while rows finish, and at the end. Every CHECKPOINT_S at
        most, and never more than a tenth of the time: a large sheet takes a while to write."""
        if final or time.monotonic() - self._last_checkpoint >= max(CHECKPOINT_S, 10 * self._write_s):
            started = time.monotonic()
            write_results(results_frame(self.inputs, self.results), self.results_path)
            self._last_checkpoint = time.monotonic()
            self._write_s = self._last_checkpoint - started

    async def send(
        self,
        meetings: list[tuple[int, Meeting]],
        token: str,
        input_path: Path,
        state_path: Path,
        previous: dict[str, tuple[str, str | None]],
    ) -> None:
        settings = self.settings
        for index, _meeting in meetings:
            self.results[index].status = RowStatus.NOT_SENT  # until the sender says otherwise
        self._to_send = len(meetings)
        pacer = Pacer(settings.requests_per_10s, settings.search_per_second)
        retry = RetryPolicy(
            max_attempts=settings.max_attempts,
            base_s=settings.backoff_base_s,
            cap_s=settings.backoff_cap_s,
            deadline_s=settings.row_deadline_s,
        )
        client = HubSpotClient(
            settings.base_url,
            token,
            gate=pacer,
            retry=retry,
            timeout_s=settings.timeout_s,
            connect_timeout_s=settings.connect_timeout_s,
            max_connections=settings.concurrency,
        )
        started = time.monotonic()
        loop, task = asyncio.get_running_loop(), asyncio.current_task()
        for signum in _SIGNALS:
            loop.add_signal_handler(signum, self._interrupt, signum.name, task)
        try:
            async with client:
                # The ledger is per HubSpot account: one state folder used for two portals must not
                # report the second portal's rows as done. Asking also checks the token, in one request.
                target = f"{settings.base_url} portal {await client.portal_id()}"
                with open_ledger(state_path, target) as ledger:
                    unique, twins = _split_twins(meetings)
                    pending = self._skip_done(ledger, unique, previous)
                    jobs = await self._map(client, pending)
                    await self._send_jobs(client, pacer, ledger, jobs, input_path)
                    for index, first in twins:
                        self._record(index, _twin_outcome(self.results[first]))
        except AuthFailed as error:
            raise AuthError(f"HubSpot refused the access token: {error}") from None
        except HubSpotError as error:
            # The account or the lookups could not be read, retries spent: nothing was sent.
            self.stop_reason = f"looking up the account, owners and associations failed: {error}"
            log.error(self.stop_reason)
            self._leave_unsent(meetings)
        except asyncio.CancelledError:
            if self.stop_reason is None:
                raise
            self._leave_unsent(meetings)  # stopped by a signal during the lookups: nothing was sent
        finally:
            for signum in _SIGNALS:
                loop.remove_signal_handler(signum)
            self.requests = client.requests_sent
            self.rate_limited = client.rate_limited
            self.send_s = time.monotonic() - started

    def _leave_unsent(self, meetings: list[tuple[int, Meeting]]) -> None:
        """Every row not yet settled stays not_sent, with the reason the run stopped."""
        for index, _meeting in meetings:
            if self.results[index].status is RowStatus.NOT_SENT:
                self.results[index].error = self.stop_reason

    def _skip_done(
        self,
        ledger: Ledger,
        meetings: list[tuple[int, Meeting]],
        previous: dict[str, tuple[str, str | None]],
    ) -> list[tuple[int, Meeting]]:
        """Rows already created (by the ledger, or by earlier results under --only-failed) are skipped
        before any lookup is spent on them."""
        known = ledger.entries(meeting.row_key for _, meeting in meetings)
        pending = []
        for index, meeting in meetings:
            entry = known.get(meeting.row_key)
            earlier = previous.get(meeting.row_key)
            if entry is not None and entry.state == "created":
                self._record(index, Outcome(RowStatus.SKIPPED, entry.meeting_id))
            elif earlier is not None and earlier[0] in _DONE:
                self._record(
                    index, Outcome(RowStatus.SKIPPED, earlier[1], note="done in the earlier results")
                )
            else:
                pending.append((index, meeting))
        return pending

    async def _map(self, client: HubSpotClient, meetings: list[tuple[int, Meeting]]) -> list[SendJob]:
        settings = self.settings
        if not meetings:
            return []
        directory = await build_directory(client, [meeting for _, meeting in meetings])
        jobs = []
        for index, meeting in meetings:
            mapped = map_meeting(
                meeting,
                directory,
                on_missing_association=settings.on_missing_association,
                ambiguous_company_domain=settings.ambiguous_company_domain,
                include_invite_description=settings.include_invite_description,
            )
            if mapped.request is None:
                self._record(index, Outcome(RowStatus.FAILED, error=mapped.error))
            else:
                jobs.append(SendJob(index, meeting.row_key, mapped.request))
        return jobs

    async def _send_jobs(
        self, client: HubSpotClient, pacer: Pacer, ledger: Ledger, jobs: list[SendJob], input_path: Path
    ) -> None:
        run_id = uuid.uuid4().hex
        ledger.start_run(run_id, str(input_path))
        sender = Sender(
            client,
            ledger,
            run_id=run_id,
            concurrency=self.settings.concurrency,
            max_attempts=self.settings.max_attempts,
            search_lag_s=self.settings.search_lag_s,
            on_outcome=self._record,
            daily_remaining=lambda: pacer.daily_remaining,
        )
        self._sender = sender
        try:
            await sender.send_all(jobs)
        finally:
            self.stop_reason = self.stop_reason or sender.stop_reason
            ledger.finish_run(run_id, self.stop_reason or "finished")

    def _interrupt(self, name: str, task: asyncio.Task[Any] | None) -> None:
        """SIGINT or SIGTERM: while sending, finish the requests in flight and take no more rows;
        during the lookups, which send nothing, stop at once."""
        reason = f"stopped by {name}"
        log.warning("%s received: finishing the requests in flight, sending no more", name)
        if self._sender is not None:
            self._sender.stop(reason)
        elif self.stop_reason is None and task is not None:
            self.stop_reason = reason
            task.cancel()

    def _record(self, index: int, outcome: Outcome) -> None:
        result = self.results[index]
        result.status = outcome.status
        result.meeting_id = outcome.meeting_id
        result.error = outcome.error
        result.http_status = outcome.http_status
        result.correlation_id = outcome.correlation_id
        result.attempts = outcome.attempts
        result.warning = "; ".join(w for w in (result.warning, outcome.note) if w) or None
        _log_row(result)
        self._finished += 1
        if self.progress is not None:
            self.progress(self._finished, self._to_send)
        self.checkpoint()


def _log_row(result: RowResult) -> None:
    level = logging.INFO if result.status in _DONE else logging.WARNING
    fields = {
        "row": result.row,
        "row_key": result.row_key,
        "status": str(result.status),
        "meeting_id": result.meeting_id,
        "http_status": result.http_status,
        "correlation_id": result.correlation_id,
        "attempts": result.attempts,
        "error": result.error,
    }
    log.log(level, "row %d %s", result.row, result.status, extra={"fields": fields})
