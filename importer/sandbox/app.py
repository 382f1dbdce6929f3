"""The sandbox's routes: HubSpot's owners, batch read, search and meeting create, plus the admin API."""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from importer.sandbox.config import SandboxConfig
from importer.sandbox.errors import ApiError, validation_error
from importer.sandbox.faults import FaultSettingsError
from importer.sandbox.gateway import Gateway, RouteKind
from importer.sandbox.limits import Clock
from importer.sandbox.meetings import InvalidMeeting, parse_create
from importer.sandbox.search import SearchError, parse_cursor, parse_search
from importer.sandbox.seed import CrmRecord
from importer.sandbox.state import Meeting, SandboxState

MAX_BATCH_INPUTS = 100
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


def create_app(config: SandboxConfig, clock: Clock = time.monotonic) -> Gateway:
    """Build the sandbox ASGI app; `clock` (monotonic seconds) drives rate windows and search lag."""
    handlers = _Handlers(SandboxState(config, clock))
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
        Route("/__sandbox/stats", handlers.stats, methods=["GET"], name="admin_stats"),
        Route("/__sandbox/meetings", handlers.meetings, methods=["GET"], name="admin_meetings"),
        Route("/__sandbox/faults", handlers.faults, methods=["GET", "POST"], name="admin_faults"),
        Route("/__sandbox/reset", handlers.reset, methods=["POST"], name="admin_reset"),
    ]
    kinds = {route.name: _kind_of(route.name) for route in routes}
    starlette = Starlette(routes=routes, exception_handlers={ApiError: _api_error_response})
    return Gateway(starlette, handlers.state, kinds)


def _kind_of(route_name: str) -> RouteKind:
    if route_name.startswith("admin_"):
        return RouteKind.ADMIN
    return {"search": RouteKind.SEARCH, "create_meeting": RouteKind.CREATE}.get(route_name, RouteKind.API)


async def _api_error_response(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, ApiError)  # registered for ApiError only
    return exc.response(request.scope)


class _Handlers:
    def __init__(self, state: SandboxState) -> None:
        self.state = state

    async def account_details(self, request: Request) -> Response:
        return JSONResponse(
            {
                "portalId": self.state.config.portal_id,
                "accountType": "STANDARD",
                "timeZone": "Asia/Tokyo",
                "companyCurrency": "JPY",
                "additionalCurrencies": [],
                "utcOffset": "+09:00",
                "utcOffsetMilliseconds": 32_400_000,
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
        return JSONResponse(_page([owner.to_json() for owner in owners], offset, limit))

    async def batch_read(self, request: Request) -> Response:
        object_type = _object_type(request, BATCH_READ_TYPES)
        body = await _json_object(request)
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
        return _batch_answer(object_type, [_record_json(r, requested) for r in found.values()], missing)

    async def search(self, request: Request) -> Response:
        object_type = _object_type(request, SEARCH_TYPES)
        try:
            query = parse_search(await _json_object(request))
        except SearchError as exc:
            raise validation_error(str(exc)) from exc
        hits = [r for r in self.state.searchable(object_type) if query.matches(_searchable_properties(r))]
        page = _page([_record_json(r, query.properties) for r in hits], query.offset, query.limit)
        return JSONResponse({"total": len(hits), **page})

    async def create_meeting(self, request: Request) -> Response:
        body = await _json_body(request)
        try:
            draft = parse_create(request.query_params.get("organizerUserId"), body, self.state.seed)
        except InvalidMeeting as exc:
            raise validation_error(str(exc), exc.issues) from exc
        return JSONResponse(_created_json(self.state.add_meeting(draft)))

    async def stats(self, request: Request) -> Response:
        return JSONResponse(self.state.stats_json())

    async def meetings(self, request: Request) -> Response:
        found = [meeting.to_json() for meeting in self.state.meetings.values()]
        return JSONResponse({"total": len(found), "results": found})

    async def faults(self, request: Request) -> Response:
        if request.method == "POST":
            try:
                self.state.set_faults(await _json_object(request))
            except FaultSettingsError as exc:
                raise validation_error(str(exc)) from exc
        return JSONResponse(self.state.faults.to_json())

    async def reset(self, request: Request) -> Response:
        self.state.reset()
        return JSONResponse({"status": "reset"})


def _record_json(record: CrmRecord, requested: Sequence[str]) -> dict[str, Any]:
    """HubSpot's object shape: the requested properties (null when unset), or all when none are named."""
    known = _searchable_properties(record)
    chosen = {name: known.get(name) for name in requested} if requested else known
    return {
        "id": record.id,
        "properties": _system_properties(record) | chosen,
        "createdAt": record.created_at,
        "updatedAt": record.updated_at,
        "archived": False,
    }


def _searchable_properties(record: CrmRecord) -> dict[str, str]:
    return _system_properties(record) | record.properties


def _system_properties(record: CrmRecord) -> dict[str, str]:
    # HubSpot adds these to every object it returns, whatever was asked for.
    return {
        "hs_object_id": record.id,
        "hs_createdate": record.created_at,
        "hs_lastmodifieddate": record.updated_at,
    }


def _created_json(meeting: Meeting) -> dict[str, Any]:
    # The spec marks the engagement source fields as always present; the values are the sandbox's guess.
    extra = {"hs_engagement_source": "API", "hs_engagement_source_id": str(meeting.draft.organizer_user_id)}
    return {
        "id": meeting.record.id,
        "createdAt": meeting.record.created_at,
        "lastUpdatedAt": meeting.record.updated_at,
        "properties": meeting.draft.properties | extra,
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


async def _json_body(request: Request) -> object:
    raw = await request.body()
    try:
        return json.loads(raw)
    except ValueError as exc:
        raise validation_error(f"Invalid input JSON: {exc}") from exc


async def _json_object(request: Request) -> dict[str, Any]:
    body = await _json_body(request)
    if not isinstance(body, dict):
        raise validation_error("Invalid input JSON: the body must be a JSON object.")
    return body


def _page(items: list[dict[str, Any]], offset: int, limit: int) -> dict[str, Any]:
    page: dict[str, Any] = {"results": items[offset : offset + limit]}
    if offset + limit < len(items):
        page["paging"] = {"next": {"after": str(offset + limit)}}
    return page


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
