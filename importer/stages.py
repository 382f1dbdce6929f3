"""The stages of an import, each taking the previous one's values and returning its own; importer.pipeline
runs them in order (its docstring lists them) and `send` after them."""

from __future__ import annotations

import asyncio
import hashlib
import logging
import sys
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path
from urllib.parse import urlsplit

import polars as pl

from importer import messages
from importer import problems as codes
from importer.board import Board, log_row, write_checked
from importer.changes import diff, named, snapshot
from importer.config import Settings
from importer.errors import InputError, StopRun
from importer.existing import find_in_ranges, narrow
from importer.hubspot import RETRIABLE_READ_ERRORS, Account, AuthFailed, HubSpotClient, HubSpotError, NotSent
from importer.ledger import IN_DOUBT, Ledger
from importer.mapper import Lookups, map_meeting
from importer.models import DONE_STATUSES, Meeting, RowOutcome, RowResult, RowStatus
from importer.reader import ParsedChunk, Sheet, load_sheet, parse_rows
from importer.reporter import EarlierResult, RowResults, read_earlier
from importer.sender import SendJob, UpdateJob, update_notes

log = logging.getLogger(__name__)
FIRST_CHUNK_ROWS, CHUNK_ROWS = 50, 1000  # rows looked up together: the first few, so sending starts soon


@dataclass(frozen=True, slots=True)
class Packed:
    """A valid row's meeting while it waits for its chunk: its JSON, its key and what orders it, unpacked
    (`meeting`) only when the chunk is looked up. A Meeting object held for every row of a 200,000-row
    sheet costs about 2 KB a row; packed, a few hundred bytes."""

    row_key: str
    owner_email: str
    start_ms: int
    data: bytes

    @classmethod
    def of(cls, meeting: Meeting) -> Packed:
        start_ms = round(meeting.start.timestamp() * 1000)
        data = Meeting.__pydantic_serializer__.to_json(meeting)
        return cls(meeting.row_key, sys.intern(meeting.owner_email), start_ms, data)

    @property
    def meeting(self) -> Meeting:
        return Meeting.model_validate_json(self.data)


Pending = list[tuple[int, Packed]]
"""Rows still to settle: their index in the results, and their meeting, packed."""


def unpacked(rows: Pending) -> list[tuple[int, Meeting]]:
    return [(index, packed.meeting) for index, packed in rows]


def read_rows(input_path: Path, settings: Settings, zone: str) -> tuple[Sheet, RowResults, Pending]:
    """Stage: the sheet, a result for every row (invalid ones settled), and the valid rows' meetings."""
    meetings: Pending = []  # packed as each is built: a chunk's worth of Meeting objects is never held
    sheet, chunks = _parse(
        input_path,
        settings,
        zone,
        on_meeting=lambda index, meeting: meetings.append((index, Packed.of(meeting))),
    )
    frames = [chunk.frame for chunk in chunks]
    results = _read_results(frames, meetings)
    log.info("read %s: %d rows, %d to send", input_path, len(results), len(meetings))
    return sheet, results, meetings


def check_rows(
    input_path: Path, settings: Settings, zone: str, results_path: Path
) -> tuple[Sheet, RowResults]:
    """Stage, a dry run's whole: every row read and checked, and its line in the results file written as
    its chunk is done (write_checked). Returns the sheet and the results the summary reads (each row's
    number, status and error): a million rows' lines, their cells' and results', are never all held."""
    sheet, chunks = _parse(input_path, settings, zone, build_meetings=False)
    summary: list[pl.DataFrame] = []

    def checked() -> Iterator[RowResults]:
        for chunk in chunks:
            results = _read_results([chunk.frame], [])
            summary.append(results.columns().select("row", "status", "error", "error_code"))
            yield results

    write_checked(sheet.frame, checked(), results_path)
    results = RowResults(pl.concat(summary)) if summary else RowResults.of([])
    valid = results.columns()["error"].null_count()  # read as valid: no error (_read_results)
    log.info("read %s: %d rows, %d valid", input_path, len(results), valid)
    return sheet, results


def _parse(
    input_path: Path,
    settings: Settings,
    zone: str,
    *,
    build_meetings: bool = True,
    on_meeting: Callable[[int, Meeting], None] | None = None,
) -> tuple[Sheet, Iterator[ParsedChunk]]:
    """The sheet as `settings` read it, and its rows as parse_rows checks them, a chunk at a time."""
    sheet = load_sheet(
        input_path,
        columns=settings.columns,
        encoding=settings.encoding,
        sheet=settings.sheet,
        header_row=settings.header_row,
        key_column=settings.key_column,
    )
    chunks = parse_rows(
        sheet,
        default_timezone=zone,
        default_outcome=settings.default_outcome,
        default_reminders=settings.default_reminders,
        date_order=settings.date_order,
        build_meetings=build_meetings,
        on_meeting=on_meeting,
    )
    return sheet, chunks


