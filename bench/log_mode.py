"""Log mode against schedule mode: the real CLI imports past meetings into the sandbox under one rate limit.

Each mode gets a fresh sandbox with the same limit and latency, and a sheet of meetings that ended last
year. Prints, per mode, rows per second from process start to exit (start-up and lookups included) and over
the summary's send_s, then their ratio (aim: log mode at least 50 times the rows per second).

    .venv/bin/python bench/log_mode.py [--log-rows 5000] [--schedule-rows 300] [--limit 100] [--latency-ms 150]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import httpx
import polars as pl
from bytecode import compile_importer

OWNERS = ["aiko.tanaka@example.co.jp", "kenji.sato@example.co.jp", "emma.wilson@example.com"]
CONTACTS = [
    "hiroshi.yamada@sakura-trading.co.jp",
    "takeshi.ito@fuji-robotics.jp",
    "sarah.johnson@northwind.com",
]


@dataclass(frozen=True)
class Figures:
    """One mode's run."""

    mode: str
    rows: int
    wall_s: float
    send_s: float
    code: int
    stats: dict[str, object]

    @property
    def rows_per_s(self) -> float:
        return self.rows / self.wall_s

    @property
    def send_rows_per_s(self) -> float:
        return self.rows / self.send_s if self.send_s else 0.0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--log-rows", type=int, default=5000)
    parser.add_argument("--schedule-rows", type=int, default=300)
    parser.add_argument("--limit", type=int, default=100, help="requests per 10 s, sandbox and importer")
    parser.add_argument("--latency-ms", type=int, default=150)
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--timeout-s", type=float, default=300, help="longest a mode's import may take")
    args = parser.parse_args()
    compile_importer()

    print(f"limit {args.limit}/10 s, latency {args.latency_ms} ms, concurrency {args.concurrency}")
    runs = [
        _bench(mode, rows, args) for mode, rows in (("log", args.log_rows), ("schedule", args.schedule_rows))
    ]
    for run in runs:
        limited = run.stats["rate_limited"]
        assert isinstance(limited, dict)
        print(
            f"{run.mode:<8} {run.rows:>6} rows in {run.wall_s:6.1f} s: {run.rows_per_s:7.1f} rows/s"
            f" ({run.send_rows_per_s:7.1f} over send_s, lookups included); requests"
            f" {run.stats['requests_total']}, 429s {sum(limited.values())}, created"
            f" {run.stats['meetings_created']}, duplicates {run.stats['duplicates']}, exit {run.code}"
        )
    log, schedule = runs
    print(f"log / schedule rows per second: {log.rows_per_s / schedule.rows_per_s:.1f} (aim >= 50)")


def _bench(mode: str, rows: int, args: argparse.Namespace) -> Figures:
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        sheet = _write_sheet(folder / "history.csv", rows)
        sandbox, url = _start_sandbox(folder, args.limit, args.latency_ms)
        try:
            wall, code = _run_importer(sheet, folder, url, mode, args)
            stats = httpx.get(f"{url}/__sandbox/stats").json()
        finally:
            sandbox.terminate()
            sandbox.wait()
        summary = json.loads((folder / "summary.json").read_text())
    return Figures(mode, rows, wall, float(summary.get("send_s") or 0.0), code, stats)


def _write_sheet(path: Path, rows: int) -> Path:
    """Meetings of last year, distinct by title and start."""
    frame = pl.DataFrame(
        {
            "title": [f"Visit {i:06d}" for i in range(rows)],
            "start": [
                f"2025-{1 + i % 12:02d}-{1 + i % 28:02d} {8 + i % 10:02d}:{i % 60:02d}" for i in range(rows)
            ],
            "duration_minutes": ["45"] * rows,
            "timezone": ["Asia/Tokyo"] * rows,
            "owner_email": [OWNERS[i % len(OWNERS)] for i in range(rows)],
            "contact_emails": [CONTACTS[i % len(CONTACTS)] for i in range(rows)],
            "outcome": ["COMPLETED"] * rows,
        }
    )
    frame.write_csv(path)
    return path


def _start_sandbox(folder: Path, limit: int, latency_ms: int) -> tuple[subprocess.Popen[bytes], str]:
    port_file = folder / "port"
    command = [sys.executable, "-m", "importer.sandbox", "--port", "0", "--port-file", str(port_file)]
    command += ["--max-per-window", str(limit), "--latency-ms", str(latency_ms)]
    sandbox = subprocess.Popen(command, stdout=subprocess.DEVNULL)
    deadline = time.monotonic() + 20
    while not port_file.exists():
        if sandbox.poll() is not None or time.monotonic() > deadline:
            sandbox.kill()
            raise SystemExit("the sandbox did not start")
        time.sleep(0.05)
    return sandbox, f"http://127.0.0.1:{port_file.read_text().strip()}"


def _run_importer(
    sheet: Path, folder: Path, url: str, mode: str, args: argparse.Namespace
) -> tuple[float, int]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MEETING_IMPORTER_", "HUBSPOT_"))}
    env.update({"HUBSPOT_BASE_URL": url, "HUBSPOT_ACCESS_TOKEN": "sandbox-token"})
    env["XDG_STATE_HOME"] = str(folder / "state")  # a ledger of its own: nothing is skipped as done before
    command = [sys.executable, "-m", "importer", "run", str(sheet), "--quiet", "--mode", mode]
    command += ["--rate-limit", str(args.limit), "--concurrency", str(args.concurrency)]
    command += ["--summary-json", str(folder / "summary.json")]
    started = time.monotonic()
    try:
        done = subprocess.run(command, env=env, stdout=subprocess.DEVNULL, timeout=args.timeout_s)
    except subprocess.TimeoutExpired:
        raise SystemExit(f"the {mode} import took longer than {args.timeout_s:.0f} s") from None
    return time.monotonic() - started, done.returncode


if __name__ == "__main__":
    main()
