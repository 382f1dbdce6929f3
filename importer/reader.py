"""Reader: a CSV or Excel sheet -> validated meetings, or the row's problems named by column and value.

Two steps. `load_sheet` reads the file as text cells (never letting a parser guess types, so `0012345`
stays `0012345`), finds the header (below any title or blank rows) and maps it to the importer's fields.
`parse_rows` then checks every row a chunk at a time, a whole column at once in polars (importer.cells),
and yields each chunk's outcome as columns; only the rows that passed become `Meeting`s (pydantic, row by
row, so one bad row never costs the others), and a dry run builds none.
"""

from __future__ import annotations

import codecs
import csv
import io
import itertools
import logging
import re
import unicodedata
from collections import deque
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import fastexcel
import polars as pl
from pydantic import ValidationError

from importer import problems as codes
from importer.cells import LIST_FIELDS, LIST_SEPARATOR, DateOrder, parse_cells
from importer.errors import InputError
from importer.messages import N_, _
from importer.models import FIELDS, REQUIRED_FIELDS, RESULT_COLUMNS, RESULT_MARKERS, Meeting, Reminder

log = logging.getLogger(__name__)
_T = TypeVar("_T")

EXCEL_SUFFIXES = (".xlsx", ".xlsm", ".xls", ".xlsb", ".ods")
HEADER_SEARCH_ROWS = 20
"""The header is looked for in this many rows from the top (title and blank rows above it are common)."""
_DELIMITERS = ",;\t"
# Rows parsed at once. A chunk costs about 30 ms whatever its rows (some 200 polars calls, and the
# GIL held between them), and its working memory is about 1 KB a row: on a 1M-row sheet, 50,000-row
# chunks took 0.4 s more than 75,000, and 100,000 took 50 MB more.
_CHUNK_ROWS = 75_000
# Chunks parsed at once, each on a thread: polars runs most of parse_cells' small steps on one core and
# lets go of the GIL meanwhile, so two at a time take about 70 % of the time one after the other do (on
# two cores). Each more costs a chunk's working memory.
_WORKERS = min(2, pl.thread_pool_size())
_SAMPLE_BYTES = 1 << 16
_WINDOW_BYTES = 1 << 20
# Japanese Excel saves "Shift_JIS" that is really Microsoft's CP932 (a superset with ㈱, ①, 髙...).
_ENCODING_ALIASES = {"shift_jis": "cp932", "shift-jis": "cp932", "sjis": "cp932", "s-jis": "cp932"}
_UTF8_NAMES = ("utf-8", "utf8", "utf-8-sig", "utf_8")
_UTF16_BOMS = (codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)
# What calamine makes of Excel's typed cells, read as text: a date-only cell is that day at midnight, a
# time-only cell that time on day 0 of the workbook's epoch (1900 or 1904).
_EXCEL_DATE_ONLY = r"^(\d{4}-\d{2}-\d{2}) 00:00:00$"
_EXCEL_TIME_ONLY = r"^(?:1899-12-3[01]|1904-01-01) (\d{2}:\d{2}:\d{2})$"
_TIME_FIELDS = ("start", "end", "date", "start_time", "end_time")


@dataclass(frozen=True)
class Sheet:
    """A sheet's data rows as text, with the row numbers a person sees and the header of each field.

    `unmapped` are the headers that map to no field (their cells are not imported); `row_problems` are
    the rows that could not be read as cells at all (a malformed CSV line), by row number.
    """

    path: Path
    frame: pl.DataFrame
    rows: pl.Series  # each row's number as Excel shows it (Int64)
    headers: dict[str, str]
    sheet_name: str | None = None
    other_sheets: list[str] = field(default_factory=list)
    unmapped: list[str] = field(default_factory=list)
    row_problems: dict[int, codes.Problem] = field(default_factory=dict)
    evidence: pl.DataFrame | None = None  # a results file's outcome columns, row for row with `frame`

    @property
    def row_numbers(self) -> list[int]:
        return self.rows.to_list()


@dataclass(frozen=True, slots=True)
class ParsedRow:
    """One data row: its meeting when valid (and built), else every problem, each naming column and value,
    with a code for each (`error_code`, importer.problems).

    `start_read` is the start as read, ISO 8601 with the offset of the zone used
    (`2027-01-05T14:00:00+09:00`), whenever the start could be read, valid row or not.
    """

    row: int
    meeting: Meeting | None
    error: str | None = None
    warning: str | None = None
    start_read: str | None = None
    error_code: str | None = None
    warning_code: str | None = None


