"""The import, stage by stage: each stage takes the previous one's values and returns its own.

connect          the portal the token belongs to (checks the token, names the ledger)
read_rows        the sheet -> a result for every row, the meetings of the valid ones
identify         each row's identity: its key column, a results file's row_key, or its content
settle_known     rows the ledger, or a results file's own evidence, already knows: done, or edited
confirm_vouched  meeting ids a results file names, checked in HubSpot in batch reads
map_rows         owners and association ids -> create requests
plan_updates     what each edited row changes in its meeting
check_existing   rows HubSpot already has (made earlier, elsewhere, or by hand) are adopted
send             updates, then creates, paced, retried, never twice: past meetings logged (logbook)
Board            every outcome into the results file, the log and the progress line

The stages up to settle_known and confirm_vouched take every row at once (they ask the ledger, or read
back a results file's ids). From map_rows on, the rows go a chunk at a time (`row_chunks`: by owner and
start, small first), and `send` takes each chunk's creates and updates as soon as they are ready, while
the next chunk is looked up: a big sheet's first meetings are created within a second or two.

`plan` runs the same stages against an in-memory copy of the ledger and stops before `send`.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import os
import signal
import sys
import time
import uuid
from collections import Counter
from collections.abc import AsyncIterator, Iterable, Iterator
from contextlib import closing, contextmanager
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import urlsplit

import polars as pl

from importer import messages
from importer import problems as codes
from importer.changes import diff, named, snapshot
from importer.config import Settings
from importer.errors import AuthError, ConfigError, InputError, StopRun
from importer.existing import find_in_ranges, narrow
from importer.hubspot import Account, AuthFailed, HubSpotClient, HubSpotError, RetryPolicy
from importer.ledger import (
    IN_DOUBT,
    LEGACY_PLACE,
    Ledger,
    default_ledger_path,
    open_ledger,
    state_lock,
)
from importer.logbook import BatchSender, Mode, Routing, route
from importer.mapper import Lookups, map_meeting
from importer.models import DONE_STATUSES, Meeting, RowOutcome, RowResult, RowStatus
from importer.pacing import Pacer
from importer.reader import Sheet, load_sheet, parse_rows
from importer.reporter import (
    EarlierResult,
    RowResults,
    append_results,
    count_statuses,
    default_results_path,
    journal_path,
    read_earlier,
    results_lines,
    write_results,
)
from importer.sender import Feed, Sender, SendJob, UpdateJob, update_notes

log = logging.getLogger(__name__)
CHECKPOINT_S = 2.0  # how often finished rows go to the results journal (or file) while rows finish
FIRST_CHUNK_ROWS, CHUNK_ROWS = 50, 1000  # rows looked up together: the first few, so sending starts soon
_SIGNALS = (signal.SIGINT, signal.SIGTERM)


class Progress(Protocol):
    """Told (rows finished, rows to send) as rows finish, and each phase of the run as it begins."""

    def __call__(self, done: int, total: int) -> None: ...

    def phase(self, text: str, *, portal: bool = False) -> None:
        """`portal`: the line naming the portal the run writes to, the one phase cron's output shows."""


@dataclass(frozen=True, slots=True)
class Packed:
    """A valid row's meeting while it waits for its chunk: its JSON, its key and what orders it, unpacked
    (`meeting`) only when the chunk is looked up. A Meeting object held for every row of a 200,000-row
    sheet costs about 2 KB a row; packed, a few hundred bytes."""

    row_key: str
    owner_email: str
    start_ms: int
    data: bytes

    @classmethod
    def of(cls, meeting: Meeting) -> Packed:
        start_ms = round(meeting.start.timestamp() * 1000)
        data = Meeting.__pydantic_serializer__.to_json(meeting)
        return cls(meeting.row_key, sys.intern(meeting.owner_email), start_ms, data)

    @property
    def meeting(self) -> Meeting:
        return Meeting.model_validate_json(self.data)


Pending = list[tuple[int, Packed]]
"""Rows still to settle: their index in the results, and their meeting, packed."""


def unpacked(rows: Pending) -> list[tuple[int, Meeting]]:
    return [(index, packed.meeting) for index, packed in rows]


@dataclass(frozen=True)
class RunSummary:
    """What a run did, for the exit code, the terminal and monitoring."""

    input_path: Path
    results_path: Path
    counts: dict[str, int]
    duration_s: float
    send_s: float = 0.0
    requests: int = 0
    searches: int = 0
    rate_limited: int = 0
    stop_reason: str | None = None
    top_errors: list[TopError] = field(default_factory=list)
    portal_id: int | None = None
    sheet: SheetNote | None = None
    routing: Routing | None = None

    @property
    def complete(self) -> bool:
        """True when no row is left invalid, failed, in doubt or unsent."""
        return all(count == 0 for status, count in self.counts.items() if status in _NOT_DONE)

    def to_json(self) -> dict[str, Any]:
        """For `--summary-json`: what monitoring needs."""
        return {
            "input": str(self.input_path),
            "results": str(self.results_path),
            "portal_id": self.portal_id,
            "complete": self.complete,
            "counts": self.counts,
            "duration_s": round(self.duration_s, 3),
            "send_s": round(self.send_s, 3),
            "requests": self.requests,
            "searches": self.searches,
            "requests_per_s": round(self.requests / self.send_s, 3) if self.send_s else 0.0,
            "rate_limited_429s": self.rate_limited,
            "stop_reason": self.stop_reason,
            "routing": self.routing.to_json() if self.routing else None,
            "top_errors": [
                {"error": top.error, "code": top.code, "rows": top.count, "first_rows": top.first_rows}
                for top in self.top_errors
            ],
            "sheet": self.sheet.name if self.sheet else None,
            "other_sheets": self.sheet.others if self.sheet else [],
            "unmapped_columns": self.sheet.unmapped if self.sheet else [],
            "zone": self.sheet.zone if self.sheet else None,
        }


