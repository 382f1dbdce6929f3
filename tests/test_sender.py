"""The sender with a real HubSpotClient and a real Ledger, against a scripted HubSpot on httpx.MockTransport.

The fake HubSpot keeps the meetings it created and answers the meetings search from them, so a create
whose answer was lost can be found again exactly as in HubSpot. Each create is answered by the next step
scripted for its title (a reply, or a dropped connection before or after HubSpot created the meeting);
with no step left it creates the meeting and answers 200. Retries and the search lag cost no time: the
client's sleep is a recorder and `search_lag_s` is 0 unless a test is about the lag.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections import deque
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from importer.errors import AuthError
from importer.hubspot import CREATE_MEETING_PATH, HubSpotClient, RetryPolicy
from importer.ledger import Ledger
from importer.mapper import CreateRequest
from importer.models import RowStatus
from importer.sender import Outcome, Sender, SendJob

TOKEN = "pat-na1-test-token"
BASE_URL = "https://api.hubapi.test"
SEARCH_PATH = "/crm/v3/objects/meetings/search"
OWNER_ID = "8100002"
ORGANIZER_USER_ID = 4242001  # the owner's userId: a different number from OWNER_ID, so a swap shows
START = datetime(2026, 12, 1, 10, 0, tzinfo=UTC)
TITLE = "Quarterly business review"
FIRST_ID = 71000001  # the fake's first meeting id
LOST = "found in HubSpot after an earlier attempt lost its answer"
UNKNOWN = (
    "outcome unknown: HubSpot's answer was lost and its search did not settle it; "
    "the next run checks HubSpot before sending this row again"
)
UNCHECKED = UNKNOWN.replace("its search did not settle it", "the run stopped before checking")
TIMED_OUT = f"POST {CREATE_MEETING_PATH}: no answer (ReadTimeout)"  # the ledger's error for a lost answer
DAILY_STOP = "HubSpot's daily request limit is reached; the next run sends the rest"
_real_sleep = asyncio.sleep  # one test patches asyncio.sleep; the fakes keep yielding for real


@dataclass(frozen=True)
class Reply:
    """Answer with `status`: a 2xx creates the meeting; `body` (JSON) or `text` replaces the usual body."""

    status: int = 200
    body: dict[str, Any] | None = None
    text: str | None = None


@dataclass(frozen=True)
class Drop:
    """Fail the transport with `error`, after creating the meeting when `created` (the answer was lost)."""

    error: type[httpx.TransportError]
    created: bool = False


Step = Reply | Drop


@dataclass(frozen=True)
class Stored:
    id: str
    owner_id: str
    start_ms: int
    title: str


def hubspot_error(status: int, message: str, **fields: Any) -> Reply:
    return Reply(status, {"status": "error", "message": message, **fields})


def rate_limited(policy: str) -> Reply:
    return hubspot_error(
        429,
        f"You have reached your {policy.lower()} limit.",
        errorType="RATE_LIMIT",
        policyName=policy,
        correlationId=f"corr-429-{policy.lower()}",
    )


UNAVAILABLE = hubspot_error(503, "Service Unavailable", correlationId="corr-503")
INVALID = hubspot_error(
    400,
    "Property values were not valid",
    category="VALIDATION_ERROR",
    correlationId="aeb5f871-7f07-4993-9211-075dc63e7cbf",
    errors=[{"message": "hs_meeting_outcome is not a valid option", "in": "hs_meeting_outcome"}],
)
INVALID_MESSAGE = (
    "HubSpot 400 VALIDATION_ERROR: Property values were not valid (hs_meeting_outcome is not a valid option)"
)
EXPIRED = hubspot_error(
    401, "The OAuth token used to make this call expired.", category="EXPIRED_AUTHENTICATION"
)
EXPIRED_MESSAGE = "HubSpot 401 EXPIRED_AUTHENTICATION: The OAuth token used to make this call expired."


class FakeHubSpot:
    """Creates meetings as scripted per title and answers the meetings search from what it created."""

    def __init__(self) -> None:
        self.meetings: list[Stored] = []
        self.creates: list[dict[str, Any]] = []  # bodies of the create requests, in arrival order
        self.create_params: list[dict[str, str]] = []
        self.searches: list[dict[str, Any]] = []
        self.in_flight = 0
        self.most_in_flight = 0
        self.on_create: Callable[[str], None] = lambda title: None
        self._create_steps: dict[str, deque[Step]] = {}
        self._search_steps: deque[Reply] = deque()

    def script(self, title: str, *steps: Step) -> None:
        """How the next creates of `title` are answered, one step each."""
        self._create_steps[title] = deque(steps)

    def script_search(self, *steps: Reply) -> None:
        """The next searches' answers, one step each; then searches answer from the stored meetings."""
        self._search_steps = deque(steps)

    def seed(self, title: str, start_ms: int, owner_id: str = OWNER_ID) -> str:
        """A meeting HubSpot already has (made by an earlier run, or by someone else)."""
        return self._store(owner_id, start_ms, title).id

    def titles(self) -> list[str]:
        return [body["properties"]["hs_meeting_title"] for body in self.creates]

    async def handle(self, request: httpx.Request) -> httpx.Response:
        assert request.headers["authorization"] == f"Bearer {TOKEN}"
        body = json.loads(request.content)
        if request.url.path == SEARCH_PATH:
            self.searches.append(body)
            return self._search(body)
        assert request.url.path == CREATE_MEETING_PATH
        self.creates.append(body)
        self.create_params.append(dict(request.url.params))
        self.in_flight += 1
        self.most_in_flight = max(self.most_in_flight, self.in_flight)
        try:
            for _ in range(10):  # stay in flight a while: other workers may start theirs meanwhile
                await _real_sleep(0)
            properties = body["properties"]
            title = properties["hs_meeting_title"]
            self.on_create(title)
            steps = self._create_steps.get(title)
            step = steps.popleft() if steps else Reply()
            created = (isinstance(step, Reply) and step.status < 300) or (
                isinstance(step, Drop) and step.created
            )
            stored = None
            if created:
                start_ms = _epoch_ms(properties["hs_meeting_start_time"])
                stored = self._store(properties["hubspot_owner_id"], start_ms, title)
            if isinstance(step, Drop):
                raise step.error(f"simulated {step.error.__name__}", request=request)
            return _answer(step, {"id": stored.id, "properties": properties} if stored else None)
        finally:
            self.in_flight -= 1

    def _search(self, body: dict[str, Any]) -> httpx.Response:
        if self._search_steps:
            return _answer(self._search_steps.popleft(), None)
        assert len(body["filterGroups"]) <= 5  # HubSpot's limit on ORed groups
        wanted = [{f["propertyName"]: f["value"] for f in group["filters"]} for group in body["filterGroups"]]
        results = [
            {
                "id": m.id,
                "properties": {
                    "hs_meeting_title": m.title,
                    "hs_meeting_start_time": _iso_z(m.start_ms),
                    "hubspot_owner_id": m.owner_id,
                    "hs_object_id": m.id,
                },
            }
            for m in self.meetings
            if any(
                m.owner_id == w["hubspot_owner_id"] and str(m.start_ms) == w["hs_meeting_start_time"]
                for w in wanted
            )
        ]
        return httpx.Response(200, json={"total": len(results), "results": results})

    def _store(self, owner_id: str, start_ms: int, title: str) -> Stored:
        stored = Stored(str(FIRST_ID + len(self.meetings)), owner_id, start_ms, title)
        self.meetings.append(stored)
        return stored


