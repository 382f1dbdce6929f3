"""The batch sender with a real HubSpotClient and a real Ledger, against a scripted HubSpot on httpx.MockTransport.

The fake is test_sender's (it keeps its meetings and answers the meetings search from them), taught the CRM
batch create: each batch is answered by the next scripted step (HubSpot may create the inputs, refuse some
in a 207, lose the answer, or answer without trace ids), by default 201 with every input created. Results
always come back in reverse order, so a sender that matched them by position would record wrong ids.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from importer.errors import AuthError
from importer.hubspot import BATCH_CREATE_PATH, HubSpotClient, LoggedMeeting, RetryPolicy
from importer.ledger import Ledger
from importer.logbook import BatchSender, Routing, batches, match_results, route
from importer.mapper import crm_input
from importer.models import RowOutcome as Outcome
from importer.models import RowStatus
from importer.problems import ASSOCIATION_SKIPPED, Problem, Text
from importer.sender import SendJob
from tests.test_sender import (
    DAILY_STOP,
    EXPIRED,
    EXPIRED_MESSAGE,
    LOST,
    NO_SCOPE,
    NO_SCOPE_MESSAGE,
    PORTAL,
    START,
    TITLE,
    TOKEN,
    UNAVAILABLE,
    FakeClock,
    FakeHubSpot,
    Reply,
    make_job,
    rate_limited,
    unsettled,
)

BASE_URL = "https://api.hubapi.test"
LOST_BATCH = f"POST {BATCH_CREATE_PATH}: no answer (ReadTimeout)"
_real_sleep = asyncio.sleep


@dataclass(frozen=True)
class Batch:
    """How the fake answers one batch create. HubSpot creates the inputs when `created` (by default when
    `status` is 2xx), save those whose title is in `refuse`, which a 207 refuses. Then it answers with the
    results reversed, trace ids echoed unless `echo` is False and the first `unlisted` left out; or with
    `reply` (an error, say); or it fails the transport with `drop`."""

    status: int = 201
    created: bool | None = None
    refuse: tuple[str, ...] = ()
    echo: bool = True
    unlisted: int = 0
    reply: Reply | None = None
    drop: type[httpx.TransportError] | None = None


def failing(reply: Reply, *, created: bool = False) -> Batch:
    return Batch(reply.status, created=created, reply=reply)


class FakeBatchHubSpot(FakeHubSpot):
    """test_sender's fake HubSpot, which also answers batch creates as scripted."""

    def __init__(self) -> None:
        super().__init__()
        self.batches: list[list[dict[str, Any]]] = []  # the inputs of each batch create, in arrival order
        self.forbid: str | None = None  # a batch holding this title is refused whole, 403
        self.on_batch: Callable[[int], None] = lambda count: None  # told how many batches came so far
        self._batch_steps: deque[Batch] = deque()

    def script_batches(self, *steps: Batch) -> None:
        self._batch_steps = deque(steps)

    def batch_titles(self) -> list[list[str]]:
        return [[i["properties"]["hs_meeting_title"] for i in inputs] for inputs in self.batches]

    async def handle(self, request: httpx.Request) -> httpx.Response:
        if request.url.path != BATCH_CREATE_PATH:
            return await super().handle(request)
        inputs = json.loads(request.content)["inputs"]
        assert 1 <= len(inputs) <= 100
        self.batches.append(inputs)
        self.events.append(f"batch {len(inputs)}")
        self.on_batch(len(self.batches))
        self.in_flight += 1
        self.most_in_flight = max(self.most_in_flight, self.in_flight)
        try:
            for _ in range(10):  # stay in flight a while: other workers may start theirs meanwhile
                await _real_sleep(0)
            return self._batch(request, inputs)
        finally:
            self.in_flight -= 1

    def _batch(self, request: httpx.Request, inputs: list[dict[str, Any]]) -> httpx.Response:
        titles = [i["properties"]["hs_meeting_title"] for i in inputs]
        if self.forbid is not None and self.forbid in titles:
            return httpx.Response(403, json=NO_SCOPE.body)
        step = self._batch_steps.popleft() if self._batch_steps else Batch()
        refused = [i for i in inputs if i["properties"]["hs_meeting_title"] in step.refuse]
        creates = step.status < 300 if step.created is None else step.created
        made = (
            [
                (i, self._store(i["properties"], i.get("associations") or []))
                for i in inputs
                if i not in refused
            ]
            if creates
            else []
        )
        if step.drop is not None:
            raise step.drop(f"simulated {step.drop.__name__}", request=request)
        if step.reply is not None:
            reply, headers = step.reply, {"X-HubSpot-Correlation-Id": "c-e"}
            if reply.text is not None:
                return httpx.Response(reply.status, text=reply.text, headers=headers)
            return httpx.Response(reply.status, json=reply.body, headers=headers)
        results = [{"id": m.id, "properties": i["properties"]} for i, m in reversed(made)]
        if step.echo:
            traces = [i["objectWriteTraceId"] for i, _ in reversed(made)]
            results = [r | {"objectWriteTraceId": t} for r, t in zip(results, traces, strict=True)]
        answer: dict[str, Any] = {"status": "COMPLETE", "results": results[step.unlisted :]}
        if refused:
            answer["numErrors"] = len(refused)
            answer["errors"] = [_refusal(i) for i in refused]
        status = 207 if refused else step.status
        return httpx.Response(status, json=answer, headers={"X-HubSpot-Correlation-Id": f"corr-{status}"})


