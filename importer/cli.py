"""Command line: parse options, build settings, call the pipeline, map the outcome to an exit code.

Exit codes (the only place they are decided):
  0  every row valid (dry run), created or skipped
  1  some rows were not: see the results file
  2  usage, config, input or authentication problem
  3  another run holds the lock on the state folder
"""

from __future__ import annotations

import importlib
import json
import os
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import click

from importer import __version__, logs
from importer.errors import LockHeld, StopRun

# A command imports what it needs when it runs (polars, httpx, pydantic, the sandbox's uvicorn and
# starlette): `--version`, `--help` and `status` start in a fraction of the time `run` needs.
_LAZY_COMMANDS = {"sandbox": ("importer.sandbox.cli", "sandbox_command")}

EXIT_CODES = """\b
Exit codes:
  0  every row created, skipped (done before) or, in a dry run, valid
  1  some rows were not: invalid, failed or not sent (see the results file)
  2  usage, config, input or authentication error: one line on stderr
  3  another run holds the lock on the state folder"""


class _StopRunExit(click.ClickException):
    exit_code = 2


class _LockHeldExit(click.ClickException):
    exit_code = 3


class _ImporterGroup(click.Group):
    """Turns the importer's own errors into one line on stderr and their exit code; bugs keep tracebacks."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except StopRun as exc:
            raise _StopRunExit(str(exc)) from None
        except LockHeld as exc:
            raise _LockHeldExit(str(exc)) from None

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted([*super().list_commands(ctx), *_LAZY_COMMANDS])

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name in _LAZY_COMMANDS:
            module, name = _LAZY_COMMANDS[cmd_name]
            command: click.Command = getattr(importlib.import_module(module), name)
            return command
        return super().get_command(ctx, cmd_name)


@click.group(cls=_ImporterGroup, epilog=EXIT_CODES)
@click.version_option(__version__, prog_name="meeting-importer")
def main() -> None:
    """Import meetings from CSV or Excel sheets into HubSpot, exactly once, inside its rate limits."""


_path = click.Path(path_type=Path, dir_okay=False)


@main.command(epilog=EXIT_CODES)
@click.argument("input_path", metavar="INPUT", type=_path)
@click.option("--config", "config_path", type=_path, help="TOML settings file (see config/importer.toml).")
@click.option(
    "--results", type=_path, help="Results file (.csv or .xlsx). Default: INPUT.results.csv beside it."
)
@click.option("--sheet", help="Excel sheet name, or its 1-based position. Default: the first sheet.")
@click.option("--encoding", help="CSV encoding (utf-8, cp932, ...). Default: detected.")
@click.option(
    "--dry-run", is_flag=True, default=None, help="Validate every row, write results, send nothing."
)
@click.option(
    "--only-failed",
    type=click.Path(path_type=Path, dir_okay=False, exists=True),
    help="Earlier results file: rows it marks created or skipped are skipped; the rest are sent.",
)
@click.option("--concurrency", type=click.IntRange(1, 256), help="Requests in flight at once. Default: 8.")
@click.option(
    "--rate-limit",
    "requests_per_10s",
    type=click.IntRange(1, 10_000),
    help="At most this many requests per rolling 10 s, lookups included, to leave room for other "
    "integrations. Default: HubSpot's limit, as its answers report it (100 to 250 by tier).",
)
@click.option(
    "--state",
    "state_path",
    type=_path,
    help="Run ledger (SQLite). Default: .meeting-importer/ beside results.",
)
@click.option("--quiet", is_flag=True, help="No progress and no summary; only errors on stderr.")
@click.option("--log-file", type=_path, help="Append a log line per row and event to this file.")
@click.option(
    "--log-format",
    type=click.Choice(["text", "json"]),
    default="text",
    show_default=True,
    help="Log lines as key=value text or one JSON object each.",
)
@click.option("--summary-json", type=_path, help="Write counts, durations, request rate and 429s here.")
def run(
    input_path: Path,
    config_path: Path | None,
    quiet: bool,
    log_file: Path | None,
    log_format: logs.LogFormat,
    summary_json: Path | None,
    **flags: Any,
) -> None:
    """Import the meetings in INPUT (CSV, xlsx, xlsm, xls or ods) and write a results file.

    \b
    Examples:
      meeting-importer run meetings.csv --dry-run
      meeting-importer run meetings_ja.csv --config config/japanese.toml
      meeting-importer run meetings.csv --only-failed meetings.results.csv
    """
    from importer.config import load_settings
    from importer.console import ProgressLine, summary_lines
    from importer.pipeline import run_import

    interactive = sys.stderr.isatty() and not quiet
    logs.configure(quiet=quiet, interactive=interactive, log_file=log_file, log_format=log_format)
    settings = load_settings(config_path, os.environ, flags)
    progress = ProgressLine(sys.stderr) if interactive else None
    try:
        summary = run_import(input_path, settings, progress)
    finally:
        if progress is not None:
            progress.close()
    if summary_json is not None:
        summary_json.parent.mkdir(parents=True, exist_ok=True)
        summary_json.write_text(json.dumps(summary.to_json(), indent=2, ensure_ascii=False) + "\n")
    if not quiet:
        click.echo("\n".join(summary_lines(summary, table=sys.stdout.isatty())))
    sys.exit(0 if summary.complete else 1)


@main.command(epilog=EXIT_CODES)
@click.option(
    "--state",
    "state_path",
    type=_path,
    default=Path(".meeting-importer/state.sqlite"),
    show_default=True,
    help="The run ledger to read.",
)
def status(state_path: Path) -> None:
    """Print what the ledger knows: rows by state, the last run, and rows in doubt."""
    from importer.ledger import read_state

    state = read_state(state_path)
    for target in state:
        click.echo(f"{target.target}")
        counts = ", ".join(f"{n} {s}" for s, n in sorted(target.counts.items())) or "no rows"
        click.echo(f"  rows: {counts}")
        if target.last_run is not None:
            run = target.last_run
            finished = _when(run.finished_at) if run.finished_at else "did not finish"
            click.echo(
                f"  last run: {run.input} started {_when(run.started_at)}, {finished}: {run.summary or '-'}"
            )
        for entry in target.in_doubt:
            click.echo(f"  in doubt: {entry.row_key} '{entry.title}' since {_when(entry.updated_at)}")


def _when(timestamp: float) -> str:
    return datetime.fromtimestamp(timestamp, UTC).strftime("%Y-%m-%d %H:%M:%SZ")