def _read_results(frames: list[pl.DataFrame], meetings: Pending) -> RowResults:
    """Every row's result as read, as columns: `invalid` with its problems, else `valid`."""
    read = pl.concat(frames) if frames else pl.DataFrame(schema={"row": pl.Int64, "error": pl.String})
    keys = pl.repeat(None, read.height, dtype=pl.String, eager=True)
    if meetings:
        keys = keys.scatter([index for index, _ in meetings], [meeting.row_key for _, meeting in meetings])
    invalid = pl.col("error").is_not_null()
    status = pl.when(invalid).then(pl.lit(str(RowStatus.INVALID))).otherwise(pl.lit(str(RowStatus.VALID)))
    results = RowResults(
        read.with_columns(status.alias("status"), keys.alias("row_key"), pl.lit(0).alias("attempts"))
    )
    for index in read.with_row_index().filter(invalid)["index"]:
        log_row(results.peek(index))
    return results


async def connect(client: HubSpotClient, base_url: str) -> Account:
    """Stage: the account the token belongs to. One request, which also checks the token; the ledger is
    the portal's, however the API's URL is spelt. HubSpot that answers with its trouble (a 5xx, 429s, no
    answer in time) is raised as it is, for the run to wait for; one that cannot be reached at all (a URL
    or network wrong more often than HubSpot down) stops the run at once."""
    try:
        return await client.account()
    except AuthFailed:
        raise
    except NotSent as error:  # before RETRIABLE_READ_ERRORS, which holds it
        raise unreachable(base_url, error) from None
    except RETRIABLE_READ_ERRORS:
        raise
    except HubSpotError as error:
        raise unreachable(base_url, error) from None


def unreachable(base_url: str, why: HubSpotError | str) -> StopRun:
    """The stop for a HubSpot the run could not get an account's details from."""
    host = urlsplit(base_url).hostname or base_url
    message = messages._("cannot reach HubSpot at {host} ({url}): {error}")
    return StopRun(message.format(host=host, url=base_url, error=why))


def merge_legacy_ledger(ledger: Ledger, legacy: Path) -> None:
    """A ledger at the place earlier versions kept it (beside the results) is merged once, then renamed."""
    if not legacy.is_file() or legacy.resolve() == ledger.path.resolve():
        return
    try:
        count = ledger.merge_from(legacy)
        done = legacy.with_name(f"{legacy.name}.merged-into-portal-{ledger.target}")
        legacy.rename(done)
    except Exception as exc:  # an unreadable old ledger must not stop the run: HubSpot is asked anyway
        log.warning(
            "could not merge the earlier ledger %s (%s); the existing-meeting check covers it", legacy, exc
        )
        return
    log.warning(
        "merged %d rows of the earlier ledger %s into %s (renamed %s)", count, legacy, ledger.path, done.name
    )


def earlier_results(path: Path | None, account: Account) -> dict[str, EarlierResult]:
    """`--only-failed PREVIOUS`, refused when it was written for another portal."""
    if path is None:
        return {}
    earlier = read_earlier(path)
    portals = {e.portal_id for e in earlier.values() if e.portal_id} - {str(account.portal_id)}
    if portals:
        message = messages._(
            "{path} was written for HubSpot portal {portals}, but this run writes to portal {portal}:"
            " use that portal's results file"
        )
        raise InputError(
            message.format(path=path, portals=", ".join(sorted(portals)), portal=account.portal_id)
        )
    return earlier


