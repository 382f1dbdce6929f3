"""The sandbox's routes: HubSpot's account, owners, batch read, search and Scheduler meeting create, the
meeting object routes of `objects.py`, and the admin API."""

from __future__ import annotations

import time
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from importer.sandbox.config import SandboxConfig
from importer.sandbox.errors import ApiError, validation_error
from importer.sandbox.faults import FaultSettingsError
from importer.sandbox.gateway import Gateway, RouteKind
from importer.sandbox.limits import Clock
from importer.sandbox.meetings import parse_create, parse_manual
from importer.sandbox.objects import (
    MAX_BATCH_INPUTS,
    MeetingObjects,
    refuse_forbidden_titles,
    refused_title_issues,
    title_of,
)
from importer.sandbox.properties import InvalidMeeting
from importer.sandbox.search import MAX_RESULTS, SearchError, parse_cursor, parse_search
from importer.sandbox.seed import CrmRecord
from importer.sandbox.shapes import json_body, json_object, page, record_json, searchable_properties
from importer.sandbox.state import SandboxState
from importer.sandbox.store import StoredMeeting

OWNERS_DEFAULT_LIMIT = 100
OWNERS_MAX_LIMIT = 500
BATCH_READ_TYPES = ("contacts", "companies", "deals", "tickets", "meetings")
SEARCH_TYPES = BATCH_READ_TYPES
# The names HubSpot uses for each object type in its messages ("Could not get some CONTACT objects").
TYPE_LABELS = {
    "contacts": "CONTACT",
    "companies": "COMPANY",
    "deals": "DEAL",
    "tickets": "TICKET",
    "meetings": "MEETING",
}
# Unique-value properties that may serve as idProperty; HubSpot refuses any other (company `domain` included).
UNIQUE_PROPERTIES = {"contacts": ("hs_object_id", "email")}
ACCOUNT_PATHS = ("/account-info/v3/details", "/account-info/2026-03/details")
CREATE_PATHS = ("/scheduler/2026-03/meetings/calendar", "/scheduler/v3/meetings/calendar")
MEETING_PATH = "/crm/v3/objects/meetings/{meeting_id}"
ASSOCIATION_PATH = "/crm/v4/objects/meetings/{meeting_id}/associations/{to_object_type}/{to_object_id}"
ASSOCIATION_BATCH_PATH = "/crm/v4/associations/meetings/{to_object_type}/batch"
_KINDS = {
    "search": RouteKind.SEARCH,
    "create_meeting": RouteKind.CREATE,
    "batch_create_meetings": RouteKind.CREATE,
    "update_meeting": RouteKind.WRITE,
    "association_create": RouteKind.WRITE,
    "association_delete": RouteKind.WRITE,
    "association_batch_create": RouteKind.WRITE,
    "association_batch_archive": RouteKind.WRITE,
}


def create_app(config: SandboxConfig, clock: Clock = time.monotonic) -> Gateway:
    """Build the sandbox ASGI app; `clock` (monotonic seconds) drives rate windows and search lag."""
    state = SandboxState(config, clock)
    handlers = _Handlers(state)
    objects = MeetingObjects(state)
    routes = [
        *[
            Route(path, handlers.account_details, methods=["GET"], name="account_details")
            for path in ACCOUNT_PATHS
        ],
        Route("/crm/v3/owners", handlers.list_owners, methods=["GET"], name="owners"),
        Route("/crm/v3/owners/", handlers.list_owners, methods=["GET"], name="owners"),
        Route(
            "/crm/v3/objects/{object_type}/batch/read",
            handlers.batch_read,
            methods=["POST"],
            name="batch_read",
        ),
        Route("/crm/v3/objects/{object_type}/search", handlers.search, methods=["POST"], name="search"),
        *[
            Route(path, handlers.create_meeting, methods=["POST"], name="create_meeting")
            for path in CREATE_PATHS
        ],
        *_object_routes(objects),
        Route("/__sandbox/stats", handlers.stats, methods=["GET"], name="admin_stats"),
        Route("/__sandbox/meetings", handlers.meetings, methods=["GET"], name="admin_meetings"),
        Route("/__sandbox/meetings", handlers.add_meeting, methods=["POST"], name="admin_add_meeting"),
        Route(
            "/__sandbox/meetings/{meeting_id}",
            handlers.delete_meeting,
            methods=["DELETE"],
            name="admin_delete_meeting",
        ),
        Route("/__sandbox/faults", handlers.faults, methods=["GET", "POST"], name="admin_faults"),
        Route("/__sandbox/reset", handlers.reset, methods=["POST"], name="admin_reset"),
    ]
    kinds = {route.name: _kind_of(route.name) for route in routes}
    starlette = Starlette(routes=routes, exception_handlers={ApiError: _api_error_response})
    return Gateway(starlette, state, kinds)


