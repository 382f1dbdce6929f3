"""Exactly once without trusting one local file: whatever happened to the ledger and the results files, a
rerun finds in HubSpot what is there and creates nothing twice. Every test ends with each row in the
sandbox exactly once."""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from pathlib import Path

import polars as pl

from tests.integration.conftest import (
    Sandbox,
    importer_env,
    make_by_hand,
    read_results,
    run_cli,
    write_meetings,
)

ROWS = 30


def _import(sheet: Path, sandbox: Sandbox, *extra: str, **env: str) -> tuple[int, pl.DataFrame, str]:
    results = sheet.with_name(f"{sheet.stem}.results.csv")
    args = ["run", str(sheet), "--rate-limit", "100", "--results", str(results), *extra]
    proc = run_cli(args, importer_env(sandbox, **env))
    return proc.returncode, read_results(results), proc.stdout + proc.stderr


def _once_each(sandbox: Sandbox, rows: int) -> None:
    stats = sandbox.stats()
    assert stats["meetings_created"] == rows
    assert stats["duplicates"] == 0


def test_a_deleted_state_folder_creates_nothing_again(
    start_sandbox: Callable[..., Sandbox], tmp_path: Path
) -> None:
    sandbox = start_sandbox()
    sheet = write_meetings(tmp_path / "m.csv", ROWS)
    assert _import(sheet, sandbox)[0] == 0
    shutil.rmtree(sandbox.state_home)  # the user's state folder is gone, or cron moved to another host
    searches = sandbox.stats()["requests_by_route"]["search"]

    code, frame, _ = _import(sheet, sandbox)

    assert code == 0
    _once_each(sandbox, ROWS)
    assert set(frame["status"]) == {"skipped"}
    assert frame["warning"].str.starts_with("already in HubSpot (meeting ").all()
    assert sandbox.stats()["requests_by_route"]["search"] == searches + 1  # one search, three owners


def test_dated_results_folders_share_the_portals_ledger(
    start_sandbox: Callable[..., Sandbox], tmp_path: Path
) -> None:
    """No check needed: the default ledger is the portal's, wherever the results and exports go."""
    sandbox = start_sandbox()
    for day in ("2026-12-01", "2026-12-02"):
        folder = tmp_path / day
        folder.mkdir()
        sheet = write_meetings(folder / "m.csv", ROWS)
        code, frame, _ = _import(sheet, sandbox, "--no-check-existing")
        assert code == 0
    assert set(frame["status"]) == {"skipped"}
    assert "search" not in sandbox.stats()["requests_by_route"]
    _once_each(sandbox, ROWS)


def test_two_state_files_on_one_portal(start_sandbox: Callable[..., Sandbox], tmp_path: Path) -> None:
    sandbox = start_sandbox()
    sheet = write_meetings(tmp_path / "m.csv", ROWS)
    assert _import(sheet, sandbox, "--state", str(tmp_path / "a.sqlite"))[0] == 0

    code, frame, _ = _import(sheet, sandbox, "--state", str(tmp_path / "b.sqlite"))

    assert code == 0
    assert set(frame["status"]) == {"skipped"}
    _once_each(sandbox, ROWS)


def test_the_base_url_spelling_does_not_matter(start_sandbox: Callable[..., Sandbox], tmp_path: Path) -> None:
    sandbox = start_sandbox()
    sheet = write_meetings(tmp_path / "m.csv", ROWS)
    port = sandbox.url.rsplit(":", 1)[1]
    spellings = [sandbox.url, f"{sandbox.url}/", f"http://localhost:{port}"]
    for url in spellings:
        code, frame, _ = _import(sheet, sandbox, "--no-check-existing", HUBSPOT_BASE_URL=url)
        assert code == 0, url
    assert set(frame["status"]) == {"skipped"}  # the ledger knew them, keyed by the portal alone
    _once_each(sandbox, ROWS)


def test_a_results_file_imported_from_another_folder_vouches_for_its_meetings(
    start_sandbox: Callable[..., Sandbox], tmp_path: Path
) -> None:
    sandbox = start_sandbox()
    sheet = write_meetings(tmp_path / "m.csv", ROWS)
    assert _import(sheet, sandbox)[0] == 0
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    copied = elsewhere / "m.csv"
    shutil.copy(tmp_path / "m.results.csv", copied)
    shutil.rmtree(sandbox.state_home)
    reads = sandbox.stats()["requests_by_route"]["batch_read"]

    code, frame, _ = _import(copied, sandbox, "--no-check-existing")

    assert code == 0
    assert set(frame["status"]) == {"skipped"}
    assert set(frame["warning"]) == {"created earlier (results file)"}
    assert sandbox.stats()["requests_by_route"]["batch_read"] == reads + 1  # 30 ids in one batch read
    # The results file's meetings are now in the ledger: a plain nightly run of the sheet sends nothing.
    code, frame, _ = _import(sheet, sandbox, "--no-check-existing")
    assert code == 0 and set(frame["status"]) == {"skipped"}
    _once_each(sandbox, ROWS)


