"""The import, stage by stage: read -> validate -> (map -> send) -> report. Each stage is its own module."""

from __future__ import annotations

import time
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from importer.config import Settings
from importer.models import Meeting, RowResult, RowStatus
from importer.reader import ParsedRow, load_sheet, parse_rows
from importer.reporter import count_statuses, default_results_path, results_frame, write_results


@dataclass(frozen=True)
class RunSummary:
    """What a run did, for the exit code, the terminal and monitoring."""

    input_path: Path
    results_path: Path
    counts: dict[str, int]
    duration_s: float

    @property
    def complete(self) -> bool:
        """True when no row is left invalid, failed or unsent."""
        return not any(self.counts[s] for s in (RowStatus.INVALID, RowStatus.FAILED, RowStatus.NOT_SENT))


def run_import(input_path: Path, settings: Settings) -> RunSummary:
    """Import `input_path` as `settings` say; write the results file; never raise for a bad row."""
    started = time.monotonic()
    sheet = load_sheet(input_path, columns=settings.columns, encoding=settings.encoding, sheet=settings.sheet)
    chunks = parse_rows(
        sheet,
        default_timezone=settings.default_timezone,
        default_outcome=settings.default_outcome,
        default_reminders=settings.default_reminders,
        build_meetings=not settings.dry_run,
    )
    results, _pending = triage(chunks)
    results_path = settings.results or default_results_path(input_path)
    write_results(results_frame(sheet.frame, results), results_path)
    return RunSummary(input_path, results_path, count_statuses(results), time.monotonic() - started)


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
