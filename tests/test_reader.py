"""Reading sheets: CSV encodings and delimiters, Excel workbooks, headers, row numbers and input errors."""

from __future__ import annotations

import threading
import time
import zipfile
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from xml.sax.saxutils import escape

import pytest
import xlsxwriter

from importer import reader
from importer.config import load_settings
from importer.errors import InputError
from importer.reader import ParsedChunk, ParsedRow, Sheet, load_sheet, parse_rows

SAMPLES = Path(__file__).resolve().parents[1] / "samples"
JAPANESE_COLUMNS = {"件名": "title", "開始日時": "start", "終了日時": "end", "担当者メール": "owner_email"}
HEADER = "title,start,end,owner_email,deal_ids"
ROW = "Review,2026-12-01 10:00,2026-12-01 11:00,a@example.com,{id}"
XLSX_HEADER: list[object] = ["Title", "Start", "Duration minutes", "Owner email", "Deal IDs"]

WriteCsv = Callable[..., Path]
WriteXlsx = Callable[..., Path]


def load(path: Path, columns: dict[str, str] | None = None, /, **options: Any) -> Sheet:
    return load_sheet(path, columns=columns or {}, **options)


def failure(path: Path, columns: dict[str, str] | None = None, /, **options: Any) -> str:
    with pytest.raises(InputError) as caught:
        load(path, columns, **options)
    return str(caught.value)


def parsed(sheet: Sheet, build: bool = True, chunk_rows: int = 50_000) -> list[ParsedChunk]:
    return list(
        parse_rows(
            sheet,
            default_timezone="UTC",
            default_outcome="SCHEDULED",
            default_reminders="30m",
            build_meetings=build,
            chunk_rows=chunk_rows,
        )
    )


# --- CSV encodings ---

JAPANESE = (
    "件名,開始日時,終了日時,担当者メール,場所\r\n"
    "定例（㈱さくら商事）,2026/12/01 14:00,2026/12/01 15:00,aiko@example.co.jp,丸の内 ①会議室 髙橋様\r\n"
)


@pytest.mark.parametrize(
    ("encoding", "forced"),
    [
        ("utf-8", None),
        ("utf-8-sig", None),
        ("cp932", None),
        ("cp932", "cp932"),
        ("cp932", "shift_jis"),
        ("cp932", "Shift-JIS"),
        ("cp932", "sjis"),
        ("utf-8-sig", "utf-8"),
    ],
)
def test_japanese_text_arrives_exactly(write_csv: WriteCsv, encoding: str, forced: str | None) -> None:
    path = write_csv(JAPANESE, encoding=encoding)
    sheet = load(path, JAPANESE_COLUMNS, **({"encoding": forced} if forced else {}))
    assert sheet.frame.columns == ["件名", "開始日時", "終了日時", "担当者メール", "場所"]
    assert sheet.frame.row(0) == (
        "定例（㈱さくら商事）",
        "2026/12/01 14:00",
        "2026/12/01 15:00",
        "aiko@example.co.jp",
        "丸の内 ①会議室 髙橋様",
    )
    assert sheet.headers == {
        "title": "件名",
        "start": "開始日時",
        "end": "終了日時",
        "owner_email": "担当者メール",
    }


def test_japanese_sample_keeps_its_special_characters() -> None:
    sheet = load(
        SAMPLES / "meetings_ja.csv",
        {"件名": "title", "開始日時": "start", "終了日時": "end", "担当者メール": "owner_email"},
    )
    first = sheet.frame.row(0, named=True)
    assert first["場所"] == "東京都千代田区丸の内1-1-1 ㈱さくら商事 本社"
    assert first["内容"] == "議題：①来期予算 ②導入スケジュール"
    assert first["社内メモ"] == "髙橋部長も同席予定"
    assert sheet.frame.row(1, named=True)["内容"] == "新モデルのデモ\r\n質疑応答"


def test_unknown_encoding(write_csv: WriteCsv) -> None:
    path = write_csv(f"{HEADER}\n{ROW.format(id=1)}\n")
    assert failure(path, encoding="klingon") == "unknown encoding 'klingon' (try utf-8 or cp932)"


def test_text_that_is_not_the_forced_encoding(write_csv: WriteCsv) -> None:
    path = write_csv(JAPANESE, encoding="cp932")
    assert failure(path, encoding="utf-8") == f"{path}: line 1 is not valid utf-8 text"


def test_text_in_neither_detected_encoding(tmp_path: Path) -> None:
    path = tmp_path / "latin.csv"
    path.write_bytes(f"{HEADER}\n".encode() + b"Caf\x81 ,2026-12-01 10:00,,a@example.com,1\n")
    assert failure(path) == (
        f"{path}: line 2 is neither UTF-8 nor CP932 (Shift_JIS) text; name the encoding with --encoding"
    )


# --- CSV shape ---


@pytest.mark.parametrize("delimiter", [",", ";", "\t"])
def test_delimiter_is_sniffed(write_csv: WriteCsv, delimiter: str) -> None:
    text = f"{HEADER}\n{ROW.format(id=3100001)}\n".replace(",", delimiter)
    sheet = load(write_csv(text))
    assert sheet.frame.columns == HEADER.split(",")
    assert sheet.frame.row(0) == (
        "Review",
        "2026-12-01 10:00",
        "2026-12-01 11:00",
        "a@example.com",
        "3100001",
    )


def test_a_delimiter_inside_quotes_does_not_fool_the_sniffer(write_csv: WriteCsv) -> None:
    text = (
        'title;start;end;owner_email\n"Review; Q4, part 1";2026-12-01 10:00;2026-12-01 11:00;a@example.com\n'
    )
    assert load(write_csv(text)).frame["title"].to_list() == ["Review; Q4, part 1"]


