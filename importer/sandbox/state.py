"""Everything the sandbox remembers: the seed, created meetings, limits, faults and counters.

All of it lives in one object on one event loop; no handler awaits between reading and changing it,
so no lock is needed.
"""

from __future__ import annotations

import itertools
import time
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from importer.sandbox.config import SandboxConfig
from importer.sandbox.faults import FaultDice, FaultKind, Faults
from importer.sandbox.limits import Clock, Policy, RateLimiter
from importer.sandbox.meetings import LIST_PROPERTIES, MeetingDraft, split_list
from importer.sandbox.seed import CrmRecord, load_seed

FIRST_MEETING_ID = 9_100_001
SPURIOUS = "spurious"


@dataclass(frozen=True)
class Meeting:
    """A created meeting: its CRM record plus what only the create request carried."""

    record: CrmRecord
    draft: MeetingDraft
    searchable_at: float  # monotonic seconds; search does not see the meeting before then

    def duplicate_key(self) -> tuple[str, datetime, str]:
        properties = self.draft.properties
        return (properties["hubspot_owner_id"], self.draft.start, properties["hs_meeting_title"])

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.record.id,
            "organizerUserId": self.draft.organizer_user_id,
            "properties": self.draft.properties,
            "associations": self.draft.associations,
            "timezone": self.draft.timezone,
            "reminders": self.draft.reminders,
            "shouldIncludeInviteDescription": self.draft.include_invite_description,
            "createdAt": self.record.created_at,
        }


@dataclass
class Stats:
    """Counters for the admin API; admin requests themselves are not counted."""

    requests_total: int = 0
    by_route: Counter[str] = field(default_factory=Counter)
    by_status: Counter[int] = field(default_factory=Counter)
    rate_limited: Counter[str] = field(default_factory=Counter)
    faults: Counter[FaultKind] = field(default_factory=Counter)

    def count_request(self, route: str) -> None:
        self.requests_total += 1
        self.by_route[route] += 1


class SandboxState:
    """The one mutable object behind the app."""

    def __init__(self, config: SandboxConfig, clock: Clock = time.monotonic) -> None:
        self.config = config
        self.seed = load_seed(config.data)
        self.faults = config.faults
        self._clock = clock
        # Ids keep counting across resets, so a stale id from before a reset never names a new meeting.
        self._meeting_ids = itertools.count(FIRST_MEETING_ID)
        self.reset()

    def reset(self) -> None:
        """Forget meetings, counters and windows; keep the seed and the current fault settings."""
        self.meetings: dict[str, Meeting] = {}
        self.stats = Stats()
        self.dice = FaultDice(self.faults.seed)
        self.limiter = RateLimiter(
            window_ms=self.config.window_ms,
            max_per_window=self.config.max_per_window,
            daily_limit=self.config.daily_limit,
            search_per_second=self.config.search_per_second,
            clock=self._clock,
        )

    def set_faults(self, changes: dict[str, object]) -> Faults:
        self.faults = self.faults.updated(changes)
        if "seed" in changes:
            self.dice = FaultDice(self.faults.seed)
        return self.faults

    def records(self, object_type: str) -> dict[str, CrmRecord]:
        """Records by id, for reads that HubSpot answers consistently (batch read)."""
        if object_type == "meetings":
            return {meeting_id: meeting.record for meeting_id, meeting in self.meetings.items()}
        return self.seed.records[object_type]

    def searchable(self, object_type: str) -> list[CrmRecord]:
        """Records the search index already knows, in id order: a new meeting shows up only after the lag."""
        if object_type == "meetings":
            now = self._clock()
            found = [m.record for m in self.meetings.values() if m.searchable_at <= now]
        else:
            found = list(self.seed.records[object_type].values())
        return sorted(found, key=lambda record: int(record.id))

    def add_meeting(self, draft: MeetingDraft) -> Meeting:
        now = _utc_now()
        properties = {name: _crm_value(name, value) for name, value in draft.properties.items()}
        meeting_id = str(next(self._meeting_ids))
        record = CrmRecord(id=meeting_id, properties=properties, created_at=now, updated_at=now)
        meeting = Meeting(record, draft, searchable_at=self._clock() + self.config.search_lag_ms / 1000)
        self.meetings[meeting_id] = meeting
        return meeting

    def stats_json(self) -> dict[str, Any]:
        distinct = {meeting.duplicate_key() for meeting in self.meetings.values()}
        return {
            "requests_total": self.stats.requests_total,
            "requests_by_route": dict(self.stats.by_route),
            "responses_by_status": {str(code): n for code, n in sorted(self.stats.by_status.items())},
            "rate_limited": {str(policy): self.stats.rate_limited[policy] for policy in [*Policy, SPURIOUS]},
            "faults_injected": {kind.value: self.stats.faults[kind] for kind in FaultKind},
            "meetings_created": len(self.meetings),
            "duplicates": len(self.meetings) - len(distinct),
            "max_in_window": self.limiter.max_in_window,
        }


def _crm_value(name: str, value: object) -> str:
    # The CRM keeps multi-value properties as one ';'-separated string, whichever form the request used.
    if name in LIST_PROPERTIES:
        return ";".join(split_list(value))
    return "" if value is None else str(value)


def _utc_now() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