def identify(sheet: Sheet, board: Board, meetings: Pending, key_column: str | None) -> dict[int, str]:
    """Stage: each valid row's identity in the portal, by result index: the key column's value when the
    config names one; else the `row_key` a results file imported again gives the row (so fixing a row in
    the results file edits its meeting); else the row's content fingerprint. Rows with an empty key are
    invalid; one key on two rows stops the run."""
    keys: dict[int, str] = {}
    if key_column:
        if key_column not in sheet.frame.columns:
            message = messages._("{path}: no column '{column}' (key_column); the file has: {columns}")
            columns = ", ".join(sheet.frame.columns)
            raise InputError(message.format(path=sheet.path, column=key_column, columns=columns))
        values = sheet.frame[key_column].to_list()
        seen: dict[str, int] = {}
        for index, _ in meetings:
            value = " ".join(str(values[index] or "").split())
            if not value:
                missing = codes.Problem(codes.MISSING_REQUIRED_PROPERTY, key_column)
                board.record(index, codes.outcome(RowStatus.INVALID, missing))
                continue
            if value in seen:
                rows = messages._("{first} and {second}").format(
                    first=board.results[seen[value]].row, second=board.results[index].row
                )
                message = messages._("{path}: rows {rows} have the same {column} '{value}'")
                raise InputError(message.format(path=sheet.path, rows=rows, column=key_column, value=value))
            seen[value] = index
            keys[index] = hashlib.sha256(f"key\x1f{value}".encode()).hexdigest()[:24]
    else:
        given = _evidence_keys(sheet.evidence)
        counts = Counter(given[index] for index, _ in meetings if given.get(index))
        for index, meeting in meetings:
            earlier = given.get(index)
            keys[index] = earlier if earlier and counts[earlier] == 1 else meeting.row_key
    board.results.set_many(list(keys), "row_key", list(keys.values()))
    return keys


def _evidence_keys(evidence: pl.DataFrame | None) -> dict[int, str]:
    if evidence is None or "row_key" not in evidence.columns:
        return {}
    return {i: str(k) for i, k in enumerate(evidence["row_key"].to_list()) if k}


def split_twins(meetings: Pending, keys: dict[int, str]) -> tuple[Pending, list[tuple[int, int]]]:
    """The first row of each identity, and (index, index of its first) for the repeats: a sheet that
    lists one meeting twice (the same in everything sent) must still create it once."""
    firsts: dict[str, int] = {}
    unique: Pending = []
    twins: list[tuple[int, int]] = []
    for index, _meeting in meetings:
        first = firsts.setdefault(keys[index], index)
        if first == index:
            unique.append((index, _meeting))
        else:
            twins.append((index, first))
    return unique, twins


def twin_outcome(first: RowResult) -> RowOutcome:
    """A repeated row's outcome is its first's; its problems are the first's, after saying so."""
    same = codes.Problem(codes.DUPLICATE_ROW_CONTENT, params={"row": first.row})
    if first.status in DONE_STATUSES:
        return RowOutcome(RowStatus.SKIPPED, first.outcome.meeting_id).noted(*codes.rendered([same]))
    earlier = first.outcome
    error, code = same.render(), same.code.name
    return RowOutcome(
        first.status,
        error=codes.MESSAGE_SEPARATOR.join(e for e in (error, earlier.error) if e),
        error_code=codes.CODE_SEPARATOR.join(c for c in (code, earlier.error_code) if c),
    )


@dataclass(frozen=True)
class Edited:
    """A row whose meeting HubSpot has, but whose content changed since it was sent."""

    index: int
    meeting: Packed
    meeting_id: str
    sent: str | None  # the ledger's snapshot of what was last sent; None when unknown


@dataclass
class Known:
    """What `settle_known` leaves for the later stages."""

    pending: Pending = field(default_factory=list)  # to be mapped, checked and created
    vouched: dict[str, Pending] = field(default_factory=dict)  # meeting id -> rows
    suspect: set[int] = field(default_factory=set)  # a results file left them unsent or in doubt
    in_doubt: set[int] = field(default_factory=set)  # the ledger's rows in doubt: the sender searches first
    edited: list[Edited] = field(default_factory=list)


def settle_known(
    meetings: Pending,
    keys: dict[int, str],
    ledger: Ledger,
    evidence: pl.DataFrame | None,
    previous: dict[str, EarlierResult],
    board: Board,
    on_change: str,
) -> Known:
    """Stage: rows the ledger knows as created are skipped before any lookup is spent on them, or, when
    their content changed since, are edits. Rows a results file vouches for (its own columns, or
    `--only-failed`) are set aside by meeting id, to be confirmed in HubSpot; the rest are pending."""
    entries = ledger.entries(keys[index] for index, _ in meetings)
    own = _own_evidence(evidence, board)
    known = Known()
    for index, meeting in meetings:
        entry = entries.get(keys[index])
        claim = own.get(index) or previous.get(meeting.row_key)
        if claim is not None and claim.status in (RowStatus.NOT_SENT, RowStatus.IN_DOUBT):
            known.suspect.add(index)
        if entry is not None and entry.state == "created" and entry.meeting_id:
            if entry.content_key in (None, meeting.row_key):
                board.record(index, RowOutcome(RowStatus.SKIPPED, entry.meeting_id))
            elif on_change == "skip":
                note = codes.rendered([codes.Problem(codes.CHANGE_NOT_SENT)])
                board.record(index, RowOutcome(RowStatus.SKIPPED, entry.meeting_id).noted(*note))
            else:
                known.edited.append(Edited(index, meeting, entry.meeting_id, entry.sent))
        elif entry is not None and entry.state in IN_DOUBT:
            known.pending.append((index, meeting))
            known.in_doubt.add(index)
        elif claim is not None and claim.status in DONE_STATUSES and claim.meeting_id:
            known.vouched.setdefault(claim.meeting_id, []).append((index, meeting))
        else:
            known.pending.append((index, meeting))
    return known