def test_only_failed_after_a_lost_state_records_what_it_skips(
    start_sandbox: Callable[..., Sandbox], tmp_path: Path
) -> None:
    sandbox = start_sandbox()
    sheet = write_meetings(tmp_path / "m.csv", ROWS)
    assert _import(sheet, sandbox)[0] == 0
    previous = tmp_path / "previous.results.csv"
    shutil.copy(tmp_path / "m.results.csv", previous)
    shutil.rmtree(sandbox.state_home)

    code, frame, _ = _import(sheet, sandbox, "--only-failed", str(previous), "--no-check-existing")
    assert code == 0 and set(frame["status"]) == {"skipped"}
    code, frame, _ = _import(sheet, sandbox, "--no-check-existing")  # the next plain nightly run

    assert code == 0 and set(frame["status"]) == {"skipped"}
    _once_each(sandbox, ROWS)


def test_only_failed_of_another_portal_is_refused(
    start_sandbox: Callable[..., Sandbox], tmp_path: Path
) -> None:
    sandbox = start_sandbox()
    sheet = write_meetings(tmp_path / "m.csv", 3)
    previous = tmp_path / "previous.results.csv"
    previous.write_text("title,row,status,meeting_id,row_key,portal_id\nx,2,created,9100001,k,999\n")

    proc = run_cli(["run", str(sheet), "--only-failed", str(previous)], importer_env(sandbox))

    assert proc.returncode == 2
    assert proc.stderr.strip() == (
        f"Error: {previous} was written for HubSpot portal 999, but this run writes to portal 12345678:"
        " use that portal's results file"
    )
    assert sandbox.stats()["meetings_created"] == 0
    assert not (tmp_path / "m.results.csv").exists()


def test_a_fixed_formula_like_cell_goes_to_hubspot_as_written(
    start_sandbox: Callable[..., Sandbox], tmp_path: Path
) -> None:
    sandbox = start_sandbox()
    sheet = tmp_path / "m.csv"
    rows = [
        ("=SUM(1;2) review", "2027-01-05 10:00", "aiko.tanaka@example.co.jp", "+81 3-1234-5678"),
        ("Follow-up", "2027-01-05 11:00", "nobody@example.com", "-"),  # fails: no such owner
    ]
    pl.DataFrame(rows, schema=["title", "start", "owner_email", "location"], orient="row").with_columns(
        pl.lit("30").alias("duration_minutes"), pl.lit("Asia/Tokyo").alias("timezone")
    ).write_csv(sheet)
    assert _import(sheet, sandbox)[0] == 1
    results = tmp_path / "m.results.csv"
    text = results.read_text(encoding="utf-8-sig")
    assert "'=SUM(1;2) review" in text and "'+81 3-1234-5678" in text  # neutralised in the file only
    fixed = tmp_path / "fixed.csv"
    results.write_text(text.replace("nobody@example.com", "kenji.sato@example.co.jp"), encoding="utf-8-sig")
    shutil.copy(results, fixed)

    code, frame, _ = _import(fixed, sandbox)

    assert code == 0
    assert frame["status"].to_list() == ["skipped", "created"]
    meetings = sandbox.meetings()
    assert sorted(m["properties"]["hs_meeting_title"] for m in meetings) == ["=SUM(1;2) review", "Follow-up"]
    first = next(m for m in meetings if m["properties"]["hs_meeting_title"].startswith("="))
    assert first["properties"]["hs_meeting_location"] == "+81 3-1234-5678"
    _once_each(sandbox, 2)


def test_summary_counts_the_searches(start_sandbox: Callable[..., Sandbox], tmp_path: Path) -> None:
    sandbox = start_sandbox()
    sheet = write_meetings(tmp_path / "m.csv", ROWS)
    summary = tmp_path / "summary.json"

    code, _, output = _import(sheet, sandbox, "--summary-json", str(summary))

    assert code == 0
    data = json.loads(summary.read_text())
    assert data["searches"] == sandbox.stats()["requests_by_route"]["search"] == 1
    assert data["portal_id"] == 12345678
    assert " searches=1" in output


def test_meetings_made_by_hand_are_adopted_not_made_again(
    start_sandbox: Callable[..., Sandbox], tmp_path: Path
) -> None:
    sandbox = start_sandbox()
    by_hand = {make_by_hand(sandbox, i) for i in range(20)}
    sheet = write_meetings(tmp_path / "m.csv", ROWS)

    code, frame, _ = _import(sheet, sandbox)

    assert code == 0
    skipped = frame.filter(pl.col("status") == "skipped")
    assert set(skipped["meeting_id"]) == by_hand
    assert frame.filter(pl.col("status") == "created").height == ROWS - 20
    _once_each(sandbox, ROWS)


def test_a_cumulative_sheet_from_a_new_state_folder_creates_only_the_new_rows(
    start_sandbox: Callable[..., Sandbox], tmp_path: Path
) -> None:
    """The issue's measurement: 200 rows, 150 imported earlier from another state folder, 20 made by hand."""
    sandbox = start_sandbox(max_per_window=1000)
    first = write_meetings(tmp_path / "first.csv", 150)
    assert _import(first, sandbox, "--rate-limit", "1000", "--state", str(tmp_path / "old.sqlite"))[0] == 0
    for i in range(150, 170):
        make_by_hand(sandbox, i)
    sheet = write_meetings(tmp_path / "m.csv", 200)

    code, frame, _ = _import(sheet, sandbox, "--rate-limit", "1000", "--state", str(tmp_path / "new.sqlite"))

    assert code == 0
    assert frame["status"].value_counts(sort=True).rows() == [("skipped", 170), ("created", 30)]
    _once_each(sandbox, 200)
