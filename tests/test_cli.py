"""The command line through click's runner: exact output lines and exit codes; one real subprocess."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import click
import polars as pl
import pytest
from click.testing import CliRunner, Result
from hypothesis import given
from hypothesis import strategies as st

from importer.cli import _NO_LINE_END, _NO_LINE_START, _columns, _wrapped, main
from importer.models import RESULT_COLUMNS

REPO = Path(__file__).resolve().parents[1]
SAMPLES = REPO / "samples"
HEADER = "title,start,end,owner_email\n"
GOOD = "Review,2026-12-01 10:00,2026-12-01 11:00,a@example.com\n"
BAD = "Broken,2026-12-01 10:00,2026-12-01 09:00,a@example.com\n"

WriteCsv = Callable[..., Path]


def invoke(*args: str | Path) -> Result:
    return CliRunner().invoke(main, [str(a) for a in args])


def stdout_lines(result: Result) -> list[str]:
    """stdout with the run's duration, the one figure that varies, written as <s>."""
    return re.sub(r"duration_s=\d+\.\d", "duration_s=<s>", result.stdout).splitlines()


def assert_stopped(result: Result, message: str) -> None:
    """Exit 2, nothing on stdout, exactly `Error: <message>` on stderr and no traceback."""
    assert (result.exit_code, result.stdout, result.stderr) == (2, "", f"Error: {message}\n")
    assert isinstance(result.exception, SystemExit)


def statuses(results: Path) -> dict[int, str]:
    frame = pl.read_csv(results, infer_schema=False)
    return {int(row): status for row, status in zip(frame["row"], frame["status"], strict=True)}


# --- exit 0 and 1 ---


def test_all_rows_valid_exits_0(write_csv: WriteCsv, tmp_path: Path) -> None:
    path = write_csv(HEADER + GOOD + GOOD.replace("Review", "Demo"))
    result = invoke("run", path, "--dry-run")
    assert (result.exit_code, result.stderr) == (0, "")
    results = tmp_path / "meetings.dry-run.csv"
    assert stdout_lines(result) == [
        "summary: valid=2 duration_s=<s> requests=0 searches=0",
        "times without a zone: UTC (no default_timezone; a real run uses the HubSpot account's)",
        f"results: {results}",
    ]
    assert statuses(results) == {2: "valid", 3: "valid"}


def test_a_us_sheet_reads_with_its_date_order(tmp_path: Path) -> None:
    """US Excel writes month/day/year: refused with a hint until --date-order names the order."""
    path = tmp_path / "us.csv"
    shutil.copy(REPO / "tests" / "data" / "us_excel_dates.csv", path)
    results = tmp_path / "us.dry-run.csv"
    assert invoke("run", path, "--dry-run", "--results", results).exit_code == 1
    frame = pl.read_csv(results, infer_schema=False)
    assert set(frame["error_code"]) == {"DATE_ORDER_NEEDED;DATE_ORDER_NEEDED"}
    result = invoke("run", path, "--dry-run", "--results", results, "--date-order", "mdy")
    assert (result.exit_code, result.stderr) == (0, "")
    assert pl.read_csv(results, infer_schema=False)["start_read"].to_list() == [
        "2027-02-13T14:00:00+00:00",
        "2027-12-01T09:30:00+00:00",
        "2027-01-02T16:00:00+00:00",
    ]


def test_some_rows_invalid_exits_1(write_csv: WriteCsv, tmp_path: Path) -> None:
    path = write_csv(HEADER + GOOD + BAD)
    out = tmp_path / "out" / "r.xlsx"
    result = invoke("run", path, "--dry-run", "--results", out)
    assert (result.exit_code, result.stderr) == (1, "")
    assert stdout_lines(result) == [
        "summary: valid=1 invalid=1 duration_s=<s> requests=0 searches=0",
        "times without a zone: UTC (no default_timezone; a real run uses the HubSpot account's)",
        f"results: {out}",
    ]
    back = pl.read_excel(out, read_options={"dtypes": "string"})
    assert back.select("row", "status", "error").rows() == [
        ("2", "valid", None),
        ("3", "invalid", "end: must be after start"),
    ]


