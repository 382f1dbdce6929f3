"""Unattended runs: reruns of what failed, the lock, quiet structured output, and secrets kept secret."""

from __future__ import annotations

import fcntl
import json
import re
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import polars as pl

from importer.ledger import lock_path
from tests.integration.conftest import Sandbox, importer_env, read_results, run_cli, write_meetings

SAMPLES = Path(__file__).parents[2] / "samples"
CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f]")


def test_only_failed_on_a_resorted_sheet_sends_just_the_rest(
    start_sandbox: Callable[..., Sandbox], tmp_path: Path
) -> None:
    # 5 lookups and 12 creates on the first day; the second needs 6 lookups (the ids check) and 10 creates.
    sandbox = start_sandbox(window_ms=1000, max_per_window=100, daily_limit=17)
    sheet = write_meetings(tmp_path / "m.csv", 22)
    first = run_cli(["run", str(sheet), "--rate-limit", "100", "--concurrency", "1"], importer_env(sandbox))
    assert first.returncode == 1
    previous = tmp_path / "previous.results.csv"
    (tmp_path / "m.results.csv").rename(previous)
    done = set(read_results(previous).filter(pl.col("status") == "created")["title"])

    resorted = tmp_path / "resorted.csv"
    pl.read_csv(sheet, infer_schema=False).reverse().write_csv(resorted)
    sandbox.reset(keep_meetings=True)  # the next day: the daily cap is fresh, the meetings are still there
    created_before = {m["properties"]["hs_meeting_title"] for m in sandbox.meetings()}
    state = tmp_path / "elsewhere" / "state.sqlite"  # a fresh ledger: only the results file says what is done
    args = [
        "run",
        str(resorted),
        "--only-failed",
        str(previous),
        "--state",
        str(state),
        "--rate-limit",
        "100",
    ]
    second = run_cli(args, importer_env(sandbox))

    assert second.returncode == 0, second.stdout + second.stderr
    frame = read_results(tmp_path / "resorted.results.csv")
    assert set(frame.filter(pl.col("status") == "skipped")["title"]) == done
    sent_now = {m["properties"]["hs_meeting_title"] for m in sandbox.meetings()} - created_before
    assert sent_now == set(frame["title"]) - done
    assert sandbox.stats()["duplicates"] == 0


def test_results_file_is_an_input_after_fixing_rows(
    start_sandbox: Callable[..., Sandbox], tmp_path: Path
) -> None:
    sandbox = start_sandbox()
    results = tmp_path / "en.results.csv"
    run_cli(["run", str(SAMPLES / "meetings_en.csv"), "--results", str(results)], importer_env(sandbox))
    fixed = read_results(results).with_columns(
        pl.when(pl.col("row") == "11").then(pl.lit("emma.wilson@example.com")).otherwise(pl.col("owner_email"))
        .alias("owner_email")
    )  # fmt: skip
    fixed_path = tmp_path / "fixed.csv"
    fixed.write_csv(fixed_path)

    proc = run_cli(
        ["run", str(fixed_path), "--state", str(tmp_path / ".meeting-importer/state.sqlite")],
        importer_env(sandbox),
    )

    frame = read_results(tmp_path / "fixed.results.csv")
    assert frame.columns == read_results(results).columns  # the old outcome columns are not doubled
    statuses = dict(zip(frame["title"], frame["status"], strict=True))
    assert statuses["Roadmap preview (unknown owner)"] == "created"
    assert statuses["Quarterly business review"] == "skipped"
    assert proc.returncode == 1  # the invalid rows are still invalid
    assert sandbox.stats()["duplicates"] == 0


