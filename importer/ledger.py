"""Ledger: what HubSpot has been asked to create, kept in SQLite so no meeting is ever created twice.

A row's key moves through named states, one function per move, each committed (and synced, unless the
run checks HubSpot for existing meetings: see `Ledger`) before the next step, but for `created`, which is
held back and written in the next commit:

    (new) --mark_sending--> sending --mark_created--> created        (final: later runs skip it)
      |                        |------mark_in_doubt--> in_doubt      (answer lost: check before resending)
      |                        '------mark_failed----> failed        (HubSpot refused it: send again next run)
      '--record_created--> created    (found in HubSpot, or vouched for by a results file)
    created --mark_updated--> created  (the sheet's row changed: its meeting was updated)

A row key is the row's identity (its key column, the results file's row_key, or its content); with each
created row the ledger keeps the content key and a snapshot of what was last sent, so a later run can
tell an edited row and send only what changed.

`sending` is written before the request goes out (the sender writes a chunk's rows in one commit, before
the chunk's first request), so a run killed at any moment leaves either `created` or a row that a later
run treats as in doubt: it searches HubSpot for the meeting before sending again. (A `created` mark still
held back when the run is killed leaves its row so: found by that search.) A run that stops before
sending a row it marked puts the row back as it was (`unmark`).
Rows are scoped by HubSpot portal id, never by how the API's URL was spelt. The ledger is a cache of what
HubSpot has: losing it costs searches (the existing-meeting check), not duplicates.
"""

from __future__ import annotations

import fcntl
import hashlib
import re
import sqlite3
import time
from collections.abc import Iterable, Iterator
from contextlib import closing, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from importer.errors import InputError, LockHeld, StopRun
from importer.messages import _

State = Literal["sending", "created", "in_doubt", "failed"]
IN_DOUBT: tuple[State, ...] = ("sending", "in_doubt")
APP_NAME = "meeting-importer"
HOLD_S = 2.0
"""Created marks are held back (see `mark_created`) for this long at most: a killed run leaves no more
than these seconds of creates for the next run to find again by search."""
LEGACY_PLACE = Path(".meeting-importer") / "state.sqlite"  # beside the results, before ledgers moved
# Targets of earlier versions: "<base URL> portal <id>". The portal id alone is what identifies rows.
_LEGACY_TARGET = re.compile(r"^.* portal (\d+)$")

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
    content_key TEXT,
    sent        TEXT,
    PRIMARY KEY (target, row_key)
);
CREATE INDEX IF NOT EXISTS rows_by_meeting ON rows (target, meeting_id);
CREATE TABLE IF NOT EXISTS runs (
    run_id      TEXT PRIMARY KEY,
    target      TEXT NOT NULL,
    input       TEXT NOT NULL,
    started_at  REAL NOT NULL,
    finished_at REAL,
    summary     TEXT
);
"""
# Merge rows of `source_target` (in database `source`) into `target`: what is created wins.
_MERGE = """
INSERT INTO rows (target, row_key, state, meeting_id, owner_id, start_ms, title, attempts, error, run_id,
                  updated_at)
SELECT :target, row_key, state, meeting_id, owner_id, start_ms, title, attempts, error, run_id, updated_at
FROM {source}.rows WHERE target = :source_target AND true
ON CONFLICT (target, row_key) DO UPDATE SET
    state = excluded.state, meeting_id = excluded.meeting_id, error = excluded.error,
    updated_at = excluded.updated_at
WHERE rows.state != 'created' AND (excluded.state = 'created' OR excluded.updated_at > rows.updated_at)
"""
_MERGE_RUNS = """
INSERT OR IGNORE INTO runs (run_id, target, input, started_at, finished_at, summary)
SELECT run_id, :target, input, started_at, finished_at, summary FROM {source}.runs
WHERE target = :source_target
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
    content_key: str | None = None  # fingerprint of the row's content when last sent
    sent: str | None = None  # JSON snapshot of what was last sent (see the sender's `snapshot`)


@dataclass(frozen=True, slots=True)
class Run:
    """One run's record."""

    run_id: str
    input: str
    started_at: float
    finished_at: float | None
    summary: str | None


