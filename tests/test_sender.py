"""The sender with a real HubSpotClient and a real Ledger, against a scripted HubSpot on httpx.MockTransport.

The fake HubSpot keeps the meetings it created (owner, start, end, title, location, body) and answers the
meetings search from them with the properties asked for, so a create whose answer was lost can be found
again exactly as in HubSpot, and `existing.match` has what it compares. Each create is answered by the next
step scripted for its title (a reply, which may or may not have created the meeting, or a dropped
connection before or after HubSpot created it); with no step left it creates the meeting and answers 200.
Retries cost no time: the client's sleep is a recorder. `search_lag_s` is 0 unless a test is about the lag;
those tests give the Sender a fake clock whose sleep moves it on, and the fake notes when each search came.
"""

from __future__ import annotations

import asyncio
import json
import sqlite3
import time
from collections import deque
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import closing
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from importer.errors import AuthError, StopRun
from importer.hubspot import CREATE_MEETING_PATH, HubSpotClient, RetryPolicy, ServerError
from importer.ledger import Ledger
from importer.mapper import ASSOCIATION_TYPE_IDS, CreateRequest
from importer.models import RowOutcome as Outcome
from importer.models import RowStatus
from importer.problems import ASSOCIATION_SKIPPED, Problem, Text
from importer.sender import FAILING_IN_A_ROW, Jobs, OutageWatch, Sender, SendJob

TOKEN = "pat-na1-test-token"
BASE_URL = "https://api.hubapi.test"
PORTAL = "62515"
SEARCH_PATH = "/crm/v3/objects/meetings/search"
OWNER_ID = "8100002"
ORGANIZER_USER_ID = 4242001  # the owner's userId: a different number from OWNER_ID, so a swap shows
START = datetime(2026, 12, 1, 10, 0, tzinfo=UTC)
TITLE = "Quarterly business review"
FIRST_ID = 71000001  # the fake's first meeting id
SKIPPED_CONTACT = Problem(
    ASSOCIATION_SKIPPED, "contact_emails", "a@example.com", {"what": Text("contact not found")}
)
NOTE = "contact not found (association skipped): a@example.com"
LOST = "found in HubSpot after an earlier attempt lost its answer"
NOTE_CODE, LOST_CODE = "ASSOCIATION_SKIPPED", "FOUND_AFTER_LOST_ANSWER"  # their `warning_code`s
TIMED_OUT = f"POST {CREATE_MEETING_PATH}: no answer (ReadTimeout)"  # the ledger's error for a lost answer
ANSWER_LOST = f"HubSpot's answer was lost ({TIMED_OUT})"
SEARCH_FAILED = "its search failed"
STOPPED = "the run stopped before it was settled"
DAILY_STOP = "HubSpot's daily request limit is reached"
REFUSED = "HubSpot refused the access token"
MATCH_PROPERTIES = [
    "hubspot_owner_id",
    "hs_meeting_title",
    "hs_meeting_start_time",
    "hs_meeting_end_time",
    "hs_meeting_location",
    "hs_meeting_body",
]
_real_sleep = asyncio.sleep


def unsettled(*why: str) -> str:
    """The error of a row left in doubt: why, then what the next run does about it."""
    reasons = "; ".join(why)
    return f"outcome unknown: {reasons}; the next run searches HubSpot before sending this row again"


@dataclass(frozen=True)
class Reply:
    """Answer with `status`; `body` (JSON) or `text` replaces the usual body. The meeting is created when
    `created`, by default when the status is 2xx (a 5xx may come from a gateway after HubSpot's commit)."""

    status: int = 200
    body: dict[str, Any] | list[Any] | None = None
    text: str | None = None
    retry_after: str | None = None
    created: bool | None = None


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
    end_ms: int
    location: str | None = None
    body: str | None = None
    links: frozenset[tuple[str, str]] = frozenset()  # (object type, id) it is associated with


def hubspot_error(status: int, message: str, **fields: Any) -> Reply:
    return Reply(status, {"status": "error", "message": message, **fields})


def rate_limited(policy: str, retry_after: str | None = None) -> Reply:
    reply = hubspot_error(
        429,
        f"You have reached your {policy.lower()} limit.",
        errorType="RATE_LIMIT",
        policyName=policy,
        correlationId=f"corr-429-{policy.lower()}",
    )
    return replace(reply, retry_after=retry_after)


UNAVAILABLE = hubspot_error(503, "Service Unavailable", correlationId="corr-503")
LOCKED = hubspot_error(423, "Locked", correlationId="corr-423")
MIGRATING = replace(hubspot_error(477, "Migration in progress", correlationId="corr-477"), retry_after="7")
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
NO_SCOPE = hubspot_error(
    403,
    "This app hasn't been granted all required scopes to make this call.",
    category="MISSING_SCOPES",
    correlationId="corr-403-scopes",
)
NO_SCOPE_MESSAGE = (
    "HubSpot 403 MISSING_SCOPES: This app hasn't been granted all required scopes to make this call."
)


