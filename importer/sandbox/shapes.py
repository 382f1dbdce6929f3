"""What the routes share: JSON request bodies in, HubSpot's object and paging JSON out."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from starlette.requests import Request

from importer.sandbox.errors import validation_error
from importer.sandbox.seed import CrmRecord


async def json_body(request: Request) -> object:
    raw = await request.body()
    try:
        return json.loads(raw)
    except ValueError as exc:
        raise validation_error(f"Invalid input JSON: {exc}") from exc


async def json_object(request: Request) -> dict[str, Any]:
    body = await json_body(request)
    if not isinstance(body, dict):
        raise validation_error("Invalid input JSON: the body must be a JSON object.")
    return body


def record_json(record: CrmRecord, requested: Sequence[str]) -> dict[str, Any]:
    """HubSpot's object shape: the requested properties (null when unset), or all when none are named."""
    known = searchable_properties(record)
    chosen = {name: known.get(name) for name in requested} if requested else known
    return {
        "id": record.id,
        "properties": system_properties(record) | chosen,
        "createdAt": record.created_at,
        "updatedAt": record.updated_at,
        "archived": False,
    }


def searchable_properties(record: CrmRecord) -> dict[str, str]:
    return system_properties(record) | record.properties


def system_properties(record: CrmRecord) -> dict[str, str]:
    # HubSpot adds these to every object it returns, whatever was asked for.
    return {
        "hs_object_id": record.id,
        "hs_createdate": record.created_at,
        "hs_lastmodifieddate": record.updated_at,
    }


def page(items: list[dict[str, Any]], offset: int, limit: int, ceiling: int | None = None) -> dict[str, Any]:
    """One page of `items`; nothing past `ceiling`, though `paging` still points past it, as HubSpot's does."""
    end = offset + limit if ceiling is None else min(offset + limit, ceiling)
    body: dict[str, Any] = {"results": items[offset:end]}
    if offset + limit < len(items):
        body["paging"] = {"next": {"after": str(offset + limit)}}
    return body


def batch_body(results: list[dict[str, Any]], started_at: str, completed_at: str) -> dict[str, Any]:
    return {"status": "COMPLETE", "results": results, "startedAt": started_at, "completedAt": completed_at}