def _answer(step: Reply, created: dict[str, Any] | None) -> httpx.Response:
    headers = {"X-HubSpot-Correlation-Id": f"corr-{step.status}"}
    if step.text is not None:
        return httpx.Response(step.status, text=step.text, headers=headers)
    return httpx.Response(step.status, json=step.body if step.body is not None else created, headers=headers)


def _epoch_ms(iso: str) -> int:
    return round(datetime.fromisoformat(iso).timestamp() * 1000)


def _iso_z(epoch_ms: int) -> str:
    return datetime.fromtimestamp(epoch_ms / 1000, UTC).strftime("%Y-%m-%dT%H:%M:%S.000Z")


def make_job(index: int, title: str = TITLE, notes: tuple[str, ...] = ()) -> SendJob:
    """Row `index`: a meeting starting `index` hours after START, keyed `key-<index>`."""
    start = START + timedelta(hours=index)
    iso = start.strftime("%Y-%m-%dT%H:%M:%SZ")
    end = (start + timedelta(minutes=30)).strftime("%Y-%m-%dT%H:%M:%SZ")
    body: dict[str, Any] = {
        "properties": {
            "hs_meeting_title": title,
            "hs_meeting_start_time": iso,
            "hs_meeting_end_time": end,
            "hs_timestamp": iso,
            "hs_meeting_outcome": "SCHEDULED",
            "hubspot_owner_id": OWNER_ID,
        },
        "timezone": "Asia/Tokyo",
        "emailReminderSchedule": {"reminders": [], "shouldIncludeInviteDescription": False},
        "associations": [],
    }
    start_ms = round(start.timestamp() * 1000)
    return SendJob(
        index, f"key-{index}", CreateRequest(ORGANIZER_USER_ID, body, OWNER_ID, start_ms, title, notes)
    )