def default_state_dir() -> Path:
    """The user's state folder: `$XDG_STATE_HOME/meeting-importer`, else `~/.local/state/meeting-importer`."""
    from platformdirs import user_state_path  # only runs that write a ledger need it

    return user_state_path(APP_NAME)


def default_ledger_path(portal_id: int) -> Path:
    """One ledger per portal in the user's state folder, whatever folders results and exports are in."""
    return default_state_dir() / f"portal-{portal_id}.sqlite"


class Ledger:
    """The run ledger at `path` (created with its folder), for one `target` (a portal id).

    Every commit survives a killed process. With `synced`, each is also on disk before the next step, so a
    power cut cannot lose a `sending` mark (a sync costs a paced create about 0.14 ms of CPU, a seventh of
    its cost). Without, commits reach the disk at checkpoints: for a run whose existing-meeting check
    searches HubSpot for every row the ledger does not know, which finds again whatever a power cut took."""

    def __init__(self, path: Path, target: str, *, read_only: bool = False, synced: bool = True) -> None:
        self.path = path
        self.target = target
        self._held: list[list[Any]] = []  # created marks to write in the next commit (mark_created)
        try:
            if read_only:
                self._connection = sqlite3.connect(
                    f"file:{path}?mode=ro", uri=True, isolation_level=None, timeout=30
                )
                self._db.execute("SELECT count(*) FROM rows").fetchone()
                return
            path.parent.mkdir(parents=True, exist_ok=True)
            # Autocommit: every transition is its own durable transaction, written before the next step.
            self._connection = sqlite3.connect(path, isolation_level=None, timeout=30)
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute(f"PRAGMA synchronous={'FULL' if synced else 'NORMAL'}")
            self._db.executescript(_SCHEMA)
            self._add_missing_columns()
            self._adopt_legacy_targets()
        except sqlite3.DatabaseError as exc:
            raise _unusable(path, exc) from None
        except OSError as exc:
            message = _("cannot open the ledger {path}: {error}")
            raise StopRun(message.format(path=path, error=exc.strerror or exc)) from None

    @classmethod
    def copy_of(cls, path: Path, target: str) -> Ledger:
        """An in-memory copy of the ledger at `path` (empty if there is none): `plan` runs every stage
        against it, and nothing it records reaches the file."""
        ledger = cls.__new__(cls)
        ledger.path, ledger.target, ledger._held = path, target, []
        ledger._connection = sqlite3.connect(":memory:", isolation_level=None)
        if path.is_file():
            try:
                with closing(sqlite3.connect(f"file:{path}?mode=ro", uri=True)) as source:
                    source.backup(ledger._db)
            except sqlite3.DatabaseError as exc:
                raise _unusable(path, exc) from None
        ledger._db.executescript(_SCHEMA)
        ledger._add_missing_columns()
        ledger._adopt_legacy_targets()
        return ledger

    def close(self) -> None:
        self._db.close()

    @property
    def _db(self) -> sqlite3.Connection:
        """The connection, once the created marks held back are written: every read and write sees them."""
        if self._held:
            self._commit_held()
        return self._connection

    def _commit_held(self, statement: str | None = None, values: list[Any] | None = None) -> None:
        """The created marks held back, then `statement` if given, in one commit (and one sync). Never
        inside a transaction: marks are held only outside one, and `transaction` begins through `_db`."""
        held, self._held = self._held, []
        connection = self._connection
        connection.execute("BEGIN IMMEDIATE")
        try:
            connection.executemany(_MARK_CREATED, held)
            if statement is not None:
                connection.execute(statement, values or [])
        except BaseException:
            connection.execute("ROLLBACK")
            self._held[:0] = held
            raise
        connection.execute("COMMIT")

    # --- reads ---

    def entries(self, row_keys: Iterable[str]) -> dict[str, Entry]:
        """The ledger's entries for these keys (absent keys are new)."""
        found: dict[str, Entry] = {}
        for chunk in _chunks(list(row_keys)):
            marks = ",".join("?" * len(chunk))
            query = f"SELECT {_COLUMNS} FROM rows WHERE target = ? AND row_key IN ({marks})"
            for row in self._db.execute(query, [self.target, *chunk]):
                entry = Entry(*row)
                found[entry.row_key] = entry
        return found

    def holders(self, meeting_ids: Iterable[str]) -> dict[str, set[str]]:
        """Meeting id -> the row keys recorded as created with it."""
        found: dict[str, set[str]] = {}
        for chunk in _chunks(list(meeting_ids)):
            marks = ",".join("?" * len(chunk))
            query = (
                "SELECT meeting_id, row_key FROM rows"
                f" WHERE target = ? AND state = 'created' AND meeting_id IN ({marks})"
            )
            for meeting_id, row_key in self._db.execute(query, [self.target, *chunk]):
                found.setdefault(meeting_id, set()).add(row_key)
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
        """Before the create goes out: from now on, until created, the row is in doubt. Committed with
        the created marks held back, in one sync."""
        values = [self.target, row_key, owner_id, start_ms, title, run_id, time.time()]
        if self._held:
            self._commit_held(_MARK_SENDING, values)
        else:
            self._connection.execute(_MARK_SENDING, values)

    def mark_created(
        self, row_key: str, meeting_id: str, *, content_key: str | None = None, sent: str | None = None
    ) -> None:
        """HubSpot has the meeting: no run sends this row again (unless it changes: see mark_updated).
        A row created already keeps its id and its time; only what was sent is remembered.

        Held back, and written in the next commit: the next `sending` marks', which are synced anyway
        (one commit and one sync for all: each costs a paced create a third of a millisecond of CPU),
        before this ledger is next read, written or closed, or with the mark that finds the first held
        HOLD_S old. A run killed before that leaves the row `sending`, in doubt, and the next run finds
        its meeting by search: a search, never a duplicate. Inside a transaction (the logbook's batches)
        it is written at once, in it."""
        values = [meeting_id, time.time(), content_key, sent, self.target, row_key]
        if self._connection.in_transaction:
            self._connection.execute(_MARK_CREATED, values)
            return
        self._held.append(values)
        if values[1] - self._held[0][1] >= HOLD_S:
            self._commit_held()

    def record_created(
        self,
        row_key: str,
        meeting_id: str,
        run_id: str,
        *,
        content_key: str | None = None,
        sent: str | None = None,
    ) -> None:
        """A meeting HubSpot has for this row without this run sending it: found by the existing-meeting
        check, or named by a results file. Created is final; a row already created keeps its id."""
        self._db.execute(
            """INSERT INTO rows (target, row_key, state, meeting_id, run_id, updated_at)
               VALUES (?, ?, 'created', ?, ?, ?)
               ON CONFLICT (target, row_key) DO UPDATE SET state = 'created', meeting_id = excluded.meeting_id,
                   run_id = excluded.run_id, updated_at = excluded.updated_at, error = NULL
               WHERE state != 'created'""",
            [self.target, row_key, meeting_id, run_id, time.time()],
        )
        self._remember(row_key, content_key, sent)

    def mark_updated(self, row_key: str, content_key: str, sent: str) -> None:
        """The row's meeting now holds its new content."""
        self._db.execute(
            "UPDATE rows SET updated_at = ?, error = NULL WHERE target = ? AND row_key = ? AND state = 'created'",
            [time.time(), self.target, row_key],
        )
        self._remember(row_key, content_key, sent)

    def unmark(self, row_key: str, before: Entry | None) -> None:
        """A row marked `sending` whose request never went out (the run stopped first): back to what
        it was `before` (absent: a new row). Only a row still `sending` moves."""
        where = "WHERE target = ? AND row_key = ? AND state = 'sending'"
        if before is None:
            self._db.execute(f"DELETE FROM rows {where}", [self.target, row_key])
            return
        self._db.execute(
            f"""UPDATE rows SET state = ?, attempts = ?, error = ?, updated_at = ?, owner_id = ?,
                   start_ms = ?, title = ? {where}""",
            [
                *(before.state, before.attempts, before.error, before.updated_at),
                *(before.owner_id, before.start_ms, before.title, self.target, row_key),
            ],
        )

    def forget(self, row_key: str) -> None:
        """The row's meeting is gone from HubSpot and the user asked for it anew: the row is new again."""
        self._db.execute("DELETE FROM rows WHERE target = ? AND row_key = ?", [self.target, row_key])

    def _remember(self, row_key: str, content_key: str | None, sent: str | None) -> None:
        if content_key is None and sent is None:
            return
        self._db.execute(
            """UPDATE rows SET content_key = COALESCE(?, content_key), sent = COALESCE(?, sent)
               WHERE target = ? AND row_key = ? AND state = 'created'""",
            [content_key, sent, self.target, row_key],
        )

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

    # --- earlier versions' ledgers ---

    def merge_from(self, path: Path) -> int:
        """Take in the rows another ledger file holds for this portal; returns how many it had."""
        self._db.execute("ATTACH DATABASE ? AS other", [f"file:{path}?mode=ro"])
        try:
            targets = [t for (t,) in self._db.execute("SELECT DISTINCT target FROM other.rows")]
            mine = [t for t in targets if _portal_of(t) == self.target]
            count = 0
            with self.transaction():
                for source_target in mine:
                    params = {"target": self.target, "source_target": source_target}
                    count += self._db.execute(
                        "SELECT COUNT(*) FROM other.rows WHERE target = ?", [source_target]
                    ).fetchone()[0]
                    self._db.execute(_MERGE.format(source="other"), params)
                    self._db.execute(_MERGE_RUNS.format(source="other"), params)
            return count
        finally:
            self._db.execute("DETACH DATABASE other")

    def _adopt_legacy_targets(self) -> None:
        """Rows an earlier version keyed by base URL and portal are re-keyed by the portal alone, so
        `https://api.hubapi.com` and `https://api.hubapi.com/` never hide each other's rows."""
        legacy = [
            t for (t,) in self._db.execute("SELECT DISTINCT target FROM rows UNION SELECT target FROM runs")
        ]
        with self.transaction():
            for old in legacy:
                portal = _portal_of(old)
                if portal is None or portal == old:
                    continue
                params = {"target": portal, "source_target": old}
                self._db.execute(_MERGE.format(source="main"), params)
                self._db.execute(_MERGE_RUNS.format(source="main"), params)
                self._db.execute("DELETE FROM rows WHERE target = ?", [old])
                self._db.execute("DELETE FROM runs WHERE target = ?", [old])

    def _add_missing_columns(self) -> None:
        """Ledgers of earlier versions lack the columns that later ones added."""
        have = {name for (_, name, *_rest) in self._db.execute("PRAGMA table_info(rows)")}
        for name in ("content_key", "sent"):
            if name not in have:
                self._db.execute(f"ALTER TABLE rows ADD COLUMN {name} TEXT")

    @contextmanager
    def transaction(self) -> Iterator[None]:
        """Several transitions in one commit (and one sync), all or none of them."""
        self._db.execute("BEGIN IMMEDIATE")
        try:
            yield
        except BaseException:
            self._db.execute("ROLLBACK")
            raise
        self._db.execute("COMMIT")


