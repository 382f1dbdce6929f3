"""Reader: a CSV or Excel sheet -> validated meetings, or the row's problems named by column and value.

Two steps. `load_sheet` reads the file as text cells (never letting a parser guess types, so `0012345`
stays `0012345`), finds the header and maps it to the importer's fields. `parse_rows` then turns each row
into a `Meeting`: times are parsed and put into UTC vectorised in polars (per-row Python date parsing is
the slowest part of a million-row sheet), everything else goes through the pydantic model row by row so
one bad row never costs the others.
"""

from __future__ import annotations

import codecs
import csv
import io
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import fastexcel
import polars as pl
from pydantic import ValidationError

from importer.cells import LIST_FIELDS, LIST_SEPARATOR, parse_cells
from importer.errors import InputError
from importer.models import FIELDS, REQUIRED_FIELDS, RESULT_COLUMNS, RESULT_MARKERS, Meeting, Reminder

EXCEL_SUFFIXES = (".xlsx", ".xlsm", ".xls", ".xlsb", ".ods")
_DELIMITERS = ",;\t"
_CHUNK_ROWS = 50_000
# Japanese Excel saves "Shift_JIS" that is really Microsoft's CP932 (a superset with ㈱, ①, 髙...).
_ENCODING_ALIASES = {"shift_jis": "cp932", "shift-jis": "cp932", "sjis": "cp932", "s-jis": "cp932"}


@dataclass(frozen=True)
class Sheet:
    """A sheet's data rows as text, with the row numbers a person sees and the header of each field."""

    path: Path
    frame: pl.DataFrame
    row_numbers: list[int]
    headers: dict[str, str]
    evidence: pl.DataFrame | None = None  # a results file's outcome columns, row for row with `frame`


@dataclass(frozen=True, slots=True)
class ParsedRow:
    """One data row: its meeting when valid (and built), else every problem, each naming column and value."""

    row: int
    meeting: Meeting | None
    error: str | None = None
    warning: str | None = None


def load_sheet(
    path: Path, *, columns: dict[str, str], encoding: str | None = None, sheet: str | None = None
) -> Sheet:
    """Read `path` (CSV or Excel) into text cells and map its header; raises InputError."""
    if not path.is_file():
        raise InputError(f"{path}: no such file")
    if path.suffix.lower() in EXCEL_SUFFIXES:
        frame, first_row = _read_excel(path, sheet)
    else:
        frame, first_row = _read_csv(path, encoding)
    if frame.width == 0:
        raise InputError(f"{path}: the file is empty")
    frame, evidence = _split_results(frame)
    numbers = pl.int_range(first_row, first_row + frame.height, eager=True).alias("_row")
    frame = frame.with_columns(numbers)
    text_cols = [c for c in frame.columns if c != "_row"]
    blank = pl.all_horizontal(pl.col(c).is_null() | (pl.col(c).str.strip_chars() == "") for c in text_cols)
    kept = frame.select(~blank).to_series()
    frame = frame.filter(kept)
    evidence = evidence.filter(kept) if evidence is not None else None
    if frame.height == 0:
        raise InputError(f"{path}: the file has a header but no data rows")
    headers = _map_headers(path, text_cols, columns)
    return Sheet(path, frame.drop("_row"), frame["_row"].to_list(), headers, evidence)


_EVIDENCE = ("status", "meeting_id", "row_key", "portal_id")
_NEUTRALISED = r"^'[=+\-@\t\r]"  # the reporter's `'` before a cell Excel would run as a formula


def _split_results(frame: pl.DataFrame) -> tuple[pl.DataFrame, pl.DataFrame | None]:
    """A results file imported again (after fixing rows in it): its outcome columns are not input but
    evidence of what HubSpot has, and the `'` the reporter put before formula-like cells comes off, so a
    fixed row goes to HubSpot exactly as the user wrote it."""
    if not set(frame.columns) >= RESULT_MARKERS:
        return frame, None
    evidence = frame.select(c for c in _EVIDENCE if c in frame.columns)
    own = frame.drop([c for c in RESULT_COLUMNS if c in frame.columns])
    own = own.with_columns(
        pl.when(pl.col(c).str.contains(_NEUTRALISED)).then(pl.col(c).str.slice(1)).otherwise(pl.col(c))
        for c in own.columns
    )
    return own.rename({c: c[1:] for c in own.columns if re.match(_NEUTRALISED, c)}), evidence


