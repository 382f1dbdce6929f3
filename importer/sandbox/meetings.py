"""Validation of a Scheduler "create calendar meeting" request, rule by rule as HubSpot applies them.

Every broken rule becomes one Issue (HubSpot's `errors[]` entry); a request with any issue is refused whole.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import Any, TypeGuard
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from importer.sandbox.seed import Seed

REQUIRED_FIELDS = ("associations", "emailReminderSchedule", "properties", "timezone")
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
DATE_TIME_PROPERTIES = ("hs_meeting_start_time", "hs_meeting_end_time", "hs_timestamp")
# The spec types these as string arrays; HubSpot's CRM also takes its usual ";"-separated string.
LIST_PROPERTIES = ("hs_attendee_owner_ids", "hs_attachment_ids")
CHOICES = {
    "hs_meeting_location_type": ("ADDRESS", "CUSTOM", "PHONE"),
    "hs_meeting_outcome": ("SCHEDULED", "COMPLETED", "RESCHEDULED", "NO_SHOW", "CANCELED"),
}
# HUBSPOT_DEFINED meeting -> object association type ids, and the object type each one must point at.
ASSOCIATION_TARGETS = {200: "contacts", 188: "companies", 212: "deals", 226: "tickets"}
SINGULAR = {"contacts": "contact", "companies": "company", "deals": "deal", "tickets": "ticket"}
ASSOCIATION_CATEGORIES = ("HUBSPOT_DEFINED", "USER_DEFINED", "INTEGRATOR_DEFINED", "WORK")
TIME_UNITS = ("MINUTES", "HOURS", "DAYS", "WEEKS")


@dataclass(frozen=True)
class Issue:
    """One broken rule, shaped like an entry of HubSpot's `errors[]`."""

    message: str
    where: str
    code: str

    def to_json(self) -> dict[str, str]:
        return {"message": self.message, "in": self.where, "code": self.code}


class InvalidMeeting(Exception):
    """Raised when a create request breaks at least one rule; HubSpot answers 400 VALIDATION_ERROR."""

    def __init__(self, issues: list[Issue]) -> None:
        self.issues = issues
        first = issues[0].message
        summary = first if len(issues) == 1 else f"{len(issues)} validation errors: {first} (and more)"
        super().__init__(summary)


@dataclass(frozen=True)
class MeetingDraft:
    """A create request that passed every rule."""

    organizer_user_id: int
    properties: dict[str, Any]
    associations: list[Any]
    timezone: str
    reminders: list[Any]
    include_invite_description: bool
    start: datetime


def parse_create(organizer_user_id: str | None, body: object, seed: Seed) -> MeetingDraft:
    """Check a create request against HubSpot's rules; raise InvalidMeeting listing every broken one."""
    issues = list(_organizer_issues(organizer_user_id, seed))
    if not isinstance(body, dict):
        issues.append(Issue("The request body must be a JSON object.", "body", "INVALID_JSON"))
        raise InvalidMeeting(issues)
    issues += [
        Issue(f"{name} is required.", name, "REQUIRED") for name in REQUIRED_FIELDS if name not in body
    ]
    issues += _timezone_issues(body.get("timezone")) if "timezone" in body else []
    issues += _property_issues(body["properties"], seed) if "properties" in body else []
    issues += _association_issues(body["associations"], seed) if "associations" in body else []
    issues += _reminder_issues(body["emailReminderSchedule"]) if "emailReminderSchedule" in body else []
    if issues:
        raise InvalidMeeting(issues)
    properties = body["properties"]
    schedule = body["emailReminderSchedule"]
    start = _strict_instant(properties["hs_meeting_start_time"])
    assert start is not None  # _time_issues has refused anything else
    return MeetingDraft(
        organizer_user_id=int(str(organizer_user_id)),
        properties=properties,
        associations=body["associations"],
        timezone=body["timezone"],
        reminders=schedule["reminders"],
        include_invite_description=schedule["shouldIncludeInviteDescription"],
        start=start,
    )


def _organizer_issues(raw: str | None, seed: Seed) -> Iterator[Issue]:
    where = "organizerUserId"
    if not raw:
        yield Issue("organizerUserId is required.", where, "REQUIRED")
    elif not (raw.isascii() and raw.isdigit()):
        yield Issue(f"organizerUserId must be an integer, got '{raw}'.", where, "INVALID_INTEGER")
    elif seed.active_owner_by_user_id(int(raw)) is None:
        yield Issue(f"organizerUserId {raw} is not the userId of an active user.", where, "INVALID_USER")