def titled(*titles: str) -> list[SendJob]:
    return [make_job(index, title) for index, title in enumerate(titles)]


class Harness:
    """A fake HubSpot, a ledger in tmp_path, and a Sender run over them."""

    def __init__(self, ledger_path: Path) -> None:
        self.hubspot = FakeHubSpot()
        self.ledger = Ledger(ledger_path, BASE_URL)
        self.reported: list[tuple[int, Outcome]] = []
        self.retry_sleeps: list[float] = []
        self.sender: Sender | None = None

    def send(
        self,
        jobs: list[SendJob],
        *,
        concurrency: int = 1,
        max_attempts: int = 3,
        search_lag_s: float = 0.0,
        clock: Callable[[], float] = time.time,
        daily_remaining: Callable[[], int | None] = lambda: None,
        sleep: Callable[[float], Awaitable[None]] | None = None,
    ) -> dict[int, Outcome]:
        async def main() -> dict[int, Outcome]:
            client = HubSpotClient(
                BASE_URL,
                TOKEN,
                retry=RetryPolicy(max_attempts=3, base_s=0.001),
                transport=httpx.MockTransport(self.hubspot.handle),
                sleep=self._sleep,
            )
            async with client:
                self.sender = Sender(
                    client,
                    self.ledger,
                    run_id="run-2",
                    concurrency=concurrency,
                    max_attempts=max_attempts,
                    search_lag_s=search_lag_s,
                    on_outcome=lambda index, outcome: self.reported.append((index, outcome)),
                    daily_remaining=daily_remaining,
                    clock=clock,
                    sleep=sleep,
                )
                return await self.sender.send_all(jobs)

        return asyncio.run(main())

    def stop_on_create(self, title: str, reason: str) -> None:
        """Call sender.stop(reason) while the create of `title` is in flight, as a signal would."""

        def hook(created_title: str) -> None:
            if created_title == title and self.sender is not None:
                self.sender.stop(reason)

        self.hubspot.on_create = hook

    def state(self, row_key: str) -> tuple[str, str | None, int, str | None] | None:
        """The ledger's (state, meeting id, attempts, error) for `row_key`; None if it has no entry."""
        entry = self.ledger.entries([row_key]).get(row_key)
        return None if entry is None else (entry.state, entry.meeting_id, entry.attempts, entry.error)

    async def _sleep(self, seconds: float) -> None:
        self.retry_sleeps.append(seconds)
        await _real_sleep(0)


@pytest.fixture
def harness(tmp_path: Path) -> Iterator[Harness]:
    harness = Harness(tmp_path / "state.sqlite")
    yield harness
    harness.ledger.close()


def meeting_id(offset: int) -> str:
    """The id of the fake's `offset`-th meeting (0-based, seeded ones included)."""
    return str(FIRST_ID + offset)


# --- sent once, answered ---


def test_created_row_records_id_status_and_correlation_id(harness: Harness) -> None:
    job = make_job(0)
    outcomes = harness.send([job])
    assert outcomes == {
        0: Outcome(RowStatus.CREATED, meeting_id(0), None, 200, "corr-200", attempts=1, note=None)
    }
    assert harness.reported == [(0, outcomes[0])]
    assert harness.hubspot.creates == [job.request.body]
    assert harness.hubspot.create_params == [{"organizerUserId": str(ORGANIZER_USER_ID)}]
    assert harness.hubspot.searches == []
    assert harness.state("key-0") == ("created", meeting_id(0), 1, None)