def _refusal(item: dict[str, Any]) -> dict[str, Any]:
    title = item["properties"]["hs_meeting_title"]
    return {
        "status": "error",
        "category": "VALIDATION_ERROR",
        "message": f"title '{title}' is not allowed",
        "context": {"objectWriteTraceId": [item["objectWriteTraceId"]]},
        "errors": [{"message": "a rule of the portal", "in": "hs_meeting_title"}],
    }


def refused_message(title: str) -> str:
    return f"HubSpot 207 VALIDATION_ERROR: title '{title}' is not allowed (a rule of the portal)"


class Harness:
    """A fake HubSpot, a ledger in tmp_path, and a BatchSender run over them."""

    def __init__(self, ledger_path: Path) -> None:
        self.hubspot = FakeBatchHubSpot()
        self.ledger = Ledger(ledger_path, PORTAL)
        self.reported: list[tuple[int, Outcome]] = []
        self.sender: BatchSender | None = None

    def send(
        self,
        jobs: list[SendJob],
        *,
        concurrency: int = 1,
        max_attempts: int = 3,
        search_lag_s: float = 0.0,
        clock: FakeClock | None = None,
        daily_remaining: Callable[[], int | None] = lambda: None,
    ) -> dict[int, Outcome]:
        if clock is not None:
            self.hubspot.clock = clock

        async def main() -> dict[int, Outcome]:
            client = HubSpotClient(
                BASE_URL,
                TOKEN,
                retry=RetryPolicy(max_attempts=3, base_s=0.001),
                transport=httpx.MockTransport(self.hubspot.handle),
                sleep=lambda seconds: _real_sleep(0),
            )
            async with client:
                self.sender = BatchSender(
                    client,
                    self.ledger,
                    run_id="run-2",
                    concurrency=concurrency,
                    max_attempts=max_attempts,
                    search_lag_s=search_lag_s,
                    on_outcome=lambda index, outcome: self.reported.append((index, outcome)),
                    daily_remaining=daily_remaining,
                    clock=clock or time.time,
                    sleep=clock.sleep if clock else None,
                )
                await self.sender.send_all(jobs)
                return dict(self.reported[told:])  # a row's last outcome counts

        told = len(self.reported)
        return asyncio.run(main())

    def state(self, row_key: str) -> tuple[str, str | None, int, str | None] | None:
        """The ledger's (state, meeting id, attempts, error) for `row_key`; None if it has no entry."""
        entry = self.ledger.entries([row_key]).get(row_key)
        return None if entry is None else (entry.state, entry.meeting_id, entry.attempts, entry.error)

    def owner_of(self, meeting: str | None) -> str:
        """The title and start of the meeting HubSpot has under this id: whose meeting it really is."""
        (stored,) = [m for m in self.hubspot.meetings if m.id == meeting]
        return f"{stored.title}@{stored.start_ms}"


@pytest.fixture
def harness(tmp_path: Path) -> Iterator[Harness]:
    harness = Harness(tmp_path / "state.sqlite")
    yield harness
    harness.ledger.close()


def jobs_of(count: int, title: str = TITLE) -> list[SendJob]:
    return [make_job(index, title) for index in range(count)]


def mine(job: SendJob) -> str:
    return f"{job.request.title}@{job.request.start_ms}"


def once_each(harness: Harness, jobs: list[SendJob]) -> None:
    """Every job's meeting is in HubSpot exactly once, and its outcome names that meeting."""
    stored = sorted(f"{m.title}@{m.start_ms}" for m in harness.hubspot.meetings)
    assert stored == sorted(mine(job) for job in jobs)


# --- logged 100 to a request, matched by trace id ---