def test_a_second_run_on_the_same_state_exits_3(
    start_sandbox: Callable[..., Sandbox], tmp_path: Path
) -> None:
    sandbox = start_sandbox()
    state = tmp_path / "state" / "state.sqlite"
    state.parent.mkdir()
    holder = subprocess.Popen(
        [sys.executable, "-c", _HOLD_LOCK, str(lock_path(state, SAMPLES / "meetings_en.csv"))],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert holder.stdout is not None and holder.stdout.readline().strip() == "locked"
    try:
        proc = run_cli(
            ["run", str(SAMPLES / "meetings_en.csv"), "--state", str(state)], importer_env(sandbox)
        )
    finally:
        holder.kill()
        holder.wait()

    assert proc.returncode == 3
    assert proc.stderr.strip() == (
        f"Error: another run of {SAMPLES / 'meetings_en.csv'} holds the lock on {state};"
        " try again when it has finished"
    )
    assert sandbox.stats()["requests_total"] == 1  # the account details, which name the portal's ledger


_HOLD_LOCK = f"""
import fcntl, sys, time
handle = open(sys.argv[1], "w")
fcntl.flock(handle, {fcntl.LOCK_EX})
print("locked", flush=True)
time.sleep(60)
"""


def test_cron_output_is_plain_and_the_summary_json_complete(
    start_sandbox: Callable[..., Sandbox], tmp_path: Path
) -> None:
    sandbox = start_sandbox()
    summary = tmp_path / "summary.json"
    log_file = tmp_path / "import.log"
    args = ["run", str(SAMPLES / "meetings_en.csv"), "--results", str(tmp_path / "r.csv")]
    args += ["--summary-json", str(summary), "--log-file", str(log_file), "--log-format", "json"]
    proc = run_cli(args, importer_env(sandbox))

    assert proc.returncode == 1
    assert not CONTROL.search(proc.stdout + proc.stderr)
    assert proc.stdout.splitlines()[-1] == f"results: {tmp_path / 'r.csv'}"
    data = json.loads(summary.read_text())
    assert data["counts"] == {
        "valid": 0,
        "invalid": 3,
        "created": 7,
        "updated": 0,
        "skipped": 0,
        "failed": 2,
        "in_doubt": 0,
        "not_sent": 0,
    }
    assert data["complete"] is False and data["results"] == str(tmp_path / "r.csv")
    assert data["requests"] == sandbox.stats()["requests_total"]
    assert data["rate_limited_429s"] == 0 and data["requests_per_s"] > 0
    assert data["stop_reason"] is None and data["stop_kind"] is None
    assert {
        "error": "owner not found: no HubSpot owner has the e-mail nobody@example.com",
        "code": "COULD_NOT_FIND_OWNER",
        "rows": 1,
        "first_rows": [11],
    } in data["top_errors"]
    lines = [json.loads(line) for line in log_file.read_text().splitlines()]
    failed = next(line for line in lines if line.get("row") == 11)
    assert failed["status"] == "failed" and failed["level"] == "warning" and len(failed["row_key"]) == 24
    phases = [line["message"] for line in lines if "row" not in line]
    assert any(p.startswith("looking up owners and associations of ") for p in phases), phases


def test_quiet_prints_a_short_report_only_when_rows_are_left(
    start_sandbox: Callable[..., Sandbox], tmp_path: Path
) -> None:
    sandbox = start_sandbox()
    results = tmp_path / "r.csv"
    args = ["run", str(SAMPLES / "meetings_en.csv"), "--results", str(results), "--quiet"]
    proc = run_cli(args, importer_env(sandbox))
    assert proc.returncode == 1
    assert proc.stdout == ""
    assert proc.stderr.splitlines() == [
        f"{SAMPLES / 'meetings_en.csv'}: not every row was done: invalid=3 created=7 failed=2",
        "  row 7: company domain is ambiguous: globex.com belongs to companies 6100006, 6100007",
        "  row 8: end: must be after start",
        "  row 9: start: '2027-03-14 02:30' does not exist in America/New_York"
        " (the clocks skip it when daylight saving time starts)",
        "  row 10: contact_emails: 'daniel.lee@globex' is not an e-mail address",
        "  row 11: owner not found: no HubSpot owner has the e-mail nobody@example.com",
        f"results: {results}",
    ]
    clean = write_meetings(tmp_path / "clean.csv", 5)
    done = run_cli(["run", str(clean), "--quiet"], importer_env(sandbox))
    assert (done.returncode, done.stdout, done.stderr) == (0, "", "")


def test_the_token_never_appears_anywhere(start_sandbox: Callable[..., Sandbox], tmp_path: Path) -> None:
    secret = "pat-na1-11111111-2222-3333-4444-555555555555"
    sandbox = start_sandbox(token=secret)
    outputs = []
    for attempt, token in enumerate((secret, "pat-na1-wrong-token-wrong-token")):
        summary, log_file, results = (
            tmp_path / f"{attempt}.json",
            tmp_path / f"{attempt}.log",
            tmp_path / f"{attempt}.csv",
        )
        args = ["run", str(SAMPLES / "meetings_en.csv"), "--results", str(results)]
        args += ["--summary-json", str(summary), "--log-file", str(log_file)]
        proc = run_cli(args, importer_env(sandbox, token=token))
        outputs += [
            proc.stdout,
            proc.stderr,
            summary.read_text() if summary.exists() else "",
            log_file.read_text(),
            results.read_text(encoding="utf-8-sig") if results.exists() else "",
        ]
        assert all(token not in text for text in outputs), token
    assert proc.returncode == 2  # the wrong token stopped the run


def test_status_reports_the_ledger(start_sandbox: Callable[..., Sandbox], tmp_path: Path) -> None:
    sandbox = start_sandbox()
    state = tmp_path / "s" / "state.sqlite"
    run_cli(
        [
            "run",
            str(SAMPLES / "meetings_en.csv"),
            "--state",
            str(state),
            "--results",
            str(tmp_path / "r.csv"),
        ],
        importer_env(sandbox),
    )

    proc = run_cli(["status", "--state", str(state)], importer_env(sandbox))

    assert proc.returncode == 0
    lines = proc.stdout.splitlines()
    assert lines[0] == f"portal 12345678 ({state})"
    assert lines[1] == "  rows: 7 created"
    assert lines[2].startswith(f"  last run: {SAMPLES / 'meetings_en.csv'} started ")
    assert lines[2].endswith(": finished: invalid=3 created=7 failed=2")
    missing = run_cli(["status", "--state", str(tmp_path / "nope.sqlite")], importer_env(sandbox))
    assert missing.returncode == 2


def test_the_ledger_keeps_two_portals_apart(start_sandbox: Callable[..., Sandbox], tmp_path: Path) -> None:
    """One state folder, one base URL, two HubSpot accounts: what portal A has must not count as done in B."""
    first = start_sandbox(portal_id=111)
    state = tmp_path / "state.sqlite"
    args = [
        "run",
        str(SAMPLES / "meetings_en.csv"),
        "--state",
        str(state),
        "--results",
        str(tmp_path / "r.csv"),
    ]
    assert run_cli(args, importer_env(first)).returncode == 1
    port = first.url.rsplit(":", 1)[1]
    first.stop()

    second = start_sandbox(portal_id=222, port=port)  # the same address, another account
    assert second.url == first.url
    proc = run_cli(args, importer_env(second))

    assert proc.returncode == 1
    assert second.stats()["meetings_created"] == 7  # created in B too, not skipped as done in A
    status = run_cli(["status", "--state", str(state)], importer_env(second)).stdout.splitlines()
    assert [line for line in status if not line.startswith(" ")] == [
        f"portal 111 ({state})",
        f"portal 222 ({state})",
    ]