@dataclass(frozen=True)
class _Table:
    """What a CSV or Excel reader found: the header's cells, every row below it, and where it starts."""

    header: list[str]
    frame: pl.DataFrame
    header_row: int
    row_problems: dict[int, codes.Problem] = field(default_factory=dict)
    sheet_name: str | None = None
    other_sheets: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class _HeaderFinder:
    """Finds the header among a sheet's top rows: row `header_row` when given, else the first of the
    top HEADER_SEARCH_ROWS rows that has every required column."""

    path: Path
    columns: dict[str, str]
    header_row: int | None

    @property
    def rows_needed(self) -> int:
        return max(HEADER_SEARCH_ROWS, self.header_row or 0)

    def __call__(self, rows: list[list[str]]) -> int:
        """The index of the header in `rows` (the sheet's top rows); raises InputError if none is."""
        if self.header_row is not None:
            if self.header_row > len(rows):
                message = _("{path}: no row {row} (header_row); the sheet has {rows}")
                raise InputError(message.format(path=self.path, row=self.header_row, rows=len(rows)))
            return self.header_row - 1
        mappings = [_map_cells(cells, self.columns) for cells in rows[:HEADER_SEARCH_ROWS]]
        for index, mapping in enumerate(mappings):
            if not mapping.missing:
                return index
        filled = [i for i, cells in enumerate(rows[:HEADER_SEARCH_ROWS]) if any(c.strip() for c in cells)]
        if not filled:
            message = _("{path}: rows 1 to {last} are empty; name the header row with --header-row")
            raise InputError(message.format(path=self.path, last=HEADER_SEARCH_ROWS))
        # None will do: the row most like a header is the one the missing columns are reported against.
        return max(filled, key=lambda i: (len(mappings[i].fields), -i))


def require_file(path: Path) -> None:
    """Raises InputError unless `path` is a file: checked before HubSpot is asked anything too."""
    if not path.is_file():
        raise InputError(_("{path}: no such file").format(path=path))


def load_sheet(
    path: Path,
    *,
    columns: dict[str, str],
    encoding: str | None = None,
    sheet: str | None = None,
    header_row: int | None = None,
    key_column: str | None = None,
) -> Sheet:
    """Read `path` (CSV or Excel) into text cells, find its header and map it; raises InputError.

    The header is row `header_row` (as Excel numbers rows) when given, else the first of the top
    HEADER_SEARCH_ROWS rows that has every required column. Columns that map to no field are logged.
    """
    require_file(path)
    find = _HeaderFinder(path, columns, header_row)
    excel = path.suffix.lower() in EXCEL_SUFFIXES
    table = _read_excel(path, sheet, find) if excel else _read_csv(path, encoding, find)
    frame, header = table.frame, table.header
    frame, header, evidence = _split_results(frame, header)
    mapping = _map_cells(header, columns)
    _check_mapping(path, mapping, header, table.header_row, forced=header_row is not None)
    first_row = table.header_row + 1
    # Kept apart from the frame: adding a column to it and dropping it again copies every column.
    rows = pl.int_range(first_row, first_row + frame.height, dtype=pl.Int64, eager=True)
    blank = _blank_rows(frame)
    if blank.len():  # filtering copies every column, blank rows or not
        kept = ~pl.int_range(frame.height, eager=True).is_in(blank.implode())
        frame, rows = frame.filter(kept), rows.filter(kept)
        evidence = evidence.filter(kept) if evidence is not None else None
    headers = {f: frame.columns[i] for f, i in mapping.fields.items()}
    if excel:
        # A duration cell formatted [h]:mm is a time of day 0 too: `01:30:00`, which reads as 90 minutes.
        timed = (*_TIME_FIELDS, "duration_minutes")
        frame = _excel_time_cells(frame, [headers[f] for f in timed if f in headers])
    unmapped = [
        header[i] or frame.columns[i]
        for i in mapping.unmapped
        if (header[i] or frame[frame.columns[i]].is_not_null().any()) and header[i] != key_column
    ]
    if unmapped:
        log.warning("%s: columns not imported, as they map to no field: %s", path, ", ".join(unmapped))
    return Sheet(
        path,
        frame,
        rows,
        headers,
        sheet_name=table.sheet_name,
        other_sheets=table.other_sheets,
        unmapped=unmapped,
        row_problems={first_row + i: problem for i, problem in table.row_problems.items()},
        evidence=evidence,
    )


