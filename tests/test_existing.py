"""Existing meetings: `match` on records as HubSpot's search returns them, and `find_in_ranges` with a real
HubSpotClient against a fake HubSpot search on httpx.MockTransport.

The fake answers `POST /crm/v3/objects/meetings/search` from the meetings it holds, as HubSpot does: the
groups ORed, owner EQ and start BETWEEN (both ends included) ANDed, sorted by start when asked, `limit`
results a page with an `after` cursor, and never a page past the 10,000th result.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest

from importer.existing import Finding, find_in_ranges, match
from importer.hubspot import HubSpotClient, Record, RetryPolicy
from importer.mapper import CreateRequest

TOKEN = "pat-na1-test-token"
BASE_URL = "https://api.hubapi.test"
SEARCH_PATH = "/crm/v3/objects/meetings/search"
OWNER_ID = "8100002"
ORGANIZER_USER_ID = 4242001
TITLE = "Quarterly business review"
START_MS = round(datetime(2026, 12, 1, 10, 0, tzinfo=UTC).timestamp() * 1000)
HOUR_MS = 3_600_000
RESULT_LIMIT = 10_000  # HubSpot pages through no more results of one search
MATCH_PROPERTIES = [
    "hubspot_owner_id",
    "hs_meeting_title",
    "hs_meeting_start_time",
    "hs_meeting_end_time",
    "hs_meeting_location",
    "hs_meeting_body",
]
BY_START = [{"propertyName": "hs_meeting_start_time", "direction": "ASCENDING"}]


def iso(epoch_ms: int) -> str:
    return datetime.fromtimestamp(epoch_ms / 1000, UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


def make_request(
    owner_id: str = OWNER_ID,
    start_ms: int = START_MS,
    title: str = TITLE,
    *,
    minutes: int = 30,
    location: str | None = None,
    body: str | None = None,
) -> CreateRequest:
    """A create request as the mapper makes it (ISO start and end with a Z)."""
    properties: dict[str, Any] = {
        "hs_meeting_title": title,
        "hs_meeting_start_time": iso(start_ms).replace(".000Z", "Z"),
        "hs_meeting_end_time": iso(start_ms + minutes * 60_000).replace(".000Z", "Z"),
        "hs_timestamp": iso(start_ms).replace(".000Z", "Z"),
        "hs_meeting_outcome": "SCHEDULED",
        "hubspot_owner_id": owner_id,
    }
    if location is not None:
        properties["hs_meeting_location"] = location
    if body is not None:
        properties["hs_meeting_body"] = body
    request_body = {"properties": properties, "timezone": "UTC", "associations": []}
    return CreateRequest(ORGANIZER_USER_ID, request_body, owner_id, start_ms, title)


def make_record(
    meeting_id: str,
    owner_id: Any = OWNER_ID,
    start_ms: int = START_MS,
    title: str | None = TITLE,
    *,
    minutes: int | None = 30,
    **properties: Any,
) -> Record:
    """A meeting as the search returns it: date-times in ISO 8601 with a Z, unset properties null."""
    end = None if minutes is None else iso(start_ms + minutes * 60_000)
    values = {
        "hubspot_owner_id": owner_id,
        "hs_meeting_title": title,
        "hs_meeting_start_time": iso(start_ms),
        "hs_meeting_end_time": end,
        "hs_meeting_location": None,
        "hs_meeting_body": None,
        "hs_object_id": meeting_id,
    }
    return Record(meeting_id, {**values, **properties})


# --- match ---


def test_match_keeps_only_the_requests_owner_start_and_exact_title() -> None:
    records = [
        make_record("71000001"),
        make_record("71000002", owner_id="8100099"),
        make_record("71000003", start_ms=START_MS + 60_000),
        make_record("71000004", title=TITLE.upper()),  # search matches text loosely; the title must not
        make_record("71000005", title=f"{TITLE} "),
        make_record("71000006", title=f"{TITLE} (moved)"),
        make_record("71000007", title=None),
    ]
    assert match(make_request(), records) == Finding(same=("71000001",))


def test_match_reads_the_owner_and_date_times_in_any_form_hubspot_returns() -> None:
    end_ms = START_MS + 30 * 60_000
    record = make_record(
        "71000001",
        owner_id=int(OWNER_ID),
        hs_meeting_start_time=str(START_MS),
        hs_meeting_end_time=str(end_ms),
    )
    assert match(make_request(), [record]) == Finding(same=("71000001",))


@pytest.mark.parametrize(
    "record",
    [make_record("71000001", minutes=45), make_record("71000001", minutes=None)],
    ids=["other-end", "no-end"],
)
def test_match_always_compares_the_end(record: Record) -> None:
    assert match(make_request(), [record]) == Finding(differing=("71000001",))


@pytest.mark.parametrize(
    ("given", "found", "same"),
    [
        ({"location": "Room 4"}, {"hs_meeting_location": "Room 4"}, True),
        ({"location": "Room 4"}, {"hs_meeting_location": "Room 5"}, False),
        ({"location": "Room 4"}, {}, False),
        ({}, {"hs_meeting_location": "Room 5"}, True),
        ({"body": "Agenda: renewal"}, {"hs_meeting_body": "Agenda: renewal"}, True),
        ({"body": "Agenda: renewal"}, {"hs_meeting_body": "Agenda: expansion"}, False),
        ({"body": "Agenda: renewal"}, {}, False),
        ({}, {"hs_meeting_body": "Notes a rep added"}, True),
        ({"location": "", "body": ""}, {"hs_meeting_location": "Room 5", "hs_meeting_body": "x"}, True),
    ],
    ids=[
        "location-same",
        "location-other",
        "location-missing",
        "location-not-given",
        "body-same",
        "body-other",
        "body-missing",
        "body-not-given",
        "empty-not-given",
    ],
)
def test_match_compares_location_and_body_where_the_request_gives_them(
    given: dict[str, Any], found: dict[str, Any], same: bool
) -> None:
    finding = match(make_request(**given), [make_record("71000001", **found)])
    assert finding == (Finding(same=("71000001",)) if same else Finding(differing=("71000001",)))


def test_match_compares_text_with_whitespace_folded() -> None:
    request = make_request(location="Room 4, 2nd floor", body="Agenda:\n- renewal\n- budget")
    record = make_record(
        "71000001",
        hs_meeting_location="  Room 4,\t2nd  floor ",
        hs_meeting_body="Agenda: - renewal\r\n- budget\n",
    )
    assert match(request, [record]) == Finding(same=("71000001",))
    assert match(request, [make_record("71000002", hs_meeting_location="Room4, 2nd floor")]) == Finding(
        differing=("71000002",)
    )


def test_match_lists_ids_oldest_first_once_each() -> None:
    # HubSpot's ids grow with time: numeric order, not text order ("9000001" is older than "71000002").
    same = [make_record(i) for i in ("71000010", "9000001", "71000002", "71000002")]
    differing = [make_record(i, minutes=60) for i in ("81000003", "81000001", "9000002")]
    assert match(make_request(), [*same, *differing]) == Finding(
        same=("9000001", "71000002", "71000010"), differing=("9000002", "81000001", "81000003")
    )


def test_match_of_nothing_finds_nothing() -> None:
    assert match(make_request(), []) == Finding()


# --- find_in_ranges ---


@dataclass(frozen=True)
class Held:
    """A meeting the fake HubSpot holds."""

    id: str
    owner_id: str
    start_ms: int
    title: str = TITLE
    minutes: int = 30


class FakeSearch:
    """HubSpot's meetings search over `meetings`; every request body is kept."""

    def __init__(self, meetings: Sequence[Held] = ()) -> None:
        self.meetings = list(meetings)
        self.bodies: list[dict[str, Any]] = []
        self._matches: dict[str, list[Held]] = {}  # one query's matches, for all its pages

    def hold(self, owner_id: str, start_ms: int, title: str = TITLE, *, minutes: int = 30) -> str:
        held = Held(str(71000001 + len(self.meetings)), owner_id, start_ms, title, minutes)
        self.meetings.append(held)
        return held.id

    def first_pages(self) -> list[dict[str, Any]]:
        """The bodies of the searches asked (their later pages left out), in a stable order."""
        return sorted((b for b in self.bodies if "after" not in b), key=json.dumps)

    def handle(self, request: httpx.Request) -> httpx.Response:
        assert request.url.path == SEARCH_PATH
        assert request.headers["authorization"] == f"Bearer {TOKEN}"
        body = json.loads(request.content)
        self.bodies.append(body)
        assert len(body["filterGroups"]) <= 5  # HubSpot ORs at most five groups
        after, limit = int(body.get("after", "0")), body["limit"]
        assert after + limit <= RESULT_LIMIT, "HubSpot answers 400 past its 10,000th result"
        query = json.dumps([body["filterGroups"], body.get("sorts")])
        if query not in self._matches:
            self._matches[query] = self._match(body)
        matches = self._matches[query]
        page = [
            {"id": m.id, "properties": self._properties(m, body["properties"])}
            for m in matches[after : after + limit]
        ]
        answer: dict[str, Any] = {"total": len(matches), "results": page}
        if after + limit < len(matches):
            answer["paging"] = {"next": {"after": str(after + limit)}}
        return httpx.Response(200, json=answer)

    def _match(self, body: dict[str, Any]) -> list[Held]:
        spans = []
        for group in body["filterGroups"]:
            owner, start = group["filters"]
            assert (owner["propertyName"], owner["operator"]) == ("hubspot_owner_id", "EQ")
            assert (start["propertyName"], start["operator"]) == ("hs_meeting_start_time", "BETWEEN")
            spans.append((owner["value"], int(start["value"]), int(start["highValue"])))
        found = [
            m for m in self.meetings if any(o == m.owner_id and lo <= m.start_ms <= hi for o, lo, hi in spans)
        ]
        if body.get("sorts") == BY_START:
            found.sort(key=lambda m: m.start_ms)
        return found

    @staticmethod
    def _properties(meeting: Held, asked: list[str]) -> dict[str, Any]:
        values = {
            "hubspot_owner_id": meeting.owner_id,
            "hs_meeting_title": meeting.title,
            "hs_meeting_start_time": iso(meeting.start_ms),
            "hs_meeting_end_time": iso(meeting.start_ms + meeting.minutes * 60_000),
        }
        return {**{name: values.get(name) for name in asked}, "hs_object_id": meeting.id}


