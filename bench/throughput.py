"""Throughput of real imports: the CLI sends meetings to the sandbox, at HubSpot's tiers and latencies.

For each case a fresh sandbox (`python -m importer.sandbox`) enforces the tier's rolling window, answers
after `latency + up to jitter` and counts each request only after an uplink delay of up to 100 ms (so
requests arrive out of order, as over a real network); the real CLI (`python -m importer run`) imports
600 rows into it, without --rate-limit: the importer has to learn the tier. Printed per case:

- share creating: meetings created per second over the limit per second (100 per 10 s = 10/s), fitted
  over the sandbox's createdAt times (a least-squares fit, so answer jitter at the ends does not count);
- share whole run: all requests over the limit, from process start to exit (start-up and lookups in);
- the busiest rolling window HubSpot saw, and the 429s it served for it;
- the importers' CPU (user + system, from wait4) per request, start-up and all; and that CPU split in
  two: start-up (an import of a sheet without rows, run after the case on its sandbox: imports, settings,
  the account details, the ledger) and the increment per request beyond it.

Then the start-up time of `meeting-importer --version`, and this machine's floor for a paced request (a
bare asyncio loop's CPU at 10 requests a second, with and without a synced SQLite commit): the CPU
column read against it. About eight minutes in all. On shared cores the
figures move with the machine's load: a busy event loop sends late and counts CPU it did not spend alone.
Other guests on the host move them too, by up to twice, within minutes: the start-up column shows it (an
import without rows costs about 300 ms of CPU on a quiet host, 600 on a contended one), and the bare loop
below does not, its few lines staying in the caches the importer's many lose.

    .venv/bin/python bench/throughput.py [--rows 600] [--only NAME-PREFIX] [--concurrency N]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
import polars as pl
from bytecode import compile_importer

OWNERS = ["aiko.tanaka@example.co.jp", "kenji.sato@example.co.jp", "emma.wilson@example.com"]
CONTACTS = [
    "hiroshi.yamada@sakura-trading.co.jp",
    "takeshi.ito@fuji-robotics.jp",
    "sarah.johnson@northwind.com",
]
WINDOW_MS = 10_000


@dataclass(frozen=True)
class Case:
    name: str
    tier: int  # the sandbox's requests per 10 s
    latency_ms: int  # every answer waits this long...
    jitter_ms: int  # ...plus up to this much more, at random
    uplink_jitter_ms: int = 100  # each request is counted up to this much after it was sent
    importers: int = 1  # runs at once on the same app, sharing the rows
    rate_limit: int | None = None  # --rate-limit, if given
    check_existing: bool = True  # the search for meetings HubSpot already has, before creating


CASES = [
    Case("tier 100, 150±100 ms", 100, 50, 200),
    Case("tier 100, 150±100 ms, check off", 100, 50, 200, check_existing=False),
    Case("tier 190, 150±100 ms", 190, 50, 200),
    Case("tier 250, 150±100 ms", 250, 50, 200),
    Case("tier 100, 50 ms", 100, 50, 0),
    Case("tier 100, 400±200 ms", 100, 200, 400),
    Case("two importers, tier 100, 150±100 ms", 100, 50, 200, importers=2),
    Case("--rate-limit 150 on tier 250", 250, 50, 200, rate_limit=150),
    Case("not paced (tier 100000), 150±100 ms", 100_000, 50, 200),
]


@dataclass(frozen=True)
class Outcome:
    share_creating: float
    share_whole: float
    busiest: int
    window_429s: int
    cpu_ms_per_request: float
    startup_cpu_ms: float  # one importer's, with no rows
    cpu_ms_per_more_request: float  # beyond start-up
    created: int
    duplicates: int
    exit_codes: tuple[int, ...]
    searches: int


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rows", type=int, default=600, help="rows per case (shared by its importers)")
    parser.add_argument("--only", help="run only the cases whose name starts with this")
    parser.add_argument("--concurrency", type=int, help="--concurrency for the importers (default: theirs)")
    args = parser.parse_args()
    compile_importer()
    cases = [case for case in CASES if args.only is None or case.name.startswith(args.only)]
    print(f"{args.rows} rows a case; uplink delay 0-100 ms before HubSpot counts a request; no --rate-limit")
    print(
        f"{'case':38} {'share creating':>14} {'share whole run':>15} {'busiest window':>14} "
        f"{'429s':>4} {'CPU ms/request':>14} {'start-up ms':>11} {'+ms/request':>11} {'created':>7} "
        f"{'searches':>8}"
    )
    for case in cases:
        with tempfile.TemporaryDirectory() as tmp:
            outcome = run_case(case, Path(tmp), args.rows, args.concurrency)
        limit = min(case.tier, case.rate_limit or case.tier)
        share = "-" if case.tier >= 10_000 else f"{outcome.share_creating:.3f}"
        whole = "-" if case.tier >= 10_000 else f"{outcome.share_whole:.3f}"
        busiest = "-" if case.tier >= 10_000 else f"{outcome.busiest} / {limit}"
        created = f"{outcome.created}" + (f" ({outcome.duplicates} dup)" if outcome.duplicates else "")
        codes = "" if set(outcome.exit_codes) == {0} else f"  exit {outcome.exit_codes}"
        print(
            f"{case.name:38} {share:>14} {whole:>15} {busiest:>14} {outcome.window_429s:>4} "
            f"{outcome.cpu_ms_per_request:>14.2f} {outcome.startup_cpu_ms:>11.0f} "
            f"{outcome.cpu_ms_per_more_request:>11.2f} {created:>7} {outcome.searches:>8}{codes}"
        )
    wall, cpu = startup()
    print(f"start-up, meeting-importer --version: {wall:.2f} s, {cpu * 1000:.0f} ms CPU (median of 5)")
    if args.only is None:
        with tempfile.TemporaryDirectory() as tmp:
            bare, synced = floor(Path(tmp))
        print(
            f"this machine's floor at 10 requests a second: {bare:.2f} ms CPU a request for a bare asyncio loop "
            f"(a GET on a kept connection, its JSON read), {synced:.2f} ms with one synced SQLite commit each"
        )


def run_case(case: Case, folder: Path, rows: int, concurrency: int | None) -> Outcome:
    sandbox, url = _start_sandbox(folder, case)
    try:
        sheets = [
            _write_sheet(folder / f"run{i}" / "bench.csv", rows // case.importers, f"Bench {i}")
            for i in range(case.importers)
        ]
        options = [] if case.rate_limit is None else ["--rate-limit", str(case.rate_limit)]
        options += [] if concurrency is None else ["--concurrency", str(concurrency)]
        options += [] if case.check_existing else ["--no-check-existing"]
        walls, cpu, codes = _run_importers(sheets, url, options, folder)
        stats = httpx.get(f"{url}/__sandbox/stats").json()
        meetings = httpx.get(f"{url}/__sandbox/meetings").json()["results"]
        # After the case, so its one request takes no room in the case's window.
        empty = _write_sheet(folder / "empty" / "bench.csv", 0, "Empty")
        _, startup_cpu, empty_codes = _run_importers([empty], url, options, folder / "empty")
        if empty_codes != (0,):
            raise SystemExit(f"an import without rows ended with exit {empty_codes}")
        startup_requests = (
            httpx.get(f"{url}/__sandbox/stats").json()["requests_total"] - stats["requests_total"]
        )
    finally:
        sandbox.terminate()
        sandbox.wait()
    limit_per_s = min(case.tier, case.rate_limit or case.tier) / (WINDOW_MS / 1000)
    requests = stats["requests_total"]
    beyond = cpu - case.importers * startup_cpu
    return Outcome(
        share_creating=_rate(meetings) / limit_per_s,
        share_whole=requests / max(walls) / limit_per_s,
        busiest=stats["max_in_window"],
        window_429s=stats["rate_limited"]["TEN_SECONDLY_ROLLING"],
        cpu_ms_per_request=1000 * cpu / requests,
        startup_cpu_ms=1000 * startup_cpu,
        cpu_ms_per_more_request=1000 * beyond / (requests - case.importers * startup_requests),
        created=stats["meetings_created"],
        duplicates=stats["duplicates"],
        exit_codes=codes,
        searches=stats["requests_by_route"].get("search", 0),
    )


def _rate(meetings: list[dict[str, Any]]) -> float:
    """Meetings created per second: the slope of a least-squares line through their creation times."""
    times = sorted(
        datetime.fromisoformat(m["createdAt"].replace("Z", "+00:00")).timestamp() for m in meetings
    )
    seconds_per_meeting = statistics.linear_regression(range(len(times)), times).slope
    return 1 / seconds_per_meeting


def _write_sheet(path: Path, rows: int, title: str) -> Path:
    path.parent.mkdir(parents=True)
    frame = pl.DataFrame(
        {
            "title": [f"{title} {i:06d}" for i in range(rows)],
            "start": [f"2027-02-{1 + i % 28:02d} {8 + i % 10:02d}:{i % 60:02d}" for i in range(rows)],
            "duration_minutes": ["30"] * rows,
            "timezone": ["Asia/Tokyo"] * rows,
            "owner_email": [OWNERS[i % len(OWNERS)] for i in range(rows)],
            "contact_emails": [CONTACTS[i % len(CONTACTS)] for i in range(rows)],
        }
    )
    frame.write_csv(path)
    return path


def _start_sandbox(folder: Path, case: Case) -> tuple[subprocess.Popen[bytes], str]:
    port_file = folder / "port"
    command = [sys.executable, "-m", "importer.sandbox", "--port", "0", "--port-file", str(port_file)]
    command += ["--max-per-window", str(case.tier), "--window-ms", str(WINDOW_MS)]
    command += ["--latency-ms", str(case.latency_ms), "--latency-jitter-ms", str(case.jitter_ms)]
    command += ["--uplink-jitter-ms", str(case.uplink_jitter_ms)]
    sandbox = subprocess.Popen(command, stdout=subprocess.DEVNULL)
    while not port_file.exists():
        if sandbox.poll() is not None:
            raise SystemExit("the sandbox did not start")
        time.sleep(0.05)
    return sandbox, f"http://127.0.0.1:{port_file.read_text().strip()}"


def _run_importers(
    sheets: list[Path], url: str, options: list[str], folder: Path
) -> tuple[list[float], float, tuple[int, ...]]:
    """Start one importer per sheet at once; their walls (start to exit), CPU seconds in all, exit codes."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MEETING_IMPORTER_", "HUBSPOT_"))}
    env.update({"HUBSPOT_BASE_URL": url, "HUBSPOT_ACCESS_TOKEN": "sandbox-token"})
    # Each case's ledgers in its own folder: every case's sandbox is a fresh portal with the same id.
    env["XDG_STATE_HOME"] = str(folder / "state")
    command = [sys.executable, "-m", "importer", "run", "--quiet", *options]
    started = time.monotonic()
    pids = [
        subprocess.Popen([*command, str(sheet)], env=env, stdout=subprocess.DEVNULL).pid for sheet in sheets
    ]
    walls: dict[int, float] = {}
    codes: dict[int, int] = {}
    cpu = 0.0
    while len(walls) < len(pids):
        # wait4 gives each child's own CPU time, not the sandbox's (which is never waited for here).
        pid, status, usage = os.wait4(pids[len(walls)] if len(pids) == 1 else -1, 0)
        if pid in pids:
            walls[pid] = time.monotonic() - started
            cpu += usage.ru_utime + usage.ru_stime
            codes[pid] = os.waitstatus_to_exitcode(status)
    return list(walls.values()), cpu, tuple(codes[pid] for pid in pids)