def _own_evidence(evidence: pl.DataFrame | None, board: Board) -> dict[int, EarlierResult]:
    """What a results file imported as input says of its own rows, by result index. A meeting id of
    another portal proves nothing here."""
    if evidence is None or "meeting_id" not in evidence.columns:
        return {}
    portal = str(board.account.portal_id) if board.account else None
    found: dict[int, EarlierResult] = {}
    for index, row in enumerate(evidence.iter_rows(named=True)):
        claim = EarlierResult(str(row.get("status") or ""), row.get("meeting_id"), row.get("portal_id"))
        if claim.portal_id and claim.portal_id != portal:
            continue
        found[index] = claim
    return found


async def confirm_vouched(
    client: HubSpotClient,
    ledger: Ledger,
    vouched: dict[str, Pending],
    keys: dict[int, str],
    run_id: str,
    board: Board,
) -> list[Edited]:
    """Stage: meeting ids a results file names are read back from HubSpot (100 a request); those it has
    are recorded in the ledger and skipped, or, when the row was fixed in the results file since (its
    `row_key` no longer its content), become edits. A deleted one fails its row rather than being made
    again."""
    if not vouched:
        return []
    read = await client.batch_read("meetings", list(vouched))
    existing = {record.id for record in read.found}
    edited: list[Edited] = []
    for meeting_id, rows in vouched.items():
        for index, meeting in rows:
            if meeting_id not in existing:
                gone = codes.Problem(codes.RESULTS_MEETING_DELETED, params={"meeting_id": meeting_id})
                board.record(index, codes.outcome(RowStatus.FAILED, gone))
                continue
            changed = keys[index] != meeting.row_key
            ledger.record_created(
                keys[index], meeting_id, run_id, content_key=None if changed else meeting.row_key
            )
            if changed:
                edited.append(Edited(index, meeting, meeting_id, None))
            else:
                note = codes.rendered([codes.Problem(codes.CREATED_EARLIER)])
                board.record(index, RowOutcome(RowStatus.SKIPPED, meeting_id).noted(*note))
    return edited


def row_chunks(rows: Pending) -> Iterator[Pending]:
    """`rows` by owner and start, in chunks that grow from FIRST_CHUNK_ROWS to CHUNK_ROWS. By owner and
    start, each chunk's search for existing meetings spans only its own owners' stretch of time, so the
    chunks together read each meeting once; and a chunk ends only where owner or start changes, so rows
    that one meeting could match are always checked together, before any of them is created."""
    ordered = sorted(rows, key=_slot)
    size, chunk = FIRST_CHUNK_ROWS, []
    for at, row in enumerate(ordered):
        chunk.append(row)
        later = ordered[at + 1] if at + 1 < len(ordered) else None
        if len(chunk) >= size and (later is None or _slot(later) != _slot(row)):
            yield chunk
            size, chunk = min(size * 4, CHUNK_ROWS), []
    if chunk:
        yield chunk


def _slot(row: tuple[int, Packed]) -> tuple[str, int]:
    return row[1].owner_email, row[1].start_ms


async def map_rows(
    lookups: Lookups,
    rows: list[tuple[int, Meeting]],
    keys: dict[int, str],
    settings: Settings,
    board: Board,
    later: Iterable[Meeting] = (),
) -> list[SendJob]:
    """Stage: owners and associations for every row still to send (and some of the `later` rows', to
    fill the lookups' batches); rows that cannot be mapped fail."""
    if not rows:
        return []
    directory = await lookups.directory_for([meeting for _, meeting in rows], later)
    jobs = []
    for index, meeting in rows:
        mapped = map_meeting(
            meeting,
            directory,
            on_missing_association=settings.on_missing_association,
            ambiguous_company_domain=settings.ambiguous_company_domain,
            include_invite_description=settings.include_invite_description,
        )
        if mapped.request is None:
            found = [problem.named(board.headers) for problem in mapped.problems]
            board.record(index, codes.outcome(RowStatus.FAILED, *found))
        else:
            jobs.append(SendJob(index, keys[index], mapped.request, meeting.row_key))
    return jobs


