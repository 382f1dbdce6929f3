"""The results file: input columns untouched, outcome columns after them, safe to open in Excel, atomic."""

from __future__ import annotations

import stat
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

import polars as pl
import pytest

from importer.errors import InputError
from importer.models import RESULT_COLUMNS, RowOutcome, RowResult, RowStatus
from importer.reporter import (
    EarlierResult,
    RowResults,
    append_results,
    count_statuses,
    default_results_path,
    journal_path,
    read_earlier,
    results_frame,
    write_pieces,
    write_results,
)

INPUTS = pl.DataFrame(
    {
        "件名": ["定例（㈱さくら商事）", "Bad row"],
        "start": ["2026/12/01 14:00", None],
        "deal_ids": ["0012345", "1"],
    }
)
RESULTS = [
    RowResult(
        2,
        "a1b2",
        RowOutcome(
            RowStatus.CREATED, meeting_id="8100001", http_status=200, correlation_id="c-1", attempts=1
        ),
        "2026-12-01T14:00:00+09:00",
    ),
    RowResult(
        4,
        None,
        RowOutcome(
            RowStatus.INVALID,
            error="start: is required",
            warning="w",
            error_code="MISSING_REQUIRED_PROPERTY",
            warning_code="AMBIGUOUS_LOCAL_TIME",
        ),
    ),
]


def result(row: int, status: RowStatus, error: str | None = None) -> RowResult:
    return RowResult(row, None, RowOutcome(status, error=error))


def frame() -> pl.DataFrame:
    return results_frame(INPUTS, RESULTS, portal_id=12345678, ui_domain="app.hubspot.com")


def test_default_results_path_is_beside_the_input() -> None:
    assert default_results_path(Path("in/meetings_ja.csv")) == Path("in/meetings_ja.results.csv")
    assert default_results_path(Path("book.xlsx")) == Path("book.results.csv")


def test_input_columns_first_untouched_then_the_outcome() -> None:
    result = frame()
    assert result.columns == ["件名", "start", "deal_ids", *RESULT_COLUMNS]
    assert list(RESULT_COLUMNS) == [
        "row",
        "status",
        "meeting_id",
        "meeting_url",
        "start_read",
        "error",
        "error_code",
        "http_status",
        "correlation_id",
        "attempts",
        "row_key",
        "warning",
        "warning_code",
        "portal_id",
    ]
    assert result.select(INPUTS.columns).equals(INPUTS)
    url = "https://app.hubspot.com/contacts/12345678/record/0-47/8100001"
    assert result.select(RESULT_COLUMNS).rows() == [
        (
            2,
            "created",
            "8100001",
            url,
            "2026-12-01T14:00:00+09:00",
            None,
            None,
            200,
            "c-1",
            1,
            "a1b2",
            None,
            None,
            "12345678",
        ),
        (
            4,
            "invalid",
            None,
            None,
            None,
            "start: is required",
            "MISSING_REQUIRED_PROPERTY",
            None,
            None,
            0,
            None,
            "w",
            "AMBIGUOUS_LOCAL_TIME",
            "12345678",
        ),
    ]


def test_a_dry_run_has_no_portal_and_no_links() -> None:
    offline = results_frame(INPUTS, RESULTS)
    assert offline["meeting_url"].to_list() == [None, None]
    assert offline["portal_id"].to_list() == [None, None]


def test_result_columns_of_an_earlier_run_are_replaced() -> None:
    earlier = results_frame(INPUTS, [result(2, RowStatus.FAILED), result(4, RowStatus.FAILED)])
    again = results_frame(earlier, RESULTS)
    assert again.columns == frame().columns
    assert again["status"].to_list() == ["created", "invalid"]


def test_csv_has_a_bom_and_reads_back(tmp_path: Path) -> None:
    path = tmp_path / "out.results.csv"
    write_results(frame(), path)
    raw = path.read_bytes()
    assert raw.startswith(b"\xef\xbb\xbf\xe4\xbb\xb6\xe5\x90\x8d,start,")  # BOM, then 件名
    back = pl.read_csv(path, infer_schema=False)
    assert back.columns == frame().columns
    assert back.row(0) == (
        "定例（㈱さくら商事）",
        "2026/12/01 14:00",
        "0012345",
        "2",
        "created",
        "8100001",
        "https://app.hubspot.com/contacts/12345678/record/0-47/8100001",
        "2026-12-01T14:00:00+09:00",
        None,
        None,
        "200",
        "c-1",
        "1",
        "a1b2",
        None,
        None,
        "12345678",
    )