def test_250_rows_go_in_3_batches_each_row_recorded_with_its_own_meeting(harness: Harness) -> None:
    jobs = jobs_of(250)
    outcomes = harness.send(jobs, concurrency=2)
    assert [len(b) for b in harness.hubspot.batches] == [100, 100, 50]
    assert [i["objectWriteTraceId"] for b in harness.hubspot.batches for i in b] == [j.row_key for j in jobs]
    assert harness.hubspot.batches[0][0] == crm_input(jobs[0].request, "key-0")
    for job in jobs:
        outcome = outcomes[job.index]
        assert (outcome.status, outcome.http_status, outcome.attempts) == (RowStatus.CREATED, 201, 1)
        assert harness.owner_of(outcome.meeting_id) == mine(job)  # results came reversed
        assert harness.state(job.row_key) == ("created", outcome.meeting_id, 1, None)
    assert harness.hubspot.searches == []
    once_each(harness, jobs)
    assert harness.sender is not None and harness.sender._ready == {}  # no request made ahead a row


def test_batches_in_flight_never_exceed_the_concurrency(harness: Harness) -> None:
    harness.send(jobs_of(1000), concurrency=3)
    assert (len(harness.hubspot.batches), harness.hubspot.most_in_flight) == (10, 3)


def test_results_without_trace_ids_are_matched_by_the_properties_sent(harness: Harness) -> None:
    jobs = [make_job(0, "Visit A"), make_job(1, "Visit B"), make_job(2, "Visit C", location="Osaka")]
    harness.hubspot.script_batches(Batch(echo=False))
    outcomes = harness.send(jobs)
    assert [harness.owner_of(outcomes[job.index].meeting_id) for job in jobs] == [mine(job) for job in jobs]
    assert {outcome.status for outcome in outcomes.values()} == {RowStatus.CREATED}


def test_a_row_keeps_the_mapper_notes(harness: Harness) -> None:
    skipped = Problem(
        ASSOCIATION_SKIPPED, "contact_emails", "a@example.com", {"what": Text("contact not found")}
    )
    job = make_job(0, notes=(skipped,))
    assert harness.send([job])[0].warning == "contact not found (association skipped): a@example.com"


def test_rows_sharing_owner_start_and_title_never_share_a_batch() -> None:
    twin = make_job(1)  # the same owner, start and title as row 1, another row key
    alike = SendJob(7, "key-7", twin.request)
    jobs = [*jobs_of(150), alike]
    split = batches(jobs)
    assert [len(b) for b in split] == [100, 51]
    assert [j.index for b in split for j in b] == [j.index for j in jobs]
    assert batches([make_job(0), SendJob(5, "key-5", make_job(0).request), make_job(1)]) == [
        [make_job(0), make_job(1)],
        [SendJob(5, "key-5", make_job(0).request)],
    ]


def test_a_result_naming_a_trace_id_of_no_row_matches_nothing() -> None:
    jobs = [make_job(0)]
    stray = LoggedMeeting("9", "key-elsewhere", crm_input(jobs[0].request, "x")["properties"])
    assert match_results(jobs, [stray]) == {}
    untraced = LoggedMeeting("9", None, crm_input(jobs[0].request, "x")["properties"])
    assert match_results(jobs, [untraced]) == {"key-0": untraced}


# --- a 207: refused rows fail, the others are created, nothing is resent ---


def test_a_partial_207_fails_the_refused_rows_with_hubspots_message(harness: Harness) -> None:
    jobs = [make_job(0, "Visit A"), make_job(1, "Secret"), make_job(2, "Visit C")]
    harness.hubspot.script_batches(Batch(refuse=("Secret",)))
    outcomes = harness.send(jobs)
    assert outcomes[1] == Outcome(
        RowStatus.FAILED,
        error=refused_message("Secret"),
        http_status=207,
        correlation_id="corr-207",
        attempts=1,
        error_code="HUBSPOT_REFUSED",
    )
    assert harness.state("key-1") == ("failed", None, 1, refused_message("Secret"))
    assert [outcomes[i].status for i in (0, 2)] == [RowStatus.CREATED, RowStatus.CREATED]
    assert outcomes[0].http_status == 207
    assert len(harness.hubspot.batches) == 1 and harness.hubspot.searches == []
    once_each(harness, [jobs[0], jobs[2]])


# --- nothing was created: the batch is sent again whole ---


