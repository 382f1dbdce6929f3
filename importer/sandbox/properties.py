"""Meeting properties as HubSpot checks and stores them: names, types, choices, owners and date-times.

One set of rules, with a `PropertyRules` saying how strict each route is: the Scheduler create wants its six
properties and ISO 8601 times; the CRM routes (batch create, update) take HubSpot's string map, where a
date-time may also be epoch milliseconds and "" means "no value".
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, TypeGuard

from importer.sandbox.seed import Seed

REQUIRED_PROPERTIES = (
    "hs_meeting_title",
    "hs_meeting_start_time",
    "hs_meeting_end_time",
    "hs_timestamp",
    "hs_meeting_outcome",
    "hubspot_owner_id",
)
OPTIONAL_PROPERTIES = (
    "hs_meeting_body",
    "hs_meeting_location",
    "hs_meeting_location_type",
    "hs_attendee_owner_ids",
    "hs_internal_meeting_notes",
    "hs_activity_type",
    "hs_attachment_ids",
)
KNOWN_PROPERTIES = REQUIRED_PROPERTIES + OPTIONAL_PROPERTIES
# HubSpot sets these itself; a write that names one is refused rather than silently ignored.
READ_ONLY_PROPERTIES = ("hs_object_id", "hs_createdate", "hs_lastmodifieddate")
DATE_TIME_PROPERTIES = ("hs_meeting_start_time", "hs_meeting_end_time", "hs_timestamp")
# The Scheduler spec types these as string arrays; the CRM keeps them as one ";"-separated string.
LIST_PROPERTIES = ("hs_attendee_owner_ids", "hs_attachment_ids")
CHOICES = {
    "hs_meeting_location_type": ("ADDRESS", "CUSTOM", "PHONE"),
    "hs_meeting_outcome": ("SCHEDULED", "COMPLETED", "RESCHEDULED", "NO_SHOW", "CANCELED"),
}


@dataclass(frozen=True)
class Issue:
    """One broken rule, shaped like an entry of HubSpot's `errors[]`."""

    message: str
    where: str
    code: str

    def to_json(self) -> dict[str, str]:
        return {"message": self.message, "in": self.where, "code": self.code}


class InvalidMeeting(Exception):
    """Raised when a meeting write breaks at least one rule; HubSpot answers 400 VALIDATION_ERROR."""

    def __init__(self, issues: list[Issue]) -> None:
        self.issues = issues
        first = issues[0].message
        summary = first if len(issues) == 1 else f"{len(issues)} validation errors: {first} (and more)"
        super().__init__(summary)


@dataclass(frozen=True)
class PropertyRules:
    """How strict one route is about the properties it is sent."""

    required: tuple[str, ...]
    arrays: bool  # multi-value properties may come as JSON arrays (the Scheduler spec's form)
    epoch_ms: bool  # date-times may be epoch milliseconds (the CRM API's other documented form)


SCHEDULER_RULES = PropertyRules(required=REQUIRED_PROPERTIES, arrays=True, epoch_ms=False)
# The meetings guide documents hs_timestamp as the one required property of a CRM meeting create.
CRM_CREATE_RULES = PropertyRules(required=("hs_timestamp",), arrays=False, epoch_ms=True)
UPDATE_RULES = PropertyRules(required=(), arrays=False, epoch_ms=True)


def property_issues(
    properties: object,
    seed: Seed,
    rules: PropertyRules,
    *,
    where: str = "properties",
    current: Mapping[str, str] | None = None,
) -> list[Issue]:
    """Every rule `properties` breaks; `current` holds the values an update leaves in place."""
    if not isinstance(properties, dict):
        return [Issue(f"{where} must be an object.", where, "INVALID_TYPE")]
    names = [*_name_issues(properties, where)]
    missing = [
        Issue(f"{where}.{name} is required.", f"{where}.{name}", "REQUIRED")
        for name in rules.required
        if not has_value(properties.get(name))
    ]
    malformed = missing + list(_type_issues(properties, rules, where))
    if malformed:
        # The value checks below assume every value is there and of the right type.
        return names + malformed
    merged = _merged(current or {}, properties)
    return [
        *names,
        *_time_issues(properties, merged, rules, where),
        *_owner_issues(properties, seed, where),
        *_choice_issues(properties, where),
    ]


def has_value(value: object) -> bool:
    """HubSpot treats a missing property, null and "" alike: no value."""
    return value is not None and value != "" and value != []


def _name_issues(properties: dict[str, Any], where: str) -> Iterator[Issue]:
    for name in properties:
        if name in READ_ONLY_PROPERTIES:
            message = f'"{name}" is a read only property; its value cannot be set.'
            yield Issue(message, f"{where}.{name}", "READ_ONLY_VALUE")
        elif name not in KNOWN_PROPERTIES:
            yield Issue(f'Property "{name}" does not exist', f"{where}.{name}", "PROPERTY_DOESNT_EXIST")