def _read_csv(path: Path, encoding: str | None) -> tuple[pl.DataFrame, int]:
    """The CSV's cells and the row number of its first data row (blank lines above the header count,
    as in Excel, though polars skips them)."""
    raw = path.read_bytes()
    if not raw.removeprefix(codecs.BOM_UTF8).strip():
        raise InputError(f"{path}: the file is empty")
    if b"\x00" in raw[:65536]:
        raise InputError(
            f"{path}: not a CSV or Excel file (binary content); Excel files need an Excel suffix"
        )
    text = _decode(path, raw, encoding)
    separator = _sniff_separator(text)
    blank_lines_above = text[: len(text) - len(text.lstrip("\r\n"))].count("\n")
    try:
        # Polars parses UTF-8 natively; passing bytes (not a str path) keeps CRLF inside quoted cells.
        frame = pl.read_csv(io.BytesIO(text.encode()), separator=separator, infer_schema=False)
        return frame, 2 + blank_lines_above
    except pl.exceptions.PolarsError as exc:
        first_line = str(exc).strip().splitlines()[0]
        raise InputError(f"{path}: not a readable CSV file: {first_line}") from None


def _decode(path: Path, raw: bytes, encoding: str | None) -> str:
    if encoding:
        name = _ENCODING_ALIASES.get(encoding.lower(), encoding)
        try:
            return raw.decode(name).removeprefix("\ufeff")
        except LookupError:
            raise InputError(f"unknown encoding '{encoding}' (try utf-8 or cp932)") from None
        except UnicodeDecodeError as exc:
            line = raw[: exc.start].count(b"\n") + 1
            raise InputError(f"{path}: line {line} is not valid {encoding} text") from None
    for name in ("utf-8-sig", "cp932"):
        try:
            return raw.decode(name)
        except UnicodeDecodeError:
            continue
    raise InputError(f"{path}: neither UTF-8 nor CP932 (Shift_JIS) text; name the encoding with --encoding")


def _sniff_separator(text: str) -> str:
    sample = text[:65536]
    try:
        return csv.Sniffer().sniff(sample, delimiters=_DELIMITERS).delimiter
    except csv.Error:
        header = sample.splitlines()[0] if sample else ""
        counts = {d: header.count(d) for d in _DELIMITERS}
        best = max(counts, key=lambda d: counts[d])
        return best if counts[best] else ","


def _read_excel(path: Path, sheet: str | None) -> tuple[pl.DataFrame, int]:
    try:
        names = fastexcel.read_excel(path).sheet_names
        target = _pick_sheet(path, names, sheet)
        # No header and every cell as text: frame row i is sheet row i + 1, and ids keep their zeros.
        grid = pl.read_excel(
            path,
            sheet_name=target,
            has_header=False,
            drop_empty_rows=False,
            drop_empty_cols=False,
            raise_if_empty=False,
            read_options={"header_row": None, "skip_rows": 0, "dtypes": "string"},
        )
    except fastexcel.FastExcelError as exc:
        first_line = str(exc).strip().splitlines()[0]  # calamine appends a multi-line "Context:" trailer
        raise InputError(f"{path}: not a readable Excel file ({type(exc).__name__}: {first_line})") from None
    filled = grid.select(pl.any_horizontal(pl.all().is_not_null() & (pl.all().str.strip_chars() != "")))
    hits = filled.to_series().arg_true()
    if hits.len() == 0:
        raise InputError(f"{path}: sheet '{target}' is empty")
    header_index = int(hits[0])
    names_row = grid.row(header_index)
    headers = _unique_names([str(v).strip() if v is not None else "" for v in names_row])
    data = grid.slice(header_index + 1)
    data.columns = headers
    return data, header_index + 2