@dataclass(frozen=True)
class SheetNote:
    """How the input was read: the sheet (and the workbook's others), columns left out, the zone used
    for times written without one."""

    name: str | None
    others: list[str]
    unmapped: list[str]
    zone: str


@dataclass(frozen=True)
class TopError:
    """One of a run's most frequent row errors: its codes, how many rows have it, and the first of them."""

    error: str
    count: int
    first_rows: list[int]
    code: str | None = None


_NOT_DONE = {str(s) for s in (RowStatus.INVALID, RowStatus.FAILED, RowStatus.IN_DOUBT, RowStatus.NOT_SENT)}


def run_import(
    input_path: Path, settings: Settings, progress: Progress | None = None, *, plan: bool = False
) -> RunSummary:
    """Import `input_path` as `settings` say and write the results file; a bad row never raises.

    Raises StopRun for what stops the whole run before anything is sent (unusable input, settings or
    ledger, a refused token) and LockHeld when another run holds the ledger; then the results file of an
    earlier run is left as it was.
    """
    started = time.monotonic()
    # A dry run or a plan never overwrites a real run's results (and the meeting ids in them) by default.
    kind = "plan" if plan else "dry-run" if settings.dry_run else "results"
    results_path = settings.results or default_results_path(input_path, kind)
    _check_results_path(input_path, results_path)
    if settings.dry_run:
        zone = settings.default_timezone or "UTC"
        sheet, results, _ = read_rows(input_path, settings, zone, build=False)
        Board(sheet.frame, results, results_path, progress).checkpoint(final=True)
        assumed = (
            zone
            if settings.default_timezone
            else messages._("UTC (no default_timezone; a real run uses the HubSpot account's)")
        )
        return _summary(input_path, results_path, results, started, sheet=_note(sheet, assumed))
    token = settings.token.get_secret_value() if settings.token else None
    if not token:
        message = messages._("no HubSpot access token: set the environment variable {variable}")
        raise ConfigError(message.format(variable=settings.token_env))
    return asyncio.run(_Import(input_path, settings, results_path, progress, started, plan).run(token))


def _check_results_path(input_path: Path, results_path: Path) -> None:
    """Before any request: a results file that could not be written would lose every row's outcome."""
    if results_path.resolve() == input_path.resolve():
        message = messages._("--results names the input file {path}: choose another results path")
        raise ConfigError(message.format(path=input_path))
    folder = results_path.parent
    while not folder.exists() and folder != folder.parent:
        folder = folder.parent
    cannot = messages._("cannot write the results file {path}: {error}")
    if not folder.is_dir():
        error = messages._("{folder} is not a folder").format(folder=folder)
        raise ConfigError(cannot.format(path=results_path, error=error))
    if results_path.is_dir():
        raise ConfigError(cannot.format(path=results_path, error=messages._("it is a folder")))
    if results_path.exists() and not results_path.is_file():
        # /dev/stdout, a pipe: the results are written beside and renamed over, which would replace it.
        special = messages._("it is not a regular file (a device or a pipe)")
        raise ConfigError(cannot.format(path=results_path, error=special))
    if not os.access(folder, os.W_OK | os.X_OK) or (
        results_path.exists() and not os.access(results_path, os.W_OK)
    ):
        raise ConfigError(cannot.format(path=results_path, error=messages._("permission denied")))


def read_rows(
    input_path: Path, settings: Settings, zone: str, *, build: bool = True
) -> tuple[Sheet, RowResults, Pending]:
    """Stage: the sheet, a result for every row (invalid ones settled), and the valid rows' meetings."""
    sheet = load_sheet(
        input_path,
        columns=settings.columns,
        encoding=settings.encoding,
        sheet=settings.sheet,
        header_row=settings.header_row,
        key_column=settings.key_column,
    )
    chunks = parse_rows(
        sheet,
        default_timezone=zone,
        default_outcome=settings.default_outcome,
        default_reminders=settings.default_reminders,
        build_meetings=build,
    )
    frames: list[pl.DataFrame] = []
    meetings: Pending = []
    for chunk in chunks:
        offset = sum(f.height for f in frames)
        meetings += [(offset + at, Packed.of(meeting)) for at, meeting in chunk.meetings.items()]
        frames.append(chunk.frame)
    results = _read_results(frames, meetings)
    log.info("read %s: %d rows, %d to send", input_path, len(results), len(meetings))
    return sheet, results, meetings


def _read_results(frames: list[pl.DataFrame], meetings: Pending) -> RowResults:
    """Every row's result as read, as columns: `invalid` with its problems, else `valid`."""
    read = pl.concat(frames) if frames else pl.DataFrame(schema={"row": pl.Int64, "error": pl.String})
    keys = pl.repeat(None, read.height, dtype=pl.String, eager=True)
    if meetings:
        keys = keys.scatter([index for index, _ in meetings], [meeting.row_key for _, meeting in meetings])
    invalid = pl.col("error").is_not_null()
    status = pl.when(invalid).then(pl.lit(str(RowStatus.INVALID))).otherwise(pl.lit(str(RowStatus.VALID)))
    results = RowResults(
        read.with_columns(status.alias("status"), keys.alias("row_key"), pl.lit(0).alias("attempts"))
    )
    for index in read.with_row_index().filter(invalid)["index"]:
        _log_row(results.peek(index))
    return results


def _note(sheet: Sheet, zone: str) -> SheetNote:
    return SheetNote(sheet.sheet_name, sheet.other_sheets, sheet.unmapped, zone)


def _summary(
    input_path: Path,
    results_path: Path,
    results: RowResults,
    started: float,
    client: HubSpotClient | None = None,
    **extra: Any,
) -> RunSummary:
    return RunSummary(
        input_path,
        results_path,
        count_statuses(results),
        time.monotonic() - started,
        requests=client.requests_sent if client else 0,
        searches=client.searches_sent if client else 0,
        rate_limited=client.rate_limited if client else 0,
        top_errors=_top_errors(results.columns()),
        **extra,
    )


