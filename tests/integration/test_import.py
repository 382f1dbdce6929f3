"""The real CLI importing into the real sandbox over loopback HTTP: samples, lookups, refusals."""

from __future__ import annotations

import asyncio
import math
from collections.abc import Callable
from pathlib import Path

import pytest

from importer.hubspot import HubSpotClient, Rejected
from tests.integration.conftest import (
    Sandbox,
    importer_env,
    read_results,
    run_cli,
    seed_with_contacts,
    write_meetings,
)

SAMPLES = Path(__file__).parents[2] / "samples"


def test_english_sample_imports_every_valid_row_once(
    start_sandbox: Callable[..., Sandbox], tmp_path: Path
) -> None:
    sandbox = start_sandbox()
    results = tmp_path / "en.results.csv"
    proc = run_cli(
        ["run", str(SAMPLES / "meetings_en.csv"), "--results", str(results)], importer_env(sandbox)
    )

    assert proc.returncode == 1, proc.stderr
    lines = proc.stdout.splitlines()
    assert lines[0] == "writing to HubSpot portal 12345678 (STANDARD, app.hubspot.com)"
    assert lines[1].startswith("summary: invalid=3 created=7 failed=2 ")
    frame = read_results(results)
    statuses = dict(zip(frame["row"], frame["status"], strict=True))
    assert statuses == {
        "2": "created", "3": "created", "4": "created", "5": "created", "7": "failed", "8": "invalid",
        "9": "invalid", "10": "invalid", "11": "failed", "12": "created", "13": "created", "14": "created",
    }  # fmt: skip
    errors = dict(zip(frame["row"], frame["error"], strict=True))
    assert errors["7"] == "company domain is ambiguous: globex.com belongs to companies 6100006, 6100007"
    assert errors["11"] == "owner not found: no HubSpot owner has the e-mail nobody@example.com"
    created = frame.filter(frame["status"] == "created")
    assert set(created["http_status"]) == {"200"} and set(created["attempts"]) == {"1"}
    assert sandbox.stats()["meetings_created"] == 7


def test_created_meeting_carries_owner_ids_and_typed_associations(
    start_sandbox: Callable[..., Sandbox], tmp_path: Path
) -> None:
    sandbox = start_sandbox()
    run_cli(
        ["run", str(SAMPLES / "meetings_en.csv"), "--results", str(tmp_path / "r.csv")], importer_env(sandbox)
    )

    review = next(
        m for m in sandbox.meetings() if m["properties"]["hs_meeting_title"] == "Quarterly business review"
    )
    # organizerUserId is the owner's userId; hubspot_owner_id is the owner's id: never swapped.
    assert review["organizerUserId"] == 52000004
    assert review["properties"]["hubspot_owner_id"] == "8100004"
    assert review["properties"]["hs_attendee_owner_ids"] == [
        "8100005"
    ]  # an array, as the Scheduler spec says
    assert review["properties"]["hs_meeting_start_time"] == "2026-12-01T15:00:00Z"
    assert review["timezone"] == "America/New_York"
    pairs = sorted((a["types"][0]["associationTypeId"], a["to"]["id"]) for a in review["associations"])
    assert pairs == [(188, "6100004"), (200, "7100007"), (200, "7100008"), (212, "3100001")]


