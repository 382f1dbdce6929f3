"""Cell text -> the meeting model's typed values and every cell's problem, a whole column at a time.

Per-row Python is what makes a million-row sheet slow, so all the work that can be done on a column is
done here in polars: NFKC (full-width digits, letters and punctuation to ASCII, for what is parsed, never for
what is sent), trimming, splitting lists, lower-casing e-mails and domains, HubSpot's enums, parsing times
(Japanese eras, 午前/午後, a date and times in separate columns) and putting them into UTC in the row's
zone, and checking every rule the meeting model enforces, with a message that names the sheet's column and
the bad value. The model (pydantic) then checks the rows that are sent once more; `tests/test_cells.py`
keeps both verdicts in step.
"""

from __future__ import annotations

import unicodedata
import zoneinfo
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, datetime
from functools import cache
from typing import Literal, get_args

import polars as pl

from importer import problems as codes
from importer.messages import N_, Language, active, template_parts
from importer.models import (
    DOMAIN_PATTERN,
    EMAIL_PATTERN,
    ENUM_ALIASES,
    FIELDS,
    LIST_SPLIT,
    MAX_DOMAIN,
    MAX_EMAIL,
    MAX_MINUTES,
    MAX_TITLE,
    OBJECT_ID_PATTERN,
    UNIT_WORDS,
    LocationType,
    Outcome,
    Reminder,
    ReminderError,
    TimeUnit,
    allowed_values,
    parse_reminders,
)

LIST_SEPARATOR = ";"
"""Separator of the normalised list columns `parse_cells` returns (it cannot occur inside an item)."""
LIST_FIELDS = ("attendee_emails", "contact_emails", "company_domains", "deal_ids", "ticket_ids")

_ZONE_ALIASES = {"jst": "Asia/Tokyo"}
_NAIVE_FORMATS = ("%Y-%m-%d %H:%M:%S%.f", "%Y-%m-%d %H:%M")
# The same with `/`, most common first: a cell in one of these is what normalised_time_text would make of it.
_DIRECT_FORMATS = ("%Y-%m-%d %H:%M", "%Y/%m/%d %H:%M", "%Y-%m-%d %H:%M:%S%.f", "%Y/%m/%d %H:%M:%S%.f")
# Two more spellings read as the rewriting would read them, once a pattern vouches for their shape: ISO
# 8601 with seconds and an offset (as tools export it), and 年月日 with a time. A format alone would not
# do for 年月日: strptime takes a space after a colon (`14: 00`), which the rewriting reads otherwise.
_ISO_OFFSET = r"^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}[+-](?:[01][0-9]|2[0-3]):[0-5][0-9]$"
_JAPANESE_DATE = r"^[0-9]{4}年[0-9]{1,2}月[0-9]{1,2}日 *[0-9]{1,2}:[0-9]{2}$"
_UTC = pl.Datetime("us", "UTC")
MIN_YEAR, MAX_YEAR = 1900, 2199
# What normalised_time_text leaves of a time that carries its offset: ±HH:MM after the wall time's last
# digit. Matched from that digit on: a pattern that captured the wall time too cost four times as much.
_OFFSET = r"\d(?P<gap>\s*)(?P<sign>[+-])(?P<hh>[01]\d|2[0-3])(?P<colon>:?)(?P<mm>[0-5]\d)$"
_MERIDIEM = r"(?i)\s*(午前|午後|am|pm)\s*"
_DATE_ONLY = r"^\d{4}-\d{1,2}-\d{1,2}$"
DateOrder = Literal["YMD", "MDY", "DMY"]
"""How a date with the year last is read: never (YMD, the default: 01/02/2027 is 2 January to one team
and 1 February to another), as month/day/year (MDY, 2/13/2027) or as day/month/year (DMY, 13.02.2027)."""
_YEAR_LAST = r"^(\d{1,2})[/.-](\d{1,2})[/.-](\d{4})(\D|$)"
_YEAR_FIRST = {"MDY": "${3}-${1}-${2}${4}", "DMY": "${3}-${2}-${1}${4}"}
_TIME_ONLY = r"^([01]?\d|2[0-3]):[0-5]\d(:[0-5]\d(\.\d+)?)?$"
_ERA = r"^(?P<era>令和|平成|昭和|[RHSrhs])\s*(?P<year>元|\d{1,2})[-.](?P<month>\d{1,2})[-.](?P<day>\d{1,2})(?P<rest>.*)$"
_ERA_NAMES = {"R": "令和", "H": "平成", "S": "昭和"}
# The year before each era's first (令和1 = 2019), its first day and its last.
_ERAS: dict[str, tuple[int, date, date | None]] = {
    "令和": (2018, date(2019, 5, 1), None),
    "平成": (1988, date(1989, 1, 8), date(2019, 4, 30)),
    "昭和": (1925, date(1926, 12, 25), date(1989, 1, 7)),
}
_LIST_RULES = {
    "attendee_emails": (EMAIL_PATTERN, MAX_EMAIL, codes.INVALID_EMAIL),
    "contact_emails": (EMAIL_PATTERN, MAX_EMAIL, codes.INVALID_EMAIL),
    "company_domains": (DOMAIN_PATTERN, MAX_DOMAIN, codes.INVALID_DOMAIN),
    "deal_ids": (OBJECT_ID_PATTERN, MAX_DOMAIN, codes.INVALID_RECORD_ID),
    "ticket_ids": (OBJECT_ID_PATTERN, MAX_DOMAIN, codes.INVALID_RECORD_ID),
}