def _top_errors(results: pl.DataFrame, count: int = 5) -> list[TopError]:
    """The most frequent errors of rows not done (ties in order of first appearance), each with its
    first rows and the code of the first."""
    done = [str(s) for s in DONE_STATUSES]
    ranked = (
        results.filter(pl.col("error").is_not_null() & ~pl.col("status").is_in(done))
        .group_by("error", maintain_order=True)
        .agg(pl.len().alias("rows"), pl.col("row").head(count).alias("first"), pl.col("error_code").first())
        .sort("rows", descending=True, maintain_order=True)
        .head(count)
    )
    return [TopError(error, rows, first, code) for error, rows, first, code in ranked.iter_rows()]


WHOLE_SHARE = 0.05
"""At most this share of a run's time goes to rewriting the results file whole while rows finish."""


class Board:
    """Where outcomes go: the results (as columns), the results file and its journal, the log and the
    progress line."""

    def __init__(
        self,
        inputs: pl.DataFrame,
        results: RowResults,
        results_path: Path,
        progress: Progress | None,
        account: Account | None = None,
        plan: bool = False,
        headers: dict[str, str] | None = None,
    ) -> None:
        self.plan = plan
        self.headers = headers or {}  # field -> the sheet's header, to name columns in problems
        self.inputs = inputs
        self.results = results
        self.results_path = results_path
        self.journal = journal_path(results_path)
        self.progress = progress
        self.account = account
        self.to_send = 0
        self._finished = 0
        self._last_checkpoint = self._whole_at = time.monotonic()
        self._whole_s = 0.0

    def record(self, index: int, outcome: RowOutcome) -> None:
        result = self.results[index]
        read = result.outcome  # what reading the row noticed comes first
        if read.warning and read.warning != outcome.warning:
            outcome.warning = "; ".join(w for w in (read.warning, outcome.warning) if w)
            outcome.warning_code = ";".join(c for c in (read.warning_code, outcome.warning_code) if c) or None
        result.outcome = outcome
        _log_row(result)
        if outcome.status is not RowStatus.NOT_SENT:  # a stop settles rows, but finishes none
            self._finished += 1
            if self.progress is not None:
                self.progress(self._finished, self.to_send)
        self.checkpoint()

    def checkpoint(self, *, final: bool = False) -> None:
        """Every CHECKPOINT_S while rows finish, the rows changed since the last checkpoint are appended
        to the journal beside the results file, at a cost in proportion to them. The file itself is
        rewritten whole (atomically) when that takes at most WHOLE_SHARE of the time since it last was,
        and at the end, when the journal goes. So the file is always whole, a small sheet's as fresh as
        before, and after a kill the journal has the rows finished since (a row's last line counts)."""
        now = time.monotonic()
        if not final and now - self._last_checkpoint < CHECKPOINT_S:
            return
        try:
            if final or now - self._whole_at >= self._whole_s / WHOLE_SHARE:
                self._write_whole()
                self.journal.unlink(missing_ok=True)  # every line of it is in the file now
            else:
                self._append_changed()
        except OSError as exc:  # the ledger is right already: the next run needs no results file
            message = messages._("cannot write the results file {path}: {error}")
            raise StopRun(message.format(path=self.results_path, error=exc.strerror or exc)) from None
        self._last_checkpoint = time.monotonic()

    def _write_whole(self) -> None:
        started = time.monotonic()
        self.results.take_changed()  # in the file from now on
        write_results(self._lines(self.inputs, self.results.columns()), self.results_path)
        self._whole_at = time.monotonic()
        self._whole_s = self._whole_at - started

    def _append_changed(self) -> None:
        changed = self.results.take_changed()
        if changed:
            lines = self._lines(self.inputs[changed], self.results.columns_of(changed))
            append_results(lines, self.journal)

    def _lines(self, inputs: pl.DataFrame, results: pl.DataFrame) -> pl.DataFrame:
        account = self.account
        return results_lines(
            inputs,
            results,
            account.portal_id if account else None,
            account.ui_domain if account else None,
            self.plan,
        )


FIRST_CHUNK_ROWS, CHUNK_ROWS = 50, 1000  # rows looked up together: the first few, so sending starts soon


