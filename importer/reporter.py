"""Reporter: the results file, one line per input row in input order, the input's own columns untouched
followed by the outcome columns (`RESULT_COLUMNS`).

CSV is written UTF-8 with a BOM so Excel shows Japanese text; a path ending in `.xlsx` gets a workbook.
Cells Excel would run as formulas are neutralised in the file only, never in what goes to HubSpot.
Every write goes to a temporary file renamed over the target, so a reader never sees half a file.
"""

from __future__ import annotations

import os
import re
import tempfile
from collections import Counter
from collections.abc import Sequence
from pathlib import Path

import fastexcel
import polars as pl

from importer.errors import InputError
from importer.models import RESULT_COLUMNS, RowResult, RowStatus

# Excel (and LibreOffice) evaluate a cell starting with one of these as a formula: CSV injection.
_FORMULA_START = r"^[=+\-@\t\r]"


def default_results_path(input_path: Path) -> Path:
    """`meetings.csv` -> `meetings.results.csv`, beside the input."""
    return input_path.with_name(f"{input_path.stem}.results.csv")


def results_frame(inputs: pl.DataFrame, results: Sequence[RowResult]) -> pl.DataFrame:
    """The input's columns (result columns of an earlier run dropped) followed by each row's outcome."""
    own = inputs.drop([c for c in RESULT_COLUMNS if c in inputs.columns])
    outcome = pl.DataFrame(
        {
            "row": [r.row for r in results],
            "status": [str(r.status) for r in results],
            "meeting_id": [r.meeting_id for r in results],
            "error": [r.error for r in results],
            "http_status": [r.http_status for r in results],
            "correlation_id": [r.correlation_id for r in results],
            "attempts": [r.attempts for r in results],
            "row_key": [r.row_key for r in results],
            "warning": [r.warning for r in results],
        },
        schema={
            "row": pl.Int64,
            "status": pl.String,
            "meeting_id": pl.String,
            "error": pl.String,
            "http_status": pl.Int64,
            "correlation_id": pl.String,
            "attempts": pl.Int64,
            "row_key": pl.String,
            "warning": pl.String,
        },
    )
    return pl.concat([own, outcome], how="horizontal")


def write_results(frame: pl.DataFrame, path: Path) -> None:
    """Write the results atomically, as xlsx when `path` ends in .xlsx, else as CSV with a BOM."""
    safe = _neutralise_formulas(frame)
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temp_name = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    os.close(handle)
    temp = Path(temp_name)
    try:
        if path.suffix.lower() == ".xlsx":
            safe.write_excel(temp, worksheet="results", autofit=False)
        else:
            safe.write_csv(temp, include_bom=True)
        # mkstemp makes the file private (0600); a results file is a shared document like any other.
        umask = os.umask(0)
        os.umask(umask)
        temp.chmod(0o666 & ~umask)
        os.replace(temp, path)
    finally:
        temp.unlink(missing_ok=True)


def _neutralise_formulas(frame: pl.DataFrame) -> pl.DataFrame:
    text_columns = [c for c, t in frame.schema.items() if t == pl.String]
    cells = frame.with_columns(
        pl.when(pl.col(c).str.contains(_FORMULA_START)).then("'" + pl.col(c)).otherwise(pl.col(c)).alias(c)
        for c in text_columns
    )
    return cells.rename({c: f"'{c}" for c in cells.columns if re.match(_FORMULA_START, c)})


def read_statuses(path: Path) -> dict[str, tuple[str, str | None]]:
    """Row key -> (status, meeting id) from an earlier results file (CSV or xlsx), for `--only-failed`."""
    try:
        if path.suffix.lower() == ".xlsx":
            frame = pl.read_excel(path, read_options={"dtypes": "string"})
        else:
            frame = pl.read_csv(path, infer_schema=False, encoding="utf8")
    except (OSError, pl.exceptions.PolarsError, fastexcel.FastExcelError) as exc:
        raise InputError(f"{path}: cannot read earlier results: {exc}") from None
    missing = {"row_key", "status", "meeting_id"} - set(frame.columns)
    if missing:
        raise InputError(f"{path}: not a results file (no {', '.join(sorted(missing))} column)")
    keyed = frame.select("row_key", "status", "meeting_id").drop_nulls("row_key")
    return {key: (status, meeting_id) for key, status, meeting_id in keyed.iter_rows()}


def count_statuses(results: Sequence[RowResult]) -> dict[str, int]:
    """Rows per status, every status present (zeros included), in the order statuses are documented."""
    counts = Counter(r.status for r in results)
    return {str(status): counts.get(status, 0) for status in RowStatus}