_EVIDENCE = ("status", "meeting_id", "row_key", "portal_id")
_NEUTRALISED = r"^'[=+\-@\t\r]"  # the reporter's `'` before a cell Excel would run as a formula


def _split_results(
    frame: pl.DataFrame, header: list[str]
) -> tuple[pl.DataFrame, list[str], pl.DataFrame | None]:
    """A results file imported again (after fixing rows in it): its outcome columns are not input but
    evidence of what HubSpot has, and the `'` the reporter put before formula-like cells comes off, so a
    fixed row goes to HubSpot exactly as the user wrote it."""
    if not set(header) >= RESULT_MARKERS:
        return frame, header, None
    evidence = frame.select(
        pl.col(frame.columns[header.index(name)]).alias(name) for name in _EVIDENCE if name in header
    )
    kept = [i for i, name in enumerate(header) if name not in RESULT_COLUMNS]
    own = frame.select(frame.columns[i] for i in kept)
    own = own.with_columns(
        pl.when(pl.col(c).str.contains(_NEUTRALISED)).then(pl.col(c).str.slice(1)).otherwise(pl.col(c))
        for c in own.columns
    )
    names = [header[i][1:] if re.match(_NEUTRALISED, header[i]) else header[i] for i in kept]
    return own, names, evidence


def _blank_rows(frame: pl.DataFrame) -> pl.Series:
    """The indices of the rows whose every cell is empty or white space. A column at a time, each only
    on the rows still undecided: a sheet's first column alone decides most rows."""
    undecided = pl.int_range(frame.height, dtype=pl.UInt32, eager=True)
    for column in frame.columns:
        if not undecided.len():
            break
        cells = frame[column] if undecided.len() == frame.height else frame[column].gather(undecided)
        undecided = undecided.filter(~cells.str.contains(r"\S").fill_null(False))
    return undecided


def _blank(columns: list[str]) -> pl.Expr:
    return pl.all_horizontal(pl.col(c).is_null() | (pl.col(c).str.strip_chars() == "") for c in columns)


# --- CSV ---


def _read_csv(path: Path, encoding: str | None, find: _HeaderFinder) -> _Table:
    raw = path.read_bytes()
    if _is_empty(raw):
        raise InputError(_("{path}: the file is empty").format(path=path))
    if _native_utf8(raw, encoding):
        try:
            table = _read_utf8(path, raw, find)
        except (UnicodeDecodeError, pl.exceptions.PolarsError):
            table = None  # not UTF-8 after all, or a malformed line: decoded and read line by line below
        if table is not None:
            return table
    return _read_text(path, _decode(path, raw, encoding), find)


def _is_empty(raw: bytes) -> bool:
    """Nothing but a BOM and white space. Looked at whole only when its head is blank: a strip of the
    whole file would copy it."""
    if raw[:_SAMPLE_BYTES].removeprefix(codecs.BOM_UTF8).strip():
        return False
    return not raw.removeprefix(codecs.BOM_UTF8).strip()


def _native_utf8(raw: bytes, encoding: str | None) -> bool:
    """Whether polars may read the bytes as they are: UTF-8 is the one encoding it decodes itself,
    which saves decoding and re-encoding the whole file in Python."""
    if encoding is not None and encoding.lower() not in _UTF8_NAMES:
        return False
    return not raw.startswith(_UTF16_BOMS) and b"\x00" not in raw[:_SAMPLE_BYTES]


def _read_utf8(path: Path, raw: bytes, find: _HeaderFinder) -> _Table | None:
    """The common case, valid UTF-8 and well-formed: the top of the file is decoded for the separator and
    the header, and polars reads the bytes from the header's line on, BOM and all: no copy of them is
    made. Raises UnicodeDecodeError or PolarsError for anything else; None when a line above the header
    ends in a bare CR, which polars does not count as a line end."""
    text, separator, records = _top_of_utf8(raw, find.rows_needed)
    index = find([cells for cells, _ in records])
    above = text[: _record_start(records, index)]
    if above.count("\r") > above.count("\r\n"):
        return None
    # skip_lines counts line ends, quotes or not: the lines of the rows above, as csv read them.
    lines = above.count("\n")
    frame = pl.read_csv(raw, separator=separator, infer_schema=False, skip_lines=lines)
    return _csv_table(path, records[index][0], frame, index + 1)


