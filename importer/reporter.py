"""Reporter: the results file, one line per input row in input order, the input's own columns untouched
followed by the outcome columns (`RESULT_COLUMNS`).

CSV is written UTF-8 with a BOM so Excel shows Japanese text; a path ending in `.xlsx` gets a workbook.
Cells Excel would run as formulas are neutralised in the file only, never in what goes to HubSpot.
Every write goes to a temporary file renamed over the target, so a reader never sees half a file.
"""

from __future__ import annotations

import dataclasses
import itertools
import os
import re
import tempfile
import zipfile
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, overload

import fastexcel
import polars as pl

from importer.errors import InputError
from importer.messages import _
from importer.models import RESULT_COLUMNS, RowOutcome, RowResult, RowStatus

# Excel (and LibreOffice) evaluate a cell starting with one of these as a formula: CSV injection.
_FORMULA_START = r"^[=+\-@\t\r]"


def default_results_path(input_path: Path, kind: str = "results") -> Path:
    """`meetings.csv` -> `meetings.results.csv` (or `.dry-run.csv`, `.plan.csv`), beside the input."""
    return input_path.with_name(f"{input_path.stem}.{kind}.csv")


_OUTCOME_FIELDS = [f.name for f in dataclasses.fields(RowOutcome)]
_RESULT_FIELDS = ["row", "row_key", "start_read"]
_TYPES = {"row": pl.Int64, "http_status": pl.Int64, "attempts": pl.Int64}
_SCHEMA = {name: _TYPES.get(name, pl.String) for name in (*_RESULT_FIELDS, *_OUTCOME_FIELDS)}


class RowResults(Sequence[RowResult]):
    """Every row's result, kept as columns (`RowResult` and `RowOutcome` fields, the status as text), so a
    sheet of a million rows is not a million objects.

    A row read by index becomes a RowResult and stays that object: the stages change it in place. Each
    such row is folded back into the columns when they are next asked for, so that costs in proportion
    to the rows read since, and `changed` gives them to the results journal the same way.
    """

    def __init__(self, columns: pl.DataFrame) -> None:
        # Column by column, not as expressions over `columns`, whose columns may be chunked apart: an
        # expression would copy them all (see _cut_alike), cutting them alike copies none. A column
        # that is not there yet is a null literal, which takes no memory per row.
        given = [columns[name].cast(kind) for name, kind in _SCHEMA.items() if name in columns.columns]
        missing = [
            pl.lit(None, kind).alias(name) for name, kind in _SCHEMA.items() if name not in columns.columns
        ]
        self._columns = _cut_alike(pl.DataFrame(given))[0].with_columns(missing).select(list(_SCHEMA))
        self._objects: dict[int, RowResult] = {}
        self._unfolded: set[int] = set()
        self._unjournaled: set[int] = set()
        self._passing: set[int] = set()  # objects nobody holds: dropped once folded into the columns
        self._ahead: dict[int, RowResult] = {}  # made ahead of their rows' finishing (see `ahead`)

    @classmethod
    def of(cls, results: Iterable[RowResult]) -> RowResults:
        return cls(_rows_frame(list(results)))

    def __len__(self) -> int:
        return self._columns.height

    @overload
    def __getitem__(self, index: int) -> RowResult: ...

    @overload
    def __getitem__(self, index: slice) -> list[RowResult]: ...

    def __getitem__(self, index: int | slice) -> RowResult | list[RowResult]:
        if isinstance(index, slice):
            return [self[i] for i in range(len(self))[index]]
        if index < 0:
            index += len(self)
        result = self.passing(index)
        self._passing.discard(index)  # whoever holds it may change it later: kept for good
        return result

    def passing(self, index: int) -> RowResult:
        """Row `index`'s result, to change now and let go: unlike indexing, its object is dropped once the
        columns fold it in, so the rows a run finishes do not all stay objects."""
        result = self._objects.get(index)
        if result is None:
            result = self._ahead.pop(index, None) or _row_result(self._columns.row(index, named=True))
            self._objects[index] = result
            self._passing.add(index)
        # It is written again at the next checkpoint.
        self._unfolded.add(index)
        self._unjournaled.add(index)
        return result

    def ahead(self, at: Iterable[int]) -> None:
        """Make the results of rows `at` in one go, for `passing` to hand out as they finish: made one by
        one, each is a polars call, after a wait for HubSpot's answer, when the CPU has gone cold."""
        wanted = sorted({i for i in at if i not in self._objects and i not in self._ahead})
        if wanted:
            rows = self._columns[wanted].iter_rows(named=True)
            self._ahead.update(zip(wanted, map(_row_result, rows), strict=True))

    def columns(self) -> pl.DataFrame:
        """Every row's result, as `_SCHEMA`'s columns."""
        if self._unfolded:
            at = sorted(self._unfolded)
            rows = _rows_frame([self._objects[i] for i in at])
            index = pl.Series(at, dtype=pl.UInt32)
            # Only the columns these rows changed: each one folded in is a copy of the whole column.
            changed = [
                name
                for name in self._columns.columns
                if not self._columns[name].gather(index).eq_missing(rows[name]).all()
            ]
            self._columns = self._columns.with_columns(
                self._columns[name].scatter(index, rows[name]) for name in changed
            )
            self._unfolded.clear()
            for gone in self._passing:
                del self._objects[gone]
            self._passing.clear()
        return self._columns

    def set_many(self, at: Sequence[int], name: str, values: Sequence[Any] | Any) -> None:
        """Set field `name` (of RowResult or RowOutcome) of rows `at` to `values` (one each, or one for
        all), as a column: a stage that touches every row makes no object per row."""
        if not at:
            return
        each = (
            list(values)
            if isinstance(values, Sequence) and not isinstance(values, str)
            else [values] * len(at)
        )
        for index, value in zip(at, each, strict=True):
            self._ahead.pop(index, None)  # made from the columns as they were
            held = self._objects.get(index)
            if held is not None:  # its object is what the columns are folded from: set it there
                setattr(held if name in _RESULT_FIELDS else held.outcome, name, value)
        update = pl.Series([str(v) for v in each] if name == "status" else each, dtype=_SCHEMA[name])
        column = self._columns[name].scatter(pl.Series(at, dtype=pl.UInt32), update)
        self._columns = _cut_alike(self._columns.with_columns(column))[0]
        self._unjournaled.update(at)

    def column(self, name: str) -> list[Any]:
        """Every row's value of field `name`, as the columns have it now."""
        return self.columns()[name].to_list()

    def peek(self, index: int) -> RowResult:
        """Row `index`'s result to look at, not to change: no object is kept for it."""
        return (
            self._objects.get(index)
            or self._ahead.get(index)
            or _row_result(self._columns.row(index, named=True))
        )

    def take_changed(self) -> list[int]:
        """The rows read by index since the last call, in sheet order."""
        at = sorted(self._unjournaled)
        self._unjournaled.clear()
        return at

    def columns_of(self, at: list[int]) -> pl.DataFrame:
        """The results of rows `at` (read by index), as `columns` has them."""
        if all(i in self._objects for i in at):
            return _rows_frame([self._objects[i] for i in at])
        return self.columns()[at]  # some were folded in (and let go) since they changed