def parse_cells(
    cells: pl.DataFrame,
    headers: dict[str, str],
    *,
    default_timezone: str,
    default_outcome: str,
    default_reminders: str,
    date_order: DateOrder = "YMD",
) -> tuple[pl.DataFrame, list[tuple[Reminder, ...]]]:
    """Typed values for `cells` (a text column per mapped field, as read: trimmed here, "" as null);
    `date_order` says how a date with the year last is read (DateOrder).

    Returns a frame with the model's fields (lists joined by LIST_SEPARATOR), `_problems` and `_warnings`
    (messages in the active language, null when none), `_error_codes` and `_warning_codes` (a code per
    problem or warning, in their order), `_start_read` (the start as read, ISO 8601 with the offset of the zone used),
    `_reminders` (an index into the returned reminder schedules), and the schedules.
    """
    absent = [pl.lit(None, pl.String).alias(f) for f in FIELDS if f not in cells.columns]
    frame = cells.with_columns(absent)
    # Parsed, never sent as written: compared after NFKC (`ａ＠ｘ．ｃｏｍ` is a@x.com, `１２３` is 123). The
    # e-mails and lists are trimmed with the rest of their work, once per distinct cell.
    frame = frame.with_columns(
        _trimmed(pl.col(f)) for f in frame.columns if f not in (*_PER_DISTINCT, *_CHOICES)
    )
    choices, schedules = _choices(
        frame.select(_CHOICES),
        default_timezone=default_timezone,
        default_outcome=default_outcome,
        default_reminders=default_reminders,
    )
    distinct = [
        choices,
        per_distinct(frame["owner_email"], _owner_emails),
        *(per_distinct(frame[f], _list_values) for f in LIST_FIELDS),
    ]
    frame = frame.with_columns(column for done in distinct for column in done.get_columns())
    frame = frame.with_columns(nfkc(frame["duration_minutes"]))
    zones = _rows_by_zone(frame["_zone"])  # the start's and the end's
    frame = _start_times(frame, zones, date_order)
    frame = _end_times(frame, zones, date_order)
    frame = _bound_years(_duration(frame))
    frame = frame.with_columns(_start_read(frame))

    out = frame.select(
        *(pl.col(f) for f in ("title", "location", "body", "internal_notes", "owner_email")),
        pl.col("_start").alias("start"),
        pl.col("_end").alias("end"),
        pl.col("_zone").alias("timezone"),
        *(pl.col(f) for f in LIST_FIELDS),
        pl.col("_location_type").alias("location_type"),
        pl.col("_outcome").alias("outcome"),
        pl.col("_reminders"),
    )
    notes = _notes(frame, _checks(tuple(headers.items()), active()))
    return pl.concat([out, notes, frame.select("_start_read")], how="horizontal"), schedules


@dataclass(frozen=True)
class _Notes:
    """Every check, as `_notes` evaluates them: the rows some check flags, and the note columns."""

    flagged: pl.Expr
    columns: list[pl.Expr]


@cache
def _checks(headers: tuple[tuple[str, str], ...], language: Language) -> _Notes:
    """Every check's condition, message and code: expressions only, the same for every chunk of a sheet,
    so built once (a few hundred polars expressions, a fifth of a small chunk's cost)."""
    column = _Columns(dict(headers), language)
    problems = [
        *_title_problems(column),
        *_time_problems(column),
        *_duration_problems(column),
        column.problem("timezone", pl.col("_zone").is_null(), codes.UNKNOWN_TIME_ZONE),
        column.problem("owner_email", pl.col("owner_email").is_null(), codes.MISSING_REQUIRED_PROPERTY),
        column.problem("owner_email", ~pl.col("_owner_email_fits"), codes.INVALID_EMAIL),
        *(_list_problem(column, f) for f in LIST_FIELDS),
        _enum_problem(column, "location_type", get_args(LocationType)),
        _enum_problem(column, "outcome", get_args(Outcome)),
        column.problem(
            "reminders",
            pl.col("_reminder_problem").is_not_null(),
            codes.INVALID_REMINDER,
            value=pl.col("_reminder_problem"),
        ),
    ]
    warnings = [_time_warning(column, t) for t in ("start", "end")]
    return _Notes(
        pl.any_horizontal([c.condition.fill_null(False) for c in (*problems, *warnings)]).arg_true(),
        [
            _joined([p.message for p in problems]).alias("_problems"),
            _joined([p.code for p in problems], codes.CODE_SEPARATOR).alias("_error_codes"),
            _joined([w.message for w in warnings]).alias("_warnings"),
            _joined([w.code for w in warnings], codes.CODE_SEPARATOR).alias("_warning_codes"),
        ],
    )


def _notes(frame: pl.DataFrame, checks: _Notes) -> pl.DataFrame:
    """`_problems`, `_error_codes`, `_warnings` and `_warning_codes`. The checks' conditions are cheap and run on every
    row; their messages, a string built per row, only on the rows some check flags (few, as a rule)."""
    at = frame.select(checks.flagged).to_series()
    notes = frame[at].select(checks.columns)
    empty = pl.repeat(None, frame.height, dtype=pl.String, eager=True)
    return pl.DataFrame([empty.scatter(at, notes[name]).alias(name) for name in notes.columns])


@dataclass(frozen=True)
class _Check:
    """One check over a column: where it fails, and per row its problem's message (null where the check
    passes) and code."""

    condition: pl.Expr
    text: pl.Expr  # the message, for every row

    code_name: str

    @property
    def message(self) -> pl.Expr:
        return pl.when(self.condition).then(self.text)

    @property
    def code(self) -> pl.Expr:
        return pl.when(self.condition).then(pl.lit(self.code_name))


class _Columns:
    """Builds each check's problem: its code, the sheet's own column for a field (e.g. 開始日時 for
    start), the cell as written and the parameters, and from them the message in `language`. Only the
    template is translated, once per check; the cells are filled in by polars, a whole column at once."""

    def __init__(self, headers: dict[str, str], language: Language) -> None:
        self.language = language
        self._headers = dict(headers)
        # A start or end read from the date and time columns is named by both (`日付 + 開始時刻`).
        for field, parts in (("start", ("date", "start_time")), ("end", ("date", "end_time"))):
            if field not in headers and parts[1] in headers:
                self._headers[field] = " + ".join(headers[p] for p in parts if p in headers)

    def __getitem__(self, field: str) -> str:
        return self._headers.get(field, field)

    def problem(
        self,
        field: str,
        condition: pl.Expr,
        code: codes.Code,
        *,
        value: pl.Expr | None = None,
        **params: pl.Expr | str | int,
    ) -> _Check:
        """`code` where `condition` holds; the message's `value` is the field's cell (or `value`)."""
        fields: dict[str, pl.Expr | str | int] = {
            "column": self[field],
            "value": pl.col(field) if value is None else value,
            **params,
        }
        pieces: list[pl.Expr] = []
        for literal, name in template_parts(code.template, self.language, code.name):
            if literal:
                pieces.append(pl.lit(literal))
            if name is not None:
                part = fields[name]
                pieces.append(part.cast(pl.String) if isinstance(part, pl.Expr) else pl.lit(str(part)))
        message = pl.concat_str(pieces) if pieces else pl.lit("")
        return _Check(condition, message, code.name)


