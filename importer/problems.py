"""Row problems: every stable code a row's problem (or warning) can have, and the typed values built
where a problem is found.

A problem is a `Problem` (code, the sheet's column, the value as written, parameters); its message is
rendered from those, once, in the user's language (importer.messages): nothing assembles a sentence
where the problem is found. Codes are HubSpot's import error types where one fits (the Imports API's
`errorType` values, the names HubSpot's own import screen shows) and the importer's own, in the same
style, for the rest. The README's table lists every code; `tests/test_problems.py` keeps the two, and the
Japanese catalog, in step.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Union

from importer.messages import Language, translate
from importer.models import RowOutcome, RowStatus

CODE_SEPARATOR = ";"
"""Between the codes of the `error_code` column, one per problem, in the order of `error`."""
MESSAGE_SEPARATOR = "; "


@dataclass(frozen=True, slots=True)
class Code:
    """A stable problem code, its English message template (the gettext msgid) and what it means.

    The template names its fields: `column` (the sheet's header), `value` (the cell as written) and the
    code's parameters."""

    name: str
    template: str
    description: str
    hubspot: bool = False  # one of HubSpot's import error types

    def __str__(self) -> str:
        return self.name


@dataclass(frozen=True, slots=True)
class Text:
    """A message that is not a row problem (a part of one, a stop reason), rendered by language too."""

    template: str
    params: Mapping[str, Param] = field(default_factory=dict)

    def render(self, language: Language | None = None) -> str:
        return _fill(translate(self.template, language), self.params, language)


Param = Union[str, int, Text, tuple[Text, ...]]  # noqa: UP007 (a forward reference that `|` cannot take)


@dataclass(frozen=True, slots=True)
class Problem:
    """One problem of one row, as found: rendered into a message only when it is shown."""

    code: Code
    column: str | None = None
    value: str | None = None
    params: Mapping[str, Param] = field(default_factory=dict)

    def render(self, language: Language | None = None) -> str:
        fields: dict[str, Param] = {"column": self.column or "", "value": self.value or "", **self.params}
        return _fill(translate(self.code.template, language, self.code.name), fields, language)

    def named(self, headers: Mapping[str, str]) -> Problem:
        """The problem with its column named as the sheet names it (`owner_email` -> `担当者メール`)."""
        if self.column is None or self.column not in headers:
            return self
        return Problem(self.code, headers[self.column], self.value, self.params)


def _fill(template: str, fields: Mapping[str, Param], language: Language | None) -> str:
    def text(value: Param) -> str:
        if isinstance(value, Text):
            return value.render(language)
        if isinstance(value, tuple):
            return MESSAGE_SEPARATOR.join(part.render(language) for part in value)
        return str(value)

    return template.format_map({name: text(value) for name, value in fields.items()})


def describe(problems: Iterable[Problem]) -> tuple[str | None, str | None]:
    """The `error` and `error_code` cells of a row's problems (None when there are none)."""
    found = list(problems)
    if not found:
        return None, None
    message = MESSAGE_SEPARATOR.join(p.render() for p in found)
    return message, CODE_SEPARATOR.join(p.code.name for p in found)


def outcome(
    status: RowStatus,
    *problems: Problem,
    meeting_id: str | None = None,
    http_status: int | None = None,
    correlation_id: str | None = None,
    attempts: int = 0,
    warning: str | None = None,
) -> RowOutcome:
    """A row's outcome with its problems as `error` and `error_code`."""
    error, codes = describe(problems)
    return RowOutcome(
        status, meeting_id, error, http_status, correlation_id, attempts, warning, error_code=codes
    )


def rendered(notes: Iterable[Problem]) -> list[tuple[str, str]]:
    """Warnings, as `RowOutcome.noted` takes them: (message, code)."""
    return [(note.render(), note.code.name) for note in notes]


_CODES: dict[str, Code] = {}


def _code(name: str, template: str, description: str, *, hubspot: bool = False) -> Code:
    code = Code(name, template, description, hubspot)
    _CODES[name] = code
    return code


def codes() -> list[Code]:
    """Every code, in the order the README's table lists them."""
    return list(_CODES.values())


# --- reading the sheet: a cell's value ---
MISSING_REQUIRED_PROPERTY = _code(
    "MISSING_REQUIRED_PROPERTY", "{column}: is required", "a required cell is empty", hubspot=True
)
COLUMN_TOO_LARGE = _code(
    "COLUMN_TOO_LARGE",
    "{column}: is longer than {limit} characters",
    "a cell is longer than HubSpot takes (the title: 1,000 characters)",
    hubspot=True,
)
COULD_NOT_PARSE_DATE = _code(
    "COULD_NOT_PARSE_DATE",
    "{column}: cannot read '{value}' as a date and time (write e.g. 2026/12/01 14:00,"
    " 2026年12月1日 午後2時, 令和8年12月1日 14:00 or 2026-12-01T14:00:00+09:00)",
    "a start or end cell is not a date and time the importer reads",
    hubspot=True,
)
DATE_ORDER_NEEDED = _code(
    "DATE_ORDER_NEEDED",
    "{column}: '{value}' puts the year last, which reads two ways (1/2 is 2 January or 1 February): set"
    " date_order to MDY (2/13/2027) or DMY (13/02/2027), or write e.g. 2026/12/01 14:00",
    "a start or end cell puts the year last, and no date_order says how to read it",
)
MISSING_TIME_OF_DAY = _code(
    "MISSING_TIME_OF_DAY",
    "{column}: '{value}' has a date but no time of day (write e.g. 2026/12/01 14:00, or give the"
    " time in a {time_column} column)",
    "a start or end cell has a date but no time of day",
)
MISSING_DATE = _code(
    "MISSING_DATE",
    "{column}: '{value}' has a time of day but no date (write e.g. 2026/12/01 14:00, or give the"
    " date in a date column)",
    "a start or end cell has a time of day but no date",
)
DATE_OUTSIDE_ERA = _code(
    "DATE_OUTSIDE_ERA",
    "{column}: '{value}' is not a date of the {era} era ({span})",
    "a Japanese era date outside that era (平成32年)",
)
TIME_IN_DST_GAP = _code(
    "TIME_IN_DST_GAP",
    "{column}: '{value}' does not exist in {zone} (the clocks skip it when daylight saving time starts)",
    "a local time the clocks skip when daylight saving time starts",
)
OUTSIDE_VALID_TIME_RANGE = _code(
    "OUTSIDE_VALID_TIME_RANGE",
    "{column}: is outside the years {first} to {last}",
    "a start or end before 1900 or after 2199",
    hubspot=True,
)
MISSING_END_TIME = _code(
    "MISSING_END_TIME",
    "{column}: needs an end time or duration_minutes",
    "the row gives neither an end nor a duration",
)
END_BEFORE_START = _code(
    "END_BEFORE_START", "{column}: must be after start", "the end is not after the start"
)
AMBIGUOUS_LOCAL_TIME = _code(
    "AMBIGUOUS_LOCAL_TIME",
    "{column}: '{value}' occurs twice in {zone} (daylight saving time ends); took the first, {utc}Z",
    "warning: a local time that happens twice when daylight saving time ends; the first is taken",
)
COULD_NOT_PARSE_NUMBER = _code(
    "COULD_NOT_PARSE_NUMBER",
    "{column}: '{value}' is not a number",
    "duration_minutes is not a number",
    hubspot=True,
)
INVALID_NUMBER_SIZE = _code(
    "INVALID_NUMBER_SIZE",
    "{column}: '{value}' must be more than 0 and at most {limit} minutes",
    "duration_minutes is 0 or less, or more than 31 days",
    hubspot=True,
)
UNKNOWN_TIME_ZONE = _code(
    "UNKNOWN_TIME_ZONE",
    "{column}: unknown time zone '{value}' (use an IANA name such as Asia/Tokyo)",
    "a timezone cell that names no time zone",
)
INVALID_EMAIL = _code(
    "INVALID_EMAIL",
    "{column}: '{value}' is not an e-mail address",
    "an owner, attendee or contact cell holds something that is not an e-mail address",
    hubspot=True,
)
INVALID_DOMAIN = _code(
    "INVALID_DOMAIN",
    "{column}: '{value}' is not a domain name",
    "a company_domains item is not a domain name",
    hubspot=True,
)
INVALID_RECORD_ID = _code(
    "INVALID_RECORD_ID",
    "{column}: '{value}' is not a HubSpot record id (digits only)",
    "a deal or ticket id is not a HubSpot record id",
    hubspot=True,
)
INVALID_ENUMERATION_OPTION = _code(
    "INVALID_ENUMERATION_OPTION",
    "{column}: '{value}' is not one of {allowed} (any case)",
    "an outcome or location_type that HubSpot does not have",
    hubspot=True,
)
INVALID_REMINDER = _code(
    "INVALID_REMINDER",
    "{column}: '{value}' is not a reminder like 30m, 2h, 1d or 1w",
    "a reminders cell that is not a reminder schedule",
)
FAILED_VALIDATION = _code(
    "FAILED_VALIDATION",
    "{column}: {detail} (got {value})",
    "the meeting model refused a value the column checks let through (please report it)",
    hubspot=True,
)
# --- reading the sheet: a line that is no row ---
UNTERMINATED_QUOTE = _code(
    "UNTERMINATED_QUOTE",
    'line {line}: unterminated quote (a " opens a cell that is never closed)',
    'a CSV line where a " opens a cell that is never closed',
)
COULD_NOT_PARSE_ROW = _code(
    "COULD_NOT_PARSE_ROW",
    'line {line}: text after a closing quote (in a quoted cell, write " as "")',
    "a CSV line that is not well-formed (text after a closing quote)",
    hubspot=True,
)
INCORRECT_NUMBER_OF_COLUMNS = _code(
    "INCORRECT_NUMBER_OF_COLUMNS",
    "line {line}: {cells} cells where the header has {width} (put quotes around a cell with {separator} in it)",
    "a CSV line with more cells than the header",
    hubspot=True,
)
# --- owners and associations (the mapper) ---
COULD_NOT_FIND_OWNER = _code(
    "COULD_NOT_FIND_OWNER",
    "owner not found: no HubSpot owner has the e-mail {value}",
    "no HubSpot owner has the owner_email",
    hubspot=True,
)
ARCHIVED_OWNER = _code(
    "ARCHIVED_OWNER", "owner is archived in HubSpot: {value}", "the owner is archived in HubSpot"
)
OWNER_WITHOUT_USER = _code(
    "OWNER_WITHOUT_USER",
    "owner has no HubSpot user (deactivated?) and cannot organise meetings: {value}",
    "the owner has no HubSpot user (deactivated), so cannot organise a meeting",
)
ATTENDEE_NOT_AN_OWNER = _code(
    "ATTENDEE_NOT_AN_OWNER",
    "attendee is not an active HubSpot owner: {value}",
    "an attendee e-mail that is no active HubSpot owner's",
)
ASSOCIATION_RECORD_NOT_FOUND = _code(
    "ASSOCIATION_RECORD_NOT_FOUND",
    "{what}: {value}",
    "no HubSpot contact has the e-mail, or no company the domain",
    hubspot=True,
)
UNKNOWN_ASSOCIATION_RECORD_ID = _code(
    "UNKNOWN_ASSOCIATION_RECORD_ID",
    "{what}: {value}",
    "no HubSpot deal or ticket has the id",
    hubspot=True,
)
ASSOCIATION_SKIPPED = _code(
    "ASSOCIATION_SKIPPED",
    "{what} (association skipped): {value}",
    'warning: a contact, company, deal or ticket HubSpot lacks, left out (on_missing_association = "skip")',
)
MULTIPLE_COMPANIES_WITH_THIS_DOMAIN = _code(
    "MULTIPLE_COMPANIES_WITH_THIS_DOMAIN",
    "company domain is ambiguous: {value} belongs to companies {ids}",
    "several HubSpot companies have the domain",
    hubspot=True,
)
# --- what HubSpot has already (the pipeline's checks) ---
DUPLICATE_ROW_CONTENT = _code(
    "DUPLICATE_ROW_CONTENT",
    "same meeting as row {row}",
    "the row repeats an earlier row of the sheet: one meeting, its outcome that row's",
    hubspot=True,
)
RESULTS_MEETING_DELETED = _code(
    "RESULTS_MEETING_DELETED",
    "meeting {meeting_id}, which the results file names, is not in HubSpot (deleted?); clear its"
    " meeting_id and status cells to create it again",
    "the meeting a results file names for the row is no longer in HubSpot",
)
MULTIPLE_EXISTING_MEETINGS = _code(
    "MULTIPLE_EXISTING_MEETINGS",
    "HubSpot already has {count} meetings like this row: {ids}; not created, not guessed",
    "several meetings in HubSpot match the row: none is adopted, none created",
)
MEETING_MATCHES_SEVERAL_ROWS = _code(
    "MEETING_MATCHES_SEVERAL_ROWS",
    "HubSpot's meeting {meeting_id} matches rows {rows} alike; none adopted, none created",
    "one meeting in HubSpot matches several rows: none is adopted, none created",
)
ALREADY_IN_HUBSPOT = _code(
    "ALREADY_IN_HUBSPOT",
    "already in HubSpot (meeting {meeting_id}): not created again",
    "warning: HubSpot had the meeting already; adopted, not created again",
)
SIMILAR_MEETING_EXISTS = _code(
    "SIMILAR_MEETING_EXISTS",
    "HubSpot's meeting {ids} has this owner, start and title but differs; created a new one",
    "warning: a meeting with the row's owner, start and title that differs otherwise; a new one was made",
)
CREATED_EARLIER = _code(
    "CREATED_EARLIER", "created earlier (results file)", "warning: the results file vouches for it"
)
CHANGE_NOT_SENT = _code(
    "CHANGE_NOT_SENT",
    "changed in the sheet since it was sent; HubSpot not updated (on_change = skip)",
    "warning: the row changed, and on_change = skip leaves its meeting as it was",
)
CHANGED_COLUMNS = _code(
    "CHANGED_COLUMNS", "changed: {fields}", "warning: what an update changed (or, in a plan, would)"
)
NOT_UPDATABLE = _code(
    "NOT_UPDATABLE",
    "not changed in HubSpot (a CRM update cannot): {fields}",
    "warning: changes a CRM update cannot make (organizer, reminders, time zone)",
)
ONLY_NOT_UPDATABLE = _code(
    "ONLY_NOT_UPDATABLE",
    "changed only in what a CRM update cannot change: {fields}",
    "warning: the row changed only in what a CRM update cannot change; skipped",
)
# --- sending ---
HUBSPOT_REFUSED = _code(
    "HUBSPOT_REFUSED",
    "{detail}",
    "HubSpot refused the create or update (a 400 VALIDATION_ERROR, a 403 on one row...); nothing was created",
)
HUBSPOT_UNAVAILABLE = _code(
    "HUBSPOT_UNAVAILABLE",
    "{detail}",
    "HubSpot turned every retry away (429, 423, 5xx) or could not be reached; nothing was created",
)
MEETING_DELETED = _code(
    "MEETING_DELETED",
    "meeting {meeting_id} is no longer in HubSpot (deleted?); not created again (pass"
    " --recreate-missing to create it anew)",
    "an edited row's meeting was deleted in HubSpot",
)
OUTCOME_UNKNOWN = _code(
    "OUTCOME_UNKNOWN",
    "outcome unknown: {why}; the next run searches HubSpot before sending this row again",
    "in doubt: sent, HubSpot's answer lost, and search has not settled it",
)
FOUND_AFTER_LOST_ANSWER = _code(
    "FOUND_AFTER_LOST_ANSWER",
    "found in HubSpot after an earlier attempt lost its answer",
    "warning: an attempt lost its answer, and search found the meeting it made",
)
RUN_STOPPED = _code(
    "RUN_STOPPED",
    "{reason}",
    "not sent: the run stopped first (a signal, the daily cap, a refused token, HubSpot failing); the next run sends it",
)