def find(fake: FakeSearch, requests: Sequence[CreateRequest]) -> list[Finding]:
    async def no_sleep(seconds: float) -> None:
        pass

    async def run() -> list[Finding]:
        transport = httpx.MockTransport(fake.handle)
        retry = RetryPolicy(max_attempts=3, base_s=0.001)
        async with HubSpotClient(BASE_URL, TOKEN, retry=retry, transport=transport, sleep=no_sleep) as client:
            return await find_in_ranges(client, requests)

    return asyncio.run(run())


def span_search(*spans: tuple[str, int, int]) -> dict[str, Any]:
    """The body of a search for these (owner, first start, last start) spans."""
    groups = [
        {
            "filters": [
                {"propertyName": "hubspot_owner_id", "operator": "EQ", "value": owner},
                {
                    "propertyName": "hs_meeting_start_time",
                    "operator": "BETWEEN",
                    "value": str(low),
                    "highValue": str(high),
                },
            ]
        }
        for owner, low, high in spans
    ]
    return {"filterGroups": groups, "properties": MATCH_PROPERTIES, "limit": 200, "sorts": BY_START}


def test_one_group_per_owner_over_its_rows_time_range_five_owners_a_search() -> None:
    owners = [f"81000{n:02d}" for n in range(7)]
    fake = FakeSearch()
    requests: list[CreateRequest] = []
    expected: list[Finding] = []
    for n, owner in enumerate(owners):
        for hours in (n + 5, n, n + 2):  # not in time order: the range is the rows' first..last start
            start_ms = START_MS + hours * HOUR_MS
            requests.append(make_request(owner, start_ms))
            expected.append(Finding(same=(fake.hold(owner, start_ms),)))
    other_end = fake.hold(owners[0], START_MS, minutes=90)
    fake.hold(owners[0], START_MS - 1)  # just outside owner 0's range
    expected[1] = Finding(same=expected[1].same, differing=(other_end,))
    findings = find(fake, requests)
    assert findings == expected
    spans = [(owner, START_MS + n * HOUR_MS, START_MS + (n + 5) * HOUR_MS) for n, owner in enumerate(owners)]
    assert fake.first_pages() == sorted([span_search(*spans[:5]), span_search(*spans[5:])], key=json.dumps)
    assert len(fake.bodies) == 2


