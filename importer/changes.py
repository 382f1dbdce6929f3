"""Changes: what an edited row asks HubSpot to change in the meeting it already has.

The ledger keeps a snapshot of what was last sent for each row (`snapshot`); `diff` compares it with what
the row asks for now, in the CRM's update terms: the properties to PATCH (an empty string clears one),
the associations to add and to remove, the sheet's columns that changed, and what a CRM update cannot
change (the organizer, the reminders, the meeting's time zone: they belong to the calendar event).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from importer.mapper import ASSOCIATION_FIELDS, ASSOCIATION_TYPE_IDS, CreateRequest
from importer.messages import _

# CRM property -> the sheet's field it comes from, for "changed: title, start".
UPDATABLE = {
    "hs_meeting_title": "title",
    "hs_meeting_start_time": "start",
    "hs_timestamp": "start",
    "hs_meeting_end_time": "end",
    "hs_meeting_body": "body",
    "hs_internal_meeting_notes": "internal_notes",
    "hs_meeting_location": "location",
    "hs_meeting_location_type": "location_type",
    "hs_meeting_outcome": "outcome",
    "hs_attendee_owner_ids": "attendee_emails",
    "hubspot_owner_id": "owner_email",
}
_OBJECT_TYPES = {type_id: name for name, type_id in ASSOCIATION_TYPE_IDS.items()}
_CALENDAR_ONLY = {"organizer": "owner_email", "reminders": "reminders", "timezone": "timezone"}


@dataclass(frozen=True)
class Change:
    """What to send to bring a meeting from its snapshot to the row's content."""

    properties: dict[str, str] = field(default_factory=dict)
    add: list[tuple[str, str]] = field(default_factory=list)  # (object type, object id)
    remove: list[tuple[str, str]] = field(default_factory=list)
    fields: list[str] = field(default_factory=list)  # the sheet's fields that changed
    not_updatable: list[str] = field(default_factory=list)  # fields; `owner_email` for the organizer

    @property
    def empty(self) -> bool:
        """Nothing HubSpot's CRM can change."""
        return not (self.properties or self.add or self.remove)


def snapshot(request: CreateRequest) -> str:
    """What a create (or an update) sent, as JSON for the ledger: CRM property strings, associations,
    and the calendar-only parts."""
    body = request.body
    properties = {name: _crm_text(body["properties"].get(name)) for name in UPDATABLE}
    associations = sorted(
        [_OBJECT_TYPES[t["associationTypeId"]], a["to"]["id"]]
        for a in body["associations"]
        for t in a["types"]
    )
    data = {
        "properties": properties,
        "associations": associations,
        "organizer": request.organizer_user_id,
        "reminders": body["emailReminderSchedule"]["reminders"],
        "timezone": body["timezone"],
    }
    return json.dumps(data, ensure_ascii=False, sort_keys=True)


def diff(old: str | None, request: CreateRequest) -> Change:
    """The change from the snapshot `old` (None: nothing is known, so every property is sent and no
    association removed) to what `request` would create."""
    new = json.loads(snapshot(request))
    before: dict[str, Any] = json.loads(old) if old else {"properties": {}, "associations": []}
    properties = {
        name: value for name, value in new["properties"].items() if before["properties"].get(name) != value
    }
    had = {tuple(pair) for pair in before["associations"]}
    wants = {tuple(pair) for pair in new["associations"]}
    fields = list(dict.fromkeys(UPDATABLE[name] for name in UPDATABLE if name in properties))
    fields += sorted({ASSOCIATION_FIELDS[k] for k, _ in had ^ wants})
    not_updatable = [label for key, label in _CALENDAR_ONLY.items() if old and before.get(key) != new[key]]
    return Change(
        properties,
        sorted((str(k), str(i)) for k, i in wants - had),
        sorted((str(k), str(i)) for k, i in had - wants),
        fields,
        not_updatable,
    )


def named(change: Change, headers: Mapping[str, str]) -> Change:
    """`change` with its fields as the sheet spells them (field -> its header), for the row's warning:
    a Japanese sheet's rep reads `変更: 件名`, not `title`."""
    fields = [headers.get(name, name) for name in change.fields]
    kept = [
        _("{column} (the organizer)").format(column=headers.get(name, name))
        if name == "owner_email"
        else headers.get(name, name)
        for name in change.not_updatable
    ]
    return replace(change, fields=fields, not_updatable=kept)


def _crm_text(value: object) -> str:
    """A property as the CRM stores it: multi-value properties `;`-joined, absent ones empty."""
    if value is None:
        return ""
    if isinstance(value, list):
        return ";".join(str(v) for v in value)
    return str(value)
