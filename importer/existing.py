"""Existing meetings: what HubSpot already has for the meetings about to be sent.

HubSpot has no idempotency key, so the only proof that a meeting exists is finding it with search. Two
ways to ask, both under the search pacer (its own limit, outside the 10-second window):

- `find_in_ranges`, before a run sends anything: one filter group per owner over the time range of that
  owner's rows, five owners to a search, paged. A thousand rows of ten owners cost two searches and their
  pages, not a thousand, so the check keeps ahead of the creates at every tier.
- `find_exact`, for rows whose create lost its answer: owner and exact start per row, five rows a search.

A meeting is the row's only when it has the same owner, start instant and title (exactly as sent) and
agrees with what the row sends in every compared property the search returns: the end always, the
location and the body where the row gives them. A meeting that has the row's owner, start and title but
differs elsewhere is someone else's (say, a rep's hand-made meeting): it is reported, never adopted.
When several meetings agree in all of that, their associations decide (`narrow`).
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from importer.hubspot import HubSpotClient, Record, TooManyResults
from importer.mapper import ASSOCIATION_TYPE_IDS, CreateRequest

SEARCH_GROUPS = 5  # HubSpot ORs at most 5 filter groups in one search
MATCH_PROPERTIES = (
    "hubspot_owner_id",
    "hs_meeting_title",
    "hs_meeting_start_time",
    "hs_meeting_end_time",
    "hs_meeting_location",
    "hs_meeting_body",
)
_COMPARED_IF_GIVEN = ("hs_meeting_location", "hs_meeting_body")
_BY_START = [{"propertyName": "hs_meeting_start_time", "direction": "ASCENDING"}]


@dataclass(frozen=True, slots=True)
class Finding:
    """The meetings HubSpot has with one request's owner, start and title."""

    same: tuple[str, ...] = ()  # equal in every compared property: this row's meeting, if only one
    differing: tuple[str, ...] = ()  # same owner, start and title, different otherwise


async def find_in_ranges(client: HubSpotClient, requests: Sequence[CreateRequest]) -> list[Finding]:
    """For each request, what HubSpot has: one search group per owner over that owner's time range."""
    ranges: dict[str, tuple[int, int]] = {}
    for request in requests:
        low, high = ranges.get(request.owner_id, (request.start_ms, request.start_ms))
        ranges[request.owner_id] = (min(low, request.start_ms), max(high, request.start_ms))
    spans = [(owner, low, high) for owner, (low, high) in ranges.items()]
    chunks = [spans[i : i + SEARCH_GROUPS] for i in range(0, len(spans), SEARCH_GROUPS)]
    pages = await asyncio.gather(*(_search_spans(client, chunk) for chunk in chunks))
    records = [record for page in pages for record in page]
    return [match(request, records) for request in requests]


async def find_exact(
    client: HubSpotClient, requests: Sequence[CreateRequest]
) -> list[Finding | BaseException]:
    """For each request, what HubSpot has at its owner and exact start, or the error that kept us from
    looking (one search answers SEARCH_GROUPS requests)."""
    chunks = [requests[i : i + SEARCH_GROUPS] for i in range(0, len(requests), SEARCH_GROUPS)]
    answers = await asyncio.gather(
        *(_search_exact(client, chunk) for chunk in chunks), return_exceptions=True
    )
    found: list[Finding | BaseException] = []
    for chunk, answer in zip(chunks, answers, strict=True):
        if isinstance(answer, BaseException):
            if not isinstance(answer, Exception):
                raise answer  # a cancellation or exit, not a failed search
            found.extend([answer] * len(chunk))
        else:
            found.extend(match(request, answer) for request in chunk)
    return found


async def _search_exact(client: HubSpotClient, requests: Sequence[CreateRequest]) -> list[Record]:
    groups = [
        {
            "filters": [
                _filter("hubspot_owner_id", "EQ", request.owner_id),
                _filter("hs_meeting_start_time", "EQ", str(request.start_ms)),
            ]
        }
        for request in requests
    ]
    return await client.search("meetings", groups, properties=MATCH_PROPERTIES)