@pytest.mark.parametrize("newline", ["\n", "\r\n"])
@pytest.mark.parametrize("encoding", ["utf-8", "cp932"])
def test_quoted_cells_keep_their_line_breaks(write_csv: WriteCsv, newline: str, encoding: str) -> None:
    body = f"Agenda:{newline}1. 更新{newline}2. 拡大"
    text = f'{HEADER},body{newline}Review,2026-12-01 10:00,2026-12-01 11:00,a@example.com,1,"{body}"{newline}'
    text += f"Next,2026-12-02 10:00,2026-12-02 11:00,a@example.com,2,{newline}"
    sheet = load(write_csv(text, encoding=encoding))
    assert sheet.frame["body"].to_list() == [body, None]
    assert sheet.row_numbers == [2, 3]


@pytest.mark.parametrize("value", ["0012345", "1.2E+10", "3100001.0", "00"])
def test_ids_stay_text(write_csv: WriteCsv, value: str) -> None:
    sheet = load(write_csv(f"{HEADER}\n{ROW.format(id=value)}\n"))
    assert sheet.frame["deal_ids"].to_list() == [value]


def test_blank_rows_are_skipped_and_counted(write_csv: WriteCsv) -> None:
    rows = [ROW.format(id=n) for n in (1, 2, 3)]
    text = f'{HEADER}\n\n{rows[0]}\n,,,,\n  , ,,,\n"Multi\nline",2026-12-01 10:00,,a@example.com,9\n{rows[1]}\n\n\n{rows[2]}\n\n'
    sheet = load(write_csv(text))
    assert sheet.row_numbers == [3, 6, 7, 10]
    assert sheet.frame["deal_ids"].to_list() == ["1", "9", "2", "3"]


def test_row_numbers_count_blank_lines_above_the_header(write_csv: WriteCsv) -> None:
    """As Excel shows the file: two empty lines, the header on row 3, the first meeting on row 4."""
    sheet = load(write_csv(f"\n\n{HEADER}\n{ROW.format(id=1)}\n"))
    assert sheet.row_numbers == [4]


@pytest.mark.parametrize("newline", ["\n", "\r\n"])
@pytest.mark.parametrize("bom", ["", "\ufeff"])
def test_header_below_title_rows_with_quoted_line_breaks(write_csv: WriteCsv, newline: str, bom: str) -> None:
    """polars reads the file from the header's line on: a line break inside a quoted title cell
    is a line to skip all the same, and a quote in a title row opens nothing below it."""
    title = f'"2027年1月{newline}商談予定",,,,{newline}5" monitors,,,,{newline}{newline}'
    text = f"{bom}{title}{HEADER}{newline}{ROW.format(id=1)}{newline}{ROW.format(id=2)}{newline}"
    sheet = load(write_csv(text))
    assert (sheet.row_numbers, sheet.frame["deal_ids"].to_list()) == ([5, 6], ["1", "2"])
    assert sheet.frame.columns == HEADER.split(",")


def test_title_lines_ending_in_a_bare_cr(write_csv: WriteCsv) -> None:
    """Lines ending in a CR alone (old Mac files), which polars does not count as lines: read as text."""
    sheet = load(write_csv(f"2027年1月 商談予定一覧,,,,\r\r{HEADER}\n{ROW.format(id=1)}\n"))
    assert (sheet.row_numbers, sheet.frame["deal_ids"].to_list()) == ([4], ["1"])


def test_a_file_cut_inside_a_quoted_cell(write_csv: WriteCsv) -> None:
    """The last row opens a quote the file never closes: its line is an invalid row, and so is the
    line after it (its cell's second line), read on its own; the rows before it are read."""
    sheet = load(write_csv(f'{HEADER},body\n{ROW.format(id=1)},x\n{ROW.format(id=2)},"Agenda:\n1. 予算'))
    assert sheet.frame["deal_ids"].to_list() == ["1", None, None]
    assert sheet.frame["title"].to_list()[2] == "1. 予算"
    assert {row: p.code.name for row, p in sheet.row_problems.items()} == {3: "UNTERMINATED_QUOTE"}


def test_a_header_past_the_first_64_kib(write_csv: WriteCsv) -> None:
    """The top of the file is read in growing pieces until the rows searched for the header are in."""
    notes = "".join(f"{'メモ' * 9000}\n" for _ in range(3))
    sheet = load(write_csv(f"{notes}{HEADER}\n{ROW.format(id=1)}\n"))
    assert (sheet.row_numbers, sheet.frame["deal_ids"].to_list()) == ([5], ["1"])


def test_results_columns_of_an_earlier_run_are_not_input(write_csv: WriteCsv) -> None:
    outcome = "row,status,meeting_id,error,http_status,correlation_id,attempts,row_key,warning"
    sheet = load(write_csv(f"{HEADER},{outcome}\n{ROW.format(id=1)},2,invalid,,bad,,,0,abc,\n"))
    assert sheet.frame.columns == HEADER.split(",")


# --- headers ---


def test_headers_match_after_trimming_case_and_spaces(write_csv: WriteCsv) -> None:
    text = " TITLE ,Start,End,Owner Email, deal-ids ,Notes\nReview,2026-12-01 10:00,,a@example.com,1,x\n"
    sheet = load(write_csv(text))
    assert sheet.headers == {
        "title": "TITLE",
        "start": "Start",
        "end": "End",
        "owner_email": "Owner Email",
        "deal_ids": "deal-ids",
    }
    assert sheet.unmapped == ["Notes"]