def _joined(messages: list[pl.Expr], separator: str = codes.MESSAGE_SEPARATOR) -> pl.Expr:
    return pl.concat_str(messages, separator=separator, ignore_nulls=True).replace("", None)


_DISTINCT = "_distinct"


def per_distinct(cells: pl.Series, work: Callable[[pl.Series], pl.Series | pl.DataFrame]) -> pl.DataFrame:
    """`work` done once per distinct value of `cells`, its outcome given back for every cell, in order.

    `work` takes the distinct values (null among them when a cell is null) and returns a column or a
    frame with a row for each, in their order. Sheets repeat their e-mails, ids, zones, spellings and
    times, so a hash of the column and a join replace the work on every cell.
    """
    values = cells.unique()
    key = values.alias(_DISTINCT)  # apart from `values`, which `work` may change in place (scatter)
    done = work(values)
    done = (done.to_frame() if isinstance(done, pl.Series) else done).with_columns(key)
    keys = cells.alias(_DISTINCT).to_frame()
    return keys.join(done, on=_DISTINCT, how="left", nulls_equal=True, maintain_order="left").drop(_DISTINCT)


_PER_DISTINCT = ("owner_email", *LIST_FIELDS)
_CHOICES = ("timezone", "location_type", "outcome", "reminders")


def _choices(
    cells: pl.DataFrame, *, default_timezone: str, default_outcome: str, default_reminders: str
) -> tuple[pl.DataFrame, list[tuple[Reminder, ...]]]:
    """The _CHOICES cells trimmed (the time zone's filled in), `_zone`, `_location_type`, `_outcome`
    (filled in), `_reminders` and `_reminder_problem`, and the reminder schedules. A sheet has a few of
    these cells, repeated: each distinct row of the four is worked out once, and one join gives every
    row its outcome (trimming the columns and a pass of each's own cost twice as much)."""
    keys = {f: f"{_DISTINCT}_{f}" for f in _CHOICES}
    distinct = cells.unique()
    done = distinct.select(_trimmed(pl.col(f)) for f in _CHOICES)
    done = done.with_columns(pl.col("timezone").fill_null(default_timezone))
    zones = _zone_map(done["timezone"].unique().to_list())
    index, problem, schedules = _reminders(done["reminders"].fill_null(default_reminders))
    done = done.with_columns(
        pl.col("timezone").replace_strict(zones, return_dtype=pl.String).alias("_zone"),
        *(_enum(done[f]).alias(f"_{f}") for f in ("location_type", "outcome")),
        index.alias("_reminders"),
        problem.alias("_reminder_problem"),
        *(distinct[f].alias(key) for f, key in keys.items()),
    ).with_columns(pl.col("_outcome").fill_null(default_outcome.upper()))
    rows = cells.select(pl.col(f).alias(key) for f, key in keys.items())
    joined = rows.join(done, on=list(keys.values()), how="left", nulls_equal=True, maintain_order="left")
    return joined.drop(keys.values()), schedules


def _trimmed(cells: pl.Expr) -> pl.Expr:
    return cells.str.strip_chars().replace("", None)


def _owner_emails(cells: pl.Series) -> pl.DataFrame:
    """The owner's e-mail trimmed and after NFKC, lower-cased, and whether it is one (`_owner_email_fits`)."""
    emails = nfkc(_on(cells, _trimmed(pl.col(cells.name)))).str.to_lowercase().to_frame()
    return emails.with_columns(_fits(pl.col(cells.name), EMAIL_PATTERN, MAX_EMAIL).alias("_owner_email_fits"))


def nfkc(cells: pl.Series) -> pl.Series:
    """NFKC of the cells that hold any non-ASCII character; the others are left as they are, since
    normalising a million ASCII cells (a no-op) would cost a third of a second."""
    text = pl.col(cells.name)
    rows = _on(cells, (text.str.len_bytes() != text.str.len_chars()).arg_true())
    if not rows.len():
        return cells
    return cells.scatter(rows, _on(cells, text.gather(rows).str.normalize("NFKC")))


def _on(cells: pl.Series, expr: pl.Expr) -> pl.Series:
    """`expr` over `cells` (as pl.col of its name) in one polars call: each Series method is a call of
    its own, with a cost of its own (about 0.1 ms), and a chunk makes a few hundred."""
    return cells.to_frame().select(expr).to_series()


@cache
def _zone_names() -> dict[str, str]:
    """Lower-case name -> IANA name, for every zone zoneinfo lists (and `JST`)."""
    names = {name.casefold(): name for name in zoneinfo.available_timezones()}
    names.update(_ZONE_ALIASES)
    return names


@cache
def _polars_knows(name: str) -> bool:
    """Whether polars takes the zone too (zoneinfo also lists `Factory` and `localtime`, which polars
    refuses: one such cell would fail a whole chunk). Asked per zone a sheet names, not for all 600 at
    start-up."""
    try:
        pl.Series([datetime(2000, 1, 1)]).dt.replace_time_zone(name)
    except pl.exceptions.PolarsError:
        return False
    return True


def zone_name(text: str) -> str | None:
    """The IANA name for a zone cell or setting (case-insensitive, `JST` allowed), or None if unknown."""
    name = _zone_names().get(unicodedata.normalize("NFKC", text).strip().casefold())
    return name if name is not None and _polars_knows(name) else None


def _zone_map(values: list[str | None]) -> dict[str | None, str | None]:
    return {v: zone_name(v) if v else None for v in values}


