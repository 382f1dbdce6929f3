"""The pipeline's own policies around its stages: how it opens the ledger, what a stop mid-run says."""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import Awaitable, Callable
from pathlib import Path

import pytest

from importer.config import Settings
from importer.errors import StopRun
from importer.hubspot import HubSpotError, NotSent, Rejected, ServerError
from importer.models import RowOutcome, RowResult, RowStatus
from importer.pipeline import _Import, _stop_told, _Stopped
from importer.reporter import RowResults


@pytest.mark.parametrize(("check_existing", "synchronous"), [(True, 1), (False, 2)])
def test_a_run_syncs_its_ledger_only_when_no_search_would_find_what_a_power_cut_lost(
    tmp_path: Path, check_existing: bool, synchronous: int
) -> None:
    sheet = tmp_path / "meetings.csv"
    sheet.write_text("title\n")
    settings = Settings(check_existing=check_existing)
    run = _Import(sheet, settings, tmp_path / "meetings.results.csv", None, 0.0)
    with run._ledger(tmp_path / "ledger.sqlite", "12345") as ledger:
        assert ledger._db.execute("PRAGMA synchronous").fetchone() == (synchronous,)


def test_look_ups_whose_retries_ran_out_stop_the_run_as_lookups_failed(tmp_path: Path) -> None:
    sheet = tmp_path / "meetings.csv"
    run = _Import(sheet, Settings(), tmp_path / "meetings.results.csv", None, 0.0)
    run._lookups_failed(NotSent("GET /crm/v3/owners: could not connect (ConnectError)"))
    assert run.stop_kind == "lookups_failed"
    assert run.stop_reason == (
        "looking up owners, associations and meetings failed: GET /crm/v3/owners: could not connect (ConnectError)"
    )


def _failing_stage(*errors: HubSpotError) -> tuple[list[int], Callable[[], Awaitable[str]]]:
    """A look-up stage that raises `errors` in turn, then returns "done"; and the list of its calls."""
    calls: list[int] = []

    async def stage() -> str:
        calls.append(len(calls))
        if len(calls) <= len(errors):
            raise errors[len(calls) - 1]
        return "done"

    return calls, stage


def test_a_look_up_that_hubspot_fails_runs_again_after_a_wait(tmp_path: Path) -> None:
    run = _Import(tmp_path / "m.csv", Settings(outage_s=3.0), tmp_path / "m.results.csv", None, 0.0)
    calls, stage = _failing_stage(ServerError(503, "down"), NotSent("could not connect (ConnectError)"))
    assert asyncio.run(run._looked_up(stage)) == "done"
    assert len(calls) == 3 and run.stop_reason is None
    assert run.watch.failing == 0  # answered at last: the next failure starts a streak of its own


def test_a_look_up_that_hubspot_fails_for_outage_s_stops_the_run(tmp_path: Path) -> None:
    run = _Import(tmp_path / "m.csv", Settings(outage_s=0.3), tmp_path / "m.results.csv", None, 0.0)
    calls, stage = _failing_stage(*[ServerError(502, "bad gateway")] * 100)
    with pytest.raises(_Stopped):
        asyncio.run(run._looked_up(stage))
    assert 2 <= len(calls) < 100  # waits of 0.01, 0.02, 0.04, 0.06 s, ... for 0.3 s
    assert run.stop_kind == "hubspot_failing"
    assert run.stop_reason is not None and run.stop_reason.startswith("HubSpot failed every request for 0.")


def test_a_look_up_refused_for_its_own_sake_is_not_run_again(tmp_path: Path) -> None:
    run = _Import(tmp_path / "m.csv", Settings(), tmp_path / "m.results.csv", None, 0.0)
    calls, stage = _failing_stage(Rejected(400, "bad search"))
    with pytest.raises(Rejected):
        asyncio.run(run._looked_up(stage))
    assert len(calls) == 1 and run.watch.failing == 0


def test_a_stop_after_creates_says_how_many_and_that_the_ledger_has_them(tmp_path: Path) -> None:
    ledger = tmp_path / "portal-1.sqlite"
    statuses = [RowStatus.CREATED, RowStatus.CREATED, RowStatus.SKIPPED, RowStatus.NOT_SENT]
    results = RowResults.of(RowResult(n, f"k{n}", RowOutcome(s)) for n, s in enumerate(statuses, 2))
    with pytest.raises(StopRun) as stopped, _stop_told(ledger) as told:
        told.append(results)
        raise StopRun("cannot write the results file m.results.csv: No space left on device")
    assert str(stopped.value) == (
        "cannot write the results file m.results.csv: No space left on device\n"
        f"2 meetings were created before the stop; the ledger {ledger} has them, so the next run skips them"
    )


def test_a_stop_before_any_create_is_left_as_it_is(tmp_path: Path) -> None:
    results = RowResults.of([RowResult(2, "k2", RowOutcome(RowStatus.SKIPPED))])
    with pytest.raises(StopRun) as stopped, _stop_told(tmp_path / "portal-1.sqlite") as told:
        told.append(results)
        raise StopRun("no room")
    assert str(stopped.value) == "no room"


def full_database(path: Path) -> sqlite3.Connection:
    """A database with no room left, as on a full disk: SQLite's own SQLITE_FULL on the next write."""
    db = sqlite3.connect(path, isolation_level=None)
    db.execute("CREATE TABLE t (v TEXT)")
    db.execute(f"PRAGMA max_page_count = {db.execute('PRAGMA page_count').fetchone()[0]}")
    return db


def test_a_ledger_that_cannot_be_written_mid_run_stops_the_run_saying_so_not_as_a_bug(tmp_path: Path) -> None:
    ledger = tmp_path / "portal-1.sqlite"
    results = RowResults.of([RowResult(2, "k2", RowOutcome(RowStatus.CREATED))])
    db = full_database(ledger)
    with pytest.raises(StopRun) as stopped, _stop_told(ledger) as told:
        told.append(results)
        db.execute("INSERT INTO t VALUES (?)", ["x" * 10_000])
    assert str(stopped.value) == (
        f"cannot write the ledger {ledger}: database or disk is full\n"
        "1 meeting was created before the stop (the results file lists it); any the ledger could not"
        " record is in doubt, and the next run searches HubSpot for it before sending"
    )


def test_an_error_of_the_importers_own_sql_stays_a_bug(tmp_path: Path) -> None:
    db = sqlite3.connect(tmp_path / "portal-1.sqlite")
    with pytest.raises(sqlite3.OperationalError, match="syntax error"), _stop_told(tmp_path / "x"):
        db.execute("SELEC 1")