class FakeClock:
    """The Sender's clock and sleep for tests about the search lag: a sleep moves the time on at once."""

    def __init__(self, now: float) -> None:
        self.now = now
        self.waits: list[float] = []
        self.on_sleep: Callable[[], None] = lambda: None  # called during each sleep, as a signal might

    def __call__(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.waits.append(seconds)
        self.now += seconds
        self.on_sleep()
        await _real_sleep(0)


class FakeHubSpot:
    """Creates meetings as scripted per title and answers the meetings search from what it has."""

    def __init__(self) -> None:
        self.meetings: list[Stored] = []
        self.creates: list[dict[str, Any]] = []  # bodies of the create requests, in arrival order
        self.create_params: list[dict[str, str]] = []
        self.searches: list[dict[str, Any]] = []
        self.events: list[str] = []  # "create <title>" and "search", in arrival order
        self.search_times: list[float] = []  # `clock()` at each search
        self.clock: Callable[[], float] = time.monotonic
        self.in_flight = 0
        self.most_in_flight = 0
        self.on_create: Callable[[str], None] = lambda title: None
        self.on_search: Callable[[int], None] = lambda count: None  # told how many searches came so far
        self._create_steps: dict[str, deque[Step]] = {}
        self._search_steps: deque[Reply] = deque()

    def script(self, title: str, *steps: Step) -> None:
        """How the next creates of `title` are answered, one step each."""
        self._create_steps[title] = deque(steps)

    def script_search(self, *steps: Reply) -> None:
        """The next searches' answers, one step each; then searches answer from the stored meetings."""
        self._search_steps = deque(steps)

    def seed(
        self,
        title: str,
        start_ms: int,
        owner_id: str = OWNER_ID,
        *,
        minutes: int = 30,
        location: str | None = None,
        body: str | None = None,
        contacts: tuple[str, ...] = (),
    ) -> str:
        """A meeting HubSpot already has (made by an earlier run, or by someone else)."""
        links = frozenset(("contacts", c) for c in contacts)
        stored = Stored(
            self._next_id(), owner_id, start_ms, title, start_ms + minutes * 60_000, location, body, links
        )
        self.meetings.append(stored)
        return stored.id

    def titles(self) -> list[str]:
        return [body["properties"]["hs_meeting_title"] for body in self.creates]

    async def handle(self, request: httpx.Request) -> httpx.Response:
        assert request.headers["authorization"] == f"Bearer {TOKEN}"
        if request.method == "GET":
            return self._read(request)
        body = json.loads(request.content)
        if request.url.path == SEARCH_PATH:
            self.searches.append(body)
            self.events.append("search")
            self.search_times.append(self.clock())
            self.on_search(len(self.searches))
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
            self.events.append(f"create {title}")
            self.on_create(title)
            steps = self._create_steps.get(title)
            step = steps.popleft() if steps else Reply()
            if isinstance(step, Drop):
                created = step.created
            else:
                created = step.status < 300 if step.created is None else step.created
            stored = self._store(properties, body["associations"]) if created else None
            if isinstance(step, Drop):
                raise step.error(f"simulated {step.error.__name__}", request=request)
            return _answer(step, {"id": stored.id, "properties": properties} if stored else None)
        finally:
            self.in_flight -= 1

    def _search(self, body: dict[str, Any]) -> httpx.Response:
        if self._search_steps:
            return _answer(self._search_steps.popleft(), None)
        assert len(body["filterGroups"]) <= 5  # HubSpot's limit on ORed groups
        wanted = []
        for group in body["filterGroups"]:
            assert {f["operator"] for f in group["filters"]} == {"EQ"}
            wanted.append({f["propertyName"]: f["value"] for f in group["filters"]})
        results = [
            {"id": m.id, "properties": _properties(m, body["properties"])}
            for m in self.meetings
            if any(
                m.owner_id == w["hubspot_owner_id"] and str(m.start_ms) == w["hs_meeting_start_time"]
                for w in wanted
            )
        ]
        return httpx.Response(200, json={"total": len(results), "results": results})

    def _read(self, request: httpx.Request) -> httpx.Response:
        """`GET /crm/v3/objects/meetings/{id}?associations=...`: the meeting's links, by object type."""
        meeting_id = request.url.path.rsplit("/", 1)[-1]
        stored = next(m for m in self.meetings if m.id == meeting_id)
        self.events.append(f"read {meeting_id}")
        wanted = request.url.params["associations"].split(",")
        associations: dict[str, Any] = {}
        for kind, object_id in sorted(stored.links):
            if kind in wanted:
                associations.setdefault(kind, {"results": []})["results"].append({"id": object_id})
        return httpx.Response(200, json={"id": meeting_id, "properties": {}, "associations": associations})

    def _store(self, properties: dict[str, Any], associations: list[dict[str, Any]]) -> Stored:
        stored = Stored(
            self._next_id(),
            properties["hubspot_owner_id"],
            _epoch_ms(properties["hs_meeting_start_time"]),
            properties["hs_meeting_title"],
            _epoch_ms(properties["hs_meeting_end_time"]),
            properties.get("hs_meeting_location"),
            properties.get("hs_meeting_body"),
            frozenset(_links(associations)),
        )
        self.meetings.append(stored)
        return stored

    def _next_id(self) -> str:
        return str(FIRST_ID + len(self.meetings))


def _links(associations: list[dict[str, Any]]) -> list[tuple[str, str]]:
    kinds = {type_id: kind for kind, type_id in ASSOCIATION_TYPE_IDS.items()}
    return [(kinds[a["types"][0]["associationTypeId"]], str(a["to"]["id"])) for a in associations]


def _properties(meeting: Stored, asked: list[str]) -> dict[str, Any]:
    """What HubSpot's search returns: the properties asked for (null when unset), and the object id."""
    values = {
        "hubspot_owner_id": meeting.owner_id,
        "hs_meeting_title": meeting.title,
        "hs_meeting_start_time": _iso_z(meeting.start_ms),
        "hs_meeting_end_time": _iso_z(meeting.end_ms),
        "hs_meeting_location": meeting.location,
        "hs_meeting_body": meeting.body,
    }
    return {**{name: values.get(name) for name in asked}, "hs_object_id": meeting.id}


def _answer(step: Reply, created: dict[str, Any] | None) -> httpx.Response:
    headers = {"X-HubSpot-Correlation-Id": f"corr-{step.status}"}
    if step.retry_after is not None:
        headers["Retry-After"] = step.retry_after
    if step.text is not None:
        return httpx.Response(step.status, text=step.text, headers=headers)
    return httpx.Response(step.status, json=step.body if step.body is not None else created, headers=headers)


def _epoch_ms(iso: str) -> int:
    return round(datetime.fromisoformat(iso).timestamp() * 1000)


def _iso_z(epoch_ms: int) -> str:
    return datetime.fromtimestamp(epoch_ms / 1000, UTC).strftime("%Y-%m-%dT%H:%M:%S.000Z")


def make_job(
    index: int,
    title: str = TITLE,
    notes: tuple[Problem, ...] = (),
    *,
    location: str | None = None,
    body: str | None = None,
    contacts: tuple[str, ...] = (),
    key: str | None = None,
) -> SendJob:
    """Row `index`: a 30-minute meeting starting `index` hours after START (linked to `contacts`), keyed
    `key-<index>` unless `key` is given."""
    start = START + timedelta(hours=index)
    iso = start.strftime("%Y-%m-%dT%H:%M:%SZ")
    end = (start + timedelta(minutes=30)).strftime("%Y-%m-%dT%H:%M:%SZ")
    properties: dict[str, Any] = {
        "hs_meeting_title": title,
        "hs_meeting_start_time": iso,
        "hs_meeting_end_time": end,
        "hs_timestamp": iso,
        "hs_meeting_outcome": "SCHEDULED",
        "hubspot_owner_id": OWNER_ID,
    }
    if location is not None:
        properties["hs_meeting_location"] = location
    if body is not None:
        properties["hs_meeting_body"] = body
    request_body: dict[str, Any] = {
        "properties": properties,
        "timezone": "Asia/Tokyo",
        "emailReminderSchedule": {"reminders": [], "shouldIncludeInviteDescription": False},
        "associations": [
            {"to": {"id": c}, "types": [{"associationCategory": "HUBSPOT_DEFINED", "associationTypeId": 200}]}
            for c in contacts
        ],
    }
    start_ms = round(start.timestamp() * 1000)
    return SendJob(
        index,
        key or f"key-{index}",
        CreateRequest(ORGANIZER_USER_ID, request_body, OWNER_ID, start_ms, title, notes),
    )


def titled(*titles: str) -> list[SendJob]:
    return [make_job(index, title) for index, title in enumerate(titles)]


class Harness:
    """A fake HubSpot, a ledger in tmp_path, and a Sender run over them."""

    def __init__(self, ledger_path: Path) -> None:
        self.hubspot = FakeHubSpot()
        self.ledger = Ledger(ledger_path, PORTAL)
        self.reported: list[tuple[int, Outcome]] = []
        self.refuse_outcomes: Exception | None = None  # raised once, when next told an outcome
        self.retry_sleeps: list[float] = []
        self.sender: Sender | None = None

    def send(
        self,
        jobs: Jobs[SendJob],
        *,
        concurrency: int = 1,
        max_attempts: int = 3,
        search_lag_s: float = 0.0,
        clock: FakeClock | None = None,
        daily_remaining: Callable[[], int | None] = lambda: None,
    ) -> dict[int, Outcome]:
        """Run a Sender over `jobs`: on the wall clock and real pauses, or on `clock` (the fake notes
        the clock at each search)."""
        if clock is not None:
            self.hubspot.clock = clock

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
                    on_outcome=self._told,
                    daily_remaining=daily_remaining,
                    clock=clock or time.time,
                    sleep=clock.sleep if clock else None,
                )
                await self.sender.send_all(jobs)
                return dict(self.reported[told:])  # a row's last outcome counts

        told = len(self.reported)
        return asyncio.run(main())

    def _told(self, index: int, outcome: Outcome) -> None:
        self.reported.append((index, outcome))
        refusal, self.refuse_outcomes = self.refuse_outcomes, None
        if refusal is not None:
            raise refusal  # a results checkpoint that failed (a full disk): the next one may not come

    def stop(self, reason: str) -> None:
        """Stop the sender as a signal would."""
        assert self.sender is not None
        self.sender.stop(reason)

    def stop_on_create(self, title: str, reason: str) -> None:
        """Stop while the create of `title` is in flight."""

        def hook(created_title: str) -> None:
            if created_title == title:
                self.stop(reason)

        self.hubspot.on_create = hook

    def state(self, row_key: str) -> tuple[str, str | None, int, str | None] | None:
        """The ledger's (state, meeting id, attempts, error) for `row_key`; None if it has no entry."""
        entry = self.ledger.entries([row_key]).get(row_key)
        return None if entry is None else (entry.state, entry.meeting_id, entry.attempts, entry.error)

    def leave_in_doubt(self, job: SendJob, left: str, error: str = TIMED_OUT) -> None:
        """What an earlier run left for `job`: `sending` (killed mid-request) or `in_doubt`."""
        request = job.request
        self.ledger.mark_sending(job.row_key, request.owner_id, request.start_ms, request.title, "run-1")
        if left == "in_doubt":
            self.ledger.mark_in_doubt(job.row_key, error)

    def hold(self, row_key: str, meeting_id: str) -> None:
        """Another row of the ledger is created with `meeting_id`."""
        self.ledger.record_created(row_key, meeting_id, "run-1")

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


def exact_search(*jobs: SendJob) -> dict[str, Any]:
    """The search `find_exact` sends for these rows: owner and exact start each, every compared property."""
    groups = [
        {
            "filters": [
                {"propertyName": "hubspot_owner_id", "operator": "EQ", "value": job.request.owner_id},
                {
                    "propertyName": "hs_meeting_start_time",
                    "operator": "EQ",
                    "value": str(job.request.start_ms),
                },
            ]
        }
        for job in jobs
    ]
    return {"filterGroups": groups, "properties": MATCH_PROPERTIES, "limit": 200}


# --- sent once, answered ---


def test_created_row_records_id_status_and_correlation_id(harness: Harness) -> None:
    job = make_job(0)
    outcomes = harness.send([job])
    assert outcomes == {
        0: Outcome(RowStatus.CREATED, meeting_id(0), None, 200, "corr-200", attempts=1, warning=None)
    }
    assert harness.reported == [(0, outcomes[0])]
    assert harness.hubspot.creates == [job.request.body]
    assert harness.hubspot.create_params == [{"organizerUserId": str(ORGANIZER_USER_ID)}]
    assert harness.hubspot.searches == []
    assert harness.state("key-0") == ("created", meeting_id(0), 1, None)


def test_created_row_with_201_keeps_the_mapper_notes(harness: Harness) -> None:
    harness.hubspot.script(TITLE, Reply(201))
    outcomes = harness.send([make_job(0, notes=(SKIPPED_CONTACT,))])
    assert outcomes[0] == Outcome(
        RowStatus.CREATED,
        meeting_id(0),
        None,
        201,
        "corr-201",
        attempts=1,
        warning=NOTE,
        warning_code=NOTE_CODE,
    )


# --- refusals that prove nothing was created: retried at once, with the client's backoff ---