class _Import:
    """One real run: the stages in order, under one client, one ledger and one signal policy."""

    def __init__(
        self,
        input_path: Path,
        settings: Settings,
        results_path: Path,
        progress: Progress | None,
        started: float,
        plan: bool = False,
    ) -> None:
        self.plan = plan  # read and ask everything, write nothing to HubSpot or the ledger
        self.input_path = input_path
        self.settings = settings
        self.results_path = results_path
        self.progress = progress
        self.started = started
        self.run_id = uuid.uuid4().hex
        self.stop_reason: str | None = None
        self.sender: Sender | None = None
        self.logbook: BatchSender | None = None
        self.routing: Routing | None = None
        self.started_ms = round(time.time() * 1000)  # `auto` logs the meetings that ended before this
        self._feeds: tuple[Feed[Any], ...] = ()
        self._producer: asyncio.Future[None] | None = None  # the look-ups, chunk by chunk, while sending
        self.send_s = 0.0

    async def run(self, token: str) -> RunSummary:
        settings = self.settings
        pacer = Pacer(settings.requests_per_10s, settings.search_per_second)
        client = HubSpotClient(
            settings.base_url,
            token,
            gate=pacer,
            retry=RetryPolicy(
                max_attempts=settings.max_attempts,
                base_s=settings.backoff_base_s,
                cap_s=settings.backoff_cap_s,
                deadline_s=settings.row_deadline_s,
            ),
            timeout_s=settings.timeout_s,
            connect_timeout_s=settings.connect_timeout_s,
            max_connections=settings.concurrency,
        )
        async with client:
            with self._signals():
                account = await self._stage(connect(client, settings.base_url))
                portal = messages._(
                    "writing to HubSpot portal {portal} ({account_type}, {ui_domain})"
                ).format(
                    portal=account.portal_id,
                    account_type=account.account_type or messages._("account type unknown"),
                    ui_domain=account.ui_domain or messages._("no UI domain"),
                )
                self._phase(portal, portal=True)
                ledger_path = settings.state_path or default_ledger_path(account.portal_id)
                with self._ledger(ledger_path, str(account.portal_id)) as ledger:
                    previous = _earlier_results(settings.only_failed, account)
                    zone = settings.default_timezone or account.time_zone or "UTC"
                    self._phase(messages._("reading {path}").format(path=self.input_path))
                    sheet, results, meetings = read_rows(self.input_path, settings, zone)
                    board = Board(
                        sheet.frame,
                        results,
                        self.results_path,
                        self.progress,
                        account,
                        self.plan,
                        headers=sheet.headers,
                    )
                    try:
                        await self._stages(client, pacer, ledger, sheet, board, meetings, previous)
                    finally:
                        board.checkpoint(final=True)
        return _summary(
            self.input_path,
            self.results_path,
            results,
            self.started,
            client,
            send_s=self.send_s,
            stop_reason=self.stop_reason,
            portal_id=account.portal_id,
            sheet=_note(
                sheet,
                zone
                if settings.default_timezone
                else messages._("{zone} (the HubSpot account's)").format(zone=zone),
            ),
            routing=self.routing,
        )

    @contextmanager
    def _ledger(self, path: Path, portal: str) -> Iterator[Ledger]:
        """The portal's ledger under its lock; for a plan, an in-memory copy that nothing is written to."""
        if self.plan:
            with closing(Ledger.copy_of(path, portal)) as copy:
                yield copy
            return
        with state_lock(path, self.input_path), open_ledger(path, portal) as ledger:
            if self.settings.state_path is None:
                _merge_legacy_ledger(ledger, self.results_path.parent / LEGACY_PLACE)
            yield ledger

    async def _stages(
        self,
        client: HubSpotClient,
        pacer: Pacer,
        ledger: Ledger,
        sheet: Sheet,
        board: Board,
        meetings: Pending,
        previous: dict[str, EarlierResult],
    ) -> None:
        settings = self.settings
        keys = identify(sheet, board, meetings, settings.key_column)
        unique, twins = _split_twins([(i, m) for i, m in meetings if i in keys], keys)
        # Until a stage says otherwise.
        board.results.set_many([index for index, _ in unique], "status", RowStatus.NOT_SENT)
        board.to_send = len(unique)
        ledger.start_run(self.run_id, str(self.input_path))
        started = time.monotonic()
        try:
            known = settle_known(unique, keys, ledger, sheet.evidence, previous, board, settings.on_change)
            edited = known.edited + await self._stage(
                confirm_vouched(client, ledger, known.vouched, keys, self.run_id, board)
            )
            edits = {edit.index: edit for edit in edited}
            rows = known.pending + [(edit.index, edit.meeting) for edit in edited]
            chunks = list(row_chunks(rows))
            if rows:
                looking = messages.ngettext(
                    "looking up owners and associations of {count} row, sending as they are ready",
                    "looking up owners and associations of {count} rows, sending as they are ready",
                    len(rows),
                )
                self._phase(looking.format(count=len(rows)))
            prepared = self._prepared(client, ledger, board, chunks, keys, known, edits)
            if self.plan:
                jobs, updates = [], []
                async for chunk_updates, chunk_jobs in prepared:
                    updates += chunk_updates
                    jobs += chunk_jobs
                *_, self.routing = route(jobs, settings.mode, self.started_ms)  # how many each way
                _record_plan(jobs, updates, board)
                return
            await self._send(client, pacer, ledger, prepared, board)
        except _Stopped:
            pass  # a signal during the lookups: nothing was sent
        except HubSpotError as error:
            self._lookups_failed(error)
        finally:
            self.send_s = time.monotonic() - started
            stopped = codes.describe(
                [codes.Problem(codes.RUN_STOPPED, params={"reason": self.stop_reason})]
                if self.stop_reason
                else []
            )
            statuses = board.results.column("status")
            unsent = [index for index, _ in unique if statuses[index] == RowStatus.NOT_SENT]
            board.results.set_many(unsent, "error", stopped[0])
            board.results.set_many(unsent, "error_code", stopped[1])
            for index, first in twins:
                board.record(index, _twin_outcome(board.results[first]))
            counts = " ".join(f"{k}={n}" for k, n in count_statuses(board.results).items() if n)
            ledger.finish_run(self.run_id, f"{self.stop_reason or 'finished'}: {counts or 'no rows'}")

    async def _prepared(
        self,
        client: HubSpotClient,
        ledger: Ledger,
        board: Board,
        chunks: list[Pending],
        keys: dict[int, str],
        known: Known,
        edits: dict[int, Edited],
    ) -> AsyncIterator[tuple[list[UpdateJob], list[SendJob]]]:
        """Stages map_rows, plan_updates and check_existing, a chunk of rows at a time (see `row_chunks`):
        the updates and creates of each chunk, as soon as its rows are looked up and checked."""
        settings = self.settings
        lookups = Lookups(client)
        run_keys = set(keys.values())
        upcoming = unpacked(chunks[0]) if chunks else []
        for at in range(len(chunks)):
            # Two chunks unpacked at a time: this one, and the next, whose values fill this one's batches.
            chunk, upcoming = upcoming, unpacked(chunks[at + 1]) if at + 1 < len(chunks) else []
            later = (meeting for _, meeting in upcoming)
            jobs = await self._stage(map_rows(lookups, chunk, keys, settings, board, later))
            updates = plan_updates([j for j in jobs if j.index in edits], edits, ledger, board)
            jobs = [j for j in jobs if j.index not in edits]
            # Without the check, rows an earlier results file left unsent or in doubt are still looked for.
            # Rows in doubt are left to the sender, whose rules for them are stricter.
            checkable = [j for j in jobs if j.index not in known.in_doubt]
            checked = (
                checkable if settings.check_existing else [j for j in checkable if j.index in known.suspect]
            )
            if checked:
                sent = await self._stage(
                    check_existing(client, ledger, checked, run_keys, self.run_id, board)
                )
                looked_for = {j.index for j in checked}  # by index: comparing whole jobs is quadratic
                jobs = [j for j in jobs if j.index not in looked_for] + sent
            yield updates, jobs

    async def _send(
        self,
        client: HubSpotClient,
        pacer: Pacer,
        ledger: Ledger,
        prepared: AsyncIterator[tuple[list[UpdateJob], list[SendJob]]],
        board: Board,
    ) -> None:
        """Stage: update the edited rows' meetings and create the rest, the logged ones (importer.logbook)
        beside the scheduled ones, chunk by chunk as the look-ups make them; the senders decide about
        retries and rows in doubt."""
        options: dict[str, Any] = {
            "run_id": self.run_id,
            "concurrency": self.settings.concurrency,
            "max_attempts": self.settings.max_attempts,
            "search_lag_s": self.settings.search_lag_s,
            "on_outcome": board.record,
            "daily_remaining": lambda: pacer.daily_remaining,
            "recreate_missing": self.settings.recreate_missing,
            "on_phase": self._phase,
        }
        sender = self.sender = Sender(client, ledger, **options)
        logbook = self.logbook = BatchSender(client, ledger, **options)
        updates, logged, scheduled = Feed[UpdateJob](), Feed[SendJob](), Feed[SendJob]()
        self._feeds = (updates, logged, scheduled)
        routings: list[Routing] = []

        async def produce() -> None:
            try:
                async for chunk_updates, jobs in prepared:
                    if self._stopping():
                        return
                    chunk_logged, chunk_scheduled, routing = route(jobs, self.settings.mode, self.started_ms)
                    routings.append(routing)
                    await updates.put(chunk_updates)
                    await logged.put(chunk_logged)
                    await scheduled.put(chunk_scheduled)
            except HubSpotError as error:  # rows already handed to the senders are still sent
                self._lookups_failed(error)
            finally:
                for feed in self._feeds:
                    feed.close()

        async def drain(feed: Feed[Any], work: Any) -> None:
            try:
                await work
            finally:
                feed.abandon()  # a sender that stopped takes no more: the look-ups must not wait for it

        self._producer = asyncio.ensure_future(produce())
        try:
            # All to the end, whatever one raises: none may be left sending once the ledger closes.
            done = await asyncio.gather(
                self._producer,
                drain(updates, sender.update_all(updates)),
                drain(logged, logbook.send_all(logged)),
                drain(scheduled, sender.send_all(scheduled)),
                return_exceptions=True,
            )
            failures = [
                d for d in done if isinstance(d, BaseException) and not isinstance(d, asyncio.CancelledError)
            ]
            for failure in failures:
                raise failure
        finally:
            self.routing = _routing(routings, self.settings.mode)
            self.stop_reason = self.stop_reason or sender.stop_reason or logbook.stop_reason

    def _stopping(self) -> bool:
        """Whether a signal, a sender or a failed look-up stopped the run: no more rows are prepared."""
        senders = (self.sender, self.logbook)
        return self.stop_reason is not None or any(s is not None and s.stop_reason for s in senders)

    def _lookups_failed(self, error: HubSpotError) -> None:
        """The look-ups could not be done, retries spent: the rows not yet handed to a sender stay unsent."""
        self.stop_reason = messages._("looking up owners, associations and meetings failed: {error}").format(
            error=error
        )
        log.error(self.stop_reason)
        for sender in (self.sender, self.logbook):
            if sender is not None:
                sender.stop(self.stop_reason)

    def _phase(self, text: str, *, portal: bool = False) -> None:
        log.info("%s", text)
        if self.progress is not None:
            self.progress.phase(text, portal=portal)

    async def _stage(self, work: Any) -> Any:
        """Run a lookup stage; a signal meanwhile cancels it (lookups send nothing) and raises _Stopped."""
        try:
            return await work
        except asyncio.CancelledError:
            if self.stop_reason is None:
                raise
            raise _Stopped from None
        except AuthFailed as error:
            raise AuthError(
                messages._("HubSpot refused the access token: {error}").format(error=error)
            ) from None

    @contextmanager
    def _signals(self) -> Iterator[None]:
        """SIGINT or SIGTERM: while sending, finish the requests in flight and take no more rows; during
        the lookups, which send nothing, stop at once."""
        loop, task = asyncio.get_running_loop(), asyncio.current_task()

        def interrupt(name: str) -> None:
            reason = messages._("stopped by {signal}").format(signal=name)
            log.warning("%s received: finishing the requests in flight, sending no more", name)
            if self.progress is not None:
                self.progress.phase(
                    messages._("{signal}: finishing the requests in flight, sending no more").format(
                        signal=name
                    )
                )
            if self.sender is not None:
                self.sender.stop(reason)
                if self.logbook is not None:
                    self.logbook.stop(reason)
                if self._producer is not None:
                    self._producer.cancel()  # look-ups send nothing: rows not yet prepared stay unsent
            elif self.stop_reason is None and task is not None:
                self.stop_reason = reason
                task.cancel()

        for signum in _SIGNALS:
            loop.add_signal_handler(signum, interrupt, signum.name)
        try:
            yield
        except _Stopped:
            raise StopRun(
                messages._("{reason} before anything was sent").format(reason=self.stop_reason)
            ) from None
        finally:
            for signum in _SIGNALS:
                loop.remove_signal_handler(signum)