def _timezone_issues(value: object) -> list[Issue]:
    if isinstance(value, str) and value:
        try:
            ZoneInfo(value)
            return []
        except (ZoneInfoNotFoundError, ValueError):
            pass
    return [Issue(f"timezone '{value}' is not a valid IANA time zone name.", "timezone", "INVALID_TIMEZONE")]


def _property_issues(properties: object, seed: Seed) -> list[Issue]:
    if not isinstance(properties, dict):
        return [Issue("properties must be an object.", "properties", "INVALID_TYPE")]
    known = REQUIRED_PROPERTIES + OPTIONAL_PROPERTIES
    unknown = [
        Issue(f'Property "{name}" does not exist', f"properties.{name}", "PROPERTY_DOESNT_EXIST")
        for name in properties
        if name not in known
    ]
    missing = [
        Issue(f"properties.{name} is required.", f"properties.{name}", "REQUIRED")
        for name in REQUIRED_PROPERTIES
        if properties.get(name) in (None, "")
    ]
    malformed = missing + list(_type_issues(properties))
    if malformed:
        # The value checks below assume every required value is there and of the right type.
        return unknown + malformed
    return [
        *unknown,
        *_time_issues(properties),
        *_owner_issues(properties, seed),
        *_choice_issues(properties),
    ]


def _type_issues(properties: dict[str, Any]) -> Iterator[Issue]:
    for name, value in properties.items():
        if name in LIST_PROPERTIES:
            if not isinstance(value, str) and not _is_string_list(value):
                message = f"properties.{name} must be an array of strings or a ';'-separated string."
                yield Issue(message, f"properties.{name}", "INVALID_TYPE")
        elif not isinstance(value, str) and value is not None:
            yield Issue(f"properties.{name} must be a string.", f"properties.{name}", "INVALID_TYPE")


def _time_issues(properties: dict[str, Any]) -> Iterator[Issue]:
    for name in DATE_TIME_PROPERTIES:
        if _strict_instant(properties[name]) is None:
            message = (
                f"properties.{name} must be an ISO 8601 date-time with a zone (Z or an offset), "
                f"got '{properties[name]}'."
            )
            yield Issue(message, f"properties.{name}", "INVALID_DATE_TIME")
    start = _strict_instant(properties["hs_meeting_start_time"])
    end = _strict_instant(properties["hs_meeting_end_time"])
    if start is not None and end is not None and end <= start:
        message = "properties.hs_meeting_end_time must be after properties.hs_meeting_start_time."
        yield Issue(message, "properties.hs_meeting_end_time", "INVALID_TIME_RANGE")


def _owner_issues(properties: dict[str, Any], seed: Seed) -> Iterator[Issue]:
    owner_id = properties["hubspot_owner_id"]
    if seed.active_owner_by_id(owner_id) is None:
        message = f"properties.hubspot_owner_id '{owner_id}' is not the id of an active owner."
        yield Issue(message, "properties.hubspot_owner_id", "INVALID_OWNER")
    for attendee in split_list(properties.get("hs_attendee_owner_ids")):
        if not seed.owner_exists(attendee):
            message = f"properties.hs_attendee_owner_ids: '{attendee}' is not the id of an owner."
            yield Issue(message, "properties.hs_attendee_owner_ids", "INVALID_OWNER")


def _choice_issues(properties: dict[str, Any]) -> Iterator[Issue]:
    for name, allowed in CHOICES.items():
        value = properties.get(name)
        if value is not None and value not in allowed:
            message = f"properties.{name} must be one of {', '.join(allowed)}, got '{value}'."
            yield Issue(message, f"properties.{name}", "INVALID_OPTION")


def _association_issues(associations: object, seed: Seed) -> list[Issue]:
    if not isinstance(associations, list):
        return [Issue("associations must be an array.", "associations", "INVALID_TYPE")]
    return [issue for index, item in enumerate(associations) for issue in _one_association(index, item, seed)]


