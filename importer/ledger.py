"""Ledger: what HubSpot has been asked to create, kept in SQLite so no meeting is ever created twice.

A row's key moves through named states, one function per move, each committed before the next step:

    (new) --mark_sending--> sending --mark_created--> created        (final: later runs skip it)
                               |------mark_in_doubt--> in_doubt      (answer lost: check before resending)
                               '------mark_failed----> failed        (HubSpot refused it: send again next run)

`sending` is written before the request goes out, so a run killed at any moment leaves either `created`
or a row that a later run treats as in doubt: it searches HubSpot for the meeting before sending again.
Keys are scoped by target (the API base URL), so a sandbox run never hides a row from production.
"""

from __future__ import annotations

import fcntl
import sqlite3
import time
from collections.abc import Iterable, Iterator
from contextlib import closing, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from importer.errors import InputError, LockHeld

State = Literal["sending", "created", "in_doubt", "failed"]
IN_DOUBT: tuple[State, ...] = ("sending", "in_doubt")

_SCHEMA = """
CREATE TABLE IF NOT EXISTS rows (
    target      TEXT NOT NULL,
    row_key     TEXT NOT NULL,
    state       TEXT NOT NULL CHECK (state IN ('sending', 'created', 'in_doubt', 'failed')),
    meeting_id  TEXT,
    owner_id    TEXT,
    start_ms    INTEGER,
    title       TEXT,
    attempts    INTEGER NOT NULL DEFAULT 0,
    error       TEXT,
    run_id      TEXT,
    updated_at  REAL NOT NULL,
    PRIMARY KEY (target, row_key)
);
CREATE TABLE IF NOT EXISTS runs (
    run_id      TEXT PRIMARY KEY,
    target      TEXT NOT NULL,
    input       TEXT NOT NULL,
    started_at  REAL NOT NULL,
    finished_at REAL,
    summary     TEXT
);
"""


@dataclass(frozen=True, slots=True)
class Entry:
    """One row key's record."""

    row_key: str
    state: State
    meeting_id: str | None
    owner_id: str | None
    start_ms: int | None
    title: str | None
    attempts: int
    error: str | None
    updated_at: float


@dataclass(frozen=True, slots=True)
class Run:
    """One run's record."""

    run_id: str
    input: str
    started_at: float
    finished_at: float | None
    summary: str | None