def normalised_time_text(text: pl.Expr) -> pl.Expr:
    """Rewrite the accepted spellings (`/`, `T`, `Z`, `JST`, 年月日, 時分, 時半, a weekday in brackets)
    to `Y-M-D H:MM[:SS]` with any offset after it; apply `nfkc` first (full-width digits, `：`, `（）`).

    Runs of spaces are left: strptime takes any run of whitespace for one, and every regex pass over a
    million cells costs a tenth of a second.
    """
    text = text.str.strip_chars().str.replace_all(r"[（(][^)）]*[)）]", " ")
    # Zone names first, so that the `T` of GMT is gone before every other `T` becomes a space.
    text = text.str.replace(r"(?i)\s*(z|utc|gmt)$", "+00:00").str.replace(r"(?i)\s*jst$", "+09:00")
    # Longest first: 時半 before 時 (leftmost-first matching takes the first pattern that matches).
    literals = {"年": "-", "月": "-", "日": " ", "時半": ":30", "時": ":", "分": " ", "秒": " ", "/": "-"}
    text = text.str.replace_many({**literals, "T": " ", "t": " "}, leftmost=True)
    # `14時` became `14:`: the minutes are 00, whatever follows (a space, an offset or nothing).
    return text.str.replace(r"(\d):([ +-]|$)", "$1:00$2").str.strip_chars()


def _start_times(frame: pl.DataFrame, zones: dict[str, pl.Series], date_order: DateOrder) -> pl.DataFrame:
    """`_start` (UTC) and the columns `_parse_times` adds, from the start cell, else the date and
    start_time cells together."""
    # Columns without a cell are left out of the concatenation (which ignores nulls): most sheets have none.
    parts = [pl.col(f) for f in ("date", "start_time") if not _empty(frame[f])]
    shown = pl.col("start")
    if parts:
        shown = pl.coalesce(shown, pl.concat_str(parts, separator=" ", ignore_nulls=True).replace("", None))
    frame = frame.with_columns(shown.alias("_start_shown"))
    return _parse_times(
        frame.with_columns(_text=_time_text(frame["_start_shown"], date_order)), "start", zones
    )


def _time_text(cells: pl.Series, date_order: DateOrder) -> pl.Series:
    """A time cell's text to read: after NFKC, and a date with the year last rewritten year first, in
    `date_order` (left as written in YMD, to be refused with a hint)."""
    text = nfkc(cells)
    if date_order == "YMD":
        return text
    return text.str.replace(_YEAR_LAST, _YEAR_FIRST[date_order])


def _empty(cells: pl.Series) -> bool:
    return cells.null_count() == cells.len()


def _end_times(frame: pl.DataFrame, zones: dict[str, pl.Series], date_order: DateOrder) -> pl.DataFrame:
    """As `_start_times` for the end: the end cell, else the end_time cell on the date cell's day,
    or on the start's day when there is no date."""
    if _empty(frame["end_time"]):  # most sheets: the end cell it is
        frame = frame.with_columns(pl.col("end").alias("_end_shown"))
        return _parse_times(
            frame.with_columns(_text=_time_text(frame["_end_shown"], date_order)), "end", zones
        )
    from_time = pl.col("end").is_null() & pl.col("end_time").is_not_null()
    date_and_time = pl.concat_str([pl.col("date"), pl.col("end_time")], separator=" ", ignore_nulls=True)
    frame = frame.with_columns(
        pl.when(from_time).then(date_and_time).otherwise(pl.col("end")).alias("_end_shown")
    )
    frame = frame.with_columns(_text=_time_text(frame["_end_shown"], date_order))
    on_start_day = from_time & pl.col("date").is_null()
    if frame.select(on_start_day.any()).item():
        start_day = pl.col("_start_local").dt.strftime("%Y-%m-%d")
        frame = frame.with_columns(
            pl.when(on_start_day)
            .then(pl.concat_str([start_day, pl.col("_text")], separator=" "))
            .otherwise(pl.col("_text"))
            .alias("_text")
        )
    return _parse_times(frame, "end", zones)


def _parse_times(frame: pl.DataFrame, field: str, zones: dict[str, pl.Series]) -> pl.DataFrame:
    """From `_text`: `_<field>` (UTC), `_<field>_status` (null, unparsable, year_last, no_time, no_date, era,
    nonexistent or ambiguous), `_<field>_era`, and `_<field>_local` and `_<field>_offset` (the wall time
    read and the minutes of its written offset).

    A time with an offset is taken as written; one without is local to the row's zone (`zones`: each
    zone's rows). A local time in a DST gap does not exist (rejected); one in an overlap happens twice
    (the first is taken, with a warning).
    """
    frame = frame.with_columns(_read_times(frame["_text"]))
    earliest, latest = _localised(frame["_naive"], zones)
    frame = frame.with_columns(
        (pl.col("_naive") - pl.duration(minutes=pl.col("_offset")))
        .dt.replace_time_zone("UTC")
        .cast(_UTC)
        .alias("_written"),
        earliest.alias("_earliest"),
        latest.alias("_latest"),
    )
    status = (
        pl.when(pl.col("_text").is_null()).then(None).when(pl.col("_naive").is_null()).then(pl.col("_kind"))
    )
    # Most sheets name no era: the check would cost a tenth of the time reading their times.
    eras = frame["_era"].null_count() < frame.height
    if eras:
        status = status.when(_outside_era()).then(pl.lit("era"))
    status = (
        status.when(pl.col("_offset").is_not_null() | pl.col("_zone").is_null())
        .then(None)
        .when(pl.col("_earliest").is_null())
        .then(pl.lit("nonexistent"))
        .when(pl.col("_earliest") != pl.col("_latest"))
        .then(pl.lit("ambiguous"))
    )
    frame = frame.with_columns(status.alias(f"_{field}_status"))
    moment = pl.coalesce(pl.col("_written"), pl.col("_earliest"))
    if eras:
        moment = pl.when(pl.col(f"_{field}_status").eq_missing("era")).then(None).otherwise(moment)
    return frame.with_columns(
        moment.alias(f"_{field}"),
        pl.col("_era").alias(f"_{field}_era"),
        pl.col("_naive").alias(f"_{field}_local"),
        pl.col("_offset").alias(f"_{field}_offset"),
    ).drop("_text", "_offset", "_naive", "_written", "_earliest", "_latest", "_kind", "_era")