@pytest.mark.parametrize(
    "first",
    [failing(rate_limited("TEN_SECONDLY_ROLLING")), Batch(drop=httpx.ConnectError, created=False)],
    ids=["429", "connect-error"],
)
def test_a_batch_refused_before_anything_was_made_is_sent_again_whole(harness: Harness, first: Batch) -> None:
    jobs = jobs_of(5)
    harness.hubspot.script_batches(first)
    outcomes = harness.send(jobs)
    assert harness.hubspot.batch_titles() == [[TITLE] * 5] * 2
    assert {(o.status, o.attempts) for o in outcomes.values()} == {(RowStatus.CREATED, 2)}
    assert harness.hubspot.searches == []
    once_each(harness, jobs)


def test_a_batch_refused_whole_is_halved_until_the_row_at_fault_fails_alone(harness: Harness) -> None:
    jobs = [make_job(i, "Secret" if i == 5 else f"Visit {i}") for i in range(8)]
    harness.hubspot.forbid = "Secret"
    outcomes = harness.send(jobs)
    assert [len(b) for b in harness.hubspot.batches] == [8, 4, 4, 2, 2, 1, 1]
    assert outcomes[5] == Outcome(
        RowStatus.FAILED,
        error=NO_SCOPE_MESSAGE,
        http_status=403,
        correlation_id="corr-403-scopes",
        attempts=4,
        error_code="HUBSPOT_REFUSED",
    )
    assert harness.state("key-5") == ("failed", None, 4, NO_SCOPE_MESSAGE)
    assert {outcomes[i].status for i in range(8) if i != 5} == {RowStatus.CREATED}
    assert harness.hubspot.searches == []
    once_each(harness, [j for j in jobs if j.index != 5])


def test_a_401_stops_the_run_and_leaves_the_rows_not_sent(harness: Harness) -> None:
    harness.hubspot.script_batches(failing(EXPIRED))
    with pytest.raises(AuthError, match="HubSpot refused the access token"):
        harness.send(jobs_of(150))
    assert len(harness.hubspot.batches) == 1
    statuses = {outcome.status for _, outcome in harness.reported}
    assert statuses == {RowStatus.NOT_SENT} and len(harness.reported) == 150
    assert harness.reported[0][1].error == f"HubSpot refused the access token ({EXPIRED_MESSAGE})"


def test_the_daily_cap_stops_before_the_next_batch(harness: Harness) -> None:
    left = iter([5, 0])
    outcomes = harness.send(jobs_of(150), daily_remaining=lambda: next(left, 0))
    assert [len(b) for b in harness.hubspot.batches] == [100]
    assert {outcomes[i].status for i in range(100)} == {RowStatus.CREATED}
    assert {(outcomes[i].status, outcomes[i].error) for i in range(100, 150)} == {
        (RowStatus.NOT_SENT, DAILY_STOP)
    }


def test_a_stop_lets_the_batch_in_flight_finish_and_sends_no_other(harness: Harness) -> None:
    def stop(count: int) -> None:
        assert harness.sender is not None
        harness.sender.stop("stopped by SIGTERM")

    harness.hubspot.on_batch = stop
    outcomes = harness.send(jobs_of(300), concurrency=1)
    assert len(harness.hubspot.batches) == 1
    assert {outcomes[i].status for i in range(100)} == {RowStatus.CREATED}
    left = {(outcomes[i].status, outcomes[i].error) for i in range(100, 300)}
    assert left == {(RowStatus.NOT_SENT, "stopped by SIGTERM")}
    assert harness.state("key-100") is None  # never marked: nothing of it went out


# --- lost answers: every row of the batch in doubt, searched for before any is sent again ---


def test_a_lost_answer_after_the_work_is_settled_by_search_not_resent(harness: Harness) -> None:
    jobs = jobs_of(12)
    harness.hubspot.script_batches(Batch(drop=httpx.ReadTimeout, created=True))
    outcomes = harness.send(jobs)
    assert len(harness.hubspot.batches) == 1
    assert harness.hubspot.events[0] == "batch 12" and set(harness.hubspot.events[1:]) == {"search"}
    assert len(harness.hubspot.searches) == 3  # five rows a search
    for job in jobs:
        outcome = outcomes[job.index]
        assert (outcome.status, outcome.warning, outcome.attempts) == (RowStatus.CREATED, LOST, 1)
        assert harness.owner_of(outcome.meeting_id) == mine(job)
        assert harness.state(job.row_key) == ("created", outcome.meeting_id, 1, None)
    once_each(harness, jobs)