def test_xlsx_reads_back(tmp_path: Path) -> None:
    path = tmp_path / "out.results.xlsx"
    write_results(frame(), path)
    back = pl.read_excel(path, read_options={"dtypes": "string"})
    assert back.columns == frame().columns
    assert back.rows() == [
        (
            "定例（㈱さくら商事）",
            "2026/12/01 14:00",
            "0012345",
            "2",
            "created",
            "8100001",
            "https://app.hubspot.com/contacts/12345678/record/0-47/8100001",
            "2026-12-01T14:00:00+09:00",
            None,
            None,
            "200",
            "c-1",
            "1",
            "a1b2",
            None,
            None,
            "12345678",
        ),
        (
            "Bad row",
            None,
            "1",
            "4",
            "invalid",
            None,
            None,
            None,
            "start: is required",
            "MISSING_REQUIRED_PROPERTY",
            None,
            None,
            "0",
            None,
            "w",
            "AMBIGUOUS_LOCAL_TIME",
            "12345678",
        ),
    ]
    assert [p.name for p in tmp_path.iterdir()] == ["out.results.xlsx"]


def test_xlsx_keeps_every_character_and_the_spaces_at_the_ends(tmp_path: Path) -> None:
    """The workbook's XML is written by hand: what XML cannot hold goes in Excel's `_xHHHH_` escape,
    and text that looks like that escape is escaped itself."""
    texts = ['a & b <c> "d"', " padded ", "line\nbreak", "cr\rlf", "bell\x07", "_x0041_", "0012345", None]
    inputs = pl.DataFrame({"note": texts})
    path = tmp_path / "out.xlsx"
    write_results(results_frame(inputs, [result(n, RowStatus.VALID) for n in range(2, 10)]), path)
    back = pl.read_excel(path, read_options={"dtypes": "string"})
    assert back["note"].to_list() == texts
    assert back["row"].to_list() == [str(n) for n in range(2, 10)]


@pytest.mark.parametrize(
    "text", ["=1+1", "+81 3 1234 5678", "-5", "@SUM(A1:A2)", "\tx", "\rx", '=HYPERLINK("x")']
)
@pytest.mark.parametrize("suffix", [".csv", ".xlsx"])
def test_formula_starts_are_neutralised(tmp_path: Path, text: str, suffix: str) -> None:
    inputs = pl.DataFrame({"title": [text], "location": ["safe"]})
    results = [result(2, RowStatus.INVALID, error=text)]
    path = tmp_path / f"out{suffix}"
    write_results(results_frame(inputs, results), path)
    if suffix == ".csv":
        back = pl.read_csv(path, infer_schema=False)
    else:
        back = pl.read_excel(path, read_options={"dtypes": "string"})
    assert (back["title"][0], back["error"][0], back["location"][0]) == ("'" + text, "'" + text, "safe")


@pytest.mark.parametrize("text", ["a=b", "1-2", "'quoted", " =spaced", "メモ=あり"])
def test_other_text_is_left_alone(tmp_path: Path, text: str) -> None:
    path = tmp_path / "out.csv"
    write_results(results_frame(pl.DataFrame({"title": [text]}), [result(2, RowStatus.VALID)]), path)
    assert pl.read_csv(path, infer_schema=False)["title"][0] == text


def test_formula_headers_are_neutralised_too(tmp_path: Path) -> None:
    """A header cell is a cell: Excel runs `=...` in row 1 as readily as in row 2."""
    path = tmp_path / "out.csv"
    inputs = pl.DataFrame({"=2+5*cmd|x": ["Review"]})
    write_results(results_frame(inputs, [result(2, RowStatus.VALID)]), path)
    assert pl.read_csv(path, infer_schema=False).columns[0] == "'=2+5*cmd|x"


def test_writing_replaces_the_old_file_whole_and_leaves_no_temp(tmp_path: Path) -> None:
    path = tmp_path / "out.csv"
    path.write_text("old,content\n" * 1000)
    write_results(frame(), path)
    assert [p.name for p in tmp_path.iterdir()] == ["out.csv"]
    text = path.read_text(encoding="utf-8-sig")
    assert "old,content" not in text
    assert text.splitlines()[0] == "件名,start,deal_ids," + ",".join(RESULT_COLUMNS)
    assert len(text.splitlines()) == 3


@pytest.mark.parametrize("suffix", [".csv", ".xlsx"])
def test_results_in_pieces_make_the_file_the_whole_makes(tmp_path: Path, suffix: str) -> None:
    """A dry run writes each chunk's lines as they come: the file is the one the whole frame makes,
    one header, every line once, in order (a formula-like cell neutralised in every piece)."""
    whole = pl.concat([frame()] * 5).with_columns(pl.Series("件名", ["=1+1", "a", "-b", "c", "d"] * 2))
    write_results(whole, tmp_path / f"whole{suffix}")
    pieces = [whole.slice(0, 3), whole.slice(3, 0), whole.slice(3, 7)]
    write_pieces(iter(pieces), tmp_path / f"pieces{suffix}", whole.height)
    if suffix == ".csv":
        assert (tmp_path / "pieces.csv").read_bytes() == (tmp_path / "whole.csv").read_bytes()
    else:
        back = [
            pl.read_excel(tmp_path / f"{n}.xlsx", read_options={"dtypes": "string"})
            for n in ("whole", "pieces")
        ]
        assert back[1].rows() == back[0].rows()
        assert back[1]["件名"].to_list()[:3] == ["'=1+1", "a", "'-b"]