def _read_times(text: pl.Series) -> list[pl.Series]:
    """`_naive` (the wall time read), `_offset` (the minutes of a written offset), `_era` and `_kind`
    (why a time could not be read) of each cell. A cell already in a form the formats read, most
    cells, is read as it is, and so is one of the shapes _read_shaped knows; only the others are
    rewritten (normalised_time_text), several regex passes over each."""
    read = _strptime(text, _DIRECT_FORMATS)
    columns = [
        read,
        pl.repeat(None, text.len(), dtype=pl.Int32, eager=True).alias("_offset"),
        pl.repeat(None, text.len(), dtype=pl.String, eager=True).alias("_era"),
        pl.repeat(None, text.len(), dtype=pl.String, eager=True).alias("_kind"),
    ]
    left = pl.DataFrame({"_text": text, "_naive": read}).with_row_index("at")
    left = left.filter(pl.col("_naive").is_null() & pl.col("_text").is_not_null()).drop("_naive")
    shaped = _read_shaped(left)
    if shaped.height:
        columns[:2] = [column.scatter(shaped["at"], shaped[column.name]) for column in columns[:2]]
        left = left.filter(~pl.col("at").is_in(shaped["at"].implode()))
    if left.height:
        spelt = _read_spellings(left.select("_text"))
        columns = [column.scatter(left["at"], spelt[column.name]) for column in columns]
    return columns


def _read_shaped(cells: pl.DataFrame) -> pl.DataFrame:
    """`_naive` and `_offset` of the cells (`at`, `_text`) in ISO 8601 with an offset or in 年月日, as
    the rewriting reads them (tests/test_cells.py checks it), without its regex passes."""
    text, iso = pl.col("_text"), pl.col("_iso")
    hours, minutes = (text.str.slice(at, 2).cast(pl.Int32, strict=False) for at in (-5, -2))
    shaped = cells.with_columns(text.str.contains(_ISO_OFFSET).alias("_iso"))
    shaped = shaped.filter(iso | text.str.contains(_JAPANESE_DATE)).with_columns(
        pl.when(iso)
        .then(_parsed(text.str.head(19), "%Y-%m-%dT%H:%M:%S"))
        .otherwise(_parsed(text, "%Y年%m月%d日 %H:%M"))
        .alias("_naive"),
        pl.when(iso)
        .then(pl.when(text.str.slice(-6, 1) == "-").then(-1).otherwise(1) * (hours * 60 + minutes))
        .alias("_offset"),
    )
    return shaped.select("at", "_naive", "_offset").filter(pl.col("_naive").is_not_null())


def _strptime(text: pl.Series, formats: tuple[str, ...]) -> pl.Series:
    """`_naive`: the cells read in one of `formats` (each `%Y` and a date separator); each tried only on
    the cells the ones before it could not read and that hold its separator (a failed parse costs as
    much as one that works). Without polars' cache of repeated texts, which costs more than it saves
    unless most cells repeat (end cells, half of them repeats: 30% more)."""
    first, *others = formats
    read = _on(text, _parsed(pl.col(text.name), first)).alias("_naive")
    unread = pl.col("read").is_null() & pl.col("text").is_not_null()
    left = pl.DataFrame({"text": text, "read": read}).with_row_index("at").filter(unread).drop("read")
    for form in others:
        tried = left.filter(pl.col("text").str.contains(form[2], literal=True))
        if not tried.height:
            continue
        tried = tried.with_columns(_parsed(pl.col("text"), form).alias("read"))
        done = tried.filter(pl.col("read").is_not_null())
        read = read.scatter(done["at"], done["read"])
        left = left.filter(~pl.col("at").is_in(done["at"].implode()))
    return read


def _parsed(text: pl.Expr, form: str) -> pl.Expr:
    return text.str.strptime(pl.Datetime("us"), form, strict=False, cache=False)


def _read_spellings(frame: pl.DataFrame) -> pl.DataFrame:
    """`_read_times`' columns for cells in any other spelling, from `_text`."""
    # Materialised step by step: polars would otherwise redo the text rewriting in every branch below.
    frame = frame.with_columns(normalised_time_text(pl.col("_text")).alias("_text"))
    frame = _eras(frame)
    given = pl.col("_text").str.contains_any(["午前", "午後", "am", "pm"], ascii_case_insensitive=True)
    meridiem = bool(frame.select(given.any()).item())
    if meridiem:
        frame = frame.with_columns(
            pl.col("_text").str.extract(_MERIDIEM).str.to_lowercase().alias("_meridiem"),
            pl.col("_text").str.replace(_MERIDIEM, " ").str.strip_chars().alias("_text"),
        )
    frame = frame.with_columns(pl.col("_text").str.extract_groups(_OFFSET).alias("_parts"))
    part = pl.col("_parts").struct.field
    tail = part("gap").str.len_chars().cast(pl.Int64) + part("colon").str.len_chars() + 5
    wall = pl.col("_text").str.head(-tail)
    # The wall time does not span lines (as `.*` would not): a line break in it means no offset.
    found = part("sign").is_not_null() & ~wall.str.contains("\n", literal=True)
    minutes = part("hh").cast(pl.Int32) * 60 + part("mm").cast(pl.Int32)
    frame = frame.with_columns(
        pl.when(found).then(wall).otherwise(pl.col("_text")).alias("_wall"),
        pl.when(found).then(pl.when(part("sign") == "-").then(-minutes).otherwise(minutes)).alias("_offset"),
    ).drop("_parts")
    frame = frame.with_columns(_strptime(frame["_wall"], _NAIVE_FORMATS))
    if meridiem:
        frame = _apply_meridiem(frame)
    return frame.with_columns(_unread_kind(frame).alias("_kind"))


def _eras(frame: pl.DataFrame) -> pl.DataFrame:
    """`令和9-1-5 14:00` (as normalised_time_text leaves 令和9年1月5日) or `R9.1.5 14:00` -> `2027-1-5 14:00`,
    the era's name in `_era` to check the date falls inside it. Skipped when no cell names an era."""
    if not frame.select(pl.col("_text").str.contains(r"^[令平昭RHSrhs]").any()).item():
        return frame.with_columns(pl.lit(None, pl.String).alias("_era"))
    parts = pl.col("_text").str.extract_groups(_ERA)
    era = parts.struct.field("era").str.to_uppercase().replace(_ERA_NAMES)
    before_first = {name: first for name, (first, _, _) in _ERAS.items()}
    number = parts.struct.field("year").replace("元", "1").cast(pl.Int32)
    year = era.replace_strict(before_first, return_dtype=pl.Int32) + number
    field = parts.struct.field
    gregorian = pl.format("{}-{}-{}{}", year, field("month"), field("day"), field("rest"))
    return frame.with_columns(pl.coalesce(gregorian, pl.col("_text")).alias("_text"), era.alias("_era"))