class _Stopped(Exception):
    """A signal stopped the run during a lookup stage."""


async def connect(client: HubSpotClient, base_url: str) -> Account:
    """Stage: the account the token belongs to. One request, which also checks the token; the ledger is
    the portal's, however the API's URL is spelt."""
    try:
        return await client.account()
    except AuthFailed:
        raise
    except HubSpotError as error:
        host = urlsplit(base_url).hostname or base_url
        message = messages._("cannot reach HubSpot at {host} ({url}): {error}")
        raise StopRun(message.format(host=host, url=base_url, error=error)) from None


def _merge_legacy_ledger(ledger: Ledger, legacy: Path) -> None:
    """A ledger at the place earlier versions kept it (beside the results) is merged once, then renamed."""
    if not legacy.is_file() or legacy.resolve() == ledger.path.resolve():
        return
    try:
        count = ledger.merge_from(legacy)
        done = legacy.with_name(f"{legacy.name}.merged-into-portal-{ledger.target}")
        legacy.rename(done)
    except Exception as exc:  # an unreadable old ledger must not stop the run: HubSpot is asked anyway
        log.warning(
            "could not merge the earlier ledger %s (%s); the existing-meeting check covers it", legacy, exc
        )
        return
    log.warning(
        "merged %d rows of the earlier ledger %s into %s (renamed %s)", count, legacy, ledger.path, done.name
    )


