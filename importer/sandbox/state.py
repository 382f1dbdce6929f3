"""Everything the sandbox remembers: the seed, stored meetings, limits, faults and counters.

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

from importer.sandbox.associations import add_types
from importer.sandbox.config import SandboxConfig
from importer.sandbox.faults import FaultDice, FaultKind, Faults
from importer.sandbox.limits import Clock, Policy, RateLimiter
from importer.sandbox.meetings import NewMeeting
from importer.sandbox.seed import CrmRecord, load_seed
from importer.sandbox.store import SOURCES, Source, StoredMeeting, Version

FIRST_MEETING_ID = 9_100_001
SPURIOUS = "spurious"


@dataclass
class Stats:
    """Counters for the admin API; admin requests themselves are not counted."""

    requests_total: int = 0
    by_route: Counter[str] = field(default_factory=Counter)
    by_status: Counter[int] = field(default_factory=Counter)
    rate_limited: Counter[str] = field(default_factory=Counter)
    faults: Counter[FaultKind] = field(default_factory=Counter)
    updates: Counter[str] = field(default_factory=Counter)
    first_by_route: dict[str, int] = field(default_factory=dict)  # the request's number (1 = the first)
    last_by_route: dict[str, int] = field(default_factory=dict)

    def count_request(self, route: str) -> None:
        self.requests_total += 1
        self.by_route[route] += 1
        self.first_by_route.setdefault(route, self.requests_total)
        self.last_by_route[route] = self.requests_total


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

    def reset(self, *, keep_meetings: bool = False) -> None:
        """Forget counters, windows and the daily count, and the meetings unless `keep_meetings` (HubSpot's
        day turning over keeps them); keep the seed and the current fault settings."""
        if not keep_meetings or not hasattr(self, "meetings"):
            self.meetings: dict[str, StoredMeeting] = {}
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
        """Records the search index already knows, in id order: a write shows up only after the lag."""
        if object_type == "meetings":
            now = self._clock()
            seen = (meeting.searchable(now) for meeting in self.meetings.values())
            found = [record for record in seen if record is not None]
        else:
            found = list(self.seed.records[object_type].values())
        return sorted(found, key=lambda record: int(record.id))

    def add_meeting(self, new: NewMeeting, source: Source) -> StoredMeeting:
        """Store a checked meeting; one made by hand is in search at once, as if indexed long ago."""
        now = utc_now()
        meeting_id = str(next(self._meeting_ids))
        record = CrmRecord(id=meeting_id, properties=dict(new.properties), created_at=now, updated_at=now)
        visible_at = self._clock() if source == "manual" else self._visible_at()
        sent = dict(new.properties if new.sent is None else new.sent)
        meeting = StoredMeeting(source, new, dict(new.links), [Version(record, visible_at)], sent)
        self.meetings[meeting_id] = meeting
        return meeting

    def update_meeting(self, meeting: StoredMeeting, changes: dict[str, str], route: str) -> None:
        meeting.revise(changes, utc_now(), self._visible_at())
        self.stats.updates[route] += 1

    def link(self, meeting: StoredMeeting, target: tuple[str, str], specs: list[Any], route: str) -> None:
        add_types(meeting.links, *target, specs)
        self.stats.updates[route] += 1

    def unlink(self, meeting: StoredMeeting, targets: list[tuple[str, str]], route: str) -> None:
        for target in targets:
            meeting.links.pop(target, None)
        self.stats.updates[route] += 1

    def _visible_at(self) -> float:
        lag_ms = self.config.search_lag_ms
        if self.dice.lags_longer(self.faults.search_lag_extra_share):
            lag_ms += self.faults.search_lag_extra_ms
        return self._clock() + lag_ms / 1000

    def stats_json(self) -> dict[str, Any]:
        meetings = self.meetings.values()
        by_source = Counter(meeting.source for meeting in meetings)
        return {
            "requests_total": self.stats.requests_total,
            "requests_by_route": dict(self.stats.by_route),
            # Which request (by arrival number) first and last came for each route: the order of a run.
            "first_request_by_route": dict(self.stats.first_by_route),
            "last_request_by_route": dict(self.stats.last_by_route),
            "responses_by_status": {str(code): n for code, n in sorted(self.stats.by_status.items())},
            "rate_limited": {str(policy): self.stats.rate_limited[policy] for policy in [*Policy, SPURIOUS]},
            "faults_injected": {kind.value: self.stats.faults[kind] for kind in FaultKind},
            "meetings_created": len(self.meetings),
            "meetings_by_source": {source: by_source[source] for source in SOURCES},
            "updates_by_route": dict(self.stats.updates),
            "duplicates": len(self.meetings) - len({meeting.duplicate_key() for meeting in meetings}),
            "duplicates_by_content": len(self.meetings)
            - len({meeting.content_key() for meeting in meetings}),
            "max_in_window": self.limiter.max_in_window,
        }


def utc_now() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