def _top_of_utf8(raw: bytes, limit: int) -> tuple[str, str, list[tuple[list[str], int]]]:
    """The top of UTF-8 bytes as text (BOM dropped) cut at a line end, its separator and its first
    `limit` rows (_top_records): 64 KiB of it, four times as much while rows are missing."""
    start = len(codecs.BOM_UTF8) if raw.startswith(codecs.BOM_UTF8) else 0
    size = _SAMPLE_BYTES
    while True:
        body = raw[start : start + size + 1]
        # Cut at a line end, which is never inside a UTF-8 character.
        whole = len(body) <= size
        sample = body if whole else body[: body.rfind(b"\n", 0, size) + 1]
        text = sample.decode("utf-8")
        separator, records = _top_records(text, limit)
        if len(records) >= limit or whole or not sample:
            return text, separator, records
        size *= 4


def _read_text(path: Path, text: str, find: _HeaderFinder) -> _Table:
    """Text decoded in Python: polars reads it from the header on; where it cannot, the lines are read
    one by one and each malformed one becomes a row of its own."""
    separator, records = _top_records(text, find.rows_needed)
    index = find([cells for cells, _ in records])
    header, end = records[index]
    try:
        frame = pl.read_csv(
            text[_record_start(records, index) :].encode(), separator=separator, infer_schema=False
        )
        return _csv_table(path, header, frame, index + 1)
    except pl.exceptions.PolarsError:
        names = _unique_names([h.strip() for h in header])
        frame, problems = _read_leniently(text[end:], separator, names, text.count("\n", 0, end) + 1)
        return _Table([h.strip() for h in header], frame, index + 1, problems)


def _csv_table(path: Path, header: list[str], frame: pl.DataFrame, header_row: int) -> _Table:
    if frame.width != len(header):
        message = _("{path}: cannot read row {row}, the header, as {cells} cells")
        raise InputError(message.format(path=path, row=header_row, cells=len(header)))
    header = [h.strip() for h in header]
    frame.columns = _unique_names(header)
    return _Table(header, frame, header_row)


def _top_records(text: str, limit: int) -> tuple[str, list[tuple[list[str], int]]]:
    """The separator, and the first `limit` rows (as Excel counts them, blank lines too), each with the
    offset in `text` where it ends."""
    separator = _sniff_separator(text[:_SAMPLE_BYTES])
    handle = io.StringIO(text, newline="")
    end = [0]

    def lines() -> Iterator[str]:
        for line in handle:
            end[0] += len(line)
            yield line

    records: list[tuple[list[str], int]] = []
    try:
        for cells in itertools.islice(csv.reader(lines(), delimiter=separator), limit):
            records.append((cells, end[0]))
    except csv.Error:
        pass  # a sample cut inside a quoted cell: the rows before it are whole
    return separator, records


def _record_start(records: list[tuple[list[str], int]], index: int) -> int:
    return records[index - 1][1] if index else 0


def _read_leniently(
    text: str, separator: str, names: list[str], first_line: int
) -> tuple[pl.DataFrame, dict[int, codes.Problem]]:
    """Each record of `text` a row, as polars reads them; a line that starts no well-formed record of
    at most len(names) cells is a row of its own, its text in the first cell, with why (by row index).
    Reading goes on from the line after it."""
    lines = list(io.StringIO(text, newline=""))
    width = len(names)
    rows: list[list[str | None]] = []
    problems: dict[int, codes.Problem] = {}
    position = 0
    while position < len(lines):
        start = position
        reader = csv.reader(itertools.islice(lines, start, None), delimiter=separator, strict=True)
        try:
            for cells in reader:
                if any(c.strip() for c in cells[width:]):
                    problem = _malformed(first_line + position, lines[position], separator, width, cells)
                    break
                rows.append([c or None for c in cells[:width]] + [None] * (width - len(cells)))
                position = start + reader.line_num
            else:
                break
        except csv.Error:
            problem = _malformed(first_line + position, lines[position], separator, width, None)
        problems[len(rows)] = problem
        rows.append([lines[position].rstrip("\r\n"), *[None] * (width - 1)])
        position += 1
    return pl.DataFrame(rows, schema={n: pl.String for n in names}, orient="row"), problems