def _earlier_results(path: Path | None, account: Account) -> dict[str, EarlierResult]:
    """`--only-failed PREVIOUS`, refused when it was written for another portal."""
    if path is None:
        return {}
    earlier = read_earlier(path)
    portals = {e.portal_id for e in earlier.values() if e.portal_id} - {str(account.portal_id)}
    if portals:
        message = messages._(
            "{path} was written for HubSpot portal {portals}, but this run writes to portal {portal}:"
            " use that portal's results file"
        )
        raise InputError(
            message.format(path=path, portals=", ".join(sorted(portals)), portal=account.portal_id)
        )
    return earlier


def identify(sheet: Sheet, board: Board, meetings: Pending, key_column: str | None) -> dict[int, str]:
    """Stage: each valid row's identity in the portal, by result index: the key column's value when the
    config names one; else the `row_key` a results file imported again gives the row (so fixing a row in
    the results file edits its meeting); else the row's content fingerprint. Rows with an empty key are
    invalid; one key on two rows stops the run."""
    keys: dict[int, str] = {}
    if key_column:
        if key_column not in sheet.frame.columns:
            message = messages._("{path}: no column '{column}' (key_column); the file has: {columns}")
            columns = ", ".join(sheet.frame.columns)
            raise InputError(message.format(path=sheet.path, column=key_column, columns=columns))
        values = sheet.frame[key_column].to_list()
        seen: dict[str, int] = {}
        for index, _ in meetings:
            value = " ".join(str(values[index] or "").split())
            if not value:
                missing = codes.Problem(codes.MISSING_REQUIRED_PROPERTY, key_column)
                board.record(index, codes.outcome(RowStatus.INVALID, missing))
                continue
            if value in seen:
                rows = messages._("{first} and {second}").format(
                    first=board.results[seen[value]].row, second=board.results[index].row
                )
                message = messages._("{path}: rows {rows} have the same {column} '{value}'")
                raise InputError(message.format(path=sheet.path, rows=rows, column=key_column, value=value))
            seen[value] = index
            keys[index] = hashlib.sha256(f"key\x1f{value}".encode()).hexdigest()[:24]
    else:
        given = _evidence_keys(sheet.evidence)
        counts = Counter(given[index] for index, _ in meetings if given.get(index))
        for index, meeting in meetings:
            earlier = given.get(index)
            keys[index] = earlier if earlier and counts[earlier] == 1 else meeting.row_key
    board.results.set_many(list(keys), "row_key", list(keys.values()))
    return keys


def _evidence_keys(evidence: pl.DataFrame | None) -> dict[int, str]:
    if evidence is None or "row_key" not in evidence.columns:
        return {}
    return {i: str(k) for i, k in enumerate(evidence["row_key"].to_list()) if k}


def _split_twins(meetings: Pending, keys: dict[int, str]) -> tuple[Pending, list[tuple[int, int]]]:
    """The first row of each identity, and (index, index of its first) for the repeats: a sheet that
    lists one meeting twice (the same in everything sent) must still create it once."""
    firsts: dict[str, int] = {}
    unique: Pending = []
    twins: list[tuple[int, int]] = []
    for index, _meeting in meetings:
        first = firsts.setdefault(keys[index], index)
        if first == index:
            unique.append((index, _meeting))
        else:
            twins.append((index, first))
    return unique, twins


def _twin_outcome(first: RowResult) -> RowOutcome:
    """A repeated row's outcome is its first's; its problems are the first's, after saying so."""
    same = codes.Problem(codes.DUPLICATE_ROW_CONTENT, params={"row": first.row})
    if first.status in DONE_STATUSES:
        return RowOutcome(RowStatus.SKIPPED, first.outcome.meeting_id).noted(*codes.rendered([same]))
    earlier = first.outcome
    error, code = same.render(), same.code.name
    return RowOutcome(
        first.status,
        error=codes.MESSAGE_SEPARATOR.join(e for e in (error, earlier.error) if e),
        error_code=codes.CODE_SEPARATOR.join(c for c in (code, earlier.error_code) if c),
    )


@dataclass(frozen=True)
class Edited:
    """A row whose meeting HubSpot has, but whose content changed since it was sent."""

    index: int
    meeting: Packed
    meeting_id: str
    sent: str | None  # the ledger's snapshot of what was last sent; None when unknown