def test_japanese_sample_with_mapping(start_sandbox: Callable[..., Sandbox], tmp_path: Path) -> None:
    sandbox = start_sandbox()
    results = tmp_path / "ja.results.csv"
    config = SAMPLES.parent / "config" / "japanese.toml"
    args = ["run", str(SAMPLES / "meetings_ja.csv"), "--config", str(config), "--results", str(results)]
    proc = run_cli(args, importer_env(sandbox))

    assert proc.returncode == 1, proc.stderr
    frame = read_results(results)
    errors = dict(zip(frame["row"], frame["error"], strict=True))
    assert errors["9"] == "contact not found: unknown.person@new-lead.co.jp"
    assert errors["10"] == "owner is archived in HubSpot: former.rep@example.com"
    first = next(
        m
        for m in sandbox.meetings()
        if m["properties"]["hs_meeting_title"] == "定例ミーティング（さくら商事）"
    )
    assert first["properties"]["hs_meeting_start_time"] == "2026-12-01T05:00:00Z"  # 14:00 JST
    assert first["properties"]["hs_meeting_location"] == "東京都千代田区丸の内1-1-1 ㈱さくら商事 本社"
    assert first["reminders"] == [
        {"numberOfTimeUnits": 1, "timeUnit": "DAYS"},
        {"numberOfTimeUnits": 30, "timeUnit": "MINUTES"},
    ]


def test_skip_missing_associations_creates_and_notes_them(
    start_sandbox: Callable[..., Sandbox], tmp_path: Path
) -> None:
    sandbox = start_sandbox()
    results = tmp_path / "ja.results.csv"
    config = SAMPLES.parent / "config" / "japanese.toml"
    args = ["run", str(SAMPLES / "meetings_ja.csv"), "--config", str(config), "--results", str(results)]
    proc = run_cli(args, importer_env(sandbox, MEETING_IMPORTER_ON_MISSING_ASSOCIATION="skip"))

    assert proc.returncode == 1
    row = read_results(results).filter(read_results(results)["row"] == "9").row(0, named=True)
    assert row["status"] == "created"
    assert row["warning"] == "contact not found (association skipped): unknown.person@new-lead.co.jp"
    assert sandbox.stats()["meetings_created"] == 8


def test_wrong_token_stops_at_once(start_sandbox: Callable[..., Sandbox], tmp_path: Path) -> None:
    sandbox = start_sandbox()
    results = tmp_path / "r.csv"
    proc = run_cli(
        ["run", str(SAMPLES / "meetings_en.csv"), "--results", str(results)], importer_env(sandbox, "wrong")
    )

    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines() == [
        "Error: HubSpot refused the access token: HubSpot 401 INVALID_AUTHENTICATION: "
        "The access token in the Authorization header is not valid."
    ]
    assert "wrong" not in proc.stderr + proc.stdout
    assert sandbox.stats()["requests_total"] == 1  # the account details: before the sheet is even read
    assert not results.exists()  # nothing was done, so no results file (nor an earlier one) is touched


def test_a_missing_sheet_stops_before_any_request(
    start_sandbox: Callable[..., Sandbox], tmp_path: Path
) -> None:
    sandbox = start_sandbox()
    missing = tmp_path / "tonight.csv"
    proc = run_cli(["run", str(missing)], importer_env(sandbox))
    assert (proc.returncode, proc.stdout, proc.stderr) == (2, "", f"Error: {missing}: no such file\n")
    assert sandbox.stats()["requests_total"] == 0


def test_missing_token_is_a_config_error(start_sandbox: Callable[..., Sandbox], tmp_path: Path) -> None:
    sandbox = start_sandbox()
    env = importer_env(sandbox)
    del env["HUBSPOT_ACCESS_TOKEN"]
    proc = run_cli(["run", str(SAMPLES / "meetings_en.csv"), "--results", str(tmp_path / "r.csv")], env)
    assert proc.returncode == 2
    assert (
        proc.stderr.strip()
        == "Error: no HubSpot access token: set the environment variable HUBSPOT_ACCESS_TOKEN"
    )


