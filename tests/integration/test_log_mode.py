"""Past meetings logged through the CRM batch create (`--mode log|auto`), end to end: the real CLI against the
real sandbox, faults on. Every test ends with each row in HubSpot exactly once after at most one rerun."""

from __future__ import annotations

import re
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import polars as pl

from tests.integration.conftest import (
    CONTACTS,
    OWNER_IDS,
    OWNERS,
    Sandbox,
    importer_env,
    read_results,
    run_cli,
)

# Short windows keep 1,000 rows fast: the importer learns the 1-second window from HubSpot's headers.
LIMITS = {"window_ms": 1000, "max_per_window": 100, "search_per_second": 20}
FAST_SEARCH = {"MEETING_IMPORTER_SEARCH_PER_SECOND": "20"}


def write_visits(path: Path, count: int, *, year: int = 2025, first: int = 0) -> Path:
    """A CSV of `count` distinct meetings in `year` (2025: the past), with a contact, an attendee on every
    third row, a location on every fifth."""
    rows = [
        {
            "title": f"Visit {i:05d}",
            "start": f"{year}-{1 + i % 12:02d}-{1 + i % 28:02d} {8 + i % 10:02d}:{i % 60:02d}",
            "duration_minutes": "45",
            "timezone": "Asia/Tokyo",
            "owner_email": OWNERS[i % len(OWNERS)],
            "attendee_emails": OWNERS[(i + 1) % len(OWNERS)] if i % 3 == 0 else "",
            "contact_emails": CONTACTS[i % len(CONTACTS)],
            "location": "Osaka office" if i % 5 == 0 else "",
            "outcome": "COMPLETED",
        }
        for i in range(first, first + count)
    ]
    pl.DataFrame(rows).write_csv(path)
    return path


def _run_until_done(sheet: Path, sandbox: Sandbox, *extra: str) -> tuple[pl.DataFrame, str]:
    """The import, and at most one rerun, as a nightly cron would do it the next night."""
    args = ["run", str(sheet), "--rate-limit", "100", *extra]
    first = run_cli(args, importer_env(sandbox, **FAST_SEARCH))
    output = first.stdout
    if first.returncode != 0:
        second = run_cli(args, importer_env(sandbox, **FAST_SEARCH))
        assert second.returncode == 0, second.stdout + second.stderr
    return read_results(sheet.with_name(f"{sheet.stem}.results.csv")), output


def _once_each(sandbox: Sandbox, rows: int) -> None:
    stats = sandbox.stats()
    assert stats["meetings_created"] == rows
    assert stats["duplicates"] == 0 and stats["duplicates_by_content"] == 0


def test_1000_past_meetings_are_logged_once_each_through_5xx_lost_answers_and_429s(
    start_sandbox: Callable[..., Sandbox], tmp_path: Path
) -> None:
    sandbox = start_sandbox(
        **LIMITS,
        error_5xx=0.1,
        drop_after=0.1,
        error_5xx_after=0.1,
        spurious_429=0.15,
        fault_seed=30,
    )
    sheet = write_visits(tmp_path / "history.csv", 1000)

    frame, output = _run_until_done(sheet, sandbox, "--mode", "log")

    stats = sandbox.stats()
    faults = stats["faults_injected"]
    assert faults["error_5xx"] >= 1 and faults["drop_after"] + faults["error_5xx_after"] >= 1
    assert stats["rate_limited"]["spurious"] >= 1
    assert set(frame["status"]) <= {"created", "skipped"}
    assert frame["meeting_id"].n_unique() == 1000
    _once_each(sandbox, 1000)
    assert stats["meetings_by_source"]["batch"] == 1000
    assert "create_meeting" not in stats["requests_by_route"]
    assert stats["requests_by_route"]["batch_create_meetings"] <= 30
    assert "mode log: 1000 rows logged without a calendar event (100 a request), 0 scheduled" in output


