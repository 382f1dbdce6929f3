"""Sandbox meeting object routes: read one, update one, CRM batch create, and v4 associations."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from tests.test_sandbox import (
    CREATE,
    ORGANIZER,
    FakeClock,
    association,
    client,
    meeting,
    search_body,
    search_ids,
    stats,
    where,
)

pytestmark = pytest.mark.anyio

MEETINGS = "/crm/v3/objects/meetings"
BATCH_CREATE = f"{MEETINGS}/batch/create"
TYPE_200 = [{"associationCategory": "HUBSPOT_DEFINED", "associationTypeId": 200}]
TYPE_188 = [{"associationCategory": "HUBSPOT_DEFINED", "associationTypeId": 188}]


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


async def _create(api: httpx.AsyncClient, **properties: Any) -> dict[str, Any]:
    answer = await api.post(CREATE, params=ORGANIZER, json=meeting(**properties))
    assert answer.status_code == 200, answer.text
    body: dict[str, Any] = answer.json()
    return body


def _v4(meeting_id: str, target: str = "contacts/7100002") -> str:
    return f"/crm/v4/objects/meetings/{meeting_id}/associations/{target}"


def logged(
    trace: str | None = None, associations: list[Any] | None = None, **properties: Any
) -> dict[str, Any]:
    """A valid batch create input: a past meeting, logged without a calendar event."""
    base = {
        "hs_timestamp": "2024-11-05T06:00:00Z",
        "hs_meeting_title": "Kick-off",
        "hs_meeting_start_time": "2024-11-05T06:00:00Z",
        "hs_meeting_end_time": "2024-11-05T07:00:00Z",
        "hs_meeting_outcome": "COMPLETED",
        "hubspot_owner_id": "8100003",
    }
    merged = {name: value for name, value in (base | properties).items() if value is not None}
    item: dict[str, Any] = {
        "properties": merged,
        "associations": [association("7100003", 200)] if associations is None else associations,
    }
    return item if trace is None else item | {"objectWriteTraceId": trace}


# --- read one -------------------------------------------------------------------------------------------------


async def test_read_one_meeting_with_chosen_properties_and_v3_associations() -> None:
    body = meeting()
    body["associations"] += [association("6100001", 188), association("7100002", 200)]
    async with client() as api:
        created = (await api.post(CREATE, params=ORGANIZER, json=body)).json()
        answer = await api.get(
            f"{MEETINGS}/{created['id']}",
            params={
                "properties": "hs_meeting_title,hs_meeting_body",
                "associations": "contacts,companies,deals",
            },
        )
        plain = await api.get(f"{MEETINGS}/{created['id']}")
        repeated = await api.get(
            f"{MEETINGS}/{created['id']}?properties=hs_meeting_title&properties=hubspot_owner_id&associations=contact"
        )
    assert answer.status_code == 200
    assert answer.json() == {
        "id": created["id"],
        "properties": {
            "hs_object_id": created["id"],
            "hs_createdate": created["createdAt"],
            "hs_lastmodifieddate": created["createdAt"],
            "hs_meeting_title": "Quarterly review",
            "hs_meeting_body": None,
        },
        "createdAt": created["createdAt"],
        "updatedAt": created["createdAt"],
        "archived": False,
        # A type with no association (deals) is left out, as HubSpot does.
        "associations": {
            "contacts": {
                "results": [
                    {"id": "7100001", "type": "meeting_event_to_contact"},
                    {"id": "7100002", "type": "meeting_event_to_contact"},
                ]
            },
            "companies": {"results": [{"id": "6100001", "type": "meeting_event_to_company"}]},
        },
    }
    assert plain.json()["properties"] == {
        "hs_object_id": created["id"],
        "hs_createdate": created["createdAt"],
        "hs_lastmodifieddate": created["createdAt"],
    }
    assert "associations" not in plain.json()
    assert repeated.json()["properties"]["hubspot_owner_id"] == "8100001"
    assert list(repeated.json()["associations"]) == ["contacts"]


async def test_unknown_meeting_is_object_not_found_and_counts_in_the_window() -> None:
    async with client() as api:
        read = await api.get(f"{MEETINGS}/123")
        update = await api.patch(f"{MEETINGS}/123", json={"properties": {"hs_meeting_title": "x"}})
        put = await api.put(_v4("123"), json=TYPE_200)
        delete = await api.delete(_v4("123"))
    for answer in (read, update, put, delete):
        assert answer.status_code == 404
        assert answer.json()["category"] == "OBJECT_NOT_FOUND"
        assert answer.json()["message"] == "resource not found: no meeting has id 123"
    assert [a.headers["x-hubspot-ratelimit-remaining"] for a in (read, update, put, delete)] == [
        "99",
        "98",
        "97",
        "96",
    ]


# --- update ---------------------------------------------------------------------------------------------------


async def test_update_changes_clears_and_answers_the_object() -> None:
    async with client() as api:
        created = await _create(api, hs_meeting_location="Room 4", hs_attendee_owner_ids=["8100002"])
        answer = await api.patch(
            f"{MEETINGS}/{created['id']}",
            json={
                "properties": {
                    "hs_meeting_title": "Quarterly review (moved)",
                    "hs_meeting_start_time": "2025-03-03T11:00:00+09:00",
                    "hs_meeting_end_time": "1741000000000",
                    "hs_meeting_location": "",
                    "hs_attendee_owner_ids": "8100002;8100003",
                    "hs_meeting_outcome": "RESCHEDULED",
                }
            },
        )
        stored = (await api.get("/__sandbox/meetings")).json()["results"][0]
        counters = await stats(api)
    body = answer.json()
    assert answer.status_code == 200
    assert set(body) == {"id", "properties", "createdAt", "updatedAt", "archived"}
    assert body["archived"] is False
    assert body["createdAt"] == created["createdAt"]
    assert body["updatedAt"] >= created["createdAt"]
    assert body["properties"] == {
        "hs_object_id": created["id"],
        "hs_createdate": created["createdAt"],
        "hs_lastmodifieddate": body["updatedAt"],
        "hs_meeting_title": "Quarterly review (moved)",
        "hs_meeting_start_time": "2025-03-03T02:00:00Z",
        "hs_meeting_end_time": "2025-03-03T11:06:40Z",
        "hs_timestamp": "2025-03-03T01:00:00Z",
        "hs_meeting_outcome": "RESCHEDULED",
        "hubspot_owner_id": "8100001",
        "hs_attendee_owner_ids": "8100002;8100003",
    }
    system = ("hs_object_id", "hs_createdate", "hs_lastmodifieddate")
    assert stored["crmProperties"] == {k: v for k, v in body["properties"].items() if k not in system}
    assert "hs_meeting_location" not in stored["properties"]
    assert stored["properties"]["hs_attendee_owner_ids"] == "8100002;8100003"
    assert stored["updatedAt"] == body["updatedAt"]
    assert counters["updates_by_route"] == {"update_meeting": 1}
    assert counters["requests_by_route"]["update_meeting"] == 1


@pytest.mark.parametrize(
    ("properties", "message", "code"),
    [
        (
            {"hs_object_id": "1"},
            '"hs_object_id" is a read only property; its value cannot be set.',
            "READ_ONLY_VALUE",
        ),
        (
            {"hs_lastmodifieddate": "2025-01-01T00:00:00Z"},
            '"hs_lastmodifieddate" is a read only property; its value cannot be set.',
            "READ_ONLY_VALUE",
        ),
        ({"hs_meeting_color": "blue"}, 'Property "hs_meeting_color" does not exist', "PROPERTY_DOESNT_EXIST"),
        ({"hs_meeting_title": 5}, "properties.hs_meeting_title must be a string.", "INVALID_TYPE"),
        (
            {"hs_attendee_owner_ids": ["8100002"]},
            "properties.hs_attendee_owner_ids must be a string.",  # the CRM takes ";"-joined strings only
            "INVALID_TYPE",
        ),
        (
            {"hs_meeting_outcome": "DONE"},
            "properties.hs_meeting_outcome must be one of SCHEDULED, COMPLETED, RESCHEDULED, NO_SHOW, CANCELED, "
            "got 'DONE'.",
            "INVALID_OPTION",
        ),
        (
            {"hubspot_owner_id": "8100006"},
            "properties.hubspot_owner_id '8100006' is not the id of an active owner.",
            "INVALID_OWNER",
        ),
        (
            {"hs_attendee_owner_ids": "8100002;999"},
            "properties.hs_attendee_owner_ids: '999' is not the id of an owner.",
            "INVALID_OWNER",
        ),
        (
            {"hs_timestamp": "2025-03-03T10:00:00"},
            "properties.hs_timestamp must be epoch milliseconds or an ISO 8601 date-time with a zone "
            "(Z or an offset), got '2025-03-03T10:00:00'.",
            "INVALID_DATE_TIME",
        ),
        (
            # Against the stored start (01:00Z): the end alone may not move before it.
            {"hs_meeting_end_time": "2025-03-03T00:30:00Z"},
            "properties.hs_meeting_end_time must be after properties.hs_meeting_start_time.",
            "INVALID_TIME_RANGE",
        ),
    ],
)
async def test_update_validation(properties: dict[str, Any], message: str, code: str) -> None:
    async with client() as api:
        created = await _create(api)
        answer = await api.patch(f"{MEETINGS}/{created['id']}", json={"properties": properties})
        stored = (await api.get("/__sandbox/meetings")).json()["results"][0]
        counters = await stats(api)
    refused = answer.json()
    assert answer.status_code == 400
    assert refused["category"] == "VALIDATION_ERROR"
    assert refused["message"] == message
    assert [(e["message"], e["code"]) for e in refused["errors"]] == [(message, code)]
    assert stored["crmProperties"]["hs_meeting_title"] == "Quarterly review"
    assert counters["updates_by_route"] == {}


async def test_update_needs_properties() -> None:
    async with client() as api:
        created = await _create(api)
        answer = await api.patch(f"{MEETINGS}/{created['id']}", json={"hs_meeting_title": "x"})
    assert answer.status_code == 400
    assert answer.json()["message"] == "properties is required."


async def test_search_sees_an_update_only_after_the_lag() -> None:
    clock = FakeClock()
    async with client(clock, search_lag_ms=2000) as api:
        created = await _create(api)
        clock.advance(2000)
        await api.patch(f"{MEETINGS}/{created['id']}", json={"properties": {"hs_meeting_title": "Renamed"}})
        by_new, by_old = (
            search_body([where("hs_meeting_title", "EQ", title)]) for title in ("Renamed", "Quarterly review")
        )
        stale = (await search_ids(api, "meetings", by_new), await search_ids(api, "meetings", by_old))
        read = (
            await api.get(f"{MEETINGS}/{created['id']}", params={"properties": "hs_meeting_title"})
        ).json()
        clock.advance(2000)
        fresh = (await search_ids(api, "meetings", by_new), await search_ids(api, "meetings", by_old))
    assert stale == ([], [created["id"]])  # search still has the old title
    assert read["properties"]["hs_meeting_title"] == "Renamed"  # a read is consistent at once
    assert fresh == ([created["id"]], [])


# --- batch create ---------------------------------------------------------------------------------------------


async def test_batch_create_all_valid_is_201_in_no_particular_order_and_one_request() -> None:
    inputs = [logged(f"row-{n}", hs_meeting_title=f"Call {n}") for n in range(6)]
    inputs.append(logged(associations=[]))  # no trace id, no links
    async with client() as api:
        answer = await api.post(BATCH_CREATE, json={"inputs": inputs})
        stored = (await api.get("/__sandbox/meetings")).json()["results"]
        counters = await stats(api)
    body = answer.json()
    assert answer.status_code == 201
    assert set(body) == {"status", "results", "startedAt", "completedAt"}
    assert body["status"] == "COMPLETE"
    assert body["startedAt"] <= body["completedAt"]
    traces = [result.get("objectWriteTraceId") for result in body["results"]]
    assert sorted(t for t in traces if t) == [f"row-{n}" for n in range(6)]
    assert traces.count(None) == 1
    assert traces != [*(f"row-{n}" for n in range(6)), None]  # shuffled, seeded
    first = next(r for r in body["results"] if r.get("objectWriteTraceId") == "row-0")
    assert set(first) == {"id", "properties", "createdAt", "updatedAt", "archived", "objectWriteTraceId"}
    assert first["properties"]["hs_meeting_title"] == "Call 0"
    assert first["properties"]["hs_object_id"] == first["id"]
    by_id = {m["id"]: m for m in stored}
    assert by_id[first["id"]]["source"] == "batch"
    assert by_id[first["id"]]["organizerUserId"] is None
    assert by_id[first["id"]]["associations"] == [association("7100003", 200)]
    assert by_id[first["id"]]["objectWriteTraceId"] == "row-0"
    assert counters["requests_by_route"] == {"batch_create_meetings": 1}
    assert counters["max_in_window"] == 1
    assert counters["meetings_created"] == 7
    assert counters["meetings_by_source"] == {"scheduler": 0, "batch": 7, "manual": 0}


async def test_batch_create_order_repeats_with_the_seed() -> None:
    inputs = [logged(f"row-{n}") for n in range(8)]

    async def order() -> list[str]:
        async with client() as api:
            found = (await api.post(BATCH_CREATE, json={"inputs": inputs})).json()["results"]
            return [r["objectWriteTraceId"] for r in found]

    assert await order() == await order()


async def test_batch_create_with_refused_inputs_is_207_and_creates_the_others() -> None:
    inputs = [
        logged("ok-1"),
        logged("bad-owner", hubspot_owner_id="8100006"),
        logged("ok-2", hs_timestamp="1730786400000"),  # epoch ms is a CRM date-time too
        logged(None, hs_timestamp=None, hs_meeting_title=7),
        logged("bad-link", associations=[association("7100003", 188)]),
    ]
    async with client() as api:
        answer = await api.post(BATCH_CREATE, json={"inputs": inputs})
        counters = await stats(api)
    body = answer.json()
    assert answer.status_code == 207
    assert sorted(r["objectWriteTraceId"] for r in body["results"]) == ["ok-1", "ok-2"]
    assert next(r for r in body["results"] if r["objectWriteTraceId"] == "ok-2")["properties"][
        "hs_timestamp"
    ] == ("2024-11-05T06:00:00Z")
    assert body["numErrors"] == 3
    assert body["errors"] == [
        {
            "status": "error",
            "category": "VALIDATION_ERROR",
            "message": "inputs[1].properties.hubspot_owner_id '8100006' is not the id of an active owner.",
            "context": {"objectWriteTraceId": ["bad-owner"]},
            "errors": [
                {
                    "message": "inputs[1].properties.hubspot_owner_id '8100006' is not the id of an active owner.",
                    "in": "inputs[1].properties.hubspot_owner_id",
                    "code": "INVALID_OWNER",
                }
            ],
        },
        {
            "status": "error",
            "category": "VALIDATION_ERROR",
            "message": "2 validation errors: inputs[3].properties.hs_timestamp is required. (and more)",
            "context": {},
            "errors": [
                {
                    "message": "inputs[3].properties.hs_timestamp is required.",
                    "in": "inputs[3].properties.hs_timestamp",
                    "code": "REQUIRED",
                },
                {
                    "message": "inputs[3].properties.hs_meeting_title must be a string.",
                    "in": "inputs[3].properties.hs_meeting_title",
                    "code": "INVALID_TYPE",
                },
            ],
        },
        {
            "status": "error",
            "category": "VALIDATION_ERROR",
            "message": "inputs[4].associations[0].types[0]: association type 188 needs a company, "
            "and no company has id 7100003.",
            "context": {"objectWriteTraceId": ["bad-link"]},
            "errors": [
                {
                    "message": "inputs[4].associations[0].types[0]: association type 188 needs a company, "
                    "and no company has id 7100003.",
                    "in": "inputs[4].associations[0].types[0].associationTypeId",
                    "code": "OBJECT_NOT_FOUND",
                }
            ],
        },
    ]
    assert counters["meetings_created"] == 2


@pytest.mark.parametrize(
    ("item", "message"),
    [
        ({"properties": {"hs_timestamp": "2024-11-05T06:00:00Z"}}, "inputs[0].associations is required."),
        ({"associations": []}, "inputs[0].properties is required."),
        (logged("x") | {"objectWriteTraceId": 5}, "inputs[0].objectWriteTraceId must be a string."),
        ("not an object", "inputs[0] must be an object."),
        (
            # A calendar-only property of the Scheduler create is not a CRM property.
            logged("x") | {"timezone": "Asia/Tokyo"} | {"properties": {"hs_timestamp": "x"}},
            "inputs[0].properties.hs_timestamp must be epoch milliseconds or an ISO 8601 date-time with a zone "
            "(Z or an offset), got 'x'.",
        ),
    ],
)
async def test_batch_create_input_shapes(item: Any, message: str) -> None:
    async with client() as api:
        answer = await api.post(BATCH_CREATE, json={"inputs": [item]})
    assert answer.status_code == 207
    assert answer.json()["results"] == []
    assert answer.json()["errors"][0]["errors"][0]["message"] == message


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (
            {"inputs": [logged(str(n)) for n in range(101)]},
            "Too many inputs: 101. A batch create takes at most 100.",
        ),
        ({"inputs": {"a": 1}}, "inputs must be an array."),
        ({}, "inputs must be an array."),
    ],
)
async def test_batch_create_refusals_create_nothing(body: dict[str, Any], message: str) -> None:
    async with client() as api:
        answer = await api.post(BATCH_CREATE, json=body)
        counters = await stats(api)
    assert answer.status_code == 400
    assert answer.json()["category"] == "VALIDATION_ERROR"
    assert answer.json()["message"] == message
    assert counters["meetings_created"] == 0


async def test_batch_created_meetings_reach_search_after_the_lag() -> None:
    clock = FakeClock()
    async with client(clock, search_lag_ms=500) as api:
        found = (await api.post(BATCH_CREATE, json={"inputs": [logged("a")]})).json()["results"]
        before = await search_ids(api, "meetings", {})
        clock.advance(500)
        after = await search_ids(api, "meetings", {})
    assert (before, after) == ([], [found[0]["id"]])


# --- v4 associations ------------------------------------------------------------------------------------------


async def test_put_and_delete_one_association() -> None:
    async with client() as api:
        created = await _create(api)
        put = await api.put(_v4(created["id"], "contacts/7100002"), json=TYPE_200)
        again = await api.put(_v4(created["id"], "contact/7100002"), json=TYPE_200)  # singular works too
        company = await api.put(_v4(created["id"], "0-2/6100003"), json=TYPE_188)  # and the type id
        linked = (await api.get("/__sandbox/meetings")).json()["results"][0]["associations"]
        delete = await api.delete(_v4(created["id"], "contacts/7100001"))
        missing = await api.delete(_v4(created["id"], "contacts/7100009"))  # nothing to delete: still 204
        left = (await api.get("/__sandbox/meetings")).json()["results"][0]["associations"]
        counters = await stats(api)
    assert put.status_code == again.status_code == company.status_code == 201
    assert put.json() == {
        "fromObjectTypeId": "0-47",
        "fromObjectId": created["id"],
        "toObjectTypeId": "0-1",
        "toObjectId": "7100002",
        "labels": [],
    }
    assert company.json()["toObjectTypeId"] == "0-2"
    assert linked == [association("7100001", 200), association("7100002", 200), association("6100003", 188)]
    assert delete.status_code == missing.status_code == 204
    assert delete.content == b""
    assert left == [association("7100002", 200), association("6100003", 188)]
    assert counters["updates_by_route"] == {"association_create": 3, "association_delete": 2}


@pytest.mark.parametrize(
    ("target", "body", "status", "message"),
    [
        (
            "contacts/7100002",
            TYPE_188,
            400,
            "[0]: association type 188 links a meeting to a company, not to a contact.",
        ),
        (
            "contacts/7199999",
            TYPE_200,
            400,
            "[0]: association type 200 needs a contact, and no contact has id 7199999.",
        ),
        (
            "contacts/7100002",
            [{"associationCategory": "HUBSPOT_DEFINED", "associationTypeId": 204}],
            400,
            "[0]: HUBSPOT_DEFINED association type 204 does not link a meeting to an object.",
        ),
        ("contacts/7100002", [], 400, "The body must be a non-empty array of association specs."),
        (
            "contacts/7100002",
            {"associationTypeId": 200},
            400,
            "The body must be a non-empty array of association specs.",
        ),
        ("widgets/1", TYPE_200, 404, "Unable to infer object type from: widgets"),
    ],
)
async def test_put_association_refusals(target: str, body: Any, status: int, message: str) -> None:
    async with client() as api:
        created = await _create(api)
        answer = await api.put(_v4(created["id"], target), json=body)
        linked = (await api.get("/__sandbox/meetings")).json()["results"][0]["associations"]
    assert answer.status_code == status
    assert answer.json()["message"] == message
    assert linked == [association("7100001", 200)]


async def test_batch_association_create_and_archive() -> None:
    async with client() as api:
        first, second = await _create(api), await _create(api, hs_meeting_title="Other")
        created = await api.post(
            "/crm/v4/associations/meetings/contacts/batch/create",
            json={
                "inputs": [
                    {"from": {"id": first["id"]}, "to": {"id": "7100004"}, "types": TYPE_200},
                    {"from": {"id": second["id"]}, "to": {"id": "7100005"}, "types": TYPE_200},
                    {"from": {"id": "1"}, "to": {"id": "7100005"}, "types": TYPE_200},
                    {"from": {"id": first["id"]}, "to": {"id": "7100005"}, "types": TYPE_188},
                ]
            },
        )
        archived = await api.post(
            "/crm/v4/associations/meetings/contacts/batch/archive",
            json={"inputs": [{"from": {"id": first["id"]}, "to": [{"id": "7100001"}, {"id": "7100004"}]}]},
        )
        stored = {
            m["id"]: m["associations"] for m in (await api.get("/__sandbox/meetings")).json()["results"]
        }
        counters = await stats(api)
    body = created.json()
    assert created.status_code == 207
    assert [(r["fromObjectId"], r["toObjectId"]) for r in body["results"]] == [
        (first["id"], "7100004"),
        (second["id"], "7100005"),
    ]
    assert body["numErrors"] == 2
    assert [(e["category"], e["message"], e["context"]) for e in body["errors"]] == [
        ("OBJECT_NOT_FOUND", "inputs[2]: no meeting has id 1", {"fromId": ["1"], "toId": ["7100005"]}),
        (
            "VALIDATION_ERROR",
            "inputs[3].types[0]: association type 188 links a meeting to a company, not to a contact.",
            {"fromId": [first["id"]], "toId": ["7100005"]},
        ),
    ]
    assert archived.status_code == 204
    assert stored == {
        first["id"]: [],
        second["id"]: [association("7100001", 200), association("7100005", 200)],
    }
    assert counters["updates_by_route"] == {"association_batch_create": 2, "association_batch_archive": 1}
    assert counters["requests_by_route"] == {
        "create_meeting": 2,
        "association_batch_create": 1,
        "association_batch_archive": 1,
    }


async def test_batch_association_all_valid_is_201_and_bad_archive_changes_nothing() -> None:
    async with client() as api:
        created = await _create(api)
        ok = await api.post(
            "/crm/v4/associations/meetings/companies/batch/create",
            json={"inputs": [{"from": {"id": created["id"]}, "to": {"id": "6100002"}, "types": TYPE_188}]},
        )
        bad = await api.post(
            "/crm/v4/associations/meetings/companies/batch/archive",
            json={
                "inputs": [
                    {"from": {"id": created["id"]}, "to": [{"id": "6100002"}]},
                    {"from": {"id": "1"}, "to": [{"id": "6100002"}]},
                ]
            },
        )
        malformed = await api.post(
            "/crm/v4/associations/meetings/companies/batch/archive",
            json={"inputs": [{"from": {"id": created["id"]}, "to": {"id": "6100002"}}]},
        )
        stored = (await api.get("/__sandbox/meetings")).json()["results"][0]["associations"]
    assert ok.status_code == 201
    assert set(ok.json()) == {"status", "results", "startedAt", "completedAt"}
    assert ok.json()["results"][0]["toObjectTypeId"] == "0-2"
    assert bad.status_code == 404
    assert bad.json()["message"] == "inputs[1]: no meeting has id 1"
    assert malformed.status_code == 400
    assert malformed.json()["message"] == 'inputs[0] must look like {"from": {"id"}, "to": [{"id"}, ...]}.'
    assert stored == [association("7100001", 200), association("6100002", 188)]


# --- duplicates -----------------------------------------------------------------------------------------------


async def test_duplicates_by_content_tell_meetings_apart_by_their_contacts() -> None:
    other_contact = meeting()
    other_contact["associations"] = [association("7100002", 200)]
    async with client() as api:
        await _create(api)
        await _create(api)  # the same in every way
        await api.post(
            CREATE, params=ORGANIZER, json=other_contact
        )  # same owner, start, title; another contact
        await _create(api, hs_meeting_body="Agenda attached")  # same owner, start, title; another body
        counters = await stats(api)
    assert counters["duplicates"] == 3
    assert counters["duplicates_by_content"] == 1
