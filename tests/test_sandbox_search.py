"""Sandbox search fidelity: HubSpot's filter limits, sorts, the 10,000-result ceiling and meeting properties."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.test_sandbox import (
    CREATE,
    ORGANIZER,
    FakeClock,
    client,
    meeting,
    search_body,
    search_ids,
    where,
)

pytestmark = pytest.mark.anyio

SEARCH = "/crm/v3/objects/{}/search"
FILTER = where("email", "HAS_PROPERTY")


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


async def _search(api: httpx.AsyncClient, object_type: str, body: dict[str, Any]) -> httpx.Response:
    return await api.post(SEARCH.format(object_type), json=body)


# --- limits ---------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("groups", "message"),
    [
        ([[FILTER]] * 6, "Too many filterGroups: 6. The maximum is 5."),
        ([[FILTER] * 7], "Too many filters in filterGroups[0]: 7. The maximum is 6 in a filterGroup."),
        (
            [[FILTER], [FILTER] * 7],
            "Too many filters in filterGroups[1]: 7. The maximum is 6 in a filterGroup.",
        ),
        ([[FILTER] * 6] * 3 + [[FILTER]], "Too many filters: 19. The maximum is 18 across all filterGroups."),
    ],
)
async def test_filter_limits_are_hubspots(groups: list[Any], message: str) -> None:
    async with client() as api:
        answer = await _search(api, "contacts", search_body(*groups))
    body = answer.json()
    assert answer.status_code == 400
    assert (body["status"], body["category"], body["message"]) == ("error", "VALIDATION_ERROR", message)
    assert body["correlationId"] == answer.headers["x-hubspot-correlation-id"]


@pytest.mark.parametrize(
    "groups", [[[FILTER] * 6] * 3, [[FILTER] * 6, [FILTER] * 6, [FILTER] * 4, [FILTER] * 2]]
)
async def test_eighteen_filters_in_groups_of_six_are_allowed(groups: list[Any]) -> None:
    async with client() as api:
        answer = await _search(api, "contacts", search_body(*groups))
    assert answer.status_code == 200
    assert answer.json()["total"] == 12


# --- sorts ----------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("sorts", "expected"),
    [
        (
            [{"propertyName": "amount", "direction": "ASCENDING"}],
            ["3100008", "3100006", "3100002", "3100004"],
        ),
        (
            [{"propertyName": "amount", "direction": "DESCENDING"}],
            ["3100003", "3100007", "3100001", "3100005"],
        ),
        ([{"propertyName": "amount"}], ["3100008", "3100006", "3100002", "3100004"]),  # ascending by default
        (["amount"], ["3100008", "3100006", "3100002", "3100004"]),
        (["-amount"], ["3100003", "3100007", "3100001", "3100005"]),
        (
            [{"propertyName": "dealname", "direction": "DESCENDING"}],
            ["3100008", "3100001", "3100004", "3100003"],
        ),
    ],
)
async def test_sorts_order_results_numbers_as_numbers(sorts: list[Any], expected: list[str]) -> None:
    async with client() as api:
        answer = await _search(api, "deals", {"sorts": sorts, "limit": 4})
    assert answer.status_code == 200
    assert [r["id"] for r in answer.json()["results"]] == expected
    assert answer.json()["paging"] == {"next": {"after": "4"}}


async def test_sorted_pages_follow_one_order_and_records_without_the_value_come_last(tmp_path: Path) -> None:
    records = [
        {"id": "1", "properties": {"subject": "b"}},
        {"id": "2", "properties": {}},
        {"id": "3", "properties": {"subject": "A"}},
        {"id": "4", "properties": {"subject": "b"}},
        {"id": "5", "properties": {"subject": ""}},
        {"id": "6", "properties": {"subject": "c"}},
    ]
    fixture = tmp_path / "tickets.json"
    fixture.write_text(json.dumps({"owners": [], "objects": {"tickets": records}}))
    async with client(data=fixture) as api:
        ascending = [
            await search_ids(api, "tickets", {"sorts": ["subject"], "limit": 3, "after": a}) for a in "03"
        ]
        descending = await search_ids(api, "tickets", {"sorts": ["-subject"]})
    # Text ignores case; equal values keep id order in both directions; no value sorts last in both.
    assert ascending == [["3", "1", "4"], ["6", "2", "5"]]
    assert descending == ["6", "1", "4", "3", "2", "5"]


async def test_meetings_sort_by_start_as_instants_whatever_offset_they_were_sent_with() -> None:
    starts = ["2025-03-03T10:30:00+09:00", "2025-03-03T01:00:00Z", "2025-03-02T20:15:00-05:00"]
    async with client() as api:
        ids = [
            (
                await api.post(
                    CREATE,
                    params=ORGANIZER,
                    json=meeting(hs_meeting_start_time=start, hs_meeting_end_time="2025-03-04T00:00:00Z"),
                )
            ).json()["id"]
            for start in starts
        ]
        answer = await _search(api, "meetings", {"sorts": [{"propertyName": "hs_meeting_start_time"}]})
    found = answer.json()["results"]
    # 01:00Z, 01:15Z, 01:30Z: the second, the third, the first.
    assert [r["id"] for r in found] == [ids[1], ids[2], ids[0]]
    assert [r["properties"]["hs_meeting_start_time"] for r in found] == [
        "2025-03-03T01:00:00Z",
        "2025-03-03T01:15:00Z",
        "2025-03-03T01:30:00Z",
    ]


@pytest.mark.parametrize(
    ("sorts", "message"),
    [
        (["amount", "dealname"], "Too many sorts: 2. A search takes at most 1."),
        (
            [{"propertyName": "amount", "direction": "UP"}],
            "Invalid sort {'propertyName': 'amount', 'direction': 'UP'}",
        ),
        ([{"direction": "ASCENDING"}], "Invalid sort {'direction': 'ASCENDING'}"),
        (["-"], "Invalid sort '-'"),
        ("amount", "sorts must be an array."),
    ],
)
async def test_bad_sorts_are_refused(sorts: Any, message: str) -> None:
    async with client() as api:
        answer = await _search(api, "deals", {"sorts": sorts})
    assert answer.status_code == 400
    assert answer.json()["category"] == "VALIDATION_ERROR"
    assert answer.json()["message"].startswith(message)


# --- paging and the 10,000-result ceiling ---------------------------------------------------------------------


@pytest.fixture(scope="module")
def many_contacts(tmp_path_factory: pytest.TempPathFactory) -> Path:
    contacts = [{"id": str(n), "properties": {"email": f"c{n}@example.com"}} for n in range(1, 10_151)]
    fixture = tmp_path_factory.mktemp("many") / "contacts.json"
    fixture.write_text(json.dumps({"owners": [], "objects": {"contacts": contacts}}))
    return fixture


async def test_no_search_returns_a_result_past_the_ten_thousandth(many_contacts: Path) -> None:
    async with client(data=many_contacts) as api:
        last_full = await _search(api, "contacts", {"limit": 200, "after": "9800"})
        straddling = await _search(api, "contacts", {"limit": 200, "after": "9900"})
        beyond = await _search(api, "contacts", {"limit": 10, "after": "10000"})
    assert last_full.status_code == straddling.status_code == 200
    assert last_full.json()["total"] == straddling.json()["total"] == 10_150  # total counts every match
    assert [r["id"] for r in last_full.json()["results"]][-1] == "10000"
    assert last_full.json()["paging"] == {"next": {"after": "10000"}}
    assert [r["id"] for r in straddling.json()["results"]] == [str(n) for n in range(9901, 10_001)]
    # The cursor still points on, as HubSpot's does; following it is the 400 its guide warns about.
    assert straddling.json()["paging"] == {"next": {"after": "10100"}}
    assert beyond.status_code == 400
    assert beyond.json()["category"] == "VALIDATION_ERROR"
    assert beyond.json()["message"] == (
        "after 10000 is past the end of what a search returns: no search pages beyond its first 10000 results."
    )


@pytest.mark.parametrize("limit", [0, 201, "10", True])
async def test_limit_is_one_to_two_hundred(limit: Any) -> None:
    async with client() as api:
        answer = await _search(api, "contacts", {"limit": limit})
    assert answer.status_code == 400
    assert answer.json()["message"] == f"limit must be an integer from 1 to 200, got {limit!r}."


# --- meeting properties ---------------------------------------------------------------------------------------

MEETING_PROPERTIES = {
    "hubspot_owner_id": "8100002",
    "hs_meeting_title": "Site visit",
    "hs_meeting_start_time": "2025-03-03T10:00:00+09:00",
    "hs_meeting_end_time": "2025-03-03T11:30:00.250+09:00",
    "hs_timestamp": "2025-03-03T10:00:00+09:00",
    "hs_meeting_body": "Walk the new line",
    "hs_internal_meeting_notes": "Bring the safety forms",
    "hs_meeting_location": "Osaka plant",
    "hs_meeting_location_type": "ADDRESS",
    "hs_meeting_outcome": "COMPLETED",
    "hs_attendee_owner_ids": ["8100003", "8100004"],
}
STORED = MEETING_PROPERTIES | {
    "hs_meeting_start_time": "2025-03-03T01:00:00Z",
    "hs_meeting_end_time": "2025-03-03T02:30:00.250Z",
    "hs_timestamp": "2025-03-03T01:00:00Z",
    "hs_attendee_owner_ids": "8100003;8100004",
}

OTHER = meeting(
    hs_meeting_start_time="2025-04-01T01:00:00Z",
    hs_meeting_end_time="2025-04-01T02:00:00Z",
    hs_timestamp="2025-04-01T01:00:00Z",
)


@pytest.mark.parametrize(
    ("name", "value"),
    [
        *[(name, value) for name, value in STORED.items()],
        ("hs_meeting_start_time", "1740963600000"),  # the same instant as epoch milliseconds
        ("hs_meeting_end_time", "2025-03-03T11:30:00.250+09:00"),
        ("hs_meeting_title", "SITE VISIT"),  # EQ on text ignores case
    ],
)
async def test_every_meeting_property_can_be_searched_on(name: str, value: str) -> None:
    async with client() as api:
        created = (await api.post(CREATE, params=ORGANIZER, json=meeting(**MEETING_PROPERTIES))).json()
        await api.post(CREATE, params=ORGANIZER, json=OTHER)  # shares no value with the first
        found = await search_ids(api, "meetings", search_body([where(name, "EQ", value)]))
    assert found == [created["id"]]


async def test_meeting_search_returns_every_property_asked_for_with_times_in_utc() -> None:
    async with client() as api:
        created = (await api.post(CREATE, params=ORGANIZER, json=meeting(**MEETING_PROPERTIES))).json()
        answer = await _search(api, "meetings", {"properties": [*MEETING_PROPERTIES, "hs_activity_type"]})
    result = answer.json()["results"][0]
    assert answer.json()["total"] == 1
    assert result["properties"] == STORED | {
        "hs_activity_type": None,  # asked for, never set
        "hs_object_id": created["id"],
        "hs_createdate": created["createdAt"],
        "hs_lastmodifieddate": created["createdAt"],
    }


async def test_a_longer_lag_for_a_share_of_meetings_keeps_them_out_of_search_longer() -> None:
    clock = FakeClock()
    async with client(clock, search_lag_ms=1000) as api:
        await api.post("/__sandbox/faults", json={"search_lag_extra_ms": 4000, "search_lag_extra_share": 0.5})
        ids = [(await api.post(CREATE, params=ORGANIZER, json=meeting())).json()["id"] for _ in range(20)]
        clock.advance(1000)
        after_the_lag = await search_ids(api, "meetings", {"limit": 100})
        clock.advance(3999)
        almost = await search_ids(api, "meetings", {"limit": 100})
        clock.advance(1)
        all_in = await search_ids(api, "meetings", {"limit": 100})
    assert 0 < len(after_the_lag) < 20  # a seeded share waits longer
    assert almost == after_the_lag
    assert all_in == ids