@pytest.mark.parametrize(
    ("first", "slept"),
    [
        (rate_limited("TEN_SECONDLY_ROLLING"), None),
        (rate_limited("TEN_SECONDLY_ROLLING", retry_after="3"), 3.0),
        (LOCKED, 2.0),  # HubSpot asks for at least 2 s after a 423
        (MIGRATING, 7.0),  # its Retry-After
        (Drop(httpx.ConnectError), None),
        (Drop(httpx.ConnectTimeout), None),
        (Drop(httpx.ProxyError), None),
    ],
    ids=[
        "429-window",
        "429-retry-after",
        "423",
        "477-retry-after",
        "connect-error",
        "connect-timeout",
        "proxy",
    ],
)
def test_refusal_that_proves_nothing_was_created_is_retried_at_once(
    harness: Harness, first: Step, slept: float | None
) -> None:
    harness.hubspot.script(TITLE, first)
    outcomes = harness.send([make_job(0)])
    assert outcomes[0] == Outcome(RowStatus.CREATED, meeting_id(0), None, 200, "corr-200", attempts=2)
    assert len(harness.hubspot.creates) == 2
    assert len(harness.retry_sleeps) == 1
    if slept is None:
        assert 0 <= harness.retry_sleeps[0] <= 0.001  # the policy's jittered backoff (base_s)
    else:
        assert harness.retry_sleeps == [slept]
    assert harness.hubspot.searches == []  # HubSpot certainly did not create it: nothing to look for
    assert harness.state("key-0") == ("created", meeting_id(0), 1, None)


@pytest.mark.parametrize(
    ("refusal", "outcome"),
    [
        (
            LOCKED,
            Outcome(
                RowStatus.FAILED,
                None,
                "HubSpot 423: Locked",
                423,
                "corr-423",
                attempts=3,
                error_code="HUBSPOT_UNAVAILABLE",
            ),
        ),
        (
            Drop(httpx.ConnectError),
            Outcome(
                RowStatus.FAILED,
                error=f"POST {CREATE_MEETING_PATH}: could not connect (ConnectError)",
                attempts=3,
                error_code="HUBSPOT_UNAVAILABLE",
            ),
        ),
    ],
    ids=["423", "connect-error"],
)
def test_refusals_until_the_retry_policy_gives_up_fail_the_row(
    harness: Harness, refusal: Step, outcome: Outcome
) -> None:
    harness.hubspot.script(TITLE, refusal, refusal, refusal)
    outcomes = harness.send([make_job(0)])
    assert outcomes[0] == outcome
    assert len(harness.hubspot.creates) == 3
    assert len(harness.retry_sleeps) == 2
    assert harness.hubspot.searches == []
    assert harness.state("key-0") == ("failed", None, 1, outcome.error)