def test_config_columns_map_other_headers(write_csv: WriteCsv) -> None:
    text = "Subject,When,Minutes,Organiser\nReview,2026-12-01 10:00,30,a@example.com\n"
    columns = {
        "subject": "title",
        " WHEN ": "start",
        "minutes": "duration_minutes",
        "Organiser": "owner_email",
    }
    sheet = load(write_csv(text), columns)
    assert sheet.headers == {
        "title": "Subject",
        "start": "When",
        "duration_minutes": "Minutes",
        "owner_email": "Organiser",
    }


def test_two_headers_for_one_field(write_csv: WriteCsv) -> None:
    path = write_csv(f"Subject,{HEADER}\nx,{ROW.format(id=1)}\n")
    assert failure(path, {"Subject": "title"}) == f"{path}: columns 'Subject' and 'title' both map to 'title'"


def test_missing_columns_are_listed_with_what_the_file_has(write_csv: WriteCsv) -> None:
    path = write_csv("Subject,Notes\nReview,x\n")
    assert failure(path) == (
        f"{path}: missing column(s) title, start (or date and start_time), owner_email,"
        " end (or duration_minutes or end_time); the file has: Subject, Notes"
        " (map headers to fields in the config's [columns] table)"
    )


def test_duration_can_stand_in_for_end(write_csv: WriteCsv) -> None:
    sheet = load(write_csv("title,start,duration_minutes,owner_email\nx,2026-12-01 10:00,30,a@example.com\n"))
    assert "end" not in sheet.headers


# --- unusable files ---


@pytest.mark.parametrize("content", [b"", b"  \r\n\n", b"\xef\xbb\xbf", b"\xef\xbb\xbf\r\n"])
def test_empty_file(tmp_path: Path, content: bytes) -> None:
    path = tmp_path / "empty.csv"
    path.write_bytes(content)
    assert failure(path) == f"{path}: the file is empty"


@pytest.mark.parametrize("text", [f"{HEADER}\n", HEADER, f"{HEADER}\n\n,,,,\n\n"])
def test_header_without_data_rows_is_a_sheet_of_no_rows(write_csv: WriteCsv, text: str) -> None:
    """A night with no meetings is not an error: no rows to check, none to send."""
    sheet = load(write_csv(text))
    assert (sheet.frame.height, sheet.row_numbers, sheet.frame.columns) == (0, [], HEADER.split(","))
    assert parsed(sheet) == []


def test_binary_file(tmp_path: Path) -> None:
    path = tmp_path / "meetings.csv"
    path.write_bytes(b"PK\x03\x04\x14\x00\x00\x00\x08\x00" + bytes(range(256)))
    assert failure(path) == (
        f"{path}: not a CSV or Excel file (binary content); Excel files need an Excel suffix"
    )


def test_missing_file(tmp_path: Path) -> None:
    assert failure(tmp_path / "nope.csv") == f"{tmp_path / 'nope.csv'}: no such file"
    assert failure(tmp_path) == f"{tmp_path}: no such file"


# --- Excel ---


def xlsx_rows(*ids: object) -> list[list[object] | None]:
    rows: list[list[object] | None] = [XLSX_HEADER]
    for n, deal in enumerate(ids):
        rows.append([f"Meeting {n}", datetime(2027, 3, 14, 2, 30), 45, "a@example.com", deal])
    return rows


def test_xlsx_cells_arrive_as_text(write_xlsx: WriteXlsx) -> None:
    rows = xlsx_rows("0012345", 12_000_000_000, "1.2E+10")
    rows.append(["Typed", "2026/12/01 14:00", 1.5, "b@example.com", None])
    sheet = load(write_xlsx(rows))
    assert sheet.frame.rows() == [
        ("Meeting 0", "2027-03-14 02:30:00", "45", "a@example.com", "0012345"),
        ("Meeting 1", "2027-03-14 02:30:00", "45", "a@example.com", "12000000000"),
        ("Meeting 2", "2027-03-14 02:30:00", "45", "a@example.com", "1.2E+10"),
        ("Typed", "2026/12/01 14:00", "1.5", "b@example.com", None),
    ]
    assert sheet.headers == {
        "title": "Title",
        "start": "Start",
        "duration_minutes": "Duration minutes",
        "owner_email": "Owner email",
        "deal_ids": "Deal IDs",
    }


def test_xlsx_row_numbers_are_sheet_rows(write_xlsx: WriteXlsx) -> None:
    rows = xlsx_rows("1", "2")
    rows.insert(2, None)
    rows.insert(3, [None, None, None, "  ", None])
    sheet = load(write_xlsx(rows, first_row=2))
    assert sheet.row_numbers == [4, 7]


def test_xlsx_date_time_cells_become_utc(write_xlsx: WriteXlsx) -> None:
    rows = [
        [*XLSX_HEADER, "Timezone"],
        ["Tokyo", datetime(2026, 12, 1, 14, 0), 30, "a@example.com", None, "JST"],
    ]
    (chunk,) = parsed(load(write_xlsx(rows)))
    meeting = chunk[0].meeting
    assert meeting is not None
    assert (meeting.start, meeting.end) == (
        datetime(2026, 12, 1, 5, 0, tzinfo=UTC),
        datetime(2026, 12, 1, 5, 30, tzinfo=UTC),
    )


@pytest.mark.parametrize(
    ("choice", "title"), [(None, "first"), ("Second", "second"), ("2", "second"), ("1", "first")]
)
def test_sheet_by_name_or_position(tmp_path: Path, choice: str | None, title: str) -> None:
    path = two_sheets(tmp_path)
    sheet = load(path, **({"sheet": choice} if choice else {}))
    assert sheet.frame["Title"].to_list() == [title]


def test_a_sheet_named_like_a_number_wins_over_the_position(tmp_path: Path) -> None:
    path = two_sheets(tmp_path, second="1")
    assert load(path, sheet="1").frame["Title"].to_list() == ["second"]


