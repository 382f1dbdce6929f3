"""The meeting model: one validated spreadsheet row, and the parts of HubSpot's create body it determines.

The reader turns cell text into typed values (vectorised, in polars); this model checks them. It knows
nothing about HTTP or HubSpot ids: the mapper adds the owner id, organizer user id and associations later.
"""

from __future__ import annotations

import hashlib
import re
import unicodedata
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from functools import cached_property
from typing import Annotated, Any, Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, StringConstraints, model_validator
from pydantic_core import PydanticCustomError

FIELDS = (
    "title",
    "start",
    "end",
    "date",
    "start_time",
    "end_time",
    "duration_minutes",
    "timezone",
    "owner_email",
    "attendee_emails",
    "contact_emails",
    "company_domains",
    "deal_ids",
    "ticket_ids",
    "location",
    "location_type",
    "body",
    "internal_notes",
    "outcome",
    "reminders",
)
"""Every column the importer understands, in the order the README documents them."""

REQUIRED_FIELDS: dict[str, tuple[tuple[str, ...], ...]] = {
    "title": (("title",),),
    "start (or date and start_time)": (("start",), ("date", "start_time")),
    "owner_email": (("owner_email",),),
    "end (or duration_minutes or end_time)": (("end",), ("duration_minutes",), ("end_time",)),
}
"""What a sheet must have, each as the columns that can give it: `end_time` falls on the start's date."""

LIST_SPLIT = r"[;,、；，\n\r]+"
"""What separates the items of a list cell: `;`, `,`, their full-width forms, `、`, or a line break."""
_LIST_SPLIT = re.compile(LIST_SPLIT)
_REMINDER = re.compile(r"^(\d{1,4})\s*(\D+)$")
EMAIL_PATTERN = r"^[a-z0-9.!#$%&'*+/=?^_`{|}~-]+@[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?(?:\.[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?)+$"
DOMAIN_PATTERN = r"^(?:[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?\.)+[a-z]{2,63}$"
OBJECT_ID_PATTERN = r"^[1-9][0-9]{0,19}$"
MAX_TITLE = 1000
MAX_EMAIL = 254  # RFC 5321's limit on a path
MAX_DOMAIN = 253
MAX_MINUTES = 60 * 24 * 31

# Checked by pydantic-core in Rust: no Python runs per value, which keeps a million rows inside seconds.
Email = Annotated[str, StringConstraints(pattern=EMAIL_PATTERN, max_length=MAX_EMAIL)]
Domain = Annotated[str, StringConstraints(pattern=DOMAIN_PATTERN, max_length=MAX_DOMAIN)]
ObjectId = Annotated[str, StringConstraints(pattern=OBJECT_ID_PATTERN)]


class TimeUnit(StrEnum):
    MINUTES = "MINUTES"
    HOURS = "HOURS"
    DAYS = "DAYS"
    WEEKS = "WEEKS"


UNIT_WORDS = {
    TimeUnit.MINUTES: ("m", "min", "mins", "minute", "minutes", "分"),
    TimeUnit.HOURS: ("h", "hr", "hrs", "hour", "hours", "時間"),
    TimeUnit.DAYS: ("d", "day", "days", "日"),
    TimeUnit.WEEKS: ("w", "wk", "wks", "week", "weeks", "週間"),
}
_UNITS = {word: unit for unit, words in UNIT_WORDS.items() for word in words}
_NO_REMINDERS = ("none", "no", "-", "なし")

Outcome = Literal["SCHEDULED", "COMPLETED", "RESCHEDULED", "NO_SHOW", "CANCELED"]
LocationType = Literal["ADDRESS", "CUSTOM", "PHONE"]
ENUM_ALIASES = {
    "NO SHOW": "NO_SHOW",
    "NO-SHOW": "NO_SHOW",
    "NOSHOW": "NO_SHOW",
    "CANCELLED": "CANCELED",
    # What Japanese sheets write for HubSpot's outcome and location type values.
    "予定": "SCHEDULED",
    "完了": "COMPLETED",
    "日程変更": "RESCHEDULED",
    "無断欠席": "NO_SHOW",
    "キャンセル": "CANCELED",
    "住所": "ADDRESS",
    "電話": "PHONE",
    "その他": "CUSTOM",
}
"""Other spellings of the HubSpot enum values `outcome` and `location_type` take (after upper-casing)."""