@dataclass
class Known:
    """What `settle_known` leaves for the later stages."""

    pending: Pending = field(default_factory=list)  # to be mapped, checked and created
    vouched: dict[str, Pending] = field(default_factory=dict)  # meeting id -> rows
    suspect: set[int] = field(default_factory=set)  # a results file left them unsent or in doubt
    in_doubt: set[int] = field(default_factory=set)  # the ledger's rows in doubt: the sender searches first
    edited: list[Edited] = field(default_factory=list)


def settle_known(
    meetings: Pending,
    keys: dict[int, str],
    ledger: Ledger,
    evidence: pl.DataFrame | None,
    previous: dict[str, EarlierResult],
    board: Board,
    on_change: str,
) -> Known:
    """Stage: rows the ledger knows as created are skipped before any lookup is spent on them, or, when
    their content changed since, are edits. Rows a results file vouches for (its own columns, or
    `--only-failed`) are set aside by meeting id, to be confirmed in HubSpot; the rest are pending."""
    entries = ledger.entries(keys[index] for index, _ in meetings)
    own = _own_evidence(evidence, board)
    known = Known()
    for index, meeting in meetings:
        entry = entries.get(keys[index])
        claim = own.get(index) or previous.get(meeting.row_key)
        if claim is not None and claim.status in (RowStatus.NOT_SENT, RowStatus.IN_DOUBT):
            known.suspect.add(index)
        if entry is not None and entry.state == "created" and entry.meeting_id:
            if entry.content_key in (None, meeting.row_key):
                board.record(index, RowOutcome(RowStatus.SKIPPED, entry.meeting_id))
            elif on_change == "skip":
                note = codes.rendered([codes.Problem(codes.CHANGE_NOT_SENT)])
                board.record(index, RowOutcome(RowStatus.SKIPPED, entry.meeting_id).noted(*note))
            else:
                known.edited.append(Edited(index, meeting, entry.meeting_id, entry.sent))
        elif entry is not None and entry.state in IN_DOUBT:
            known.pending.append((index, meeting))
            known.in_doubt.add(index)
        elif claim is not None and claim.status in DONE_STATUSES and claim.meeting_id:
            known.vouched.setdefault(claim.meeting_id, []).append((index, meeting))
        else:
            known.pending.append((index, meeting))
    return known


def _own_evidence(evidence: pl.DataFrame | None, board: Board) -> dict[int, EarlierResult]:
    """What a results file imported as input says of its own rows, by result index. A meeting id of
    another portal proves nothing here."""
    if evidence is None or "meeting_id" not in evidence.columns:
        return {}
    portal = str(board.account.portal_id) if board.account else None
    found: dict[int, EarlierResult] = {}
    for index, row in enumerate(evidence.iter_rows(named=True)):
        claim = EarlierResult(str(row.get("status") or ""), row.get("meeting_id"), row.get("portal_id"))
        if claim.portal_id and claim.portal_id != portal:
            continue
        found[index] = claim
    return found


async def confirm_vouched(
    client: HubSpotClient,
    ledger: Ledger,
    vouched: dict[str, Pending],
    keys: dict[int, str],
    run_id: str,
    board: Board,
) -> list[Edited]:
    """Stage: meeting ids a results file names are read back from HubSpot (100 a request); those it has
    are recorded in the ledger and skipped, or, when the row was fixed in the results file since (its
    `row_key` no longer its content), become edits. A deleted one fails its row rather than being made
    again."""
    if not vouched:
        return []
    read = await client.batch_read("meetings", list(vouched))
    existing = {record.id for record in read.found}
    edited: list[Edited] = []
    for meeting_id, rows in vouched.items():
        for index, meeting in rows:
            if meeting_id not in existing:
                gone = codes.Problem(codes.RESULTS_MEETING_DELETED, params={"meeting_id": meeting_id})
                board.record(index, codes.outcome(RowStatus.FAILED, gone))
                continue
            changed = keys[index] != meeting.row_key
            ledger.record_created(
                keys[index], meeting_id, run_id, content_key=None if changed else meeting.row_key
            )
            if changed:
                edited.append(Edited(index, meeting, meeting_id, None))
            else:
                note = codes.rendered([codes.Problem(codes.CREATED_EARLIER)])
                board.record(index, RowOutcome(RowStatus.SKIPPED, meeting_id).noted(*note))
    return edited


def row_chunks(rows: Pending) -> Iterator[Pending]:
    """`rows` by owner and start, in chunks that grow from FIRST_CHUNK_ROWS to CHUNK_ROWS. By owner and
    start, each chunk's search for existing meetings spans only its own owners' stretch of time, so the
    chunks together read each meeting once; and a chunk ends only where owner or start changes, so rows
    that one meeting could match are always checked together, before any of them is created."""
    ordered = sorted(rows, key=_slot)
    size, chunk = FIRST_CHUNK_ROWS, []
    for at, row in enumerate(ordered):
        chunk.append(row)
        later = ordered[at + 1] if at + 1 < len(ordered) else None
        if len(chunk) >= size and (later is None or _slot(later) != _slot(row)):
            yield chunk
            size, chunk = min(size * 4, CHUNK_ROWS), []
    if chunk:
        yield chunk


def _slot(row: tuple[int, Packed]) -> tuple[str, int]:
    return row[1].owner_email, row[1].start_ms


async def map_rows(
    lookups: Lookups,
    rows: list[tuple[int, Meeting]],
    keys: dict[int, str],
    settings: Settings,
    board: Board,
    later: Iterable[Meeting] = (),
) -> list[SendJob]:
    """Stage: owners and associations for every row still to send (and some of the `later` rows', to
    fill the lookups' batches); rows that cannot be mapped fail."""
    if not rows:
        return []
    directory = await lookups.directory_for([meeting for _, meeting in rows], later)
    jobs = []
    for index, meeting in rows:
        mapped = map_meeting(
            meeting,
            directory,
            on_missing_association=settings.on_missing_association,
            ambiguous_company_domain=settings.ambiguous_company_domain,
            include_invite_description=settings.include_invite_description,
        )
        if mapped.request is None:
            found = [problem.named(board.headers) for problem in mapped.problems]
            board.record(index, codes.outcome(RowStatus.FAILED, *found))
        else:
            jobs.append(SendJob(index, keys[index], mapped.request, meeting.row_key))
    return jobs