def _type_issues(properties: dict[str, Any], rules: PropertyRules, where: str) -> Iterator[Issue]:
    for name, value in properties.items():
        if value is None or isinstance(value, str):
            continue
        if name in LIST_PROPERTIES and rules.arrays:
            if not _is_string_list(value):
                message = f"{where}.{name} must be an array of strings or a ';'-separated string."
                yield Issue(message, f"{where}.{name}", "INVALID_TYPE")
        else:
            yield Issue(f"{where}.{name} must be a string.", f"{where}.{name}", "INVALID_TYPE")


def _merged(current: Mapping[str, str], changes: dict[str, Any]) -> dict[str, Any]:
    merged: dict[str, Any] = dict(current)
    for name, value in changes.items():
        if has_value(value):
            merged[name] = value
        else:
            merged.pop(name, None)
    return merged


def _time_issues(
    properties: dict[str, Any], merged: dict[str, Any], rules: PropertyRules, where: str
) -> Iterator[Issue]:
    form = "epoch milliseconds or an ISO 8601" if rules.epoch_ms else "an ISO 8601"
    for name in DATE_TIME_PROPERTIES:
        value = properties.get(name)
        if has_value(value) and parse_instant(value, epoch_ms=rules.epoch_ms) is None:
            message = f"{where}.{name} must be {form} date-time with a zone (Z or an offset), got '{value}'."
            yield Issue(message, f"{where}.{name}", "INVALID_DATE_TIME")
    # An update may move one end only: the range is checked against the meeting as it would become.
    start = parse_instant(merged.get("hs_meeting_start_time"), epoch_ms=rules.epoch_ms)
    end = parse_instant(merged.get("hs_meeting_end_time"), epoch_ms=rules.epoch_ms)
    touched = "hs_meeting_start_time" in properties or "hs_meeting_end_time" in properties
    if touched and start is not None and end is not None and end <= start:
        message = f"{where}.hs_meeting_end_time must be after {where}.hs_meeting_start_time."
        yield Issue(message, f"{where}.hs_meeting_end_time", "INVALID_TIME_RANGE")


def _owner_issues(properties: dict[str, Any], seed: Seed, where: str) -> Iterator[Issue]:
    owner_id = properties.get("hubspot_owner_id")
    if has_value(owner_id) and seed.active_owner_by_id(str(owner_id)) is None:
        message = f"{where}.hubspot_owner_id '{owner_id}' is not the id of an active owner."
        yield Issue(message, f"{where}.hubspot_owner_id", "INVALID_OWNER")
    for attendee in split_list(properties.get("hs_attendee_owner_ids")):
        if not seed.owner_exists(attendee):
            message = f"{where}.hs_attendee_owner_ids: '{attendee}' is not the id of an owner."
            yield Issue(message, f"{where}.hs_attendee_owner_ids", "INVALID_OWNER")


def _choice_issues(properties: dict[str, Any], where: str) -> Iterator[Issue]:
    for name, allowed in CHOICES.items():
        value = properties.get(name)
        if has_value(value) and value not in allowed:
            message = f"{where}.{name} must be one of {', '.join(allowed)}, got '{value}'."
            yield Issue(message, f"{where}.{name}", "INVALID_OPTION")


def parse_instant(value: object, *, epoch_ms: bool) -> datetime | None:
    """An ISO 8601 date-time that names its zone (or, if allowed, epoch ms digits); anything else is None."""
    if not isinstance(value, str):
        return None
    if epoch_ms and value.isascii() and value.isdigit():
        return datetime.fromtimestamp(int(value) / 1000, UTC)
    if "T" not in value:
        return None
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        return None
    return parsed if parsed.tzinfo is not None else None


def utc_text(moment: datetime) -> str:
    """HubSpot's way of writing an instant: UTC, `Z`, milliseconds only when there are some."""
    utc = moment.astimezone(UTC)
    text = utc.strftime("%Y-%m-%dT%H:%M:%S")
    millis = utc.microsecond // 1000
    return f"{text}.{millis:03d}Z" if millis else f"{text}Z"


def crm_values(properties: Mapping[str, Any]) -> dict[str, str]:
    """The values the CRM keeps for checked properties: lists joined, date-times in UTC, no empty ones."""
    stored: dict[str, str] = {}
    for name, value in properties.items():
        if not has_value(value):
            continue
        if name in LIST_PROPERTIES:
            stored[name] = ";".join(split_list(value))
        elif name in DATE_TIME_PROPERTIES:
            moment = parse_instant(value, epoch_ms=True)
            assert moment is not None  # property_issues has refused anything else
            stored[name] = utc_text(moment)
        else:
            stored[name] = str(value)
    return stored


def split_list(value: object) -> list[str]:
    """The items of a multi-value property sent as an array or as a ';'-separated string."""
    if isinstance(value, str):
        return [part.strip() for part in value.split(";") if part.strip()]
    if _is_string_list(value):
        return list(value)
    return []


def _is_string_list(value: object) -> TypeGuard[list[str]]:
    return isinstance(value, list) and all(isinstance(item, str) for item in value)
