"""Log lines (text and JSON) and where configure() sends them at which level."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from importer.logs import JsonFormatter, LogFormat, TextFormatter, configure

CREATED = datetime(2026, 11, 25, 3, 50, 0, 250_000, tzinfo=UTC).timestamp()


def record(level: int = logging.WARNING, fields: Any = None, message: str = "row %d %s") -> logging.LogRecord:
    """A record as board.log_row makes it, created at CREATED."""
    attributes: dict[str, Any] = {
        "name": "importer.pipeline",
        "levelno": level,
        "levelname": logging.getLevelName(level),
        "msg": message,
        "args": (9, "failed"),
        "created": CREATED,
    }
    if fields is not None:
        attributes["fields"] = fields
    return logging.makeLogRecord(attributes)


# --- text ---


def test_text_line_has_time_level_message_and_fields_without_nones() -> None:
    fields = {"row": 9, "row_key": "ab12", "status": "failed", "meeting_id": None, "attempts": 1}
    assert (
        TextFormatter().format(record(fields=fields))
        == "2026-11-25T03:50:00Z WARNING row 9 failed row=9 row_key=ab12 status=failed attempts=1"
    )


def test_text_line_without_fields() -> None:
    assert TextFormatter().format(record(logging.ERROR)) == "2026-11-25T03:50:00Z ERROR row 9 failed"


def test_text_line_ignores_fields_that_are_not_a_dict() -> None:
    assert TextFormatter().format(record(fields="row=9")) == "2026-11-25T03:50:00Z WARNING row 9 failed"


@pytest.mark.parametrize(
    ("value", "written"),
    [
        ("contact not found: a@example.com", '"contact not found: a@example.com"'),
        ('title "Q4" review', '"title \\"Q4\\" review"'),
        ("a=b", '"a=b"'),
        ("line one\nline two", '"line one\\nline two"'),
        ("担当者が見つかりません: 髙橋", '"担当者が見つかりません: 髙橋"'),
        ("髙橋", "髙橋"),
        ("a@example.com;b@example.com", "a@example.com;b@example.com"),
        ("", ""),
    ],
)
def test_text_field_values_are_quoted_when_they_would_break_key_value_parsing(
    value: str, written: str
) -> None:
    line = TextFormatter().format(record(fields={"error": value}))
    assert line == f"2026-11-25T03:50:00Z WARNING row 9 failed error={written}"


@pytest.mark.parametrize(
    ("value", "written"),
    [("a\rb", '"a\\rb"'), ("a\tb", '"a\\tb"'), ("a\x1b[2Kb", '"a\\u001b[2Kb"')],
    ids=["carriage-return", "tab", "escape"],
)
def test_text_field_values_with_control_characters_are_quoted(value: str, written: str) -> None:
    # A bare \r rewrites the line on a terminal and ends it for many log tools; a tab splits key=value.
    line = TextFormatter().format(record(fields={"error": value}))
    assert line == f"2026-11-25T03:50:00Z WARNING row 9 failed error={written}"


# --- JSON ---


def test_json_line_has_time_level_message_and_fields_without_nones() -> None:
    fields = {"row": 9, "row_key": "ab12", "status": "failed", "http_status": None, "error": "件名が空です"}
    line = JsonFormatter().format(record(fields=fields))
    assert json.loads(line) == {
        "time": "2026-11-25T03:50:00.250+00:00",
        "level": "warning",
        "message": "row 9 failed",
        "row": 9,
        "row_key": "ab12",
        "status": "failed",
        "error": "件名が空です",
    }
    assert "件名が空です" in line  # not \\u-escaped: a person greps the file


def test_json_line_is_one_line_even_with_newlines_in_values() -> None:
    line = JsonFormatter().format(record(fields={"error": "line one\nline two"}))
    assert "\n" not in line
    assert json.loads(line)["error"] == "line one\nline two"


# --- configure ---


@pytest.fixture
def importer_logger() -> Iterator[logging.Logger]:
    """The `importer` logger, restored (and the handlers configure() added, closed) afterwards."""
    logger = logging.getLogger("importer")
    saved = (logger.handlers[:], logger.level, logger.propagate)
    yield logger
    for handler in logger.handlers:
        if handler not in saved[0]:
            handler.close()
    logger.handlers[:], logger.level, logger.propagate = saved


def log_every_level() -> None:
    log = logging.getLogger("importer.sender")
    log.info("an info line")
    log.warning("a warning line")
    log.error("an error line")


def messages(text: str) -> list[str]:
    """The messages of text-format lines, without their time stamps."""
    return [line.split(" ", 1)[1] for line in text.splitlines()]


@pytest.mark.parametrize(
    ("quiet", "interactive", "expected"),
    [
        (True, False, ["ERROR an error line"]),
        (False, True, ["ERROR an error line"]),
        (True, True, ["ERROR an error line"]),
        (False, False, ["WARNING a warning line", "ERROR an error line"]),
    ],
    ids=["quiet", "interactive", "quiet-interactive", "cron"],
)
def test_stderr_level(
    importer_logger: logging.Logger,
    capsys: pytest.CaptureFixture[str],
    quiet: bool,
    interactive: bool,
    expected: list[str],
) -> None:
    configure(quiet=quiet, interactive=interactive, log_file=None, log_format="text")
    log_every_level()
    captured = capsys.readouterr()
    assert messages(captured.err) == expected
    assert captured.out == ""


def test_log_file_gets_info_and_up_while_stderr_gets_warnings(
    importer_logger: logging.Logger, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    log_file = tmp_path / "logs" / "import.log"
    configure(quiet=False, interactive=False, log_file=log_file, log_format="text")
    log_every_level()
    assert messages(log_file.read_text(encoding="utf-8")) == [
        "INFO an info line",
        "WARNING a warning line",
        "ERROR an error line",
    ]
    assert messages(capsys.readouterr().err) == ["WARNING a warning line", "ERROR an error line"]


@pytest.mark.skipif(
    not Path("/dev/full").exists(), reason="needs /dev/full, whose writes fail as a full disk's"
)
def test_a_log_file_that_cannot_be_written_says_so_once_and_the_run_goes_on(
    importer_logger: logging.Logger, capsys: pytest.CaptureFixture[str]
) -> None:
    configure(quiet=True, interactive=False, log_file=Path("/dev/full"), log_format="text")
    for row in range(50):
        logging.getLogger("importer.board").info("row %d created", row)
    logging.getLogger("importer.pipeline").error("an error line")
    err = capsys.readouterr().err
    assert "Traceback" not in err
    assert err.splitlines()[0] == (
        "cannot write the log file /dev/full: No space left on device; the run goes on without it"
    )
    assert messages("\n".join(err.splitlines()[1:])) == ["ERROR an error line"]  # stderr still has its lines


@pytest.mark.parametrize("log_format", ["text", "json"])
def test_format_applies_to_stderr_and_file(
    importer_logger: logging.Logger, capsys: pytest.CaptureFixture[str], tmp_path: Path, log_format: LogFormat
) -> None:
    log_file = tmp_path / "import.log"
    configure(quiet=True, interactive=False, log_file=log_file, log_format=log_format)
    logging.getLogger("importer.pipeline").error("row %d %s", 9, "failed", extra={"fields": {"row": 9}})
    (err_line,) = capsys.readouterr().err.splitlines()
    (file_line,) = log_file.read_text(encoding="utf-8").splitlines()
    assert err_line == file_line
    if log_format == "json":
        assert {k: v for k, v in json.loads(err_line).items() if k != "time"} == {
            "level": "error",
            "message": "row 9 failed",
            "row": 9,
        }
    else:
        assert err_line.split(" ", 1)[1] == "ERROR row 9 failed row=9"


def test_lines_do_not_reach_the_root_logger(
    importer_logger: logging.Logger, caplog: pytest.LogCaptureFixture
) -> None:
    configure(quiet=True, interactive=False, log_file=None, log_format="text")
    with caplog.at_level(logging.INFO):
        logging.getLogger("importer.sender").error("an error line")
    assert caplog.records == []


def test_configure_twice_does_not_duplicate_lines(
    importer_logger: logging.Logger, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    log_file = tmp_path / "import.log"
    configure(quiet=True, interactive=False, log_file=log_file, log_format="json")
    first_file_handlers = [h for h in importer_logger.handlers if isinstance(h, logging.FileHandler)]
    configure(quiet=False, interactive=False, log_file=log_file, log_format="text")
    for handler in first_file_handlers:  # replaced, so not closed by the fixture
        handler.close()
    logging.getLogger("importer.sender").warning("a warning line")
    assert len(importer_logger.handlers) == 2
    assert messages(capsys.readouterr().err) == ["WARNING a warning line"]
    assert messages(log_file.read_text(encoding="utf-8")) == ["WARNING a warning line"]