def _outside_era() -> pl.Expr:
    day = pl.col("_naive").dt.date()
    first = pl.col("_era").replace_strict(
        {n: f for n, (_, f, _) in _ERAS.items()}, default=None, return_dtype=pl.Date
    )
    last = pl.col("_era").replace_strict(
        {n: e for n, (_, _, e) in _ERAS.items()}, default=None, return_dtype=pl.Date
    )
    return pl.col("_era").is_not_null() & ((day < first) | (day > last).fill_null(False))


def _apply_meridiem(frame: pl.DataFrame) -> pl.DataFrame:
    """午後 (pm) adds 12 hours to 1-11 o'clock and 午前 (am) makes 12 o'clock 0; an hour over 12 with
    either is not a time."""
    hour, meridiem = pl.col("_naive").dt.hour(), pl.col("_meridiem")
    shift = (
        pl.when((meridiem.is_in(["午後", "pm"])) & (hour < 12))
        .then(12)
        .when((meridiem.is_in(["午前", "am"])) & (hour == 12))
        .then(-12)
        .otherwise(0)
    )
    naive = (
        pl.when(meridiem.is_not_null() & (hour > 12))
        .then(None)
        .otherwise(pl.col("_naive") + pl.duration(hours=shift))
    )
    return frame.with_columns(naive.alias("_naive")).drop("_meridiem")


def _unread_kind(frame: pl.DataFrame) -> pl.Expr:
    """Why a time could not be read: a date with the year last, which only a date_order reads
    (year_last), a date alone (no_time), a time alone (no_date) or other text.
    Only worked out when some cell could not be read."""
    unread = pl.col("_naive").is_null() & pl.col("_text").is_not_null()
    if not frame.select(unread.any()).item():
        return pl.lit(None, pl.String)
    wall = pl.col("_wall")
    return (
        # On the text, not the wall: normalised (`/` is `-`), `2-13-2027`'s `-2027` read as an offset.
        pl.when(pl.col("_text").str.contains(_YEAR_LAST))
        .then(pl.lit("year_last"))
        .when(wall.str.contains(_DATE_ONLY))
        .then(pl.lit("no_time"))
        .when(wall.str.contains(_TIME_ONLY))
        .then(pl.lit("no_date"))
        .otherwise(pl.lit("unparsable"))
    )


def _rows_by_zone(zone: pl.Series) -> dict[str, pl.Series]:
    """Each zone's row indices, in one pass."""
    rows = pl.DataFrame({"zone": zone, "at": pl.int_range(zone.len(), dtype=pl.UInt32, eager=True)})
    groups = rows.drop_nulls("zone").group_by("zone").agg("at")
    return dict(zip(groups["zone"].to_list(), groups["at"], strict=True))


def _localised(naive: pl.Series, zones: dict[str, pl.Series]) -> tuple[pl.Series, pl.Series]:
    """Each wall time in its row's zone (`zones`: each zone's rows), in UTC: the earliest and the
    latest instant it can be (the two differ in a fall-back overlap; both null in a spring-forward gap,
    or without a zone)."""
    earliest = pl.repeat(None, naive.len(), dtype=_UTC, eager=True)
    # replace_time_zone takes one zone name, not an expression: each zone's rows are converted apart,
    # at once unless a time is in an overlap or a gap (null), which few are.
    local = pl.col("local")
    odd: list[pl.DataFrame] = []
    for name, at in zones.items():
        done = naive.to_frame("local").select(
            pl.lit(at).alias("at"), local.gather(at), _in_zone(local.gather(at), name, "null").alias("once")
        )
        earliest = earliest.scatter(at, done["once"])
        if done["once"].null_count() > done["local"].null_count():
            odd.append(
                done.filter(pl.col("once").is_null() & local.is_not_null()).select(
                    "at", _in_zone(local, name, "earliest"), _in_zone(local, name, "latest").alias("l")
                )
            )
    latest = earliest.clone()
    for times in odd:
        earliest = earliest.scatter(times["at"], times["local"])
        latest = latest.scatter(times["at"], times["l"])
    return earliest, latest


def _in_zone(local: pl.Expr, zone: str, ambiguous: str) -> pl.Expr:
    moment = local.dt.replace_time_zone(zone, ambiguous=ambiguous, non_existent="null")  # type: ignore[arg-type]
    return moment.dt.convert_time_zone("UTC").cast(_UTC)


def _start_read(frame: pl.DataFrame) -> pl.Expr:
    """`_start_read`: the start as ISO 8601 with the offset it was read in, written or the zone's
    (`2027-01-05T14:00:00+09:00`), so a dry run's results can be checked by eye."""
    offset_s = pl.coalesce(
        pl.col("_start_offset").cast(pl.Int64) * 60,
        (pl.col("_start_local") - pl.col("_start").dt.replace_time_zone(None)).dt.total_seconds(),
    )
    offsets = frame.select(offset_s.unique()).to_series().drop_nulls().to_list()
    texts = {seconds: _offset_text(seconds) for seconds in offsets}
    suffix = offset_s.replace_strict(texts, default=None, return_dtype=pl.String)
    local = pl.col("_start_local").dt.strftime("%Y-%m-%dT%H:%M:%S")
    return pl.when(pl.col("_start").is_not_null()).then(local + suffix).alias("_start_read")


def _offset_text(seconds: int) -> str:
    sign = "-" if seconds < 0 else "+"
    hours, rest = divmod(abs(seconds), 3600)
    minutes, seconds = divmod(rest, 60)
    return f"{sign}{hours:02d}:{minutes:02d}" + (f":{seconds:02d}" if seconds else "")