def _malformed(number: int, line: str, separator: str, width: int, cells: list[str] | None) -> codes.Problem:
    """Why CSV line `number` is not a row, for each way a hand-edited line goes wrong."""
    if line.count('"') % 2:
        return codes.Problem(codes.UNTERMINATED_QUOTE, params={"line": number})
    if cells is None:
        return codes.Problem(codes.COULD_NOT_PARSE_ROW, params={"line": number})
    name = codes.Text(N_("a tab")) if separator == "\t" else f"'{separator}'"
    params = {"line": number, "cells": len(cells), "width": width, "separator": name}
    return codes.Problem(codes.INCORRECT_NUMBER_OF_COLUMNS, params=params)


def _decode(path: Path, raw: bytes, encoding: str | None) -> str:
    """The file's text: in the encoding named, else as its BOM says (UTF-8, UTF-16), else UTF-8, else
    CP932. A mostly UTF-8 file is never taken for CP932, where its Japanese would all become mojibake."""
    if encoding:
        return _decode_as(path, raw, _ENCODING_ALIASES.get(encoding.lower(), encoding), encoding)
    if raw.startswith(_UTF16_BOMS):
        return _decode_as(path, raw, "utf-16", "UTF-16")
    if raw.startswith(codecs.BOM_UTF8):
        return _decode_as(path, raw, "utf-8-sig", "UTF-8")
    if b"\x00" in raw[:_SAMPLE_BYTES]:
        message = _("{path}: not a CSV or Excel file (binary content); Excel files need an Excel suffix")
        raise InputError(message.format(path=path))
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        if _mostly_utf8(raw[: exc.start + _WINDOW_BYTES]):
            message = _(
                "{path}: line {line} is not valid UTF-8 text, unlike the rest of the file; correct it,"
                " or name the encoding with --encoding"
            )
            raise InputError(message.format(path=path, line=_line_of(raw, exc.start, "utf-8"))) from None
    try:
        return raw.decode("cp932")
    except UnicodeDecodeError as exc:
        message = _(
            "{path}: line {line} is neither UTF-8 nor CP932 (Shift_JIS) text; name the encoding with --encoding"
        )
        raise InputError(message.format(path=path, line=_line_of(raw, exc.start, "cp932"))) from None


def _decode_as(path: Path, raw: bytes, codec: str, name: str) -> str:
    try:
        return raw.decode(codec).removeprefix("\ufeff")
    except LookupError:
        raise InputError(_("unknown encoding '{name}' (try utf-8 or cp932)").format(name=name)) from None
    except UnicodeDecodeError as exc:
        message = _("{path}: line {line} is not valid {encoding} text")
        raise InputError(
            message.format(path=path, line=_line_of(raw, exc.start, codec), encoding=name)
        ) from None


def _line_of(raw: bytes, offset: int, codec: str) -> int:
    return raw[:offset].decode(codec, errors="replace").count("\n") + 1


def _mostly_utf8(raw: bytes) -> bool:
    """More characters read as UTF-8 than bytes that do not: a UTF-8 file with a stray byte or two.
    CP932 text is almost all invalid UTF-8, so it fails this by far. `raw` is the file up to a window
    past its first invalid byte: enough to tell, without decoding a large CP932 file twice."""
    text = raw.decode("utf-8", errors="replace")
    invalid = text.count("\ufffd")
    non_ascii = len(text) - len(text.encode("ascii", errors="ignore"))
    return non_ascii - invalid > invalid


def _sniff_separator(sample: str) -> str:
    # Title lines above the header hold no separator at all; they would only confuse the sniffer.
    lines = [line for line in sample.splitlines() if any(d in line for d in _DELIMITERS)]
    try:
        return csv.Sniffer().sniff("\n".join(lines), delimiters=_DELIMITERS).delimiter
    except csv.Error:
        top = lines[:HEADER_SEARCH_ROWS]
        counts = {d: max((line.count(d) for line in top), default=0) for d in _DELIMITERS}
        best = max(counts, key=lambda d: counts[d])
        return best if counts[best] else ","


