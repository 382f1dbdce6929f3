"""The Board: where a run's outcomes go (the results as columns, the results file and its journal, the
log and the progress line), and the Progress it tells."""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Protocol

import polars as pl

from importer import messages
from importer.errors import StopRun
from importer.hubspot import Account
from importer.models import DONE_STATUSES, RowOutcome, RowResult, RowStatus
from importer.reporter import RowResults, append_results, journal_path, results_lines, write_results

log = logging.getLogger(__name__)
CHECKPOINT_S = 2.0  # how often finished rows go to the results journal (or file) while rows finish


class Progress(Protocol):
    """Told (rows finished, rows to send) as rows finish, and each phase of the run as it begins."""

    def __call__(self, done: int, total: int) -> None: ...

    def phase(self, text: str, *, portal: bool = False) -> None:
        """`portal`: the line naming the portal the run writes to, the one phase cron's output shows."""


WHOLE_SHARE = 0.05
"""At most this share of a run's time, and of its CPU, goes to rewriting the results file whole while rows
finish. CPU apart: a paced run waits most of its time, and 5 % of that was a quarter of its CPU."""


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
        self._whole_cpu_at = time.process_time()
        self._whole_s = self._whole_cpu_s = 0.0  # what the last whole rewrite took, in time and CPU

    def record(self, index: int, outcome: RowOutcome) -> None:
        result = self.results[index]
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
        """Every CHECKPOINT_S while rows finish, the rows changed since the last checkpoint are appended
        to the journal beside the results file, at a cost in proportion to them. The file itself is
        rewritten whole (atomically) when that takes at most WHOLE_SHARE of the time and of the CPU
        since it last was, and at the end, when the journal goes. So the file is always whole, a small sheet's as fresh as
        before, and after a kill the journal has the rows finished since (a row's last line counts)."""
        now = time.monotonic()
        if not final and now - self._last_checkpoint < CHECKPOINT_S:
            return
        try:
            if final or self._whole_affordable(now):
                self._write_whole()
                self.journal.unlink(missing_ok=True)  # every line of it is in the file now
            else:
                self._append_changed()
        except OSError as exc:  # the ledger is right already: the next run needs no results file
            message = messages._("cannot write the results file {path}: {error}")
            raise StopRun(message.format(path=self.results_path, error=exc.strerror or exc)) from None
        self._last_checkpoint = time.monotonic()

    def _whole_affordable(self, now: float) -> bool:
        spent = time.process_time() - self._whole_cpu_at
        return (
            now - self._whole_at >= self._whole_s / WHOLE_SHARE and spent >= self._whole_cpu_s / WHOLE_SHARE
        )

    def _write_whole(self) -> None:
        started, started_cpu = time.monotonic(), time.process_time()
        self.results.take_changed()  # in the file from now on
        write_results(self._lines(self.inputs, self.results.columns()), self.results_path)
        self._whole_at, self._whole_cpu_at = time.monotonic(), time.process_time()
        self._whole_s, self._whole_cpu_s = self._whole_at - started, self._whole_cpu_at - started_cpu

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


def log_row(result: RowResult) -> None:
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