def _rows_frame(results: list[RowResult]) -> pl.DataFrame:
    values: dict[str, list[Any]] = {name: [getattr(r, name) for r in results] for name in _RESULT_FIELDS}
    outcomes = [r.outcome for r in results]
    for name in _OUTCOME_FIELDS:
        values[name] = [getattr(o, name) for o in outcomes]
    values["status"] = [str(s) for s in values["status"]]
    return pl.DataFrame(values, schema=_SCHEMA)


def _row_result(values: dict[str, Any]) -> RowResult:
    outcome = RowOutcome(**{name: values[name] for name in _OUTCOME_FIELDS})
    outcome.status = RowStatus(outcome.status)
    return RowResult(values["row"], values["row_key"], outcome, values["start_read"])


def as_columns(results: Sequence[RowResult]) -> RowResults:
    return results if isinstance(results, RowResults) else RowResults.of(results)


def results_frame(
    inputs: pl.DataFrame,
    results: Sequence[RowResult],
    *,
    portal_id: int | None = None,
    ui_domain: str | None = None,
    plan: bool = False,
) -> pl.DataFrame:
    """The input's columns (result columns of an earlier run dropped) followed by each row's outcome:
    RESULT_COLUMNS, made of `RowResult` and its `RowOutcome`, plus the meeting's page in HubSpot. A plan
    says each row's `action` instead of its `status`."""
    return results_lines(inputs, as_columns(results).columns(), portal_id, ui_domain, plan)


