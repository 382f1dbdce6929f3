"""What an edited row changes (importer.changes): named as the sheet spells its columns."""

from __future__ import annotations

from typing import Any

from importer import messages
from importer.changes import diff, named, snapshot
from importer.mapper import CreateRequest

HEADERS = {"title": "件名", "start": "開始日時", "owner_email": "担当者メール", "reminders": "リマインダー"}


def request(title: str, owner_user: int = 1, reminders: list[dict[str, Any]] | None = None) -> CreateRequest:
    properties = {
        "hs_meeting_title": title,
        "hs_meeting_start_time": "2027-01-05T05:00:00Z",
        "hs_meeting_end_time": "2027-01-05T05:30:00Z",
        "hs_timestamp": "2027-01-05T05:00:00Z",
        "hs_meeting_outcome": "SCHEDULED",
        "hubspot_owner_id": "8100001",
    }
    body = {
        "properties": properties,
        "timezone": "Asia/Tokyo",
        "emailReminderSchedule": {"reminders": reminders or [], "shouldIncludeInviteDescription": False},
        "associations": [],
    }
    return CreateRequest(owner_user, body, "8100001", 1_799_125_200_000, title)


def test_changed_fields_are_named_by_the_sheets_headers() -> None:
    change = named(diff(snapshot(request("商談")), request("商談（改）", owner_user=2)), HEADERS)
    assert change.fields == ["件名"]
    with messages.using("ja"):
        kept = named(diff(snapshot(request("商談")), request("商談", owner_user=2)), HEADERS)
    assert kept.not_updatable == ["担当者メール（主催者）"] and kept.empty


def test_a_field_without_a_header_keeps_its_name() -> None:
    reminders = [{"number": 1, "unit": "DAYS"}]
    change = named(diff(snapshot(request("a")), request("a", reminders=reminders)), {})
    assert change.not_updatable == ["reminders"] and change.empty