def test_a_5xx_before_the_work_is_searched_at_every_recheck_then_sent_in_a_new_batch(
    harness: Harness,
) -> None:
    clock = FakeClock(1_000_000.0)
    jobs = jobs_of(3)
    harness.hubspot.script_batches(failing(UNAVAILABLE))
    outcomes = harness.send(jobs, search_lag_s=30.0, clock=clock)
    assert harness.hubspot.events == ["batch 3", "search", "search", "search", "batch 3"]
    assert [t - 1_000_000.0 for t in harness.hubspot.search_times] == [30.0, 90.0, 300.0]
    assert {(o.status, o.attempts) for o in outcomes.values()} == {(RowStatus.CREATED, 2)}
    once_each(harness, jobs)


def test_a_2xx_that_cannot_be_read_is_never_sent_again(harness: Harness) -> None:
    jobs = jobs_of(2)
    harness.hubspot.script_batches(failing(Reply(201, text="<html>done</html>"), created=False))
    outcomes = harness.send(jobs)
    assert len(harness.hubspot.batches) == 1 and len(harness.hubspot.searches) == 3
    why = f"HubSpot's answer was lost (POST {BATCH_CREATE_PATH}: 201 without readable results)"
    expected = unsettled(why, "HubSpot said it created the meeting but search has not shown it yet")
    assert {(o.status, o.error) for o in outcomes.values()} == {(RowStatus.IN_DOUBT, expected)}
    assert harness.state("key-0") == (
        "in_doubt",
        None,
        1,
        f"POST {BATCH_CREATE_PATH}: 201 without readable results",
    )


def test_a_row_a_201_does_not_account_for_is_found_by_search(harness: Harness) -> None:
    jobs = jobs_of(4)
    harness.hubspot.script_batches(Batch(unlisted=1))  # results reversed: row 3's is left out
    outcomes = harness.send(jobs)
    assert len(harness.hubspot.batches) == 1 and len(harness.hubspot.searches) == 1
    assert outcomes[3].warning == LOST and harness.owner_of(outcomes[3].meeting_id) == mine(jobs[3])
    assert harness.state("key-3") == ("created", outcomes[3].meeting_id, 1, None)
    once_each(harness, jobs)


def test_a_look_alike_another_row_holds_is_not_adopted(harness: Harness) -> None:
    job = make_job(0)
    held = harness.hubspot.seed(TITLE, job.request.start_ms)
    harness.ledger.record_created("key-other", held, "run-1")
    harness.hubspot.script_batches(failing(UNAVAILABLE))
    outcomes = harness.send([job])
    assert harness.hubspot.events == ["batch 1", "search", "search", "search", "batch 1"]
    assert outcomes[0].status is RowStatus.CREATED and outcomes[0].meeting_id != held


def test_rows_an_earlier_run_left_sending_are_searched_for_first(harness: Harness) -> None:
    jobs = jobs_of(3)
    for job in jobs:
        r = job.request
        harness.ledger.mark_sending(job.row_key, r.owner_id, r.start_ms, r.title, "run-1")
    made = harness.hubspot.seed(TITLE, jobs[0].request.start_ms)  # row 0's create got through
    harness.ledger.record_created("key-9", "555", "run-1")
    outcomes = harness.send([*jobs, make_job(9)])
    found = Outcome(RowStatus.SKIPPED, made, attempts=0, warning=LOST, warning_code="FOUND_AFTER_LOST_ANSWER")
    assert outcomes[0] == found
    assert outcomes[9] == Outcome(RowStatus.SKIPPED, "555")
    assert harness.hubspot.events[0] == "search" and harness.hubspot.batch_titles() == [[TITLE, TITLE]]
    assert {outcomes[i].status for i in (1, 2)} == {RowStatus.CREATED}


# --- which rows are logged ---


def test_route_logs_past_meetings_in_auto_mode() -> None:
    now_ms = round((START + timedelta(hours=2)).timestamp() * 1000)
    jobs = jobs_of(4)  # rows 0 and 1 end at 00:30 and 01:30 past START
    logged, scheduled, routing = route(jobs, "auto", now_ms)
    assert ([j.index for j in logged], [j.index for j in scheduled]) == ([0, 1], [2, 3])
    assert routing == Routing("auto", logged=2, scheduled=2)
    assert route(jobs, "log", now_ms)[2] == Routing("log", logged=4, scheduled=0)
    assert route(jobs, "schedule", now_ms) == ([], jobs, Routing("schedule", 0, 4, past_scheduled=2))


def test_a_meeting_that_ends_as_the_run_starts_is_scheduled() -> None:
    job = make_job(0)
    end_ms = job.request.start_ms + 30 * 60_000
    assert route([job], "auto", end_ms)[2] == Routing("auto", logged=0, scheduled=1)
    assert route([job], "auto", end_ms + 1)[2] == Routing("auto", logged=1, scheduled=0)