@pytest.mark.parametrize("choice", ["Nope", "3", "0", "-1"])
def test_unknown_sheet_lists_the_sheets(tmp_path: Path, choice: str) -> None:
    path = two_sheets(tmp_path)
    assert failure(path, sheet=choice) == f"{path}: no sheet '{choice}'; the workbook has: First, Second"


def two_sheets(tmp_path: Path, second: str = "Second") -> Path:
    path = tmp_path / "two.xlsx"
    workbook = xlsxwriter.Workbook(str(path))
    for name, title in (("First", "first"), (second, "second")):
        sheet = workbook.add_worksheet(name)
        sheet.write_row(0, 0, XLSX_HEADER)
        sheet.write_row(1, 0, [title, "2026-12-01 10:00", 30, "a@example.com", "1"])
    workbook.close()
    return path


def test_empty_sheet(write_xlsx: WriteXlsx) -> None:
    path = write_xlsx([], sheet="Empty")
    assert failure(path) == f"{path}: sheet 'Empty' is empty"


def test_xlsx_header_only(write_xlsx: WriteXlsx) -> None:
    sheet = load(write_xlsx([XLSX_HEADER, None, None]))
    assert (sheet.frame.height, sheet.row_numbers, parsed(sheet)) == (0, [], [])


@pytest.mark.parametrize("cut", [0, 100, 1000])
def test_corrupt_xlsx_is_one_line(write_xlsx: WriteXlsx, cut: int) -> None:
    path = write_xlsx(xlsx_rows("1"))
    path.write_bytes(path.read_bytes()[:cut])
    assert failure(path) == (
        f"{path}: not a readable Excel file (CalamineError: calamine error: Xlsx error: Zip error:"
        " invalid Zip archive: Could not find EOCD)"
    )


def test_csv_text_named_xlsx(tmp_path: Path) -> None:
    path = tmp_path / "meetings.xlsx"
    path.write_text(f"{HEADER}\n{ROW.format(id=1)}\n")
    assert failure(path).startswith(f"{path}: not a readable Excel file (CalamineError: ")


def test_xlsm_is_read_like_xlsx(write_xlsx: WriteXlsx) -> None:
    sheet = load(write_xlsx(xlsx_rows("0012345"), name="macros.xlsm"))
    assert sheet.frame.row(0) == ("Meeting 0", "2027-03-14 02:30:00", "45", "a@example.com", "0012345")


def test_ods(tmp_path: Path) -> None:
    """An OpenDocument sheet built by hand (no writer among the dependencies): text, a number, a date-time."""
    path = tmp_path / "meetings.ods"
    write_ods(
        path,
        [
            ["Title", "Start", "Duration minutes", "Owner email", "Deal IDs"],
            ["Review", "2026-12-01 10:00", 30, "a@example.com", "0012345"],
        ],
    )
    sheet = load(path)
    assert sheet.row_numbers == [3]
    assert sheet.frame.row(0) == ("Review", "2026-12-01 10:00", "30", "a@example.com", "0012345")


@pytest.mark.skip(reason="no .xls (BIFF8) writer among the dependencies; xlsxwriter writes xlsx only")
def test_xls() -> None:
    """Kept as a marker: the .xls suffix goes to the Excel reader (see test_xls_suffix_goes_to_excel)."""


def test_xls_suffix_goes_to_excel(tmp_path: Path) -> None:
    path = tmp_path / "old.xls"
    path.write_text(f"{HEADER}\n{ROW.format(id=1)}\n")
    assert failure(path).startswith(f"{path}: not a readable Excel file (CalamineError: ")


def write_ods(path: Path, rows: list[list[object]]) -> None:
    """The smallest ODS calamine reads: a mimetype, a manifest and content.xml with one table."""

    def cell(value: object) -> str:
        if isinstance(value, int | float):
            return f'<table:table-cell office:value-type="float" office:value="{value}"><text:p>{value}</text:p></table:table-cell>'
        return f'<table:table-cell office:value-type="string"><text:p>{escape(str(value))}</text:p></table:table-cell>'

    body = "".join("<table:table-row>" + "".join(cell(v) for v in row) + "</table:table-row>" for row in rows)
    ns = (
        'xmlns:office="urn:oasis:names:tc:opendocument:xmlns:office:1.0" '
        'xmlns:table="urn:oasis:names:tc:opendocument:xmlns:table:1.0" '
        'xmlns:text="urn:oasis:names:tc:opendocument:xmlns:text:1.0"'
    )
    content = (
        f'<?xml version="1.0" encoding="UTF-8"?><office:document-content {ns} office:version="1.2">'
        '<office:body><office:spreadsheet><table:table table:name="Meetings">'
        "<table:table-row><table:table-cell/></table:table-row>"  # an empty first row
        f"{body}</table:table></office:spreadsheet></office:body></office:document-content>"
    )
    manifest = (
        '<?xml version="1.0" encoding="UTF-8"?><manifest:manifest '
        'xmlns:manifest="urn:oasis:names:tc:opendocument:xmlns:manifest:1.0" manifest:version="1.2">'
        '<manifest:file-entry manifest:full-path="/" manifest:media-type="application/vnd.oasis.opendocument.spreadsheet"/>'
        '<manifest:file-entry manifest:full-path="content.xml" manifest:media-type="text/xml"/></manifest:manifest>'
    )
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("mimetype", "application/vnd.oasis.opendocument.spreadsheet")
        archive.writestr("META-INF/manifest.xml", manifest, compress_type=zipfile.ZIP_DEFLATED)
        archive.writestr("content.xml", content, compress_type=zipfile.ZIP_DEFLATED)


# --- rows -> meetings ---


