"""Command line: parse options, build settings, call the pipeline, map the outcome to an exit code.

Exit codes (the only place they are decided):
  0  every row valid (dry run), created or skipped
  1  some rows were not: see the results file
  2  usage, config, input or authentication problem: nothing (more) was sent
  3  another run holds the lock on the state folder
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any

import click

from importer import __version__
from importer.config import load_settings
from importer.errors import LockHeld, StopRun
from importer.pipeline import RunSummary, run_import
from importer.sandbox.cli import sandbox_command


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


@click.group(cls=_ImporterGroup)
@click.version_option(__version__, prog_name="meeting-importer")
def main() -> None:
    """Import meetings from CSV or Excel sheets into HubSpot, exactly once, inside its rate limits.

    \b
    Exit codes: 0 all rows done, 1 some rows not (see the results file),
    2 usage, config, input or auth error, 3 another run holds the lock.
    """


@main.command()
@click.argument("input_path", metavar="INPUT", type=click.Path(path_type=Path, dir_okay=False))
@click.option(
    "--config",
    "config_path",
    type=click.Path(path_type=Path, dir_okay=False),
    help="TOML settings file (see config/importer.toml).",
)
@click.option(
    "--results",
    type=click.Path(path_type=Path, dir_okay=False),
    help="Results file (.csv or .xlsx). Default: INPUT's name + .results.csv beside it.",
)
@click.option("--sheet", help="Excel sheet name, or its 1-based position. Default: the first sheet.")
@click.option("--encoding", help="CSV encoding (utf-8, cp932, ...). Default: detected.")
@click.option(
    "--dry-run", is_flag=True, default=None, help="Validate every row and write results; send nothing."
)
@click.option("--concurrency", type=click.IntRange(1, 256), help="Requests in flight at once. Default: 8.")
@click.option(
    "--rate-limit",
    "requests_per_10s",
    type=click.IntRange(1, 10_000),
    help="Requests per rolling 10 s, lookups included (HubSpot: 100 to 250 by tier). Default: 100.",
)
@click.option(
    "--state",
    "state_path",
    type=click.Path(path_type=Path, dir_okay=False),
    help="Run ledger (SQLite). Default: .meeting-importer/state.sqlite beside the results file.",
)
def run(
    input_path: Path,
    config_path: Path | None,
    results: Path | None,
    sheet: str | None,
    encoding: str | None,
    dry_run: bool | None,
    concurrency: int | None,
    requests_per_10s: int | None,
    state_path: Path | None,
) -> None:
    """Import the meetings in INPUT (CSV, xlsx, xlsm, xls or ods) and write a results file.

    \b
    Example:
      meeting-importer run samples/meetings_ja.csv --config config/japanese.toml --dry-run
    """
    flags = {
        "results": results,
        "sheet": sheet,
        "encoding": encoding,
        "dry_run": dry_run,
        "concurrency": concurrency,
        "requests_per_10s": requests_per_10s,
        "state_path": state_path,
    }
    settings = load_settings(config_path, os.environ, flags)
    summary = run_import(input_path, settings)
    _print_summary(summary)
    sys.exit(0 if summary.complete else 1)


def _print_summary(summary: RunSummary) -> None:
    counts = ", ".join(f"{count} {status}" for status, count in summary.counts.items() if count)
    click.echo(f"{summary.input_path}: {counts or 'no rows'} in {summary.duration_s:.1f}s")
    click.echo(f"results: {summary.results_path}")


main.add_command(sandbox_command)