def results_lines(
    inputs: pl.DataFrame, results: pl.DataFrame, portal_id: int | None, ui_domain: str | None, plan: bool
) -> pl.DataFrame:
    """As `results_frame`, of `results` as `RowResults.columns` has them, row for row with `inputs`."""
    own = inputs.drop([c for c in RESULT_COLUMNS if c in inputs.columns])
    if own.width:
        own, results = _cut_alike(own, results)
    link = pl.lit(None, pl.String)
    if portal_id is not None and ui_domain:
        link = pl.format(f"https://{ui_domain}/contacts/{portal_id}/record/0-47/{{}}", pl.col("meeting_id"))
    frame = results.with_columns(
        link.alias("meeting_url"),
        pl.lit(None if portal_id is None else str(portal_id), pl.String).alias("portal_id"),
    )
    outcome = frame.select(RESULT_COLUMNS)
    if plan:
        action = pl.col("status").replace_strict(PLAN_ACTIONS, default=pl.col("status"))
        outcome = outcome.with_columns(action).rename({"status": "action"})
    return pl.concat([own, outcome], how="horizontal")


def _cut_alike(*frames: pl.DataFrame) -> list[pl.DataFrame]:
    """`frames` (of one height) with every column in chunks of the same lengths, cut where a column of
    one of them is cut already, so that nothing is copied. A frame whose columns are chunked apart is
    copied whole by the first expression run on it: the input's columns come in chunks as the CSV
    reader made them, the results' in the reader's chunks of rows (and single ones, for columns made
    since), and that copy doubled the memory of a large sheet's results."""
    ends = {end for f in frames for c in f.columns for end in itertools.accumulate(f[c].chunk_lengths())}
    lengths = [end - start for start, end in itertools.pairwise([0, *sorted(e for e in ends if e)])]
    return [_sliced(frame, lengths) for frame in frames]


def _sliced(frame: pl.DataFrame, lengths: list[int]) -> pl.DataFrame:
    if not frame.height or all(frame[c].chunk_lengths() == lengths for c in frame.columns):
        return frame
    starts = itertools.accumulate(lengths[:-1], initial=0)
    return pl.concat([frame.slice(start, n) for start, n in zip(starts, lengths, strict=True)], rechunk=False)


PLAN_ACTIONS = {"valid": "create", "updated": "update", "skipped": "skip", "failed": "fail"}
"""A plan's words for what a run would do with each row (`invalid` and `in_doubt` stay as they are)."""


def write_results(frame: pl.DataFrame, path: Path) -> None:
    """Write the results atomically, as xlsx when `path` ends in .xlsx, else as CSV with a BOM."""
    write_pieces([frame], path, frame.height)


def write_pieces(pieces: Iterable[pl.DataFrame], path: Path, rows: int) -> None:
    """As write_results, of results that come in pieces of `rows` lines in all, each written as it comes
    (a dry run's chunks, as they are checked), so the whole is never held at once. A piece that fails to
    come (an exception from the pieces) leaves any earlier file as it was."""
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temp_name = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    os.close(handle)
    temp = Path(temp_name)
    try:
        safe = (_neutralise_formulas(piece) for piece in pieces)
        if path.suffix.lower() == ".xlsx":
            _write_workbook(safe, rows, temp)
        else:
            _write_csv(safe, temp)
        # mkstemp makes the file private (0600); a results file is a shared document like any other.
        umask = os.umask(0)
        os.umask(umask)
        temp.chmod(0o666 & ~umask)
        os.replace(temp, path)
    finally:
        temp.unlink(missing_ok=True)


def _write_csv(pieces: Iterable[pl.DataFrame], path: Path) -> None:
    with path.open("wb") as handle:
        for number, piece in enumerate(pieces):
            piece.write_csv(handle, include_header=number == 0, include_bom=number == 0)


