"""Sandbox faults after the work, the writes scope, forbidden titles, hand-made meetings, the account's zone,
and the command's new options."""

from __future__ import annotations

from typing import Any

import pytest
from click.testing import CliRunner

from importer.sandbox import Faults, SandboxConfig
from importer.sandbox import cli as sandbox_cli
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
from tests.test_sandbox_objects import BATCH_CREATE, MEETINGS, TYPE_200, logged

pytestmark = pytest.mark.anyio


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


# --- error_5xx_after ------------------------------------------------------------------------------------------


async def test_error_5xx_after_does_the_work_then_answers_a_server_error() -> None:
    async with client(faults=Faults(error_5xx_after=1.0)) as api:
        answers = [await api.post(CREATE, params=ORGANIZER, json=meeting()) for _ in range(12)]
        batch = await api.post(BATCH_CREATE, json={"inputs": [logged("a"), logged("b")]})
        counters = await stats(api)
    assert {a.status_code for a in answers} == {500, 502, 504}  # never 503: that one means "not done"
    body = answers[0].json()
    assert set(body) == {"status", "message", "correlationId", "category"}
    assert body["correlationId"] == answers[0].headers["x-hubspot-correlation-id"]
    assert batch.status_code in (500, 502, 504)
    assert counters["meetings_created"] == 14  # every one created, whatever the answer said
    assert counters["faults_injected"]["error_5xx_after"] == 13
    assert counters["responses_by_status"].keys() <= {"500", "502", "504"}


async def test_faults_roll_in_their_documented_order() -> None:
    # drop_before and error_5xx skip the work and are rolled first; error_5xx_after comes after them.
    async with client(faults=Faults(error_5xx=1.0, error_5xx_after=1.0)) as api:
        answer = await api.post(CREATE, params=ORGANIZER, json=meeting())
        counters = await stats(api)
    assert answer.status_code in (500, 502, 503, 504)
    assert counters["meetings_created"] == 0
    assert counters["faults_injected"]["error_5xx"] == 1
    assert counters["faults_injected"]["error_5xx_after"] == 0


@pytest.mark.parametrize(
    ("scope", "faulted"),
    [
        ("create", {"create_meeting", "batch_create_meetings"}),
        ("writes", {"create_meeting", "batch_create_meetings", "update_meeting", "association_create"}),
        ("reads", {"owners", "search"}),
        (
            "all",
            {
                "create_meeting",
                "batch_create_meetings",
                "update_meeting",
                "association_create",
                "owners",
                "search",
            },
        ),
    ],
)
async def test_fault_scopes(scope: str, faulted: set[str]) -> None:
    async with client() as api:
        created = (await api.post(CREATE, params=ORGANIZER, json=meeting())).json()
        await api.post("/__sandbox/faults", json={"error_5xx": 1.0, "scope": scope})
        answers = {
            "create_meeting": await api.post(CREATE, params=ORGANIZER, json=meeting()),
            "batch_create_meetings": await api.post(BATCH_CREATE, json={"inputs": [logged("a")]}),
            "update_meeting": await api.patch(
                f"{MEETINGS}/{created['id']}", json={"properties": {"hs_meeting_title": "x"}}
            ),
            "association_create": await api.put(
                f"/crm/v4/objects/meetings/{created['id']}/associations/contacts/7100002", json=TYPE_200
            ),
            "owners": await api.get("/crm/v3/owners"),
            "search": await api.post(f"{MEETINGS}/search", json={"limit": 1}),
        }
    assert {name for name, answer in answers.items() if answer.status_code >= 500} == faulted


# --- forbidden titles -----------------------------------------------------------------------------------------


async def test_forbidden_title_is_refused_403_with_hubspots_missing_scopes_shape() -> None:
    async with client(faults=Faults(forbid_title="[restricted]")) as api:
        refused = await api.post(
            CREATE, params=ORGANIZER, json=meeting(hs_meeting_title="Board [restricted] prep")
        )
        # Refused before validation, as a scope check is: this body is invalid too.
        invalid = await api.post(
            CREATE, json=meeting(hs_meeting_title="[restricted]", hs_meeting_outcome="X")
        )
        allowed = await api.post(CREATE, params=ORGANIZER, json=meeting(hs_meeting_title="Board prep"))
        batch = await api.post(
            BATCH_CREATE, json={"inputs": [logged("a"), logged("b", hs_meeting_title="[restricted] call")]}
        )
        counters = await stats(api)
    assert refused.status_code == invalid.status_code == batch.status_code == 403
    assert refused.json() == {
        "status": "error",
        "message": "This app hasn't been granted all required scopes to make this call. "
        "Read more about required scopes here: https://developers.hubspot.com/scopes.",
        "correlationId": refused.headers["x-hubspot-correlation-id"],
        "category": "MISSING_SCOPES",
        "errors": [
            {
                "message": "One or more of the following scopes are required.",
                "context": {"requiredGranularScopes": ["crm.objects.contacts.write"]},
            }
        ],
        "links": {"scopes": "https://developers.hubspot.com/scopes"},
    }
    assert allowed.status_code == 200
    assert counters["meetings_created"] == 1  # the whole batch was refused, its valid input too
    assert refused.headers["x-hubspot-ratelimit-remaining"] == "99"  # a 403 still counts in the window


