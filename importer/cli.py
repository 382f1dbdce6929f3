"""Command line: parse options, build settings, call the pipeline, map the outcome to an exit code.

Exit codes (the only place they are decided):
  0  every row valid (dry run), created or skipped
  1  some rows were not: see the results file
  2  usage, config, input or authentication problem
  3  another run holds the lock on the state folder
"""

from __future__ import annotations

import functools
import gc
import importlib
import json
import os
import re
import sys
import unicodedata
from collections.abc import Iterable, Sequence
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from importer import __version__, logs, messages
from importer.errors import LockHeld, StopRun
from importer.messages import LANGUAGES, N_, Language

if TYPE_CHECKING:
    from importer.console import PlainPhases, ProgressLine

# A command imports what it needs when it runs (polars, httpx, pydantic, the sandbox's uvicorn and
# starlette): `--version`, `--help` and `status` start in a fraction of the time `run` needs.
_LAZY_COMMANDS = {"sandbox": ("importer.sandbox.cli", "sandbox_command")}

EXIT_CODES = N_(
    "\b\n"
    "Exit codes:\n"
    "  0  every row created, skipped (done before) or, in a dry run, valid\n"
    "  1  some rows were not: invalid, failed, in doubt or not sent\n"
    "     (see the results file)\n"
    "  2  usage, config, input, state or authentication error:\n"
    "     one line on stderr, nothing sent (but for a results file or\n"
    "     ledger unwritable mid-run: a second line counts the creates)\n"
    "  3  another run holds the lock on the ledger\n"
    "  4  an internal error (a bug): one line on stderr; the ledger stays right"
)
# Headings click writes into every help page, said in the run's language by _Formatter. Click's own
# catalog (stdlib gettext, domain "messages") picks its language from the environment alone, so it
# could not follow --lang; click's other strings (its usage errors, "Error:") stay English.
_CLICK_HEADINGS = (N_("Usage:"), N_("Options"), N_("Commands"))


class _Formatter(click.HelpFormatter):
    """Writes click's headings in the language of the run, and wraps text that holds wide characters
    (Japanese) by the columns it takes, where click counts characters (a kanji takes two)."""

    def write_usage(self, prog: str, args: str = "", prefix: str | None = None) -> None:
        super().write_usage(prog, args, f"{messages._('Usage:')} " if prefix is None else prefix)

    def write_heading(self, heading: str) -> None:
        super().write_heading(messages._(heading))

    def write_text(self, text: str) -> None:
        if not _has_wide(text):
            super().write_text(text)
            return
        indent = " " * self.current_indent
        lines = _wrapped_paragraphs(text, max(self.width - self.current_indent, 11))
        self.write("\n".join(indent + line if line else "" for line in lines) + "\n")

    def write_dl(self, rows: Iterable[tuple[str, str]], col_max: int = 30, col_spacing: int = 2) -> None:
        rows = list(rows)
        if not any(_has_wide(second) for _, second in rows):
            super().write_dl(rows, col_max, col_spacing)
            return
        # As click lays the list out: terms in a column of at most col_max, a longer one on its own line.
        first_col = min(max((len(first) for first, _ in rows), default=0), col_max) + col_spacing
        margin = " " * (first_col + self.current_indent)
        for first, second in rows:
            self.write(" " * self.current_indent + first)
            if not second:
                self.write("\n")
                continue
            self.write(
                " " * (first_col - len(first)) if len(first) <= first_col - col_spacing else "\n" + margin
            )
            lines = _wrapped_paragraphs(second, max(self.width - first_col - 2, 10)) or [""]
            self.write("\n".join([lines[0], *(margin + line if line else "" for line in lines[1:])]) + "\n")


# Japanese line breaking (kinsoku): these never begin a line, and these never end one.
_NO_LINE_START = frozenset(
    "、。，．・：；？！）」』】〕〉》ー々ぁぃぅぇぉっゃゅょァィゥェォッャュョ:;,.)]}!?%"
)
_NO_LINE_END = frozenset("（「『【〔〈《")
_PIECES = re.compile(r"[\x21-\x7e]+|.")  # an ASCII word, or one other character (a break may follow any)


def _has_wide(text: str) -> bool:
    return _columns(text) > len(text)


def _columns(text: str) -> int:
    return sum(2 if unicodedata.east_asian_width(c) in "WF" else 1 for c in text)