_MARK_SENDING = """
    INSERT INTO rows (target, row_key, state, owner_id, start_ms, title, attempts, run_id, updated_at)
    VALUES (?, ?, 'sending', ?, ?, ?, 1, ?, ?)
    ON CONFLICT (target, row_key) DO UPDATE SET state = 'sending', attempts = attempts + 1,
        owner_id = excluded.owner_id, start_ms = excluded.start_ms, title = excluded.title,
        run_id = excluded.run_id, updated_at = excluded.updated_at, error = NULL
    WHERE state != 'created'"""
_MARK_CREATED = """
    UPDATE rows SET
        meeting_id = CASE WHEN state = 'created' THEN meeting_id ELSE COALESCE(?, meeting_id) END,
        error = CASE WHEN state = 'created' THEN error END,
        updated_at = CASE WHEN state = 'created' THEN updated_at ELSE ? END,
        state = 'created',
        content_key = COALESCE(?, content_key), sent = COALESCE(?, sent)
    WHERE target = ? AND row_key = ?"""
_COLUMNS = (
    "row_key, state, meeting_id, owner_id, start_ms, title, attempts, error, updated_at, content_key, sent"
)


def _chunks(keys: list[str], size: int = 500) -> Iterator[list[str]]:
    for i in range(0, len(keys), size):
        yield keys[i : i + size]