def test_sheet_flag_reaches_the_reader(tmp_path: Path) -> None:
    workbook, results = SAMPLES / "meetings.xlsx", tmp_path / "r.csv"
    assert invoke("run", workbook, "--dry-run", "--sheet", "Meetings", "--results", results).exit_code == 1
    assert_stopped(
        invoke("run", workbook, "--dry-run", "--sheet", "2", "--results", results),
        f"{workbook}: missing column(s) title, start (or date and start_time), owner_email,"
        " end (or duration_minutes or end_time); the file has: The importer reads the first sheet unless"
        " --sheet says otherwise. (map headers to fields in the config's [columns] table)",
    )


def test_header_row_flag_reaches_the_reader(write_csv: WriteCsv, tmp_path: Path) -> None:
    path = write_csv("Meetings for January\n" * 25 + HEADER + GOOD)
    results = tmp_path / "r.csv"
    assert invoke("run", path, "--dry-run", "--results", results).exit_code == 2  # past the rows searched
    assert invoke("run", path, "--dry-run", "--results", results, "--header-row", "26").exit_code == 0
    assert statuses(results) == {27: "valid"}


def test_environment_reaches_the_settings(write_csv: WriteCsv, monkeypatch: pytest.MonkeyPatch) -> None:
    """A time in Tokyo's default zone at 2027-03-14 02:30 exists; in New York's it does not."""
    path = write_csv("title,start,duration_minutes,owner_email\nSpring,2027-03-14 02:30,30,a@example.com\n")
    assert invoke("run", path, "--dry-run").exit_code == 0
    monkeypatch.setenv("MEETING_IMPORTER_DEFAULT_TIMEZONE", "America/New_York")
    assert invoke("run", path, "--dry-run").exit_code == 1


# --- exit 2: one line on stderr ---


def test_missing_file(tmp_path: Path) -> None:
    path = tmp_path / "nope.csv"
    assert_stopped(invoke("run", path, "--dry-run"), f"{path}: no such file")


def test_empty_file(write_csv: WriteCsv) -> None:
    path = write_csv("")
    assert_stopped(invoke("run", path, "--dry-run"), f"{path}: the file is empty")


def test_header_only_is_a_night_without_meetings(write_csv: WriteCsv, tmp_path: Path) -> None:
    path = write_csv(HEADER)
    result = invoke("run", path, "--dry-run")
    assert (result.exit_code, result.stderr) == (0, "")
    assert stdout_lines(result)[0] == "summary: rows=0 duration_s=<s> requests=0 searches=0"
    assert statuses(tmp_path / "meetings.dry-run.csv") == {}