def _one_association(index: int, item: object, seed: Seed) -> Iterator[Issue]:
    where = f"associations[{index}]"
    target = item.get("to") if isinstance(item, dict) else None
    target_id = target.get("id") if isinstance(target, dict) else None
    if not isinstance(target_id, str | int) or isinstance(target_id, bool) or target_id == "":
        yield Issue(f"{where}.to.id is required.", f"{where}.to.id", "REQUIRED")
    types = item.get("types") if isinstance(item, dict) else None
    if not isinstance(types, list) or not types:
        yield Issue(f"{where}.types must be a non-empty array.", f"{where}.types", "REQUIRED")
        return
    for number, spec in enumerate(types):
        yield from _association_type_issues(f"{where}.types[{number}]", spec, target_id, seed)


def _association_type_issues(where: str, spec: object, target_id: object, seed: Seed) -> Iterator[Issue]:
    category = spec.get("associationCategory") if isinstance(spec, dict) else None
    type_id = spec.get("associationTypeId") if isinstance(spec, dict) else None
    if category not in ASSOCIATION_CATEGORIES:
        message = f"{where}.associationCategory must be one of {', '.join(ASSOCIATION_CATEGORIES)}."
        yield Issue(message, f"{where}.associationCategory", "INVALID_OPTION")
    elif not isinstance(type_id, int) or isinstance(type_id, bool):
        yield Issue(
            f"{where}.associationTypeId must be an integer.", f"{where}.associationTypeId", "INVALID_TYPE"
        )
    elif category != "HUBSPOT_DEFINED" or type_id not in ASSOCIATION_TARGETS:
        message = f"{where}: {category} association type {type_id} does not link a meeting to an object."
        yield Issue(message, f"{where}.associationTypeId", "INVALID_ASSOCIATION_TYPE")
    elif target_id is not None and str(target_id) not in seed.records[ASSOCIATION_TARGETS[type_id]]:
        noun = SINGULAR[ASSOCIATION_TARGETS[type_id]]
        message = f"{where}: association type {type_id} needs a {noun}, and no {noun} has id {target_id}."
        yield Issue(message, f"{where}.associationTypeId", "OBJECT_NOT_FOUND")


def _reminder_issues(schedule: object) -> list[Issue]:
    where = "emailReminderSchedule"
    if not isinstance(schedule, dict):
        return [Issue(f"{where} must be an object.", where, "INVALID_TYPE")]
    issues: list[Issue] = []
    reminders = schedule.get("reminders")
    if not isinstance(reminders, list):
        issues.append(Issue(f"{where}.reminders must be an array.", f"{where}.reminders", "REQUIRED"))
    else:
        issues += [issue for index, item in enumerate(reminders) for issue in _one_reminder(index, item)]
    if not isinstance(schedule.get("shouldIncludeInviteDescription"), bool):
        field = f"{where}.shouldIncludeInviteDescription"
        issues.append(Issue(f"{field} must be a boolean.", field, "REQUIRED"))
    return issues


def _one_reminder(index: int, reminder: object) -> Iterator[Issue]:
    where = f"emailReminderSchedule.reminders[{index}]"
    count = reminder.get("numberOfTimeUnits") if isinstance(reminder, dict) else None
    unit = reminder.get("timeUnit") if isinstance(reminder, dict) else None
    if not isinstance(count, int) or isinstance(count, bool) or count <= 0:
        field = f"{where}.numberOfTimeUnits"
        yield Issue(f"{field} must be a positive integer.", field, "INVALID_INTEGER")
    if unit not in TIME_UNITS:
        field = f"{where}.timeUnit"
        yield Issue(f"{field} must be one of {', '.join(TIME_UNITS)}.", field, "INVALID_OPTION")


def _strict_instant(value: object) -> datetime | None:
    """Parse an ISO 8601 date-time that names its zone; anything else (epoch ms, naive times) is None."""
    if not isinstance(value, str) or "T" not in value:
        return None
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        return None
    return parsed if parsed.tzinfo is not None else None


def split_list(value: object) -> list[str]:
    """The items of a multi-value property sent as an array or as a ';'-separated string."""
    if isinstance(value, str):
        return [part.strip() for part in value.split(";") if part.strip()]
    if _is_string_list(value):
        return list(value)
    return []


def _is_string_list(value: object) -> TypeGuard[list[str]]:
    return isinstance(value, list) and all(isinstance(item, str) for item in value)
