"""Meeting associations: which type ids link a meeting to what, and the shapes HubSpot reads and writes them in.

A meeting's associations are kept as `Links`: (object type, object id) -> the association types between the
two, in the order they were first made, so the admin API can show them in the create request's own shape.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from importer.sandbox.properties import Issue
from importer.sandbox.seed import Seed

TypeSpec = tuple[str, int]  # (associationCategory, associationTypeId)
Links = dict[tuple[str, str], tuple[TypeSpec, ...]]

# HUBSPOT_DEFINED meeting -> object association type ids, and the object type each one must point at.
ASSOCIATION_TARGETS = {200: "contacts", 188: "companies", 212: "deals", 226: "tickets"}
TARGET_TYPES = tuple(ASSOCIATION_TARGETS.values())
SINGULAR = {"contacts": "contact", "companies": "company", "deals": "deal", "tickets": "ticket"}
ASSOCIATION_CATEGORIES = ("HUBSPOT_DEFINED", "USER_DEFINED", "INTEGRATOR_DEFINED", "WORK")
# HubSpot's object type ids, which v4 answers use (`fromObjectTypeId`, `toObjectTypeId`).
OBJECT_TYPE_IDS = {
    "meetings": "0-47",
    "contacts": "0-1",
    "companies": "0-2",
    "deals": "0-3",
    "tickets": "0-5",
}
# The association type names of the v3 read shape (`associations.contacts.results[].type`).
V3_TYPE_NAMES = {target: f"meeting_event_to_{noun}" for target, noun in SINGULAR.items()}


def target_type_named(name: str) -> str | None:
    """The object type a path names, as a plural ("contacts"), a singular ("contact") or an id ("0-1")."""
    folded = name.casefold()
    for plural in TARGET_TYPES:
        if folded in (plural, SINGULAR[plural], OBJECT_TYPE_IDS[plural]):
            return plural
    return None


def association_issues(associations: object, seed: Seed, where: str = "associations") -> list[Issue]:
    """The rules a create request's `associations` array breaks: `[{to: {id}, types: [...]}]`."""
    if not isinstance(associations, list):
        return [Issue(f"{where} must be an array.", where, "INVALID_TYPE")]
    return [
        issue
        for index, item in enumerate(associations)
        for issue in _one_association(f"{where}[{index}]", item, seed)
    ]


def _one_association(where: str, item: object, seed: Seed) -> Iterator[Issue]:
    target = item.get("to") if isinstance(item, dict) else None
    target_id = target.get("id") if isinstance(target, dict) else None
    if not isinstance(target_id, str | int) or isinstance(target_id, bool) or target_id == "":
        yield Issue(f"{where}.to.id is required.", f"{where}.to.id", "REQUIRED")
        target_id = None
    types = item.get("types") if isinstance(item, dict) else None
    if not isinstance(types, list) or not types:
        yield Issue(f"{where}.types must be a non-empty array.", f"{where}.types", "REQUIRED")
        return
    for number, spec in enumerate(types):
        yield from type_issues(f"{where}.types[{number}]", spec, None, target_id, seed)


def type_issues(
    where: str, spec: object, target_type: str | None, target_id: object, seed: Seed
) -> Iterator[Issue]:
    """What is wrong with one association spec; `target_type` is None when the type id alone decides it."""
    category = spec.get("associationCategory") if isinstance(spec, dict) else None
    type_id = spec.get("associationTypeId") if isinstance(spec, dict) else None
    if category not in ASSOCIATION_CATEGORIES:
        message = f"{where}.associationCategory must be one of {', '.join(ASSOCIATION_CATEGORIES)}."
        yield Issue(message, f"{where}.associationCategory", "INVALID_OPTION")
    elif not isinstance(type_id, int) or isinstance(type_id, bool):
        message = f"{where}.associationTypeId must be an integer."
        yield Issue(message, f"{where}.associationTypeId", "INVALID_TYPE")
    elif category != "HUBSPOT_DEFINED" or type_id not in ASSOCIATION_TARGETS:
        message = f"{where}: {category} association type {type_id} does not link a meeting to an object."
        yield Issue(message, f"{where}.associationTypeId", "INVALID_ASSOCIATION_TYPE")
    elif target_type is not None and ASSOCIATION_TARGETS[type_id] != target_type:
        message = (
            f"{where}: association type {type_id} links a meeting to a "
            f"{SINGULAR[ASSOCIATION_TARGETS[type_id]]}, not to a {SINGULAR[target_type]}."
        )
        yield Issue(message, f"{where}.associationTypeId", "INVALID_ASSOCIATION_TYPE")
    elif target_id is not None and str(target_id) not in seed.records[ASSOCIATION_TARGETS[type_id]]:
        noun = SINGULAR[ASSOCIATION_TARGETS[type_id]]
        message = f"{where}: association type {type_id} needs a {noun}, and no {noun} has id {target_id}."
        yield Issue(message, f"{where}.associationTypeId", "OBJECT_NOT_FOUND")


def links_of(associations: list[Any]) -> Links:
    """The links a checked `associations` array makes; one entry per target, its types merged."""
    links: Links = {}
    for item in associations:
        target_id = str(item["to"]["id"])
        for spec in item["types"]:
            type_id = int(spec["associationTypeId"])
            add_types(links, ASSOCIATION_TARGETS[type_id], target_id, [spec])
    return links


def add_types(links: Links, target_type: str, target_id: str, specs: list[Any]) -> None:
    """Add checked association specs to one target, keeping the types it already has."""
    key = (target_type, target_id)
    known = list(links.get(key, ()))
    for spec in specs:
        pair = (str(spec["associationCategory"]), int(spec["associationTypeId"]))
        if pair not in known:
            known.append(pair)
    links[key] = tuple(known)


def links_json(links: Links) -> list[dict[str, Any]]:
    """Links in the create request's shape, as the admin API shows them."""
    return [
        {
            "to": {"id": target_id},
            "types": [{"associationCategory": c, "associationTypeId": t} for c, t in types],
        }
        for (_, target_id), types in links.items()
    ]


def v3_associations(links: Links, wanted: list[str]) -> dict[str, Any]:
    """The v3 read shape for the object types asked for; types with no link are left out, as HubSpot does."""
    shape: dict[str, Any] = {}
    for name in wanted:
        target_type = target_type_named(name)
        if target_type is None or target_type in shape:
            continue  # HubSpot ignores association types it does not know
        found = [
            {"id": target_id, "type": V3_TYPE_NAMES[target_type]}
            for (kind, target_id) in links
            if kind == target_type
        ]
        if found:
            shape[target_type] = {"results": found}
    return shape


def pair_json(meeting_id: str, target_type: str, target_id: str) -> dict[str, Any]:
    """HubSpot's LabelsBetweenObjectPair; HUBSPOT_DEFINED default types carry no label."""
    return {
        "fromObjectTypeId": OBJECT_TYPE_IDS["meetings"],
        "fromObjectId": meeting_id,
        "toObjectTypeId": OBJECT_TYPE_IDS[target_type],
        "toObjectId": target_id,
        "labels": [],
    }