def _pick_sheet(path: Path, names: list[str], sheet: str | None) -> str:
    if sheet is None:
        return names[0]
    if sheet in names:
        return sheet
    if sheet.isdigit() and 1 <= int(sheet) <= len(names):
        return names[int(sheet) - 1]
    raise InputError(f"{path}: no sheet '{sheet}'; the workbook has: {', '.join(names)}")


def _unique_names(names: list[str]) -> list[str]:
    seen: dict[str, int] = {}
    unique = []
    for index, name in enumerate(names):
        name = name or f"column_{index + 1}"
        count = seen.get(name, 0)
        seen[name] = count + 1
        unique.append(name if count == 0 else f"{name}_{count + 1}")
    return unique


def _header_key(text: str) -> str:
    return re.sub(r"[\s\-]+", "_", text.strip().casefold())


def _map_headers(path: Path, headers: list[str], columns: dict[str, str]) -> dict[str, str]:
    """Field -> the sheet's header for it: the config's [columns] first, then the field's own name."""
    wanted = {_header_key(source): field for source, field in columns.items()}
    wanted.update({_header_key(field): field for field in FIELDS if _header_key(field) not in wanted})
    found: dict[str, str] = {}
    for header in headers:
        field = wanted.get(_header_key(header))
        if field is None:
            continue
        if field in found:
            raise InputError(f"{path}: columns '{found[field]}' and '{header}' both map to '{field}'")
        found[field] = header
    missing = [f for f in REQUIRED_FIELDS if f not in found]
    if "end" not in found and "duration_minutes" not in found:
        missing.append("end (or duration_minutes)")
    if missing:
        raise InputError(
            f"{path}: missing column(s) {', '.join(missing)}; the file has: {', '.join(headers)}"
            " (map headers to fields in the config's [columns] table)"
        )
    return found


def parse_rows(
    sheet: Sheet,
    *,
    default_timezone: str,
    default_outcome: str,
    default_reminders: str,
    build_meetings: bool = True,
    chunk_rows: int = _CHUNK_ROWS,
) -> Iterator[list[ParsedRow]]:
    """Check every row of `sheet`, a chunk at a time so memory stays flat on large files.

    Rows without problems become `Meeting`s when `build_meetings` is set; a dry run leaves it off, as the
    column checks already decided every row and a million model objects would only cost time and memory.
    """
    for offset in range(0, sheet.frame.height, chunk_rows):
        chunk = sheet.frame.slice(offset, chunk_rows)
        cells = chunk.select(
            pl.col(header).str.strip_chars().replace("", None).alias(field)
            for field, header in sheet.headers.items()
        )
        typed, schedules = parse_cells(
            cells,
            sheet.headers,
            default_timezone=default_timezone,
            default_outcome=default_outcome,
            default_reminders=default_reminders,
        )
        numbers = sheet.row_numbers[offset : offset + chunk_rows]
        if not build_meetings:
            columns = zip(numbers, typed["_problems"], typed["_warnings"], strict=True)
            yield [ParsedRow(number, None, error, warning) for number, error, warning in columns]
            continue
        yield [
            _build(number, values, schedules, sheet.headers)
            for number, values in zip(numbers, typed.iter_rows(named=True), strict=True)
        ]


def _build(
    number: int, values: dict[str, Any], schedules: list[tuple[Reminder, ...]], headers: dict[str, str]
) -> ParsedRow:
    error, warning = values.pop("_problems"), values.pop("_warnings")
    if error:
        return ParsedRow(number, None, error, warning)
    values["reminders"] = schedules[values.pop("_reminders")]
    for field in LIST_FIELDS:
        items = values[field]
        values[field] = items.split(LIST_SEPARATOR) if items else ()
    try:
        return ParsedRow(number, Meeting.model_validate(values), None, warning)
    except ValidationError as exc:
        # The column checks should have caught this already; the model has the last word all the same.
        return ParsedRow(number, None, _describe(exc, headers), warning)


def _describe(exc: ValidationError, headers: dict[str, str]) -> str:
    problems = []
    for error in exc.errors():
        field = str(error["loc"][0]) if error["loc"] else "row"
        problems.append(f"{headers.get(field, field)}: {error['msg']} (got {error.get('input')!r})")
    return "; ".join(problems)