def test_parse_rows_builds_meetings_and_keeps_problems(write_csv: WriteCsv) -> None:
    text = (
        f"{HEADER}\n{ROW.format(id=3100001)}\n\n"
        "Bad,2026-12-01 10:00,2026-12-01 09:00,a@example.com,1\n"
        "Twice,2027-11-07 01:30,2027-11-07 01:45,a@example.com,\n"
    )
    (chunk,) = parsed(load(write_csv(text)))
    assert [(p.row, p.error, p.warning) for p in chunk] == [
        (2, None, None),
        (4, "end: must be after start", None),
        (5, None, None),
    ]
    first = chunk[0].meeting
    assert first is not None and first.deal_ids == ("3100001",) and first.reminders[0].number == 30
    assert chunk[1].meeting is None


def test_parse_rows_dry_run_builds_no_meetings(write_csv: WriteCsv) -> None:
    text = f"{HEADER},timezone\n{ROW.format(id=1)},UTC\nTwice,2027-11-07 01:30,2027-11-07 02:30,a@example.com,,America/New_York\n"
    (chunk,) = parsed(load(write_csv(text)), build=False)
    assert [(p.row, p.meeting, p.error) for p in chunk] == [(2, None, None), (3, None, None)]
    assert chunk[1].warning == (
        "start: '2027-11-07 01:30' occurs twice in America/New_York (daylight saving time ends);"
        " took the first, 2027-11-07 05:30Z"
    )


def test_parse_rows_in_chunks_keeps_row_numbers(write_csv: WriteCsv) -> None:
    lines = [ROW.format(id=n) for n in range(1, 6)]
    lines.insert(2, "")
    chunks = parsed(load(write_csv("\n".join([HEADER, *lines]) + "\n")), chunk_rows=2)
    assert [[p.row for p in chunk] for chunk in chunks] == [[2, 3], [5, 6], [7]]


