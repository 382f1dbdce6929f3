"""The HubSpot sandbox: in-process through httpx.ASGITransport, plus a real server for what only a socket shows."""

from __future__ import annotations

import dataclasses
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, cast

import httpx
import pytest
from click.testing import CliRunner

from importer.sandbox import Faults, SandboxConfig, create_app
from importer.sandbox.cli import sandbox_command
from importer.sandbox.faults import FaultDice, FaultSettingsError
from tests.integration.conftest import Sandbox

pytestmark = pytest.mark.anyio

REPO = Path(__file__).resolve().parents[1]
TOKEN = "sandbox-token"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
CREATE = "/scheduler/2026-03/meetings/calendar"
ORGANIZER = {"organizerUserId": "52000001"}
WINDOW_HEADERS = (
    "x-hubspot-ratelimit-max",
    "x-hubspot-ratelimit-remaining",
    "x-hubspot-ratelimit-interval-milliseconds",
)


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


class FakeClock:
    """Monotonic seconds that move only when a test says so, so window tests are exact and instant."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now

    def advance(self, ms: int) -> None:
        self.now += ms / 1000


def client(
    clock: FakeClock | None = None, faults: Faults | None = None, **settings: Any
) -> httpx.AsyncClient:
    config = SandboxConfig(
        search_lag_ms=settings.pop("search_lag_ms", 0), faults=faults or Faults(), **settings
    )
    app = create_app(config, clock or FakeClock())
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://test", headers=AUTH)


def meeting(**properties: Any) -> dict[str, Any]:
    """A valid create body; a property given as None is left out."""
    base: dict[str, Any] = {
        "hs_meeting_title": "Quarterly review",
        "hs_meeting_start_time": "2025-03-03T01:00:00Z",
        "hs_meeting_end_time": "2025-03-03T02:00:00Z",
        "hs_timestamp": "2025-03-03T01:00:00Z",
        "hs_meeting_outcome": "SCHEDULED",
        "hubspot_owner_id": "8100001",
    }
    merged = {name: value for name, value in (base | properties).items() if value is not None}
    return {
        "properties": merged,
        "associations": [association("7100001", 200)],
        "timezone": "Asia/Tokyo",
        "emailReminderSchedule": {
            "reminders": [{"numberOfTimeUnits": 15, "timeUnit": "MINUTES"}],
            "shouldIncludeInviteDescription": False,
        },
    }


def association(object_id: str, type_id: int) -> dict[str, Any]:
    return {
        "to": {"id": object_id},
        "types": [{"associationCategory": "HUBSPOT_DEFINED", "associationTypeId": type_id}],
    }


def search_body(*groups: list[dict[str, Any]], **extra: Any) -> dict[str, Any]:
    return {"filterGroups": [{"filters": filters} for filters in groups], **extra}


async def search_ids(api: httpx.AsyncClient, object_type: str, body: dict[str, Any]) -> list[str]:
    answer = await api.post(f"/crm/v3/objects/{object_type}/search", json=body)
    assert answer.status_code == 200, answer.text
    return [result["id"] for result in answer.json()["results"]]


async def stats(api: httpx.AsyncClient) -> dict[str, Any]:
    answer = await api.get("/__sandbox/stats")
    body: dict[str, Any] = answer.json()
    return body


# --- auth and routing -------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("authorization", "message"),
    [
        ("", "Authentication credentials not found."),
        ("Bearer wrong", "The access token in the Authorization header is not valid."),
        (f"Basic {TOKEN}", "The access token in the Authorization header is not valid."),
    ],
)
async def test_api_needs_the_bearer_token(authorization: str, message: str) -> None:
    async with client() as api:
        answer = await api.get("/crm/v3/owners", headers={"Authorization": authorization})
    body = answer.json()
    assert answer.status_code == 401
    assert body["category"] == "INVALID_AUTHENTICATION"
    assert body["message"].startswith(message)
    assert body["correlationId"] == answer.headers["x-hubspot-correlation-id"]
    assert "x-hubspot-ratelimit-max" not in answer.headers


async def test_admin_routes_need_no_auth_and_unknown_routes_get_hubspot_404() -> None:
    async with client() as api:
        admin = await api.get("/__sandbox/stats", headers={"Authorization": ""})
        missing = await api.get("/crm/v3/nothing")
        wrong_method = await api.get("/crm/v3/objects/contacts/search")
        unknown_type = await api.post("/crm/v3/objects/widgets/search", json={})
    assert admin.status_code == 200
    assert "x-hubspot-correlation-id" in admin.headers
    assert missing.status_code == 404
    assert missing.json()["message"] == "No such route: GET /crm/v3/nothing"
    assert missing.json()["correlationId"] == missing.headers["x-hubspot-correlation-id"]
    assert wrong_method.status_code == 405
    assert unknown_type.status_code == 404
    assert unknown_type.json()["message"] == "Unable to infer object type from: widgets"


# --- owners ---------------------------------------------------------------------------------------------------


async def test_account_details_name_the_portal_and_count_in_the_window() -> None:
    async with client(portal_id=99) as api:
        answer = await api.get("/account-info/v3/details")
        versioned = await api.get("/account-info/2026-03/details")
        unauthorised = await api.get("/account-info/v3/details", headers={"Authorization": "Bearer nope"})
    assert answer.status_code == versioned.status_code == 200
    assert answer.json()["portalId"] == versioned.json()["portalId"] == 99
    assert answer.headers["x-hubspot-ratelimit-remaining"] == "99"
    assert unauthorised.status_code == 401


async def test_owners_page_through_active_owners() -> None:
    async with client() as api:
        ids: list[str] = []
        params = {"limit": "2"}
        pages = 0
        while True:
            answer = await api.get("/crm/v3/owners", params=params)
            body = answer.json()
            ids += [owner["id"] for owner in body["results"]]
            pages += 1
            if "paging" not in body:
                break
            params["after"] = body["paging"]["next"]["after"]
    assert ids == ["8100001", "8100002", "8100003", "8100004", "8100005", "8100007"]
    assert pages == 3


async def test_owner_shapes_archived_and_email_filter() -> None:
    async with client() as api:
        active = (await api.get("/crm/v3/owners")).json()["results"]
        archived = (await api.get("/crm/v3/owners", params={"archived": "true"})).json()["results"]
        by_email = (await api.get("/crm/v3/owners", params={"email": "Emma.Wilson@Example.com"})).json()[
            "results"
        ]
        too_many = await api.get("/crm/v3/owners", params={"limit": 501})
    assert active[0] == {
        "id": "8100001",
        "userId": 52000001,
        "email": "aiko.tanaka@example.co.jp",
        "firstName": "Aiko",
        "lastName": "Tanaka",
        "type": "PERSON",
        "archived": False,
        "createdAt": "2024-04-01T00:00:00.000Z",
        "updatedAt": "2024-04-01T00:00:00.000Z",
    }
    assert "userId" not in active[-1]  # the deactivated user
    assert [(o["id"], o["userId"], o["archived"]) for o in archived] == [("8100006", 52000006, True)]
    assert [o["id"] for o in by_email] == ["8100004"]
    assert too_many.status_code == 400
    assert too_many.json()["message"] == "limit must be an integer from 1 to 500, got '501'."


# --- batch read -----------------------------------------------------------------------------------------------


async def test_batch_read_by_id_all_found() -> None:
    async with client() as api:
        answer = await api.post(
            "/crm/v3/objects/deals/batch/read",
            json={"inputs": [{"id": "3100002"}, {"id": "3100001"}], "properties": ["dealname", "stage"]},
        )
    body = answer.json()
    assert answer.status_code == 200
    assert body["status"] == "COMPLETE"
    assert "errors" not in body
    first = body["results"][0]
    assert first["id"] == "3100002"
    assert first["archived"] is False
    assert first["properties"]["dealname"] == "Fuji Robotics - Pilot"
    assert first["properties"]["stage"] is None


async def test_batch_read_by_email_is_case_insensitive_and_reports_missing_with_207() -> None:
    async with client() as api:
        answer = await api.post(
            "/crm/v3/objects/contacts/batch/read",
            json={
                "idProperty": "email",
                "inputs": [{"id": "Sarah.Johnson@Northwind.com"}, {"id": "nobody@example.com"}],
                "properties": ["firstname"],
            },
        )
    body = answer.json()
    assert answer.status_code == 207
    assert [r["id"] for r in body["results"]] == ["7100007"]
    assert body["results"][0]["properties"]["email"] == "sarah.johnson@northwind.com"
    assert body["numErrors"] == 1
    assert body["errors"] == [
        {
            "status": "error",
            "category": "OBJECT_NOT_FOUND",
            "message": "Could not get some CONTACT objects, they may be deleted or not exist. Check that ids are valid.",
            "context": {"ids": ["nobody@example.com"]},
        }
    ]


@pytest.mark.parametrize(
    ("object_type", "body", "message"),
    [
        (
            "contacts",
            {"inputs": [{"id": str(7100001 + n)} for n in range(101)]},
            "Too many inputs: 101. A batch read takes at most 100.",
        ),
        (
            "companies",
            {"idProperty": "domain", "inputs": [{"id": "globex.com"}]},
            "domain is not a unique property of COMPANY objects, so it cannot be used as idProperty.",
        ),
    ],
)
async def test_batch_read_refusals(object_type: str, body: dict[str, Any], message: str) -> None:
    async with client() as api:
        answer = await api.post(f"/crm/v3/objects/{object_type}/batch/read", json=body)
    assert answer.status_code == 400
    assert answer.json()["category"] == "VALIDATION_ERROR"
    assert answer.json()["message"] == message


# --- search ---------------------------------------------------------------------------------------------------


def where(name: str, operator: str, value: Any = None, **extra: Any) -> dict[str, Any]:
    found = {"propertyName": name, "operator": operator, **extra}
    return found if value is None else found | {"value": value}


@pytest.mark.parametrize(
    ("object_type", "groups", "expected"),
    [
        ("contacts", [[where("email", "EQ", "MAI.KOBAYASHI@sakura-trading.co.jp")]], ["7100002"]),
        (
            "companies",
            [[where("domain", "IN", values=["globex.com", "contoso.com"])]],
            ["6100005", "6100006", "6100007"],
        ),
        # IN values are not lowercased as the index is, so an uppercase one matches nothing.
        ("companies", [[where("domain", "IN", values=["GLOBEX.com", "contoso.com"])]], ["6100005"]),
        ("deals", [[where("amount", "GTE", 150000)]], ["3100003", "3100007"]),
        ("deals", [[where("amount", "GT", "150000")]], ["3100003"]),
        ("deals", [[where("amount", "LT", 30000)]], ["3100008"]),
        ("deals", [[where("amount", "LTE", 30000)]], ["3100006", "3100008"]),
        ("deals", [[where("amount", "BETWEEN", 40000, highValue=95000)]], ["3100002", "3100004", "3100005"]),
        ("tickets", [[where("subject", "NEQ", "request for api access")]], ["4100001", "4100002", "4100003"]),
        ("tickets", [[where("subject", "HAS_PROPERTY")]], ["4100001", "4100002", "4100003", "4100004"]),
        ("tickets", [[where("priority", "HAS_PROPERTY")]], []),
        (
            "contacts",  # filters in a group AND
            [[where("lastname", "EQ", "Lee"), where("email", "EQ", "daniel.lee@globex.com")]],
            ["7100012"],
        ),
        (
            "contacts",  # groups OR
            [[where("lastname", "EQ", "lee")], [where("firstname", "EQ", "emi")]],
            ["7100006", "7100012"],
        ),
    ],
)
async def test_search_operators_and_groups(object_type: str, groups: list[Any], expected: list[str]) -> None:
    async with client() as api:
        assert await search_ids(api, object_type, search_body(*groups)) == expected


async def test_search_pages_and_has_no_window_headers() -> None:
    async with client() as api:
        first = await api.post("/crm/v3/objects/contacts/search", json={"limit": 5})
        last = await api.post("/crm/v3/objects/contacts/search", json={"limit": 5, "after": "10"})
    assert first.json()["total"] == 12
    assert [r["id"] for r in first.json()["results"]] == [str(7100001 + n) for n in range(5)]
    assert first.json()["paging"] == {"next": {"after": "5"}}
    assert [r["id"] for r in last.json()["results"]] == ["7100011", "7100012"]
    assert "paging" not in last.json()
    assert not [name for name in first.headers if name.startswith("x-hubspot-ratelimit")]


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (search_body(*[[where("email", "HAS_PROPERTY")]] * 6), "Too many filterGroups: 6. The maximum is 5."),
        (
            search_body(*[[where("email", "HAS_PROPERTY")] * 6] * 3, [where("email", "HAS_PROPERTY")]),
            "Too many filters: 19. The maximum is 18 across all filterGroups.",
        ),
        ({"limit": 201}, "limit must be an integer from 1 to 200, got 201."),
        (search_body([where("email", "LIKE", "x")]), "Unknown operator 'LIKE' in the filter on email."),
        (search_body([where("amount", "BETWEEN", 1)]), "The BETWEEN filter on amount needs a 'highValue'."),
        (
            search_body([where("hs_timestamp", "GTE", "yesterday")]),
            "'yesterday' is not a valid date-time for hs_timestamp: use epoch milliseconds or ISO 8601.",
        ),
    ],
)
async def test_search_refusals(body: dict[str, Any], message: str) -> None:
    async with client() as api:
        answer = await api.post("/crm/v3/objects/deals/search", json=body)
    assert answer.status_code == 400
    assert answer.json()["category"] == "VALIDATION_ERROR"
    assert answer.json()["message"].startswith(message)


async def test_search_has_its_own_per_second_limit() -> None:
    clock = FakeClock()
    async with client(clock, search_per_second=4, max_per_window=2) as api:
        answers = [await api.post("/crm/v3/objects/contacts/search", json={}) for _ in range(5)]
        clock.advance(1000)
        after_a_second = await api.post("/crm/v3/objects/contacts/search", json={})
    assert [a.status_code for a in answers] == [200, 200, 200, 200, 429]
    refused = answers[-1].json()
    assert refused["policyName"] == "SECONDLY"
    assert refused["errorType"] == "RATE_LIMIT"
    assert refused["message"] == "You have reached your secondly limit."
    assert not [name for name in answers[-1].headers if name in WINDOW_HEADERS]
    assert after_a_second.status_code == 200  # and 6 searches never touched the 2-per-window limit


async def test_new_meetings_reach_search_only_after_the_lag() -> None:
    clock = FakeClock()
    async with client(clock, search_lag_ms=3000) as api:
        created = (await api.post(CREATE, params=ORGANIZER, json=meeting())).json()
        by_owner = search_body([where("hubspot_owner_id", "EQ", "8100001")])
        before = await search_ids(api, "meetings", by_owner)
        clock.advance(2999)
        almost = await search_ids(api, "meetings", by_owner)
        clock.advance(1)
        after = await search_ids(api, "meetings", by_owner)
    assert (before, almost, after) == ([], [], [created["id"]])


@pytest.mark.parametrize(
    "start",
    [
        1740963600000,
        "1740963600000",
        "2025-03-03T01:00:00Z",
        "2025-03-03T10:00:00+09:00",
        "2025-03-03T01:00:00.000Z",
    ],
)
async def test_meeting_search_compares_times_as_instants(start: Any) -> None:
    async with client() as api:
        created = (await api.post(CREATE, params=ORGANIZER, json=meeting())).json()
        found = await api.post(
            "/crm/v3/objects/meetings/search",
            json=search_body(
                [
                    where("hubspot_owner_id", "EQ", "8100001"),
                    where("hs_meeting_start_time", "EQ", start),
                    where("hs_meeting_title", "EQ", "quarterly REVIEW"),
                ]
            ),
        )
    result = found.json()["results"][0]
    assert found.json()["total"] == 1
    assert result["id"] == created["id"]
    assert result["properties"]["hs_meeting_end_time"] == "2025-03-03T02:00:00Z"


# --- meeting create -------------------------------------------------------------------------------------------


async def test_create_meeting_succeeds_and_is_stored() -> None:
    body = meeting(hs_attendee_owner_ids="8100002;8100006", hs_meeting_location_type="PHONE")
    body["associations"].append(association("6100001", 188))
    async with client() as api:
        answer = await api.post(CREATE, params=ORGANIZER, json=body)
        v3 = await api.post("/scheduler/v3/meetings/calendar", params=ORGANIZER, json=meeting())
        stored = (await api.get("/__sandbox/meetings")).json()
    created = answer.json()
    assert answer.status_code == 200
    assert v3.status_code == 200
    assert set(created) == {"id", "createdAt", "lastUpdatedAt", "properties"}
    assert created["properties"]["hs_meeting_title"] == "Quarterly review"
    assert created["properties"]["hs_engagement_source"] == "API"
    assert stored["total"] == 2
    assert stored["results"][0] == {
        "id": created["id"],
        "source": "scheduler",
        "organizerUserId": 52000001,
        "properties": body["properties"],
        "crmProperties": body["properties"],  # already in the CRM's own form: UTC times, ";"-joined ids
        "associations": body["associations"],
        "timezone": "Asia/Tokyo",
        "reminders": [{"numberOfTimeUnits": 15, "timeUnit": "MINUTES"}],
        "shouldIncludeInviteDescription": False,
        "objectWriteTraceId": None,
        "createdAt": created["createdAt"],
        "updatedAt": created["createdAt"],
    }


def _without(field: str) -> Callable[[dict[str, Any]], None]:
    return lambda body: body.pop(field)


def _set(path: str, value: Any) -> Callable[[dict[str, Any]], None]:
    def change(body: dict[str, Any]) -> None:
        *parents, last = path.split(".")
        target = body
        for part in parents:
            target = target[int(part)] if isinstance(target, list) else target[part]
        target[int(last) if isinstance(target, list) else last] = value

    return change


def _unchanged(body: dict[str, Any]) -> None:
    """Leave the valid body as it is (for cases that break the query instead)."""


_TYPE_188 = [{"associationCategory": "HUBSPOT_DEFINED", "associationTypeId": 188}]
_TYPE_204 = [{"associationCategory": "HUBSPOT_DEFINED", "associationTypeId": 204}]
_REQUIRED_PROPERTIES = [
    "hs_meeting_title",
    "hs_meeting_start_time",
    "hs_meeting_end_time",
    "hs_timestamp",
    "hs_meeting_outcome",
    "hubspot_owner_id",
]


@pytest.mark.parametrize(
    ("organizer", "change", "message", "where_"),
    [
        (None, _unchanged, "organizerUserId is required.", "organizerUserId"),
        ("abc", _unchanged, "organizerUserId must be an integer, got 'abc'.", "organizerUserId"),
        (
            "8100001",
            _unchanged,
            "organizerUserId 8100001 is not the userId of an active user.",
            "organizerUserId",
        ),
        (
            "52000006",
            _unchanged,
            "organizerUserId 52000006 is not the userId of an active user.",
            "organizerUserId",
        ),
        *[
            ("52000001", _without(f), f"{f} is required.", f)
            for f in ("associations", "emailReminderSchedule")
        ],
        *[("52000001", _without(f), f"{f} is required.", f) for f in ("properties", "timezone")],
        (
            "52000001",
            _set("timezone", "Mars/Olympus"),
            "timezone 'Mars/Olympus' is not a valid IANA time zone name.",
            "timezone",
        ),
        *[
            ("52000001", _set(f"properties.{p}", None), f"properties.{p} is required.", f"properties.{p}")
            for p in _REQUIRED_PROPERTIES
        ],
        *[
            (
                "52000001",
                _set("properties.hs_meeting_start_time", bad),
                "properties.hs_meeting_start_time must be an ISO 8601 date-time with a zone (Z or an offset), "
                f"got '{bad}'.",
                "properties.hs_meeting_start_time",
            )
            for bad in ("2025-03-03T01:00:00", "1740963600000", "2025-03-03")
        ],
        (
            "52000001",
            _set("properties.hs_meeting_end_time", "2025-03-03T01:00:00Z"),
            "properties.hs_meeting_end_time must be after properties.hs_meeting_start_time.",
            "properties.hs_meeting_end_time",
        ),
        (
            "52000001",
            _set("properties.hubspot_owner_id", "52000001"),
            "properties.hubspot_owner_id '52000001' is not the id of an active owner.",
            "properties.hubspot_owner_id",
        ),
        (
            "52000001",
            _set("properties.hubspot_owner_id", "8100006"),
            "properties.hubspot_owner_id '8100006' is not the id of an active owner.",
            "properties.hubspot_owner_id",
        ),
        (
            "52000001",
            _set("properties.hs_attendee_owner_ids", ["8100002", "9999999"]),
            "properties.hs_attendee_owner_ids: '9999999' is not the id of an owner.",
            "properties.hs_attendee_owner_ids",
        ),
        (
            "52000001",
            _set("properties.hs_meeting_location_type", "ZOOM"),
            "properties.hs_meeting_location_type must be one of ADDRESS, CUSTOM, PHONE, got 'ZOOM'.",
            "properties.hs_meeting_location_type",
        ),
        (
            "52000001",
            _set("properties.hs_meeting_outcome", "DONE"),
            "properties.hs_meeting_outcome must be one of SCHEDULED, COMPLETED, RESCHEDULED, NO_SHOW, CANCELED, "
            "got 'DONE'.",
            "properties.hs_meeting_outcome",
        ),
        (
            "52000001",
            _set("properties.hs_meeting_color", "blue"),
            'Property "hs_meeting_color" does not exist',
            "properties.hs_meeting_color",
        ),
        (
            "52000001",
            _set("properties.hs_meeting_title", 5),
            "properties.hs_meeting_title must be a string.",
            "properties.hs_meeting_title",
        ),
        (
            "52000001",
            _set("associations.0.types", _TYPE_188),
            "associations[0].types[0]: association type 188 needs a company, and no company has id 7100001.",
            "associations[0].types[0].associationTypeId",
        ),
        (
            "52000001",
            _set("associations.0.types", _TYPE_204),
            "associations[0].types[0]: HUBSPOT_DEFINED association type 204 does not link a meeting to an object.",
            "associations[0].types[0].associationTypeId",
        ),
        (
            "52000001",
            _set("associations.0.to", {}),
            "associations[0].to.id is required.",
            "associations[0].to.id",
        ),
        (
            "52000001",
            _set("emailReminderSchedule.reminders.0.numberOfTimeUnits", 0),
            "emailReminderSchedule.reminders[0].numberOfTimeUnits must be a positive integer.",
            "emailReminderSchedule.reminders[0].numberOfTimeUnits",
        ),
        (
            "52000001",
            _set("emailReminderSchedule.reminders.0.timeUnit", "SECONDS"),
            "emailReminderSchedule.reminders[0].timeUnit must be one of MINUTES, HOURS, DAYS, WEEKS.",
            "emailReminderSchedule.reminders[0].timeUnit",
        ),
        (
            "52000001",
            _set("emailReminderSchedule.shouldIncludeInviteDescription", "no"),
            "emailReminderSchedule.shouldIncludeInviteDescription must be a boolean.",
            "emailReminderSchedule.shouldIncludeInviteDescription",
        ),
    ],
)
async def test_create_meeting_validation(
    organizer: str | None, change: Callable[[dict[str, Any]], None], message: str, where_: str
) -> None:
    body = meeting()
    change(body)
    params = {} if organizer is None else {"organizerUserId": organizer}
    async with client() as api:
        answer = await api.post(CREATE, params=params, json=body)
        stored = (await api.get("/__sandbox/meetings")).json()
    refused = answer.json()
    assert answer.status_code == 400
    assert refused["category"] == "VALIDATION_ERROR"
    assert refused["message"] == message
    assert [(e["message"], e["in"]) for e in refused["errors"]] == [(message, where_)]
    assert stored["total"] == 0


async def test_create_meeting_reports_every_broken_rule() -> None:
    body = meeting(hs_meeting_outcome="DONE")
    body.pop("timezone")
    async with client() as api:
        answer = await api.post(CREATE, params={"organizerUserId": "8100001"}, json=body)
    refused = answer.json()
    assert answer.status_code == 400
    assert (
        refused["message"]
        == "3 validation errors: organizerUserId 8100001 is not the userId of an active user. (and more)"
    )
    assert [e["code"] for e in refused["errors"]] == ["INVALID_USER", "REQUIRED", "INVALID_OPTION"]


async def test_create_meeting_refuses_malformed_json() -> None:
    async with client() as api:
        answer = await api.post(CREATE, params=ORGANIZER, content=b"{not json")
    assert answer.status_code == 400
    assert answer.json()["message"].startswith("Invalid input JSON: ")


# --- rate limits ----------------------------------------------------------------------------------------------


async def test_window_limit_answers_hubspot_429_and_counts_rejected_requests() -> None:
    clock = FakeClock()
    async with client(clock, window_ms=500, max_per_window=5) as api:
        answers = [await api.get("/crm/v3/owners") for _ in range(6)]
        clock.advance(499)
        still_full = await api.get("/crm/v3/owners")
        clock.advance(1)
        reopened = await api.get("/crm/v3/owners")
        counters = await stats(api)
    assert [a.status_code for a in answers] == [200] * 5 + [429]
    assert [a.headers["x-hubspot-ratelimit-remaining"] for a in answers] == ["4", "3", "2", "1", "0", "0"]
    refused = answers[-1]
    assert refused.json() == {
        "status": "error",
        "message": "You have reached your ten_secondly_rolling limit.",
        "errorType": "RATE_LIMIT",
        "correlationId": refused.headers["x-hubspot-correlation-id"],
        "policyName": "TEN_SECONDLY_ROLLING",
    }
    assert refused.headers["x-hubspot-ratelimit-max"] == "5"
    assert refused.headers["x-hubspot-ratelimit-interval-milliseconds"] == "500"
    assert refused.headers["x-hubspot-ratelimit-daily"] == "250000"
    assert refused.headers["x-hubspot-ratelimit-daily-remaining"] == "249994"
    assert still_full.status_code == 429
    assert reopened.status_code == 200
    assert counters["rate_limited"]["TEN_SECONDLY_ROLLING"] == 2
    assert counters["max_in_window"] == 7


async def test_window_rolls_rather_than_resetting_in_buckets() -> None:
    clock = FakeClock()
    async with client(clock, window_ms=500, max_per_window=5) as api:
        early = [await api.get("/crm/v3/owners") for _ in range(3)]
        clock.advance(300)
        late = [await api.get("/crm/v3/owners") for _ in range(2)]
        clock.advance(250)  # the first three have left the window, the last two have not
        next_ones = [await api.get("/crm/v3/owners") for _ in range(4)]
    assert [a.status_code for a in early + late] == [200] * 5
    assert [a.status_code for a in next_ones] == [200, 200, 200, 429]


async def test_daily_cap() -> None:
    async with client(daily_limit=3) as api:
        answers = [await api.get("/crm/v3/owners") for _ in range(4)]
        counters = await stats(api)
    assert [a.status_code for a in answers] == [200, 200, 200, 429]
    assert answers[-1].json()["policyName"] == "DAILY"
    assert answers[-1].json()["message"] == "You have reached your daily limit."
    assert answers[-1].headers["x-hubspot-ratelimit-daily-remaining"] == "0"
    assert counters["rate_limited"]["DAILY"] == 1


# --- faults (in process) --------------------------------------------------------------------------------------


async def test_error_5xx_fault_answers_server_errors_without_creating() -> None:
    async with client(faults=Faults(error_5xx=1.0)) as api:
        answers = [await api.post(CREATE, params=ORGANIZER, json=meeting()) for _ in range(8)]
        owners = await api.get("/crm/v3/owners")  # scope "create" leaves other routes alone
        counters = await stats(api)
    assert {a.status_code for a in answers} <= {500, 502, 503, 504}
    assert len({a.status_code for a in answers}) > 1
    assert all(a.json()["status"] == "error" and a.json()["correlationId"] for a in answers)
    assert owners.status_code == 200
    assert counters["meetings_created"] == 0
    assert counters["faults_injected"]["error_5xx"] == 8


async def test_faults_repeat_with_the_same_seed() -> None:
    async def statuses() -> list[int]:
        async with client(faults=Faults(error_5xx=0.5, seed=7)) as api:
            return [(await api.post(CREATE, params=ORGANIZER, json=meeting())).status_code for _ in range(12)]

    first, second = await statuses(), await statuses()
    assert first == second
    assert 200 in first
    assert set(first) - {200}


async def test_spurious_429_and_scope_all() -> None:
    async with client(faults=Faults(spurious_429=1.0, scope="all")) as api:
        answer = await api.get("/crm/v3/owners")
        counters = await stats(api)
    assert answer.status_code == 429
    assert answer.json()["policyName"] == "TEN_SECONDLY_ROLLING"
    assert answer.headers["x-hubspot-ratelimit-remaining"] == "99"  # the window is not full
    assert counters["rate_limited"] == {"TEN_SECONDLY_ROLLING": 0, "DAILY": 0, "SECONDLY": 0, "spurious": 1}
    assert counters["faults_injected"]["spurious_429"] == 1


async def test_slow_fault_and_latency_delay_the_answer_not_the_work() -> None:
    async with client(faults=Faults(slow=1.0, slow_ms=300, latency_ms=100)) as api:
        started = time.monotonic()
        created = await api.post(CREATE, params=ORGANIZER, json=meeting())
        slow_took = time.monotonic() - started
        started = time.monotonic()
        owners = await api.get("/crm/v3/owners")
        latency_took = time.monotonic() - started
    assert created.status_code == 200
    assert slow_took >= 0.4
    assert owners.status_code == 200
    assert 0.1 <= latency_took < 0.4


async def test_faults_change_at_runtime() -> None:
    async with client() as api:
        changed = await api.post("/__sandbox/faults", json={"error_5xx": 1, "scope": "all"})
        owners = await api.get("/crm/v3/owners")
        bad = await api.post("/__sandbox/faults", json={"drop_after": 2})
        unknown = await api.post("/__sandbox/faults", json={"explode": 1})
        current = (await api.get("/__sandbox/faults")).json()
    assert changed.json()["error_5xx"] == 1.0
    assert owners.status_code in (500, 502, 503, 504)
    assert bad.status_code == 400
    assert bad.json()["message"] == "drop_after must be a probability between 0 and 1, got 2."
    assert unknown.json()["message"] == "Unknown fault setting(s): explode."
    assert current == dataclasses.asdict(Faults(error_5xx=1.0, scope="all"))


# --- stats and reset ------------------------------------------------------------------------------------------


async def test_stats_count_routes_statuses_and_duplicates() -> None:
    async with client() as api:
        await api.post(CREATE, params=ORGANIZER, json=meeting())
        await api.post(
            CREATE, params=ORGANIZER, json=meeting(hs_meeting_start_time="2025-03-03T10:00:00+09:00")
        )
        await api.post(CREATE, params=ORGANIZER, json=meeting())
        await api.post(CREATE, params=ORGANIZER, json=meeting(hs_meeting_title="Another"))
        await api.post(CREATE, params={"organizerUserId": "1"}, json=meeting())
        await api.get("/crm/v3/owners")
        counters = await stats(api)
    assert counters["requests_total"] == 6
    assert counters["requests_by_route"] == {"create_meeting": 5, "owners": 1}
    assert counters["responses_by_status"] == {"200": 5, "400": 1}
    assert counters["meetings_created"] == 4
    assert counters["duplicates"] == 2
    assert counters["max_in_window"] == 6


async def test_reset_forgets_meetings_counters_and_windows_but_keeps_the_seed() -> None:
    async with client(max_per_window=2) as api:
        await api.post(CREATE, params=ORGANIZER, json=meeting())
        full = [await api.get("/crm/v3/owners") for _ in range(2)]
        reset = await api.post("/__sandbox/reset")
        owners = await api.get("/crm/v3/owners")
        counters = await stats(api)
        stored = (await api.get("/__sandbox/meetings")).json()
    assert full[-1].status_code == 429
    assert reset.json() == {"status": "reset", "kept_meetings": False}
    assert owners.status_code == 200
    assert len(owners.json()["results"]) == 6
    assert counters["requests_total"] == 1
    assert counters["meetings_created"] == 0
    assert stored == {"total": 0, "results": []}


async def test_a_reset_may_keep_the_meetings_as_a_new_day_does() -> None:
    async with client(daily_limit=1) as api:
        await api.post(CREATE, params=ORGANIZER, json=meeting())
        capped = await api.get("/crm/v3/owners")
        reset = await api.post("/__sandbox/reset", params={"keep_meetings": "true"})
        again = await api.get("/crm/v3/owners")
        stored = (await api.get("/__sandbox/meetings")).json()
    assert capped.status_code == 429
    assert reset.json() == {"status": "reset", "kept_meetings": True}
    assert again.status_code == 200
    assert stored["total"] == 1


# --- fixtures and the command ---------------------------------------------------------------------------------


async def test_another_fixture_can_replace_the_seed(tmp_path: Path) -> None:
    fixture = tmp_path / "tiny.json"
    owner = {"id": "1", "userId": 2, "email": "solo@example.com", "firstName": "So", "lastName": "Lo"}
    fixture.write_text(json.dumps({"owners": [owner], "objects": {"contacts": []}}))
    async with client(data=fixture) as api:
        owners = (await api.get("/crm/v3/owners")).json()["results"]
        contacts = (await api.post("/crm/v3/objects/contacts/search", json={})).json()
    assert [(o["id"], o["userId"], o["archived"]) for o in owners] == [("1", 2, False)]
    assert contacts == {"total": 0, "results": []}


def test_command_reports_a_broken_fixture_in_one_line(tmp_path: Path) -> None:
    fixture = tmp_path / "broken.json"
    fixture.write_text('{"owners": "nobody"}')
    result = CliRunner().invoke(sandbox_command, ["--port", "0", "--data", str(fixture)])
    assert result.exit_code == 1
    assert result.output.startswith(f"Error: {fixture}: not a valid sandbox fixture")


# --- a real server (subprocess): drops, timeouts, the port file, signals ---------------------------------------


class LiveSandbox:
    def __init__(self, process: subprocess.Popen[str], port_file: Path, announced: str) -> None:
        self.process = process
        self.port_file = port_file
        self.announced = announced
        self.url = announced.removeprefix("sandbox listening on ")

    def admin(self, path: str, payload: dict[str, Any] | None = None) -> Any:
        if payload is None:
            return httpx.get(f"{self.url}/__sandbox/{path}").json()
        return httpx.post(f"{self.url}/__sandbox/{path}", json=payload).json()


def start_sandbox(tmp: Path, *args: str) -> LiveSandbox:
    port_file = tmp / "sandbox.port"
    process = subprocess.Popen(
        [sys.executable, "-m", "importer.sandbox", "--port", "0", "--port-file", str(port_file), *args],
        cwd=REPO,
        env=os.environ | {"PYTHONPATH": str(REPO)},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    deadline = time.monotonic() + 15
    while not port_file.exists():
        if process.poll() is not None or time.monotonic() > deadline:
            process.kill()
            raise RuntimeError(f"sandbox did not start: {process.communicate()}")
        time.sleep(0.02)
    assert process.stdout is not None
    return LiveSandbox(process, port_file, process.stdout.readline().rstrip("\n"))


def stop_sandbox(sandbox: LiveSandbox, sig: signal.Signals) -> tuple[int, str]:
    sandbox.process.send_signal(sig)
    _, stderr = sandbox.process.communicate(timeout=10)
    return sandbox.process.returncode, stderr


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveSandbox]:
    # A subprocess, not ASGITransport: only a real socket shows a dropped connection or a client read timeout.
    sandbox = start_sandbox(tmp_path_factory.mktemp("live"), "--search-lag-ms", "0")
    yield sandbox
    returncode, stderr = stop_sandbox(sandbox, signal.SIGINT)
    assert returncode == 0
    assert "Traceback" not in stderr
    assert "without completing response" not in stderr


@pytest.fixture
def fresh(live: LiveSandbox) -> LiveSandbox:
    live.admin(
        "faults",
        {
            name: 0.0
            for name in ("error_5xx", "drop_before", "drop_after", "error_5xx_after", "spurious_429", "slow")
        },
    )
    live.admin("reset", {})
    return live


def post_meeting(sandbox: LiveSandbox, timeout: float = 5.0) -> httpx.Response:
    with httpx.Client(base_url=sandbox.url, headers=AUTH, timeout=timeout) as http:
        return http.post(CREATE, params=ORGANIZER, json=meeting())


def test_announces_itself_and_writes_the_port_file(live: LiveSandbox) -> None:
    port = live.port_file.read_text().strip()
    assert live.announced == f"sandbox listening on http://127.0.0.1:{port}"
    assert httpx.get(f"{live.url}/crm/v3/owners", headers=AUTH).status_code == 200


@pytest.mark.parametrize(("fault", "created"), [("drop_before", 0), ("drop_after", 1)])
def test_dropped_connection_looks_like_a_real_drop(fresh: LiveSandbox, fault: str, created: int) -> None:
    fresh.admin("faults", {fault: 1.0})
    with pytest.raises(httpx.RemoteProtocolError):
        post_meeting(fresh)
    counters = fresh.admin("stats")
    assert counters["meetings_created"] == created
    assert counters["faults_injected"][fault] == 1
    assert counters["responses_by_status"] == {}


def test_batch_create_answer_lost_after_every_input_was_created(fresh: LiveSandbox) -> None:
    fresh.admin("faults", {"drop_after": 1.0})
    inputs = [
        {"properties": {"hs_timestamp": f"2024-11-0{n}T06:00:00Z"}, "associations": []} for n in range(1, 4)
    ]
    with (
        httpx.Client(base_url=fresh.url, headers=AUTH, timeout=5.0) as http,
        pytest.raises(httpx.RemoteProtocolError),
    ):
        http.post("/crm/v3/objects/meetings/batch/create", json={"inputs": inputs})
    counters = fresh.admin("stats")
    assert counters["meetings_created"] == 3
    assert counters["requests_by_route"] == {"batch_create_meetings": 1}
    assert counters["faults_injected"]["drop_after"] == 1


def test_integration_helper_adds_a_meeting_by_hand(fresh: LiveSandbox) -> None:
    # The helper only needs the URL; the process is the live fixture's, of another Popen text mode.
    sandbox = Sandbox(fresh.url, cast(Any, fresh.process), Path("unused"))
    meeting_id = sandbox.add_meeting(
        associations=[association("7100001", 200)], hubspot_owner_id="8100001", hs_meeting_title="By hand"
    )
    assert [(m["id"], m["source"], m["properties"]) for m in sandbox.meetings()] == [
        (meeting_id, "manual", {"hubspot_owner_id": "8100001", "hs_meeting_title": "By hand"})
    ]


def test_slow_answer_times_the_client_out_but_the_meeting_exists(fresh: LiveSandbox) -> None:
    fresh.admin("faults", {"slow": 1.0, "slow_ms": 1500})
    with pytest.raises(httpx.ReadTimeout):
        post_meeting(fresh, timeout=0.3)
    assert fresh.admin("meetings")["total"] == 1


def test_sigterm_stops_cleanly_and_removes_the_port_file(tmp_path: Path) -> None:
    sandbox = start_sandbox(tmp_path)
    returncode, stderr = stop_sandbox(sandbox, signal.SIGTERM)
    assert returncode == 0
    assert "Traceback" not in stderr
    assert not sandbox.port_file.exists()


# --- latency and uplink delays ---


async def test_delays_stay_in_range_and_leave_the_fault_dice_as_they_were() -> None:
    faults = Faults(error_5xx=0.5, scope="all")
    plain, delayed = FaultDice(3), FaultDice(3)
    rolls, rolls_between_delays, delays = [], [], []
    for _ in range(50):
        rolls.append(plain.roll(faults, on_create_route=True))
        delays.append(delayed.delay_s(40, 100))
        rolls_between_delays.append(delayed.roll(faults, on_create_route=True))
    assert rolls == rolls_between_delays
    assert all(0.04 <= delay <= 0.14 for delay in delays) and len(set(delays)) == 50
    assert FaultDice(3).delay_s(40, 0) == 0.04


@pytest.mark.parametrize("name", ["latency_jitter_ms", "uplink_ms", "uplink_jitter_ms"])
async def test_delay_settings_are_non_negative_milliseconds(name: str) -> None:
    assert getattr(Faults().updated({name: 60}), name) == 60
    with pytest.raises(FaultSettingsError, match=f"{name} must be a non-negative integer"):
        Faults().updated({name: -1})
