"""Throughput of a real import: the CLI sends N meetings to the sandbox under HubSpot's smallest limit.

Prints the achieved request rate over the allowed rate (aim >= 0.95), the 429s the sandbox served for its
rolling window (aim 0) and the importer's CPU seconds over wall seconds (aim < 5 %).

    .venv/bin/python bench/throughput.py [--rows 2000] [--limit 100] [--latency-ms 150]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
import polars as pl

OWNERS = ["aiko.tanaka@example.co.jp", "kenji.sato@example.co.jp", "emma.wilson@example.com"]
CONTACTS = [
    "hiroshi.yamada@sakura-trading.co.jp",
    "takeshi.ito@fuji-robotics.jp",
    "sarah.johnson@northwind.com",
]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rows", type=int, default=2000)
    parser.add_argument("--limit", type=int, default=100, help="requests per 10 s, sandbox and importer")
    parser.add_argument("--latency-ms", type=int, default=150)
    parser.add_argument("--concurrency", type=int, default=8)
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        sheet = _write_sheet(folder / "bench.csv", args.rows)
        sandbox, url = _start_sandbox(folder, args.limit, args.latency_ms)
        try:
            wall, cpu, code = _run_importer(sheet, url, args.limit, args.concurrency)
            stats = httpx.get(f"{url}/__sandbox/stats").json()
        finally:
            sandbox.terminate()
            sandbox.wait()

    requests = stats["requests_total"]
    allowed_per_s = args.limit / 10
    print(f"rows {args.rows}, limit {args.limit}/10 s, latency {args.latency_ms} ms, exit code {code}")
    print(f"requests {requests} in {wall:.1f} s wall (process start to exit)")
    print(f"achieved rate / allowed rate: {requests / wall / allowed_per_s:.3f}")
    print(f"busiest rolling window: {stats['max_in_window']} of {args.limit}")
    print(
        f"429s served: window {stats['rate_limited']['TEN_SECONDLY_ROLLING']}, daily {stats['rate_limited']['DAILY']}"
    )
    print(f"meetings created {stats['meetings_created']}, duplicates {stats['duplicates']}")
    print(f"importer CPU {cpu:.2f} s = {100 * cpu / wall:.2f} % of wall")


def _write_sheet(path: Path, rows: int) -> Path:
    frame = pl.DataFrame(
        {
            "title": [f"Bench meeting {i:06d}" for i in range(rows)],
            "start": [f"2027-02-{1 + i % 28:02d} {8 + i % 10:02d}:{i % 60:02d}" for i in range(rows)],
            "duration_minutes": ["30"] * rows,
            "timezone": ["Asia/Tokyo"] * rows,
            "owner_email": [OWNERS[i % len(OWNERS)] for i in range(rows)],
            "contact_emails": [CONTACTS[i % len(CONTACTS)] for i in range(rows)],
        }
    )
    frame.write_csv(path)
    return path


def _start_sandbox(folder: Path, limit: int, latency_ms: int) -> tuple[subprocess.Popen[bytes], str]:
    port_file = folder / "port"
    command = [sys.executable, "-m", "importer.sandbox", "--port", "0", "--port-file", str(port_file)]
    command += ["--max-per-window", str(limit), "--latency-ms", str(latency_ms)]
    sandbox = subprocess.Popen(command, stdout=subprocess.DEVNULL)
    while not port_file.exists():
        if sandbox.poll() is not None:
            raise SystemExit("the sandbox did not start")
        time.sleep(0.05)
    return sandbox, f"http://127.0.0.1:{port_file.read_text().strip()}"


def _run_importer(sheet: Path, url: str, limit: int, concurrency: int) -> tuple[float, float, int]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MEETING_IMPORTER_", "HUBSPOT_"))}
    env.update({"HUBSPOT_BASE_URL": url, "HUBSPOT_ACCESS_TOKEN": "sandbox-token"})
    command = [sys.executable, "-m", "importer", "run", str(sheet), "--quiet"]
    command += ["--rate-limit", str(limit), "--concurrency", str(concurrency)]
    started = time.monotonic()
    process = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL)
    # wait4 gives this child's own CPU time, not the sandbox's.
    _, status, usage = os.wait4(process.pid, 0)
    wall = time.monotonic() - started
    process.returncode = os.waitstatus_to_exitcode(status)
    return wall, usage.ru_utime + usage.ru_stime, process.returncode


if __name__ == "__main__":
    main()