def test_auto_mode_logs_the_past_rows_and_schedules_the_others(
    start_sandbox: Callable[..., Sandbox], tmp_path: Path
) -> None:
    sandbox = start_sandbox(**LIMITS)
    sheet = tmp_path / "mixed.csv"
    past = pl.read_csv(write_visits(tmp_path / "past.csv", 30), infer_schema=False)
    future = pl.read_csv(write_visits(tmp_path / "future.csv", 20, year=2031, first=30), infer_schema=False)
    pl.concat([past, future]).sample(fraction=1.0, shuffle=True, seed=1).write_csv(sheet)
    plan = run_cli(["plan", str(sheet), "--mode", "auto"], importer_env(sandbox))
    assert plan.returncode == 0, plan.stdout + plan.stderr
    assert "mode auto: 30 rows logged without a calendar event (100 a request), 20 scheduled" in plan.stdout
    assert sandbox.stats()["meetings_created"] == 0

    proc = run_cli(["run", str(sheet), "--mode", "auto"], importer_env(sandbox))

    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "mode auto: 30 rows logged without a calendar event (100 a request), 20 scheduled" in proc.stdout
    meetings = {m["properties"]["hs_meeting_title"]: m for m in sandbox.meetings()}
    logged = [m for m in meetings.values() if m["source"] == "batch"]
    assert sorted(m["properties"]["hs_meeting_title"] for m in logged) == [
        f"Visit {i:05d}" for i in range(30)
    ]
    assert {m["source"] for m in meetings.values() if m not in logged} == {"scheduler"}
    # No calendar event: no organizer, time zone or reminders; the same properties and associations.
    assert {(m["organizerUserId"], m["timezone"], m["reminders"]) for m in logged} == {(None, None, None)}
    visit = meetings["Visit 00003"]["properties"]
    assert (visit["hs_meeting_outcome"], visit["hubspot_owner_id"]) == ("COMPLETED", OWNER_IDS[OWNERS[0]])
    assert visit["hs_attendee_owner_ids"] == OWNER_IDS[OWNERS[1]]
    assert meetings["Visit 00005"]["properties"]["hs_meeting_location"] == "Osaka office"
    assert [a["to"]["id"] for a in meetings["Visit 00003"]["associations"]] == ["7100001"]
    assert meetings["Visit 00003"]["objectWriteTraceId"] == _row_key(sheet, "Visit 00003")
    _once_each(sandbox, 50)

    rerun = run_cli(["run", str(sheet), "--mode", "auto"], importer_env(sandbox))

    assert rerun.returncode == 0 and rerun.stdout.splitlines()[1].startswith("summary: skipped=50 ")
    _once_each(sandbox, 50)


def test_rows_scheduled_by_an_earlier_run_elsewhere_are_adopted_not_logged_again(
    start_sandbox: Callable[..., Sandbox], tmp_path: Path
) -> None:
    sandbox = start_sandbox(**LIMITS)
    sheet = write_visits(tmp_path / "history.csv", 10)
    first = run_cli(["run", str(sheet), "--state", str(tmp_path / "a.sqlite")], importer_env(sandbox))
    assert first.returncode == 0, first.stdout + first.stderr

    again = run_cli(
        ["run", str(sheet), "--mode", "log", "--state", str(tmp_path / "b.sqlite")], importer_env(sandbox)
    )

    assert again.returncode == 0, again.stdout + again.stderr
    frame = read_results(tmp_path / "history.results.csv")
    assert set(frame["status"]) == {"skipped"}
    assert "batch_create_meetings" not in sandbox.stats()["requests_by_route"]
    _once_each(sandbox, 10)


def test_schedule_mode_says_how_many_rows_lie_in_the_past(
    start_sandbox: Callable[..., Sandbox], tmp_path: Path
) -> None:
    sandbox = start_sandbox(**LIMITS)
    sheet = write_visits(tmp_path / "history.csv", 12)

    proc = run_cli(["run", str(sheet)], importer_env(sandbox))

    assert proc.returncode == 0, proc.stdout + proc.stderr
    hints = [line for line in proc.stdout.splitlines() if line.startswith("hint: ")]
    assert hints == [
        "hint: 12 of the rows scheduled had ended before this run started; --mode auto logs such rows"
        " without a calendar event, 100 a request"
    ]
    assert sandbox.stats()["meetings_by_source"]["scheduler"] == 12