def _object_routes(objects: MeetingObjects) -> list[Route]:
    # Listed after search, so POST .../meetings/search is a search, not a meeting named "search".
    return [
        Route(
            "/crm/v3/objects/meetings/batch/create",
            objects.batch_create,
            methods=["POST"],
            name="batch_create_meetings",
        ),
        Route(MEETING_PATH, objects.read, methods=["GET"], name="get_meeting"),
        Route(MEETING_PATH, objects.update, methods=["PATCH"], name="update_meeting"),
        Route(ASSOCIATION_PATH, objects.associate, methods=["PUT"], name="association_create"),
        Route(ASSOCIATION_PATH, objects.dissociate, methods=["DELETE"], name="association_delete"),
        Route(
            f"{ASSOCIATION_BATCH_PATH}/create",
            objects.batch_associate,
            methods=["POST"],
            name="association_batch_create",
        ),
        Route(
            f"{ASSOCIATION_BATCH_PATH}/archive",
            objects.batch_dissociate,
            methods=["POST"],
            name="association_batch_archive",
        ),
    ]


def _kind_of(route_name: str) -> RouteKind:
    if route_name.startswith("admin_"):
        return RouteKind.ADMIN
    return _KINDS.get(route_name, RouteKind.API)


async def _api_error_response(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, ApiError)  # registered for ApiError only
    return exc.response(request.scope)


class _Handlers:
    def __init__(self, state: SandboxState) -> None:
        self.state = state

    async def account_details(self, request: Request) -> Response:
        zone = self.state.config.time_zone
        # The offset today, so a zone with summer time reports the one in force now.
        offset = datetime.now(ZoneInfo(zone)).utcoffset() or timedelta(0)
        return JSONResponse(
            {
                "portalId": self.state.config.portal_id,
                "accountType": "STANDARD",
                "timeZone": zone,
                "companyCurrency": "JPY",
                "additionalCurrencies": [],
                "utcOffset": _offset_text(offset),
                "utcOffsetMilliseconds": int(offset.total_seconds() * 1000),
                "uiDomain": "app.hubspot.com",
                "dataHostingLocation": "na1",
            }
        )

    async def list_owners(self, request: Request) -> Response:
        params = request.query_params
        limit = _int_param(params.get("limit"), "limit", OWNERS_DEFAULT_LIMIT, OWNERS_MAX_LIMIT)
        offset = _cursor(params.get("after"))
        archived = _bool_param(params.get("archived"), "archived")
        email = params.get("email")
        # HubSpot lists archived owners only when asked, and then only those.
        owners = [
            owner
            for owner in self.state.seed.owners
            if owner.archived == archived and (email is None or owner.email.casefold() == email.casefold())
        ]
        return JSONResponse(page([owner.to_json() for owner in owners], offset, limit))

    async def batch_read(self, request: Request) -> Response:
        object_type = _object_type(request, BATCH_READ_TYPES)
        body = await json_object(request)
        ids = _batch_ids(body.get("inputs"))
        id_property = body.get("idProperty")
        requested = _property_names(body.get("properties", []))
        lookup = _lookup_table(object_type, id_property, self.state.records(object_type))
        if id_property and requested:
            # HubSpot echoes the idProperty's value, so a caller can map results back to its inputs.
            requested = [*requested, id_property]
        matches = [(key, lookup.get(key.casefold())) for key in ids]
        # One result per record, however often the inputs name it.
        found = {record.id: record for _, record in matches if record is not None}
        missing = [key for key, record in matches if record is None]
        return _batch_answer(object_type, [record_json(r, requested) for r in found.values()], missing)

    async def search(self, request: Request) -> Response:
        object_type = _object_type(request, SEARCH_TYPES)
        try:
            query = parse_search(await json_object(request))
        except SearchError as exc:
            raise validation_error(str(exc)) from exc
        hits = [r for r in self.state.searchable(object_type) if query.matches(searchable_properties(r))]
        ordered = query.ordered(hits, searchable_properties)
        found = page(
            [record_json(r, query.properties) for r in ordered], query.offset, query.limit, MAX_RESULTS
        )
        return JSONResponse({"total": len(hits), **found})

    async def create_meeting(self, request: Request) -> Response:
        body = await json_body(request)
        refuse_forbidden_titles(self.state, [title_of(body)])
        try:
            new = parse_create(request.query_params.get("organizerUserId"), body, self.state.seed)
        except InvalidMeeting as exc:
            raise validation_error(str(exc), exc.issues) from exc
        if issues := refused_title_issues(self.state, title_of(body), "properties"):
            raise validation_error(str(InvalidMeeting(issues)), issues)
        return JSONResponse(_created_json(self.state.add_meeting(new, "scheduler")))

    async def stats(self, request: Request) -> Response:
        return JSONResponse(self.state.stats_json())

    async def meetings(self, request: Request) -> Response:
        found = [meeting.to_json() for meeting in self.state.meetings.values()]
        return JSONResponse({"total": len(found), "results": found})

    async def add_meeting(self, request: Request) -> Response:
        """A meeting as a rep would make it in HubSpot's UI: no API limits or faults, in search at once."""
        try:
            new = parse_manual(await json_object(request), self.state.seed)
        except InvalidMeeting as exc:
            raise validation_error(str(exc), exc.issues) from exc
        return JSONResponse({"id": self.state.add_meeting(new, "manual").id}, status_code=201)

    async def delete_meeting(self, request: Request) -> Response:
        """A meeting a rep deleted in HubSpot's UI (to the recycling bin): reads, updates and search no
        longer find it."""
        if self.state.meetings.pop(str(request.path_params["meeting_id"]), None) is None:
            raise ApiError(404, "OBJECT_NOT_FOUND", "resource not found")
        return Response(status_code=204)

    async def faults(self, request: Request) -> Response:
        if request.method == "POST":
            try:
                self.state.set_faults(await json_object(request))
            except FaultSettingsError as exc:
                raise validation_error(str(exc)) from exc
        return JSONResponse(self.state.faults.to_json())

    async def reset(self, request: Request) -> Response:
        keep = request.query_params.get("keep_meetings", "false").lower() == "true"
        self.state.reset(keep_meetings=keep)
        return JSONResponse({"status": "reset", "kept_meetings": keep})