def test_rejected_row_fails_with_hubspots_message_and_is_not_retried(harness: Harness) -> None:
    harness.hubspot.script(TITLE, INVALID)
    outcomes = harness.send([make_job(0)])
    assert outcomes[0] == Outcome(
        RowStatus.FAILED,
        error=INVALID_MESSAGE,
        error_code="HUBSPOT_REFUSED",
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


def test_403_on_one_create_fails_only_that_row(harness: Harness) -> None:
    """A 403 on a create is that row's (a scope one of its associations needs): the run goes on."""
    harness.hubspot.script("Bad", NO_SCOPE)
    outcomes = harness.send(titled("Good 1", "Bad", "Good 2"))
    assert outcomes == {
        0: Outcome(RowStatus.CREATED, meeting_id(0), None, 200, "corr-200", attempts=1),
        1: Outcome(
            RowStatus.FAILED,
            None,
            NO_SCOPE_MESSAGE,
            403,
            "corr-403-scopes",
            attempts=1,
            error_code="HUBSPOT_REFUSED",
        ),
        2: Outcome(RowStatus.CREATED, meeting_id(1), None, 200, "corr-200", attempts=1),
    }
    assert harness.hubspot.titles() == ["Good 1", "Bad", "Good 2"]
    assert harness.retry_sleeps == []
    assert harness.sender is not None and harness.sender.stop_reason is None
    assert harness.state("key-1") == ("failed", None, 1, NO_SCOPE_MESSAGE)


# --- answers lost: set aside in doubt, searched for, never resent blindly ---

LOST_ANSWERS = [
    Drop(httpx.ReadTimeout),
    Drop(httpx.WriteTimeout),
    Drop(httpx.ReadError),
    Drop(httpx.RemoteProtocolError),
    hubspot_error(500, "Internal Server Error"),
    hubspot_error(502, "Bad Gateway"),
    UNAVAILABLE,
    hubspot_error(504, "Gateway Timeout"),
]
LOST_IDS = ["read-timeout", "write-timeout", "reset", "cut-body", "500", "502", "503", "504"]


@pytest.mark.parametrize("lost", LOST_ANSWERS, ids=LOST_IDS)
def test_lost_answer_of_a_created_meeting_is_found_by_search_not_resent(harness: Harness, lost: Step) -> None:
    harness.hubspot.script(TITLE, replace(lost, created=True))
    job = make_job(0)
    outcomes = harness.send([job])
    assert outcomes[0] == Outcome(
        RowStatus.CREATED, meeting_id(0), attempts=1, warning=LOST, warning_code=LOST_CODE
    )
    assert len(harness.hubspot.creates) == 1
    assert harness.retry_sleeps == []  # not one of the errors the client retries
    assert harness.hubspot.searches == [exact_search(job)]
    assert harness.state("key-0") == ("created", meeting_id(0), 1, None)


@pytest.mark.parametrize("lost", LOST_ANSWERS, ids=LOST_IDS)
def test_lost_answer_of_a_meeting_never_created_is_sent_again_after_three_searches(
    harness: Harness, lost: Step
) -> None:
    harness.hubspot.script(TITLE, lost)
    job = make_job(0)
    outcomes = harness.send([job])
    assert outcomes[0] == Outcome(RowStatus.CREATED, meeting_id(0), None, 200, "corr-200", attempts=2)
    # A negative search is no proof (the index may lag): all three checks come before the resend.
    assert harness.hubspot.events == [f"create {TITLE}", "search", "search", "search", f"create {TITLE}"]
    assert harness.hubspot.searches == [exact_search(job)] * 3
    assert harness.state("key-0") == ("created", meeting_id(0), 2, None)


def test_row_is_marked_in_doubt_in_the_ledger_while_it_is_searched_for(harness: Harness) -> None:
    harness.hubspot.script(TITLE, Drop(httpx.ReadTimeout))
    states: list[tuple[str, str | None, int, str | None] | None] = []
    harness.hubspot.on_search = lambda count: states.append(harness.state("key-0"))
    harness.send([make_job(0)])
    assert states == [("in_doubt", None, 1, TIMED_OUT)] * 3


@pytest.mark.parametrize(
    "reply",
    [
        Reply(200, text="<html>upstream answered</html>"),
        Reply(200, {"createdAt": "2026-11-25T03:50:00Z"}),
        Reply(201, ["71000001"]),
        Reply(200, {"id": None}),
    ],
    ids=["not-json", "no-id", "not-an-object", "null-id"],
)
def test_success_answer_without_a_readable_id_is_searched_for_not_resent(
    harness: Harness, reply: Reply
) -> None:
    # HubSpot said 2xx but we cannot tell which meeting: in doubt, never resent as if HubSpot had been
    # unavailable, and no KeyError ends the run.
    harness.hubspot.script(TITLE, reply)
    outcomes = harness.send([make_job(0)])
    assert outcomes[0] == Outcome(
        RowStatus.CREATED, meeting_id(0), attempts=1, warning=LOST, warning_code=LOST_CODE
    )
    assert len(harness.hubspot.creates) == 1
    assert len(harness.hubspot.searches) == 1
    assert harness.state("key-0") == ("created", meeting_id(0), 1, None)


def test_adopted_meeting_keeps_the_mapper_notes_before_its_own(harness: Harness) -> None:
    harness.hubspot.script(TITLE, Drop(httpx.ReadTimeout, created=True))
    outcomes = harness.send([make_job(0, notes=(SKIPPED_CONTACT,))])
    # The meeting lacks that association whichever way it was confirmed: the results must say so.
    assert outcomes[0] == Outcome(
        RowStatus.CREATED,
        meeting_id(0),
        attempts=1,
        warning=f"{NOTE}; {LOST}",
        warning_code=f"{NOTE_CODE};{LOST_CODE}",
    )


def test_rows_in_doubt_are_checked_five_to_a_search(harness: Harness) -> None:
    """HubSpot ORs up to five filter groups: twelve rows in doubt take three searches, each row still
    matched to its own meeting (owner, start and title)."""
    titles = [f"Meeting {i}" for i in range(12)]
    for title in titles:
        harness.hubspot.script(title, Drop(httpx.ReadTimeout, created=True))
    jobs = titled(*titles)
    outcomes = harness.send(jobs, concurrency=4)
    assert [len(search["filterGroups"]) for search in harness.hubspot.searches] == [5, 5, 2]
    assert sorted(g for s in harness.hubspot.searches for g in map(json.dumps, s["filterGroups"])) == sorted(
        json.dumps(exact_search(job)["filterGroups"][0]) for job in jobs
    )
    assert len(harness.hubspot.creates) == 12
    by_title = {m.title: m.id for m in harness.hubspot.meetings}
    assert outcomes == {
        i: Outcome(RowStatus.CREATED, by_title[title], attempts=1, warning=LOST, warning_code=LOST_CODE)
        for i, title in enumerate(titles)
    }


# --- adoption: only a meeting that is surely this row's ---


def test_search_match_needs_the_exact_title(harness: Harness) -> None:
    job = make_job(0)
    harness.hubspot.seed(f"{TITLE} (moved)", job.request.start_ms)
    harness.hubspot.seed(TITLE.upper(), job.request.start_ms)
    harness.hubspot.script(TITLE, Drop(httpx.ReadTimeout))
    outcomes = harness.send([job])
    assert outcomes[0] == Outcome(RowStatus.CREATED, meeting_id(2), None, 200, "corr-200", attempts=2)
    assert len(harness.hubspot.creates) == 2
    assert len(harness.hubspot.searches) == 3


def test_search_match_needs_the_same_owner(harness: Harness) -> None:
    job = make_job(0)
    harness.hubspot.seed(TITLE, job.request.start_ms, owner_id="8100099")
    harness.hubspot.script(TITLE, Drop(httpx.ReadTimeout))
    outcomes = harness.send([job])
    assert outcomes[0] == Outcome(RowStatus.CREATED, meeting_id(1), None, 200, "corr-200", attempts=2)
    assert len(harness.hubspot.creates) == 2


@pytest.mark.parametrize(
    ("row", "seeded"),
    [
        ({}, {"minutes": 45}),
        ({"body": "Agenda: renewal"}, {"body": "Agenda: expansion"}),
        ({"body": "Agenda: renewal"}, {}),
        ({"location": "Room 4"}, {"location": "Room 5"}),
    ],
    ids=["other-end", "other-body", "no-body", "other-location"],
)
def test_meeting_with_the_same_owner_start_and_title_but_not_the_rest_is_never_adopted(
    harness: Harness, row: dict[str, Any], seeded: dict[str, Any]
) -> None:
    """Say a rep made it by hand: it is someone else's meeting. The row is sent after the checks."""
    job = make_job(0, **row)
    harness.hubspot.seed(TITLE, job.request.start_ms, **seeded)
    harness.hubspot.script(TITLE, Drop(httpx.ReadTimeout))
    outcomes = harness.send([job])
    assert outcomes[0] == Outcome(RowStatus.CREATED, meeting_id(1), None, 200, "corr-200", attempts=2)
    assert harness.hubspot.events == [f"create {TITLE}", "search", "search", "search", f"create {TITLE}"]
    assert harness.state("key-0") == ("created", meeting_id(1), 2, None)


@pytest.mark.parametrize(
    ("row", "seeded"),
    [
        (
            {"body": "Agenda:\n  renewal", "location": "Room 4"},
            {"body": "Agenda: renewal", "location": " Room 4 "},
        ),
        ({}, {"body": "Notes a rep added", "location": "Room 9"}),
    ],
    ids=["whitespace-folded", "not-given-by-the-row"],
)
def test_meeting_that_agrees_in_everything_compared_is_adopted(
    harness: Harness, row: dict[str, Any], seeded: dict[str, Any]
) -> None:
    job = make_job(0, **row)
    harness.hubspot.seed(TITLE, job.request.start_ms, **seeded)
    harness.hubspot.script(TITLE, Drop(httpx.ReadTimeout))
    outcomes = harness.send([job])
    assert outcomes[0] == Outcome(
        RowStatus.CREATED, meeting_id(0), attempts=1, warning=LOST, warning_code=LOST_CODE
    )
    assert len(harness.hubspot.creates) == 1
    assert len(harness.hubspot.searches) == 1
    assert harness.state("key-0") == ("created", meeting_id(0), 1, None)


def test_meeting_another_row_holds_in_the_ledger_is_not_adopted(harness: Harness) -> None:
    job = make_job(0)
    held = harness.hubspot.seed(TITLE, job.request.start_ms)
    harness.hold("key-other", held)
    harness.hubspot.script(TITLE, Drop(httpx.ReadTimeout))
    outcomes = harness.send([job])
    assert outcomes[0] == Outcome(RowStatus.CREATED, meeting_id(1), None, 200, "corr-200", attempts=2)
    assert len(harness.hubspot.searches) == 3
    assert harness.ledger.holders([held, meeting_id(1)]) == {held: {"key-other"}, meeting_id(1): {"key-0"}}


def test_of_two_candidates_the_one_no_other_row_holds_is_adopted(harness: Harness) -> None:
    job = make_job(0)
    held = harness.hubspot.seed(TITLE, job.request.start_ms)
    harness.hold("key-other", held)
    harness.hubspot.script(TITLE, Drop(httpx.ReadTimeout, created=True))
    outcomes = harness.send([job])
    assert outcomes[0] == Outcome(
        RowStatus.CREATED, meeting_id(1), attempts=1, warning=LOST, warning_code=LOST_CODE
    )
    assert len(harness.hubspot.searches) == 1


def test_one_meeting_is_adopted_by_one_of_two_rows_in_doubt_it_could_be(harness: Harness) -> None:
    """Two rows alike in everything compared (they differ in, say, contacts), both answers lost, one
    meeting created: the first row adopts it; the second is sent again after its checks."""
    first = make_job(0)
    second = replace(first, index=1, row_key="key-0-twin")
    harness.hubspot.script(TITLE, Drop(httpx.ReadTimeout, created=True), Drop(httpx.ReadTimeout))
    outcomes = harness.send([first, second])
    assert outcomes == {
        0: Outcome(RowStatus.CREATED, meeting_id(0), attempts=1, warning=LOST, warning_code=LOST_CODE),
        1: Outcome(RowStatus.CREATED, meeting_id(1), None, 200, "corr-200", attempts=2),
    }
    assert harness.hubspot.searches == [
        exact_search(first, second),
        exact_search(second),
        exact_search(second),
    ]
    assert harness.state("key-0-twin") == ("created", meeting_id(1), 2, None)


def test_several_meetings_that_could_be_the_rows_leave_it_in_doubt(harness: Harness) -> None:
    job = make_job(0)
    harness.hubspot.seed(TITLE, job.request.start_ms)
    harness.hubspot.script(TITLE, Drop(httpx.ReadTimeout, created=True))
    outcomes = harness.send([job])
    several = f"HubSpot has several meetings that could be this row's: {meeting_id(0)}, {meeting_id(1)}; not guessed"
    assert outcomes[0] == Outcome(
        RowStatus.IN_DOUBT, error_code="OUTCOME_UNKNOWN", error=unsettled(several), attempts=1
    )
    assert len(harness.hubspot.creates) == 1
    assert len(harness.hubspot.searches) == 1  # settled by the first check: nothing more to learn
    assert harness.state("key-0") == ("in_doubt", None, 1, TIMED_OUT)


def test_two_rows_in_doubt_that_differ_only_in_contacts_each_adopt_their_own(harness: Harness) -> None:
    """Search shows no associations: both meetings match both rows, so their contacts are read."""
    first = make_job(0, contacts=("7100001",))
    second = replace(make_job(0, contacts=("7100002",), key="key-1"), index=1)
    harness.hubspot.script(
        TITLE, Drop(httpx.ReadTimeout, created=True), Drop(httpx.ReadTimeout, created=True)
    )
    outcomes = harness.send([first, second])
    assert {outcomes[0].meeting_id, outcomes[1].meeting_id} == {meeting_id(0), meeting_id(1)}
    assert all(o.status is RowStatus.CREATED and o.warning == LOST for o in outcomes.values())
    made = {m.id: m.links for m in harness.hubspot.meetings}
    assert made[str(outcomes[0].meeting_id)] == {("contacts", "7100001")}
    assert made[str(outcomes[1].meeting_id)] == {("contacts", "7100002")}
    assert len(harness.hubspot.creates) == 2 and len(harness.hubspot.searches) == 1
    assert sum(event.startswith("read ") for event in harness.hubspot.events) == 4


def test_a_lone_candidate_is_adopted_without_reading_its_associations(harness: Harness) -> None:
    job = make_job(0, contacts=("7100001",))
    harness.hubspot.script(TITLE, Drop(httpx.ReadTimeout, created=True))
    outcomes = harness.send([job])
    assert outcomes[0].meeting_id == meeting_id(0)
    assert not [event for event in harness.hubspot.events if event.startswith("read ")]


# --- rows still unsettled when the run ends: in doubt, never failed ---


def test_row_whose_search_keeps_failing_stays_in_doubt(harness: Harness) -> None:
    harness.hubspot.script(TITLE, Drop(httpx.ReadTimeout, created=True))
    harness.hubspot.script_search(*[UNAVAILABLE] * 9)
    outcomes = harness.send([make_job(0)])
    assert outcomes[0] == Outcome(
        RowStatus.IN_DOUBT,
        error_code="OUTCOME_UNKNOWN",
        error=unsettled(ANSWER_LOST, SEARCH_FAILED),
        attempts=1,
    )
    assert len(harness.hubspot.creates) == 1  # never resent while HubSpot may have it
    assert len(harness.hubspot.searches) == 9  # three checks, each with the client's three read attempts
    assert harness.state("key-0") == ("in_doubt", None, 1, TIMED_OUT)


def test_search_that_failed_once_is_made_again_at_the_next_check(harness: Harness) -> None:
    harness.hubspot.script(TITLE, Drop(httpx.ReadTimeout, created=True))
    harness.hubspot.script_search(*[UNAVAILABLE] * 3)
    outcomes = harness.send([make_job(0)])
    assert outcomes[0] == Outcome(
        RowStatus.CREATED, meeting_id(0), attempts=1, warning=LOST, warning_code=LOST_CODE
    )
    assert len(harness.hubspot.searches) == 4
    assert len(harness.hubspot.creates) == 1


@pytest.mark.parametrize(
    ("lost", "error"),
    [(Drop(httpx.ReadTimeout), TIMED_OUT), (UNAVAILABLE, "HubSpot 503: Service Unavailable")],
    ids=["read-timeout", "503"],
)
def test_row_whose_create_keeps_being_lost_stops_at_max_attempts_in_doubt(
    harness: Harness, lost: Step, error: str
) -> None:
    harness.hubspot.script(TITLE, *[lost] * 5)
    outcomes = harness.send([make_job(0)], max_attempts=3)
    why = f"HubSpot's answer was lost ({error})"
    spent = "not found in HubSpot after 3 attempts"
    assert outcomes[0] == Outcome(
        RowStatus.IN_DOUBT, error_code="OUTCOME_UNKNOWN", error=unsettled(why, spent), attempts=3
    )
    assert len(harness.hubspot.creates) == 3
    assert len(harness.hubspot.searches) == 9  # three checks after each attempt, the last one's too
    assert harness.state("key-0") == ("in_doubt", None, 3, error)


def test_max_attempts_one_never_resends_a_lost_create(harness: Harness) -> None:
    harness.hubspot.script(TITLE, Drop(httpx.ReadTimeout))
    outcomes = harness.send([make_job(0)], max_attempts=1)
    spent = "not found in HubSpot after 1 attempt"
    assert outcomes[0] == Outcome(
        RowStatus.IN_DOUBT, error_code="OUTCOME_UNKNOWN", error=unsettled(ANSWER_LOST, spent), attempts=1
    )
    assert len(harness.hubspot.creates) == 1
    assert len(harness.hubspot.searches) == 3


# --- the search lag ---


def test_searches_fall_at_the_lag_three_and_ten_times_the_lag_after_the_attempt(harness: Harness) -> None:
    clock = FakeClock(1000.0)

    def slow_create(title: str) -> None:
        clock.now += 5.0  # each create takes 5 s: the lag counts from when its answer was lost

    harness.hubspot.on_create = slow_create
    harness.hubspot.script(TITLE, Drop(httpx.ReadTimeout))
    outcomes = harness.send([make_job(0)], search_lag_s=30.0, clock=clock)
    assert harness.hubspot.search_times == [1035.0, 1095.0, 1305.0]
    assert clock.waits == [30.0, 60.0, 210.0]
    assert outcomes[0] == Outcome(RowStatus.CREATED, meeting_id(0), None, 200, "corr-200", attempts=2)


def test_a_resend_lost_again_is_checked_from_its_own_attempt(harness: Harness) -> None:
    clock = FakeClock(0.0)

    def slow_create(title: str) -> None:
        clock.now += 1.0

    harness.hubspot.on_create = slow_create
    harness.hubspot.script(TITLE, Drop(httpx.ReadTimeout), Drop(httpx.ReadTimeout))
    outcomes = harness.send([make_job(0)], search_lag_s=10.0, clock=clock)
    assert harness.hubspot.search_times == [11.0, 31.0, 101.0, 112.0, 132.0, 202.0]
    assert outcomes[0] == Outcome(RowStatus.CREATED, meeting_id(0), None, 200, "corr-200", attempts=3)
    assert harness.state("key-0") == ("created", meeting_id(0), 3, None)


def test_search_waits_for_the_index_lag_counted_from_the_lost_attempt(harness: Harness) -> None:
    clock = FakeClock(1000.0)

    def slow_second_row(title: str) -> None:
        if title == "Second":
            clock.now += 12.0  # the second row's create takes 12 s of the first row's 30 s lag

    harness.hubspot.on_create = slow_second_row
    harness.hubspot.script("First", Drop(httpx.ReadTimeout, created=True))
    outcomes = harness.send(titled("First", "Second"), search_lag_s=30.0, clock=clock)
    assert clock.waits == [18.0]
    assert harness.hubspot.search_times == [1030.0]
    assert outcomes[0] == Outcome(
        RowStatus.CREATED, meeting_id(0), attempts=1, warning=LOST, warning_code=LOST_CODE
    )


@pytest.mark.parametrize("left", ["sending", "in_doubt"])
def test_row_in_doubt_from_an_earlier_run_counts_the_lag_from_this_runs_start(
    harness: Harness, left: str
) -> None:
    """The ledger's mark is older than the lag; the lock proves the old process sends nothing after this
    run's start, so the checks count from there: never at once on the strength of an old mark."""
    # An hour after the earlier run's ledger mark, in whole seconds so the clock's sums are exact.
    run_start = float(int(time.time()) + 3600)
    clock = FakeClock(run_start)
    earlier = make_job(0, "Earlier")
    harness.leave_in_doubt(earlier, left)

    def slow_fresh_row(title: str) -> None:
        if title == "Fresh":
            clock.now += 12.0

    harness.hubspot.on_create = slow_fresh_row
    outcomes = harness.send([earlier, make_job(1, "Fresh")], search_lag_s=30.0, clock=clock)
    assert harness.hubspot.search_times == [run_start + 30.0, run_start + 90.0, run_start + 300.0]
    assert clock.waits == [18.0, 60.0, 210.0]
    assert harness.hubspot.titles() == ["Fresh", "Earlier"]
    assert outcomes[0] == Outcome(RowStatus.CREATED, meeting_id(1), None, 200, "corr-200", attempts=1)


# --- what earlier runs left in the ledger ---


def test_row_the_ledger_has_created_is_skipped_without_a_request(harness: Harness) -> None:
    harness.ledger.mark_sending("key-0", OWNER_ID, make_job(0).request.start_ms, TITLE, "run-1")
    harness.ledger.mark_created("key-0", "55500001")
    outcomes = harness.send([make_job(0)])
    assert outcomes == {0: Outcome(RowStatus.SKIPPED, "55500001", attempts=0)}
    assert harness.reported == [(0, outcomes[0])]
    assert harness.hubspot.creates == []
    assert harness.hubspot.searches == []


@pytest.mark.parametrize("left", ["sending", "in_doubt"])
def test_row_in_doubt_from_an_earlier_run_found_in_hubspot_is_skipped(harness: Harness, left: str) -> None:
    job = make_job(0, notes=(SKIPPED_CONTACT,))
    harness.leave_in_doubt(job, left)
    harness.hubspot.seed(TITLE, job.request.start_ms)
    outcomes = harness.send([job])
    assert outcomes == {
        0: Outcome(
            RowStatus.SKIPPED,
            meeting_id(0),
            attempts=0,
            warning=f"{NOTE}; {LOST}",
            warning_code=f"{NOTE_CODE};{LOST_CODE}",
        )
    }
    assert harness.hubspot.creates == []
    assert harness.hubspot.searches == [exact_search(job)]
    assert harness.state("key-0") == ("created", meeting_id(0), 1, None)


@pytest.mark.parametrize("left", ["sending", "in_doubt"])
def test_row_in_doubt_from_an_earlier_run_not_in_hubspot_is_searched_then_sent(
    harness: Harness, left: str
) -> None:
    job = make_job(0)
    harness.leave_in_doubt(job, left)
    outcomes = harness.send([job])
    assert outcomes == {0: Outcome(RowStatus.CREATED, meeting_id(0), None, 200, "corr-200", attempts=1)}
    assert harness.hubspot.events == ["search", "search", "search", f"create {TITLE}"]
    assert harness.hubspot.creates == [job.request.body]
    assert harness.state("key-0") == ("created", meeting_id(0), 2, None)


@pytest.mark.parametrize(
    ("left", "why"),
    [
        ("sending", "an earlier run ended before HubSpot's answer came, maybe before sending it"),
        ("in_doubt", f"an earlier run lost HubSpot's answer ({TIMED_OUT})"),
    ],
)
def test_row_in_doubt_from_an_earlier_run_whose_search_keeps_failing_stays_in_doubt(
    harness: Harness, left: str, why: str
) -> None:
    job = make_job(0)
    harness.leave_in_doubt(job, left)
    harness.hubspot.script_search(*[UNAVAILABLE] * 9)
    outcomes = harness.send([job])
    assert outcomes == {
        0: Outcome(
            RowStatus.IN_DOUBT, error_code="OUTCOME_UNKNOWN", error=unsettled(why, SEARCH_FAILED), attempts=0
        )
    }
    assert harness.hubspot.creates == []


def test_row_in_doubt_from_an_earlier_run_with_several_candidates_stays_in_doubt(harness: Harness) -> None:
    job = make_job(0)
    harness.leave_in_doubt(job, "sending")
    first = harness.hubspot.seed(TITLE, job.request.start_ms)
    second = harness.hubspot.seed(TITLE, job.request.start_ms)
    outcomes = harness.send([job])
    several = f"HubSpot has several meetings that could be this row's: {first}, {second}; not guessed"
    assert outcomes == {
        0: Outcome(RowStatus.IN_DOUBT, error_code="OUTCOME_UNKNOWN", error=unsettled(several), attempts=0)
    }
    assert harness.hubspot.creates == []
    assert harness.state("key-0") == ("sending", None, 1, None)


def test_row_that_failed_in_an_earlier_run_is_sent_without_a_search(harness: Harness) -> None:
    job = make_job(0)
    harness.ledger.mark_sending("key-0", OWNER_ID, job.request.start_ms, TITLE, "run-1")
    harness.ledger.mark_failed("key-0", "HubSpot 400: bad")
    outcomes = harness.send([job])
    assert outcomes[0] == Outcome(RowStatus.CREATED, meeting_id(0), None, 200, "corr-200", attempts=1)
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
            error_code="RUN_STOPPED",
            error=f"{DAILY_STOP} ({daily})",
            http_status=429,
            correlation_id="corr-429-daily",
            attempts=1,
        ),
        2: Outcome(RowStatus.NOT_SENT, error_code="RUN_STOPPED", error=DAILY_STOP, attempts=0),
        3: Outcome(RowStatus.NOT_SENT, error_code="RUN_STOPPED", error=DAILY_STOP, attempts=0),
    }
    assert harness.hubspot.titles() == ["First", "Second"]
    assert harness.retry_sleeps == []
    assert harness.sender is not None and harness.sender.stop_reason == DAILY_STOP
    assert harness.sender.stop_kind == "daily_limit"
    assert harness.state("key-1") == ("failed", None, 1, daily)  # certainly not created: next run sends it
    assert (harness.state("key-2"), harness.state("key-3")) == (None, None)