def _portal_of(target: str) -> str | None:
    if target.isdigit():
        return target
    match = _LEGACY_TARGET.match(target)
    return match.group(1) if match else None


# SQLite's errors that come from where the ledger lives (a full disk, a read-only or vanished folder, another
# process's lock, a damaged file), not from the importer's SQL.
_WHERE_IT_LIVES = (
    "SQLITE_FULL",
    "SQLITE_IOERR",
    "SQLITE_READONLY",
    "SQLITE_CANTOPEN",
    "SQLITE_BUSY",
    "SQLITE_LOCKED",
    "SQLITE_CORRUPT",
    "SQLITE_NOTADB",
)


def unwritable(path: Path, error: sqlite3.Error) -> StopRun | None:
    """The stop for a ledger that cannot be written mid-run (what went wrong, not a bug report); None
    for an error of the importer's own SQL, which is a bug."""
    name = getattr(error, "sqlite_errorname", None) or ""
    if not name.startswith(_WHERE_IT_LIVES):
        return None
    return StopRun(_("cannot write the ledger {path}: {error}").format(path=path, error=error))


def _unusable(path: Path, exc: sqlite3.DatabaseError) -> StopRun:
    if "readonly" in str(exc) or "read-only" in str(exc):
        return StopRun(
            _("the ledger {path} is read-only: make it and its folder writable, or pass --state").format(
                path=path
            )
        )
    message = _(
        "{path} is not a readable ledger ({error}): move it aside and run again;"
        " the existing-meeting check finds in HubSpot what it had recorded"
    )
    return StopRun(message.format(path=path, error=exc))


