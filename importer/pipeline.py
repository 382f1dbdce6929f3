"""The import, stage by stage: read -> validate -> map -> send -> report. Each stage is its own module."""

from __future__ import annotations

import asyncio
import signal
import time
import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from importer.config import Settings
from importer.errors import AuthError, ConfigError
from importer.hubspot import AuthFailed, HubSpotClient, HubSpotError, RetryPolicy
from importer.ledger import Ledger, open_ledger
from importer.mapper import build_directory, map_meeting
from importer.models import Meeting, RowResult, RowStatus
from importer.pacing import Pacer
from importer.reader import ParsedRow, load_sheet, parse_rows
from importer.reporter import count_statuses, default_results_path, results_frame, write_results
from importer.sender import Outcome, Sender, SendJob


@dataclass(frozen=True)
class RunSummary:
    """What a run did, for the exit code, the terminal and monitoring."""

    input_path: Path
    results_path: Path
    counts: dict[str, int]
    duration_s: float
    requests: int = 0
    stop_reason: str | None = None

    @property
    def complete(self) -> bool:
        """True when no row is left invalid, failed or unsent."""
        return not any(self.counts[s] for s in (RowStatus.INVALID, RowStatus.FAILED, RowStatus.NOT_SENT))


def run_import(input_path: Path, settings: Settings) -> RunSummary:
    """Import `input_path` as `settings` say and write the results file; a bad row never raises.

    Raises StopRun subclasses for what stops the whole run (unusable input or settings, a refused token);
    the results file is written first whenever rows were read.
    """
    started = time.monotonic()
    sheet = load_sheet(input_path, columns=settings.columns, encoding=settings.encoding, sheet=settings.sheet)
    chunks = parse_rows(
        sheet,
        default_timezone=settings.default_timezone,
        default_outcome=settings.default_outcome,
        default_reminders=settings.default_reminders,
        build_meetings=not settings.dry_run,
    )
    results, meetings = triage(chunks)
    results_path = settings.results or default_results_path(input_path)
    token = settings.token.get_secret_value() if settings.token else None
    if not settings.dry_run and meetings and not token:
        raise ConfigError(f"no HubSpot access token: set the environment variable {settings.token_env}")
    run = _Run(settings, results, results_path)
    try:
        if not settings.dry_run and meetings and token:
            asyncio.run(run.send(meetings, token, input_path))
    finally:
        write_results(results_frame(sheet.frame, results), results_path)
    return RunSummary(
        input_path,
        results_path,
        count_statuses(results),
        time.monotonic() - started,
        requests=run.requests,
        stop_reason=run.stop_reason,
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


class _Run:
    """The networked part of one run: map, then send, filling in `results` as rows finish."""

    def __init__(self, settings: Settings, results: list[RowResult], results_path: Path) -> None:
        self.settings = settings
        self.results = results
        self.results_path = results_path
        self.requests = 0
        self.stop_reason: str | None = None

    async def send(self, meetings: list[tuple[int, Meeting]], token: str, input_path: Path) -> None:
        settings = self.settings
        for index, _meeting in meetings:
            self.results[index].status = RowStatus.NOT_SENT  # until the sender says otherwise
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
        state_path = settings.state_path or self.results_path.parent / ".meeting-importer" / "state.sqlite"
        async with client:
            with open_ledger(state_path, settings.base_url) as ledger:
                try:
                    pending = self._skip_created(ledger, meetings)
                    jobs = await self._map(client, pending)
                    await self._send_jobs(client, ledger, jobs, input_path)
                except AuthFailed as error:
                    raise AuthError(f"HubSpot refused the access token: {error}") from None
                finally:
                    self.requests = client.requests_sent

    def _skip_created(self, ledger: Ledger, meetings: list[tuple[int, Meeting]]) -> list[tuple[int, Meeting]]:
        """Rows an earlier run created are skipped before any lookup is spent on them."""
        known = ledger.entries(meeting.row_key for _, meeting in meetings)
        pending = []
        for index, meeting in meetings:
            entry = known.get(meeting.row_key)
            if entry is not None and entry.state == "created":
                self._record(index, Outcome(RowStatus.SKIPPED, entry.meeting_id))
            else:
                pending.append((index, meeting))
        return pending

    async def _map(self, client: HubSpotClient, meetings: list[tuple[int, Meeting]]) -> list[SendJob]:
        settings = self.settings
        if not meetings:
            return []
        try:
            directory = await build_directory(client, [meeting for _, meeting in meetings])
        except AuthFailed:
            raise
        except HubSpotError as error:
            self.stop_reason = f"looking up owners and associations failed: {error}"
            for index, _meeting in meetings:
                self.results[index].error = self.stop_reason
            return []
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
        self, client: HubSpotClient, ledger: Ledger, jobs: list[SendJob], input_path: Path
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
        )
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(signum, sender.stop, f"stopped by {signal.Signals(signum).name}")
        try:
            await sender.send_all(jobs)
        finally:
            for signum in (signal.SIGINT, signal.SIGTERM):
                loop.remove_signal_handler(signum)
            self.stop_reason = self.stop_reason or sender.stop_reason
            ledger.finish_run(run_id, self.stop_reason or "finished")

    def _record(self, index: int, outcome: Outcome) -> None:
        result = self.results[index]
        result.status = outcome.status
        result.meeting_id = outcome.meeting_id
        result.error = outcome.error
        result.http_status = outcome.http_status
        result.correlation_id = outcome.correlation_id
        result.attempts = outcome.attempts
        result.warning = "; ".join(w for w in (result.warning, outcome.note) if w) or None
