"""Log output, decided once at start by the CLI: where lines go and in which format.

Stages log through `logging` and never print. A line about a row carries `fields` (row, row_key,
status, ...) in its `extra`, which both formats write out, so a cron log can be searched by row.
"""

from __future__ import annotations

import contextlib
import json
import logging
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

from importer.messages import _

LogFormat = Literal["text", "json"]


class TextFormatter(logging.Formatter):
    """`2026-11-25T03:50:00Z WARNING row 9 failed row=9 row_key=ab12 error="contact not found: ..."`."""

    def format(self, record: logging.LogRecord) -> str:
        stamp = datetime.fromtimestamp(record.created, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        text = f"{stamp} {record.levelname} {record.getMessage()}"
        fields = _fields(record)
        if fields:
            text += " " + " ".join(f"{k}={_quote(v)}" for k, v in fields.items())
        return text


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, message and the row's fields."""

    def format(self, record: logging.LogRecord) -> str:
        line = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "message": record.getMessage(),
            **_fields(record),
        }
        return json.dumps(line, ensure_ascii=False)


def configure(*, quiet: bool, interactive: bool, log_file: Path | None, log_format: LogFormat) -> None:
    """Warnings and errors to stderr (errors only when `quiet`, or in a terminal, where the progress bar
    and the closing summary say it better); everything from INFO up to `log_file`."""
    root = logging.getLogger("importer")
    for handler in root.handlers[:]:
        root.removeHandler(handler)
        handler.close()
    root.propagate = False
    formatter: logging.Formatter = JsonFormatter() if log_format == "json" else TextFormatter()
    console = logging.StreamHandler(sys.stderr)
    console.setLevel(logging.ERROR if quiet or interactive else logging.WARNING)
    # No record below what some handler writes is made at all: a run logs each of its rows at INFO.
    root.setLevel(logging.INFO if log_file is not None else console.level)
    console.setFormatter(formatter)
    root.addHandler(console)
    if log_file is not None:
        log_file.parent.mkdir(parents=True, exist_ok=True)
        handler = _LogFile(log_file)
        handler.setLevel(logging.INFO)
        handler.setFormatter(formatter)
        root.addHandler(handler)


class _LogFile(logging.FileHandler):
    """The log file, which a run may outlive: on a full disk (or a folder gone) one line on stderr says so,
    and the run goes on without it, where logging's own handler printed a traceback for every line."""

    def __init__(self, path: Path) -> None:
        super().__init__(path, encoding="utf-8")
        self.failed = False

    def emit(self, record: logging.LogRecord) -> None:
        if not self.failed:
            super().emit(record)

    def handleError(self, record: logging.LogRecord) -> None:
        error = sys.exc_info()[1]
        self.failed = True
        with contextlib.suppress(OSError, ValueError):
            self.close()  # what it buffered cannot be written either
        message = _("cannot write the log file {path}: {error}; the run goes on without it")
        reason = error.strerror if isinstance(error, OSError) and error.strerror else error
        with contextlib.suppress(OSError, ValueError):
            print(message.format(path=self.baseFilename, error=reason), file=sys.stderr)


def _fields(record: logging.LogRecord) -> dict[str, Any]:
    fields = getattr(record, "fields", None)
    return {k: v for k, v in fields.items() if v is not None} if isinstance(fields, dict) else {}


def _quote(value: Any) -> str:
    text = str(value)
    # Spaces, quotes and `=` would break key=value parsing; a control character (\n, \r, \t, ESC) the line.
    plain = text.isprintable() and not any(c in text for c in ' "=')
    return text if plain else json.dumps(text, ensure_ascii=False)


def record_fatal(message: str) -> None:
    """The one line a run stops with, in the log file too (stderr already has it as `Error: ...`), so a
    JSON log tells monitoring why the night ended."""
    root = logging.getLogger("importer")
    record = root.makeRecord(root.name, logging.ERROR, __file__, 0, "stopped: %s", (message,), None)
    for handler in root.handlers:
        if isinstance(handler, logging.FileHandler):
            handler.handle(record)
