"""Read and validate: the dry run of a 1,000,000-row sheet, against polars.read_csv alone on the same file.

Generates a realistic CSV (all 17 columns, several zones and time spellings, owners and contacts that
repeat as in real sheets, multi-item lists, a multi-line cell now and then, about 0.1 % bad rows) and an
equivalent xlsx with real date-time cells, then runs `python -m importer run FILE --dry-run` on each in a
subprocess, so the peak RSS printed is the importer's own (the CSV three times: the median time, the
highest peak); the xlsx once more with `--results FILE.xlsx`, for
what writing a workbook of results costs. Aims (issue 15): the 1M-row CSV dry run in at most 4 s and 800 MB;
the 200k-row results workbook written in a few seconds (at most 5 s more than a CSV), and every 200k-row run
at most 500 MB (a dry run stands in for a real run's rows).

    .venv/bin/python bench/read_validate.py [--rows 1000000] [--xlsx-rows 200000] [--out bench/out]

The xlsx has fewer rows by default: xlsxwriter, even in constant_memory mode, writes about 16,000 rows of
17 columns a second here, so a 1M-row workbook would take a minute to make before the measurement starts.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import re
import subprocess
import sys
import time
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import polars as pl
import xlsxwriter
from bytecode import compile_importer

REPO = Path(__file__).resolve().parents[1]
ZONES = ["Asia/Tokyo", "America/New_York", "Europe/London", "America/Chicago", "Europe/Berlin", ""]
OUTCOMES = ["SCHEDULED", "", "completed", "完了", "RESCHEDULED", "", "no show", ""]
LOCATION_TYPES = [("Zoom", "CUSTOM"), ("+81 3 1234 5678", "PHONE"), ("本社 会議室A", "ADDRESS"), ("", "")]
REMINDERS = ["", "", "30m", "1d; 30m", "1日", "none"]
TARGET_S, TARGET_MB = 4.0, 800
RUNS = 3
XLSX_WRITE_S, ROWS_200K_MB = 5.0, 500


@dataclass(frozen=True)
class Measure:
    wall_s: float
    importer_s: float
    peak_rss_mb: float
    exit_code: int


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rows", type=int, default=1_000_000, help="CSV rows (default 1,000,000)")
    parser.add_argument("--xlsx-rows", type=int, default=200_000, help="xlsx rows (default 200,000; 0 skips)")
    parser.add_argument("--out", type=Path, default=REPO / "bench" / "out", help="folder for the files")
    args = parser.parse_args()
    compile_importer()
    args.out.mkdir(parents=True, exist_ok=True)

    frame = meetings(args.rows)
    csv_path = args.out / f"meetings_{args.rows}.csv"
    started = time.perf_counter()
    frame.write_csv(csv_path)
    size_mb = csv_path.stat().st_size / 2**20
    print(
        f"generated {csv_path} ({args.rows:,} rows, {size_mb:.0f} MB) in {time.perf_counter() - started:.1f}s"
    )

    os.sync()  # the file just written goes to disk now, not while the runs are measured
    read_s = min(timed_read_csv(csv_path) for _ in range(3))  # best of 3: a single read is noisy
    startup = dry_run(None, args.out)
    # The median of three runs (and the highest peak): this machine's speed varies from one to the next.
    runs = sorted((dry_run(csv_path, args.out) for _ in range(RUNS)), key=lambda m: m.wall_s)
    csv = dataclasses.replace(runs[len(runs) // 2], peak_rss_mb=max(m.peak_rss_mb for m in runs))
    report("csv", args.rows, csv, f" (median of {RUNS}: {', '.join(f'{m.wall_s:.2f}' for m in runs)} s)")
    print(
        f"      polars.read_csv(path, infer_schema=False) alone {read_s:.2f}s (best of 3); dry run / read_csv = {csv.wall_s / read_s:.1f}x"
    )
    print(f"      (python + importer start-up alone: {startup.wall_s:.2f}s of the wall time)")

    if args.xlsx_rows:
        xlsx_path = args.out / f"meetings_{args.xlsx_rows}.xlsx"
        # The workbook takes half a minute to make: one made by this version of the script is kept.
        if not xlsx_path.exists() or xlsx_path.stat().st_mtime < Path(__file__).stat().st_mtime:
            started = time.perf_counter()
            write_xlsx(frame.head(args.xlsx_rows), xlsx_path)
            print(f"generated {xlsx_path} ({args.xlsx_rows:,} rows) in {time.perf_counter() - started:.1f}s")
        xlsx = dry_run(xlsx_path, args.out)
        report("xlsx", args.xlsx_rows, xlsx)
        workbook = dry_run(xlsx_path, args.out, results=".xlsx")
        report("xlsx", args.xlsx_rows, workbook, "  results .xlsx")
        write_s = workbook.wall_s - xlsx.wall_s
        print(f"      writing the {args.xlsx_rows:,}-row results .xlsx: {write_s:.2f}s more than a .csv")
        verdict(
            f"{args.xlsx_rows:,}-row results .xlsx written in <= {XLSX_WRITE_S:.0f}s more",
            write_s <= XLSX_WRITE_S,
        )
        peak = max(xlsx.peak_rss_mb, workbook.peak_rss_mb)
        verdict(
            f"{args.xlsx_rows:,}-row runs peak RSS <= {ROWS_200K_MB} MB ({peak:,.0f} MB)",
            peak <= ROWS_200K_MB,
        )

    if args.rows < 1_000_000:
        print(f"target (1M CSV rows <= {TARGET_S:.0f}s, <= {TARGET_MB} MB): run with --rows 1000000 to check")
        return
    met = csv.wall_s * 1_000_000 / args.rows <= TARGET_S and csv.peak_rss_mb <= TARGET_MB
    verdict(f"1M CSV rows dry run <= {TARGET_S:.0f}s wall and <= {TARGET_MB} MB peak RSS", met)


def verdict(target: str, met: bool) -> None:
    print(f"target {target}: {'met' if met else 'NOT met'}")


def timed_read_csv(path: Path) -> float:
    started = time.perf_counter()
    pl.read_csv(path, infer_schema=False)
    return time.perf_counter() - started


def meetings(rows: int) -> pl.DataFrame:
    """A sheet as sales ops keep one: 40 owners, 6,000 contacts at 900 companies, mixed spellings."""
    i = pl.int_range(0, rows, dtype=pl.Int64, eager=True).alias("i")
    owners = pl.Series([f"rep{n:02d}@example.co.jp" for n in range(40)])
    contacts = pl.Series([f"contact{n}@company{n % 900}.co.jp" for n in range(6000)])
    domains = pl.Series([f"company{n}.co.jp" for n in range(900)])
    start = pl.lit(datetime(2026, 12, 1, 9, 0)) + pl.duration(minutes=(pl.col("i") * 37) % (60 * 24 * 365))
    base = pl.DataFrame({"i": i}).with_columns(
        start.alias("_start"), (pl.col("i") % 1000 == 999).alias("_bad")
    )
    base = base.with_columns(
        _owner=owners.gather(i % 40),
        _contact=contacts.gather((i * 7919) % 6000),
        _contact2=contacts.gather((i * 104729) % 6000),
        _domain=domains.gather((i * 7919) % 6000 % 900),
    )
    spelling = pl.col("i") % 10
    start_text = (
        pl.when(spelling < 6)
        .then(pl.col("_start").dt.strftime("%Y-%m-%d %H:%M"))
        .when(spelling < 8)
        .then(pl.col("_start").dt.strftime("%Y/%m/%d %H:%M"))
        .when(spelling < 9)
        .then(pl.col("_start").dt.strftime("%Y-%m-%dT%H:%M:%S+09:00"))
        .otherwise(pl.col("_start").dt.strftime("%Y年%-m月%-d日 %H:%M"))
    )
    has_end = pl.col("i") % 5 < 3
    minutes = pl.lit(30) + (pl.col("i") % 4) * 15
    end = pl.col("_start") + pl.duration(minutes=minutes)
    location = pl.Series([loc for loc, _ in LOCATION_TYPES])
    location_type = pl.Series([kind for _, kind in LOCATION_TYPES])
    return base.select(
        title=pl.format("{} 定例 #{}", pl.col("_domain"), pl.col("i") % 97),
        start=start_text,
        end=pl.when(has_end).then(end.dt.strftime("%Y-%m-%d %H:%M")).otherwise(pl.lit("")),
        duration_minutes=pl.when(has_end).then(pl.lit("")).otherwise(minutes.cast(pl.String)),
        timezone=pl.lit(pl.Series(ZONES)).gather(pl.col("i") % len(ZONES)),
        owner_email=pl.when(pl.col("_bad")).then(pl.lit("rep01@example")).otherwise(pl.col("_owner")),
        attendee_emails=pl.when(pl.col("i") % 3 == 0).then(owners.gather((i + 1) % 40)).otherwise(pl.lit("")),
        contact_emails=pl.when(pl.col("i") % 4 == 0)
        .then(pl.format("{}; {}", pl.col("_contact"), pl.col("_contact2")))
        .otherwise(pl.col("_contact")),
        company_domains=pl.when(pl.col("i") % 10 == 0)
        .then(pl.format("https://www.{}/", pl.col("_domain")))
        .otherwise(pl.col("_domain")),
        deal_ids=pl.when(pl.col("i") % 5 < 3)
        .then((3_100_000 + pl.col("i") % 5000).cast(pl.String))
        .otherwise(pl.lit("")),
        ticket_ids=pl.when(pl.col("i") % 10 == 0)
        .then((4_100_000 + pl.col("i") % 700).cast(pl.String))
        .otherwise(pl.lit("")),
        location=pl.lit(location).gather(pl.col("i") % len(LOCATION_TYPES)),
        location_type=pl.lit(location_type).gather(pl.col("i") % len(LOCATION_TYPES)),
        body=pl.when(pl.col("i") % 20 == 0).then(pl.lit("議題:\n1. 予算\n2. 日程")).otherwise(pl.lit("")),
        internal_notes=pl.when(pl.col("i") % 7 == 0).then(pl.lit("髙橋部長も同席")).otherwise(pl.lit("")),
        outcome=pl.lit(pl.Series(OUTCOMES)).gather(pl.col("i") % len(OUTCOMES)),
        reminders=pl.lit(pl.Series(REMINDERS)).gather(pl.col("i") % len(REMINDERS)),
    )


def write_xlsx(frame: pl.DataFrame, path: Path) -> None:
    """The same rows as a workbook, typed as people type: ISO-like times as date-time cells (other
    spellings stay text), minutes as numbers, the rest as text."""
    workbook = xlsxwriter.Workbook(str(path), {"constant_memory": True})
    sheet = workbook.add_worksheet("Meetings")
    moment = workbook.add_format({"num_format": "yyyy-mm-dd hh:mm"})
    sheet.write_row(0, 0, frame.columns)
    starts = frame["start"].str.to_datetime("%Y-%m-%d %H:%M", strict=False).to_list()
    ends = frame["end"].str.to_datetime("%Y-%m-%d %H:%M", strict=False).to_list()
    for index, (row, start, end) in enumerate(zip(frame.iter_rows(), starts, ends, strict=True), start=1):
        cells: list[object] = [
            row[0],
            start or row[1],
            end or row[2],
            int(row[3]) if row[3] else None,
            *row[4:],
        ]
        for column, value in enumerate(cells):
            if isinstance(value, datetime):
                sheet.write_datetime(index, column, value, moment)
            elif isinstance(value, int):
                sheet.write_number(index, column, value)
            elif value:
                sheet.write_string(index, column, value)
    workbook.close()


# Runs the command given and writes its exit code, wall seconds and peak RSS. The importer is started from
# this small process, not from the benchmark: a child forked from a parent holding a million-row frame is
# charged that parent's pages until it execs, which would inflate its ru_maxrss.
_MEASURE = """
import resource, subprocess, sys, time
started = time.perf_counter()
code = subprocess.call(sys.argv[2:])
wall = time.perf_counter() - started
peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
open(sys.argv[1], "w").write(f"{code} {wall} {peak}")
"""


def dry_run(path: Path | None, out: Path, results: str = ".csv") -> Measure:
    """`python -m importer run PATH --dry-run` in a child, its results file of kind `results`: wall time
    and its peak RSS (getrusage(RUSAGE_CHILDREN) in a small parent). Without a path: start-up alone
    (`--version`)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MEETING_IMPORTER_", "HUBSPOT_"))}
    env["PYTHONPATH"] = str(REPO)
    args = (
        ["run", str(path), "--dry-run", "--results", str(out / f"{path.name}.results{results}")]
        if path
        else ["--version"]
    )
    log, figures = out / "dry_run.log", out / "dry_run.figures"
    with log.open("w") as output:
        command = [sys.executable, "-c", _MEASURE, str(figures), sys.executable, "-m", "importer", *args]
        subprocess.run(command, env=env, stdout=output, stderr=output, check=True)
    code, wall, peak = figures.read_text().split()
    text = log.read_text()
    if int(code) not in (0, 1):
        sys.exit(f"the dry run failed with exit code {code}:\n{text}")
    said = re.search(r"duration_s=(\d+\.\d+)", text)
    scale = 1 if sys.platform == "darwin" else 1024  # ru_maxrss: bytes on macOS, kilobytes on Linux
    return Measure(float(wall), float(said.group(1)) if said else 0.0, int(peak) * scale / 2**20, int(code))


def report(kind: str, rows: int, measure: Measure, note: str = "") -> None:
    print(
        f"{kind:<5} {rows:>9,} rows  dry run{note} {measure.wall_s:.2f}s wall (importer's own figure"
        f" {measure.importer_s:.1f}s)  {rows / measure.wall_s:,.0f} rows/s"
        f"  peak RSS {measure.peak_rss_mb:,.0f} MB  exit {measure.exit_code}"
    )


if __name__ == "__main__":
    main()
