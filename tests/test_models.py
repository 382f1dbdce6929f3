"""The meeting model: validation, HubSpot's create body, the row key and reminder schedules."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest
from pydantic import ValidationError

from importer.models import (
    Meeting,
    Reminder,
    ReminderError,
    RowStatus,
    TimeUnit,
    parse_reminders,
    split_list,
)

START = datetime(2026, 12, 1, 10, 0, tzinfo=UTC)
END = datetime(2026, 12, 1, 11, 0, tzinfo=UTC)
BASE: dict[str, Any] = {
    "title": "Quarterly business review",
    "start": START,
    "end": END,
    "timezone": "America/New_York",
    "owner_email": "emma.wilson@example.com",
}


def meeting(**changes: Any) -> Meeting:
    return Meeting.model_validate({**BASE, **changes})


def errors(**changes: Any) -> list[tuple[str, tuple[int | str, ...], str]]:
    with pytest.raises(ValidationError) as caught:
        meeting(**changes)
    return [(e["type"], e["loc"], e["msg"]) for e in caught.value.errors()]


# --- validation ---


def test_minimal_meeting_takes_the_defaults() -> None:
    m = meeting()
    assert (m.outcome, m.location_type, m.reminders, m.contact_emails) == ("SCHEDULED", None, (), ())


@pytest.mark.parametrize("end", [START, START - timedelta(minutes=1)])
def test_end_must_be_after_start(end: datetime) -> None:
    assert errors(end=end) == [("end", (), "must be after start")]


@pytest.mark.parametrize("field", ["start", "end"])
def test_times_must_carry_a_zone(field: str) -> None:
    naive = datetime(2026, 12, 1, 10, 30)
    assert errors(**{field: naive}) == [("timezone_aware", (field,), "Input should have timezone info")]


def test_times_in_other_offsets_are_the_same_instant() -> None:
    tokyo = timezone(timedelta(hours=9))
    m = meeting(start=START.astimezone(tokyo), end=END.astimezone(tokyo))
    assert m.body_without_ids()["properties"]["hs_meeting_start_time"] == "2026-12-01T10:00:00Z"


@pytest.mark.parametrize(
    ("field", "value", "loc"),
    [
        ("owner_email", "Emma.Wilson@example.com", ("owner_email",)),  # the reader lower-cases first
        ("owner_email", "emma.wilson@example", ("owner_email",)),
        ("owner_email", "emma wilson@example.com", ("owner_email",)),
        ("owner_email", "a" * 250 + "@ex.com", ("owner_email",)),
        ("contact_emails", ("ok@example.com", "not-an-email"), ("contact_emails", 1)),
        ("attendee_emails", ("@example.com",), ("attendee_emails", 0)),
        ("company_domains", ("example",), ("company_domains", 0)),
        ("company_domains", ("https://example.com",), ("company_domains", 0)),
        ("company_domains", ("-bad.example.com",), ("company_domains", 0)),
        ("deal_ids", ("0012345",), ("deal_ids", 0)),
        ("deal_ids", ("1.2E+10",), ("deal_ids", 0)),
        ("ticket_ids", ("123456789012345678901",), ("ticket_ids", 0)),
    ],
)
def test_patterns_reject(field: str, value: Any, loc: tuple[int | str, ...]) -> None:
    (found,) = errors(**{field: value})
    assert found[0] in ("string_pattern_mismatch", "string_too_long")
    assert found[1] == loc


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("owner_email", "o'brien+sales@mail.example.co.jp"),
        ("company_domains", ("sakura-trading.co.jp", "xn--r8jz45g.jp")),
        ("deal_ids", ("1", "12345678901234567890")),
    ],
)
def test_patterns_accept(field: str, value: Any) -> None:
    assert getattr(meeting(**{field: value}), field) == value


def test_enums_take_hubspot_values_only() -> None:
    assert errors(outcome="completed", location_type="ONLINE") == [
        (
            "literal_error",
            ("location_type",),
            "Input should be 'ADDRESS', 'CUSTOM' or 'PHONE'",
        ),
        (
            "literal_error",
            ("outcome",),
            "Input should be 'SCHEDULED', 'COMPLETED', 'RESCHEDULED', 'NO_SHOW' or 'CANCELED'",
        ),
    ]


def test_title_length_limits() -> None:
    assert errors(title="")[0][0] == "string_too_short"
    assert errors(title="x" * 1001)[0][0] == "string_too_long"
    assert meeting(title="x" * 1000).title == "x" * 1000


def test_unknown_fields_are_refused() -> None:
    assert errors(subject="x") == [("extra_forbidden", ("subject",), "Extra inputs are not permitted")]


def test_meeting_is_frozen() -> None:
    with pytest.raises(ValidationError, match="Instance is frozen"):
        meeting().title = "other"


# --- HubSpot body ---


def test_body_of_a_minimal_meeting() -> None:
    assert meeting().body_without_ids() == {
        "properties": {
            "hs_meeting_title": "Quarterly business review",
            "hs_meeting_start_time": "2026-12-01T10:00:00Z",
            "hs_meeting_end_time": "2026-12-01T11:00:00Z",
            "hs_timestamp": "2026-12-01T10:00:00Z",
            "hs_meeting_outcome": "SCHEDULED",
        },
        "timezone": "America/New_York",
        "emailReminderSchedule": {"reminders": [], "shouldIncludeInviteDescription": False},
        "associations": [],
    }


def test_body_with_every_optional_property_and_reminders() -> None:
    tokyo = timezone(timedelta(hours=9))
    full = meeting(
        start=datetime(2026, 12, 1, 19, 0, tzinfo=tokyo),
        end=datetime(2026, 12, 1, 20, 0, 0, 250_000, tzinfo=tokyo),
        location="Northwind HQ",
        location_type="ADDRESS",
        body="Agenda:\n1. Renewal",
        internal_notes="Bring the usage report",
        outcome="COMPLETED",
        reminders=parse_reminders("1d; 30m"),
        contact_emails=("sarah@northwind.com",),
    )
    assert full.body_without_ids(include_invite_description=True) == {
        "properties": {
            "hs_meeting_title": "Quarterly business review",
            "hs_meeting_start_time": "2026-12-01T10:00:00Z",
            "hs_meeting_end_time": "2026-12-01T11:00:00.250Z",
            "hs_timestamp": "2026-12-01T10:00:00Z",
            "hs_meeting_outcome": "COMPLETED",
            "hs_meeting_body": "Agenda:\n1. Renewal",
            "hs_meeting_location": "Northwind HQ",
            "hs_meeting_location_type": "ADDRESS",
            "hs_internal_meeting_notes": "Bring the usage report",
        },
        "timezone": "America/New_York",
        "emailReminderSchedule": {
            "reminders": [
                {"numberOfTimeUnits": 1, "timeUnit": "DAYS"},
                {"numberOfTimeUnits": 30, "timeUnit": "MINUTES"},
            ],
            "shouldIncludeInviteDescription": True,
        },
        "associations": [],
    }


def test_body_omits_only_the_properties_that_are_none() -> None:
    properties = meeting(location="", body="Notes").body_without_ids()["properties"]
    assert properties["hs_meeting_location"] == ""
    assert properties["hs_meeting_body"] == "Notes"
    assert "hs_meeting_location_type" not in properties
    assert "hs_internal_meeting_notes" not in properties


# --- row key ---


def test_row_key_is_stable_and_short_hex() -> None:
    key = meeting().row_key
    assert key == meeting().row_key
    assert len(key) == 24
    assert int(key, 16) >= 0


def test_row_key_ignores_list_order_and_the_instant_spelling() -> None:
    contacts = ("a@northwind.com", "b@northwind.com")
    tokyo = timezone(timedelta(hours=9))
    one = meeting(contact_emails=contacts, deal_ids=("2", "1"))
    other = meeting(
        contact_emails=contacts[::-1],
        deal_ids=("1", "2"),
        start=START.astimezone(tokyo),
        end=END.astimezone(tokyo),
    )
    assert one.row_key == other.row_key


@pytest.mark.parametrize(
    "change",
    [
        {"title": "Quarterly business review (2)"},
        {"start": START - timedelta(minutes=30)},
        {"end": END + timedelta(minutes=1)},
        {"owner_email": "liam.brown@example.com"},
        {"contact_emails": ("a@northwind.com",)},
        {"company_domains": ("northwind.com",)},
        {"deal_ids": ("3100001",)},
        {"ticket_ids": ("4100001",)},
        # Twin rows that differ in anything sent are two meetings.
        {"body": "updated agenda"},
        {"internal_notes": "n"},
        {"location": "Zoom"},
        {"location_type": "PHONE"},
        {"outcome": "COMPLETED"},
        {"reminders": (Reminder(1, TimeUnit.DAYS),)},
        {"attendee_emails": ("liam@example.com",)},
        {"timezone": "Asia/Tokyo"},
    ],
)
def test_row_key_changes_with_identity(change: dict[str, Any]) -> None:
    assert meeting(**change).row_key != meeting().row_key


def test_row_key_does_not_mix_fields() -> None:
    """A separator between fields: one value shifted into the next field is another meeting."""
    one = meeting(contact_emails=("a@x.com",), company_domains=())
    other = meeting(contact_emails=(), company_domains=("a.x.com",))
    assert one.row_key != other.row_key


# --- reminders ---


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("1d; 2h; 30m", ((1, "DAYS"), (2, "HOURS"), (30, "MINUTES"))),
        ("2 hours, 1 week", ((2, "HOURS"), (1, "WEEKS"))),
        ("1日", ((1, "DAYS"),)),
        ("1週間", ((1, "WEEKS"),)),
        ("30分\n2時間", ((30, "MINUTES"), (2, "HOURS"))),
        ("15 MIN, 1 Wk", ((15, "MINUTES"), (1, "WEEKS"))),
        ("1d; 1d; 1 day; 24h", ((1, "DAYS"), (24, "HOURS"))),
        ("9999m", ((9999, "MINUTES"),)),
        ("none", ()),
        ("  None ", ()),
        ("no", ()),
        ("-", ()),
        ("なし", ()),
    ],
)
def test_parse_reminders(text: str, expected: tuple[tuple[int, str], ...]) -> None:
    assert tuple((r.number, str(r.unit)) for r in parse_reminders(text)) == expected


@pytest.mark.parametrize(
    ("text", "bad"),
    [
        ("3 fortnights", "3 fortnights"),
        ("1d; soon; 2h", "soon"),
        ("0m", "0m"),
        ("10000m", "10000m"),
        ("d1", "d1"),
        ("1.5h", "1.5h"),
    ],
)
def test_parse_reminders_names_the_first_bad_item(text: str, bad: str) -> None:
    with pytest.raises(ReminderError) as caught:
        parse_reminders(text)
    assert str(caught.value) == f"'{bad}' is not a reminder like 30m, 2h, 1d or 1w"


def test_reminder_to_hubspot() -> None:
    assert Reminder(2, TimeUnit.HOURS).to_hubspot() == {"numberOfTimeUnits": 2, "timeUnit": "HOURS"}


def test_split_list_trims_dedups_and_keeps_order() -> None:
    assert split_list(" b ; a,b\n c;;\r\n") == ["b", "a", "c"]


def test_row_statuses_are_the_documented_words() -> None:
    assert [str(s) for s in RowStatus] == [
        "valid",
        "invalid",
        "created",
        "updated",
        "skipped",
        "failed",
        "in_doubt",
        "not_sent",
    ]