def _offset_text(offset: timedelta) -> str:
    minutes = int(offset.total_seconds()) // 60
    sign = "-" if minutes < 0 else "+"
    hours, rest = divmod(abs(minutes), 60)
    return f"{sign}{hours:02d}:{rest:02d}"


def _created_json(meeting: StoredMeeting) -> dict[str, Any]:
    # The spec marks the engagement source fields as always present; the values are the sandbox's guess.
    calendar = meeting.made.calendar
    assert calendar is not None  # a Scheduler create always has its calendar event
    extra = {"hs_engagement_source": "API", "hs_engagement_source_id": str(calendar.organizer_user_id)}
    return {
        "id": meeting.record.id,
        "createdAt": meeting.record.created_at,
        "lastUpdatedAt": meeting.record.updated_at,
        "properties": meeting.record.properties | extra,
    }


def _batch_answer(object_type: str, results: list[dict[str, Any]], missing: list[str]) -> JSONResponse:
    now = datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
    body: dict[str, Any] = {"status": "COMPLETE", "results": results, "startedAt": now, "completedAt": now}
    if not missing:
        return JSONResponse(body)
    label = TYPE_LABELS[object_type]
    error = {
        "status": "error",
        "category": "OBJECT_NOT_FOUND",
        "message": (
            f"Could not get some {label} objects, they may be deleted or not exist. Check that ids are valid."
        ),
        "context": {"ids": missing},
    }
    return JSONResponse(body | {"numErrors": 1, "errors": [error]}, status_code=207)


def _lookup_table(
    object_type: str, id_property: object, records: dict[str, CrmRecord]
) -> dict[str, CrmRecord]:
    """Records keyed by the casefolded idProperty value (record id when idProperty is absent)."""
    if id_property in (None, "", "hs_object_id"):
        return {record_id.casefold(): record for record_id, record in records.items()}
    if id_property not in UNIQUE_PROPERTIES.get(object_type, ()):
        label = TYPE_LABELS[object_type]
        raise validation_error(
            f"{id_property} is not a unique property of {label} objects, so it cannot be used as idProperty."
        )
    key = str(id_property)
    return {
        record.properties[key].casefold(): record for record in records.values() if record.properties.get(key)
    }


def _batch_ids(inputs: object) -> list[str]:
    if not isinstance(inputs, list) or not all(isinstance(i, dict) and "id" in i for i in inputs):
        raise validation_error('inputs must be an array of objects like {"id": "..."}.')
    if len(inputs) > MAX_BATCH_INPUTS:
        raise validation_error(
            f"Too many inputs: {len(inputs)}. A batch read takes at most {MAX_BATCH_INPUTS}."
        )
    return [str(item["id"]) for item in inputs]


def _property_names(raw: object) -> list[str]:
    if not isinstance(raw, list) or not all(isinstance(name, str) for name in raw):
        raise validation_error("properties must be an array of property names.")
    return raw


def _object_type(request: Request, allowed: Sequence[str]) -> str:
    object_type = str(request.path_params["object_type"])
    if object_type not in allowed:
        raise ApiError(404, "OBJECT_NOT_FOUND", f"Unable to infer object type from: {object_type}")
    return object_type


def _cursor(raw: str | None) -> int:
    try:
        return parse_cursor(raw)
    except SearchError as exc:
        raise validation_error(str(exc)) from exc


def _int_param(raw: str | None, name: str, default: int, highest: int) -> int:
    if raw is None:
        return default
    if not (raw.isascii() and raw.isdigit()) or not 1 <= int(raw) <= highest:
        raise validation_error(f"{name} must be an integer from 1 to {highest}, got '{raw}'.")
    return int(raw)


def _bool_param(raw: str | None, name: str) -> bool:
    if raw is None:
        return False
    if raw.lower() not in ("true", "false"):
        raise validation_error(f"{name} must be true or false, got '{raw}'.")
    return raw.lower() == "true"