def test_created_row_with_201_and_mapper_notes(harness: Harness) -> None:
    job = make_job(0, notes=("contact not found (association skipped): a@example.com",))
    harness.hubspot.script(TITLE, Reply(201))
    outcomes = harness.send([job])
    assert outcomes[0] == Outcome(
        RowStatus.CREATED,
        meeting_id(0),
        None,
        201,
        "corr-201",
        attempts=1,
        note="contact not found (association skipped): a@example.com",
    )


@pytest.mark.parametrize(
    "first",
    [
        UNAVAILABLE,
        hubspot_error(502, "Bad Gateway"),
        rate_limited("TEN_SECONDLY_ROLLING"),
        Drop(httpx.ConnectError),
    ],
    ids=["503", "502", "429-ten-secondly", "connect-error"],
)
def test_passing_refusal_is_retried_and_created_on_second_attempt(harness: Harness, first: Step) -> None:
    harness.hubspot.script(TITLE, first)
    outcomes = harness.send([make_job(0)])
    assert outcomes[0] == Outcome(RowStatus.CREATED, meeting_id(0), None, 200, "corr-200", attempts=2)
    assert len(harness.hubspot.creates) == 2
    assert len(harness.retry_sleeps) == 1
    assert harness.hubspot.searches == []  # HubSpot certainly did not create it: nothing to look for
    assert harness.state("key-0") == ("created", meeting_id(0), 1, None)


def test_passing_refusals_until_the_retry_policy_gives_up_fail_the_row(harness: Harness) -> None:
    harness.hubspot.script(TITLE, UNAVAILABLE, UNAVAILABLE, UNAVAILABLE)
    outcomes = harness.send([make_job(0)])
    assert outcomes[0] == Outcome(
        RowStatus.FAILED,
        error="HubSpot 503: Service Unavailable",
        http_status=503,
        correlation_id="corr-503",
        attempts=3,
    )
    assert len(harness.hubspot.creates) == 3
    assert harness.state("key-0") == ("failed", None, 1, "HubSpot 503: Service Unavailable")


def test_rejected_row_fails_with_hubspots_message_and_is_not_retried(harness: Harness) -> None:
    harness.hubspot.script(TITLE, INVALID)
    outcomes = harness.send([make_job(0)])
    assert outcomes[0] == Outcome(
        RowStatus.FAILED,
        error=INVALID_MESSAGE,
        http_status=400,
        correlation_id="aeb5f871-7f07-4993-9211-075dc63e7cbf",
        attempts=1,
    )
    assert len(harness.hubspot.creates) == 1
    assert harness.retry_sleeps == []
    assert harness.state("key-0") == ("failed", None, 1, INVALID_MESSAGE)


def test_one_rejected_row_does_not_stop_the_others(harness: Harness) -> None:
    harness.hubspot.script("Bad", INVALID)
    outcomes = harness.send(titled("Good 1", "Bad", "Good 2"))
    assert [outcomes[i].status for i in range(3)] == [RowStatus.CREATED, RowStatus.FAILED, RowStatus.CREATED]
    assert harness.hubspot.titles() == ["Good 1", "Bad", "Good 2"]
    assert harness.sender is not None and harness.sender.stop_reason is None


# --- answers lost: set aside, searched for, never resent blindly ---


@pytest.mark.parametrize("error", [httpx.ReadTimeout, httpx.RemoteProtocolError, httpx.ReadError])
def test_lost_answer_of_a_created_meeting_is_found_by_search_not_resent(
    harness: Harness, error: type[httpx.TransportError]
) -> None:
    harness.hubspot.script(TITLE, Drop(error, created=True))
    job = make_job(0)
    outcomes = harness.send([job])
    assert outcomes[0] == Outcome(RowStatus.CREATED, meeting_id(0), attempts=1, note=LOST)
    assert len(harness.hubspot.creates) == 1
    assert harness.hubspot.searches == [
        {
            "filterGroups": [
                {
                    "filters": [
                        {"propertyName": "hubspot_owner_id", "operator": "EQ", "value": OWNER_ID},
                        {
                            "propertyName": "hs_meeting_start_time",
                            "operator": "EQ",
                            "value": str(job.request.start_ms),
                        },
                    ]
                }
            ],
            "properties": ["hs_meeting_title", "hs_meeting_start_time", "hubspot_owner_id"],
            "limit": 200,
        }
    ]
    assert harness.state("key-0") == ("created", meeting_id(0), 1, None)