# Rows made into XML at once: each piece is held three times over (polars' text, Python's, its bytes);
# pieces of 20,000 rows added 60 MB to a 200k-row run's peak.
_XLSX_CHUNK_ROWS = 5_000
_XML_ESCAPES = {"&": "&amp;", "<": "&lt;", ">": "&gt;"}
# Excel's own escape for characters XML cannot hold (a CR would read back as LF); `_x` itself escaped first.
_XML_ESCAPES.update({chr(c): f"_x{c:04X}_" for c in range(32) if c not in (9, 10)})
_ESCAPE_PATTERN = r"_(x[0-9A-Fa-f]{4}_)"
_MAIN = "http://schemas.openxmlformats.org/spreadsheetml/2006/main"
_RELS = "http://schemas.openxmlformats.org/package/2006/relationships"
_DOC_RELS = "http://schemas.openxmlformats.org/officeDocument/2006/relationships"
_PARTS = {
    "[Content_Types].xml": (
        '<Types xmlns="http://schemas.openxmlformats.org/package/2006/content-types">'
        '<Default Extension="rels" ContentType="application/vnd.openxmlformats-package.relationships+xml"/>'
        '<Default Extension="xml" ContentType="application/xml"/>'
        '<Override PartName="/xl/workbook.xml"'
        ' ContentType="application/vnd.openxmlformats-officedocument.spreadsheetml.sheet.main+xml"/>'
        '<Override PartName="/xl/worksheets/sheet1.xml"'
        ' ContentType="application/vnd.openxmlformats-officedocument.spreadsheetml.worksheet+xml"/>'
        '<Override PartName="/xl/styles.xml"'
        ' ContentType="application/vnd.openxmlformats-officedocument.spreadsheetml.styles+xml"/></Types>'
    ),
    "_rels/.rels": (
        f'<Relationships xmlns="{_RELS}"><Relationship Id="rId1"'
        f' Type="{_DOC_RELS}/officeDocument" Target="xl/workbook.xml"/></Relationships>'
    ),
    "xl/workbook.xml": (
        f'<workbook xmlns="{_MAIN}" xmlns:r="{_DOC_RELS}"><sheets>'
        '<sheet name="results" sheetId="1" r:id="rId1"/></sheets></workbook>'
    ),
    "xl/_rels/workbook.xml.rels": (
        f'<Relationships xmlns="{_RELS}">'
        f'<Relationship Id="rId1" Type="{_DOC_RELS}/worksheet" Target="worksheets/sheet1.xml"/>'
        f'<Relationship Id="rId2" Type="{_DOC_RELS}/styles" Target="styles.xml"/></Relationships>'
    ),
    "xl/styles.xml": (
        f'<styleSheet xmlns="{_MAIN}"><fonts count="1"><font><sz val="11"/><name val="Calibri"/></font>'
        '</fonts><fills count="2"><fill><patternFill patternType="none"/></fill><fill>'
        '<patternFill patternType="gray125"/></fill></fills><borders count="1"><border><left/><right/>'
        '<top/><bottom/><diagonal/></border></borders><cellStyleXfs count="1"><xf numFmtId="0"'
        ' fontId="0" fillId="0" borderId="0"/></cellStyleXfs><cellXfs count="1"><xf numFmtId="0"'
        ' fontId="0" fillId="0" borderId="0" xfId="0"/></cellXfs></styleSheet>'
    ),
}
_XML_DECLARATION = '<?xml version="1.0" encoding="UTF-8" standalone="yes"?>\n'


def _write_workbook(pieces: Iterable[pl.DataFrame], rows: int, path: Path) -> None:
    """The pieces of `rows` lines in all as a one-sheet workbook (`results`, the header in row 1, filters
    on it): text cells as text (`0012345` keeps its zeros), integer columns as numbers. The sheet's XML
    is made by polars a few rows at a time and streamed into the zip: a cell-by-cell writer
    (xlsxwriter, which polars' write_excel uses) takes a minute and a gigabyte for 200k rows."""
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED, compresslevel=1) as archive:
        for name, xml in _PARTS.items():
            archive.writestr(name, _XML_DECLARATION + xml)
        with archive.open("xl/worksheets/sheet1.xml", "w", force_zip64=True) as sheet:
            last = ""
            for number, piece in enumerate(pieces):
                if number == 0:
                    last = f"{_column_letters(piece.width - 1)}{rows + 1}"
                    opening = f'<worksheet xmlns="{_MAIN}"><dimension ref="A1:{last}"/><sheetData>'
                    header = pl.DataFrame({str(i): [name] for i, name in enumerate(piece.columns)})
                    sheet.write(f"{_XML_DECLARATION}{opening}{_rows_xml(header)}".encode())
                for offset in range(0, piece.height, _XLSX_CHUNK_ROWS):
                    sheet.write(_rows_xml(piece.slice(offset, _XLSX_CHUNK_ROWS)).encode())
            sheet.write(f'</sheetData><autoFilter ref="A1:{last}"/></worksheet>'.encode())


def _rows_xml(frame: pl.DataFrame) -> str:
    """The `<row>` elements of `frame`'s rows, each cell in column order (a null one empty, `<c/>`)."""
    cells = [_cell_xml(frame[name]) for name in frame.columns]
    row = pl.concat_str([pl.lit("<row>"), *cells, pl.lit("</row>")])
    return str(frame.select(row.str.join("")).item())