def test_daily_remaining_zero_stops_before_the_next_request(harness: Harness) -> None:
    """X-HubSpot-RateLimit-Daily-Remaining: 0 means the next request would be refused: send no more."""
    outcomes = harness.send(titled("a", "b"), daily_remaining=lambda: 0)
    assert harness.hubspot.creates == []
    assert outcomes == {
        i: Outcome(RowStatus.NOT_SENT, error_code="RUN_STOPPED", error=DAILY_STOP) for i in range(2)
    }


def test_refused_token_raises_auth_error_after_every_outcome_is_recorded(harness: Harness) -> None:
    harness.hubspot.script("First", EXPIRED)
    with pytest.raises(AuthError) as caught:
        harness.send(titled("First", "Second", "Third"))
    assert str(caught.value) == f"HubSpot refused the access token: {EXPIRED_MESSAGE}"
    assert dict(harness.reported) == {
        0: Outcome(
            RowStatus.NOT_SENT,
            error_code="RUN_STOPPED",
            error=f"{REFUSED} ({EXPIRED_MESSAGE})",
            http_status=401,
            correlation_id="corr-401",  # no correlationId in the body: the header's
            attempts=1,
        ),
        1: Outcome(RowStatus.NOT_SENT, error_code="RUN_STOPPED", error=REFUSED, attempts=0),
        2: Outcome(RowStatus.NOT_SENT, error_code="RUN_STOPPED", error=REFUSED, attempts=0),
    }
    assert len(harness.hubspot.creates) == 1
    assert harness.state("key-0") == ("failed", None, 1, EXPIRED_MESSAGE)