# --- Excel ---


def _read_excel(path: Path, sheet: str | None, find: _HeaderFinder) -> _Table:
    try:
        reader = fastexcel.read_excel(path)
        names = reader.sheet_names
        target, grid = _load_sheet(path, reader, names, sheet)
    except fastexcel.FastExcelError as exc:
        first_line = str(exc).strip().splitlines()[0]  # calamine appends a multi-line "Context:" trailer
        message = _("{path}: not a readable Excel file ({error})")
        raise InputError(message.format(path=path, error=f"{type(exc).__name__}: {first_line}")) from None
    if grid.height == 0 or grid.select(_blank(grid.columns).all()).item():
        raise InputError(_("{path}: sheet '{sheet}' is empty").format(path=path, sheet=target))
    top = [["" if v is None else str(v).strip() for v in row] for row in grid.head(find.rows_needed).rows()]
    index = find(top)
    data = grid.slice(index + 1)
    data.columns = _unique_names(top[index])
    others = [n for n in names if n != target]
    return _Table(top[index], data, index + 1, sheet_name=target, other_sheets=others)


def _load_sheet(path: Path, reader: Any, names: list[str], sheet: str | None) -> tuple[str, pl.DataFrame]:
    """The sheet named (by name or 1-based position), else the first visible one: a hidden lookup sheet
    often comes first. Every cell as text, no header, blank rows kept: frame row i is sheet row i + 1."""
    if sheet is not None:
        target = _pick_sheet(path, names, sheet)
        return target, _grid(reader, target)[1]
    for name in names:
        visible, grid = _grid(reader, name)
        if visible:
            return name, grid
    return names[0], _grid(reader, names[0])[1]  # none visible: Excel itself would not save that


def _grid(reader: Any, name: str) -> tuple[bool, pl.DataFrame]:
    sheet = reader.load_sheet(name, header_row=None, skip_rows=0, dtypes="string")
    # Visibility is known only once a sheet is loaded (loading the rows is most of the cost anyway).
    return sheet.visible == "visible", sheet.to_polars()


def _pick_sheet(path: Path, names: list[str], sheet: str) -> str:
    choice = sheet.strip()
    if choice in names:
        return choice
    folded = [n for n in names if _header_key(n) == _header_key(choice)]
    if folded:
        return folded[0]
    if choice.isdigit() and 1 <= int(choice) <= len(names):
        return names[int(choice) - 1]
    message = _("{path}: no sheet '{sheet}'; the workbook has: {sheets}")
    raise InputError(message.format(path=path, sheet=sheet, sheets=", ".join(names)))


def _excel_time_cells(frame: pl.DataFrame, columns: list[str]) -> pl.DataFrame:
    """Time cells as Excel shows them: a date-only cell (calamine gives midnight) as the date, so that a
    start without a time of day is refused, and a time-only cell (day 0 of the epoch) as the time."""
    return frame.with_columns(
        pl.col(c).str.replace(_EXCEL_DATE_ONLY, "$1").str.replace(_EXCEL_TIME_ONLY, "$1") for c in columns
    )


# --- headers ---


@dataclass(frozen=True)
class _Mapping:
    """A header row read against the fields: field -> column index, what maps nowhere, what is missing."""

    fields: dict[str, int]
    unmapped: list[int]
    conflicts: list[tuple[str, int, int]]
    missing: list[str]


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
    """What headers are compared by: NFKC (所要時間（分） is 所要時間(分), 取引ＩＤ is 取引ID), any case,
    without spaces, `-` or `_` (Owner Email is owner_email)."""
    return re.sub(r"[\s\-_]+", "", unicodedata.normalize("NFKC", text).casefold())


def _map_cells(cells: list[str], columns: dict[str, str]) -> _Mapping:
    """Read one row as a header: the config's [columns] first, then the fields' own names."""
    wanted = {_header_key(source): target for source, target in columns.items()}
    wanted.update({_header_key(f): f for f in FIELDS if _header_key(f) not in wanted})
    found: dict[str, int] = {}
    unmapped, conflicts = [], []
    for index, cell in enumerate(cells):
        target = wanted.get(_header_key(cell)) if cell.strip() else None
        if target is None:
            unmapped.append(index)
        elif target in found:
            conflicts.append((target, found[target], index))
        else:
            found[target] = index
    missing = [
        need
        for need, options in REQUIRED_FIELDS.items()
        if not any(all(f in found for f in o) for o in options)
    ]
    return _Mapping(found, unmapped, conflicts, missing)