def _cell_xml(cells: pl.Series) -> pl.Expr:
    if cells.dtype.is_integer():
        return pl.concat_str([pl.lit("<c><v>"), pl.lit(cells.cast(pl.String)), pl.lit("</v></c>")]).fill_null(
            "<c/>"
        )
    text = pl.lit(cells.cast(pl.String))
    if cells.str.contains("_x", literal=True).any():
        text = text.str.replace_all(_ESCAPE_PATTERN, "_x005F_$1")
    # Excel trims a cell's leading and trailing spaces unless told not to; most columns have none.
    spaced = bool(cells.str.contains(r"^\s|\s$").any())
    opening = '<c t="inlineStr"><is><t xml:space="preserve">' if spaced else '<c t="inlineStr"><is><t>'
    escaped = text.str.replace_many(_XML_ESCAPES)
    return pl.concat_str([pl.lit(opening), escaped, pl.lit("</t></is></c>")]).fill_null("<c/>")


def _column_letters(index: int) -> str:
    """0 -> A, 25 -> Z, 26 -> AA: a column's name in A1 references."""
    letters = ""
    index += 1
    while index:
        index, rest = divmod(index - 1, 26)
        letters = chr(ord("A") + rest) + letters
    return letters


def journal_path(results_path: Path) -> Path:
    """Where a run appends the rows finished since the results file was last written whole:
    `meetings.results.csv` -> `meetings.results.journal.csv`, beside it."""
    return results_path.with_suffix(".journal.csv")


def append_results(frame: pl.DataFrame, path: Path) -> None:
    """Append results lines to the journal `path`, a CSV in the results file's own format (its header
    and BOM when new), synced: a run killed a moment later has lost none of them."""
    safe = _neutralise_formulas(frame)
    new = not path.exists()
    with path.open("ab") as handle:
        safe.write_csv(handle, include_header=new, include_bom=new)
        handle.flush()
        os.fsync(handle.fileno())


def _neutralise_formulas(frame: pl.DataFrame) -> pl.DataFrame:
    text_columns = [c for c, t in frame.schema.items() if t == pl.String]
    checks = frame.select(pl.col(c).str.contains(_FORMULA_START).any() for c in text_columns)
    found = checks.row(0) if text_columns else ()
    # Only the columns that have such a cell are rewritten: a copy of every column would double the
    # memory a large sheet's results take, just as they are written.
    risky = [c for c, hit in zip(text_columns, found, strict=True) if hit]
    cells = frame.with_columns(
        pl.when(pl.col(c).str.contains(_FORMULA_START)).then("'" + pl.col(c)).otherwise(pl.col(c)).alias(c)
        for c in risky
    )
    return cells.rename({c: f"'{c}" for c in cells.columns if re.match(_FORMULA_START, c)})


@dataclass(frozen=True, slots=True)
class EarlierResult:
    """One row of an earlier results file: what it said of the row, and of which portal."""

    status: str
    meeting_id: str | None
    portal_id: str | None


def read_earlier(path: Path) -> dict[str, EarlierResult]:
    """Row key -> what an earlier results file (CSV or xlsx) says of it, for `--only-failed`."""
    try:
        if path.suffix.lower() == ".xlsx":
            frame = pl.read_excel(path, read_options={"dtypes": "string"})
        else:
            frame = pl.read_csv(path, infer_schema=False, encoding="utf8")
        frame = _with_journal(frame, journal_path(path))
    except (OSError, pl.exceptions.PolarsError, fastexcel.FastExcelError) as exc:
        raise InputError(
            _("{path}: cannot read earlier results: {error}").format(path=path, error=exc)
        ) from None
    missing = {"row_key", "status", "meeting_id"} - set(frame.columns)
    if missing:
        message = _("{path}: not a results file (no {columns} column)")
        raise InputError(message.format(path=path, columns=", ".join(sorted(missing))))
    if "portal_id" not in frame.columns:
        frame = frame.with_columns(pl.lit(None, pl.String).alias("portal_id"))
    keyed = frame.select("row_key", "status", "meeting_id", "portal_id").drop_nulls("row_key")
    return {key: EarlierResult(status, meeting, portal) for key, status, meeting, portal in keyed.iter_rows()}


def _with_journal(frame: pl.DataFrame, journal: Path) -> pl.DataFrame:
    """A results file with the journal a killed run left beside it: a row's last line is its outcome."""
    if not journal.is_file() or "row" not in frame.columns:
        return frame
    lines = pl.read_csv(journal, infer_schema=False, encoding="utf8")
    both = pl.concat([frame, lines.select(c for c in lines.columns if c in frame.columns)], how="diagonal")
    return both.unique("row", keep="last", maintain_order=True)


def count_statuses(results: Sequence[RowResult]) -> dict[str, int]:
    """Rows per status, every status present (zeros included), in the order statuses are documented.
    A comparison per status, not value_counts: its hash table took 40 MB at a million rows."""
    column = as_columns(results).columns()["status"]
    return {str(status): int((column == str(status)).sum()) for status in RowStatus}