def test_lost_answer_of_a_meeting_never_created_is_sent_again(harness: Harness) -> None:
    harness.hubspot.script(TITLE, Drop(httpx.ReadTimeout))
    outcomes = harness.send([make_job(0)])
    assert outcomes[0] == Outcome(RowStatus.CREATED, meeting_id(0), None, 200, "corr-200", attempts=2)
    assert len(harness.hubspot.creates) == 2
    assert len(harness.hubspot.searches) == 1
    assert harness.state("key-0") == ("created", meeting_id(0), 2, None)


def test_adopted_meeting_keeps_the_mapper_notes(harness: Harness) -> None:
    skipped = "contact not found (association skipped): a@example.com"
    harness.hubspot.script(TITLE, Drop(httpx.ReadTimeout, created=True))
    outcomes = harness.send([make_job(0, notes=(skipped,))])
    # The meeting lacks that association whichever way it was confirmed: the results must say so.
    assert outcomes[0] == Outcome(RowStatus.CREATED, meeting_id(0), attempts=1, note=f"{skipped}; {LOST}")


def test_search_match_needs_the_exact_title(harness: Harness) -> None:
    job = make_job(0)
    moved = harness.hubspot.seed(f"{TITLE} (moved)", job.request.start_ms)
    harness.hubspot.seed(TITLE.upper(), job.request.start_ms)
    harness.hubspot.script(TITLE, Drop(httpx.ReadTimeout))
    outcomes = harness.send([job])
    assert moved == meeting_id(0)
    assert outcomes[0] == Outcome(RowStatus.CREATED, meeting_id(2), None, 200, "corr-200", attempts=2)
    assert len(harness.hubspot.creates) == 2


def test_search_match_needs_the_same_owner(harness: Harness) -> None:
    job = make_job(0)
    harness.hubspot.seed(TITLE, job.request.start_ms, owner_id="8100099")
    harness.hubspot.script(TITLE, Drop(httpx.ReadTimeout))
    outcomes = harness.send([job])
    assert outcomes[0].meeting_id == meeting_id(1)
    assert len(harness.hubspot.creates) == 2


def test_row_whose_search_keeps_failing_stays_in_doubt(harness: Harness) -> None:
    harness.hubspot.script(TITLE, Drop(httpx.ReadTimeout, created=True))
    harness.hubspot.script_search(UNAVAILABLE, UNAVAILABLE, UNAVAILABLE)
    outcomes = harness.send([make_job(0)])
    assert outcomes[0] == Outcome(RowStatus.FAILED, error=UNKNOWN, attempts=1)
    assert len(harness.hubspot.creates) == 1  # never resent while HubSpot may have it
    assert len(harness.hubspot.searches) == 3  # the client's read retries
    assert harness.state("key-0") == ("in_doubt", None, 1, TIMED_OUT)


def test_row_whose_create_keeps_timing_out_stops_at_max_attempts_in_doubt(harness: Harness) -> None:
    harness.hubspot.script(TITLE, *[Drop(httpx.ReadTimeout)] * 5)
    outcomes = harness.send([make_job(0)], max_attempts=3)
    assert outcomes[0] == Outcome(RowStatus.FAILED, error=UNKNOWN, attempts=3)
    assert len(harness.hubspot.creates) == 3
    assert len(harness.hubspot.searches) == 3  # one search before each resend, and one after the last
    assert harness.state("key-0") == ("in_doubt", None, 3, TIMED_OUT)


@pytest.mark.parametrize(
    "reply",
    [Reply(200, text="<html>upstream answered</html>"), Reply(200, {"createdAt": "2026-11-25T03:50:00Z"})],
    ids=["not-json", "no-id"],
)
def test_success_answer_without_a_readable_id_is_searched_for_not_resent(
    harness: Harness, reply: Reply
) -> None:
    # HubSpot said 200: the meeting exists. Only its id is unreadable, so the row is in doubt: never
    # resent as if HubSpot had been unavailable, and no KeyError ends the run.
    harness.hubspot.script(TITLE, reply)
    outcomes = harness.send([make_job(0)])
    assert len(harness.hubspot.creates) == 1
    assert outcomes[0] == Outcome(RowStatus.CREATED, meeting_id(0), attempts=1, note=LOST)
    assert harness.state("key-0") == ("created", meeting_id(0), 1, None)


