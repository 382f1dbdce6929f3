"""Reporter: the results file, one line per input row in input order, the input's own columns untouched
followed by the outcome columns (`RESULT_COLUMNS`).

CSV is written UTF-8 with a BOM so Excel shows Japanese text; a path ending in `.xlsx` gets a workbook.
Cells Excel would run as formulas are neutralised in the file only, never in what goes to HubSpot.
Every write goes to a temporary file renamed over the target, so a reader never sees half a file.
"""

from __future__ import annotations

import dataclasses
import os
import re
import tempfile
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

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
    own = inputs.drop([c for c in RESULT_COLUMNS if c in inputs.columns])
    outcomes = [r.outcome for r in results]
    values: dict[str, list[Any]] = {
        "row": [r.row for r in results],
        "row_key": [r.row_key for r in results],
        "start_read": [r.start_read for r in results],
    }
    for name in _OUTCOME_FIELDS:
        values[name] = [getattr(o, name) for o in outcomes]
    values["status"] = [str(s) for s in values["status"]]
    frame = pl.DataFrame(values, schema={name: _TYPES.get(name, pl.String) for name in values})
    link = pl.lit(None, pl.String)
    if portal_id is not None and ui_domain:
        link = pl.format(f"https://{ui_domain}/contacts/{portal_id}/record/0-47/{{}}", pl.col("meeting_id"))
    frame = frame.with_columns(
        link.alias("meeting_url"),
        pl.lit(None if portal_id is None else str(portal_id), pl.String).alias("portal_id"),
    )
    outcome = frame.select(RESULT_COLUMNS)
    if plan:
        action = pl.col("status").replace_strict(PLAN_ACTIONS, default=pl.col("status"))
        outcome = outcome.with_columns(action).rename({"status": "action"})
    return pl.concat([own, outcome], how="horizontal")


PLAN_ACTIONS = {"valid": "create", "updated": "update", "skipped": "skip", "failed": "fail"}
"""A plan's words for what a run would do with each row (`invalid` and `in_doubt` stay as they are)."""


_OUTCOME_FIELDS = [f.name for f in dataclasses.fields(RowOutcome)]
_TYPES = {"row": pl.Int64, "http_status": pl.Int64, "attempts": pl.Int64}


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


def count_statuses(results: Sequence[RowResult]) -> dict[str, int]:
    """Rows per status, every status present (zeros included), in the order statuses are documented."""
    counts = Counter(r.status for r in results)
    return {str(status): counts.get(status, 0) for status in RowStatus}