async def _search_spans(client: HubSpotClient, spans: list[tuple[str, int, int]]) -> list[Record]:
    """Meetings of each (owner, first start, last start); a search that matches more than HubSpot pages
    through is split: by owner first, then by halving the time range."""
    groups = [
        {
            "filters": [
                _filter("hubspot_owner_id", "EQ", owner),
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
    try:
        return await client.search("meetings", groups, properties=MATCH_PROPERTIES, sorts=_BY_START)
    except TooManyResults:
        if len(spans) > 1:
            parts = [[span] for span in spans]
        else:
            owner, low, high = spans[0]
            if low == high:
                raise
            middle = (low + high) // 2
            parts = [[(owner, low, middle)], [(owner, middle + 1, high)]]
        pages = await asyncio.gather(*(_search_spans(client, part) for part in parts))
        return [record for page in pages for record in page]


async def narrow(client: HubSpotClient, request: CreateRequest, ids: Sequence[str]) -> list[str]:
    """Of several meetings that agree with a request in everything search shows, those linked to exactly
    the request's records. Search returns no associations, so two rows that differ only in their contacts
    are told apart by reading each candidate (a request apiece: this is the rare case)."""
    wanted = links_of(request)
    kinds = sorted(ASSOCIATION_TYPE_IDS)
    found = await asyncio.gather(*(client.meeting_links(meeting_id, kinds) for meeting_id in ids))
    return [meeting_id for meeting_id, links in zip(ids, found, strict=True) if links == wanted]


def links_of(request: CreateRequest) -> set[tuple[str, str]]:
    """(object type, object id) of the associations the request makes."""
    kind_of = {type_id: kind for kind, type_id in ASSOCIATION_TYPE_IDS.items()}
    return {
        (kind_of[kind["associationTypeId"]], str(link["to"]["id"]))
        for link in request.body.get("associations") or []
        for kind in link["types"]
        if kind["associationTypeId"] in kind_of
    }


def _filter(name: str, operator: str, value: str) -> dict[str, Any]:
    return {"propertyName": name, "operator": operator, "value": value}


def match(request: CreateRequest, records: Sequence[Record]) -> Finding:
    """Which of `records` have this request's owner, start and title (search matches text loosely and
    answers for several requests at once), and which of those agree in everything compared."""
    properties = request.body["properties"]
    end_ms = _epoch_ms(properties.get("hs_meeting_end_time"))
    same: list[str] = []
    differing: list[str] = []
    for record in records:
        found = record.properties
        if (
            str(found.get("hubspot_owner_id")) != request.owner_id
            or _epoch_ms(found.get("hs_meeting_start_time")) != request.start_ms
            or found.get("hs_meeting_title") != request.title
        ):
            continue
        agrees = _epoch_ms(found.get("hs_meeting_end_time")) == end_ms and all(
            _text(found.get(name)) == _text(properties[name])
            for name in _COMPARED_IF_GIVEN
            if properties.get(name)
        )
        (same if agrees else differing).append(record.id)
    return Finding(_distinct(same), _distinct(differing))


def _distinct(ids: list[str]) -> tuple[str, ...]:
    # Oldest first: HubSpot's ids grow with time.
    return tuple(sorted(set(ids), key=lambda i: (len(i), i)))


def _text(value: object) -> str:
    return " ".join(str(value or "").split())


def _epoch_ms(value: object) -> int | None:
    """HubSpot returns date-times as ISO 8601 (`...Z`) in search results; epoch milliseconds also occur."""
    text = str(value or "")
    if text.isdigit():
        return int(text)
    try:
        return round(datetime.fromisoformat(text).timestamp() * 1000)
    except ValueError:
        return None
