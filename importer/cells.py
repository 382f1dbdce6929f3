"""Cell text -> the meeting model's typed values and every cell's problem, a whole column at a time.

Per-row Python is what makes a million-row sheet slow, so all the work that can be done on a column is
done here in polars: trimming, splitting lists, lower-casing e-mails and domains, upper-casing HubSpot's
enums, parsing times and putting them into UTC in the row's zone, and checking every rule the meeting model
enforces, with a message that names the sheet's column and the bad value. The model (pydantic) then checks
the rows that are sent once more; `tests/test_cells.py` keeps both verdicts in step.
"""

from __future__ import annotations

import zoneinfo
from datetime import datetime
from functools import cache
from typing import get_args

import polars as pl

from importer.models import (
    DOMAIN_PATTERN,
    EMAIL_PATTERN,
    ENUM_ALIASES,
    FIELDS,
    MAX_DOMAIN,
    MAX_EMAIL,
    MAX_MINUTES,
    MAX_TITLE,
    OBJECT_ID_PATTERN,
    LocationType,
    Outcome,
    Reminder,
    ReminderError,
    parse_reminders,
)

LIST_SEPARATOR = ";"
"""Separator of the normalised list columns `parse_cells` returns (it cannot occur inside an item)."""
LIST_FIELDS = ("attendee_emails", "contact_emails", "company_domains", "deal_ids", "ticket_ids")

_ZONE_ALIASES = {"jst": "Asia/Tokyo"}
_NAIVE_FORMATS = ("%Y-%m-%d %H:%M:%S%.f", "%Y-%m-%d %H:%M")
_OFFSET_FORMATS = ("%Y-%m-%d %H:%M:%S%.f%z", "%Y-%m-%d %H:%M%z")
_UTC = pl.Datetime("us", "UTC")
MIN_YEAR, MAX_YEAR = 1900, 2199
_TIME_EXAMPLE = "2026-12-01 14:00, 2026/12/01 14:00, 2026年12月1日 14:00 or 2026-12-01T14:00:00+09:00"
_LIST_RULES = {
    "attendee_emails": (EMAIL_PATTERN, MAX_EMAIL, "is not an e-mail address"),
    "contact_emails": (EMAIL_PATTERN, MAX_EMAIL, "is not an e-mail address"),
    "company_domains": (DOMAIN_PATTERN, MAX_DOMAIN, "is not a domain name"),
    "deal_ids": (OBJECT_ID_PATTERN, MAX_DOMAIN, "is not a HubSpot record id (digits only)"),
    "ticket_ids": (OBJECT_ID_PATTERN, MAX_DOMAIN, "is not a HubSpot record id (digits only)"),
}


def parse_cells(
    cells: pl.DataFrame,
    headers: dict[str, str],
    *,
    default_timezone: str,
    default_outcome: str,
    default_reminders: str,
) -> tuple[pl.DataFrame, list[tuple[Reminder, ...]]]:
    """Typed values for `cells` (a text column per mapped field, trimmed, "" as null).

    Returns a frame with the model's fields (lists joined by LIST_SEPARATOR), `_problems` and `_warnings`
    (null when none), `_reminders` (an index into the returned reminder schedules), and the schedules.
    """
    absent = [pl.lit(None, pl.String).alias(f) for f in FIELDS if f not in cells.columns]
    frame = cells.with_columns(absent)
    frame = frame.with_columns(pl.col("timezone").fill_null(default_timezone))
    zones = _zone_map(frame["timezone"].unique().to_list())
    frame = frame.with_columns(
        pl.col("timezone").replace_strict(zones, return_dtype=pl.String).alias("_zone")
    )
    frame = _parse_times(frame, "start")
    frame = _parse_times(frame, "end")
    frame = _bound_years(_duration(frame))
    frame = frame.with_columns(
        pl.col("owner_email").str.to_lowercase(),
        *(_split(f).alias(f) for f in LIST_FIELDS),
        *(_enum(f).alias(f"_{f}") for f in ("location_type", "outcome")),
    )
    frame = frame.with_columns(pl.col("_outcome").fill_null(default_outcome.upper()))
    reminder_index, reminder_problem, schedules = _reminders(frame["reminders"].fill_null(default_reminders))
    frame = frame.with_columns(
        reminder_index.alias("_reminders"), reminder_problem.alias("_reminder_problem")
    )

    column = _Columns(headers)
    problems = [
        *_title_problems(column),
        *_time_problems(column),
        *_duration_problems(column),
        column.problem(
            "timezone",
            pl.col("_zone").is_null(),
            "unknown time zone '{}' (use an IANA name such as Asia/Tokyo)",
        ),
        column.problem("owner_email", pl.col("owner_email").is_null(), "is required", with_value=False),
        column.problem(
            "owner_email",
            ~_fits(pl.col("owner_email"), EMAIL_PATTERN, MAX_EMAIL),
            "'{}' is not an e-mail address",
        ),
        *(_list_problem(column, f) for f in LIST_FIELDS),
        _enum_problem(column, "location_type", get_args(LocationType)),
        _enum_problem(column, "outcome", get_args(Outcome)),
        column.problem(
            "reminders", pl.col("_reminder_problem").is_not_null(), "{}", value="_reminder_problem"
        ),
    ]
    out = frame.select(
        *(pl.col(f) for f in ("title", "location", "body", "internal_notes", "owner_email")),
        pl.col("_start").alias("start"),
        pl.col("_end").alias("end"),
        pl.col("_zone").alias("timezone"),
        *(pl.col(f).list.join(LIST_SEPARATOR).replace("", None) for f in LIST_FIELDS),
        pl.col("_location_type").alias("location_type"),
        pl.col("_outcome").alias("outcome"),
        pl.col("_reminders"),
        _joined(problems).alias("_problems"),
        _joined([_time_warning(column, t) for t in ("start", "end")]).alias("_warnings"),
    )
    return out, schedules