def test_search_waits_for_the_index_lag_counted_from_the_lost_attempt(harness: Harness) -> None:
    now = [1000.0]
    waits: list[tuple[float, int]] = []  # (seconds, searches made before the wait)

    async def sleep(seconds: float) -> None:
        waits.append((seconds, len(harness.hubspot.searches)))
        now[0] += seconds
        await _real_sleep(0)

    def advance_on_second_row(title: str) -> None:
        if title == "Second":
            now[0] += 12.0  # the second row's create takes 12 s of the 30 s lag

    harness.hubspot.on_create = advance_on_second_row
    harness.hubspot.script("First", Drop(httpx.ReadTimeout, created=True))
    outcomes = harness.send(titled("First", "Second"), search_lag_s=30.0, clock=lambda: now[0], sleep=sleep)
    assert waits == [(18.0, 0)]
    assert outcomes[0] == Outcome(RowStatus.CREATED, meeting_id(0), attempts=1, note=LOST)
    assert len(harness.hubspot.searches) == 1


# --- what earlier runs left in the ledger ---


def test_row_the_ledger_has_created_is_skipped_without_a_request(harness: Harness) -> None:
    harness.ledger.mark_sending("key-0", OWNER_ID, make_job(0).request.start_ms, TITLE, "run-1")
    harness.ledger.mark_created("key-0", "55500001")
    outcomes = harness.send([make_job(0)])
    assert outcomes == {0: Outcome(RowStatus.SKIPPED, "55500001", attempts=0)}
    assert harness.reported == [(0, outcomes[0])]
    assert harness.hubspot.creates == []
    assert harness.hubspot.searches == []


def test_sending_row_of_an_earlier_run_found_in_hubspot_is_skipped(harness: Harness) -> None:
    job = make_job(0)
    harness.ledger.mark_sending("key-0", OWNER_ID, job.request.start_ms, TITLE, "run-1")  # then killed
    harness.hubspot.seed(TITLE, job.request.start_ms)
    outcomes = harness.send([job])
    assert outcomes == {0: Outcome(RowStatus.SKIPPED, meeting_id(0), attempts=0, note=LOST)}
    assert harness.hubspot.creates == []
    assert len(harness.hubspot.searches) == 1
    assert harness.state("key-0") == ("created", meeting_id(0), 1, None)


@pytest.mark.parametrize("left", ["sending", "in_doubt"])
def test_row_in_doubt_from_an_earlier_run_not_in_hubspot_is_searched_then_sent(
    harness: Harness, left: str
) -> None:
    job = make_job(0)
    harness.ledger.mark_sending("key-0", OWNER_ID, job.request.start_ms, TITLE, "run-1")
    if left == "in_doubt":
        harness.ledger.mark_in_doubt("key-0", "no answer (ReadTimeout)")
    outcomes = harness.send([job])
    assert outcomes == {0: Outcome(RowStatus.CREATED, meeting_id(0), None, 200, "corr-200", attempts=1)}
    assert len(harness.hubspot.searches) == 1
    assert harness.hubspot.creates == [job.request.body]
    assert harness.state("key-0") == ("created", meeting_id(0), 2, None)


def test_row_that_failed_in_an_earlier_run_is_sent_without_a_search(harness: Harness) -> None:
    job = make_job(0)
    harness.ledger.mark_sending("key-0", OWNER_ID, job.request.start_ms, TITLE, "run-1")
    harness.ledger.mark_failed("key-0", "HubSpot 503: Service Unavailable")
    outcomes = harness.send([job])
    assert outcomes[0].status is RowStatus.CREATED
    assert harness.hubspot.searches == []
    assert len(harness.hubspot.creates) == 1


# --- stopping the run ---


