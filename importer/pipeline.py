"""The import, stage by stage: each stage takes the previous one's values and returns its own. The
stages are in importer.stages, the Board in importer.board; this module runs them, under one client, one
ledger and one signal policy, and sends.

connect          the portal the token belongs to (checks the token, names the ledger)
read_rows        the sheet -> a result for every row, the meetings of the valid ones
identify         each row's identity: its key column, a results file's row_key, or its content
settle_known     rows the ledger, or a results file's own evidence, already knows: done, or edited
confirm_vouched  meeting ids a results file names, checked in HubSpot in batch reads
map_rows         owners and association ids -> create requests
plan_updates     what each edited row changes in its meeting
check_existing   rows HubSpot already has (made earlier, elsewhere, or by hand) are adopted
send             updates and creates, paced, retried, never twice: past meetings logged (logbook)
Board            every outcome into the results file, the log and the progress line

A dry run is one stage, check_rows: every row read and checked, and its line written as its chunk is.

The stages up to settle_known and confirm_vouched take every row at once (they ask the ledger, or read
back a results file's ids). From map_rows on, the rows go a chunk at a time (`row_chunks`: by owner and
start, small first), and `send` takes each chunk's creates and updates as soon as they are ready, while
the next chunk is looked up: a big sheet's first meetings are created within a second or two.

`plan` runs the same stages against an in-memory copy of the ledger and stops before `send`.
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import sqlite3
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import closing, contextmanager
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any, TypeVar

import polars as pl

from importer import messages
from importer import problems as codes
from importer.board import Board, Progress
from importer.config import Settings
from importer.errors import AuthError, ConfigError, StopRun
from importer.hubspot import Account, AuthFailed, HubSpotClient, HubSpotError, RetryPolicy
from importer.ledger import LEGACY_PLACE, Ledger, default_ledger_path, open_ledger, state_lock, unwritable
from importer.logbook import BatchSender, Mode, Routing, route
from importer.mapper import Lookups
from importer.models import DONE_STATUSES, RowStatus
from importer.pacing import Pacer
from importer.reader import Sheet, require_file
from importer.reporter import EarlierResult, RowResults, count_statuses, default_results_path
from importer.sender import HUBSPOT_TROUBLE, Feed, OutageWatch, Sender, SendJob, StopKind, UpdateJob
from importer.stages import (
    Edited,
    Known,
    Pending,
    check_existing,
    check_rows,
    confirm_vouched,
    connect,
    earlier_results,
    identify,
    map_rows,
    merge_legacy_ledger,
    plan_updates,
    read_rows,
    record_plan,
    row_chunks,
    settle_known,
    split_twins,
    twin_outcome,
    unpacked,
    unreachable,
)

log = logging.getLogger(__name__)
T = TypeVar("T")
_SIGNALS = (signal.SIGINT, signal.SIGTERM)


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
    stop_kind: StopKind | None = None
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
            "stop_kind": self.stop_kind,
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
    require_file(input_path)  # a sheet missing at night costs no request and prints no portal line
    _check_results_path(input_path, results_path)
    if settings.dry_run:
        zone = settings.default_timezone or "UTC"
        sheet, results = check_rows(input_path, settings, zone, results_path)
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
        results.select("row", "status", "error", "error_code")  # filtered, the other columns would be copied
        .filter(pl.col("error").is_not_null() & ~pl.col("status").is_in(done))
        .group_by("error", maintain_order=True)
        .agg(pl.len().alias("rows"), pl.col("row").head(count).alias("first"), pl.col("error_code").first())
        .sort("rows", descending=True, maintain_order=True)
        .head(count)
    )
    return [TopError(error, rows, first, code) for error, rows, first, code in ranked.iter_rows()]


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
        self.stop_kind: StopKind | None = None
        self.sender: Sender | None = None
        self.logbook: BatchSender | None = None
        self.routing: Routing | None = None
        self.started_ms = round(time.time() * 1000)  # `auto` logs the meetings that ended before this
        self._producer: asyncio.Future[None] | None = None  # the look-ups, chunk by chunk, while sending
        # Whether HubSpot is down, told by the senders and the look-ups: the run stops once, for all.
        self.watch = OutageWatch(settings.outage_s)
        self.watch.on_verdict(self._hubspot_down)
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
                account = await self._connected(client)
                portal = messages._(
                    "writing to HubSpot portal {portal} ({account_type}, {ui_domain})"
                ).format(
                    portal=account.portal_id,
                    account_type=account.account_type or messages._("account type unknown"),
                    ui_domain=account.ui_domain or messages._("no UI domain"),
                )
                self._phase(portal, portal=True)
                ledger_path = settings.state_path or default_ledger_path(account.portal_id)
                with (
                    _stop_told(ledger_path) as told,
                    self._ledger(ledger_path, str(account.portal_id)) as ledger,
                ):
                    previous = earlier_results(settings.only_failed, account)
                    zone = settings.default_timezone or account.time_zone or "UTC"
                    self._phase(messages._("reading {path}").format(path=self.input_path))
                    sheet, results, meetings = read_rows(self.input_path, settings, zone)
                    told.append(results)
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
            stop_kind=self.stop_kind,
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
        with (
            state_lock(path, self.input_path),
            open_ledger(path, portal, synced=not self.settings.check_existing) as ledger,
        ):
            if self.settings.state_path is None:
                merge_legacy_ledger(ledger, self.results_path.parent / LEGACY_PLACE)
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
        unique, twins = split_twins([(i, m) for i, m in meetings if i in keys], keys)
        meetings.clear()  # `unique` has the rows now, and they go on into chunks: none is held twice
        to_send = [index for index, _ in unique]
        # Until a stage says otherwise.
        board.results.set_many(to_send, "status", RowStatus.NOT_SENT)
        board.to_send = len(to_send)
        ledger.start_run(self.run_id, str(self.input_path))
        started = time.monotonic()
        try:
            known = settle_known(unique, keys, ledger, sheet.evidence, previous, board, settings.on_change)
            edited = known.edited + await self._looked_up(
                partial(confirm_vouched, client, ledger, known.vouched, keys, self.run_id, board)
            )
            edits = {edit.index: edit for edit in edited}
            rows = known.pending + [(edit.index, edit.meeting) for edit in edited]
            # From here on only the chunks hold the rows, and each is let go once sent (see _prepared).
            del unique
            known.pending.clear()
            chunks, count = list(row_chunks(rows)), len(rows)
            rows.clear()
            if count:
                looking = messages.ngettext(
                    "looking up owners and associations of {count} row, sending as they are ready",
                    "looking up owners and associations of {count} rows, sending as they are ready",
                    count,
                )
                self._phase(looking.format(count=count))
            prepared = self._prepared(client, ledger, board, chunks, keys, known, edits)
            if self.plan:
                jobs, updates = [], []
                async for chunk_updates, chunk_jobs in prepared:
                    updates += chunk_updates
                    jobs += chunk_jobs
                *_, self.routing = route(jobs, settings.mode, self.started_ms)  # how many each way
                record_plan(jobs, updates, board)
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
            # As columns: a list of every row's status would be 200,000 objects at the run's peak.
            at = pl.Series(to_send, dtype=pl.UInt32)
            not_sent = board.results.columns()["status"].gather(at) == str(RowStatus.NOT_SENT)
            unsent: list[int] = at.filter(not_sent).to_list()
            board.results.set_many(unsent, "error", stopped[0])
            board.results.set_many(unsent, "error_code", stopped[1])
            for index, first in twins:
                board.record(index, twin_outcome(board.results[first]))
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
            chunks[at] = []  # its rows' meetings are in `chunk`, and go with it
            later = (meeting for _, meeting in upcoming)
            jobs = await self._looked_up(partial(map_rows, lookups, chunk, keys, settings, board, later))
            updates = plan_updates([j for j in jobs if j.index in edits], edits, ledger, board)
            jobs = [j for j in jobs if j.index not in edits]
            # Without the check, rows an earlier results file left unsent or in doubt are still looked for.
            # Rows in doubt are left to the sender, whose rules for them are stricter.
            checkable = [j for j in jobs if j.index not in known.in_doubt]
            checked = (
                checkable if settings.check_existing else [j for j in checkable if j.index in known.suspect]
            )
            if checked:
                sent = await self._looked_up(
                    partial(check_existing, client, ledger, checked, run_keys, self.run_id, board)
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
            "watch": self.watch,
            "on_outcome": board.record,
            "daily_remaining": lambda: pacer.daily_remaining,
            "recreate_missing": self.settings.recreate_missing,
            "on_phase": self._phase,
        }
        sender = self.sender = Sender(client, ledger, **options)
        logbook = self.logbook = BatchSender(client, ledger, **options)
        updates, logged, scheduled = Feed[UpdateJob](), Feed[SendJob](), Feed[SendJob]()
        routings: list[Routing] = []

        async def produce() -> None:
            try:
                async for chunk_updates, jobs in prepared:
                    if self._stopping():
                        return
                    chunk_logged, chunk_scheduled, routing = route(jobs, self.settings.mode, self.started_ms)
                    routings.append(routing)
                    board.expect(
                        [*(update.job.index for update in chunk_updates), *(job.index for job in jobs)]
                    )
                    await updates.put(chunk_updates)
                    await logged.put(chunk_logged)
                    await scheduled.put(chunk_scheduled)
            except HubSpotError as error:  # rows already handed to the senders are still sent
                self._lookups_failed(error)
            except _Stopped:
                pass  # a look-up that waited for HubSpot found the run stopping: the senders' errors count
            finally:
                for feed in (updates, logged, scheduled):
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
            if self.stop_reason is None:
                first = sender if sender.stop_reason is not None else logbook
                self.stop_reason, self.stop_kind = first.stop_reason, first.stop_kind

    def _stopping(self) -> bool:
        """Whether a signal, a sender or a failed look-up stopped the run: no more rows are prepared."""
        senders = (self.sender, self.logbook)
        return self.stop_reason is not None or any(s is not None and s.stop_reason for s in senders)

    def _lookups_failed(self, error: HubSpotError) -> None:
        """The look-ups could not be done, retries spent: the rows not yet handed to a sender stay unsent."""
        self.stop_reason = messages._("looking up owners, associations and meetings failed: {error}").format(
            error=error
        )
        self.stop_kind = "lookups_failed"
        log.error(self.stop_reason)
        for sender in (self.sender, self.logbook):
            if sender is not None:
                sender.stop(self.stop_reason, "lookups_failed")

    async def _looked_up(self, stage: Callable[[], Awaitable[T]]) -> T:
        """A look-up stage. They only read until every read is done, so one that HubSpot failed through
        the client's retries runs again, after the wait the run's outage watch says, until it stops the
        run; the senders go on meanwhile with the rows already looked up."""
        failed = False
        while True:
            try:
                result: T = await self._stage(stage())
            except HUBSPOT_TROUBLE as error:
                wait = self.watch.lookup_failed(error)
                if wait is not None:
                    await self._stage(self.watch.wait(wait))  # a signal ends it; so does a stop
                if wait is None or self._stopping():
                    raise _Stopped from None
                failed = True
                continue
            if failed:
                self.watch.heard()  # asked again, and answered: HubSpot is back
            return result

    async def _connected(self, client: HubSpotClient) -> Account:
        """The account, once HubSpot answers: its trouble is waited for as the look-ups' is, up to
        `outage_s`, so that an incident at the start of a night does not end it."""
        try:
            account: Account = await self._looked_up(partial(connect, client, self.settings.base_url))
        except _Stopped:
            if self.stop_kind != "hubspot_failing" or self.stop_reason is None:
                raise
            raise unreachable(self.settings.base_url, self.stop_reason) from None
        return account

    def _hubspot_down(self, reason: str) -> None:
        if self.stop_reason is None:
            self.stop_reason, self.stop_kind = reason, "hubspot_failing"

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
                self.stop_reason, self.stop_kind = reason, "signal"
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


@contextmanager
def _stop_told(ledger_path: Path) -> Iterator[list[RowResults]]:
    """Around a run's use of its ledger (the results go in the list yielded, once read). A ledger that
    cannot be written mid-run stops the run with what went wrong, not as a bug; and a stop after meetings
    were created says how many, and where they are recorded: the night's mail must leave no doubt about
    a rerun."""
    held: list[RowResults] = []
    try:
        yield held
    except sqlite3.Error as error:
        stop = unwritable(ledger_path, error)
        if stop is None:
            raise
        raise _counted(stop, held, ledger_path, recorded=False) from None
    except StopRun as stop:
        raise _counted(stop, held, ledger_path, recorded=True) from None


def _counted(stop: StopRun, held: list[RowResults], ledger_path: Path, *, recorded: bool) -> StopRun:
    """`stop`, with a second line counting the meetings created before it (none: `stop` as it is).
    `recorded`: the ledger has them all (it is not the ledger that failed)."""
    created = sum(count_statuses(results)[str(RowStatus.CREATED)] for results in held)
    if not created:
        return stop
    if recorded:
        told = messages.ngettext(
            "{count} meeting was created before the stop; the ledger {path} has it, so the next run skips it",
            "{count} meetings were created before the stop; the ledger {path} has them, so the next run"
            " skips them",
            created,
        )
    else:
        told = messages.ngettext(
            "{count} meeting was created before the stop (the results file lists it); any the ledger could"
            " not record is in doubt, and the next run searches HubSpot for it before sending",
            "{count} meetings were created before the stop (the results file lists them); any the ledger"
            " could not record are in doubt, and the next run searches HubSpot for them before sending",
            created,
        )
    return StopRun(f"{stop}\n{told.format(count=created, path=ledger_path)}")


class _Stopped(Exception):
    """A signal stopped the run during a lookup stage, or the run stopped while one waited for HubSpot."""


def _routing(parts: list[Routing], mode: Mode) -> Routing:
    """The chunks' routings as the run's."""
    return Routing(
        mode,
        sum(part.logged for part in parts),
        sum(part.scheduled for part in parts),
        sum(part.past_scheduled for part in parts),
    )
