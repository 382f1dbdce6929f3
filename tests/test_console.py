"""The terminal's progress line (a fake stream and a fake monotonic clock) and the closing summary lines."""

from __future__ import annotations

import dataclasses
import io
import time
from pathlib import Path

import pytest

from importer import messages
from importer.console import ProgressLine, summary_lines
from importer.logbook import Routing
from importer.pipeline import RunSummary, TopError

DAILY_STOP = "HubSpot's daily request limit is reached"


class FakeStream(io.StringIO):
    """Remembers each write and counts flushes."""

    def __init__(self) -> None:
        super().__init__()
        self.writes: list[str] = []
        self.flushes = 0

    def write(self, text: str) -> int:
        self.writes.append(text)
        return super().write(text)

    def flush(self) -> None:
        self.flushes += 1


class Clock:
    """Stands in for time.monotonic; starts at 1000 s, as a machine that has been up a while."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> Clock:
    fake = Clock()
    monkeypatch.setattr(time, "monotonic", fake)
    return fake


@pytest.fixture
def stream() -> FakeStream:
    return FakeStream()


# --- progress line ---


def test_progress_line_shows_count_rate_and_eta_padded_to_60(clock: Clock, stream: FakeStream) -> None:
    progress = ProgressLine(stream)
    clock.now = 1002.0
    progress(12, 100)
    assert stream.writes == ["\r  12/100 rows  6.0 rows/s  ETA 15s" + " " * 25]
    assert stream.flushes == 1


@pytest.mark.parametrize(
    ("done", "elapsed_s", "line"),
    [
        (1, 40.0, "1/100 rows  0.0 rows/s  ETA 1h06m"),
        (1, 10.0, "1/100 rows  0.1 rows/s  ETA 16m30s"),
        (10, 10.0, "10/100 rows  1.0 rows/s  ETA 1m30s"),
        (50, 10.0, "50/100 rows  5.0 rows/s  ETA 10s"),
    ],
)
def test_progress_eta_in_seconds_minutes_or_hours(
    clock: Clock, stream: FakeStream, done: int, elapsed_s: float, line: str
) -> None:
    progress = ProgressLine(stream)
    clock.now += elapsed_s
    progress(done, 100)
    assert stream.writes == [f"\r  {line}".ljust(60)]


def test_progress_without_rows_done_has_no_eta(clock: Clock, stream: FakeStream) -> None:
    progress = ProgressLine(stream)
    clock.now = 1003.0
    progress(0, 50)
    assert stream.writes == ["\r  0/50 rows  0.0 rows/s  ".ljust(60)]


def test_progress_is_redrawn_at_most_five_times_a_second(clock: Clock, stream: FakeStream) -> None:
    progress = ProgressLine(stream)
    for now, done in [(1002.0, 1), (1002.1, 2), (1002.19, 3), (1002.25, 4), (1002.3, 5), (1002.5, 6)]:
        clock.now = now
        progress(done, 10)
    assert [line.split()[0] for line in stream.writes] == ["1/10", "4/10", "6/10"]
    assert stream.flushes == 3


def test_progress_last_row_is_always_drawn_without_eta(clock: Clock, stream: FakeStream) -> None:
    progress = ProgressLine(stream)
    clock.now = 1002.0
    progress(9, 10)
    clock.now = 1002.05  # 0.05 s after the last draw: only the last row is drawn this soon
    progress(10, 10)
    assert stream.writes == [
        "\r  9/10 rows  4.5 rows/s  ETA 0s".ljust(60),
        "\r  10/10 rows  4.9 rows/s  ".ljust(60),
    ]


def test_close_ends_the_line_once_drawn(clock: Clock, stream: FakeStream) -> None:
    progress = ProgressLine(stream)
    clock.now = 1001.0
    progress(1, 1)
    progress.close()
    assert stream.getvalue() == "\r  1/1 rows  1.0 rows/s  ".ljust(60) + "\n"


def test_close_writes_nothing_when_nothing_was_drawn(clock: Clock, stream: FakeStream) -> None:
    ProgressLine(stream).close()
    assert stream.writes == []


# --- summary ---


def make_summary(
    counts: dict[str, int],
    *,
    duration_s: float = 75.4,
    stop_reason: str | None = None,
    top_errors: list[TopError] | None = None,
) -> RunSummary:
    every = {"valid": 0, "invalid": 0, "created": 0, "skipped": 0, "failed": 0, "not_sent": 0} | counts
    return RunSummary(
        Path("sheets/meetings.csv"),
        Path("sheets/meetings.results.csv"),
        every,
        duration_s,
        send_s=70.0,
        requests=12,
        rate_limited=1,
        stop_reason=stop_reason,
        top_errors=top_errors or [],
    )


STOPPED = make_summary(
    {"invalid": 2, "created": 5, "skipped": 1, "failed": 3, "not_sent": 4},
    stop_reason=DAILY_STOP,
    top_errors=[
        TopError("contact not found: a@example.com", 3, [4, 9, 12]),
        TopError("end: must be after start", 7, [2, 3, 5, 6, 8]),
    ],
)


def test_table_lists_nonzero_counts_stop_reason_and_top_errors() -> None:
    assert summary_lines(STOPPED, table=True) == [
        "sheets/meetings.csv: 15 rows in 1m15s",
        "  invalid         2",
        "  created         5",
        "  skipped         1",
        "  failed          3",
        "  not_sent        4",
        f"stopped: {DAILY_STOP}; 4 rows not sent (the next run sends them)",
        "most frequent errors:",
        "      3 x contact not found: a@example.com (rows 4, 9, 12)",
        "      7 x end: must be after start (rows 2, 3, 5, 6, 8 and 2 more)",
        "results: sheets/meetings.results.csv",
    ]


def test_table_of_a_complete_run_has_only_its_counts() -> None:
    summary = make_summary({"created": 1200, "skipped": 34}, duration_s=3725.0)
    assert summary_lines(summary, table=True) == [
        "sheets/meetings.csv: 1234 rows in 1h02m",
        "  created     1200",
        "  skipped       34",
        "results: sheets/meetings.results.csv",
    ]


def test_table_cuts_long_errors_at_150_characters() -> None:
    summary = make_summary({"failed": 1}, top_errors=[TopError("x" * 200, 1, [7])])
    assert summary_lines(summary, table=True) == [
        "sheets/meetings.csv: 1 rows in 1m15s",
        "  failed        1",
        "most frequent errors:",
        "      1 x " + "x" * 150 + " (row 7)",
        "results: sheets/meetings.results.csv",
    ]


def test_table_without_rows() -> None:
    assert summary_lines(make_summary({}, duration_s=0.2), table=True) == [
        "sheets/meetings.csv: 0 rows in 0s",
        "results: sheets/meetings.results.csv",
    ]


def test_plain_lines_give_nonzero_counts_and_stop_reason() -> None:
    assert summary_lines(STOPPED, table=False) == [
        "summary: invalid=2 created=5 skipped=1 failed=3 not_sent=4 duration_s=75.4 requests=12 searches=0",
        f"stopped: {DAILY_STOP}; 4 rows not sent (the next run sends them)",
        "results: sheets/meetings.results.csv",
    ]


def test_plain_lines_of_a_complete_run() -> None:
    summary = make_summary({"created": 3}, duration_s=2.04)
    assert summary_lines(summary, table=False) == [
        "summary: created=3 duration_s=2.0 requests=12 searches=0",
        "results: sheets/meetings.results.csv",
    ]


def test_plain_lines_without_rows() -> None:
    assert summary_lines(make_summary({}, duration_s=0.0), table=False) == [
        "summary: rows=0 duration_s=0.0 requests=12 searches=0",
        "results: sheets/meetings.results.csv",
    ]


# --- which way the rows went ---

HINT = (
    "hint: 40 of the rows scheduled had ended before this run started; --mode auto logs such rows without"
    " a calendar event, 100 a request"
)


def routed(routing: Routing) -> RunSummary:
    return dataclasses.replace(make_summary({"created": 100}), routing=routing)


def test_a_run_in_auto_mode_says_how_many_rows_went_each_way() -> None:
    summary = routed(Routing("auto", logged=90, scheduled=10))
    assert summary_lines(summary, table=False) == [
        "summary: created=100 duration_s=75.4 requests=12 searches=0",
        "mode auto: 90 rows logged without a calendar event (100 a request), 10 scheduled",
        "results: sheets/meetings.results.csv",
    ]
    assert summary_lines(summary, table=True)[-2:] == [
        "mode auto: 90 rows logged without a calendar event (100 a request), 10 scheduled",
        "results: sheets/meetings.results.csv",
    ]
    assert summary.to_json()["routing"] == {
        "mode": "auto",
        "logged": 90,
        "scheduled": 10,
        "past_scheduled": 0,
    }


def test_a_run_in_schedule_mode_with_past_rows_suggests_auto() -> None:
    summary = routed(Routing("schedule", logged=0, scheduled=100, past_scheduled=40))
    assert summary_lines(summary, table=False)[1:] == [HINT, "results: sheets/meetings.results.csv"]
    assert summary_lines(summary, table=True)[-2:] == [HINT, "results: sheets/meetings.results.csv"]


def test_the_routing_lines_in_japanese_keep_the_counts_and_the_mode() -> None:
    with messages.using("ja"):
        auto = summary_lines(routed(Routing("auto", logged=90, scheduled=10)), table=False)
        past = summary_lines(
            routed(Routing("schedule", logged=0, scheduled=100, past_scheduled=40)), table=False
        )
    # The key=value line stays English: scripts parse it.
    assert auto[:2] == [
        "summary: created=100 duration_s=75.4 requests=12 searches=0",
        "モード auto: 90行をカレンダーの予定なしで記録（1リクエストに100件）、10行を予定として作成",
    ]
    assert past[1] == (
        "ヒント: 予定として作成した行のうち40行は、この実行の開始前に終わっていました。--mode auto を使うと、"
        "そのような行はカレンダーの予定なしで記録します（1リクエストに100件）"
    )


def test_a_run_in_schedule_mode_of_future_rows_says_nothing_of_modes() -> None:
    summary = routed(Routing("schedule", logged=0, scheduled=100))
    assert summary_lines(summary, table=False) == summary_lines(make_summary({"created": 100}), table=False)


@pytest.mark.parametrize("summary", [STOPPED, make_summary({"created": 3}), make_summary({})])
def test_plain_lines_have_no_control_characters(summary: RunSummary) -> None:
    lines = summary_lines(summary, table=False)
    assert [line for line in lines if not line.isprintable()] == []