class _Columns:
    """Builds messages that name the sheet's own column for a field (e.g. 開始日時 for start)."""

    def __init__(self, headers: dict[str, str]) -> None:
        self._headers = headers

    def __getitem__(self, field: str) -> str:
        return self._headers.get(field, field)

    def problem(
        self, field: str, condition: pl.Expr, template: str, *, with_value: bool = True, value: str = ""
    ) -> pl.Expr:
        """`<column>: <template>` where `condition` holds; `{}` in the template is the cell's text
        (or the column `value`)."""
        text = f"{self[field]}: {template}"
        message = pl.format(text, pl.col(value or field)) if with_value else pl.lit(text)
        return pl.when(condition).then(message)


def _joined(messages: list[pl.Expr]) -> pl.Expr:
    return pl.concat_str(messages, separator="; ", ignore_nulls=True).replace("", None)


@cache
def _zone_names() -> dict[str, str]:
    """Lower-case name -> IANA name, for the zones both zoneinfo and polars know (zoneinfo also lists
    `Factory` and `localtime`, which polars refuses: one such cell would fail a whole chunk)."""
    probe = pl.Series([datetime(2000, 1, 1)])
    names = {}
    for name in zoneinfo.available_timezones():
        try:
            probe.dt.replace_time_zone(name)
        except pl.exceptions.PolarsError:
            continue
        names[name.casefold()] = name
    names.update(_ZONE_ALIASES)
    return names


def zone_name(text: str) -> str | None:
    """The IANA name for a zone cell or setting (case-insensitive, `JST` allowed), or None if unknown."""
    return _zone_names().get(text.strip().casefold())


def _zone_map(values: list[str | None]) -> dict[str | None, str | None]:
    return {v: zone_name(v) if v else None for v in values}


def normalised_time_text(text: pl.Expr) -> pl.Expr:
    """Rewrite the accepted spellings (`/`, `T`, `Z`, 年月日, 時分, a weekday in brackets) to one form."""
    text = text.str.strip_chars().str.replace_all(r"[（(][^)）]*[)）]", " ")
    for old, new in (("年", "-"), ("月", "-"), ("日", " "), ("時", ":"), ("分", " "), ("秒", " ")):
        text = text.str.replace_all(old, new, literal=True)
    text = text.str.replace_all("：", ":", literal=True).str.replace_all("/", "-", literal=True)
    text = text.str.replace(r"^(\d{4}-\d{1,2}-\d{1,2})[Tt]", "$1 ").str.replace(r"(?i)z$", "+00:00")
    text = text.str.replace_all(r"\s+", " ").str.replace(r"\s+([+-]\d)", "$1").str.strip_chars()
    return text.str.replace(r":$", ":00")