def startup() -> tuple[float, float]:
    """`meeting-importer --version`: wall and CPU seconds, each the median of 5."""
    command = [sys.executable, "-m", "importer", "--version"]
    walls, cpus = [], []
    for _ in range(5):
        started = time.monotonic()
        pid = subprocess.Popen(command, stdout=subprocess.DEVNULL).pid
        _, status, usage = os.wait4(pid, 0)
        if os.waitstatus_to_exitcode(status) != 0:
            raise SystemExit("meeting-importer --version failed")
        walls.append(time.monotonic() - started)
        cpus.append(usage.ru_utime + usage.ru_stime)
    return statistics.median(walls), statistics.median(cpus)


FLOOR_REQUESTS = 200


def floor(folder: Path) -> tuple[float, float]:
    """What a paced request costs here at the least, for reading the CPU column: the thread CPU of a loop
    that wakes every 100 ms, sends one GET on a kept-alive connection and reads its JSON, without and with
    a synced SQLite commit (the ledger's one per create). A woken process runs on cold caches, so this is
    several times what the same loop costs unpaced."""
    sandbox, url = _start_sandbox(folder, Case("floor", 100, 50, 200))
    try:
        return asyncio.run(_floor_loop(url, None)), asyncio.run(_floor_loop(url, folder / "floor.sqlite"))
    finally:
        sandbox.terminate()
        sandbox.wait()