def test_daily_cap_stops_the_run_and_leaves_every_unsent_row_not_sent(harness: Harness) -> None:
    harness.hubspot.script("Second", rate_limited("DAILY"))
    outcomes = harness.send(titled("First", "Second", "Third", "Fourth"))
    daily = "HubSpot 429 RATE_LIMIT: You have reached your daily limit."
    assert outcomes == {
        0: Outcome(RowStatus.CREATED, meeting_id(0), None, 200, "corr-200", attempts=1),
        1: Outcome(
            RowStatus.NOT_SENT,
            error=f"{DAILY_STOP} ({daily})",
            http_status=429,
            correlation_id="corr-429-daily",
            attempts=1,
        ),
        2: Outcome(RowStatus.NOT_SENT, error=DAILY_STOP, attempts=0),
        3: Outcome(RowStatus.NOT_SENT, error=DAILY_STOP, attempts=0),
    }
    assert harness.hubspot.titles() == ["First", "Second"]
    assert harness.retry_sleeps == []
    assert harness.sender is not None and harness.sender.stop_reason == DAILY_STOP
    assert harness.state("key-1") == ("failed", None, 1, daily)  # certainly not created: next run sends it
    assert (harness.state("key-2"), harness.state("key-3")) == (None, None)


def test_refused_token_raises_auth_error_after_every_outcome_is_recorded(harness: Harness) -> None:
    harness.hubspot.script("First", EXPIRED)
    with pytest.raises(AuthError) as caught:
        harness.send(titled("First", "Second", "Third"))
    assert str(caught.value) == f"HubSpot refused the access token: {EXPIRED_MESSAGE}"
    assert dict(harness.reported) == {
        0: Outcome(
            RowStatus.NOT_SENT,
            error=f"HubSpot refused the access token ({EXPIRED_MESSAGE})",
            http_status=401,
            correlation_id="corr-401",  # no correlationId in the body: the header's
            attempts=1,
        ),
        1: Outcome(RowStatus.NOT_SENT, error="HubSpot refused the access token", attempts=0),
        2: Outcome(RowStatus.NOT_SENT, error="HubSpot refused the access token", attempts=0),
    }
    assert len(harness.hubspot.creates) == 1


def test_refused_token_during_the_search_raises_auth_error(harness: Harness) -> None:
    harness.hubspot.script(TITLE, Drop(httpx.ReadTimeout, created=True))
    harness.hubspot.script_search(EXPIRED)
    with pytest.raises(AuthError) as caught:
        harness.send([make_job(0)])
    assert str(caught.value) == f"HubSpot refused the access token: {EXPIRED_MESSAGE}"
    assert harness.reported == [(0, Outcome(RowStatus.FAILED, error=UNCHECKED, attempts=1))]
    assert harness.state("key-0") == ("in_doubt", None, 1, TIMED_OUT)


def test_stop_lets_the_row_in_flight_finish_and_sends_no_more(harness: Harness) -> None:
    harness.stop_on_create("Second", "stopped by SIGTERM")
    outcomes = harness.send(titled("First", "Second", "Third", "Fourth"))
    assert outcomes == {
        0: Outcome(RowStatus.CREATED, meeting_id(0), None, 200, "corr-200", attempts=1),
        1: Outcome(RowStatus.CREATED, meeting_id(1), None, 200, "corr-200", attempts=1),
        2: Outcome(RowStatus.NOT_SENT, error="stopped by SIGTERM", attempts=0),
        3: Outcome(RowStatus.NOT_SENT, error="stopped by SIGTERM", attempts=0),
    }
    assert harness.hubspot.titles() == ["First", "Second"]
    assert harness.state("key-2") is None


def test_stop_cuts_retries_short_and_the_row_is_not_sent(harness: Harness) -> None:
    """A stop (SIGTERM) while a row waits to retry a 503: it is not retried, and it was not created."""
    harness.hubspot.script(TITLE, UNAVAILABLE, UNAVAILABLE)
    harness.stop_on_create(TITLE, "stopped by SIGTERM")
    outcomes = harness.send([make_job(0)])
    assert outcomes[0].status is RowStatus.NOT_SENT
    assert outcomes[0].error == "stopped by SIGTERM (HubSpot 503: Service Unavailable)"
    assert len(harness.hubspot.creates) == 1
    assert harness.hubspot.meetings == []


def test_daily_remaining_zero_stops_before_the_next_request(harness: Harness) -> None:
    """X-HubSpot-RateLimit-Daily-Remaining: 0 means the next request would be refused: send no more."""
    outcomes = harness.send(titled("a", "b"), daily_remaining=lambda: 0)
    assert harness.hubspot.creates == []
    assert {o.status for o in outcomes.values()} == {RowStatus.NOT_SENT}
    assert {o.error for o in outcomes.values()} == {DAILY_STOP}


