"""Meeting writes checked rule by rule as HubSpot applies them: the Scheduler create, the CRM batch create,
an update, and a meeting made by hand (the admin API's stand-in for HubSpot's UI).

Every broken rule becomes one Issue (HubSpot's `errors[]` entry); a request (or batch input) with any issue
is refused whole.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from importer.sandbox.associations import Links, association_issues, links_of
from importer.sandbox.properties import (
    CRM_CREATE_RULES,
    DATE_TIME_PROPERTIES,
    SCHEDULER_RULES,
    UPDATE_RULES,
    InvalidMeeting,
    Issue,
    crm_values,
    has_value,
    parse_instant,
    property_issues,
)
from importer.sandbox.seed import Seed

REQUIRED_FIELDS = ("associations", "emailReminderSchedule", "properties", "timezone")
TIME_UNITS = ("MINUTES", "HOURS", "DAYS", "WEEKS")


@dataclass(frozen=True)
class CalendarEvent:
    """What only a Scheduler create carries: the organizer, the event's zone and its reminders."""

    organizer_user_id: int
    timezone: str
    reminders: list[Any]
    include_invite_description: bool


@dataclass(frozen=True)
class NewMeeting:
    """A checked create: the CRM values to store and the links to make, whichever route asked."""

    properties: dict[str, str]
    links: Links
    calendar: CalendarEvent | None = None
    write_trace_id: str | None = None
    sent: dict[str, Any] | None = None  # the properties as the request wrote them, when not as stored


@dataclass(frozen=True)
class BatchInput:
    """One input of a batch create: the meeting to make, or the issues that refuse it."""

    index: int
    write_trace_id: str | None
    meeting: NewMeeting | None
    issues: list[Issue]


def parse_create(organizer_user_id: str | None, body: object, seed: Seed) -> NewMeeting:
    """Check a Scheduler create request; raise InvalidMeeting listing every broken rule."""
    issues = list(_organizer_issues(organizer_user_id, seed))
    if not isinstance(body, dict):
        issues.append(Issue("The request body must be a JSON object.", "body", "INVALID_JSON"))
        raise InvalidMeeting(issues)
    issues += [
        Issue(f"{name} is required.", name, "REQUIRED") for name in REQUIRED_FIELDS if name not in body
    ]
    issues += _timezone_issues(body.get("timezone")) if "timezone" in body else []
    if "properties" in body:
        issues += property_issues(body["properties"], seed, SCHEDULER_RULES)
    issues += association_issues(body["associations"], seed) if "associations" in body else []
    issues += _reminder_issues(body["emailReminderSchedule"]) if "emailReminderSchedule" in body else []
    if issues:
        raise InvalidMeeting(issues)
    schedule = body["emailReminderSchedule"]
    calendar = CalendarEvent(
        organizer_user_id=int(str(organizer_user_id)),
        timezone=body["timezone"],
        reminders=schedule["reminders"],
        include_invite_description=schedule["shouldIncludeInviteDescription"],
    )
    properties = body["properties"]
    return NewMeeting(crm_values(properties), links_of(body["associations"]), calendar, sent=properties)


def parse_batch_inputs(inputs: list[Any], seed: Seed) -> list[BatchInput]:
    """Check each input of a CRM batch create on its own: refused inputs do not stop the others."""
    return [_batch_input(index, item, seed) for index, item in enumerate(inputs)]


def _batch_input(index: int, item: object, seed: Seed) -> BatchInput:
    where = f"inputs[{index}]"
    if not isinstance(item, dict):
        return BatchInput(index, None, None, [Issue(f"{where} must be an object.", where, "INVALID_TYPE")])
    trace = item.get("objectWriteTraceId")
    trace_id = trace if isinstance(trace, str) else None
    issues = []
    if trace is not None and trace_id is None:
        field = f"{where}.objectWriteTraceId"
        issues.append(Issue(f"{field} must be a string.", field, "INVALID_TYPE"))
    # The spec marks both required; an input that links nothing sends an empty associations array.
    for name in ("properties", "associations"):
        if item.get(name) is None:
            issues.append(Issue(f"{where}.{name} is required.", f"{where}.{name}", "REQUIRED"))
    if item.get("properties") is not None:
        issues += property_issues(item["properties"], seed, CRM_CREATE_RULES, where=f"{where}.properties")
    if item.get("associations") is not None:
        issues += association_issues(item["associations"], seed, where=f"{where}.associations")
    if issues:
        return BatchInput(index, trace_id, None, issues)
    properties, links = crm_values(item["properties"]), links_of(item["associations"])
    return BatchInput(index, trace_id, NewMeeting(properties, links, write_trace_id=trace_id), [])


def parse_update(body: object, current: dict[str, str], seed: Seed) -> dict[str, str]:
    """Check an update body against the meeting's current values; return the changes ("" clears)."""
    if not isinstance(body, dict) or "properties" not in body:
        raise InvalidMeeting([Issue("properties is required.", "properties", "REQUIRED")])
    changes = body["properties"]
    issues = property_issues(changes, seed, UPDATE_RULES, current=current)
    if issues:
        raise InvalidMeeting(issues)
    stored = crm_values(changes)
    return {name: stored.get(name, "") for name in changes}


def parse_manual(body: object, seed: Seed) -> NewMeeting:
    """Check a meeting made by hand: an owner that exists, readable times, real association targets.

    HubSpot's UI lets a rep fill in what they like, so this is looser than any API route: any owner, even
    a deactivated one, and no property is required.
    """
    if not isinstance(body, dict):
        raise InvalidMeeting([Issue("The request body must be a JSON object.", "body", "INVALID_JSON")])
    properties = body.get("properties")
    if not isinstance(properties, dict) or not all(isinstance(v, str) for v in properties.values()):
        raise InvalidMeeting(
            [Issue("properties must be an object of strings.", "properties", "INVALID_TYPE")]
        )
    associations = body.get("associations", [])
    issues = [*_manual_issues(properties, seed), *association_issues(associations, seed)]
    if issues:
        raise InvalidMeeting(issues)
    return NewMeeting(crm_values(properties), links_of(associations))


def _manual_issues(properties: dict[str, str], seed: Seed) -> Iterator[Issue]:
    owner_id = properties.get("hubspot_owner_id", "")
    if not seed.owner_exists(owner_id):
        where = "properties.hubspot_owner_id"
        yield Issue(f"{where} '{owner_id}' is not the id of an owner.", where, "INVALID_OWNER")
    for name in DATE_TIME_PROPERTIES:
        value = properties.get(name)
        if has_value(value) and parse_instant(value, epoch_ms=True) is None:
            where = f"properties.{name}"
            message = (
                f"{where} must be epoch milliseconds or an ISO 8601 date-time with a zone, got '{value}'."
            )
            yield Issue(message, where, "INVALID_DATE_TIME")


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