def _check_mapping(path: Path, mapping: _Mapping, header: list[str], row: int, *, forced: bool) -> None:
    """Stop when two columns map to one field, or when a required field has no column."""
    for target, first, second in mapping.conflicts:
        if header[first] == header[second]:
            message = _("{path}: two columns are named '{column}' (field '{field}'); keep one")
            raise InputError(message.format(path=path, column=header[first], field=target))
        message = _("{path}: columns '{first}' and '{second}' both map to '{field}'")
        raise InputError(message.format(path=path, first=header[first], second=header[second], field=target))
    if mapping.missing:
        cells = ", ".join(h for h in header if h)
        if forced:
            where = _("row {row} (header_row) has")
        else:
            where = _("the file has") if row == 1 else _("row {row}, the closest to a header, has")
        message = _(
            "{path}: missing column(s) {missing}; {where}: {cells}"
            " (map headers to fields in the config's [columns] table)"
        )
        where = where.format(row=row)
        raise InputError(
            message.format(path=path, missing=", ".join(mapping.missing), where=where, cells=cells)
        )


# --- rows ---


@dataclass(frozen=True)
class ParsedChunk:
    """A chunk of rows as columns, so a million rows make no million objects: `frame` holds each row's
    `row`, `error`, `warning`, `start_read`, `error_code`
    and `warning_code` (as ParsedRow names them), `meetings` the
    valid rows' meetings by position in the chunk, when built. Indexing gives one row as a ParsedRow."""

    frame: pl.DataFrame
    meetings: dict[int, Meeting] = field(default_factory=dict)

    def __len__(self) -> int:
        return self.frame.height

    def __getitem__(self, index: int) -> ParsedRow:
        row, *values = self.frame.row(index)
        return ParsedRow(row, self.meetings.get(index % len(self)), *values)

    def __iter__(self) -> Iterator[ParsedRow]:
        return (self[i] for i in range(len(self)))


_OUTCOME = {
    "error": "_problems",
    "warning": "_warnings",
    "start_read": "_start_read",
    "error_code": "_error_codes",
    "warning_code": "_warning_codes",
}


def parse_rows(
    sheet: Sheet,
    *,
    default_timezone: str,
    default_outcome: str,
    default_reminders: str,
    date_order: DateOrder = "YMD",
    build_meetings: bool = True,
    chunk_rows: int = _CHUNK_ROWS,
    on_meeting: Callable[[int, Meeting], None] | None = None,
) -> Iterator[ParsedChunk]:
    """Check every row of `sheet`, a chunk at a time so memory stays flat on large files; two chunks are
    parsed at once, on threads, and handed out in order.

    Rows without problems become `Meeting`s when `build_meetings` is set; a dry run leaves it off, as the
    column checks already decided every row and a million model objects would only cost time and memory.
    With `on_meeting`, each is handed to it (with its position in the sheet) as soon as it is built, and
    the chunks hold none: a caller that keeps them in a smaller form never holds a chunk's worth.
    """

    def parse(offset: int) -> tuple[pl.DataFrame | None, list[tuple[Reminder, ...]], pl.DataFrame]:
        chunk = sheet.frame.slice(offset, chunk_rows)
        cells = chunk.select(pl.col(header).alias(field) for field, header in sheet.headers.items())
        typed, schedules = parse_cells(
            cells,
            sheet.headers,
            default_timezone=default_timezone,
            default_outcome=default_outcome,
            default_reminders=default_reminders,
            date_order=date_order,
        )
        outcome = typed.select(
            sheet.rows.slice(offset, chunk_rows).alias("row"),
            *(pl.col(source).alias(name) for name, source in _OUTCOME.items()),
        )
        if sheet.row_problems:
            outcome = _unreadable(outcome, sheet.row_problems)
        if not build_meetings:  # the typed values go here: the chunks in hand hold only their outcomes
            return None, schedules, outcome
        valid = typed.drop(_OUTCOME.values()).with_row_index("_at").filter(outcome["error"].is_null())
        return valid, schedules, outcome

    offsets = range(0, sheet.frame.height, chunk_rows)
    for offset, (valid, schedules, outcome) in zip(offsets, _in_order(parse, offsets), strict=True):
        if valid is None:
            yield ParsedChunk(outcome)
        else:
            yield _build_all(outcome, valid, schedules, sheet.headers, on_meeting, offset)
        del valid  # before the next chunk is waited for