def test_refused_token_during_the_search_stops_and_raises_auth_error(harness: Harness) -> None:
    harness.hubspot.script("First", Drop(httpx.ReadTimeout, created=True))
    harness.hubspot.script("Second", Drop(httpx.ReadTimeout))
    harness.hubspot.script_search(EXPIRED)
    with pytest.raises(AuthError) as caught:
        harness.send(titled("First", "Second"))
    assert str(caught.value) == f"HubSpot refused the access token: {EXPIRED_MESSAGE}"
    left = Outcome(
        RowStatus.IN_DOUBT,
        error_code="OUTCOME_UNKNOWN",
        error=unsettled(ANSWER_LOST, SEARCH_FAILED, STOPPED),
        attempts=1,
    )
    assert dict(harness.reported) == {0: left, 1: left}
    assert len(harness.hubspot.searches) == 1  # no retry of a 401, no later check
    assert len(harness.hubspot.creates) == 2
    assert harness.sender is not None and harness.sender.stop_reason == REFUSED
    assert harness.sender.stop_kind == "token_refused"
    assert harness.state("key-0") == ("in_doubt", None, 1, TIMED_OUT)


def test_stop_lets_the_row_in_flight_finish_and_sends_no_more(harness: Harness) -> None:
    harness.stop_on_create("Second", "stopped by SIGTERM")
    outcomes = harness.send(titled("First", "Second", "Third", "Fourth"))
    assert outcomes == {
        0: Outcome(RowStatus.CREATED, meeting_id(0), None, 200, "corr-200", attempts=1),
        1: Outcome(RowStatus.CREATED, meeting_id(1), None, 200, "corr-200", attempts=1),
        2: Outcome(RowStatus.NOT_SENT, error_code="RUN_STOPPED", error="stopped by SIGTERM", attempts=0),
        3: Outcome(RowStatus.NOT_SENT, error_code="RUN_STOPPED", error="stopped by SIGTERM", attempts=0),
    }
    assert harness.hubspot.titles() == ["First", "Second"]
    assert harness.state("key-2") is None


def test_a_chunks_rows_are_all_marked_sending_before_its_first_create_goes_out(harness: Harness) -> None:
    """One commit for the chunk's marks, made before any of its requests: read through a connection of
    its own, the ledger file has every row `sending` when HubSpot sees the first create."""
    seen: list[set[str]] = []

    def look(title: str) -> None:
        with closing(sqlite3.connect(harness.ledger.path)) as other:
            seen.append({key for (key,) in other.execute("SELECT row_key FROM rows WHERE state = 'sending'")})

    harness.hubspot.on_create = look
    harness.send(titled("First", "Second", "Third"))
    assert seen[0] == {"key-0", "key-1", "key-2"}
    assert [harness.state(f"key-{i}") for i in range(3)] == [
        ("created", meeting_id(i), 1, None) for i in range(3)
    ]


def test_a_row_that_failed_earlier_and_the_stop_left_unsent_is_failed_as_before(harness: Harness) -> None:
    """Marked `sending` with its chunk, never sent: the stop puts its entry back, attempts and error
    too, so the next run sends it at once, without a search."""
    third = make_job(2, "Third")
    harness.ledger.mark_sending("key-2", OWNER_ID, third.request.start_ms, "Third", "run-1")
    harness.ledger.mark_failed("key-2", "HubSpot 400: bad")
    harness.stop_on_create("Second", "stopped by SIGTERM")
    outcomes = harness.send(titled("First", "Second", "Third", "Fourth"))
    assert outcomes[2] == Outcome(
        RowStatus.NOT_SENT, error_code="RUN_STOPPED", error="stopped by SIGTERM", attempts=0
    )
    assert harness.state("key-2") == ("failed", None, 1, "HubSpot 400: bad")
    assert harness.state("key-3") is None


@pytest.mark.parametrize(
    ("refusal", "outcome"),
    [
        (
            LOCKED,
            Outcome(
                RowStatus.NOT_SENT,
                None,
                "stopped by SIGTERM (HubSpot 423: Locked)",
                423,
                "corr-423",
                attempts=1,
                error_code="RUN_STOPPED",
            ),
        ),
        (
            rate_limited("TEN_SECONDLY_ROLLING"),
            Outcome(
                RowStatus.NOT_SENT,
                error_code="RUN_STOPPED",
                error="stopped by SIGTERM (HubSpot 429 RATE_LIMIT: You have reached your ten_secondly_rolling limit.)",
                http_status=429,
                correlation_id="corr-429-ten_secondly_rolling",
                attempts=1,
            ),
        ),
        (
            Drop(httpx.ConnectError),
            Outcome(
                RowStatus.NOT_SENT,
                error_code="RUN_STOPPED",
                error=f"stopped by SIGTERM (POST {CREATE_MEETING_PATH}: could not connect (ConnectError))",
                attempts=1,
            ),
        ),
    ],
    ids=["423", "429-window", "connect-error"],
)
def test_stop_cuts_retries_short_and_the_row_is_not_sent(
    harness: Harness, refusal: Step, outcome: Outcome
) -> None:
    """A stop (SIGTERM) while a row would retry a refusal: it is not retried, and it was not created."""
    harness.hubspot.script(TITLE, refusal, refusal)
    harness.stop_on_create(TITLE, "stopped by SIGTERM")
    outcomes = harness.send([make_job(0)])
    assert outcomes[0] == outcome
    assert len(harness.hubspot.creates) == 1
    assert harness.retry_sleeps == []
    assert harness.hubspot.meetings == []


def test_an_outcome_that_cannot_be_recorded_stops_every_worker_and_leaves_no_create_unrecorded(
    harness: Harness,
) -> None:
    """The results file cannot be written (a full disk, say) as one row finishes: the run stops with that
    error. The other workers take no more rows and finish the creates they have in flight, so every
    meeting HubSpot made is `created` in the ledger, and no row is sent after the stop."""
    harness.refuse_outcomes = StopRun("cannot write the results file")
    jobs = titled(*(f"Row {i}" for i in range(40)))
    with pytest.raises(StopRun, match="cannot write the results file"):
        harness.send(jobs, concurrency=4)
    made = harness.hubspot.titles()
    assert 1 <= len(made) <= 4  # the creates in flight when the first outcome failed, and no more
    states = {job.request.title: harness.state(job.row_key) for job in jobs}
    assert {title: state[0] for title, state in states.items() if state is not None} == {
        title: "created" for title in made
    }


PAUSES = [10.0, 20.0, 40.0, 60.0, 60.0, 60.0, 60.0]  # of the default outage_s, 300 s: then it is over