# `1,440` or `1,000.5`: commas between groups of three digits separate thousands, as Excel shows them (a
# day is `1,440`, never 1.44 minutes); any other single comma is a decimal one (`1,5`, `0,500`).
_THOUSANDS = r"^[1-9]\d{0,2}(,\d{3})+(\.\d+)?$"
_AMOUNT = r"\d[\d.,]*"  # read by _amount: what it cannot read leaves the duration unread
_WORDS = {unit: "|".join(sorted(UNIT_WORDS[unit], key=len, reverse=True)) for unit in UNIT_WORDS}
# A duration written with its units, as Japanese sheets often do: `90分`, `1時間`, `1時間30分`, `1.5h`,
# `1 hour 30 min`; or as a clock, `1:30` (Excel's [h]:mm).
_SPELT_DURATION = (
    rf"(?i)^(?:(?P<hours>{_AMOUNT})\s*(?:{_WORDS[TimeUnit.HOURS]}))?\s*"
    rf"(?:(?P<minutes>{_AMOUNT})\s*(?:{_WORDS[TimeUnit.MINUTES]}))?$"
)
_CLOCK_DURATION = r"^(?P<hours>\d{1,3}):(?P<minutes>[0-5]\d)(?::(?P<seconds>[0-5]\d))?$"


def _duration(frame: pl.DataFrame) -> pl.DataFrame:
    """`_minutes` from duration_minutes: a number of minutes (thousands separators and a decimal comma
    allowed), or hours and minutes with their units, or a clock (`_spelt_minutes`); `_end` = end, else
    start + minutes."""
    cells = frame["duration_minutes"]
    minutes = _spelt_minutes(cells, _on(cells, _amount(pl.col("duration_minutes"))))
    frame = frame.with_columns(minutes.alias("_minutes"))
    in_range = (pl.col("_minutes") > 0) & (pl.col("_minutes") <= MAX_MINUTES)
    offset = pl.duration(microseconds=(pl.col("_minutes") * 60_000_000).round().cast(pl.Int64))
    return frame.with_columns(pl.coalesce(pl.col("_end"), pl.when(in_range).then(pl.col("_start") + offset)))


def _amount(text: pl.Expr) -> pl.Expr:
    """A number as a sheet writes it (_THOUSANDS, else a decimal comma), or null."""
    number = (
        pl.when(text.str.contains(_THOUSANDS))
        .then(text.str.replace_all(",", "", literal=True))
        .otherwise(text.str.replace(",", ".", literal=True))
    )
    return number.cast(pl.Float64, strict=False)


def _spelt_minutes(cells: pl.Series, minutes: pl.Series) -> pl.Series:
    """`minutes` (the cells read as numbers), with the cells that are no number read with their units or
    as a clock: only those are matched, most sheets have none."""
    left = pl.DataFrame({"text": cells, "read": minutes}).with_row_index("at")
    left = left.filter(pl.col("read").is_null() & pl.col("text").is_not_null())
    if not left.height:
        return minutes

    spelt = pl.col("text").str.extract_groups(_SPELT_DURATION).struct
    clock = pl.col("text").str.extract_groups(_CLOCK_DURATION).struct
    hours, parts = _amount(spelt.field("hours")), _amount(spelt.field("minutes"))
    read = left.select(
        "at",
        pl.coalesce(
            pl.when(hours.is_not_null() | parts.is_not_null()).then(
                hours.fill_null(0) * 60 + parts.fill_null(0)
            ),
            _amount(clock.field("hours")) * 60
            + _amount(clock.field("minutes"))
            + _amount(clock.field("seconds")).fill_null(0) / 60,
        ).alias("read"),
    ).drop_nulls("read")
    return minutes.scatter(read["at"], read["read"])


def _bound_years(frame: pl.DataFrame) -> pl.DataFrame:
    """Flag (`_<field>_out`) and drop times outside MIN_YEAR..MAX_YEAR: polars holds years that Python's
    datetime (and HubSpot) cannot, so such a time must make its row invalid, never reach the model."""
    flags = [
        (~pl.col(f"_{f}").dt.year().is_between(MIN_YEAR, MAX_YEAR)).fill_null(False).alias(f"_{f}_out")
        for f in ("start", "end")
    ]
    kept = [pl.when(~pl.col(f"_{f}_out")).then(pl.col(f"_{f}")).alias(f"_{f}") for f in ("start", "end")]
    return frame.with_columns(flags).with_columns(kept)


def _title_problems(column: _Columns) -> list[_Check]:
    title = pl.col("title")
    return [
        column.problem("title", title.is_null(), codes.MISSING_REQUIRED_PROPERTY),
        column.problem("title", title.str.len_chars() > MAX_TITLE, codes.COLUMN_TOO_LARGE, limit=MAX_TITLE),
    ]


_UNREAD = {
    "unparsable": codes.COULD_NOT_PARSE_DATE,
    "year_last": codes.DATE_ORDER_NEEDED,
    "no_time": codes.MISSING_TIME_OF_DAY,
    "no_date": codes.MISSING_DATE,
}


def _time_problems(column: _Columns) -> list[_Check]:
    problems = [column.problem("start", pl.col("_start_shown").is_null(), codes.MISSING_REQUIRED_PROPERTY)]
    for field in ("start", "end"):
        status, shown = pl.col(f"_{field}_status"), pl.col(f"_{field}_shown")
        problems += [
            column.problem(field, status == kind, code, value=shown, time_column=f"{field}_time")
            for kind, code in _UNREAD.items()
        ]
        era = pl.col(f"_{field}_era")
        problems.append(
            column.problem(
                field,
                status == "era",
                codes.DATE_OUTSIDE_ERA,
                value=shown,
                era=era,
                span=era.replace_strict(_era_spans(column.language), default=None),
            )
        )
        problems.append(
            column.problem(
                field, status == "nonexistent", codes.TIME_IN_DST_GAP, value=shown, zone=pl.col("_zone")
            )
        )
    for field in ("start", "end"):
        problems.append(
            column.problem(
                field, pl.col(f"_{field}_out"), codes.OUTSIDE_VALID_TIME_RANGE, first=MIN_YEAR, last=MAX_YEAR
            )
        )
    times_read = pl.col("_start").is_not_null() & pl.col("_end_status").fill_null("").is_in(["", "ambiguous"])
    problems.append(
        column.problem(
            "end",
            times_read & pl.col("_end_shown").is_null() & pl.col("duration_minutes").is_null(),
            codes.MISSING_END_TIME,
        )
    )
    problems.append(
        column.problem("end", times_read & (pl.col("_end") <= pl.col("_start")), codes.END_BEFORE_START)
    )
    return problems


