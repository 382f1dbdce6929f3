"""Shared fixtures: a clean environment for every test, and writers for CSV and xlsx input files."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator, Sequence
from datetime import date, datetime
from pathlib import Path
from typing import Any

import pytest
import xlsxwriter
from hypothesis import settings

from importer import messages

# polars compiles regexes and plans on first use: the first example of a property can take a second.
settings.register_profile("importer", deadline=None)
settings.load_profile("importer")

Cells = Sequence[Sequence[object] | None]
"""Rows of an xlsx sheet; None is a blank row, a None cell is left empty."""


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Settings read the environment: a developer's MEETING_IMPORTER_* or HUBSPOT_* must not leak in,
    nor a Japanese locale (messages would be Japanese). Messages start English in every test."""
    for name in list(os.environ):
        if name.startswith(("MEETING_IMPORTER_", "HUBSPOT_")) or name in ("LC_ALL", "LC_MESSAGES"):
            monkeypatch.delenv(name)
    monkeypatch.setenv("LANG", "C.UTF-8")
    with messages.using("en"):
        yield


@pytest.fixture
def write_csv(tmp_path: Path) -> Callable[..., Path]:
    """`write_csv(text, name="meetings.csv", encoding="utf-8")`: the text's exact bytes, newlines as written."""

    def write(text: str, name: str = "meetings.csv", encoding: str = "utf-8") -> Path:
        path = tmp_path / name
        path.write_bytes(text.encode(encoding))
        return path

    return write


@pytest.fixture
def write_xlsx(tmp_path: Path) -> Callable[..., Path]:
    """`write_xlsx(rows, name=, sheet=, first_row=0, other_sheets=())`: a workbook made with xlsxwriter.

    Strings are written as text cells (so `0012345` and `=1+1` stay text), numbers as numbers and
    datetimes as real date-time cells, the way Excel stores what a person types.
    """

    def write(
        rows: Cells,
        name: str = "meetings.xlsx",
        sheet: str = "Meetings",
        first_row: int = 0,
        other_sheets: Sequence[str] = (),
    ) -> Path:
        path = tmp_path / name
        workbook = xlsxwriter.Workbook(str(path))
        moment = workbook.add_format({"num_format": "yyyy-mm-dd hh:mm"})
        worksheet = workbook.add_worksheet(sheet)
        for index, row in enumerate(rows, start=first_row):
            for column, value in enumerate(row or ()):
                _write_cell(worksheet, index, column, value, moment)
        for other in other_sheets:
            workbook.add_worksheet(other).write_string(0, 0, "notes")
        workbook.close()
        return path

    return write


def _write_cell(worksheet: Any, row: int, column: int, value: object, moment: Any) -> None:
    if isinstance(value, datetime | date):
        worksheet.write_datetime(row, column, value, moment)
    elif isinstance(value, int | float):
        worksheet.write_number(row, column, value)
    elif value is not None:
        worksheet.write_string(row, column, str(value))
