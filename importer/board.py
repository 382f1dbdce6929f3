"""The Board: where a run's outcomes go (the results as columns, the results file and its journal, the
log and the progress line), and the Progress it tells."""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Protocol

import polars as pl

from importer import messages
from importer.errors import StopRun
from importer.hubspot import Account
from importer.models import DONE_STATUSES, RowOutcome, RowResult, RowStatus
from importer.reporter import (
    RowResults,
    append_results,
    journal_path,
    results_lines,
    write_pieces,
    write_results,
)

log = logging.getLogger(__name__)
CHECKPOINT_S = 2.0  # how often finished rows go to the results journal (or file) while rows finish


class Progress(Protocol):
    """Told (rows finished, rows to send) as rows finish, and each phase of the run as it begins."""

    def __call__(self, done: int, total: int) -> None: ...

    def phase(self, text: str, *, portal: bool = False) -> None:
        """`portal`: the line naming the portal the run writes to, the one phase cron's output shows."""


WRITE_SHARE = 0.05
"""While rows finish, writing their results takes at most this share of the run's time and of its CPU:
the journal's appends, and apart from them the whole file's rewrites. CPU apart from time: a paced run
waits most of its time, and 5 % of that let checkpoints take a quarter of its CPU."""


class _Cost:
    """What the last write of a kind took, in time and CPU, and when it ended."""

    def __init__(self) -> None:
        self.wall_s = self.cpu_s = 0.0
        self.ended, self.ended_cpu = time.monotonic(), time.process_time()

    def affordable(self) -> bool:
        """Whether the run has spent enough since, in time and CPU, for another to be WRITE_SHARE of it."""
        spent_s, spent_cpu_s = time.monotonic() - self.ended, time.process_time() - self.ended_cpu
        return spent_s * WRITE_SHARE >= self.wall_s and spent_cpu_s * WRITE_SHARE >= self.cpu_s

    @contextmanager
    def measured(self) -> Iterator[None]:
        started, started_cpu = time.monotonic(), time.process_time()
        try:
            yield
        finally:
            self.ended, self.ended_cpu = time.monotonic(), time.process_time()
            self.wall_s, self.cpu_s = self.ended - started, self.ended_cpu - started_cpu


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
        self._last_checkpoint = time.monotonic()
        self._checkpoints, self._rewrites = _Cost(), _Cost()  # of any checkpoint, of a whole rewrite

    def expect(self, indices: Iterable[int]) -> None:
        """Rows about to be sent: their results are made now, together, for `record` (RowResults.ahead)."""
        self.results.ahead(indices)

    def record(self, index: int, outcome: RowOutcome) -> None:
        result = self.results.passing(index)
        read = result.outcome  # what reading the row noticed comes first
        if read.warning and read.warning != outcome.warning:
            outcome.warning = "; ".join(w for w in (read.warning, outcome.warning) if w)
            outcome.warning_code = ";".join(c for c in (read.warning_code, outcome.warning_code) if c) or None
        result.outcome = outcome
        log_row(result)
        if outcome.status is not RowStatus.NOT_SENT:  # a stop settles rows, but finishes none
            self._finished += 1
            if self.progress is not None:
                self.progress(self._finished, self.to_send)
        self.checkpoint()

    def checkpoint(self, *, final: bool = False) -> None:
        """Every CHECKPOINT_S while rows finish (or less often, when checkpoints would take more than
        WRITE_SHARE), the rows changed since the last checkpoint are appended to the journal beside the
        results file, at a cost in proportion to them. The file itself is rewritten whole (atomically)
        instead when that takes at most WRITE_SHARE of what the run spent since it last was, and at the
        end, when the journal goes. So the file is always whole, a small sheet's as fresh as before, and
        after a kill the journal has the rows finished since (a row's last line counts)."""
        now = time.monotonic()
        if not final and (now - self._last_checkpoint < CHECKPOINT_S or not self._checkpoints.affordable()):
            return
        # An OSError stops the run: the ledger is right already, the next run needs no results file.
        with _writing(self.results_path), self._checkpoints.measured():
            if final or self._rewrites.affordable():
                with self._rewrites.measured():
                    self._write_whole()
                self.journal.unlink(missing_ok=True)  # every line of it is in the file now
            else:
                self._append_changed()
        self._last_checkpoint = time.monotonic()

    def _write_whole(self) -> None:
        self.results.take_changed()  # in the file from now on
        write_results(self._lines(self.inputs, self.results.columns()), self.results_path)

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


def write_checked(inputs: pl.DataFrame, chunks: Iterable[RowResults], results_path: Path) -> None:
    """A dry run's results file, each chunk's lines written as the chunk is checked (`chunks`: their
    results in order, row for row with `inputs`), so a large sheet's lines are never all held at once."""

    def lines() -> Iterator[pl.DataFrame]:
        offset = 0
        for results in chunks:
            yield results_lines(inputs.slice(offset, len(results)), results.columns(), None, None, False)
            offset += len(results)
        if not offset:  # no rows: the header alone
            yield results_lines(inputs, RowResults.of([]).columns(), None, None, False)

    with _writing(results_path):
        write_pieces(lines(), results_path, inputs.height)
        journal_path(results_path).unlink(missing_ok=True)  # a killed run's: older than the file now


@contextmanager
def _writing(results_path: Path) -> Iterator[None]:
    try:
        yield
    except OSError as exc:
        message = messages._("cannot write the results file {path}: {error}")
        raise StopRun(message.format(path=results_path, error=exc.strerror or exc)) from None


def log_row(result: RowResult) -> None:
    outcome = result.outcome
    # Rows left unsent by a stop are said once, in the summary's `stopped:` line, not once per row.
    # Invalid rows go to the log file; the summary's most frequent errors name them on the console.
    quiet = result.status in DONE_STATUSES or result.status in (RowStatus.NOT_SENT, RowStatus.INVALID)
    level = logging.INFO if quiet else logging.WARNING
    if not log.isEnabledFor(level):
        return
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