class Ledger:
    """The run ledger at `path` (created with its folder), for one `target`."""

    def __init__(self, path: Path, target: str, *, read_only: bool = False) -> None:
        self.path = path
        self.target = target
        if read_only:
            self._db = sqlite3.connect(f"file:{path}?mode=ro", uri=True, isolation_level=None, timeout=30)
            return
        path.parent.mkdir(parents=True, exist_ok=True)
        # Autocommit: every transition is its own durable transaction, written before the next step.
        self._db = sqlite3.connect(path, isolation_level=None, timeout=30)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")  # WAL + NORMAL: durable across a killed process
        self._db.executescript(_SCHEMA)

    def close(self) -> None:
        self._db.close()

    # --- reads ---

    def entries(self, row_keys: Iterable[str]) -> dict[str, Entry]:
        """The ledger's entries for these keys (absent keys are new)."""
        keys = list(row_keys)
        found: dict[str, Entry] = {}
        for i in range(0, len(keys), 500):
            chunk = keys[i : i + 500]
            marks = ",".join("?" * len(chunk))
            query = f"SELECT {_COLUMNS} FROM rows WHERE target = ? AND row_key IN ({marks})"
            for row in self._db.execute(query, [self.target, *chunk]):
                entry = Entry(*row)
                found[entry.row_key] = entry
        return found

    def counts(self) -> dict[str, int]:
        """Row keys per state for this target."""
        query = "SELECT state, COUNT(*) FROM rows WHERE target = ? GROUP BY state"
        return {state: count for state, count in self._db.execute(query, [self.target])}

    def in_doubt(self) -> list[Entry]:
        """Rows whose create may or may not have happened."""
        query = f"SELECT {_COLUMNS} FROM rows WHERE target = ? AND state IN ('sending', 'in_doubt')"
        return [Entry(*row) for row in self._db.execute(query, [self.target])]

    def last_run(self) -> Run | None:
        """The latest run against this target."""
        query = (
            "SELECT run_id, input, started_at, finished_at, summary FROM runs"
            " WHERE target = ? ORDER BY started_at DESC LIMIT 1"
        )
        row = self._db.execute(query, [self.target]).fetchone()
        return None if row is None else Run(*row)

    def targets(self) -> list[str]:
        """Every target this ledger has rows or runs for."""
        query = "SELECT target FROM rows UNION SELECT target FROM runs ORDER BY 1"
        return [target for (target,) in self._db.execute(query)]

    # --- transitions ---

    def mark_sending(self, row_key: str, owner_id: str, start_ms: int, title: str, run_id: str) -> None:
        """Before the create goes out: from now on, until created, the row is in doubt."""
        self._db.execute(
            """INSERT INTO rows (target, row_key, state, owner_id, start_ms, title, attempts, run_id, updated_at)
               VALUES (?, ?, 'sending', ?, ?, ?, 1, ?, ?)
               ON CONFLICT (target, row_key) DO UPDATE SET state = 'sending', attempts = attempts + 1,
                   owner_id = excluded.owner_id, start_ms = excluded.start_ms, title = excluded.title,
                   run_id = excluded.run_id, updated_at = excluded.updated_at, error = NULL
               WHERE state != 'created'""",
            [self.target, row_key, owner_id, start_ms, title, run_id, time.time()],
        )

    def mark_created(self, row_key: str, meeting_id: str) -> None:
        """HubSpot has the meeting: no run sends this row again."""
        self._set(row_key, "created", meeting_id=meeting_id)

    def mark_in_doubt(self, row_key: str, error: str) -> None:
        """The answer was lost: search HubSpot (after its index lag) before sending again."""
        self._set(row_key, "in_doubt", error=error)

    def mark_failed(self, row_key: str, error: str) -> None:
        """HubSpot refused it, certainly without creating it: a later run may send it again."""
        self._set(row_key, "failed", error=error)

    def _set(
        self, row_key: str, state: State, *, meeting_id: str | None = None, error: str | None = None
    ) -> None:
        self._db.execute(
            """UPDATE rows SET state = ?, meeting_id = COALESCE(?, meeting_id), error = ?, updated_at = ?
               WHERE target = ? AND row_key = ? AND state != 'created'""",
            [state, meeting_id, error, time.time(), self.target, row_key],
        )

    # --- runs ---

    def start_run(self, run_id: str, input_name: str) -> None:
        self._db.execute(
            "INSERT INTO runs (run_id, target, input, started_at) VALUES (?, ?, ?, ?)",
            [run_id, self.target, input_name, time.time()],
        )

    def finish_run(self, run_id: str, summary: str) -> None:
        self._db.execute(
            "UPDATE runs SET finished_at = ?, summary = ? WHERE run_id = ?", [time.time(), summary, run_id]
        )


_COLUMNS = "row_key, state, meeting_id, owner_id, start_ms, title, attempts, error, updated_at"


@contextmanager
def open_ledger(path: Path, target: str) -> Iterator[Ledger]:
    ledger = Ledger(path, target)
    try:
        yield ledger
    finally:
        ledger.close()


@contextmanager
def state_lock(state_path: Path) -> Iterator[None]:
    """Hold an exclusive lock on the state file's folder for the whole run: two overlapping cron runs on
    the same state would otherwise both send the rows neither has marked yet. Released when the process
    ends, however it ends."""
    folder = state_path.parent
    folder.mkdir(parents=True, exist_ok=True)
    with (folder / "lock").open("w") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise LockHeld(
                f"another run holds the lock on {folder}; try again when it has finished"
            ) from None
        yield


@dataclass(frozen=True)
class TargetState:
    """What `meeting-importer status` prints for one target."""

    target: str
    counts: dict[str, int]
    last_run: Run | None
    in_doubt: list[Entry]


def read_state(path: Path) -> list[TargetState]:
    """Every target's counts, last run and rows in doubt, read without changing the ledger."""
    if not path.is_file():
        raise InputError(f"no ledger at {path} (pass --state, or run from the folder of an earlier import)")
    try:
        with closing(Ledger(path, "", read_only=True)) as index:
            targets = index.targets()
        states = []
        for target in targets:
            with closing(Ledger(path, target, read_only=True)) as ledger:
                states.append(TargetState(target, ledger.counts(), ledger.last_run(), ledger.in_doubt()))
        return states
    except sqlite3.DatabaseError as exc:
        raise InputError(f"{path}: not a readable ledger ({exc})") from None
