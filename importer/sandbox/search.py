"""CRM search requests: parsing a body into filter groups and a sort, and matching and ordering records.

Limits as HubSpot's search guide gives them: at most 5 filterGroups, 6 filters in a group and 18 in all,
200 results a page and none past the 10,000th of a query.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, TypeVar

MAX_GROUPS = 5
MAX_GROUP_FILTERS = 6
MAX_FILTERS = 18
MAX_LIMIT = 200
MAX_RESULTS = 10_000
# The guide allows one sorting rule a search (UNVERIFIED against a live portal: a second one is refused).
MAX_SORTS = 1
DEFAULT_LIMIT = 10
DIRECTIONS = ("ASCENDING", "DESCENDING")
# Date-time properties compare as instants, whether a filter gives epoch milliseconds or ISO 8601.
DATE_TIME_PROPERTIES = frozenset(
    {"hs_meeting_start_time", "hs_meeting_end_time", "hs_timestamp", "hs_createdate", "hs_lastmodifieddate"}
)
_ORDER_TESTS: dict[str, Callable[[int], bool]] = {
    "EQ": lambda order: order == 0,
    "NEQ": lambda order: order != 0,
    "LT": lambda order: order < 0,
    "LTE": lambda order: order <= 0,
    "GT": lambda order: order > 0,
    "GTE": lambda order: order >= 0,
}
_LIST_OPERATORS = ("IN", "NOT_IN")
_PRESENCE_OPERATORS = ("HAS_PROPERTY", "NOT_HAS_PROPERTY")
OPERATORS = (*_ORDER_TESTS, "BETWEEN", *_LIST_OPERATORS, *_PRESENCE_OPERATORS)
T = TypeVar("T")


class SearchError(ValueError):
    """Raised when a search body breaks HubSpot's rules; the message is the 400 answer's."""


@dataclass(frozen=True)
class Filter:
    property_name: str
    operator: str
    value: object = None
    values: tuple[object, ...] = ()
    high_value: object = None

    def matches(self, properties: Mapping[str, str]) -> bool:
        stored = properties.get(self.property_name)
        present = stored not in (None, "")
        if self.operator in _PRESENCE_OPERATORS:
            return present == (self.operator == "HAS_PROPERTY")
        if stored is None or not present:
            return False
        if self.operator in _LIST_OPERATORS:
            found = any(_listed(self.property_name, stored, wanted) for wanted in self.values)
            return found == (self.operator == "IN")
        if self.operator == "BETWEEN":
            low = _order(self.property_name, stored, self.value)
            high = _order(self.property_name, stored, self.high_value)
            return low is not None and high is not None and low >= 0 and high <= 0
        order = _order(self.property_name, stored, self.value)
        return order is not None and _ORDER_TESTS[self.operator](order)


@dataclass(frozen=True)
class Sort:
    property_name: str
    descending: bool


@dataclass(frozen=True)
class SearchRequest:
    groups: tuple[tuple[Filter, ...], ...]
    properties: tuple[str, ...]
    limit: int
    offset: int
    sorts: tuple[Sort, ...] = ()

    def matches(self, properties: Mapping[str, str]) -> bool:
        """Filters in a group AND together, groups OR; no groups at all matches everything."""
        if not self.groups:
            return True
        return any(all(f.matches(properties) for f in group) for group in self.groups)

    def ordered(self, hits: list[T], properties_of: Callable[[T], Mapping[str, str]]) -> list[T]:
        """`hits` (in id order) by the sort, ties kept in id order; records without the value come last."""
        for sort in reversed(self.sorts):
            name = sort.property_name
            keyed = [(hit, _sort_key(name, properties_of(hit).get(name))) for hit in hits]
            present = [(hit, key) for hit, key in keyed if key is not None]
            absent = [hit for hit, key in keyed if key is None]
            # Python's sort is stable in both directions, so equal values keep their earlier order.
            present.sort(key=lambda pair: pair[1], reverse=sort.descending)
            hits = [hit for hit, _ in present] + absent
        return hits


def parse_search(body: Mapping[str, Any]) -> SearchRequest:
    """Read a search body; raise SearchError for what HubSpot refuses with a 400."""
    raw_groups = body.get("filterGroups", [])
    if not isinstance(raw_groups, list) or not all(isinstance(g, dict) for g in raw_groups):
        raise SearchError("filterGroups must be an array of objects.")
    if len(raw_groups) > MAX_GROUPS:
        raise SearchError(f"Too many filterGroups: {len(raw_groups)}. The maximum is {MAX_GROUPS}.")
    groups = tuple(_parse_group(index, group.get("filters", [])) for index, group in enumerate(raw_groups))
    total = sum(len(group) for group in groups)
    if total > MAX_FILTERS:
        raise SearchError(f"Too many filters: {total}. The maximum is {MAX_FILTERS} across all filterGroups.")
    offset = parse_cursor(body.get("after"))
    if offset >= MAX_RESULTS:
        # The wording is the sandbox's; HubSpot answers such paging with a 400 (search guide, limitations).
        raise SearchError(
            f"after {offset} is past the end of what a search returns: "
            f"no search pages beyond its first {MAX_RESULTS} results."
        )
    return SearchRequest(
        groups=groups,
        properties=_parse_properties(body.get("properties", [])),
        limit=_parse_limit(body.get("limit", DEFAULT_LIMIT)),
        offset=offset,
        sorts=_parse_sorts(body.get("sorts", [])),
    )


def _parse_group(index: int, raw_filters: object) -> tuple[Filter, ...]:
    if not isinstance(raw_filters, list) or not all(isinstance(f, dict) for f in raw_filters):
        raise SearchError("filters must be an array of objects.")
    if len(raw_filters) > MAX_GROUP_FILTERS:
        raise SearchError(
            f"Too many filters in filterGroups[{index}]: {len(raw_filters)}. "
            f"The maximum is {MAX_GROUP_FILTERS} in a filterGroup."
        )
    return tuple(_parse_filter(raw) for raw in raw_filters)


def _parse_sorts(raw: object) -> tuple[Sort, ...]:
    if not isinstance(raw, list):
        raise SearchError("sorts must be an array.")
    if len(raw) > MAX_SORTS:
        raise SearchError(f"Too many sorts: {len(raw)}. A search takes at most {MAX_SORTS}.")
    return tuple(_parse_sort(item) for item in raw)


def _parse_sort(raw: object) -> Sort:
    # The spec types a sort as a string ("hs_timestamp", "-hs_timestamp" for descending); the search guide
    # shows an object {"propertyName", "direction"}. HubSpot takes both.
    if isinstance(raw, str) and raw.lstrip("-"):
        return Sort(raw.lstrip("-"), descending=raw.startswith("-"))
    if isinstance(raw, dict):
        name, direction = raw.get("propertyName"), raw.get("direction", "ASCENDING")
        if isinstance(name, str) and name and direction in DIRECTIONS:
            return Sort(name, descending=direction == "DESCENDING")
    raise SearchError(
        f"Invalid sort {raw!r}: use a property name (prefixed with - for descending) or "
        '{"propertyName": ..., "direction": "ASCENDING" or "DESCENDING"}.'
    )


def _parse_filter(raw: Mapping[str, Any]) -> Filter:
    name, operator = raw.get("propertyName"), raw.get("operator")
    if not isinstance(name, str) or not name:
        raise SearchError("Every filter needs a propertyName.")
    if operator not in OPERATORS:
        raise SearchError(
            f"Unknown operator {operator!r} in the filter on {name}. Use one of {', '.join(OPERATORS)}."
        )
    if operator in _LIST_OPERATORS:
        values = raw.get("values")
        if not isinstance(values, list) or not values:
            raise SearchError(f"The {operator} filter on {name} needs a non-empty 'values' array.")
        parsed = Filter(name, operator, values=tuple(values))
    elif operator in _PRESENCE_OPERATORS:
        parsed = Filter(name, operator)
    else:
        parsed = _parse_compared(name, operator, raw)
    for wanted in (parsed.value, parsed.high_value, *parsed.values):
        if wanted is not None and name in DATE_TIME_PROPERTIES and instant_ms(wanted) is None:
            raise SearchError(
                f"{wanted!r} is not a valid date-time for {name}: use epoch milliseconds or ISO 8601."
            )
    return parsed


def _parse_compared(name: str, operator: str, raw: Mapping[str, Any]) -> Filter:
    if raw.get("value") is None:
        raise SearchError(f"The {operator} filter on {name} needs a 'value'.")
    if operator == "BETWEEN" and raw.get("highValue") is None:
        raise SearchError(f"The BETWEEN filter on {name} needs a 'highValue'.")
    return Filter(name, operator, value=raw["value"], high_value=raw.get("highValue"))


def _parse_properties(raw: object) -> tuple[str, ...]:
    if not isinstance(raw, list) or not all(isinstance(name, str) for name in raw):
        raise SearchError("properties must be an array of property names.")
    return tuple(raw)


def _parse_limit(raw: object) -> int:
    if not isinstance(raw, int) or isinstance(raw, bool) or not 1 <= raw <= MAX_LIMIT:
        raise SearchError(f"limit must be an integer from 1 to {MAX_LIMIT}, got {raw!r}.")
    return raw


def parse_cursor(raw: object) -> int:
    """Paging cursors are offsets written as strings; HubSpot's are opaque, so clients must not parse them."""
    if raw is None:
        return 0
    text = str(raw)
    if not (text.isascii() and text.isdigit()):
        raise SearchError(f"after must be a paging cursor from a previous answer, got {raw!r}.")
    return int(text)