@contextmanager
def open_ledger(path: Path, target: str, *, synced: bool = True) -> Iterator[Ledger]:
    ledger = Ledger(path, target, synced=synced)
    try:
        yield ledger
    finally:
        ledger.close()


def lock_path(ledger_path: Path, input_path: Path) -> Path:
    """The lock of one sheet's runs on one ledger: `<ledger>.<digest of the sheet's path>.lock`."""
    digest = hashlib.sha256(str(input_path.resolve()).encode()).hexdigest()[:12]
    return ledger_path.with_name(f"{ledger_path.name}.{digest}.lock")


@contextmanager
def state_lock(ledger_path: Path, input_path: Path) -> Iterator[None]:
    """Hold an exclusive lock for the whole run of one sheet on one ledger: two overlapping cron runs of
    the same sheet would otherwise both send the rows neither has marked yet. Runs of other sheets on the
    same portal (two cron entries) go on side by side: their rows are their own, and SQLite serialises
    their ledger writes. Released when the process ends, however it ends."""
    path = lock_path(ledger_path, input_path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        handle = path.open("w")
    except OSError as exc:
        message = _("cannot write the state folder {path}: {error}")
        raise StopRun(message.format(path=path.parent, error=exc.strerror or exc)) from None
    with handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            message = _("another run of {input} holds the lock on {ledger}; try again when it has finished")
            raise LockHeld(message.format(input=input_path, ledger=ledger_path)) from None
        yield


@dataclass(frozen=True)
class TargetState:
    """What `meeting-importer status` prints for one target."""

    target: str
    counts: dict[str, int]
    last_run: Run | None
    in_doubt: list[Entry]


def find_ledgers(path: Path | None) -> list[Path]:
    """The ledger `path`, or every portal's ledger in the user's state folder."""
    if path is not None:
        return [path]
    return sorted(default_state_dir().glob("portal-*.sqlite"))


def read_state(path: Path) -> list[TargetState]:
    """Every target's counts, last run and rows in doubt, read without changing the ledger."""
    if not path.is_file():
        raise InputError(_("no ledger at {path} (pass --state, or run an import first)").format(path=path))
    try:
        with closing(Ledger(path, "", read_only=True)) as index:
            targets = index.targets()
        states = []
        for target in targets:
            with closing(Ledger(path, target, read_only=True)) as ledger:
                states.append(TargetState(target, ledger.counts(), ledger.last_run(), ledger.in_doubt()))
        return states
    except sqlite3.DatabaseError as exc:
        raise InputError(_("{path}: not a readable ledger ({error})").format(path=path, error=exc)) from None