def test_pieces_that_fail_to_come_keep_the_old_file(tmp_path: Path) -> None:
    path = tmp_path / "out.csv"
    path.write_text("old results\n")

    def pieces() -> Iterator[pl.DataFrame]:
        yield frame()
        raise OSError("disk full")

    with pytest.raises(OSError, match="disk full"):
        write_pieces(pieces(), path, 4)
    assert [p.name for p in tmp_path.iterdir()] == ["out.csv"]
    assert path.read_text() == "old results\n"


def test_a_failed_write_keeps_the_old_file_and_leaves_no_temp(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "out.csv"
    path.write_text("old results\n")

    def broken(self: pl.DataFrame, file: BinaryIO, **_: object) -> None:
        file.write(b"half a fi")
        raise OSError("disk full")

    monkeypatch.setattr(pl.DataFrame, "write_csv", broken)
    with pytest.raises(OSError, match="disk full"):
        write_results(frame(), path)
    assert [p.name for p in tmp_path.iterdir()] == ["out.csv"]
    assert path.read_text() == "old results\n"


def test_results_file_gets_the_usual_permissions(tmp_path: Path) -> None:
    """The temporary file comes from mkstemp (mode 0600): once renamed, the results file must be as readable
    as any file the user writes (umask), not private to the account that ran the import."""
    plain = tmp_path / "plain.txt"
    plain.write_text("x")
    path = tmp_path / "out.csv"
    write_results(frame(), path)
    assert stat.S_IMODE(path.stat().st_mode) == stat.S_IMODE(plain.stat().st_mode)


def test_missing_folders_are_created(tmp_path: Path) -> None:
    path = tmp_path / "a" / "b" / "out.csv"
    write_results(frame(), path)
    assert path.is_file()


def test_count_statuses_lists_every_status_in_order() -> None:
    assert count_statuses([*RESULTS, result(5, RowStatus.INVALID)]) == {
        "valid": 0,
        "invalid": 2,
        "created": 1,
        "updated": 0,
        "skipped": 0,
        "failed": 0,
        "in_doubt": 0,
        "not_sent": 0,
    }


@pytest.mark.parametrize("suffix", [".csv", ".xlsx"])
def test_read_earlier_of_a_written_results_file(tmp_path: Path, suffix: str) -> None:
    path = tmp_path / f"out.results{suffix}"
    write_results(frame(), path)
    assert read_earlier(path) == {"a1b2": EarlierResult("created", "8100001", "12345678")}


def test_read_earlier_of_a_results_file_from_before_portal_ids(tmp_path: Path) -> None:
    path = tmp_path / "old.results.csv"
    path.write_text("title,row,status,meeting_id,row_key\nx,2,created,8100001,a1b2\n")
    assert read_earlier(path) == {"a1b2": EarlierResult("created", "8100001", None)}


def test_read_earlier_of_a_file_that_is_not_results(tmp_path: Path) -> None:
    path = tmp_path / "meetings.csv"
    path.write_text("title,status\nx,created\n")
    with pytest.raises(InputError) as caught:
        read_earlier(path)
    assert str(caught.value) == f"{path}: not a results file (no meeting_id, row_key column)"


def test_read_earlier_takes_a_killed_runs_journal_into_account(tmp_path: Path) -> None:
    path = tmp_path / "out.results.csv"
    earlier = [
        RowResult(2, "k2", RowOutcome(RowStatus.NOT_SENT)),
        RowResult(3, "k3", RowOutcome(RowStatus.NOT_SENT)),
    ]
    write_results(results_frame(INPUTS, earlier), path)
    created = RowResult(3, "k3", RowOutcome(RowStatus.CREATED, meeting_id="8100003"))
    append_results(results_frame(INPUTS.tail(1), [created]), journal_path(path))
    assert journal_path(path) == tmp_path / "out.results.journal.csv"
    assert read_earlier(path) == {
        "k2": EarlierResult("not_sent", None, None),
        "k3": EarlierResult("created", "8100003", None),
    }


def test_row_results_are_columns_and_objects_only_for_rows_read() -> None:
    results = RowResults.of(RESULTS)
    assert (len(results), results.take_changed()) == (2, [])
    results[1].outcome = RowOutcome(RowStatus.FAILED, error="gone")
    assert results.take_changed() == [1]
    assert results.columns()["status"].to_list() == ["created", "failed"]
    assert results.columns_of([1])["error"].to_list() == ["gone"]
    assert results.peek(0).outcome.meeting_id == "8100001" and results.take_changed() == []
    assert count_statuses(results)["failed"] == 1


def test_a_row_passing_through_is_let_go_once_folded_into_the_columns() -> None:
    results = RowResults.of(RESULTS)
    held = results[0]
    results.passing(1).outcome = RowOutcome(RowStatus.FAILED, error="gone")
    assert results.take_changed() == [0, 1]
    assert results.columns()["status"].to_list() == ["created", "failed"]
    assert set(results._objects) == {0}  # only the one somebody may still hold
    assert held is results[0] and results.passing(0) is held
    # Changed again after it was let go, the row goes to the journal as the columns have it.
    results.passing(1).outcome.attempts = 2
    results.columns()
    changed = results.columns_of(results.take_changed())
    assert changed["error"].to_list() == [None, "gone"] and changed["attempts"].to_list()[1] == 2


def test_a_field_set_for_many_rows_goes_in_the_columns_and_in_objects_already_read() -> None:
    results = RowResults.of(RESULTS)
    held = results[1]
    results.take_changed()
    results.set_many([0, 1], "status", RowStatus.NOT_SENT)
    results.set_many([0, 1], "row_key", ["k-0", "k-1"])
    assert results.column("status") == ["not_sent", "not_sent"]
    assert results.column("row_key") == ["k-0", "k-1"]
    assert held.outcome.status is RowStatus.NOT_SENT and held.row_key == "k-1"
    assert results.take_changed() == [0, 1]  # the journal gets them at the next checkpoint


def test_results_made_ahead_are_handed_out_as_the_columns_have_them() -> None:
    results = RowResults.of(RESULTS)
    results.ahead([0, 1])
    assert results.take_changed() == []  # made, not changed: nothing for the journal
    results.set_many([1], "status", RowStatus.NOT_SENT)  # after they were made
    assert results.peek(0).outcome.meeting_id == "8100001"
    assert [results.passing(i).outcome.status for i in (0, 1)] == [RowStatus.CREATED, RowStatus.NOT_SENT]
    assert results._ahead == {} and results.take_changed() == [0, 1]


def chunked(values: list[object], lengths: list[int], name: str) -> pl.Series:
    """A column in chunks of `lengths` rows, as the reader's chunks of rows leave the results."""
    starts = [sum(lengths[:i]) for i in range(len(lengths))]
    pieces = [pl.Series(name, values[s : s + n]) for s, n in zip(starts, lengths, strict=True)]
    column = pieces[0]
    for piece in pieces[1:]:
        column.append(piece)
    return column


def test_row_results_of_columns_chunked_apart_are_chunked_alike() -> None:
    """Rows read in chunks, columns made whole since: an expression over such a frame would copy every
    column, so the results are sliced alike instead (no copy), values and missing columns as given."""
    columns = pl.DataFrame(
        [
            chunked([2, 3, 4, 5, 6], [2, 3], "row"),
            chunked(["e", None, None, "f", None], [2, 3], "error"),
            pl.Series("status", ["invalid", "valid", "valid", "invalid", "valid"]),
        ]
    )
    results = RowResults(columns)
    layout = {name: results.columns()[name].chunk_lengths() for name in ("row", "error", "status")}
    assert layout == {"row": [2, 3], "error": [2, 3], "status": [2, 3]}
    assert results.column("error") == ["e", None, None, "f", None]
    assert results.column("meeting_id") == [None] * 5
    results.set_many([1, 2], "row_key", ["k-1", "k-2"])
    assert results.columns()["row_key"].chunk_lengths() == [2, 3]
    assert count_statuses(results)["invalid"] == 2


def test_results_lines_are_cut_where_the_input_or_the_outcome_is() -> None:
    """The input's columns and the outcome's are cut alike, where either is cut already: none is copied
    (columns no row has a value in yet are null literals, which have no chunks of their own)."""
    inputs = pl.DataFrame([chunked(["a", "b", "c", "d", "e"], [3, 2], "title")])
    results = RowResults(
        pl.DataFrame(
            [
                chunked([2, 3, 4, 5, 6], [2, 2, 1], "row"),
                pl.Series("status", ["valid"] * 5),
            ]
        )
    )
    lines = results_frame(inputs, results)
    assert [lines[name].chunk_lengths() for name in ("title", "row", "status")] == [[2, 1, 1, 1]] * 3
    assert lines["row"].to_list() == [2, 3, 4, 5, 6]