def test_rows_in_doubt_are_checked_five_to_a_search(harness: Harness) -> None:
    """HubSpot ORs up to five filter groups: twelve rows in doubt take three searches, each row still
    matched to its own meeting (owner, start and title)."""
    titles = [f"Meeting {i}" for i in range(12)]
    for title in titles:
        harness.hubspot.script(title, Drop(httpx.ReadTimeout, created=True))
    outcomes = harness.send(titled(*titles), concurrency=4)
    assert [len(search["filterGroups"]) for search in harness.hubspot.searches] == [5, 5, 2]
    assert len(harness.hubspot.creates) == 12
    by_title = {m.title: m.id for m in harness.hubspot.meetings}
    assert {outcomes[i].meeting_id for i in range(12)} == set(by_title.values())
    assert all(outcomes[i].meeting_id == by_title[title] for i, title in enumerate(titles))
    assert {outcomes[i].status for i in range(12)} == {RowStatus.CREATED}


def test_a_stop_during_the_search_lag_wakes_the_sender_at_once(harness: Harness) -> None:
    """Waiting out HubSpot's search lag is no work in flight: a signal must not wait 30 s for it."""
    harness.hubspot.script(TITLE, Drop(httpx.ReadTimeout, created=True))

    def stop_soon(title: str) -> None:
        asyncio.get_running_loop().call_later(0.05, harness.sender.stop, "stopped by SIGTERM")  # type: ignore[union-attr]

    harness.hubspot.on_create = stop_soon
    started = time.monotonic()
    outcomes = harness.send([make_job(0)], search_lag_s=30.0)
    assert time.monotonic() - started < 10
    assert outcomes[0].status is RowStatus.FAILED
    assert outcomes[0].error == UNKNOWN.replace(
        "its search did not settle it", "the run stopped before checking"
    )
    assert harness.hubspot.searches == []
    assert harness.state("key-0") == ("in_doubt", None, 1, TIMED_OUT)


def test_first_stop_reason_wins(harness: Harness) -> None:
    harness.stop_on_create("First", "stopped by SIGINT")
    harness.hubspot.script("First", rate_limited("DAILY"))
    outcomes = harness.send(titled("First", "Second"))
    assert harness.sender is not None and harness.sender.stop_reason == "stopped by SIGINT"
    assert outcomes[1] == Outcome(RowStatus.NOT_SENT, error="stopped by SIGINT", attempts=0)


def test_stop_leaves_rows_in_doubt_unsearched_and_failed(harness: Harness) -> None:
    harness.hubspot.script("First", Drop(httpx.ReadTimeout, created=True))
    harness.stop_on_create("Second", "stopped by SIGTERM")
    outcomes = harness.send(titled("First", "Second", "Third"))
    assert outcomes[0] == Outcome(RowStatus.FAILED, error=UNCHECKED, attempts=1)
    assert outcomes[2] == Outcome(RowStatus.NOT_SENT, error="stopped by SIGTERM", attempts=0)
    assert harness.hubspot.searches == []
    assert harness.state("key-0") == ("in_doubt", None, 1, TIMED_OUT)


# --- concurrency ---


@pytest.mark.parametrize(("concurrency", "rows", "expected"), [(1, 6, 1), (3, 12, 3), (8, 5, 5)])
def test_workers_never_have_more_creates_in_flight_than_the_concurrency(
    harness: Harness, concurrency: int, rows: int, expected: int
) -> None:
    jobs = titled(*(f"Meeting {i}" for i in range(rows)))
    outcomes = harness.send(jobs, concurrency=concurrency)
    assert harness.hubspot.most_in_flight == expected
    assert sorted(harness.hubspot.titles()) == sorted(f"Meeting {i}" for i in range(rows))
    assert {outcome.status for outcome in outcomes.values()} == {RowStatus.CREATED}
    assert sorted(index for index, _ in harness.reported) == list(range(rows))


def test_no_jobs_sends_nothing(harness: Harness) -> None:
    assert harness.send([]) == {}
    assert harness.hubspot.creates == []
