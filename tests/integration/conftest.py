"""Integration fixtures: the real sandbox server on a free loopback port, and the real CLI in a subprocess.

Both run as separate processes, as in production: signals, exit codes, stderr and dropped connections are
only real that way.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import httpx
import polars as pl
import pytest

TOKEN = "sandbox-token"
OWNERS = ["aiko.tanaka@example.co.jp", "kenji.sato@example.co.jp", "emma.wilson@example.com"]
CONTACTS = [
    "hiroshi.yamada@sakura-trading.co.jp",
    "takeshi.ito@fuji-robotics.jp",
    "sarah.johnson@northwind.com",
]
# Short waits for tests: a fast backoff, a search lag the sandbox also uses, a short client timeout.
FAST_ENV = {
    "MEETING_IMPORTER_BACKOFF_BASE_S": "0.05",
    "MEETING_IMPORTER_SEARCH_LAG_S": "0.6",
    "MEETING_IMPORTER_TIMEOUT_S": "2",
}


@dataclass
class Sandbox:
    """A running sandbox process and its admin API."""

    url: str
    process: subprocess.Popen[bytes]
    state_home: Path  # the importer's XDG_STATE_HOME: where its per-portal ledgers go by default

    def stats(self) -> dict[str, Any]:
        return dict(httpx.get(f"{self.url}/__sandbox/stats").json())

    def meetings(self) -> list[dict[str, Any]]:
        return list(httpx.get(f"{self.url}/__sandbox/meetings").json()["results"])

    def reset(self, *, keep_meetings: bool = False) -> None:
        """Forget counters and the daily cap's count, and the meetings unless `keep_meetings` (as when
        HubSpot's day turns over)."""
        params = {"keep_meetings": "true"} if keep_meetings else {}
        httpx.post(f"{self.url}/__sandbox/reset", params=params).raise_for_status()

    def set_faults(self, **faults: Any) -> None:
        httpx.post(f"{self.url}/__sandbox/faults", json=faults).raise_for_status()

    def add_meeting(self, associations: list[dict[str, Any]] | None = None, **properties: str) -> str:
        """A meeting as a rep would make it in HubSpot's UI, in search at once; returns its id.

        `associations` take the create request's shape: `[{"to": {"id"}, "types": [...]}]`.
        """
        body = {"properties": properties, "associations": associations or []}
        answer = httpx.post(f"{self.url}/__sandbox/meetings", json=body)
        answer.raise_for_status()
        return str(answer.json()["id"])

    def delete_meeting(self, meeting_id: str) -> None:
        """As a rep deleting it in HubSpot's UI."""
        httpx.delete(f"{self.url}/__sandbox/meetings/{meeting_id}").raise_for_status()

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            self.process.wait(timeout=10)


@pytest.fixture
def start_sandbox(tmp_path: Path) -> Iterator[Callable[..., Sandbox]]:
    """Factory: `start_sandbox(window_ms=1000, error_5xx=0.05, ...)` -> a fresh sandbox; stopped after."""
    started: list[Sandbox] = []

    def start(**options: Any) -> Sandbox:
        port_file = tmp_path / f"sandbox-{len(started)}.port"
        options.setdefault("search_lag_ms", 200)
        args = [sys.executable, "-m", "importer.sandbox", "--port", "0", "--port-file", str(port_file)]
        for name, value in options.items():
            args += [f"--{name.replace('_', '-')}", str(value)]
        process = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        deadline = time.monotonic() + 20
        while not port_file.exists():
            if process.poll() is not None or time.monotonic() > deadline:
                stderr = process.stderr.read().decode() if process.stderr else ""
                raise RuntimeError(f"sandbox did not start: {stderr}")
            time.sleep(0.05)
        state_home = tmp_path / f"state-home-{len(started)}"
        sandbox = Sandbox(f"http://127.0.0.1:{port_file.read_text().strip()}", process, state_home)
        started.append(sandbox)
        return sandbox

    yield start
    for sandbox in started:
        sandbox.stop()


def importer_env(sandbox: Sandbox, token: str = TOKEN, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MEETING_IMPORTER_", "HUBSPOT_"))}
    env.update(FAST_ENV)
    env.update({"HUBSPOT_BASE_URL": sandbox.url, "HUBSPOT_ACCESS_TOKEN": token})
    env["XDG_STATE_HOME"] = str(sandbox.state_home)
    env.update(extra)
    return env


def run_cli(args: list[str], env: dict[str, str], timeout: float = 180) -> subprocess.CompletedProcess[str]:
    """`python -m importer ARGS` as cron would run it: no terminal, captured output."""
    return subprocess.run(
        [sys.executable, "-m", "importer", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        stdin=subprocess.DEVNULL,
    )


def write_meetings(path: Path, count: int, *, contacts: list[str] | None = None, day: int = 1) -> Path:
    """A CSV of `count` distinct valid meetings for the seeded owners and contacts."""
    contacts = contacts or CONTACTS
    rows = [
        {
            "title": f"Meeting {i:05d}",
            "start": f"2027-01-{day:02d} {8 + i % 10:02d}:{i % 60:02d}",
            "duration_minutes": "30",
            "timezone": "Asia/Tokyo",
            "owner_email": OWNERS[i % len(OWNERS)],
            "contact_emails": contacts[i % len(contacts)],
        }
        for i in range(count)
    ]
    pl.DataFrame(rows).write_csv(path)
    return path


def read_results(path: Path) -> pl.DataFrame:
    return pl.read_csv(path, infer_schema=False)


def seed_with_contacts(tmp_path: Path, emails: list[str]) -> Path:
    """The bundled seed plus these contacts: for lookup-count tests."""
    seed_path = Path(__file__).parents[2] / "importer" / "sandbox" / "seed.json"
    seed = json.loads(seed_path.read_text())
    next_id = 7200001
    for email in emails:
        seed["objects"]["contacts"].append({"id": str(next_id), "properties": {"email": email}})
        next_id += 1
    path = tmp_path / "seed.json"
    path.write_text(json.dumps(seed))
    return path


OWNER_IDS = {
    "aiko.tanaka@example.co.jp": "8100001",
    "kenji.sato@example.co.jp": "8100002",
    "emma.wilson@example.com": "8100004",
}


def make_by_hand(sandbox: Sandbox, i: int, *, day: int = 1, **changes: str) -> str:
    """Row `i` of `write_meetings` as a rep would have made it by hand in HubSpot (its UTC times), with
    `changes` to its properties; returns the meeting id."""
    local = datetime(2027, 1, day, 8 + i % 10, i % 60, tzinfo=ZoneInfo("Asia/Tokyo"))
    start, end = (
        t.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ") for t in (local, local + timedelta(minutes=30))
    )
    properties = {
        "hs_meeting_title": f"Meeting {i:05d}",
        "hs_meeting_start_time": start,
        "hs_meeting_end_time": end,
        "hs_timestamp": start,
        "hs_meeting_outcome": "SCHEDULED",
        "hubspot_owner_id": OWNER_IDS[OWNERS[i % len(OWNERS)]],
        **changes,
    }
    return sandbox.add_meeting(None, **properties)
