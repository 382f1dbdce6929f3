"""The CRM's meeting object routes: read one, update one, batch create, and v4 associations.

Shapes follow the CRM meetings spec (`PublicApiSpecs/CRM/Meetings/Rollouts/424/2026-03/meetings.json`, served
here under `/crm/v3/objects/meetings`) and the associations v4 spec.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from importer.sandbox.associations import pair_json, target_type_named, type_issues, v3_associations
from importer.sandbox.errors import ApiError, missing_scopes, not_found, validation_error
from importer.sandbox.meetings import BatchInput, parse_batch_inputs, parse_update
from importer.sandbox.properties import InvalidMeeting, Issue
from importer.sandbox.shapes import batch_body, json_body, json_object, record_json, system_properties
from importer.sandbox.state import SandboxState, utc_now
from importer.sandbox.store import StoredMeeting

MAX_BATCH_INPUTS = 100
# The associations v4 batch limit is not in its spec; 100, the CRM's usual batch size, is the safe guess.
MAX_ASSOCIATION_INPUTS = 100
# The scope the meetings spec names for its writes; a refused create says any one of these would do.
WRITE_SCOPES = ("crm.objects.contacts.write",)


def refuse_forbidden_titles(state: SandboxState, titles: Iterable[object]) -> None:
    """Answer 403 MISSING_SCOPES, before any check or work, for a create of a title `--forbid-title` names."""
    text = state.faults.forbid_title
    if text and any(isinstance(title, str) and text in title for title in titles):
        raise missing_scopes(WRITE_SCOPES)


def refused_title_issues(state: SandboxState, title: object, where: str) -> list[Issue]:
    """A validation issue for a title `--refuse-title` names, as a portal's own rule would refuse it: in a
    batch create, that input alone is refused (207) and the others are created."""
    text = state.faults.refuse_title
    if not (text and isinstance(title, str) and text in title):
        return []
    field = f"{where}.hs_meeting_title"
    return [Issue(f"{field} '{title}' is refused by a rule of this portal.", field, "INVALID_OPTION")]


def object_json(meeting: StoredMeeting) -> dict[str, Any]:
    """SimplePublicObject with every property the meeting has, and its write trace id if it came with one."""
    body = record_json(meeting.record, ())
    trace_id = meeting.made.write_trace_id
    return body | {"objectWriteTraceId": trace_id} if trace_id is not None else body


class MeetingObjects:
    """Handlers for the meeting object routes; each one change counts under its route in the stats."""

    def __init__(self, state: SandboxState) -> None:
        self.state = state

    async def read(self, request: Request) -> Response:
        meeting = self._meeting(request)
        requested = _list_param(request, "properties")
        body = record_json(meeting.record, requested)
        if not requested:
            # With no properties named, HubSpot returns only the ones it adds to every object.
            body["properties"] = system_properties(meeting.record)
        associations = v3_associations(meeting.links, _list_param(request, "associations"))
        return JSONResponse(body | {"associations": associations} if associations else body)

    async def update(self, request: Request) -> Response:
        meeting = self._meeting(request)
        body = await json_body(request)
        try:
            changes = parse_update(body, meeting.record.properties, self.state.seed)
        except InvalidMeeting as exc:
            raise validation_error(str(exc), exc.issues) from exc
        self.state.update_meeting(meeting, changes, "update_meeting")
        return JSONResponse(record_json(meeting.record, ()))

    async def batch_create(self, request: Request) -> Response:
        started_at = utc_now()
        inputs = _inputs(await json_object(request), "batch create")
        refuse_forbidden_titles(self.state, (title_of(item) for item in inputs))
        checked = [
            self._title_rule(item, raw)
            for item, raw in zip(parse_batch_inputs(inputs, self.state.seed), inputs, strict=True)
        ]
        created = [self.state.add_meeting(item.meeting, "batch") for item in checked if item.meeting]
        results = self.state.dice.shuffled([object_json(meeting) for meeting in created])
        body = batch_body(results, started_at, utc_now())
        refused = [item for item in checked if item.meeting is None]
        if not refused:
            return JSONResponse(body, status_code=201)
        errors = [_input_error(item) for item in refused]
        return JSONResponse(body | {"numErrors": len(errors), "errors": errors}, status_code=207)

    async def associate(self, request: Request) -> Response:
        meeting = self._meeting(request)
        target_type = _target_type(request)
        target_id = str(request.path_params["to_object_id"])
        specs = await json_body(request)
        if not isinstance(specs, list) or not specs:
            raise validation_error("The body must be a non-empty array of association specs.")
        issues = [
            issue
            for index, spec in enumerate(specs)
            for issue in type_issues(f"[{index}]", spec, target_type, target_id, self.state.seed)
        ]
        if issues:
            raise validation_error(str(InvalidMeeting(issues)), issues)
        self.state.link(meeting, (target_type, target_id), specs, "association_create")
        return JSONResponse(pair_json(meeting.id, target_type, target_id), status_code=201)

    async def dissociate(self, request: Request) -> Response:
        meeting = self._meeting(request)
        target = (_target_type(request), str(request.path_params["to_object_id"]))
        self.state.unlink(meeting, [target], "association_delete")
        return Response(status_code=204)

    async def batch_associate(self, request: Request) -> Response:
        started_at = utc_now()
        target_type = _target_type(request)
        inputs = _inputs(await json_object(request), "batch association create", MAX_ASSOCIATION_INPUTS)
        results, errors = [], []
        for index, item in enumerate(inputs):
            found = self._pair(f"inputs[{index}]", item, target_type)
            if isinstance(found, ApiError):
                errors.append(_pair_error(found, item))
                continue
            meeting, target_id = found
            self.state.link(meeting, (target_type, target_id), item["types"], "association_batch_create")
            results.append(pair_json(meeting.id, target_type, target_id))
        body = batch_body(results, started_at, utc_now())
        if not errors:
            return JSONResponse(body, status_code=201)
        return JSONResponse(body | {"numErrors": len(errors), "errors": errors}, status_code=207)

    async def batch_dissociate(self, request: Request) -> Response:
        target_type = _target_type(request)
        inputs = _inputs(await json_object(request), "batch association archive", MAX_ASSOCIATION_INPUTS)
        # Checked whole before anything changes: the spec gives this route no partial answer.
        plan = [self._archive_input(f"inputs[{index}]", item) for index, item in enumerate(inputs)]
        for meeting, target_ids in plan:
            self.state.unlink(meeting, [(target_type, i) for i in target_ids], "association_batch_archive")
        return Response(status_code=204)

    def _title_rule(self, item: BatchInput, raw: object) -> BatchInput:
        issues = refused_title_issues(self.state, title_of(raw), f"inputs[{item.index}].properties")
        return BatchInput(item.index, item.write_trace_id, None, item.issues + issues) if issues else item

    def _meeting(self, request: Request) -> StoredMeeting:
        meeting_id = str(request.path_params["meeting_id"])
        meeting = self.state.meetings.get(meeting_id)
        if meeting is None:
            raise not_found(f"resource not found: no meeting has id {meeting_id}")
        return meeting

    def _pair(self, where: str, item: object, target_type: str) -> tuple[StoredMeeting, str] | ApiError:
        """The meeting and target id of one batch association input, or the error that refuses it."""
        from_id, to_id = _id_at(item, "from"), _id_at(item, "to")
        types = item.get("types") if isinstance(item, dict) else None
        if from_id is None or to_id is None or not isinstance(types, list) or not types:
            return validation_error(
                f'{where} must look like {{"from": {{"id"}}, "to": {{"id"}}, "types": [...]}}.'
            )
        meeting = self.state.meetings.get(from_id)
        if meeting is None:
            return not_found(f"{where}: no meeting has id {from_id}")
        issues = [
            issue
            for number, spec in enumerate(types)
            for issue in type_issues(f"{where}.types[{number}]", spec, target_type, to_id, self.state.seed)
        ]
        if issues:
            return validation_error(str(InvalidMeeting(issues)), issues)
        return meeting, to_id

    def _archive_input(self, where: str, item: object) -> tuple[StoredMeeting, list[str]]:
        from_id = _id_at(item, "from")
        targets = item.get("to") if isinstance(item, dict) else None
        target_ids = [_id_of(target) for target in targets] if isinstance(targets, list) else [None]
        if from_id is None or None in target_ids:
            raise validation_error(f'{where} must look like {{"from": {{"id"}}, "to": [{{"id"}}, ...]}}.')
        meeting = self.state.meetings.get(from_id)
        if meeting is None:
            raise not_found(f"{where}: no meeting has id {from_id}")
        return meeting, [str(i) for i in target_ids]


def _inputs(body: dict[str, Any], what: str, highest: int = MAX_BATCH_INPUTS) -> list[Any]:
    inputs = body.get("inputs")
    if not isinstance(inputs, list):
        raise validation_error("inputs must be an array.")
    if len(inputs) > highest:
        raise validation_error(f"Too many inputs: {len(inputs)}. A {what} takes at most {highest}.")
    return inputs


def title_of(item: object) -> object:
    """The hs_meeting_title a create body or batch input carries, if any."""
    properties = item.get("properties") if isinstance(item, dict) else None
    return properties.get("hs_meeting_title") if isinstance(properties, dict) else None


def _input_error(item: BatchInput) -> dict[str, Any]:
    """One refused input, named by its objectWriteTraceId (the spec's way to match inputs to answers)."""
    context = {"objectWriteTraceId": [item.write_trace_id]} if item.write_trace_id is not None else {}
    return {
        "status": "error",
        "category": "VALIDATION_ERROR",
        "message": str(InvalidMeeting(item.issues)),
        "context": context,
        "errors": [issue.to_json() for issue in item.issues],
    }


def _pair_error(error: ApiError, item: object) -> dict[str, Any]:
    # The context keys are the sandbox's own: the spec leaves a batch error's context free-form.
    ids = {end: _id_at(item, end) for end in ("from", "to")}
    return {
        "status": "error",
        "category": error.category,
        "message": error.message,
        "context": {f"{end}Id": [found] for end, found in ids.items() if found is not None},
        "errors": [issue.to_json() for issue in error.issues],
    }


def _id_at(item: object, end: str) -> str | None:
    return _id_of(item.get(end) if isinstance(item, dict) else None)


def _id_of(side: object) -> str | None:
    """The id of a `{"id": ...}` object, as a string; None when there is none."""
    found = side.get("id") if isinstance(side, dict) else None
    if isinstance(found, bool) or not isinstance(found, str | int) or found == "":
        return None
    return str(found)


def _target_type(request: Request) -> str:
    name = str(request.path_params["to_object_type"])
    target_type = target_type_named(name)
    if target_type is None:
        raise ApiError(404, "OBJECT_NOT_FOUND", f"Unable to infer object type from: {name}")
    return target_type


def _list_param(request: Request, name: str) -> list[str]:
    """A list query parameter, given comma-separated, repeated, or both."""
    return [part for raw in request.query_params.getlist(name) for part in raw.split(",") if part]