def test_chunks_parsed_on_threads_come_back_in_order_and_few_at_a_time() -> None:
    """The first chunk takes longest; each comes back in sheet order, no more than _WORKERS + 1 are
    begun and not yet handed out, and the threads go on while the caller holds one (a dry run writes
    its lines then): the caller, holding the first, sees the next ones begun."""
    lock = threading.Lock()
    started: list[int] = []
    taken: list[int] = []
    ahead = threading.Event()

    def work(item: int) -> int:
        with lock:
            assert len(started) - len(taken) < reader._WORKERS + 1
            started.append(item)
        if item == reader._WORKERS + 1:
            ahead.set()
        time.sleep(0.05 if item == 0 else 0.001)
        return item * 10

    for result in reader._in_order(work, range(6)):
        taken.append(result // 10)
        if result == 0:
            assert ahead.wait(timeout=10)
    assert taken == [0, 1, 2, 3, 4, 5]


def test_a_chunk_that_fails_stops_the_rows_with_its_error() -> None:
    def work(item: int) -> int:
        if item == 1:
            raise ValueError("chunk 1")
        return item

    with pytest.raises(ValueError, match="chunk 1"):
        list(reader._in_order(work, range(4)))


def test_samples_parse_to_the_readme_statuses() -> None:
    """The bad rows the README's "Samples" section names, and nothing else, are invalid."""
    japanese = {
        "件名": "title",
        "開始日時": "start",
        "終了日時": "end",
        "所要時間（分）": "duration_minutes",
        "タイムゾーン": "timezone",
        "担当者メール": "owner_email",
        "場所の種類": "location_type",
    }
    cases = [
        (SAMPLES / "meetings_en.csv", {}, "UTC", [8, 9, 10]),
        (SAMPLES / "meetings_ja.csv", japanese, "Asia/Tokyo", [7, 8, 13]),
        (SAMPLES / "meetings.xlsx", {}, "UTC", [7, 8]),
    ]
    for path, columns, zone, invalid in cases:
        chunks = parse_rows(
            load(path, columns), default_timezone=zone, default_outcome="SCHEDULED", default_reminders="30m"
        )
        rows = [p for chunk in chunks for p in chunk]
        assert [p.row for p in rows if p.error] == invalid, path.name
        assert all(p.meeting is not None for p in rows if not p.error), path.name


# --- Japanese sheets as sales ops keep them (files made by tests/data/make_japanese.py) ---

DATA = Path(__file__).resolve().parent / "data"
JA = load_settings(Path(__file__).resolve().parents[1] / "config" / "japanese.toml", {}, {}).columns
SPELLED = (
    "(write e.g. 2026/12/01 14:00, 2026年12月1日 午後2時, 令和8年12月1日 14:00 or 2026-12-01T14:00:00+09:00)"
)
NO_TIME = (
    "has a date but no time of day (write e.g. 2026/12/01 14:00, or give the time in a start_time column)"
)
NO_DATE = "has a time of day but no date (write e.g. 2026/12/01 14:00, or give the date in a date column)"


def by_title(sheet: Sheet, zone: str = "Asia/Tokyo", build: bool = True) -> dict[str, ParsedRow]:
    """Each row's outcome under the title in its 件名 cell (the case's name in the data files)."""
    rows = [
        p
        for chunk in parse_rows(
            sheet,
            default_timezone=zone,
            default_outcome="SCHEDULED",
            default_reminders="30m",
            build_meetings=build,
        )
        for p in chunk
    ]
    titles = sheet.frame[sheet.headers["title"]].to_list()
    return dict(zip(titles, rows, strict=True))


def sent(row: ParsedRow, end: bool = False) -> str:
    """The start (or end) exactly as it goes to HubSpot."""
    assert row.meeting is not None, row.error
    return str(row.meeting.body_without_ids()["properties"][f"hs_meeting_{'end' if end else 'start'}_time"])


@pytest.mark.parametrize(
    ("zone", "instant", "read"),
    [
        ("Asia/Tokyo", "2027-01-05T05:00:00Z", "2027-01-05T14:00:00+09:00"),
        ("UTC", "2027-01-05T14:00:00Z", "2027-01-05T14:00:00+00:00"),
        ("America/New_York", "2027-01-05T19:00:00Z", "2027-01-05T14:00:00-05:00"),
    ],
)
def test_a_time_without_zone_is_read_in_the_zone_given(zone: str, instant: str, read: str) -> None:
    """No zone in the row or the config: the pipeline passes the HubSpot account's zone, never UTC blindly."""
    row = by_title(load(DATA / "ja_times.csv", JA), zone)["no-zone"]
    assert (sent(row), row.start_read) == (instant, read)


def test_start_read_is_filled_for_every_row_whose_start_was_read() -> None:
    """As ISO 8601 with the offset used: the zone's, or the one written in the cell; dry run and invalid rows too."""
    times = by_title(load(DATA / "ja_times.csv", JA), build=False)
    assert [times[t].start_read for t in ("no-zone", "offset-utc", "jst", "date-only")] == [
        "2027-01-05T14:00:00+09:00",
        "2027-01-05T05:00:00+00:00",
        "2027-01-05T14:00:00+09:00",
        None,
    ]
    invalid = by_title(load(DATA / "ja_lists.csv", JA))["保留の商談"]
    assert (invalid.error is not None, invalid.start_read) == (True, "2027-01-05T15:00:00+09:00")


@pytest.mark.parametrize(
    ("case", "instant"),
    [
        ("era", "2027-01-05T05:00:00Z"),
        ("era-letter-dots", "2027-01-05T05:00:00Z"),
        ("era-letter-slashes", "2027-01-05T05:00:00Z"),
        ("era-lower-case", "2027-01-05T05:00:00Z"),
        ("era-weekday-pm", "2027-01-05T05:30:00Z"),
        ("full-width", "2027-01-05T05:00:00Z"),
        ("pm-colon", "2027-01-05T05:00:00Z"),
        ("pm-hour", "2027-01-05T05:00:00Z"),
        ("am-twelve", "2027-01-04T15:30:00Z"),
        ("pm-zero", "2027-01-05T03:30:00Z"),
        ("hour-kanji", "2027-01-05T05:00:00Z"),
        ("half-past", "2027-01-05T05:30:00Z"),
        ("jst", "2027-01-05T05:00:00Z"),
        ("offset", "2027-01-05T05:00:00Z"),
        ("offset-utc", "2027-01-05T05:00:00Z"),
        ("reiwa-first-day", "2019-05-01T01:00:00Z"),
        ("heisei-last-day", "2019-04-30T01:00:00Z"),
        ("heisei-square", "2019-04-30T01:00:00Z"),
        ("heisei-letter", "2019-04-30T01:00:00Z"),
        ("heisei-first-day", "1989-01-08T00:00:00Z"),
        ("showa-last-day", "1989-01-07T00:00:00Z"),
    ],
)
def test_japanese_time_spellings_in_a_cp932_sheet(case: str, instant: str) -> None:
    assert sent(by_title(load(DATA / "ja_times.csv", JA))[case]) == instant


@pytest.mark.parametrize(
    ("case", "message"),
    [
        (
            "after-heisei",
            "開始日時: '平成31年5月1日 10:00' is not a date of the 平成 era (1989-01-08 to 2019-04-30)",
        ),
        ("before-reiwa", "開始日時: '令和1年4月30日 10:00' is not a date of the 令和 era (from 2019-05-01)"),
        ("date-only", f"開始日時: '2027/1/5' {NO_TIME}"),
        ("pm-fourteen", f"開始日時: cannot read '2027/1/5 午後14:00' as a date and time {SPELLED}"),
    ],
)
def test_japanese_times_that_are_refused(case: str, message: str) -> None:
    row = by_title(load(DATA / "ja_times.csv", JA))[case]
    assert (row.meeting, row.error) == (None, message)


@pytest.mark.parametrize("name", ["ja_excel_cells.xlsx", "ja_excel_cells_1904.xlsx"])
def test_excel_date_only_and_time_only_cells(name: str) -> None:
    """A date-only cell is no longer a meeting at midnight; a time-only cell says what it lacks."""
    rows = by_title(load(DATA / name, JA))
    assert sent(rows["date-time"]) == "2027-01-05T05:00:00Z"
    assert rows["date-only"].error == f"開始日時: '2027-01-05' {NO_TIME}"
    assert rows["time-only"].error == f"開始日時: '14:00:00' {NO_DATE}"
    assert sent(rows["duration-clock"], end=True) == "2027-01-05T06:30:00Z"  # [h]:mm 1:30 is 90 minutes


def test_date_and_times_in_separate_columns_below_title_rows() -> None:
    """日付 | 開始時刻 | 終了時刻 in CP932 under a title and a blank row: the header is found, rows keep their numbers."""
    sheet = load(DATA / "ja_separate_columns.csv", JA)
    assert sheet.row_numbers == [5, 6, 7, 8, 9]
    rows = by_title(sheet)
    assert [(sent(rows[t]), sent(rows[t], end=True)) for t in list(rows)[:3]] == [
        ("2027-01-05T05:00:00Z", "2027-01-05T06:00:00Z"),
        ("2027-01-06T05:00:00Z", "2027-01-06T06:30:00Z"),
        ("2027-01-07T01:00:00Z", "2027-01-07T02:00:00Z"),
    ]
    assert rows["時刻なし"].error == f"日付 + 開始時刻: '2027/1/8' {NO_TIME}"
    assert rows["日付なし"].error == f"日付 + 開始時刻: '14:00' {NO_DATE}"


def test_end_time_without_a_date_column_falls_on_the_start_day(write_csv: WriteCsv) -> None:
    path = write_csv("件名,開始日時,終了時刻,担当者メール\n定例,令和9年1月5日 23:00,23:30,a@example.com\n")
    row = by_title(load(path, JA))["定例"]
    assert (sent(row), sent(row, end=True)) == ("2027-01-05T14:00:00Z", "2027-01-05T14:30:00Z")


def test_excel_header_below_a_merged_title_on_the_first_visible_sheet() -> None:
    sheet = load(DATA / "ja_title_rows.xlsx", JA)
    assert (sheet.sheet_name, sheet.other_sheets, sheet.row_numbers) == (
        "商談予定",
        ["マスタ", "メモ"],
        [5, 6, 7],
    )
    rows = by_title(sheet)
    assert [(sent(r), sent(r, end=True)) for r in rows.values()] == [
        ("2027-01-05T05:00:00Z", "2027-01-05T06:00:00Z"),
        ("2027-01-06T01:30:00Z", "2027-01-06T03:00:00Z"),
        ("2027-01-07T05:00:00Z", "2027-01-07T06:00:00Z"),
    ]
    assert rows["さくら商事 定例"].meeting is not None and rows["さくら商事 定例"].meeting.deal_ids == (
        "3100004",
    )


@pytest.mark.parametrize("choice", ["商談予定", " 商談予定 ", "2"])
def test_sheet_choice_is_trimmed(choice: str) -> None:
    assert load(DATA / "ja_title_rows.xlsx", JA, sheet=choice).sheet_name == "商談予定"


def test_a_hidden_sheet_is_read_when_named() -> None:
    path = DATA / "ja_title_rows.xlsx"
    assert failure(path, JA, sheet="マスタ") == (
        f"{path}: missing column(s) title, start (or date and start_time), owner_email,"
        " end (or duration_minutes or end_time); the file has: 担当者, メール (map headers to fields in the config's [columns] table)"
    )


def test_header_row_forced(write_csv: WriteCsv) -> None:
    """Past the rows searched, the header is found only when named; a row that is no header says so."""
    path = write_csv("\n".join(["メモ"] * 21 + [HEADER, ROW.format(id=1)]) + "\n")
    assert failure(path).startswith(f"{path}: missing column(s) title, start (or date and start_time),")
    assert load(path, header_row=22).row_numbers == [23]
    separate = DATA / "ja_separate_columns.csv"
    assert load(separate, JA, header_row=4).row_numbers == [5, 6, 7, 8, 9]
    assert failure(separate, JA, header_row=2).startswith(
        f"{separate}: missing column(s) title, start (or date and start_time), owner_email,"
        " end (or duration_minutes or end_time); row 2 (header_row) has: 作成: 営業企画部"
    )
    assert failure(separate, JA, header_row=40) == f"{separate}: no row 40 (header_row); the sheet has 9"


def test_headers_match_after_nfkc_and_unmapped_ones_are_named(caplog: pytest.LogCaptureFixture) -> None:
    path = DATA / "ja_headers.csv"
    sheet = load(path, JA)
    assert (sheet.headers["duration_minutes"], sheet.headers["deal_ids"]) == ("所要時間(分)", "取引ＩＤ")
    assert sheet.unmapped == ["取引先担当者メールアドレス", "備考"]
    assert [r.getMessage() for r in caplog.records if r.name == "importer.reader"] == [
        f"{path}: columns not imported, as they map to no field: 取引先担当者メールアドレス, 備考"
    ]
    meeting = by_title(sheet)["定例"].meeting
    assert meeting is not None and (meeting.deal_ids, meeting.contact_emails) == (("3100004",), ())


def test_two_columns_for_one_field_stop_the_run() -> None:
    path = DATA / "ja_two_starts.csv"
    assert failure(path, JA) == f"{path}: two columns are named '開始日時' (field 'start'); keep one"


@pytest.mark.parametrize("encoding", [None, "utf-16", "UTF-16"])
def test_utf16_unicode_text_from_excel(encoding: str | None) -> None:
    """Excel's "Unicode テキスト": UTF-16 with a BOM, tab-separated, CRLF; a quoted cell keeps its line break."""
    sheet = load(DATA / "ja_unicode_text.txt", JA, **({"encoding": encoding} if encoding else {}))
    assert sheet.frame["内容"].to_list() == ["議題：①来期予算", "デモ\r\n質疑応答"]
    rows = by_title(sheet)
    assert [(sent(r), sent(r, end=True)) for r in rows.values()] == [
        ("2027-01-05T05:00:00Z", "2027-01-05T06:00:00Z"),
        ("2027-01-06T01:30:00Z", "2027-01-06T03:00:00Z"),
    ]


def test_a_mostly_utf8_file_is_never_read_as_cp932() -> None:
    """One stray CP932 line (髙橋様) in a UTF-8 file: stop and name it, rather than send every title as mojibake."""
    path = DATA / "ja_stray_cp932.csv"
    assert failure(path, JA) == (
        f"{path}: line 5 is not valid UTF-8 text, unlike the rest of the file; correct it,"
        " or name the encoding with --encoding"
    )
    assert failure(path, JA, encoding="utf-8") == f"{path}: line 5 is not valid utf-8 text"


@pytest.mark.parametrize("build", [True, False])
def test_malformed_lines_are_invalid_rows_and_the_others_go_on(build: bool) -> None:
    sheet = load(DATA / "ja_malformed.csv", JA)
    assert sheet.row_numbers == [2, 3, 4, 5, 6]
    assert sheet.frame["件名"].to_list() == [
        "商談A",
        "商談B,2027/1/5 11:00,30,aiko.tanaka@example.co.jp,東京都千代田区丸の内1-1-1, ㈱さくら商事",
        "商談C",
        '"商談D,2027/1/5 13:00,30,aiko.tanaka@example.co.jp,本社',
        "商談E",
    ]
    rows = list(by_title(sheet, build=build).values())
    assert [(r.row, r.error) for r in rows] == [
        (2, None),
        (3, "line 3: 6 cells where the header has 5 (put quotes around a cell with ',' in it)"),
        (4, None),
        (5, 'line 5: unterminated quote (a " opens a cell that is never closed)'),
        (6, None),
    ]
    if build:
        assert [sent(rows[i]) for i in (0, 2, 4)] == [
            "2027-01-05T01:00:00Z",
            "2027-01-05T03:00:00Z",
            "2027-01-05T05:00:00Z",
        ]


def test_malformed_line_numbers_count_lines_not_rows(write_csv: WriteCsv) -> None:
    """Line numbers are the text file's (a quoted cell's line breaks count); row numbers are Excel's."""
    text = f'{HEADER},body\n{ROW.format(id=1)},"two\nlines"\n"Bad, 2026-12-01 10:00,,a@example.com,2,x\n'
    text += 'Literal 5" quote,2026-12-01 10:00,,a@example.com,3,x\n'
    sheet = load(write_csv(text))
    assert {row: p.render() for row, p in sheet.row_problems.items()} == {
        3: 'line 4: unterminated quote (a " opens a cell that is never closed)'
    }
    assert sheet.row_problems[3].code.name == "UNTERMINATED_QUOTE"
    assert sheet.frame["title"].to_list()[2] == 'Literal 5" quote'


def test_extra_empty_cells_at_the_end_of_a_line_are_no_problem(write_csv: WriteCsv) -> None:
    sheet = load(write_csv(f"{HEADER}\n{ROW.format(id=1)},,\n{ROW.format(id=2)},x\n"))
    assert {row: p.render() for row, p in sheet.row_problems.items()} == {
        3: "line 3: 6 cells where the header has 5 (put quotes around a cell with ',' in it)"
    }
    assert sheet.row_problems[3].code.name == "INCORRECT_NUMBER_OF_COLUMNS"
    assert sheet.frame["deal_ids"].to_list() == ["1", None]


def test_lists_split_on_japanese_separators_and_values_are_nfkc() -> None:
    meeting = by_title(load(DATA / "ja_lists.csv", JA))["定例"].meeting
    assert meeting is not None
    assert (meeting.owner_email, meeting.contact_emails, meeting.deal_ids) == (
        "aiko.tanaka@example.co.jp",
        ("a@sakura.co.jp", "b@sakura.co.jp", "c@sakura.co.jp"),
        ("310001", "310002"),
    )
    assert (meeting.outcome, meeting.location_type, [r.to_hubspot() for r in meeting.reminders]) == (
        "COMPLETED",
        "PHONE",
        [{"numberOfTimeUnits": 1, "timeUnit": "DAYS"}, {"numberOfTimeUnits": 30, "timeUnit": "MINUTES"}],
    )


def test_allowed_values_name_the_japanese_words_too() -> None:
    assert by_title(load(DATA / "ja_lists.csv", JA))["保留の商談"].error == (
        "場所の種類: 'オンライン' is not one of ADDRESS/住所, CUSTOM/その他, PHONE/電話 (any case); "
        "結果: '保留' is not one of SCHEDULED/予定, COMPLETED/完了, RESCHEDULED/日程変更, NO_SHOW/無断欠席,"
        " CANCELED/キャンセル (any case)"
    )


def test_missing_columns_name_the_row_most_like_a_header(write_csv: WriteCsv) -> None:
    path = write_csv("2027年1月 商談予定一覧,,\n件名,開始日時,終了日時\n定例,2027/1/5 14:00,2027/1/5 15:00\n")
    assert failure(path, JA) == (
        f"{path}: missing column(s) owner_email; row 2, the closest to a header, has: 件名, 開始日時, 終了日時"
        " (map headers to fields in the config's [columns] table)"
    )


def test_half_width_katakana_in_cp932_is_not_taken_for_utf8(tmp_path: Path) -> None:
    """ｶﾌﾞｼｷｶﾞｲｼｬ in CP932 holds byte pairs that are valid UTF-8 too: the file is CP932 all the same."""
    path = tmp_path / "kana.csv"
    path.write_bytes(
        f"{HEADER}\nﾃｽﾄ ｶﾌﾞｼｷｶﾞｲｼｬ 定例,2026-12-01 10:00,2026-12-01 11:00,a@example.com,1\n".encode("cp932")
    )
    assert load(path).frame["title"].to_list() == ["ﾃｽﾄ ｶﾌﾞｼｷｶﾞｲｼｬ 定例"]


def test_a_stray_byte_before_any_japanese_still_means_utf8(tmp_path: Path) -> None:
    path = tmp_path / "stray.csv"
    rows = "".join(f"商談{n},2026-12-01 10:00,2026-12-01 11:00,a@example.com,{n}\n" for n in range(1, 50))
    path.write_bytes(
        f"{HEADER}\n".encode() + "髙,2026-12-01 10:00,,a@example.com,9\n".encode("cp932") + rows.encode()
    )
    assert failure(path) == (
        f"{path}: line 2 is not valid UTF-8 text, unlike the rest of the file; correct it,"
        " or name the encoding with --encoding"
    )


@pytest.mark.parametrize("separator", ["\t", ";", ","])
def test_separator_is_found_below_a_title_line_without_any(write_csv: WriteCsv, separator: str) -> None:
    text = f"2027年1月 商談予定一覧\n\n{HEADER}\n{ROW.format(id=1)}\n".replace(",", separator)
    sheet = load(write_csv(text))
    assert (sheet.row_numbers, sheet.frame["deal_ids"].to_list()) == ([4], ["1"])
