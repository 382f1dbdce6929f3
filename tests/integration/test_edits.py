"""The sheet is the source of truth: edited rows update their meeting, cancelled rows cancel it, and `plan`
shows what a run would do without doing it. The sandbox's meetings must equal the sheet afterwards."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import polars as pl

from tests.integration.conftest import (
    CONTACTS,
    Sandbox,
    importer_env,
    make_by_hand,
    read_results,
    run_cli,
    write_meetings,
)

ROWS = 60
CONTACT_IDS = {"hiroshi.yamada@sakura-trading.co.jp": "7100001", "takeshi.ito@fuji-robotics.jp": "7100003"}
CONTACT_IDS["sarah.johnson@northwind.com"] = "7100007"


def _sheet(path: Path) -> pl.DataFrame:
    write_meetings(path, ROWS)
    frame = pl.read_csv(path, infer_schema=False)
    return frame.with_columns(
        pl.format("M-{}", pl.int_range(ROWS)).alias("商談ID"), pl.lit("").alias("location")
    )


def _edit(frame: pl.DataFrame) -> pl.DataFrame:
    """16 edited rows: 10 moved and retitled, 3 cancelled, a location, a contact added, a contact dropped."""
    i = pl.int_range(pl.len())
    moved = i < 10
    frame = frame.with_columns(
        pl.when(moved).then(pl.col("title") + " (moved)").otherwise(pl.col("title")).alias("title"),
        pl.when(moved)
        .then(pl.col("start").str.replace(r":\d\d$", ":45"))  # every one moved
        .otherwise(pl.col("start"))
        .alias("start"),
        pl.when(i.is_between(10, 12)).then(pl.lit("キャンセル")).otherwise(pl.lit(None)).alias("outcome"),
        pl.when(i == 13).then(pl.lit("Tokyo office, 5F")).otherwise(pl.col("location")).alias("location"),
        pl.when(i == 14)
        .then(pl.col("contact_emails") + ";" + pl.lit(CONTACTS[0]))  # row 14 has CONTACTS[2]
        .when(i == 15)
        .then(pl.lit(""))
        .otherwise(pl.col("contact_emails"))
        .alias("contact_emails"),
    )
    return frame.reverse()  # re-sorted too


def _assert_sandbox_equals_sheet(sandbox: Sandbox, frame: pl.DataFrame, ids: dict[str, str]) -> None:
    meetings = {m["id"]: m for m in sandbox.meetings()}
    assert len(meetings) == ROWS
    for row in frame.iter_rows(named=True):
        meeting = meetings[ids[row["商談ID"]]]
        stored = meeting["crmProperties"]
        assert stored["hs_meeting_title"] == row["title"]
        start = datetime.strptime(row["start"], "%Y-%m-%d %H:%M").replace(tzinfo=ZoneInfo("Asia/Tokyo"))
        assert stored["hs_meeting_start_time"].startswith(start.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S"))
        assert stored["hs_meeting_outcome"] == ("CANCELED" if row["outcome"] else "SCHEDULED")
        assert (stored.get("hs_meeting_location") or "") == (row["location"] or "")
        contacts = {CONTACT_IDS[e] for e in (row["contact_emails"] or "").split(";") if e}
        linked = {a["to"]["id"] for a in meeting["associations"] if a["types"][0]["associationTypeId"] == 200}
        assert linked == contacts, row["商談ID"]


def test_edited_rows_with_a_key_column_update_their_meetings(
    start_sandbox: Callable[..., Sandbox], tmp_path: Path
) -> None:
    sandbox = start_sandbox(max_per_window=1000)
    sheet = tmp_path / "m.csv"
    original = _sheet(sheet)
    original.write_csv(sheet)
    args = ["run", str(sheet), "--key-column", "商談ID", "--rate-limit", "1000"]
    assert run_cli(args, importer_env(sandbox)).returncode == 0
    first = read_results(tmp_path / "m.results.csv")
    ids = dict(zip(first["商談ID"], first["meeting_id"], strict=True))
    edited = _edit(original)
    edited.write_csv(sheet)

    plan = run_cli(["plan", *args[1:]], importer_env(sandbox))
    assert plan.returncode == 0, plan.stdout + plan.stderr
    planned = read_results(tmp_path / "m.plan.csv")
    assert planned["action"].value_counts(sort=True).rows() == [("skip", 44), ("update", 16)]
    assert set(planned.filter(pl.col("商談ID") == "M-7")["warning"]) == {"changed: title, start, end"}
    assert set(planned.filter(pl.col("商談ID") == "M-14")["warning"]) == {"changed: contact_emails"}
    routes = sandbox.stats()["requests_by_route"]
    assert routes.get("create_meeting") == ROWS and not sandbox.stats()["updates_by_route"]

    rerun = run_cli(args, importer_env(sandbox))

    assert rerun.returncode == 0, rerun.stdout + rerun.stderr
    frame = read_results(tmp_path / "m.results.csv")
    assert frame["status"].value_counts(sort=True).rows() == [("skipped", 44), ("updated", 16)]
    assert set(frame.filter(pl.col("商談ID") == "M-11")["warning"]) == {"changed: outcome"}
    assert sandbox.stats()["meetings_created"] == ROWS  # 0 new meetings
    _assert_sandbox_equals_sheet(sandbox, edited, ids)
    again = run_cli(args, importer_env(sandbox))  # nothing left to change
    assert again.returncode == 0
    assert set(read_results(tmp_path / "m.results.csv")["status"]) == {"skipped"}


def test_edited_rows_in_the_results_file_update_their_meetings(
    start_sandbox: Callable[..., Sandbox], tmp_path: Path
) -> None:
    sandbox = start_sandbox(max_per_window=1000)
    sheet = tmp_path / "m.csv"
    _sheet(sheet).write_csv(sheet)
    assert run_cli(["run", str(sheet), "--rate-limit", "1000"], importer_env(sandbox)).returncode == 0
    results = tmp_path / "m.results.csv"
    first = read_results(results)
    ids = dict(zip(first["商談ID"], first["meeting_id"], strict=True))
    fixed = tmp_path / "fixed.csv"
    _edit(first).write_csv(fixed)  # the user fixes rows in the results file and imports it

    proc = run_cli(["run", str(fixed), "--rate-limit", "1000"], importer_env(sandbox))

    assert proc.returncode == 0, proc.stdout + proc.stderr
    frame = read_results(tmp_path / "fixed.results.csv")
    assert frame["status"].value_counts(sort=True).rows() == [("skipped", 44), ("updated", 16)]
    assert sandbox.stats()["meetings_created"] == ROWS
    _assert_sandbox_equals_sheet(sandbox, _edit(_sheet(tmp_path / "again.csv")), ids)


def test_a_deleted_meeting_fails_its_edited_row_unless_recreate_missing(
    start_sandbox: Callable[..., Sandbox], tmp_path: Path
) -> None:
    sandbox = start_sandbox()
    sheet = tmp_path / "m.csv"
    frame = _sheet(sheet).head(3)
    frame.write_csv(sheet)
    args = ["run", str(sheet), "--key-column", "商談ID"]
    assert run_cli(args, importer_env(sandbox)).returncode == 0
    gone = read_results(tmp_path / "m.results.csv")["meeting_id"][0]
    sandbox.delete_meeting(gone)
    frame.with_columns(pl.col("title") + " v2").write_csv(sheet)

    proc = run_cli(args, importer_env(sandbox))

    assert proc.returncode == 1
    failed = read_results(tmp_path / "m.results.csv").filter(pl.col("status") == "failed")
    assert failed["error"].to_list() == [
        f"meeting {gone} is no longer in HubSpot (deleted?); not created again (pass --recreate-missing to create it anew)"
    ]
    again = run_cli([*args, "--recreate-missing"], importer_env(sandbox))
    assert again.returncode == 0
    assert sorted(read_results(tmp_path / "m.results.csv")["status"]) == ["created", "skipped", "skipped"]


def test_a_key_on_two_rows_stops_the_run(start_sandbox: Callable[..., Sandbox], tmp_path: Path) -> None:
    sandbox = start_sandbox()
    sheet = tmp_path / "m.csv"
    _sheet(sheet).head(3).with_columns(pl.lit("M-1").alias("商談ID")).write_csv(sheet)

    proc = run_cli(["run", str(sheet), "--key-column", "商談ID"], importer_env(sandbox))

    assert proc.returncode == 2
    assert proc.stderr.strip() == f"Error: {sheet}: rows 2 and 3 have the same 商談ID 'M-1'"
    assert sandbox.stats()["meetings_created"] == 0


def test_a_row_created_beside_a_similar_meeting_is_updated_when_edited(
    start_sandbox: Callable[..., Sandbox], tmp_path: Path
) -> None:
    sandbox = start_sandbox()
    make_by_hand(sandbox, 0, hs_meeting_end_time="2027-01-01T00:15:00Z")  # same owner, start, title
    sheet = tmp_path / "m.csv"
    frame = _sheet(sheet).head(1)
    frame.write_csv(sheet)
    args = ["run", str(sheet), "--key-column", "商談ID"]
    assert run_cli(args, importer_env(sandbox)).returncode == 0
    first = read_results(tmp_path / "m.results.csv")
    assert first["status"].to_list() == ["created"]
    frame.with_columns(pl.col("title") + " v2").write_csv(sheet)

    proc = run_cli(args, importer_env(sandbox))

    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert read_results(tmp_path / "m.results.csv")["status"].to_list() == ["updated"]