def instant_ms(value: object) -> int | None:
    """Epoch milliseconds of a value given as epoch ms (number or digits) or ISO 8601 (naive means UTC)."""
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    if not isinstance(value, str):
        return None
    if value.lstrip("-").isdigit() and value.isascii():
        return int(value)
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        return None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return int(parsed.timestamp() * 1000)


def _listed(name: str, stored: str, wanted: object) -> bool:
    """Whether an IN value names the stored one. HubSpot lowercases string values in its index but not IN
    values, which is why its guide says they must be lowercase: "Globex.com" matches nothing."""
    left, right = _comparable(name, stored), _comparable(name, wanted)
    if isinstance(left, str) and isinstance(right, str):
        return left == _text(wanted)
    return left is not None and left == right


def _sort_key(name: str, stored: str | None) -> tuple[int, float | str] | None:
    """Numbers (and date-times, as instants) before text, so a column of mixed values still sorts."""
    if stored in (None, ""):
        return None
    value = _comparable(name, stored)
    if value is None:
        return None
    return (0, value) if isinstance(value, float) else (1, value)


def _order(name: str, stored: str, wanted: object) -> int | None:
    """-1, 0 or 1 as the stored value sorts before, with or after the wanted one; None if incomparable."""
    left, right = _comparable(name, stored), _comparable(name, wanted)
    if left is None or right is None:
        return None
    if isinstance(left, float) and isinstance(right, float):
        return (left > right) - (left < right)
    if not (isinstance(left, str) and isinstance(right, str)):
        # A number against text (say "42" against "n/a") compares as text, as it does for any string property.
        left, right = _text(stored).casefold(), _text(wanted).casefold()
    return (left > right) - (left < right)


def _comparable(name: str, value: object) -> float | str | None:
    if name in DATE_TIME_PROPERTIES:
        ms = instant_ms(value)
        return None if ms is None else float(ms)
    text = _text(value)
    try:
        number = float(text)
    except ValueError:
        number = math.nan
    # "nan" and "inf" parse as floats but are names here; string comparisons ignore case, as HubSpot's do.
    return number if math.isfinite(number) else text.casefold()


def _text(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)
