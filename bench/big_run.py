"""A big real run: 200,000 rows into the sandbox, how soon the first meeting is created and how much
memory the importer holds.

The sheet names 20 owners, 20,000 contacts, 1,000 company domains and 2,000 deals, repeating as real
sheets do; the sandbox (tier 250 per 10 s, 50±50 ms) holds them all. The real CLI imports the sheet;
once the sandbox has `--created` meetings the importer is sent SIGTERM, as cron's timeout would, and
finishes the requests in flight and writes the results file of every row. With `--created 0 --mode log`
(100 meetings a request) the run goes to its end in a few minutes, every row's result and ledger entry
made: the whole run's memory. Printed:

- seconds from the first look-up to the first create (from the importer's JSON log; aim (issue 15) 2 s);
- the requests the sandbox served by route (look-ups, searches, creates);
- the importer's peak RSS (wait4; aim 500 MB at 200k rows) and wall time, and how long the stop took
  (SIGTERM to exit: the requests in flight and the final results file).

    .venv/bin/python bench/big_run.py [--rows 200000] [--created 300] [--results csv|xlsx] [--mode log]
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
import polars as pl
from bytecode import compile_importer

OWNERS, CONTACTS, DOMAINS, DEALS = 20, 20_000, 1_000, 2_000
TARGET_FIRST_CREATE_S, TARGET_MB = 2.0, 500


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    parser.add_argument("--rows", type=int, default=200_000)
    parser.add_argument(
        "--created", type=int, default=300, help="stop the run once this many exist (0: run to its end)"
    )
    parser.add_argument("--results", choices=["csv", "xlsx"], default="csv")
    parser.add_argument("--mode", choices=["schedule", "log"], default="schedule", help="the run's --mode")
    args = parser.parse_args()
    compile_importer()
    with tempfile.TemporaryDirectory(prefix="big-run-") as tmp:
        folder = Path(tmp)
        data = _write_data(folder / "data.json")
        sheet = _write_sheet(folder / "meetings.csv", args.rows)
        sandbox, url = _start_sandbox(folder, data)
        try:
            figures = _run(folder, sheet, url, args.created, args.results, args.mode)
        finally:
            sandbox.terminate()
            sandbox.wait()
    first = figures["first_create_s"]
    end = f"stopped after {figures['created']}" if args.created else f"to its end, {figures['created']}"
    print(f"rows {args.rows:,}, {args.mode} mode, {end} created ({args.results} results)")
    print(f"first look-up to first create: {first:.2f} s (aim {TARGET_FIRST_CREATE_S} s)")
    print(f"requests by route: {figures['routes']}")
    print(f"reading (start to first look-up): {figures['read_s']:.2f} s")
    print(f"peak RSS: {figures['rss_mb']:.0f} MB (aim {TARGET_MB} MB)")
    print(f"wall: {figures['wall_s']:.1f} s; SIGTERM to exit: {figures['stop_s']:.1f} s")
    met = first <= TARGET_FIRST_CREATE_S and figures["rss_mb"] <= TARGET_MB
    print("targets met" if met else "targets NOT met")


def _write_data(path: Path) -> Path:
    owners = [
        {
            "id": str(9_000_001 + i),
            "userId": 61_000_001 + i,
            "email": f"owner{i:02d}@example.co.jp",
            "firstName": "Owner",
            "lastName": f"{i:02d}",
            "archived": False,
        }
        for i in range(OWNERS)
    ]
    contacts = [
        {"id": str(7_500_001 + i), "properties": {"email": f"contact{i:05d}@client{i % DOMAINS:04d}.jp"}}
        for i in range(CONTACTS)
    ]
    companies = [
        {"id": str(6_500_001 + i), "properties": {"name": f"Client {i}", "domain": f"client{i:04d}.jp"}}
        for i in range(DOMAINS)
    ]
    deals = [{"id": str(3_500_001 + i), "properties": {"dealname": f"Deal {i}"}} for i in range(DEALS)]
    objects = {"contacts": contacts, "companies": companies, "deals": deals, "tickets": []}
    path.write_text(json.dumps({"owners": owners, "objects": objects}))
    return path


def _write_sheet(path: Path, rows: int) -> Path:
    """Rows as a sales team's export lists them: by date, owners and clients mixed."""
    contact = [(i * 7919) % CONTACTS for i in range(rows)]
    frame = pl.DataFrame(
        {
            "title": [f"Visit {i:06d}" for i in range(rows)],
            "start": [
                f"2027-{1 + (i * 12) // rows:02d}-{1 + i % 28:02d} {8 + i % 10:02d}:{(i * 5) % 60:02d}"
                for i in range(rows)
            ],
            "duration_minutes": ["30"] * rows,
            "timezone": ["Asia/Tokyo"] * rows,
            "owner_email": [f"owner{i % OWNERS:02d}@example.co.jp" for i in range(rows)],
            "contact_emails": [f"contact{c:05d}@client{c % DOMAINS:04d}.jp" for c in contact],
            "company_domains": [f"client{c % DOMAINS:04d}.jp" for c in contact],
            "deal_ids": [str(3_500_001 + (i * 31) % DEALS) if i % 3 == 0 else "" for i in range(rows)],
        }
    )
    frame.write_csv(path)
    return path