def test_association_with_wrong_type_id_is_rejected(start_sandbox: Callable[..., Sandbox]) -> None:
    sandbox = start_sandbox()
    body = {
        "properties": {
            "hs_meeting_title": "Wrong type",
            "hs_meeting_start_time": "2027-01-01T01:00:00Z",
            "hs_meeting_end_time": "2027-01-01T02:00:00Z",
            "hs_timestamp": "2027-01-01T01:00:00Z",
            "hs_meeting_outcome": "SCHEDULED",
            "hubspot_owner_id": "8100001",
        },
        "timezone": "Asia/Tokyo",
        "emailReminderSchedule": {"reminders": [], "shouldIncludeInviteDescription": False},
        # 7100001 is a contact; 188 is meeting -> company.
        "associations": [
            {
                "to": {"id": "7100001"},
                "types": [{"associationCategory": "HUBSPOT_DEFINED", "associationTypeId": 188}],
            }
        ],
    }

    async def create() -> None:
        async with HubSpotClient(sandbox.url, "sandbox-token") as client:
            await client.create_meeting(52000001, body)

    with pytest.raises(Rejected) as caught:
        asyncio.run(create())
    assert caught.value.status == 400
    assert caught.value.category == "VALIDATION_ERROR"
    assert sandbox.stats()["meetings_created"] == 0


def test_contact_lookups_are_batched(start_sandbox: Callable[..., Sandbox], tmp_path: Path) -> None:
    unique = [f"person{i:03d}@lookup-test.example.com" for i in range(230)]
    sandbox = start_sandbox(data=seed_with_contacts(tmp_path, unique), max_per_window=1000, window_ms=1000)
    sheet = write_meetings(tmp_path / "many.csv", 460, contacts=unique)  # every contact twice

    proc = run_cli(["run", str(sheet), "--dry-run"], importer_env(sandbox))
    assert proc.returncode == 0
    before = sandbox.stats()["requests_by_route"].get("batch_read", 0)
    proc = run_cli(["run", str(sheet), "--rate-limit", "1000", "--concurrency", "16"], importer_env(sandbox))

    assert proc.returncode == 0, proc.stdout + proc.stderr
    stats = sandbox.stats()
    assert stats["requests_by_route"]["batch_read"] - before == math.ceil(len(unique) / 100)
    assert stats["requests_by_route"]["owners"] == 2  # active and archived, one page each
    assert stats["meetings_created"] == 460


def test_the_first_rows_are_created_while_later_rows_are_still_looked_up(
    start_sandbox: Callable[..., Sandbox], tmp_path: Path
) -> None:
    unique = [f"person{i:03d}@stream-test.example.com" for i in range(600)]
    sandbox = start_sandbox(data=seed_with_contacts(tmp_path, unique), max_per_window=1000, window_ms=1000)
    sheet = write_meetings(tmp_path / "many.csv", 600, contacts=unique)

    proc = run_cli(["run", str(sheet), "--rate-limit", "1000"], importer_env(sandbox))

    assert proc.returncode == 0, proc.stdout + proc.stderr
    stats = sandbox.stats()
    assert stats["meetings_created"] == 600
    assert stats["requests_by_route"]["batch_read"] == 6  # chunked, and still in full batches of 100
    assert stats["first_request_by_route"]["create_meeting"] < stats["last_request_by_route"]["batch_read"]


def test_times_without_a_zone_are_the_hubspot_accounts(
    start_sandbox: Callable[..., Sandbox], tmp_path: Path
) -> None:
    """No zone in the row nor in the config: 14:00 is 14:00 in the portal's zone, not in UTC."""
    sandbox = start_sandbox(time_zone="America/New_York")
    sheet = tmp_path / "m.csv"
    sheet.write_text(
        "title,start,duration_minutes,owner_email\nReview,2027-01-05 14:00,30,aiko.tanaka@example.co.jp\n"
    )

    proc = run_cli(["run", str(sheet)], importer_env(sandbox))

    assert proc.returncode == 0, proc.stdout + proc.stderr
    (meeting,) = sandbox.meetings()
    assert meeting["properties"]["hs_meeting_start_time"] == "2027-01-05T19:00:00Z"
    assert meeting["timezone"] == "America/New_York"
    frame = read_results(tmp_path / "m.results.csv")
    assert frame["start_read"].to_list() == ["2027-01-05T14:00:00-05:00"]
    assert "times without a zone: America/New_York (the HubSpot account's)" in proc.stdout