def _wrapped_paragraphs(text: str, width: int) -> list[str]:
    """`text` in lines of at most `width` columns, as click wraps help: paragraphs apart, one whose first
    line is `\\b` as it is written."""
    lines: list[str] = []
    for paragraph in text.split("\n\n"):
        if lines:
            lines.append("")
        kept = paragraph.splitlines()
        if kept and kept[0].strip() == "\b":
            lines.extend(kept[1:])
        else:
            lines.extend(_wrapped(" ".join(paragraph.split()), width))
    return lines


def _wrapped(text: str, width: int) -> list[str]:
    """Greedy, at a space or between any two characters, but for what kinsoku keeps together: a
    character that cannot begin a line takes the one before it along, as does one that cannot end one."""
    lines: list[str] = []
    line: list[str] = []  # pieces, a space its own
    for piece in _PIECES.findall(text):
        if piece == " " and not line:
            continue
        if piece == " " or _columns("".join(line) + piece) <= width:
            line.append(piece)
            continue
        carried = [piece]
        while line and (_edge(carried)[:1] in _NO_LINE_START or _edge(line[::-1]) in _NO_LINE_END):
            carried.insert(0, line.pop())
        if _edge(line) and _edge(carried)[:1] not in _NO_LINE_START:
            lines.append("".join(line).rstrip())
            line = carried[next(i for i, p in enumerate(carried) if p != " ") :]
        else:
            line += carried  # nowhere kinsoku lets it break: the line runs long
    rest = "".join(line).rstrip()
    return [*lines, rest] if rest else lines


def _edge(pieces: list[str]) -> str:
    """The first piece that is not a space ("" if none)."""
    return next((p for p in pieces if p != " "), "")


class _Context(click.Context):
    formatter_class = _Formatter


