"""What a person at a terminal sees: a progress line while rows are sent, and a summary table at the end.

Cron (no terminal) gets neither control characters nor colours: only the plain summary lines.
"""

from __future__ import annotations

import time
from typing import TextIO

from importer.messages import _, ngettext
from importer.pipeline import RunSummary, TopError


class ProgressLine:
    """`  120/2000 rows  9.7 rows/s  ETA 3m14s`, redrawn in place on a terminal at most 5 times a second."""

    def __init__(self, stream: TextIO) -> None:
        self._stream = stream
        self._started = time.monotonic()
        self._drawn = 0.0
        self._shown = False

    def phase(self, text: str) -> None:
        """A line saying what the run is doing now (reading, looking up, waiting for search)."""
        if self._shown:
            self._stream.write("\r" + " " * 60 + "\r")
        self._stream.write(f"{text}\n")
        self._stream.flush()
        self._shown = False
        self._drawn = 0.0

    def __call__(self, done: int, total: int) -> None:
        now = time.monotonic()
        if done < total and now - self._drawn < 0.2:
            return
        self._drawn = now
        elapsed = max(now - self._started, 1e-6)
        rate = done / elapsed
        eta = (
            _("ETA {time}").format(time=_duration((total - done) / rate)) if rate > 0 and done < total else ""
        )
        line = _("{done}/{total} rows  {rate} rows/s  {eta}").format(
            done=done, total=total, rate=f"{rate:.1f}", eta=eta
        )
        self._stream.write(f"\r  {line}".ljust(60))
        self._stream.flush()
        self._shown = True

    def close(self) -> None:
        if self._shown:
            self._stream.write("\n")
            self._stream.flush()


class PlainPhases:
    """Cron's view of the phases: only the line that names the portal the run writes to, so a sandbox
    and production never look alike in a mailed log; the rest goes to the log file."""

    def __init__(self, stream: TextIO) -> None:
        self._stream = stream

    def phase(self, text: str) -> None:
        if text.startswith("writing to HubSpot portal"):
            self._stream.write(f"{text}\n")
            self._stream.flush()

    def __call__(self, done: int, total: int) -> None:
        pass

    def close(self) -> None:
        pass


def summary_lines(summary: RunSummary, *, table: bool) -> list[str]:
    """The closing summary: a small table for a person, `key=value` lines for a log reader."""
    counts = {status: count for status, count in summary.counts.items() if count}
    if not table:
        parts = " ".join(f"{status}={count}" for status, count in counts.items()) or "rows=0"
        lines = [
            f"summary: {parts} duration_s={summary.duration_s:.1f} requests={summary.requests}"
            f" searches={summary.searches}"
        ]
        lines += [_("stopped: {reason}").format(reason=_stopped(summary))] if summary.stop_reason else []
        lines += _sheet_lines(summary)
        lines += _routing(summary)
        lines.append(_("results: {path}").format(path=summary.results_path))
        return lines
    width = max((len(s) for s in counts), default=6)
    rows = sum(counts.values())
    heading = _("{input}: {rows} rows in {duration}")
    lines = [heading.format(input=summary.input_path, rows=rows, duration=_duration(summary.duration_s))]
    # The statuses stay as the results file writes them: they are what a person filters that file by.
    lines += [f"  {status.ljust(width)}  {count:>7}" for status, count in counts.items()]
    if summary.stop_reason:
        lines.append(_("stopped: {reason}").format(reason=_stopped(summary)))
    lines += _sheet_lines(summary)
    if summary.top_errors:
        lines.append(_("most frequent errors:"))
        lines += [f"  {top.count:>5} x {top.error[:150]} ({_rows(top)})" for top in summary.top_errors]
    lines += _routing(summary)
    lines.append(_("results: {path}").format(path=summary.results_path))
    return lines


def _sheet_lines(summary: RunSummary) -> list[str]:
    """What was read, when it is worth saying: a workbook's sheet, columns left out, the zone assumed."""
    note = summary.sheet
    if note is None:
        return []
    lines = []
    if note.name is not None and note.others:
        also = _("sheet: {name} (the workbook also has: {others})")
        lines.append(also.format(name=note.name, others=", ".join(note.others)))
    if note.unmapped:
        unmapped = _("columns not imported (they map to no field): {columns}")
        lines.append(unmapped.format(columns=", ".join(note.unmapped)))
    lines.append(_("times without a zone: {zone}").format(zone=note.zone))
    return lines


def problem_report(summary: RunSummary) -> list[str]:
    """What `--quiet` prints (on stderr) when rows are left: counts, the first problems, the results."""
    counts = " ".join(f"{status}={count}" for status, count in summary.counts.items() if count)
    lines = [_("{input}: not every row was done: {counts}").format(input=summary.input_path, counts=counts)]
    if summary.stop_reason:
        lines.append(_("stopped: {reason}").format(reason=_stopped(summary)))
    lines += [f"  {_rows(top)}: {top.error[:200]}" for top in summary.top_errors]
    lines.append(_("results: {path}").format(path=summary.results_path))
    return lines


def _routing(summary: RunSummary) -> list[str]:
    """Which way the rows went, unless every row was scheduled as always; and, when rows in the past were
    scheduled, the mode that would have logged them."""
    routing = summary.routing
    if routing is None:
        return []
    lines = []
    if routing.mode != "schedule":
        mode = _(
            "mode {mode}: {logged} rows logged without a calendar event (100 a request), {scheduled} scheduled"
        )
        lines.append(mode.format(mode=routing.mode, logged=routing.logged, scheduled=routing.scheduled))
    if routing.past_scheduled:
        hint = _(
            "hint: {count} of the rows scheduled had ended before this run started; --mode auto logs such"
            " rows without a calendar event, 100 a request"
        )
        lines.append(hint.format(count=routing.past_scheduled))
    return lines


def _rows(top: TopError) -> str:
    shown = ", ".join(str(row) for row in top.first_rows)
    left = top.count - len(top.first_rows)
    if left > 0:
        return _("rows {rows} and {count} more").format(rows=shown, count=left)
    return ngettext("row {rows}", "rows {rows}", top.count).format(rows=shown)


def _stopped(summary: RunSummary) -> str:
    reason = " ".join((summary.stop_reason or "").split())
    left = summary.counts.get("not_sent", 0)
    if not left:
        return reason
    text = ngettext(
        "{reason}; {count} rows not sent (the next run sends them)",
        "{reason}; {count} rows not sent (the next run sends them)",
        left,
    )
    return text.format(reason=reason, count=left)


def _duration(seconds: float) -> str:
    whole = round(seconds)
    if whole < 60:
        return f"{whole}s"
    minutes, rest = divmod(whole, 60)
    if minutes < 60:
        return f"{minutes}m{rest:02d}s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h{minutes:02d}m"
