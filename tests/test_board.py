"""The Board: outcomes into the results as columns, the results journal, and the results file."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import polars as pl
import pytest

from importer import board as board_module
from importer.board import Board, write_checked
from importer.errors import StopRun
from importer.models import RowOutcome, RowResult, RowStatus
from importer.reporter import RowResults, journal_path, read_earlier

INPUTS = pl.DataFrame({"title": ["a", "b", "c"]})


def board(tmp_path: Path) -> Board:
    rows = [RowResult(n, f"k{n}", RowOutcome(RowStatus.NOT_SENT)) for n in (2, 3, 4)]
    return Board(INPUTS, RowResults.of(rows), tmp_path / "m.results.csv", None)


def lines(path: Path) -> list[tuple[str, str]]:
    frame = pl.read_csv(path, infer_schema=False)
    return list(zip(frame["title"], frame["status"], strict=True))


def finish(done: Board, index: int, outcome: RowOutcome) -> None:
    """Row `index` finishes, as if the run had spent plenty since the last checkpoint."""
    done._checkpoints.wall_s = done._checkpoints.cpu_s = 0.0
    done.record(index, outcome)


def test_checkpoints_append_changed_rows_and_the_end_writes_the_file_whole(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(board_module, "CHECKPOINT_S", 0.0)
    done = board(tmp_path)
    done.record(0, RowOutcome(RowStatus.CREATED, "8100001"))  # the first checkpoint writes the file whole
    assert lines(done.results_path) == [("a", "created"), ("b", "not_sent"), ("c", "not_sent")]
    done._rewrites.wall_s = 3600.0  # a file this slow to write is rewritten whole only now and then
    finish(done, 2, RowOutcome(RowStatus.FAILED, error="refused"))
    finish(done, 1, RowOutcome(RowStatus.CREATED, "8100002"))
    assert lines(done.journal) == [("c", "failed"), ("b", "created")]
    assert lines(done.results_path)[1:] == [("b", "not_sent"), ("c", "not_sent")]
    # As a run killed now leaves them: the journal's lines count over the file's.
    assert read_earlier(done.results_path)["k3"].status == "created"

    done.checkpoint(final=True)
    assert lines(done.results_path) == [("a", "created"), ("b", "created"), ("c", "failed")]
    assert not done.journal.exists()


def test_writes_costing_much_of_the_cpu_since_the_last_wait(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A paced run mostly waits: its wall time would allow a rewrite at every checkpoint, its CPU does not.
    monkeypatch.setattr(board_module, "CHECKPOINT_S", 0.0)
    done = board(tmp_path)
    done.record(0, RowOutcome(RowStatus.CREATED, "8100001"))
    done._rewrites.cpu_s = 3600.0
    finish(done, 1, RowOutcome(RowStatus.CREATED, "8100002"))
    assert lines(done.journal) == [("b", "created")]
    assert lines(done.results_path)[1] == ("b", "not_sent")
    done._checkpoints.cpu_s = 3600.0  # and a checkpoint of any kind waits as well
    done.record(2, RowOutcome(RowStatus.CREATED, "8100003"))
    assert lines(done.journal) == [("b", "created")]
    done.checkpoint(final=True)  # the last one never waits
    assert lines(done.results_path) == [("a", "created"), ("b", "created"), ("c", "created")]


def test_a_row_changed_in_place_is_written_at_the_next_checkpoint(tmp_path: Path) -> None:
    done = board(tmp_path)
    done.results[1].outcome.status = RowStatus.SKIPPED  # as the stages set rows before sending
    done.checkpoint(final=True)
    assert lines(done.results_path)[1] == ("b", "skipped")


def test_a_dry_runs_chunks_are_written_as_they_come_and_an_old_journal_goes(tmp_path: Path) -> None:
    path = tmp_path / "m.results.csv"
    journal = journal_path(path)
    journal.write_text("title,status\nc,created\n")  # a killed run's, older than what is written now
    seen: list[int] = []

    def chunks() -> Iterator[RowResults]:
        for rows in ([2, 3], [4]):
            if path.exists():  # written as a whole, never a piece at a time in place
                seen.append(len(lines(path)))
            yield RowResults.of(RowResult(n, None, RowOutcome(RowStatus.VALID)) for n in rows)

    write_checked(INPUTS, chunks(), path)
    assert (seen, lines(path)) == ([], [("a", "valid"), ("b", "valid"), ("c", "valid")])
    assert pl.read_csv(path, infer_schema=False)["row"].to_list() == ["2", "3", "4"]
    assert not journal.exists()


def test_a_results_file_that_cannot_be_written_stops_the_dry_run(tmp_path: Path) -> None:
    (tmp_path / "taken").write_text("a file where the results' folder would be")
    path = tmp_path / "taken" / "m.results.csv"
    chunk = RowResults.of([RowResult(2, None, RowOutcome(RowStatus.VALID))])
    with pytest.raises(
        StopRun, match=rf"^cannot write the results file {re.escape(str(path))}: File exists$"
    ):
        write_checked(INPUTS.head(1), [chunk], path)