def _start_sandbox(folder: Path, data: Path) -> tuple[subprocess.Popen[bytes], str]:
    port_file = folder / "port"
    command = [sys.executable, "-m", "importer.sandbox", "--port", "0", "--port-file", str(port_file)]
    command += ["--data", str(data), "--max-per-window", "250", "--latency-ms", "50"]
    command += ["--latency-jitter-ms", "50", "--search-lag-ms", "0"]
    sandbox = subprocess.Popen(command, stdout=subprocess.DEVNULL)
    while not port_file.exists():
        if sandbox.poll() is not None:
            raise SystemExit("the sandbox did not start")
        time.sleep(0.05)
    return sandbox, f"http://127.0.0.1:{port_file.read_text().strip()}"


def _run(folder: Path, sheet: Path, url: str, created: int, kind: str, mode: str) -> dict[str, Any]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MEETING_IMPORTER_", "HUBSPOT_"))}
    env.update({"HUBSPOT_BASE_URL": url, "HUBSPOT_ACCESS_TOKEN": "sandbox-token"})
    env["XDG_STATE_HOME"] = str(folder / "state")
    log = folder / "run.jsonl"
    command = [sys.executable, "-m", "importer", "run", "--quiet", "--mode", mode, str(sheet)]
    command += ["--log-file", str(log), "--log-format", "json", "--results", str(folder / f"r.{kind}")]
    started = time.monotonic()
    importer = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL)
    stopped_at = None
    while True:  # wait4, not poll(): poll reaps the child and its resource usage with it
        pid, _status, usage = os.wait4(importer.pid, os.WNOHANG)
        if pid:
            break
        time.sleep(0.5)
        if created and stopped_at is None and _created(url) >= created:
            importer.send_signal(signal.SIGTERM)
            stopped_at = time.monotonic()
    ended = time.monotonic()
    lookup_at, first_create_at = _times(log)
    return {
        "first_create_s": first_create_at - lookup_at,
        "read_s": lookup_at - _process_start(log),
        "routes": httpx.get(f"{url}/__sandbox/stats", timeout=120).json()["requests_by_route"],
        "rss_mb": usage.ru_maxrss / 1024,
        "wall_s": ended - started,
        "stop_s": ended - stopped_at if stopped_at else 0.0,
        "created": _created(url),
    }


def _created(url: str) -> int:
    return int(httpx.get(f"{url}/__sandbox/stats", timeout=120).json()["meetings_created"])


def _times(log: Path) -> tuple[float, float]:
    """When the look-ups began and when the first meeting was created, from the importer's JSON log."""
    lookups = first = None
    for line in log.read_text().splitlines():
        entry = json.loads(line)
        at = datetime.fromisoformat(entry["time"]).timestamp()
        if lookups is None and entry["message"].startswith("looking up"):
            lookups = at
        if first is None and entry.get("status") == "created":
            first = at
            break
    if lookups is None or first is None:
        raise SystemExit(f"the log {log} has no look-up phase or no created row")
    return lookups, first


def _process_start(log: Path) -> float:
    entry = json.loads(log.read_text().splitlines()[0])
    return datetime.fromisoformat(entry["time"]).timestamp()


if __name__ == "__main__":
    main()