async def test_forbid_title_is_set_and_cleared_at_runtime() -> None:
    async with client() as api:
        set_ = await api.post("/__sandbox/faults", json={"forbid_title": "secret"})
        refused = await api.post(CREATE, params=ORGANIZER, json=meeting(hs_meeting_title="top secret"))
        cleared = await api.post("/__sandbox/faults", json={"forbid_title": None})
        allowed = await api.post(CREATE, params=ORGANIZER, json=meeting(hs_meeting_title="top secret"))
        bad = await api.post("/__sandbox/faults", json={"forbid_title": ""})
    assert set_.json()["forbid_title"] == "secret"
    assert refused.status_code == 403
    assert cleared.json()["forbid_title"] is None
    assert allowed.status_code == 200
    assert bad.status_code == 400
    assert bad.json()["message"] == "forbid_title must be a non-empty string or null, got ''."


async def test_a_refused_title_fails_its_batch_input_alone_in_a_207() -> None:
    async with client(faults=Faults(refuse_title="[draft]")) as api:
        batch = await api.post(
            BATCH_CREATE, json={"inputs": [logged("a"), logged("b", hs_meeting_title="[draft] call")]}
        )
        single = await api.post(CREATE, params=ORGANIZER, json=meeting(hs_meeting_title="[draft] call"))
        counters = await stats(api)
    assert batch.status_code == 207
    body = batch.json()
    assert [r["objectWriteTraceId"] for r in body["results"]] == ["a"]
    (error,) = body["errors"]
    message = "inputs[1].properties.hs_meeting_title '[draft] call' is refused by a rule of this portal."
    assert (error["category"], error["message"], error["context"]) == (
        "VALIDATION_ERROR",
        message,
        {"objectWriteTraceId": ["b"]},
    )
    assert single.status_code == 400
    assert (
        single.json()["message"]
        == "properties.hs_meeting_title '[draft] call' is refused by a rule of this portal."
    )
    assert counters["meetings_created"] == 1


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"error_5xx_after": 1.5}, "error_5xx_after must be a probability between 0 and 1, got 1.5."),
        (
            {"search_lag_extra_share": -0.1},
            "search_lag_extra_share must be a probability between 0 and 1, got -0.1.",
        ),
        ({"search_lag_extra_ms": -1}, "search_lag_extra_ms must be a non-negative integer, got -1."),
        ({"scope": "search"}, "scope must be one of create, writes, reads, all, got 'search'."),
    ],
)
async def test_new_fault_settings_are_checked(changes: dict[str, Any], message: str) -> None:
    async with client() as api:
        answer = await api.post("/__sandbox/faults", json=changes)
    assert answer.status_code == 400
    assert answer.json()["message"] == message


async def test_extra_lag_applies_to_updates_too() -> None:
    clock = FakeClock()
    async with client(clock, search_lag_ms=0) as api:
        created = (await api.post(CREATE, params=ORGANIZER, json=meeting())).json()
        await api.post("/__sandbox/faults", json={"search_lag_extra_ms": 5000, "search_lag_extra_share": 1.0})
        await api.patch(f"{MEETINGS}/{created['id']}", json={"properties": {"hs_meeting_title": "Renamed"}})
        by_old = search_body([where("hs_meeting_title", "EQ", "Quarterly review")])
        stale = await search_ids(api, "meetings", by_old)
        clock.advance(5000)
        fresh = await search_ids(api, "meetings", by_old)
    assert (stale, fresh) == ([created["id"]], [])


# --- meetings made by hand ------------------------------------------------------------------------------------


async def test_meeting_made_by_hand_is_in_search_at_once_and_counts_like_any() -> None:
    clock = FakeClock()
    properties = {
        "hubspot_owner_id": "8100006",  # a deactivated owner: HubSpot's UI keeps their old meetings
        "hs_meeting_title": "Quarterly review",
        "hs_meeting_start_time": "2025-03-03T10:00:00+09:00",
        "hs_timestamp": "2025-03-03T10:00:00+09:00",
    }
    async with client(clock, search_lag_ms=60_000) as api:
        made = await api.post(
            "/__sandbox/meetings",
            json={"properties": properties, "associations": [association("7100001", 200)]},
        )
        found = await search_ids(
            api, "meetings", search_body([where("hs_meeting_start_time", "EQ", "1740963600000")])
        )
        stored = (await api.get("/__sandbox/meetings")).json()["results"]
        read = await api.get(f"{MEETINGS}/{made.json()['id']}", params={"associations": "contacts"})
        counters = await stats(api)
    assert made.status_code == 201
    assert made.json() == {"id": found[0]}
    assert stored[0]["source"] == "manual"
    assert stored[0]["crmProperties"]["hs_meeting_start_time"] == "2025-03-03T01:00:00Z"
    assert stored[0]["associations"] == [association("7100001", 200)]
    assert read.json()["associations"]["contacts"]["results"] == [
        {"id": "7100001", "type": "meeting_event_to_contact"}
    ]
    assert counters["meetings_created"] == 1
    assert counters["meetings_by_source"] == {"scheduler": 0, "batch": 0, "manual": 1}
    assert counters["requests_total"] == 2  # the admin route is not counted; the search and the read are