def _parse_times(frame: pl.DataFrame, field: str) -> pl.DataFrame:
    """Add `_<field>` (UTC) and `_<field>_status` (null, unparsable, nonexistent or ambiguous).

    A time with an offset is taken as written; one without is local to the row's zone. A local time in a
    DST gap does not exist (rejected); one in an overlap happens twice (the first is taken, with a warning).
    """
    # Materialised step by step: polars would otherwise redo the text rewriting in every branch below.
    frame = frame.with_columns(normalised_time_text(pl.col(field)).alias("_text"))
    frame = frame.with_columns(
        pl.coalesce(pl.col("_text").str.to_datetime(f, strict=False, time_unit="us") for f in _OFFSET_FORMATS)
        .dt.convert_time_zone("UTC")
        .alias("_offset"),
        pl.coalesce(
            pl.col("_text").str.strptime(pl.Datetime("us"), f, strict=False) for f in _NAIVE_FORMATS
        ).alias("_naive"),
    )
    zones = [z for z in frame["_zone"].unique().to_list() if z is not None]
    frame = frame.with_columns(
        _localise(zones, "earliest").alias("_earliest"), _localise(zones, "latest").alias("_latest")
    )
    status = (
        pl.when(pl.col(field).is_null() | pl.col("_offset").is_not_null())
        .then(None)
        .when(pl.col("_naive").is_null())
        .then(pl.lit("unparsable"))
        .when(pl.col("_zone").is_null())
        .then(None)
        .when(pl.col("_earliest").is_null())
        .then(pl.lit("nonexistent"))
        .when(pl.col("_earliest") != pl.col("_latest"))
        .then(pl.lit("ambiguous"))
    )
    return frame.with_columns(
        pl.coalesce(pl.col("_offset").cast(_UTC), pl.col("_earliest")).alias(f"_{field}"),
        status.alias(f"_{field}_status"),
    ).drop("_text", "_offset", "_naive", "_earliest", "_latest")


def _localise(zones: list[str], ambiguous: str) -> pl.Expr:
    # replace_time_zone takes one zone name, not an expression: one branch per distinct zone in the sheet.
    branches = [
        pl.when(pl.col("_zone") == zone).then(
            pl.col("_naive")
            .dt.replace_time_zone(zone, ambiguous=ambiguous, non_existent="null")  # type: ignore[arg-type]
            .dt.convert_time_zone("UTC")
            .cast(_UTC)
        )
        for zone in zones
    ]
    return pl.coalesce(branches) if branches else pl.lit(None, dtype=_UTC)


def _duration(frame: pl.DataFrame) -> pl.DataFrame:
    """`_minutes` from duration_minutes (a decimal comma allowed); `_end` = end, else start + minutes."""
    minutes = pl.col("duration_minutes").str.replace(",", ".", literal=True).cast(pl.Float64, strict=False)
    frame = frame.with_columns(minutes.alias("_minutes"))
    in_range = (pl.col("_minutes") > 0) & (pl.col("_minutes") <= MAX_MINUTES)
    offset = pl.duration(microseconds=(pl.col("_minutes") * 60_000_000).round().cast(pl.Int64))
    return frame.with_columns(pl.coalesce(pl.col("_end"), pl.when(in_range).then(pl.col("_start") + offset)))


def _bound_years(frame: pl.DataFrame) -> pl.DataFrame:
    """Flag (`_<field>_out`) and drop times outside MIN_YEAR..MAX_YEAR: polars holds years that Python's
    datetime (and HubSpot) cannot, so such a time must make its row invalid, never reach the model."""
    flags = [
        (~pl.col(f"_{f}").dt.year().is_between(MIN_YEAR, MAX_YEAR)).fill_null(False).alias(f"_{f}_out")
        for f in ("start", "end")
    ]
    kept = [pl.when(~pl.col(f"_{f}_out")).then(pl.col(f"_{f}")).alias(f"_{f}") for f in ("start", "end")]
    return frame.with_columns(flags).with_columns(kept)


def _title_problems(column: _Columns) -> list[pl.Expr]:
    title = pl.col("title")
    return [
        column.problem("title", title.is_null(), "is required", with_value=False),
        column.problem(
            "title",
            title.str.len_chars() > MAX_TITLE,
            f"is longer than {MAX_TITLE} characters",
            with_value=False,
        ),
    ]


