"""A night that goes wrong is safe and visible: one line and exit 2 before anything is sent, no traceback,
no token, and last night's results file left exactly as it was."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.integration.conftest import TOKEN, Sandbox, importer_env, run_cli, write_meetings

LAST_NIGHT = "title,row,status,meeting_id,row_key\nReview,2,created,9100001,abc\n".encode("utf-8-sig")


def _stopped(proc: subprocess.CompletedProcess[str], line: str) -> None:
    assert proc.returncode == 2
    stderr = str(proc.stderr)
    assert stderr.splitlines()[-1] == f"Error: {line}"
    assert "Traceback" not in stderr + str(proc.stdout)


@pytest.fixture
def night(start_sandbox: Callable[..., Sandbox], tmp_path: Path) -> tuple[Sandbox, Path, Path]:
    """A sandbox, tonight's sheet, and last night's results beside it."""
    sandbox = start_sandbox()
    sheet = write_meetings(tmp_path / "m.csv", 5)
    results = tmp_path / "m.results.csv"
    results.write_bytes(LAST_NIGHT)
    return sandbox, sheet, results


def test_a_results_path_that_cannot_be_written_stops_before_any_request(
    night: tuple[Sandbox, Path, Path], tmp_path: Path
) -> None:
    sandbox, sheet, _ = night
    (tmp_path / "out").write_text("a file where a folder should be")
    target = tmp_path / "out" / "r.csv"

    proc = run_cli(["run", str(sheet), "--results", str(target)], importer_env(sandbox))

    _stopped(proc, f"cannot write the results file {target}: {tmp_path / 'out'} is not a folder")
    assert sandbox.stats()["requests_total"] == 0


def test_results_naming_the_input_is_refused(night: tuple[Sandbox, Path, Path]) -> None:
    sandbox, sheet, _ = night
    before = sheet.read_bytes()

    proc = run_cli(["run", str(sheet), "--results", str(sheet)], importer_env(sandbox))

    _stopped(proc, f"--results names the input file {sheet}: choose another results path")
    assert sheet.read_bytes() == before


def test_a_results_path_that_is_a_pipe_is_refused_not_replaced(
    night: tuple[Sandbox, Path, Path], tmp_path: Path
) -> None:
    sandbox, sheet, _ = night
    pipe = tmp_path / "results.pipe"
    os.mkfifo(pipe)

    proc = run_cli(["run", str(sheet), "--results", str(pipe)], importer_env(sandbox))

    reason = "it is not a regular file (a device or a pipe)"
    _stopped(proc, f"cannot write the results file {pipe}: {reason}")
    assert stat.S_ISFIFO(pipe.stat().st_mode) and sandbox.stats()["requests_total"] == 0


def test_a_ledger_that_is_not_sqlite_stops_in_one_line_and_keeps_last_nights_results(
    night: tuple[Sandbox, Path, Path], tmp_path: Path
) -> None:
    sandbox, sheet, results = night
    ledger = tmp_path / "ledger.sqlite"
    ledger.write_text("this is not a database\n" * 100)

    proc = run_cli(["run", str(sheet), "--state", str(ledger)], importer_env(sandbox))

    _stopped(
        proc,
        f"{ledger} is not a readable ledger (file is not a database): move it aside and run again;"
        " the existing-meeting check finds in HubSpot what it had recorded",
    )
    assert results.read_bytes() == LAST_NIGHT
    assert sandbox.stats()["meetings_created"] == 0


def test_a_refused_token_keeps_last_nights_results(night: tuple[Sandbox, Path, Path], tmp_path: Path) -> None:
    sandbox, sheet, results = night
    summary = tmp_path / "summary.json"
    log_file = tmp_path / "night.log"
    args = [
        "run",
        str(sheet),
        "--summary-json",
        str(summary),
        "--log-file",
        str(log_file),
        "--log-format",
        "json",
    ]

    proc = run_cli(args, importer_env(sandbox, token="pat-na1-wrong"))

    assert proc.returncode == 2
    assert results.read_bytes() == LAST_NIGHT
    data = json.loads(summary.read_text())
    assert data["complete"] is False and data["error"].startswith("HubSpot refused the access token")
    fatal = json.loads(log_file.read_text().splitlines()[-1])
    assert fatal["level"] == "error" and fatal["message"].startswith(
        "stopped: HubSpot refused the access token"
    )
    assert "pat-na1-wrong" not in proc.stdout + proc.stderr + summary.read_text() + log_file.read_text()


def test_a_token_file_saved_on_windows_works(night: tuple[Sandbox, Path, Path]) -> None:
    sandbox, sheet, _ = night
    proc = run_cli(["run", str(sheet)], importer_env(sandbox, token=f"  {TOKEN}\r\n"))
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_a_token_with_white_space_inside_is_refused_without_showing_it(
    night: tuple[Sandbox, Path, Path],
) -> None:
    sandbox, sheet, _ = night
    proc = run_cli(["run", str(sheet)], importer_env(sandbox, token="pat-na1 secret-part"))
    _stopped(proc, "the access token in HUBSPOT_ACCESS_TOKEN has white space inside it: check how it is set")
    assert "secret-part" not in proc.stdout + proc.stderr
    assert sandbox.stats()["requests_total"] == 0


def test_an_unreachable_hubspot_names_the_host(night: tuple[Sandbox, Path, Path]) -> None:
    sandbox, sheet, results = night
    env = importer_env(sandbox, HUBSPOT_BASE_URL="http://127.0.0.1:9")  # nothing listens on the discard port

    proc = run_cli(["run", str(sheet)], env)

    assert proc.returncode == 2
    assert proc.stderr.splitlines()[-1].startswith(
        "Error: cannot reach HubSpot at 127.0.0.1 (http://127.0.0.1:9):"
    )
    assert "Traceback" not in proc.stderr
    assert results.read_bytes() == LAST_NIGHT


def test_hubspot_failing_at_the_start_of_a_night_is_waited_for(night: tuple[Sandbox, Path, Path]) -> None:
    """An incident at 2 a.m.: the account's details come back 5xx for a while. The run waits, as it waits
    for any look-up, and imports the sheet once HubSpot answers, rather than give up the night."""
    sandbox, sheet, _ = night
    sandbox.set_faults(error_5xx=1.0, scope="all")
    env = importer_env(sandbox, MEETING_IMPORTER_OUTAGE_S="15", MEETING_IMPORTER_MAX_ATTEMPTS="2")
    process = subprocess.Popen(
        [sys.executable, "-m", "importer", "run", str(sheet)],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    deadline = time.monotonic() + 30
    while sandbox.stats()["requests_by_route"].get("account_details", 0) < 4:  # a wait, and a try after
        assert time.monotonic() < deadline and process.poll() is None, "the run did not wait"
        time.sleep(0.05)
    sandbox.set_faults(error_5xx=0.0)
    stdout, stderr = process.communicate(timeout=60)

    assert process.returncode == 0, stdout + stderr
    assert "HubSpot failed the look-ups through every retry (the last: HubSpot 50" in stderr
    assert sandbox.stats()["meetings_created"] == 5


def test_hubspot_failing_for_outage_s_at_the_start_stops_the_night_as_unreachable(
    night: tuple[Sandbox, Path, Path],
) -> None:
    sandbox, sheet, results = night
    sandbox.set_faults(error_5xx=1.0, scope="all")
    env = importer_env(sandbox, MEETING_IMPORTER_OUTAGE_S="1", MEETING_IMPORTER_MAX_ATTEMPTS="2")

    proc = run_cli(["run", str(sheet)], env)

    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert proc.stderr.splitlines()[-1].startswith(
        f"Error: cannot reach HubSpot at 127.0.0.1 ({sandbox.url}): HubSpot failed every request for "
    )
    assert results.read_bytes() == LAST_NIGHT  # nothing was read or sent: last night's results stay


def test_a_config_saved_as_shift_jis_is_one_line_and_one_with_a_bom_works(
    night: tuple[Sandbox, Path, Path], tmp_path: Path
) -> None:
    sandbox, sheet, _ = night
    cp932 = tmp_path / "cp932.toml"
    cp932.write_bytes('# 設定\ndefault_outcome = "SCHEDULED"\n'.encode("cp932"))
    bom = tmp_path / "bom.toml"
    bom.write_bytes('# 設定\ndefault_outcome = "SCHEDULED"\n'.encode("utf-8-sig"))

    refused = run_cli(["run", str(sheet), "--config", str(cp932)], importer_env(sandbox))
    accepted = run_cli(["run", str(sheet), "--config", str(bom)], importer_env(sandbox))

    _stopped(
        refused, f"cannot read config file {cp932}: line 1 is not UTF-8 (save it as UTF-8, not Shift_JIS)"
    )
    assert accepted.returncode == 0, accepted.stdout + accepted.stderr


def test_a_night_without_meetings_is_exit_0(start_sandbox: Callable[..., Sandbox], tmp_path: Path) -> None:
    sandbox = start_sandbox()
    sheet = tmp_path / "empty.csv"
    sheet.write_text("title,start,duration_minutes,owner_email\n")

    proc = run_cli(["run", str(sheet)], importer_env(sandbox))

    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "summary: rows=0 " in proc.stdout


def test_a_stop_is_one_line_with_the_rows_left(start_sandbox: Callable[..., Sandbox], tmp_path: Path) -> None:
    sandbox = start_sandbox(daily_limit=10)
    sheet = write_meetings(tmp_path / "m.csv", 40)
    summary = tmp_path / "summary.json"

    proc = run_cli(["run", str(sheet), "--summary-json", str(summary)], importer_env(sandbox))

    assert proc.returncode == 1
    stopped = [line for line in proc.stdout.splitlines() if line.startswith("stopped: ")]
    created = sandbox.stats()["meetings_created"]
    assert stopped == [
        "stopped: HubSpot's daily request limit is reached;"
        f" {40 - created} rows not sent (the next run sends them)"
    ]
    assert "not_sent" not in proc.stderr  # not one line per unsent row
    data = json.loads(summary.read_text())
    assert data["stop_kind"] == "daily_limit"
    assert data["stop_reason"] == "HubSpot's daily request limit is reached"


def test_a_proxy_that_refuses_is_one_line(night: tuple[Sandbox, Path, Path]) -> None:
    sandbox, sheet, results = night
    proxy = {
        "HTTP_PROXY": "http://127.0.0.1:9",
        "http_proxy": "http://127.0.0.1:9",
        "NO_PROXY": "",
        "no_proxy": "",
    }

    proc = run_cli(["run", str(sheet)], importer_env(sandbox, **proxy))

    assert proc.returncode == 2
    assert proc.stderr.splitlines()[-1].startswith(
        f"Error: cannot reach HubSpot at 127.0.0.1 ({sandbox.url}):"
    )
    assert "Traceback" not in proc.stderr
    assert results.read_bytes() == LAST_NIGHT


def test_a_state_folder_that_cannot_be_made_is_one_line(
    night: tuple[Sandbox, Path, Path], tmp_path: Path
) -> None:
    sandbox, sheet, results = night
    (tmp_path / "state").write_text("a file where the state folder should be")

    proc = run_cli(
        ["run", str(sheet), "--state", str(tmp_path / "state" / "ledger.sqlite")], importer_env(sandbox)
    )

    assert proc.returncode == 2
    assert proc.stderr.splitlines()[-1].startswith(
        f"Error: cannot write the state folder {tmp_path / 'state'}:"
    )
    assert results.read_bytes() == LAST_NIGHT
