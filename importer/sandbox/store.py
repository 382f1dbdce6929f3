"""Meetings as the CRM holds them: current values and links, and the versions the search index has caught up with.

HubSpot's search is eventually consistent: a meeting created or updated moments ago is missing from search, or
shows its old values, for a while. Each write here adds a version with the time search may first see it;
search shows the newest version already visible, reads (GET, batch read) always the current values.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal

from importer.sandbox.associations import Links, links_json
from importer.sandbox.meetings import NewMeeting
from importer.sandbox.properties import parse_instant
from importer.sandbox.seed import CrmRecord

Source = Literal["scheduler", "batch", "manual"]
SOURCES: tuple[Source, ...] = ("scheduler", "batch", "manual")


@dataclass(frozen=True)
class Version:
    """The meeting as it stood after one write, and when search may first see it (monotonic seconds)."""

    record: CrmRecord
    visible_at: float


@dataclass
class StoredMeeting:
    """One meeting: how it was made, its links, and every version of its properties."""

    source: Source
    made: NewMeeting
    links: Links
    versions: list[Version] = field(default_factory=list)
    sent: dict[str, Any] = field(default_factory=dict)

    @property
    def record(self) -> CrmRecord:
        return self.versions[-1].record

    @property
    def id(self) -> str:
        return self.record.id

    def searchable(self, now: float) -> CrmRecord | None:
        """The newest version search already sees; None while the meeting is still missing from search."""
        # With a longer lag for some writes, a later version may become visible before an earlier one.
        for version in reversed(self.versions):
            if version.visible_at <= now:
                return version.record
        return None

    def revise(self, changes: dict[str, str], now_text: str, visible_at: float) -> None:
        """Apply checked changes ("" clears a property) as a new version."""
        properties = dict(self.record.properties)
        for name, value in changes.items():
            for shown in (properties, self.sent):
                if value:
                    shown[name] = value
                else:
                    shown.pop(name, None)
        record = CrmRecord(self.id, properties, self.record.created_at, now_text)
        self.versions.append(Version(record, visible_at))

    def duplicate_key(self) -> tuple[str, object, str]:
        """Owner, start (as an instant) and title: what the importer checks before resending a row."""
        properties = self.record.properties
        start = properties.get("hs_meeting_start_time", "")
        moment: datetime | None = parse_instant(start, epoch_ms=True)
        return (
            properties.get("hubspot_owner_id", ""),
            moment or start,
            properties.get("hs_meeting_title", ""),
        )

    def content_key(self) -> tuple[frozenset[tuple[str, str]], frozenset[Any]]:
        """Every property and association: two meetings may share owner, start and title yet differ here."""
        links = frozenset((target, frozenset(types)) for target, types in self.links.items())
        return frozenset(self.record.properties.items()), links

    def to_json(self) -> dict[str, Any]:
        """The admin view: `properties` in the shape the create sent them (later updates applied), so a test
        can check what a client sent; `crmProperties` as HubSpot stores them (what reads and search return)."""
        calendar = self.made.calendar
        return {
            "id": self.id,
            "source": self.source,
            "organizerUserId": calendar.organizer_user_id if calendar else None,
            "properties": self.sent,
            "crmProperties": self.record.properties,
            "associations": links_json(self.links),
            "timezone": calendar.timezone if calendar else None,
            "reminders": calendar.reminders if calendar else None,
            "shouldIncludeInviteDescription": calendar.include_invite_description if calendar else None,
            "objectWriteTraceId": self.made.write_trace_id,
            "createdAt": self.record.created_at,
            "updatedAt": self.record.updated_at,
        }