class _Command(click.Command):
    """A command whose help and epilog are msgids, said in the language of the run when help is shown:
    the text is fixed when the module is imported, the language only once the command line is seen."""

    context_class = _Context

    def format_help_text(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        _write_paragraph(formatter, self.help)

    def format_epilog(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        _write_paragraph(formatter, self.epilog)

    def get_short_help_str(self, limit: int = 45) -> str:
        first = " ".join(messages._(self.help or "").split("\n\n")[0].split())
        if len(first) <= limit:
            return first
        cut = first[: limit - 3]
        # At a word's end where there are words (English), anywhere in a text without spaces (Japanese).
        return (cut.rpartition(" ")[0] or cut) + "..."


def _write_paragraph(formatter: click.HelpFormatter, text: str | None) -> None:
    if text:
        formatter.write_paragraph()
        with formatter.indentation():
            formatter.write_text(messages._(text))


class _Option(click.Option):
    """An option whose help is a msgid, said in the language of the run; what click adds after it (a
    range such as [x>=1]) is kept."""

    def get_help_record(self, ctx: click.Context) -> tuple[str, str] | None:
        record = super().get_help_record(ctx)
        if record is None or not self.help:
            return record
        spec, text = record
        return spec, messages._(self.help) + text.removeprefix(self.help)


_option = functools.partial(click.option, cls=_Option)
_help_option = functools.partial(click.help_option, cls=_Option, help=N_("Show this message and exit."))


class _StopRunExit(click.ClickException):
    exit_code = 2


class _LockHeldExit(click.ClickException):
    exit_code = 3


class _CrashExit(click.ClickException):
    exit_code = 4


class _ImporterGroup(_Command, click.Group):
    """Turns the importer's own errors into one line on stderr and their exit code. A bug is one line
    too, exit 4: cron mails what is printed, and a traceback there helps nobody at 2 a.m."""

    command_class = _Command

    def make_context(
        self, info_name: str | None, args: list[str], parent: click.Context | None = None, **extra: Any
    ) -> click.Context:
        # Messages are in --lang's language, else the locale's, from the start: --help is answered while
        # the command line is parsed, before --lang has a value. The config's `language` counts once read.
        messages.use(_asked_language(args) or messages.language_from(os.environ))
        return super().make_context(info_name, args, parent, **extra)

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
            message = messages._("internal error ({error}); please report it").format(
                error=f"{type(exc).__name__}: {exc}"
            )
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


def _asked_language(args: Sequence[str]) -> Language | None:
    """The value of `--lang X` or `--lang=X` among the arguments, if one of LANGUAGES."""
    for index, arg in enumerate(args):
        if arg == "--":
            break
        value = arg.partition("=")[2] if arg.startswith("--lang=") else None
        if arg == "--lang" and index + 1 < len(args):
            value = args[index + 1]
        found = next((language for language in LANGUAGES if language == value), None)
        if found is not None:
            return found
    return None


@click.group(
    cls=_ImporterGroup,
    epilog=EXIT_CODES,
    help=N_("Import meetings from CSV or Excel sheets into HubSpot, exactly once, inside its rate limits."),
)
@click.version_option(
    __version__, prog_name="meeting-importer", cls=_Option, help=N_("Show the version and exit.")
)
@_help_option()
def main() -> None:
    pass


_path = click.Path(path_type=Path, dir_okay=False)


@main.command(
    epilog=EXIT_CODES,
    help=N_(
        "Import the meetings in INPUT (CSV, xlsx, xlsm, xls or ods) and write a results file.\n"
        "\n"
        "\b\n"
        "Examples:\n"
        "  meeting-importer run meetings.csv --dry-run\n"
        "  meeting-importer run meetings_ja.csv --config config/japanese.toml\n"
        "  meeting-importer run meetings.csv --only-failed meetings.results.csv\n"
        "  meeting-importer run meetings.csv --key-column 商談ID\n"
        "  meeting-importer run last_quarter.csv --mode auto"
    ),
)
@click.argument("input_path", metavar="INPUT", type=_path)
@_option("--config", "config_path", type=_path, help=N_("TOML settings file (see config/importer.toml)."))
@_option(
    "--results", type=_path, help=N_("Results file (.csv or .xlsx). Default: INPUT.results.csv beside it.")
)
@_option("--sheet", help=N_("Excel sheet name, or its 1-based position. Default: the first visible sheet."))
@_option(
    "--header-row",
    type=click.IntRange(min=1),
    help=N_(
        "Row number of the header, as Excel shows it. Default: the first of rows 1-20 with every required column."
    ),
)
@_option("--encoding", help=N_("CSV encoding (utf-8, cp932, utf-16, ...). Default: detected."))
@_option(
    "--date-order",
    type=click.Choice(["MDY", "DMY", "YMD"], case_sensitive=False),
    metavar="[MDY|DMY|YMD]",  # click would show the choices lower-cased
    help=N_(
        "How dates with the year last read: MDY (2/13/2027) or DMY (13/02/2027). Default: YMD, which "
        "refuses them, as 01/02/2027 reads two ways."
    ),
)
@_option("--dry-run", is_flag=True, default=None, help=N_("Validate every row, write results, send nothing."))
@_option(
    "--only-failed",
    type=click.Path(path_type=Path, dir_okay=False, exists=True),
    help=N_("Earlier results file: rows it marks created or skipped are skipped; the rest are sent."),
)
@_option("--concurrency", type=click.IntRange(1, 256), help=N_("Requests in flight at once. Default: 8."))
@_option(
    "--rate-limit",
    "requests_per_10s",
    type=click.IntRange(1, 10_000),
    help=N_(
        "At most this many requests per rolling 10 s, lookups included, to leave room for other "
        "integrations. Default: HubSpot's limit, as its answers report it (100 to 250 by tier)."
    ),
)
@_option(
    "--state",
    "state_path",
    type=_path,
    help=N_("Run ledger (SQLite). Default: one per HubSpot portal in ~/.local/state/meeting-importer/."),
)
@_option(
    "--check-existing/--no-check-existing",
    default=None,
    help=N_("Look for each row among the portal's meetings before creating it (default: on)."),
)
@_option(
    "--key-column",
    help=N_("A column that identifies each meeting (e.g. 商談ID): an edited row updates its meeting."),
)
@_option(
    "--on-change",
    type=click.Choice(["update", "skip"]),
    help=N_("A row changed since it was sent: update its meeting (default) or leave it."),
)
@_option(
    "--recreate-missing",
    is_flag=True,
    default=None,
    help=N_("An edited row whose meeting was deleted in HubSpot is created anew (default: it fails)."),
)
@_option(
    "--mode",
    type=click.Choice(["schedule", "log", "auto"]),
    help=N_(
        "schedule: calendar events, a request a meeting; log: logged without a calendar event (past"
        " meetings), 100 a request; auto: log the meetings that ended before the run started, schedule the"
        " rest. Default: schedule."
    ),
)
@_option("--quiet", is_flag=True, help=N_("No progress and no summary; only errors on stderr."))
@_option("--log-file", type=_path, help=N_("Append a log line per row and event to this file."))
@_option(
    "--log-format",
    type=click.Choice(["text", "json"]),
    default="text",
    help=N_("Log lines as key=value text or one JSON object each. Default: text."),
)
@_option("--summary-json", type=_path, help=N_("Write counts, durations, request rate and 429s here."))
@_option(
    "--lang",
    "language",
    type=click.Choice(LANGUAGES),
    help=N_("Language of messages and the summary. Default: the config's `language`, else the locale's."),
)
@_help_option()
def run(**options: Any) -> None:
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
    # What these imports make lives as long as the run: the collector would walk it some hundred times
    # while they run (45 ms of a 400 ms start-up), and again and again after them, to free nothing.
    collecting = gc.isenabled()
    gc.disable()
    try:
        from importer.config import load_settings
        from importer.console import PlainPhases, ProgressLine, problem_report, summary_lines
        from importer.pipeline import run_import
    finally:
        gc.freeze()
        if collecting:
            gc.enable()
    interactive = sys.stderr.isatty() and not quiet
    logs.configure(quiet=quiet, interactive=interactive, log_file=log_file, log_format=log_format)
    progress: ProgressLine | PlainPhases | None = None
    if interactive:
        progress = ProgressLine(sys.stderr)
    elif not quiet:
        progress = PlainPhases(sys.stdout)
    try:
        # Until the settings are read (their own errors too), messages are in --lang's language or the
        # locale's: see _ImporterGroup.make_context.
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
        message = messages._("cannot write the summary {path}: {error}")
        raise StopRun(message.format(path=path, error=exc.strerror or exc)) from None


@main.command(
    epilog=EXIT_CODES,
    help=N_("Print what the ledger knows: rows by state, the last run, and rows in doubt."),
)
@_option(
    "--state",
    "state_path",
    type=_path,
    help=N_("The run ledger to read. Default: every portal's ledger in ~/.local/state/meeting-importer/."),
)
@_help_option()
def status(state_path: Path | None) -> None:
    from importer.ledger import find_ledgers, read_state

    ledgers = find_ledgers(state_path)
    if not ledgers:
        raise StopRun(messages._("no ledger yet: no import has run for this user (or pass --state)"))
    for ledger in ledgers:
        for target in read_state(ledger):
            click.echo(messages._("portal {portal} ({ledger})").format(portal=target.target, ledger=ledger))
            # The states stay as the ledger and the results file spell them.
            counts = ", ".join(f"{n} {s}" for s, n in sorted(target.counts.items())) or messages._("no rows")
            click.echo(messages._("  rows: {counts}").format(counts=counts))
            if target.last_run is not None:
                run = target.last_run
                finished = _when(run.finished_at) if run.finished_at else messages._("did not finish")
                last = messages._("  last run: {input} started {started}, {finished}: {summary}")
                started = _when(run.started_at)
                click.echo(
                    last.format(
                        input=run.input, started=started, finished=finished, summary=run.summary or "-"
                    )
                )
            for entry in target.in_doubt:
                doubt = messages._("  in doubt: {row_key} '{title}' since {since}")
                click.echo(
                    doubt.format(row_key=entry.row_key, title=entry.title, since=_when(entry.updated_at))
                )


def _when(timestamp: float) -> str:
    """Local time with its offset: what the person reading `status` lives in."""
    return datetime.fromtimestamp(timestamp).astimezone().strftime("%Y-%m-%d %H:%M:%S%z")


plan = _Command(
    "plan",
    callback=_plan,
    params=[param for param in run.params if param.name != "dry_run"],
    epilog=EXIT_CODES,
    help=N_(
        "Show what `run` would do with each row of INPUT, and do none of it.\n"
        "\n"
        "Reads and checks every row, looks up owners and associations, asks the ledger and HubSpot which"
        " meetings exist, and writes each row's action (create, update with the columns that change, skip"
        " with the meeting id, invalid, fail with the reason) to INPUT.plan.csv (or --results). It sends no"
        " create and no update, and records nothing in the ledger.\n"
        "\n"
        "\b\n"
        "Example:\n"
        "  meeting-importer plan meetings.csv --key-column 商談ID"
    ),
)
main.add_command(plan)