async def test_meeting_made_by_hand_duplicates_an_imported_one() -> None:
    async with client() as api:
        await api.post(CREATE, params=ORGANIZER, json=meeting())
        await api.post(
            "/__sandbox/meetings",
            json={"properties": meeting()["properties"], "associations": meeting()["associations"]},
        )
        counters = await stats(api)
    assert (counters["duplicates"], counters["duplicates_by_content"]) == (1, 1)


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (
            {"properties": {"hs_meeting_title": "x"}},
            "properties.hubspot_owner_id '' is not the id of an owner.",
        ),
        (
            {"properties": {"hubspot_owner_id": "1"}},
            "properties.hubspot_owner_id '1' is not the id of an owner.",
        ),
        (
            {"properties": {"hubspot_owner_id": "8100001", "hs_timestamp": "soon"}},
            "properties.hs_timestamp must be epoch milliseconds or an ISO 8601 date-time with a zone, got 'soon'.",
        ),
        ({"properties": {"hubspot_owner_id": 8100001}}, "properties must be an object of strings."),
        (
            {"properties": {"hubspot_owner_id": "8100001"}, "associations": [association("1", 200)]},
            "associations[0].types[0]: association type 200 needs a contact, and no contact has id 1.",
        ),
    ],
)
async def test_meeting_made_by_hand_needs_a_real_owner_and_readable_times(
    body: dict[str, Any], message: str
) -> None:
    async with client() as api:
        answer = await api.post("/__sandbox/meetings", json=body)
        counters = await stats(api)
    assert answer.status_code == 400
    assert answer.json()["message"] == message
    assert counters["meetings_created"] == 0


# --- the account's time zone ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("zone", "offset", "milliseconds"),
    [
        ("Asia/Tokyo", "+09:00", 32_400_000),
        ("Asia/Kolkata", "+05:30", 19_800_000),
        ("America/Bogota", "-05:00", -18_000_000),
    ],
)
async def test_account_details_report_the_configured_zone(zone: str, offset: str, milliseconds: int) -> None:
    async with client(time_zone=zone) as api:
        details = (await api.get("/account-info/v3/details")).json()
    assert (details["timeZone"], details["utcOffset"], details["utcOffsetMilliseconds"]) == (
        zone,
        offset,
        milliseconds,
    )
    assert (details["uiDomain"], details["accountType"]) == ("app.hubspot.com", "STANDARD")


# --- the command ----------------------------------------------------------------------------------------------


def test_new_options_reach_the_sandbox(monkeypatch: pytest.MonkeyPatch) -> None:
    seen: list[SandboxConfig] = []
    monkeypatch.setattr(sandbox_cli, "serve", seen.append)
    args = [
        "--time-zone",
        "Europe/Berlin",
        "--error-5xx-after",
        "0.25",
        "--search-lag-extra-ms",
        "9000",
        "--search-lag-extra-share",
        "0.1",
        "--forbid-title",
        "[private]",
        "--refuse-title",
        "[draft]",
        "--fault-scope",
        "writes",
    ]
    result = CliRunner().invoke(sandbox_cli.sandbox_command, args)
    assert result.exit_code == 0, result.output
    config = seen[0]
    assert config.time_zone == "Europe/Berlin"
    assert config.faults == Faults(
        error_5xx_after=0.25,
        search_lag_extra_ms=9000,
        search_lag_extra_share=0.1,
        forbid_title="[private]",
        refuse_title="[draft]",
        scope="writes",
    )


def test_defaults_and_a_bad_zone(monkeypatch: pytest.MonkeyPatch) -> None:
    seen: list[SandboxConfig] = []
    monkeypatch.setattr(sandbox_cli, "serve", seen.append)
    defaults = CliRunner().invoke(sandbox_cli.sandbox_command, [])
    bad = CliRunner().invoke(sandbox_cli.sandbox_command, ["--time-zone", "JST"])
    assert defaults.exit_code == 0
    assert seen[0].time_zone == "Asia/Tokyo"
    assert seen[0].faults.forbid_title is None
    assert bad.exit_code == 2
    assert "Invalid value for '--time-zone': 'JST' is not an IANA time zone name." in bad.output