def test_hubspot_failing_every_create_pauses_the_sending_then_stops_the_run(
    harness: Harness, caplog: pytest.LogCaptureFixture
) -> None:
    """HubSpot answers every create with a 502 (an incident): after twenty rows in doubt the sending pauses,
    ever longer while the next create fails too, and once every create has failed for five minutes the run
    stops, rather than send each other row into it (each in doubt, a search for the next run)."""
    titles = [f"Row {i}" for i in range(40)]
    for title in titles:
        harness.hubspot.script(title, Reply(502))
    clock = FakeClock(1_000.0)
    outcomes = harness.send(titled(*titles), clock=clock, concurrency=4)
    sent = len(harness.hubspot.creates)
    # Twenty, the three in flight then, and one create after each pause, to see whether HubSpot is back.
    assert FAILING_IN_A_ROW + len(PAUSES) <= sent <= FAILING_IN_A_ROW + 3 + len(PAUSES)
    assert harness.hubspot.most_in_flight == 4
    assert clock.waits == PAUSES and clock.now == 1_000.0 + sum(PAUSES)
    pauses = [r.getMessage() for r in caplog.records if "sending again in" in r.getMessage()]
    assert [p.rsplit(" in ", 1)[1] for p in pauses] == [f"{w:.0f} s" for w in PAUSES]
    assert pauses[0].startswith("HubSpot failed 20 requests in a row (the last: HubSpot 502")
    reason = harness.sender.stop_reason if harness.sender else None
    assert reason is not None and reason.startswith(
        f"HubSpot failed every request for 310 s ({sent} in a row; the last: HubSpot 502"
    )
    assert reason.endswith(": Bad Gateway)")  # the rows not sent say the next run sends them
    assert harness.sender is not None and harness.sender.stop_kind == "hubspot_failing"
    made = set(harness.hubspot.titles())
    assert {outcomes[i].status for i, title in enumerate(titles) if title in made} == {RowStatus.IN_DOUBT}
    assert {(harness.state(f"key-{i}") or ("",))[0] for i, t in enumerate(titles) if t in made} == {
        "in_doubt"
    }
    assert all(
        outcomes[i] == Outcome(RowStatus.NOT_SENT, error_code="RUN_STOPPED", error=reason, attempts=0)
        for i, title in enumerate(titles)
        if title not in made
    )
    assert harness.hubspot.searches == []  # stopped: the rows in doubt are left for the next run


def test_a_short_break_costs_one_pause_and_the_run_goes_on(harness: Harness) -> None:
    titles = [f"Row {i}" for i in range(30)]
    for title in titles[:FAILING_IN_A_ROW]:
        harness.hubspot.script(title, Reply(503))
    clock = FakeClock(1_000.0)
    outcomes = harness.send(titled(*titles), clock=clock)
    assert harness.sender is not None and harness.sender.stop_reason is None
    assert clock.waits[0] == PAUSES[0]  # then the search lag's waits, for the rows in doubt
    assert harness.hubspot.titles()[:30] == titles  # each row once, then the rows in doubt again
    assert {o.status for o in outcomes.values()} == {RowStatus.CREATED}


def test_hubspot_unreachable_through_every_retry_pauses_then_stops_the_run(harness: Harness) -> None:
    titles = [f"Row {i}" for i in range(40)]
    for title in titles:
        harness.hubspot.script(title, *[Drop(httpx.ConnectError)] * 3)
    clock = FakeClock(1_000.0)
    outcomes = harness.send(titled(*titles), clock=clock)
    sent = FAILING_IN_A_ROW + len(PAUSES)
    assert len(harness.hubspot.creates) == sent * 3  # each row's three attempts
    assert {outcomes[i].error_code for i in range(sent)} == {"HUBSPOT_UNAVAILABLE"}
    assert {outcomes[i].error_code for i in range(sent, 40)} == {"RUN_STOPPED"}
    reason = harness.sender.stop_reason if harness.sender else None
    assert reason is not None and "could not connect (ConnectError)" in reason
    assert harness.hubspot.meetings == []


def test_an_answer_between_failures_counts_them_anew(harness: Harness) -> None:
    """A create made, or one refused for the row's own sake (a 400), proves HubSpot answers: the failures
    before it do not add up with those after."""
    failing = [f"Failing {i}" for i in range(3 * (FAILING_IN_A_ROW - 1))]
    for title in failing:
        harness.hubspot.script(title, Reply(503))
    harness.hubspot.script(
        "Refused", Reply(400, body={"status": "error", "message": "bad", "category": "VALIDATION_ERROR"})
    )
    titles = [*failing[:19], "Made", *failing[19:38], "Refused", *failing[38:], "Last"]
    outcomes = harness.send(titled(*titles))
    assert harness.sender is not None and harness.sender.stop_reason is None
    assert harness.hubspot.titles()[: len(titles)] == titles  # every row sent, then searches settle doubts
    assert outcomes[19].status == RowStatus.CREATED and outcomes[len(titles) - 1].status == RowStatus.CREATED


def _spent(status: int, attempts: int = 5) -> ServerError:
    """A look-up's last error once its retries ran out."""
    error = ServerError(status, "HubSpot is down")
    error.attempts = attempts
    return error


def test_look_ups_that_hubspot_fails_wait_ever_longer_then_stop_the_run(
    caplog: pytest.LogCaptureFixture,
) -> None:
    clock = FakeClock(1_000.0)
    watch = OutageWatch(clock=clock)
    stops: list[str] = []
    watch.on_verdict(stops.append)
    waits = []
    while (wait := watch.lookup_failed(_spent(503))) is not None:
        waits.append(wait)
        clock.now += wait + 2.0  # the wait, then the look-up's retries
    assert waits == PAUSES
    assert not watch.down  # the senders are not paused by it: creates HubSpot answers go on
    assert watch.verdict is not None and stops == [watch.verdict]
    assert watch.verdict.startswith(
        "HubSpot failed every request for 324 s (40 in a row; the last: HubSpot 503"
    )
    assert watch.lookup_failed(_spent(503)) is None and len(stops) == 1  # told once
    told = [r.getMessage() for r in caplog.records]
    assert told[0] == (
        "HubSpot failed the look-ups through every retry (the last: HubSpot 503: HubSpot is down);"
        " looking up again in 10 s"
    )


def test_a_create_answered_between_failed_look_ups_keeps_the_run_going() -> None:
    """HubSpot's search is down, its creates work: the run goes on as long as anything is answered."""
    clock = FakeClock(1_000.0)
    watch = OutageWatch(clock=clock)
    for _ in range(20):
        assert watch.lookup_failed(_spent(502)) == PAUSES[0]  # counted anew after each answer
        clock.now += 30.0
        watch.heard()  # a create made
    assert watch.verdict is None and watch.failing == 0


def test_failed_look_ups_count_towards_the_senders_pause() -> None:
    clock = FakeClock(1_000.0)
    watch = OutageWatch(clock=clock)
    watch.lookup_failed(_spent(504, attempts=FAILING_IN_A_ROW - 1))
    assert not watch.down
    watch.heard(ServerError(504, "timeout"))  # the twentieth in a row: the senders pause
    assert watch.down and watch.paused_until == 1_000.0 + PAUSES[0]


def test_the_senders_of_one_run_share_its_watch_and_stop_together(harness: Harness) -> None:
    """`--mode auto` sends with two senders (creates, and batches of logged meetings): HubSpot failing the
    one stops the other as well, with the same reason, and once."""
    clock = FakeClock(1_000.0)
    watch = OutageWatch(clock=clock)

    async def stopped() -> list[tuple[str | None, str | None]]:
        client = HubSpotClient(BASE_URL, TOKEN, transport=httpx.MockTransport(harness.hubspot.handle))
        options: dict[str, Any] = {"run_id": "r", "concurrency": 1, "max_attempts": 1, "search_lag_s": 0}
        async with client:
            senders = [Sender(client, harness.ledger, watch=watch, clock=clock, **options) for _ in "ab"]
            while watch.verdict is None:
                watch.heard(ServerError(502, "bad gateway"))  # as one sender's requests would tell it
                clock.now += 1.0
            return [(sender.stop_reason, sender.stop_kind) for sender in senders]

    assert asyncio.run(stopped()) == [(watch.verdict, "hubspot_failing")] * 2


def test_a_stop_of_a_sender_ends_the_look_ups_wait_at_once(harness: Harness) -> None:
    watch = OutageWatch()

    async def waited() -> float:
        client = HubSpotClient(BASE_URL, TOKEN, transport=httpx.MockTransport(harness.hubspot.handle))
        options: dict[str, Any] = {"run_id": "r", "concurrency": 1, "max_attempts": 1, "search_lag_s": 0}
        async with client:
            sender = Sender(client, harness.ledger, watch=watch, **options)
            started = time.monotonic()
            waiting = asyncio.ensure_future(watch.wait(60.0))
            await asyncio.sleep(0.01)
            sender.stop("stopped by SIGTERM")  # a daily cap, a refused token...: the run takes no more rows
            await waiting
            return time.monotonic() - started

    assert asyncio.run(waited()) < 30.0  # not the minute asked for


def test_first_stop_reason_wins(harness: Harness) -> None:
    harness.stop_on_create("First", "stopped by SIGINT")
    harness.hubspot.script("First", rate_limited("DAILY"))
    outcomes = harness.send(titled("First", "Second"))
    assert harness.sender is not None and harness.sender.stop_reason == "stopped by SIGINT"
    assert harness.sender.stop_kind == "signal"  # the first reason's kind, with it
    assert outcomes[1] == Outcome(
        RowStatus.NOT_SENT, error_code="RUN_STOPPED", error="stopped by SIGINT", attempts=0
    )