def allowed_values(values: tuple[str, ...]) -> str:
    """`SCHEDULED/予定, COMPLETED/完了, ...`: HubSpot's values, each with the Japanese words that mean it."""
    words = {value: [value] for value in values}
    for alias, value in ENUM_ALIASES.items():
        if value in words and not alias.isascii():
            words[value].append(alias)
    return ", ".join("/".join(spellings) for spellings in words.values())


@dataclass(frozen=True, slots=True)
class Reminder:
    """One e-mail reminder, in HubSpot's `emailReminderSchedule.reminders[]` terms."""

    number: int
    unit: TimeUnit

    def to_hubspot(self) -> dict[str, Any]:
        return {"numberOfTimeUnits": self.number, "timeUnit": str(self.unit)}


class ReminderError(ValueError):
    """A reminders cell that does not read as a schedule; `part` is the piece that is no reminder."""

    def __init__(self, part: str) -> None:
        super().__init__(f"'{part}' is not a reminder like 30m, 2h, 1d or 1w")
        self.part = part


def parse_reminders(text: str) -> tuple[Reminder, ...]:
    """`1d; 2h; 30m` (also `2 hours, 1 week`, `1日`, `１日、３０分`) -> reminders; `none` -> no reminders."""
    text = unicodedata.normalize("NFKC", text)
    if text.strip().lower() in _NO_REMINDERS:
        return ()
    reminders: dict[Reminder, None] = {}
    for part in split_list(text):
        match = _REMINDER.match(part.lower())
        unit = _UNITS.get(match.group(2)) if match else None
        if match is None or unit is None or int(match.group(1)) == 0:
            raise ReminderError(part)
        reminders.setdefault(Reminder(int(match.group(1)), unit), None)
    return tuple(reminders)


def split_list(text: str) -> list[str]:
    """Split a cell on LIST_SPLIT; trim, drop empties, keep first occurrences in order."""
    seen: dict[str, None] = {}
    for part in _LIST_SPLIT.split(text):
        part = part.strip()
        if part:
            seen.setdefault(part, None)
    return list(seen)


class Meeting(BaseModel):
    """A validated meeting, times in UTC. `row_key` identifies it across runs and re-sorted sheets.

    Fields arrive normalised (trimmed, lists split, e-mails and domains lower-cased): turning cell text
    into these values is the reader's job, done for whole columns at once.
    """

    model_config = ConfigDict(frozen=True, extra="forbid", ignored_types=(cached_property,))

    title: str = Field(min_length=1, max_length=MAX_TITLE)
    start: AwareDatetime
    end: AwareDatetime
    timezone: str
    owner_email: Email
    attendee_emails: tuple[Email, ...] = ()
    contact_emails: tuple[Email, ...] = ()
    company_domains: tuple[Domain, ...] = ()
    deal_ids: tuple[ObjectId, ...] = ()
    ticket_ids: tuple[ObjectId, ...] = ()
    location: str | None = None
    location_type: LocationType | None = None
    body: str | None = None
    internal_notes: str | None = None
    outcome: Outcome = "SCHEDULED"
    reminders: tuple[Reminder, ...] = ()

    @model_validator(mode="after")
    def _end_after_start(self) -> Meeting:
        if self.end <= self.start:
            raise PydanticCustomError("end", "must be after start")
        return self

    @cached_property
    def row_key(self) -> str:
        """Fingerprint of everything that is sent for this meeting, not of its row position: reruns and
        re-sorted sheets recognise it, and two rows that differ in anything sent are two meetings."""
        identity = "\x1f".join(
            [
                self.title,
                str(_epoch_ms(self.start)),
                str(_epoch_ms(self.end)),
                self.timezone,
                self.owner_email,
                ";".join(sorted(self.attendee_emails)),
                ";".join(sorted(self.contact_emails)),
                ";".join(sorted(self.company_domains)),
                ";".join(sorted(self.deal_ids)),
                ";".join(sorted(self.ticket_ids)),
                self.location or "",
                self.location_type or "",
                self.body or "",
                self.internal_notes or "",
                self.outcome,
                ";".join(f"{r.number}{r.unit}" for r in self.reminders),
            ]
        )
        return hashlib.sha256(identity.encode()).hexdigest()[:24]

    def body_without_ids(self, include_invite_description: bool = False) -> dict[str, Any]:
        """HubSpot's create body, minus what the mapper resolves: owner ids and associations."""
        properties = {
            "hs_meeting_title": self.title,
            "hs_meeting_start_time": _iso_z(self.start),
            "hs_meeting_end_time": _iso_z(self.end),
            "hs_timestamp": _iso_z(self.start),
            "hs_meeting_outcome": self.outcome,
        }
        optional = {
            "hs_meeting_body": self.body,
            "hs_meeting_location": self.location,
            "hs_meeting_location_type": self.location_type,
            "hs_internal_meeting_notes": self.internal_notes,
        }
        properties.update({k: v for k, v in optional.items() if v is not None})
        return {
            "properties": properties,
            "timezone": self.timezone,
            "emailReminderSchedule": {
                "reminders": [r.to_hubspot() for r in self.reminders],
                "shouldIncludeInviteDescription": include_invite_description,
            },
            "associations": [],
        }