def test_a_search_is_followed_through_its_pages() -> None:
    fake = FakeSearch()
    for n in range(450):
        fake.hold(OWNER_ID, START_MS + n * 60_000, f"Someone else's meeting {n}")
    last = START_MS + 450 * 60_000
    first_id = fake.hold(OWNER_ID, START_MS)
    last_id = fake.hold(OWNER_ID, last)  # sorted by start, it comes on the third page
    findings = find(fake, [make_request(start_ms=START_MS), make_request(start_ms=last)])
    assert findings == [Finding(same=(first_id,)), Finding(same=(last_id,))]
    base = span_search((OWNER_ID, START_MS, last))
    assert fake.bodies == [base, {**base, "after": "200"}, {**base, "after": "400"}]


def test_a_search_past_10000_results_is_split_by_owner_then_by_halving_the_time_range() -> None:
    busy, quiet = "8100001", "8100002"
    low, high = START_MS, START_MS + 20 * HOUR_MS
    middle = (low + high) // 2
    fake = FakeSearch()
    for n in range(RESULT_LIMIT + 1):  # the busy owner's calendar: more than one search pages through
        fake.hold(busy, low + n * (high - low) // (RESULT_LIMIT + 1), "Someone else's meeting")
    rows = [(busy, low), (busy, middle), (busy, middle + 1), (busy, high), (quiet, START_MS + HOUR_MS)]
    requests = [make_request(owner, start_ms) for owner, start_ms in rows]
    ids = [fake.hold(owner, start_ms) for owner, start_ms in rows]
    findings = find(fake, requests)
    assert findings == [Finding(same=(i,)) for i in ids]  # every row covered, none twice
    quiet_span = (quiet, START_MS + HOUR_MS, START_MS + HOUR_MS)
    assert fake.first_pages() == sorted(
        [
            span_search((busy, low, high), quiet_span),  # too many
            span_search((busy, low, high)),  # by owner: still too many
            span_search(quiet_span),
            span_search((busy, low, middle)),  # the busy owner's range halved
            span_search((busy, middle + 1, high)),
        ],
        key=json.dumps,
    )


def test_no_requests_no_search() -> None:
    fake = FakeSearch()
    assert find(fake, []) == []
    assert fake.bodies == []