def plan_updates(
    jobs: list[SendJob], edits: dict[int, Edited], ledger: Ledger, board: Board
) -> list[UpdateJob]:
    """Stage: what each edited row changes in its meeting. A row whose change HubSpot's CRM cannot make
    (only reminders, say) is skipped with a warning that says so."""
    updates = []
    for job in jobs:
        edit = edits[job.index]
        change = named(diff(edit.sent, job.request), board.headers)
        if change.empty:
            ledger.mark_updated(job.row_key, job.content_key or "", snapshot(job.request))
            kept = codes.Problem(
                codes.ONLY_NOT_UPDATABLE, params={"fields": ", ".join(change.not_updatable) or "-"}
            )
            board.record(
                job.index, RowOutcome(RowStatus.SKIPPED, edit.meeting_id).noted(*codes.rendered([kept]))
            )
        else:
            updates.append(UpdateJob(job, edit.meeting_id, change))
    return updates


def _record_plan(jobs: list[SendJob], updates: list[UpdateJob], board: Board) -> None:
    """A plan's outcome for the rows a run would send: created ones `valid`, edited ones `updated`."""
    for update in updates:
        outcome = RowOutcome(RowStatus.UPDATED, update.meeting_id)
        board.record(update.job.index, outcome.noted(*codes.rendered(update_notes(update.change))))
    for job in jobs:
        board.record(job.index, RowOutcome(RowStatus.VALID).noted(*codes.rendered(job.request.notes)))


async def check_existing(
    client: HubSpotClient,
    ledger: Ledger,
    jobs: list[SendJob],
    run_keys: set[str],
    run_id: str,
    board: Board,
) -> list[SendJob]:
    """Stage: look for every job among the portal's meetings before creating it; adopt the meeting that
    is surely its own, and return the jobs still to send."""
    findings = await find_in_ranges(client, [job.request for job in jobs])
    holders = ledger.holders({i for f in findings for i in f.same})
    # A meeting another row of this sheet holds is that row's: this one is a meeting of its own.
    mines = [
        [i for i in finding.same if not (holders.get(i, set()) & (run_keys - {job.row_key}))]
        for job, finding in zip(jobs, findings, strict=True)
    ]
    ambiguous = [at for at, mine in enumerate(mines) if len(mine) > 1]
    narrowed = await asyncio.gather(*(narrow(client, jobs[at].request, mines[at]) for at in ambiguous))
    for at, mine in zip(ambiguous, narrowed, strict=True):
        mines[at] = mine
    rows_of: dict[str, list[int]] = {}  # meeting id -> the rows it matches
    for job, mine in zip(jobs, mines, strict=True):
        for meeting_id in mine:
            rows_of.setdefault(meeting_id, []).append(board.results[job.index].row)
    to_send = []
    for job, finding, mine in zip(jobs, findings, mines, strict=True):
        if len(mine) > 1:
            params: dict[str, codes.Param] = {"count": len(mine), "ids": ", ".join(mine)}
            several = codes.Problem(codes.MULTIPLE_EXISTING_MEETINGS, params=params)
            board.record(job.index, codes.outcome(RowStatus.FAILED, several))
        elif mine and len(rows_of[mine[0]]) > 1:
            rows = ", ".join(str(r) for r in rows_of[mine[0]])
            shared = codes.Problem(
                codes.MEETING_MATCHES_SEVERAL_ROWS, params={"meeting_id": mine[0], "rows": rows}
            )
            board.record(job.index, codes.outcome(RowStatus.FAILED, shared))
        elif mine:
            ledger.record_created(
                job.row_key, mine[0], run_id, content_key=job.content_key, sent=snapshot(job.request)
            )
            there = codes.Problem(codes.ALREADY_IN_HUBSPOT, params={"meeting_id": mine[0]})
            outcome = RowOutcome(RowStatus.SKIPPED, mine[0])
            board.record(job.index, outcome.noted(*codes.rendered((*job.request.notes, there))))
        else:
            if finding.differing:
                similar = codes.Problem(
                    codes.SIMILAR_MEETING_EXISTS, params={"ids": ", ".join(finding.differing)}
                )
                job = replace(job, request=replace(job.request, notes=(*job.request.notes, similar)))
            to_send.append(job)
    return to_send


def _routing(parts: list[Routing], mode: Mode) -> Routing:
    """The chunks' routings as the run's."""
    return Routing(
        mode,
        sum(part.logged for part in parts),
        sum(part.scheduled for part in parts),
        sum(part.past_scheduled for part in parts),
    )


def _log_row(result: RowResult) -> None:
    outcome = result.outcome
    # Rows left unsent by a stop are said once, in the summary's `stopped:` line, not once per row.
    # Invalid rows go to the log file; the summary's most frequent errors name them on the console.
    quiet = result.status in DONE_STATUSES or result.status in (RowStatus.NOT_SENT, RowStatus.INVALID)
    level = logging.INFO if quiet else logging.WARNING
    fields = {
        "row": result.row,
        "row_key": result.row_key,
        "status": str(outcome.status),
        "meeting_id": outcome.meeting_id,
        "http_status": outcome.http_status,
        "correlation_id": outcome.correlation_id,
        "attempts": outcome.attempts,
        "error": outcome.error,
        "error_code": outcome.error_code,
        "warning_code": outcome.warning_code,
    }
    log.log(level, "row %d %s", result.row, outcome.status, extra={"fields": fields})
