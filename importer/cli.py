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
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from importer import __version__, logs, messages
from importer.errors import LockHeld, StopRun

if TYPE_CHECKING:
    from importer.console import PlainPhases, ProgressLine

# A command imports what it needs when it runs (polars, httpx, pydantic, the sandbox's uvicorn and
# starlette): `--version`, `--help` and `status` start in a fraction of the time `run` needs.
_LAZY_COMMANDS = {"sandbox": ("importer.sandbox.cli", "sandbox_command")}

EXIT_CODES = """\b
Exit codes:
  0  every row created, skipped (done before) or, in a dry run, valid
  1  some rows were not: invalid, failed, in doubt or not sent (see the results file)
  2  usage, config, input, state or authentication error: one line on stderr, nothing sent
  3  another run holds the lock on the ledger
  4  an internal error (a bug): one line on stderr; the ledger stays right"""


class _StopRunExit(click.ClickException):
    exit_code = 2


class _LockHeldExit(click.ClickException):
    exit_code = 3


class _CrashExit(click.ClickException):
    exit_code = 4


class _ImporterGroup(click.Group):
    """Turns the importer's own errors into one line on stderr and their exit code. A bug is one line
    too, exit 4: cron mails what is printed, and a traceback there helps nobody at 2 a.m."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except StopRun as exc:
            logs.record_fatal(str(exc))
            raise _StopRunExit(str(exc)) from None
        except LockHeld as exc:
            logs.record_fatal(str(exc))
            raise _LockHeldExit(str(exc)) from None
        except (click.exceptions.Exit, click.ClickException, click.exceptions.Abort, SystemExit):
            raise
        except Exception as exc:  # a bug: say what it was in one line, never a traceback
            message = f"internal error ({type(exc).__name__}: {exc}); please report it"
            logs.record_fatal(message)
            raise _CrashExit(message) from None

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
@click.option("--sheet", help="Excel sheet name, or its 1-based position. Default: the first visible sheet.")
@click.option(
    "--header-row",
    type=click.IntRange(min=1),
    help="Row number of the header, as Excel shows it. Default: the first of rows 1-20 with every required column.",
)
@click.option("--encoding", help="CSV encoding (utf-8, cp932, utf-16, ...). Default: detected.")
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
    help="Run ledger (SQLite). Default: one per HubSpot portal in ~/.local/state/meeting-importer/.",
)
@click.option(
    "--check-existing/--no-check-existing",
    default=None,
    help="Look for each row among the portal's meetings before creating it (default: on).",
)
@click.option(
    "--key-column",
    help="A column that identifies each meeting (e.g. 商談ID): an edited row updates its meeting.",
)
@click.option(
    "--on-change",
    type=click.Choice(["update", "skip"]),
    help="A row changed since it was sent: update its meeting (default) or leave it.",
)
@click.option(
    "--recreate-missing",
    is_flag=True,
    default=None,
    help="An edited row whose meeting was deleted in HubSpot is created anew (default: it fails).",
)
@click.option(
    "--mode",
    type=click.Choice(["schedule", "log", "auto"]),
    help="schedule: calendar events, a request a meeting; log: logged without a calendar event (past"
    " meetings), 100 a request; auto: log the meetings that ended before the run started, schedule the"
    " rest. Default: schedule.",
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
@click.option(
    "--lang",
    "language",
    type=click.Choice(["en", "ja"]),
    help="Language of messages and the summary. Default: the config's `language`, else the locale's.",
)
def run(**options: Any) -> None:
    """Import the meetings in INPUT (CSV, xlsx, xlsm, xls or ods) and write a results file.

    \b
    Examples:
      meeting-importer run meetings.csv --dry-run
      meeting-importer run meetings_ja.csv --config config/japanese.toml
      meeting-importer run meetings.csv --only-failed meetings.results.csv
      meeting-importer run meetings.csv --key-column 商談ID
      meeting-importer run last_quarter.csv --mode auto
    """
    _import(False, **options)


def _plan(**options: Any) -> None:
    _import(True, **options)


def _import(
    plan: bool,
    input_path: Path,
    config_path: Path | None,
    quiet: bool,
    log_file: Path | None,
    log_format: logs.LogFormat,
    summary_json: Path | None,
    **flags: Any,
) -> None:
    from importer.config import language_from, load_settings
    from importer.console import PlainPhases, ProgressLine, problem_report, summary_lines
    from importer.pipeline import run_import

    interactive = sys.stderr.isatty() and not quiet
    logs.configure(quiet=quiet, interactive=interactive, log_file=log_file, log_format=log_format)
    progress: ProgressLine | PlainPhases | None = None
    if interactive:
        progress = ProgressLine(sys.stderr)
    elif not quiet:
        progress = PlainPhases(sys.stdout)
    try:
        # The settings' own errors are said in the language known before they are read.
        messages.use(flags.get("language") or language_from(os.environ))
        settings = load_settings(config_path, os.environ, flags)
        messages.use(settings.language)
        summary = run_import(input_path, settings, progress, plan=plan)
    except (StopRun, LockHeld) as exc:
        _write_summary(summary_json, {"input": str(input_path), "complete": False, "error": str(exc)})
        raise
    finally:
        if progress is not None:
            progress.close()
    _write_summary(summary_json, summary.to_json())
    if not quiet:
        click.echo("\n".join(summary_lines(summary, table=sys.stdout.isatty())))
    elif not summary.complete:
        click.echo("\n".join(problem_report(summary)), err=True)
    sys.exit(0 if summary.complete else 1)


def _write_summary(path: Path | None, data: dict[str, Any]) -> None:
    """`--summary-json` on every exit, so yesterday's file never looks current."""
    if path is None:
        return
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(data, indent=2, ensure_ascii=False) + "\n")
    except OSError as exc:
        raise StopRun(f"cannot write the summary {path}: {exc.strerror or exc}") from None


@main.command(epilog=EXIT_CODES)
@click.option(
    "--state",
    "state_path",
    type=_path,
    help="The run ledger to read. Default: every portal's ledger in ~/.local/state/meeting-importer/.",
)
def status(state_path: Path | None) -> None:
    """Print what the ledger knows: rows by state, the last run, and rows in doubt."""
    from importer.ledger import find_ledgers, read_state

    ledgers = find_ledgers(state_path)
    if not ledgers:
        raise StopRun("no ledger yet: no import has run for this user (or pass --state)")
    for ledger in ledgers:
        for target in read_state(ledger):
            click.echo(f"portal {target.target} ({ledger})")
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
    """Local time with its offset: what the person reading `status` lives in."""
    return datetime.fromtimestamp(timestamp).astimezone().strftime("%Y-%m-%d %H:%M:%S%z")


plan = click.Command(
    "plan",
    callback=_plan,
    params=[param for param in run.params if param.name != "dry_run"],
    epilog=EXIT_CODES,
    help="""Show what `run` would do with each row of INPUT, and do none of it.

    Reads and checks every row, looks up owners and associations, asks the ledger and HubSpot which
    meetings exist, and writes each row's action (create, update with the columns that change, skip
    with the meeting id, invalid, fail with the reason) to INPUT.plan.csv (or --results). It sends no
    create and no update, and records nothing in the ledger.

    \b
    Example:
      meeting-importer plan meetings.csv --key-column 商談ID
    """,
)
main.add_command(plan)