def test_not_a_spreadsheet(tmp_path: Path) -> None:
    path = tmp_path / "photo.csv"
    path.write_bytes(b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR")
    assert_stopped(
        invoke("run", path, "--dry-run"),
        f"{path}: not a CSV or Excel file (binary content); Excel files need an Excel suffix",
    )


def test_corrupt_xlsx(tmp_path: Path) -> None:
    path = tmp_path / "meetings.xlsx"
    path.write_bytes((SAMPLES / "meetings.xlsx").read_bytes()[:2000])
    assert_stopped(
        invoke("run", path, "--dry-run"),
        f"{path}: not a readable Excel file (CalamineError: calamine error: Xlsx error: Zip error:"
        " invalid Zip archive: Could not find EOCD)",
    )


def test_unknown_encoding(write_csv: WriteCsv) -> None:
    path = write_csv(HEADER + GOOD)
    assert_stopped(
        invoke("run", path, "--dry-run", "--encoding", "klingon"),
        "unknown encoding 'klingon' (try utf-8 or cp932)",
    )


def test_missing_column(write_csv: WriteCsv) -> None:
    path = write_csv("title,start\nReview,2026-12-01 10:00\n")
    assert_stopped(
        invoke("run", path, "--dry-run"),
        f"{path}: missing column(s) owner_email, end (or duration_minutes or end_time); the file has: title, start"
        " (map headers to fields in the config's [columns] table)",
    )


def test_bad_config(write_csv: WriteCsv, tmp_path: Path) -> None:
    config = tmp_path / "bad.toml"
    config.write_text("concurrency = 0\n")
    path = write_csv(HEADER + GOOD)
    assert_stopped(
        invoke("run", path, "--dry-run", "--config", config),
        f"bad setting in {config}: concurrency: Input should be greater than or equal to 1",
    )


def test_missing_config(write_csv: WriteCsv, tmp_path: Path) -> None:
    path = write_csv(HEADER + GOOD)
    config = tmp_path / "nope.toml"
    assert_stopped(invoke("run", path, "--dry-run", "--config", config), f"config file not found: {config}")


def test_usage_error_exits_2() -> None:
    result = invoke("run")
    assert result.exit_code == 2
    assert result.stderr.splitlines()[-1] == "Error: Missing argument 'INPUT'."


def test_a_zone_polars_lacks_is_a_bad_row_not_a_crash(write_csv: WriteCsv) -> None:
    """`Factory` is in zoneinfo but not in polars: today the run dies with a ComputeError traceback."""
    path = write_csv(
        "title,start,duration_minutes,owner_email,timezone\nx,2026-12-01 10:00,30,a@example.com,Factory\n"
    )
    result = invoke("run", path, "--dry-run")
    assert result.exit_code == 1
    assert isinstance(result.exception, SystemExit)


# --- help ---


def command_named(name: str) -> click.Command:
    """A subcommand as click finds it (some are imported only when asked for)."""
    command = main.get_command(click.Context(main), name)
    assert command is not None, name
    return command


def test_every_command_and_option_has_help() -> None:
    assert main.help
    for name in main.list_commands(click.Context(main)):
        command = command_named(name)
        assert command.help, name
        undocumented = [p.name for p in command.params if isinstance(p, click.Option) and not p.help]
        assert undocumented == [], name


@pytest.mark.parametrize("args", [[], ["run"], ["status"], ["sandbox"]])
def test_help_prints_usage_and_text(args: list[str]) -> None:
    result = invoke(*args, "--help")
    assert result.exit_code == 0
    assert result.stdout.startswith(f"Usage: main {' '.join(args)}".rstrip() + " [OPTIONS]")
    command = command_named(args[0]) if args else main
    assert command.help is not None
    assert command.help.split()[0] in result.stdout


def test_the_command_line_starts_without_what_only_run_needs() -> None:
    """`--version` and `--help` must start fast: polars, httpx, pydantic and the sandbox's server load only
    when a command needs them. A fresh interpreter, since this one has imported everything already."""
    heavy = ["polars", "httpx", "pydantic", "uvicorn", "starlette", "importer.pipeline", "importer.sandbox"]
    code = f"import sys, importer.cli; print([m for m in {heavy!r} if m in sys.modules])"
    loaded = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert loaded.stdout.strip() == "[]"


# --- the samples, as the README describes them ---


@pytest.mark.parametrize(
    ("sample", "config", "invalid", "valid"),
    [
        ("meetings_en.csv", None, [8, 9, 10], [2, 3, 4, 5, 7, 11, 12, 13, 14]),
        ("meetings_ja.csv", "japanese.toml", [7, 8, 13], [2, 3, 4, 5, 6, 9, 10, 11, 12]),
        ("meetings.xlsx", None, [7, 8], [2, 3, 5, 6]),
    ],
)
def test_sample_dry_runs_match_the_readme(
    tmp_path: Path, sample: str, config: str | None, invalid: list[int], valid: list[int]
) -> None:
    results = tmp_path / "results.csv"
    args: list[str | Path] = ["run", SAMPLES / sample, "--dry-run", "--results", results]
    if config:
        args += ["--config", REPO / "config" / config]
    result = invoke(*args)
    assert (result.exit_code, result.stderr) == (1, "")
    assert stdout_lines(result)[0] == (
        f"summary: valid={len(valid)} invalid={len(invalid)} duration_s=<s> requests=0 searches=0"
    )
    assert statuses(results) == {**{r: "valid" for r in valid}, **{r: "invalid" for r in invalid}}


def test_english_sample_messages_and_warning(tmp_path: Path) -> None:
    results = tmp_path / "results.csv"
    invoke("run", SAMPLES / "meetings_en.csv", "--dry-run", "--results", results)
    frame = pl.read_csv(results, infer_schema=False)
    notes = {int(r): (e, w) for r, e, w in frame.select("row", "error", "warning").iter_rows() if e or w}
    assert notes == {
        8: ("end: must be after start", None),
        9: (
            "start: '2027-03-14 02:30' does not exist in America/New_York"
            " (the clocks skip it when daylight saving time starts)",
            None,
        ),
        10: ("contact_emails: 'daniel.lee@globex' is not an e-mail address", None),
        14: (
            None,
            "start: '2027-11-07 01:30' occurs twice in America/New_York (daylight saving time ends);"
            " took the first, 2027-11-07 05:30Z",
        ),
    }


def test_a_dry_run_writes_beside_the_input_and_never_over_a_runs_results(tmp_path: Path) -> None:
    path = tmp_path / "meetings_en.csv"
    shutil.copy(SAMPLES / "meetings_en.csv", path)
    real = tmp_path / "meetings_en.results.csv"
    real.write_text("last night's results\n")
    result = invoke("run", path, "--dry-run")
    assert stdout_lines(result)[-1] == f"results: {tmp_path / 'meetings_en.dry-run.csv'}"
    assert len(statuses(tmp_path / "meetings_en.dry-run.csv")) == 12
    assert real.read_text() == "last night's results\n"


# --- a real process ---


def test_real_process_exit_codes_and_no_traceback(tmp_path: Path) -> None:
    """CliRunner catches SystemExit itself; only a real `python -m importer` shows the status the shell sees."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MEETING_IMPORTER_", "HUBSPOT_"))}
    env["PYTHONPATH"] = str(REPO)

    def run(*args: str | Path) -> subprocess.CompletedProcess[str]:
        command = [sys.executable, "-m", "importer", "run", *map(str, args)]
        return subprocess.run(command, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120)

    some_invalid = run(SAMPLES / "meetings_en.csv", "--dry-run", "--results", tmp_path / "r.csv")
    assert (some_invalid.returncode, some_invalid.stderr) == (1, "")
    missing = run(tmp_path / "nope.csv", "--dry-run")
    assert (missing.returncode, missing.stderr) == (2, f"Error: {tmp_path / 'nope.csv'}: no such file\n")
    assert "Traceback" not in some_invalid.stderr + missing.stderr


# --- language ---


@pytest.mark.parametrize(
    ("args", "environ", "expected"),
    [
        ([], {}, "en"),
        ([], {"LANG": "ja_JP.UTF-8"}, "ja"),
        ([], {"LANG": "ja_JP.UTF-8", "LC_ALL": "C"}, "en"),
        ([], {"LC_MESSAGES": "ja_JP.UTF-8", "LANG": "en_US.UTF-8"}, "ja"),
        (["--lang", "en"], {"LANG": "ja_JP.UTF-8"}, "en"),
        (["--lang", "ja"], {}, "ja"),
        ([], {"MEETING_IMPORTER_LANGUAGE": "ja"}, "ja"),
    ],
)
def test_language_flag_else_config_else_locale(
    write_csv: WriteCsv,
    monkeypatch: pytest.MonkeyPatch,
    args: list[str],
    environ: dict[str, str],
    expected: str,
) -> None:
    for name, value in environ.items():
        monkeypatch.setenv(name, value)
    path = write_csv(HEADER + BAD)
    invoke("run", path, "--dry-run", *args)
    frame = pl.read_csv(path.with_name("meetings.dry-run.csv"), infer_schema=False)
    error = {"en": "end: must be after start", "ja": "end: 開始より後の日時にしてください"}[expected]
    assert frame.select("status", "error", "error_code").row(0) == ("invalid", error, "END_BEFORE_START")


def test_japanese_sample_messages_summary_and_results_columns(tmp_path: Path) -> None:
    """In Japanese: messages name the sheet's own column; the columns and statuses stay as they are."""
    results = tmp_path / "results.csv"
    config = REPO / "config" / "japanese.toml"
    result = invoke(
        "run",
        SAMPLES / "meetings_ja.csv",
        "--config",
        config,
        "--dry-run",
        "--results",
        results,
        "--lang",
        "ja",
    )
    assert result.exit_code == 1
    assert stdout_lines(result)[-2:] == [
        "タイムゾーンのない日時: Asia/Tokyo",
        f"結果ファイル: {results}",
    ]
    frame = pl.read_csv(results, infer_schema=False)
    assert frame.columns[-len(RESULT_COLUMNS) :] == list(RESULT_COLUMNS)
    invalid = frame.filter(pl.col("status") == "invalid")
    assert invalid.select("row", "error", "error_code").rows() == [
        (
            "7",
            "開始日時: 「2026/13/01 10:00」を日時として読めません（例: 2026/12/01 14:00、2026年12月1日 午後2時、"
            "令和8年12月1日 14:00、2026-12-01T14:00:00+09:00）",
            "COULD_NOT_PARSE_DATE",
        ),
        ("8", "件名: 入力が必要です", "MISSING_REQUIRED_PROPERTY"),
        (
            "13",
            "場所の種類: 「ONLINE」は使えません。次のいずれかを書いてください: ADDRESS/住所, CUSTOM/その他, PHONE/電話"
            "（大文字・小文字は問いません）",
            "INVALID_ENUMERATION_OPTION",
        ),
    ]


# --- stop lines and help in the user's language ---


def test_a_stop_line_in_japanese_names_the_file_and_what_to_do(write_csv: WriteCsv, tmp_path: Path) -> None:
    path = write_csv(HEADER + GOOD)
    config = tmp_path / "nope.toml"
    assert_stopped(
        invoke("run", path, "--dry-run", "--config", config, "--lang", "ja"),
        f"設定ファイルが見つかりません: {config}（--config のパスを確かめてください）",
    )
    columns = write_csv("件名,開始日時\nx,2026-12-01 10:00\n", name="columns.csv")
    assert_stopped(
        invoke("run", columns, "--dry-run", "--lang", "ja"),
        f"{columns}: 必須の列 title, start (or date and start_time), owner_email, end (or duration_minutes or"
        " end_time) がありません。ファイルの列: 件名, 開始日時（見出しと項目の対応は設定ファイルの [columns]"
        " 表に書いてください）",
    )


def test_a_stop_line_follows_the_locale_and_the_flag_beats_it(
    write_csv: WriteCsv, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("LANG", "ja_JP.UTF-8")
    missing = tmp_path / "none.csv"
    assert_stopped(invoke("run", missing, "--dry-run"), f"{missing}: ファイルがありません")
    assert_stopped(invoke("run", missing, "--dry-run", "--lang=en"), f"{missing}: no such file")


def test_the_configs_language_counts_once_the_config_is_read(write_csv: WriteCsv, tmp_path: Path) -> None:
    """An error in the config itself is said before its `language` is known: in the locale's (English)."""
    bad = tmp_path / "bad.toml"
    bad.write_text('language = "ja"\nconcurrency = 0\n')
    path = write_csv(HEADER + GOOD)
    assert_stopped(
        invoke("run", path, "--dry-run", "--config", bad),
        f"bad setting in {bad}: concurrency: Input should be greater than or equal to 1",
    )
    good = tmp_path / "ja.toml"
    good.write_text('language = "ja"\n')
    missing = tmp_path / "none.csv"
    assert_stopped(invoke("run", missing, "--dry-run", "--config", good), f"{missing}: ファイルがありません")


def test_a_bad_setting_in_japanese_names_where_it_came_from(write_csv: WriteCsv) -> None:
    path = write_csv(HEADER + GOOD)
    assert_stopped(
        invoke("run", path, "--dry-run", "--lang", "ja", "--encoding", "klingon"),
        "不明な文字コード「klingon」です（utf-8 か cp932 を試してください）",
    )


@pytest.mark.parametrize("args", [["run", "--help", "--lang", "ja"], ["run", "--lang=ja", "--help"]])
def test_run_help_in_japanese_wherever_lang_is_given(args: list[str]) -> None:
    result = invoke(*args)
    assert result.exit_code == 0
    lines = result.stdout.splitlines()
    assert lines[0] == "使い方: main run [OPTIONS] INPUT"
    assert lines[2:4] == [
        "  INPUT（CSV、xlsx、xlsm、xls、ods）のミーティングを取り込み、結果ファイルを書き",
        "  ます。",
    ]
    assert "オプション:" in lines
    assert "  --help                          このヘルプを表示して終了します。" in lines
    assert "  終了コード:" in lines


@pytest.mark.parametrize("language", ["ja_JP.UTF-8", "C.UTF-8"])
@pytest.mark.parametrize("command", [[], ["run"], ["plan"], ["status"]])
def test_help_fits_the_terminal_by_the_columns_it_takes(
    command: list[str], language: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Click counts a kanji as one character; a terminal shows it two columns wide."""
    monkeypatch.setenv("LANG", language)
    result = invoke(*command, "--help")
    assert result.exit_code == 0
    too_wide = [line for line in result.stdout.splitlines() if _columns(line) > 80]
    assert too_wide == []


def test_japanese_help_breaks_lines_as_japanese_does() -> None:
    lines = _wrapped("既定: 最初の表示されているシート（Excelの表示どおり）。次の行。", 20)
    assert lines == ["既定: 最初の表示され", "ているシート（Excel", "の表示どおり）。次の", "行。"]
    assert all(_columns(line) <= 20 for line in lines)


@given(
    st.lists(st.sampled_from(["漢字", "かな", "、", "。", "（", "）", "ASCII", " ", "x", ": "]), max_size=40)
)
def test_wrapping_keeps_every_character_and_the_kinsoku_rules(pieces: list[str]) -> None:
    text = " ".join("".join(pieces).split())
    lines = _wrapped(text, 16)
    assert "".join(lines).replace(" ", "") == text.replace(" ", "")
    assert not any(line[0] in _NO_LINE_START for line in lines[1:])
    assert not any(line[-1] in _NO_LINE_END for line in lines[:-1])
    assert "" not in lines


def test_english_help_is_click_s_own() -> None:
    lines = invoke("run", "--help", "--lang", "en").stdout.splitlines()
    assert "  --dry-run                       Validate every row, write results, send" in lines
    assert max(map(len, lines)) <= 80


def test_status_in_japanese(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LANG", "ja_JP.UTF-8")
    missing = tmp_path / "none.sqlite"
    assert_stopped(
        invoke("status", "--state", missing),
        f"{missing} に台帳がありません（--state を指定するか、先に取り込みを実行してください）",
    )


def test_help_follows_the_locale(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LANG", "ja_JP.UTF-8")
    lines = invoke("--help").stdout.splitlines()
    assert lines[0] == "使い方: main [OPTIONS] COMMAND [ARGS]..."
    assert "コマンド:" in lines
    assert "  status   台帳の内容を表示します: 状態ごとの行数、前回の実行、結果不明の行。" in lines
    # The sandbox plays HubSpot, in English: its help is not in the catalog.
    assert "  sandbox  Run a local HubSpot stand-in for demos and integration tests." in lines


# --- the warning_code column ---


def test_warning_codes_have_a_column_that_reading_the_file_back_ignores(
    write_csv: WriteCsv, tmp_path: Path
) -> None:
    path = write_csv(
        "title,start,end,owner_email,timezone\n"
        "Late,2027-11-07 01:30,2027-11-07 03:00,a@example.com,America/New_York\n"
    )
    assert invoke("run", path, "--dry-run").exit_code == 0
    results = tmp_path / "meetings.dry-run.csv"
    frame = pl.read_csv(results, infer_schema=False)
    assert frame.columns[-3:] == ["warning", "warning_code", "portal_id"]
    assert frame.select("status", "warning_code").row(0) == ("valid", "AMBIGUOUS_LOCAL_TIME")
    # Read back as input, this file's outcome columns are no input columns; an older file lacks the new one.
    older = tmp_path / "older.csv"
    frame.drop("warning_code").write_csv(older)
    for earlier in (results, older):
        again = invoke("run", earlier, "--dry-run", "--results", tmp_path / "again.csv")
        assert again.exit_code == 0, again.output
        assert "columns not imported" not in again.stdout
        back = pl.read_csv(tmp_path / "again.csv", infer_schema=False)
        assert back.columns == frame.columns
        assert back["warning_code"].to_list() == ["AMBIGUOUS_LOCAL_TIME"]