def test_stop_leaves_rows_in_doubt_unsearched_and_in_doubt(harness: Harness) -> None:
    harness.hubspot.script("First", Drop(httpx.ReadTimeout, created=True))
    harness.stop_on_create("Second", "stopped by SIGTERM")
    outcomes = harness.send(titled("First", "Second", "Third"))
    assert outcomes == {
        0: Outcome(
            RowStatus.IN_DOUBT,
            error_code="OUTCOME_UNKNOWN",
            error=unsettled(ANSWER_LOST, STOPPED),
            attempts=1,
        ),
        1: Outcome(RowStatus.CREATED, meeting_id(1), None, 200, "corr-200", attempts=1),
        2: Outcome(RowStatus.NOT_SENT, error_code="RUN_STOPPED", error="stopped by SIGTERM", attempts=0),
    }
    assert harness.hubspot.searches == []
    assert harness.state("key-0") == ("in_doubt", None, 1, TIMED_OUT)


def test_a_stop_during_the_search_lag_wakes_the_sender_at_once(harness: Harness) -> None:
    """Waiting out HubSpot's search lag is no work in flight: a signal must not wait 30 s for it."""
    harness.hubspot.script(TITLE, Drop(httpx.ReadTimeout, created=True))

    def stop_soon(title: str) -> None:
        asyncio.get_running_loop().call_later(0.05, harness.stop, "stopped by SIGTERM")

    harness.hubspot.on_create = stop_soon
    started = time.monotonic()
    outcomes = harness.send([make_job(0)], search_lag_s=30.0)
    assert time.monotonic() - started < 10
    assert outcomes[0] == Outcome(
        RowStatus.IN_DOUBT, error_code="OUTCOME_UNKNOWN", error=unsettled(ANSWER_LOST, STOPPED), attempts=1
    )
    assert harness.hubspot.searches == []
    assert harness.state("key-0") == ("in_doubt", None, 1, TIMED_OUT)


def test_a_stop_while_waiting_for_a_check_searches_no_more(harness: Harness) -> None:
    clock = FakeClock(1000.0)
    clock.on_sleep = lambda: harness.stop("stopped by SIGTERM")  # the check falls due as the stop comes
    harness.hubspot.script(TITLE, Drop(httpx.ReadTimeout, created=True))
    outcomes = harness.send([make_job(0)], search_lag_s=30.0, clock=clock)
    assert outcomes[0] == Outcome(
        RowStatus.IN_DOUBT, error_code="OUTCOME_UNKNOWN", error=unsettled(ANSWER_LOST, STOPPED), attempts=1
    )
    assert clock.waits == [30.0]
    assert harness.hubspot.searches == []


def test_a_stop_between_two_checks_leaves_the_row_in_doubt(harness: Harness) -> None:
    harness.hubspot.script(TITLE, Drop(httpx.ReadTimeout))
    harness.hubspot.on_search = lambda count: harness.stop("stopped by SIGTERM")
    outcomes = harness.send([make_job(0)])
    assert outcomes[0] == Outcome(
        RowStatus.IN_DOUBT, error_code="OUTCOME_UNKNOWN", error=unsettled(ANSWER_LOST, STOPPED), attempts=1
    )
    assert len(harness.hubspot.searches) == 1
    assert len(harness.hubspot.creates) == 1


def test_earlier_runs_rows_in_doubt_are_not_searched_when_the_run_stops(harness: Harness) -> None:
    job = make_job(0)
    harness.leave_in_doubt(job, "sending")
    harness.hubspot.seed(TITLE, job.request.start_ms)
    outcomes = harness.send([job], daily_remaining=lambda: 0)
    why = "an earlier run ended before HubSpot's answer came, maybe before sending it"
    assert outcomes == {
        0: Outcome(RowStatus.IN_DOUBT, error_code="OUTCOME_UNKNOWN", error=unsettled(why, STOPPED))
    }
    assert harness.hubspot.searches == []
    assert harness.state("key-0") == ("sending", None, 1, None)


# --- stops while rows are in doubt ---


def test_daily_cap_on_a_search_stops_the_run(harness: Harness) -> None:
    """The daily cap on a doubt's search is every request's, as it is on a create: the run stops, the row
    stays in doubt, and no more searches (nor a resend) are tried today."""
    harness.hubspot.script(TITLE, Drop(httpx.ReadTimeout))
    harness.hubspot.script_search(rate_limited("DAILY"))
    outcomes = harness.send([make_job(0)])
    assert harness.sender is not None and harness.sender.stop_reason == DAILY_STOP
    assert harness.hubspot.events == [f"create {TITLE}", "search"]
    assert outcomes[0].status is RowStatus.IN_DOUBT
    assert outcomes[0].error is not None and STOPPED in outcomes[0].error


def test_row_cleared_for_a_resend_as_the_run_stops_stays_in_doubt(harness: Harness) -> None:
    """Its three checks found nothing, but the stop came before the resend: it was sent once with its
    answer lost, the ledger keeps it in doubt, and the results must say so, not 'not sent'."""
    harness.hubspot.script(TITLE, Drop(httpx.ReadTimeout))

    def stop_at_the_third_check(count: int) -> None:
        if count == 3:
            harness.stop("stopped by SIGTERM")

    harness.hubspot.on_search = stop_at_the_third_check
    outcomes = harness.send([make_job(0)])
    assert len(harness.hubspot.creates) == 1
    assert harness.state("key-0") == ("in_doubt", None, 1, TIMED_OUT)
    assert outcomes[0].status is RowStatus.IN_DOUBT
    assert outcomes[0].error is not None and outcomes[0].error.startswith("outcome unknown: ")
    assert STOPPED in outcomes[0].error


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


@pytest.mark.parametrize("concurrency", [1, 3])
def test_the_next_chunk_is_taken_only_once_the_queue_is_down_to_a_job_a_worker(
    harness: Harness, concurrency: int
) -> None:
    """The look-ups wait for the sending, so a big sheet's requests are never all held at once."""
    chunks = [[make_job(10 * n + i, f"Meeting {n}-{i}") for i in range(10)] for n in range(4)]
    unsent_when_taken: list[int] = []

    async def feed() -> AsyncIterator[list[SendJob]]:
        for n, chunk in enumerate(chunks):
            unsent_when_taken.append(10 * n - len(harness.hubspot.creates))
            yield chunk

    outcomes = harness.send(feed(), concurrency=concurrency)
    assert len(outcomes) == 40 and {o.status for o in outcomes.values()} == {RowStatus.CREATED}
    assert harness.sender is not None and harness.sender._ready == {}  # each made ahead, and taken
    # Queued, at most one a worker; in flight, one a worker.
    assert unsent_when_taken[0] == 0 and max(unsent_when_taken) <= 2 * concurrency


def test_no_jobs_sends_nothing(harness: Harness) -> None:
    assert harness.send([]) == {}
    assert harness.hubspot.creates == []


def test_a_2xx_without_an_id_is_never_sent_again_even_when_search_misses_it(harness: Harness) -> None:
    """HubSpot said it created the meeting: three empty searches mean a slow index, not a missing meeting."""
    harness.hubspot.script(TITLE, Reply(200, {"createdAt": "2026-11-25T03:50:00Z"}))
    empty = Reply(200, {"total": 0, "results": []})
    harness.hubspot.script_search(empty, empty, empty)
    outcomes = harness.send([make_job(0)], max_attempts=5)
    assert len(harness.hubspot.creates) == 1
    assert len(harness.hubspot.searches) == 3
    assert outcomes[0].status is RowStatus.IN_DOUBT
    assert outcomes[0].error is not None
    assert "HubSpot said it created the meeting but search has not shown it yet" in outcomes[0].error


def test_a_ledger_that_fails_at_a_chunks_marks_stops_the_run_with_that_error(
    harness: Harness, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A full disk as the second chunk is marked `sending` (taken once the first is down to a row a
    worker): the run stops with the ledger's error (the pipeline tells the user which file), not as if
    every row had been sent. The row in flight finishes, recorded; nothing else goes out, and the first
    chunk's last row, marked and never sent, is new again."""
    chunks = [[make_job(10 * n + i, f"Meeting {n}-{i}") for i in range(3)] for n in range(2)]
    mark = harness.ledger.mark_sending

    def full_for_the_second_chunk(row_key: str, *args: Any) -> None:
        if row_key in {"key-10", "key-11", "key-12"}:
            raise sqlite3.OperationalError("database or disk is full")
        mark(row_key, *args)

    monkeypatch.setattr(harness.ledger, "mark_sending", full_for_the_second_chunk)

    async def feed() -> AsyncIterator[list[SendJob]]:
        for chunk in chunks:
            yield chunk

    with pytest.raises(sqlite3.OperationalError, match="disk is full"):
        harness.send(feed())
    assert harness.hubspot.titles() == ["Meeting 0-0", "Meeting 0-1"]
    assert [harness.state(f"key-{i}") for i in (0, 1)] == [
        ("created", meeting_id(i), 1, None) for i in (0, 1)
    ]
    assert [harness.state(f"key-{i}") for i in (2, 10, 11, 12)] == [None, None, None, None]
    assert harness.sender is not None and harness.sender.stop_kind == "error"