def _time_problems(column: _Columns) -> list[pl.Expr]:
    problems = [column.problem("start", pl.col("start").is_null(), "is required", with_value=False)]
    for field in ("start", "end"):
        status = pl.col(f"_{field}_status")
        problems.append(
            column.problem(
                field,
                status == "unparsable",
                f"cannot read '{{}}' as a date and time (write e.g. {_TIME_EXAMPLE})",
            )
        )
        problems.append(
            pl.when(status == "nonexistent").then(
                pl.format(
                    f"{column[field]}: '{{}}' does not exist in {{}} (the clocks skip it when daylight saving time starts)",
                    pl.col(field),
                    pl.col("_zone"),
                )
            )
        )
    for field in ("start", "end"):
        problems.append(
            column.problem(
                field,
                pl.col(f"_{field}_out"),
                f"is outside the years {MIN_YEAR} to {MAX_YEAR}",
                with_value=False,
            )
        )
    times_read = pl.col("_start").is_not_null() & pl.col("_end_status").fill_null("").is_in(["", "ambiguous"])
    problems.append(
        column.problem(
            "end",
            times_read & pl.col("end").is_null() & pl.col("duration_minutes").is_null(),
            "needs an end time or duration_minutes",
            with_value=False,
        )
    )
    problems.append(
        column.problem(
            "end", times_read & (pl.col("_end") <= pl.col("_start")), "must be after start", with_value=False
        )
    )
    return problems


def _time_warning(column: _Columns, field: str) -> pl.Expr:
    message = pl.format(
        f"{column[field]}: '{{}}' occurs twice in {{}} (daylight saving time ends); took the first, {{}}Z",
        pl.col(field),
        pl.col("_zone"),
        pl.col(f"_{field}").dt.strftime("%Y-%m-%d %H:%M"),
    )
    return pl.when(pl.col(f"_{field}_status") == "ambiguous").then(message)


def _duration_problems(column: _Columns) -> list[pl.Expr]:
    given, minutes = pl.col("duration_minutes").is_not_null(), pl.col("_minutes")
    return [
        column.problem("duration_minutes", given & minutes.is_null(), "'{}' is not a number"),
        column.problem(
            "duration_minutes",
            given & ((minutes <= 0) | (minutes > MAX_MINUTES)),
            f"'{{}}' must be more than 0 and at most {MAX_MINUTES} minutes",
        ),
    ]


def _split(field: str) -> pl.Expr:
    """Split on `;`, `,` or newlines; trim; drop empties and repeats, keeping the first order."""
    text = pl.col(field)
    if field != "deal_ids" and field != "ticket_ids":
        text = text.str.to_lowercase()
    items = text.str.replace_all(r"[;,\n\r]+", LIST_SEPARATOR).str.split(LIST_SEPARATOR)
    items = items.list.eval(pl.element().str.strip_chars())
    if field == "company_domains":
        # `https://www.example.com/about` -> `example.com`: HubSpot stores bare domains.
        items = items.list.eval(
            pl.element()
            .str.replace(r"^[a-z][a-z0-9+.-]*://", "")
            .str.replace(r"[/:].*$", "")
            .str.replace(r"^www\.", "")
        )
    items = items.list.eval(pl.element().filter(pl.element() != "")).list.unique(maintain_order=True)
    return items.fill_null(pl.lit([], dtype=pl.List(pl.String)))


def _list_problem(column: _Columns, field: str) -> pl.Expr:
    pattern, longest, complaint = _LIST_RULES[field]
    first_bad = (
        pl.col(field).list.eval(pl.element().filter(~_fits(pl.element(), pattern, longest))).list.first()
    )
    return pl.when(first_bad.is_not_null()).then(pl.format(f"{column[field]}: '{{}}' {complaint}", first_bad))


def _fits(text: pl.Expr, pattern: str, longest: int) -> pl.Expr:
    # The model's length caps, checked apart: polars' regex engine has no lookahead to put them in the pattern.
    return text.str.contains(pattern) & (text.str.len_chars() <= longest)


def _enum(field: str) -> pl.Expr:
    return pl.col(field).str.to_uppercase().str.strip_chars().replace(ENUM_ALIASES)


def _enum_problem(column: _Columns, field: str, allowed: tuple[str, ...]) -> pl.Expr:
    bad = pl.col(f"_{field}").is_not_null() & ~pl.col(f"_{field}").is_in(allowed)
    return column.problem(field, bad, f"'{{}}' is not one of {', '.join(allowed)} (any case)")


def _reminders(text: pl.Series) -> tuple[pl.Series, pl.Series, list[tuple[Reminder, ...]]]:
    """Reminder schedules are few and repeat: parse each distinct cell once, index it per row."""
    schedules: list[tuple[Reminder, ...]] = []
    index: dict[str, int | None] = {}
    problems: dict[str, str | None] = {}
    for value in text.unique().to_list():
        try:
            schedules.append(parse_reminders(value))
            index[value], problems[value] = len(schedules) - 1, None
        except ReminderError as exc:
            index[value], problems[value] = None, str(exc)
    return (
        text.replace_strict(index, return_dtype=pl.Int64),
        text.replace_strict(problems, return_dtype=pl.String),
        schedules,
    )