def plan_updates(
    jobs: list[SendJob], edits: dict[int, Edited], ledger: Ledger, board: Board
) -> list[UpdateJob]:
    """Stage: what each edited row changes in its meeting. A row whose change HubSpot's CRM cannot make
    (only reminders, say) is skipped with a warning that says so."""
    updates = []
    for job in jobs:
        edit = edits[job.index]
        change = named(diff(edit.sent, job.request), board.headers)
        if change.empty:
            ledger.mark_updated(job.row_key, job.content_key or "", snapshot(job.request))
            kept = codes.Problem(
                codes.ONLY_NOT_UPDATABLE, params={"fields": ", ".join(change.not_updatable) or "-"}
            )
            board.record(
                job.index, RowOutcome(RowStatus.SKIPPED, edit.meeting_id).noted(*codes.rendered([kept]))
            )
        else:
            updates.append(UpdateJob(job, edit.meeting_id, change))
    return updates


def record_plan(jobs: list[SendJob], updates: list[UpdateJob], board: Board) -> None:
    """A plan's outcome for the rows a run would send: created ones `valid`, edited ones `updated`."""
    for update in updates:
        outcome = RowOutcome(RowStatus.UPDATED, update.meeting_id)
        board.record(update.job.index, outcome.noted(*codes.rendered(update_notes(update.change))))
    for job in jobs:
        board.record(job.index, RowOutcome(RowStatus.VALID).noted(*codes.rendered(job.request.notes)))


async def check_existing(
    client: HubSpotClient,
    ledger: Ledger,
    jobs: list[SendJob],
    run_keys: set[str],
    run_id: str,
    board: Board,
) -> list[SendJob]:
    """Stage: look for every job among the portal's meetings before creating it; adopt the meeting that
    is surely its own, and return the jobs still to send."""
    findings = await find_in_ranges(client, [job.request for job in jobs])
    holders = ledger.holders({i for f in findings for i in f.same})
    # A meeting another row of this sheet holds is that row's: this one is a meeting of its own.
    mines = [
        [i for i in finding.same if not (holders.get(i, set()) & (run_keys - {job.row_key}))]
        for job, finding in zip(jobs, findings, strict=True)
    ]
    ambiguous = [at for at, mine in enumerate(mines) if len(mine) > 1]
    narrowed = await asyncio.gather(*(narrow(client, jobs[at].request, mines[at]) for at in ambiguous))
    for at, mine in zip(ambiguous, narrowed, strict=True):
        mines[at] = mine
    rows_of: dict[str, list[int]] = {}  # meeting id -> the rows it matches
    for job, mine in zip(jobs, mines, strict=True):
        for meeting_id in mine:
            rows_of.setdefault(meeting_id, []).append(board.results[job.index].row)
    to_send = []
    for job, finding, mine in zip(jobs, findings, mines, strict=True):
        if len(mine) > 1:
            params: dict[str, codes.Param] = {"count": len(mine), "ids": ", ".join(mine)}
            several = codes.Problem(codes.MULTIPLE_EXISTING_MEETINGS, params=params)
            board.record(job.index, codes.outcome(RowStatus.FAILED, several))
        elif mine and len(rows_of[mine[0]]) > 1:
            rows = ", ".join(str(r) for r in rows_of[mine[0]])
            shared = codes.Problem(
                codes.MEETING_MATCHES_SEVERAL_ROWS, params={"meeting_id": mine[0], "rows": rows}
            )
            board.record(job.index, codes.outcome(RowStatus.FAILED, shared))
        elif mine:
            ledger.record_created(
                job.row_key, mine[0], run_id, content_key=job.content_key, sent=snapshot(job.request)
            )
            there = codes.Problem(codes.ALREADY_IN_HUBSPOT, params={"meeting_id": mine[0]})
            outcome = RowOutcome(RowStatus.SKIPPED, mine[0])
            board.record(job.index, outcome.noted(*codes.rendered((*job.request.notes, there))))
        else:
            if finding.differing:
                similar = codes.Problem(
                    codes.SIMILAR_MEETING_EXISTS, params={"ids": ", ".join(finding.differing)}
                )
                job = replace(job, request=replace(job.request, notes=(*job.request.notes, similar)))
            to_send.append(job)
    return to_send