def _in_order(work: Callable[[int], _T], items: range) -> Iterator[_T]:
    """`work(item)` for each item, in their order, _WORKERS at a time on threads, and one more waiting
    for the first thread free: when two finish at once, the caller takes one and a thread the next.
    The next is submitted as one is handed out, before the caller takes it (a dry run writes each
    chunk's lines meanwhile), so the threads never wait on the caller; and no more than _WORKERS + 1
    are in hand, besides the caller's."""
    left = iter(items)
    with ThreadPoolExecutor(_WORKERS) as pool:
        pending = deque(pool.submit(work, item) for item in itertools.islice(left, _WORKERS + 1))
        while pending:
            done = pending.popleft().result()
            pending.extend(pool.submit(work, item) for item in itertools.islice(left, 1))
            yield done


def _unreadable(outcome: pl.DataFrame, problems: dict[int, codes.Problem]) -> pl.DataFrame:
    """A malformed line's row is invalid for that alone: its cells are not the sheet's columns."""
    described = {row: codes.describe([problem]) for row, problem in problems.items()}
    hit = pl.col("row").is_in(list(described))
    errors = {row: error for row, (error, _) in described.items()}
    error_codes = {row: code for row, (_, code) in described.items()}
    return outcome.with_columns(
        pl.when(hit)
        .then(pl.col("row").replace_strict(errors, default=None, return_dtype=pl.String))
        .otherwise(pl.col("error"))
        .alias("error"),
        pl.when(hit).then(None).otherwise(pl.col("warning")).alias("warning"),
        *(pl.when(hit).then(None).otherwise(pl.col(c)).alias(c) for c in ("start_read", "warning_code")),
        pl.when(hit)
        .then(pl.col("row").replace_strict(error_codes, default=None, return_dtype=pl.String))
        .otherwise(pl.col("error_code"))
        .alias("error_code"),
    )


def _build_all(
    outcome: pl.DataFrame,
    valid: pl.DataFrame,
    schedules: list[tuple[Reminder, ...]],
    headers: dict[str, str],
    keep: Callable[[int, Meeting], None] | None = None,
    offset: int = 0,
) -> ParsedChunk:
    """The meetings of the rows the column checks passed (`valid`, each with its position `_at`), in the
    chunk or handed to `keep`; a row the model refuses all the same becomes invalid."""
    meetings: dict[int, Meeting] = {}
    refused: dict[int, tuple[str | None, str | None]] = {}
    for values in valid.iter_rows(named=True):
        at = values.pop("_at")
        try:
            meeting = _build(values, schedules)
        except ValidationError as exc:
            # The column checks should have caught this already; the model has the last word all the same.
            refused[at] = codes.describe(_describe(exc, headers))
            continue
        if keep is None:
            meetings[at] = meeting
        else:
            keep(offset + at, meeting)
    if refused:
        at = pl.Series(list(refused), dtype=pl.UInt32)
        outcome = outcome.with_columns(
            outcome["error"].scatter(at, [error for error, _ in refused.values()]),
            outcome["error_code"].scatter(at, [code for _, code in refused.values()]),
        )
    return ParsedChunk(outcome, meetings)


def _build(values: dict[str, Any], schedules: list[tuple[Reminder, ...]]) -> Meeting:
    values["reminders"] = schedules[values.pop("_reminders")]
    for field_name in LIST_FIELDS:
        items = values[field_name]
        values[field_name] = items.split(LIST_SEPARATOR) if items else ()
    return Meeting.model_validate(values)


def _describe(exc: ValidationError, headers: dict[str, str]) -> list[codes.Problem]:
    problems = []
    for error in exc.errors():
        name = str(error["loc"][0]) if error["loc"] else "row"
        column, detail, got = headers.get(name, name), error["msg"], repr(error.get("input"))
        problems.append(codes.Problem(codes.FAILED_VALIDATION, column, got, {"detail": detail}))
    return problems