@cache
def _era_spans(language: Language) -> dict[str, str]:
    spans = {}
    for name, (_, first, last) in _ERAS.items():
        span = (
            codes.Text(N_("{first} to {last}"), {"first": first.isoformat(), "last": last.isoformat()})
            if last
            else codes.Text(N_("from {first}"), {"first": first.isoformat()})
        )
        spans[name] = span.render(language)
    return spans


def _time_warning(column: _Columns, field: str) -> _Check:
    return column.problem(
        field,
        pl.col(f"_{field}_status") == "ambiguous",
        codes.AMBIGUOUS_LOCAL_TIME,
        value=pl.col(f"_{field}_shown"),
        zone=pl.col("_zone"),
        utc=pl.col(f"_{field}").dt.strftime("%Y-%m-%d %H:%M"),
    )


def _duration_problems(column: _Columns) -> list[_Check]:
    given, minutes = pl.col("duration_minutes").is_not_null(), pl.col("_minutes")
    return [
        column.problem("duration_minutes", given & minutes.is_null(), codes.COULD_NOT_PARSE_NUMBER),
        column.problem(
            "duration_minutes",
            given & ((minutes <= 0) | (minutes > MAX_MINUTES)),
            codes.INVALID_NUMBER_SIZE,
            limit=MAX_MINUTES,
        ),
    ]


_SEVERAL = r"[;,、；，\n\r]"  # a cell of several items, or one to trim (LIST_SPLIT)
_URL_PARTS = r"[/:]|^www\."  # a domain written as a URL


def _list_values(cells: pl.Series) -> pl.DataFrame:
    """A list cell trimmed and after NFKC, normalised (`_split`, joined by LIST_SEPARATOR, null when
    empty), and its first item that is not a value of its kind (`_<field>_bad`). A cell of one plain
    ASCII item is that item: only the others are split into lists, which costs ten times as much."""
    field = cells.name
    cells = _on(cells, _trimmed(pl.col(field)))
    pattern, longest, _ = _LIST_RULES[field]
    value = pl.col(field)
    text = value if field in ("deal_ids", "ticket_ids") else value.str.to_lowercase()
    several = _SEVERAL + ("|" + _URL_PARTS if field == "company_domains" else "")
    # NFKC (of non-ASCII cells only) may leave spaces at the ends: such cells are split and trimmed too.
    many = text.str.contains(several) | (text.str.len_bytes() != text.str.len_chars())
    done = nfkc(cells).to_frame().select(text, many.alias("_many"))
    done = done.with_columns(pl.when(~_fits(value, pattern, longest)).then(value).alias(f"_{field}_bad"))
    at = done.select(pl.col("_many").arg_true()).to_series()
    done = done.drop("_many")
    if at.len():
        items = done.select(value.gather(at)).select(_split(field))
        first_bad = value.list.eval(pl.element().filter(~_fits(pl.element(), pattern, longest))).list.first()
        split = items.select(value.list.join(LIST_SEPARATOR).replace("", None), first_bad.alias("bad"))
        done = done.with_columns(
            done[field].scatter(at, split[field]), done[f"_{field}_bad"].scatter(at, split["bad"])
        )
    return done


def _split(field: str) -> pl.Expr:
    """Split on LIST_SPLIT (`;`, `,`, `、` or a line break); trim; drop empties and repeats, keeping the
    first order."""
    items = pl.col(field).str.replace_all(LIST_SPLIT, LIST_SEPARATOR).str.split(LIST_SEPARATOR)
    items = items.list.eval(pl.element().str.strip_chars())
    if field == "company_domains":
        # `https://www.example.com/about` -> `example.com`: HubSpot stores bare domains.
        items = items.list.eval(
            pl.element()
            .str.replace(r"^[a-z][a-z0-9+.-]*://", "")
            .str.replace(r"[/:].*$", "")
            .str.replace(r"^www\.", "")
        )
    return items.list.eval(pl.element().filter(pl.element() != "")).list.unique(maintain_order=True)


def _list_problem(column: _Columns, field: str) -> _Check:
    first_bad = pl.col(f"_{field}_bad")
    return column.problem(field, first_bad.is_not_null(), _LIST_RULES[field][2], value=first_bad)


def _fits(text: pl.Expr, pattern: str, longest: int) -> pl.Expr:
    # The model's length caps, checked apart: polars' regex engine has no lookahead to put them in the pattern.
    return text.str.contains(pattern) & (text.str.len_chars() <= longest)


def _enum(cells: pl.Series) -> pl.Series:
    """HubSpot's value for each cell (any case, full-width too, or a Japanese word for it). The values
    are few and repeat, so each distinct cell is worked out once."""
    values = {
        text: ENUM_ALIASES.get(upper, upper)
        for text in cells.unique().drop_nulls().to_list()
        if (upper := unicodedata.normalize("NFKC", text).strip().upper())
    }
    return cells.replace_strict(values, default=None, return_dtype=pl.String)


def _enum_problem(column: _Columns, field: str, allowed: tuple[str, ...]) -> _Check:
    bad = pl.col(f"_{field}").is_not_null() & ~pl.col(f"_{field}").is_in(allowed)
    return column.problem(field, bad, codes.INVALID_ENUMERATION_OPTION, allowed=allowed_values(allowed))


def _reminders(text: pl.Series) -> tuple[pl.Series, pl.Series, list[tuple[Reminder, ...]]]:
    """Reminder schedules are few and repeat: parse each distinct cell once, index it per row; a cell
    that is none gets the part that is no reminder."""
    schedules: list[tuple[Reminder, ...]] = []
    index: dict[str, int | None] = {}
    problems: dict[str, str | None] = {}
    for value in text.unique().to_list():
        try:
            schedules.append(parse_reminders(value))
            index[value], problems[value] = len(schedules) - 1, None
        except ReminderError as exc:
            index[value], problems[value] = None, exc.part
    return (
        text.replace_strict(index, return_dtype=pl.Int64),
        text.replace_strict(problems, return_dtype=pl.String),
        schedules,
    )