async def _floor_loop(url: str, database: Path | None) -> float:
    host, port = url.removeprefix("http://").split(":")
    reader, writer = await asyncio.open_connection(host, int(port))
    request = (
        f"GET /crm/v3/owners?limit=1 HTTP/1.1\r\nHost: {host}\r\nAuthorization: Bearer sandbox-token\r\n\r\n"
    )
    db = None
    if database is not None:
        db = sqlite3.connect(database, isolation_level=None)
        db.execute("PRAGMA journal_mode=WAL")
        db.execute("PRAGMA synchronous=FULL")
        db.execute("CREATE TABLE rows (row_key TEXT PRIMARY KEY, state TEXT, at REAL)")
    loop = asyncio.get_running_loop()
    due, started = loop.time(), time.thread_time()
    for i in range(FLOOR_REQUESTS):
        due += 0.1
        await asyncio.sleep(max(0.0, due - loop.time()))
        if db is not None:
            db.execute("INSERT INTO rows VALUES (?, 'sending', ?)", (f"row-{i}", time.time()))
        writer.write(request.encode())
        head = await reader.readuntil(b"\r\n\r\n")
        length = next(
            int(line[15:]) for line in head.split(b"\r\n") if line.lower().startswith(b"content-length:")
        )
        json.loads(await reader.readexactly(length))
    spent = time.thread_time() - started
    writer.close()
    if db is not None:
        db.close()
    return 1000 * spent / FLOOR_REQUESTS


if __name__ == "__main__":
    main()