def _epoch_ms(moment: datetime) -> int:
    return round(moment.timestamp() * 1000)


def _iso_z(moment: datetime) -> str:
    """ISO 8601 in UTC with a `Z`, milliseconds only when present: what HubSpot itself returns."""
    utc = moment.astimezone(UTC)
    text = utc.strftime("%Y-%m-%dT%H:%M:%S")
    if utc.microsecond:
        text += f".{utc.microsecond // 1000:03d}"
    return text + "Z"


class RowStatus(StrEnum):
    """A row's outcome in the results file."""

    VALID = "valid"  # dry run: would be sent
    INVALID = "invalid"  # the sheet's data is wrong; fix the row
    CREATED = "created"  # HubSpot created the meeting in this run
    UPDATED = "updated"  # the row changed since it was sent: its meeting was updated in this run
    SKIPPED = "skipped"  # HubSpot has it already (an earlier run, or made by hand); not sent again
    FAILED = "failed"  # HubSpot refused it, certainly without creating it, or it could not be mapped
    IN_DOUBT = "in_doubt"  # sent, answer lost, not found yet: the next run searches before sending it
    NOT_SENT = "not_sent"  # the run stopped before sending it; the next run will


DONE_STATUSES = frozenset({RowStatus.CREATED, RowStatus.UPDATED, RowStatus.SKIPPED})
"""Statuses of rows whose meeting HubSpot has."""


@dataclass(slots=True)
class RowOutcome:
    """What became of one row: the one type the sender returns and the results columns are made of."""

    status: RowStatus
    meeting_id: str | None = None
    error: str | None = None
    http_status: int | None = None
    correlation_id: str | None = None
    attempts: int = 0
    warning: str | None = None
    error_code: str | None = None  # a stable code per problem of `error`, `;`-separated (importer.problems)
    warning_code: str | None = None  # a code per note of `warning`, in its order, `;`-separated

    def noted(self, *notes: tuple[str, str]) -> RowOutcome:
        """This outcome with `notes` (message, code) added to its warning and warning_code."""
        self.warning = "; ".join(n for n in (self.warning, *(m for m, _ in notes)) if n) or None
        self.warning_code = ";".join(c for c in (self.warning_code, *(c for _, c in notes)) if c) or None
        return self


@dataclass(slots=True)
class RowResult:
    """One input row: its number as Excel shows it, its key when valid, and its outcome."""

    row: int
    row_key: str | None
    outcome: RowOutcome
    start_read: str | None = None  # the start as read, with the offset of the zone used

    @property
    def status(self) -> RowStatus:
        return self.outcome.status


RESULT_COLUMNS = (
    "row",
    "status",
    "meeting_id",
    "meeting_url",
    "start_read",
    "error",
    "error_code",
    "http_status",
    "correlation_id",
    "attempts",
    "row_key",
    "warning",
    "warning_code",
    "portal_id",
)
"""Columns the results file appends to the input's own; ignored when a results file is read as input."""
RESULT_MARKERS = frozenset({"row", "status", "meeting_id", "row_key"})
"""The columns that tell a results file (of this version or an earlier one) from a plain sheet."""