def test_a_partial_207_fails_the_refused_row_and_only_failed_sends_it_alone(
    start_sandbox: Callable[..., Sandbox], tmp_path: Path
) -> None:
    sandbox = start_sandbox(**LIMITS, refuse_title="Visit 00007")
    sheet = write_visits(tmp_path / "history.csv", 20)

    proc = run_cli(["run", str(sheet), "--mode", "log"], importer_env(sandbox))

    assert proc.returncode == 1
    frame = read_results(tmp_path / "history.results.csv")
    assert frame["status"].value_counts(sort=True).rows() == [("created", 19), ("failed", 1)]
    failed = frame.filter(pl.col("status") == "failed")
    assert failed.select("title", "http_status", "attempts").row(0) == ("Visit 00007", "207", "1")
    # The input's place in its batch: rows are sent by owner and start, not in the sheet's order.
    refused = (
        r"inputs\[\d+\]\.properties\.hs_meeting_title 'Visit 00007' is refused by a rule of this portal\."
    )
    assert re.fullmatch(f"HubSpot 207 VALIDATION_ERROR: {refused} \\({refused}\\)", failed["error"].item())
    assert sandbox.stats()["requests_by_route"]["batch_create_meetings"] == 1  # nothing resent

    sandbox.set_faults(refuse_title=None)
    args = ["run", str(sheet), "--mode", "log", "--only-failed", str(tmp_path / "history.results.csv")]
    args += ["--results", str(tmp_path / "again.csv")]
    again = run_cli(args, importer_env(sandbox))

    assert again.returncode == 0, again.stdout + again.stderr
    rerun = read_results(tmp_path / "again.csv")
    assert rerun["status"].value_counts(sort=True).rows() == [("skipped", 19), ("created", 1)]
    assert sandbox.stats()["requests_by_route"]["batch_create_meetings"] == 2
    _once_each(sandbox, 20)


def test_a_403_for_one_row_refuses_its_batch_which_is_halved_until_the_row_fails_alone(
    start_sandbox: Callable[..., Sandbox], tmp_path: Path
) -> None:
    sandbox = start_sandbox(**LIMITS, forbid_title="Visit 00003")
    sheet = write_visits(tmp_path / "history.csv", 16)

    proc = run_cli(["run", str(sheet), "--mode", "log"], importer_env(sandbox))

    assert proc.returncode == 1
    frame = read_results(tmp_path / "history.results.csv")
    assert frame["status"].value_counts(sort=True).rows() == [("created", 15), ("failed", 1)]
    failed = frame.filter(pl.col("status") == "failed")
    assert failed.select("title", "http_status").row(0) == ("Visit 00003", "403")
    assert failed["error"].str.starts_with("HubSpot 403 MISSING_SCOPES").all()
    assert sandbox.stats()["requests_by_route"]["batch_create_meetings"] == 9  # 16, 8, 8, 4, 4, 2, 2, 1, 1
    _once_each(sandbox, 15)


def test_a_run_killed_mid_batch_is_rerun_at_once_without_duplicates(
    start_sandbox: Callable[..., Sandbox], tmp_path: Path
) -> None:
    sandbox = start_sandbox(window_ms=1000, max_per_window=100, search_lag_ms=1200, latency_ms=400)
    sheet = write_visits(tmp_path / "history.csv", 600)
    args = [sys.executable, "-m", "importer", "run", str(sheet), "--mode", "log", "--concurrency", "1"]
    env = importer_env(sandbox, **FAST_SEARCH)
    process = subprocess.Popen(args, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 30
    while sandbox.stats()["meetings_created"] < 200:
        assert time.monotonic() < deadline
        time.sleep(0.02)
    process.send_signal(signal.SIGKILL)  # the next batch is in flight, its rows marked `sending`
    process.wait()

    rerun = run_cli(["run", str(sheet), "--mode", "log"], env)  # at once: the index has not caught up

    assert rerun.returncode == 0, rerun.stdout + rerun.stderr
    _once_each(sandbox, 600)


def _row_key(sheet: Path, title: str) -> str:
    results = read_results(sheet.with_name(f"{sheet.stem}.results.csv"))
    return str(results.filter(pl.col("title") == title)["row_key"].item())


def test_an_edited_logged_row_updates_its_meeting(
    start_sandbox: Callable[..., Sandbox], tmp_path: Path
) -> None:
    sandbox = start_sandbox(**LIMITS)
    sheet = tmp_path / "history.csv"
    visits = pl.read_csv(write_visits(sheet, 5), infer_schema=False).with_columns(
        pl.format("V-{}", pl.int_range(5)).alias("visit_id")
    )
    visits.write_csv(sheet)
    args = ["run", str(sheet), "--mode", "log", "--key-column", "visit_id"]
    assert run_cli(args, importer_env(sandbox)).returncode == 0
    visits.with_columns(
        pl.when(pl.col("visit_id") == "V-2")
        .then(pl.lit("Visit (renamed)"))
        .otherwise(pl.col("title"))
        .alias("title")
    ).write_csv(sheet)

    proc = run_cli(args, importer_env(sandbox))

    assert proc.returncode == 0, proc.stdout + proc.stderr
    frame = read_results(tmp_path / "history.results.csv")
    assert frame["status"].value_counts(sort=True).rows() == [("skipped", 4), ("updated", 1)]
    titles = {m["crmProperties"]["hs_meeting_title"] for m in sandbox.meetings()}
    assert "Visit (renamed)" in titles and sandbox.stats()["meetings_created"] == 5
