"""HubSpot's rate limits as the sandbox enforces them: a rolling window, a daily cap and the search limit.

Every request that arrives counts, including the ones answered 429. HubSpot's docs do not say whether rejected
requests use up the window; counting them is the stricter choice, so a client that keeps hammering a full
window stays locked out instead of squeezing requests through. A client that paces itself never notices.
The sandbox has one token, so "per token" is simply "per sandbox".
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum

Clock = Callable[[], float]
Headers = list[tuple[bytes, bytes]]


class Policy(StrEnum):
    """The `policyName` HubSpot puts in a 429 body."""

    TEN_SECONDLY_ROLLING = "TEN_SECONDLY_ROLLING"
    DAILY = "DAILY"
    SECONDLY = "SECONDLY"


@dataclass(frozen=True)
class Admission:
    """The limiter's verdict on one request: the policy that rejects it (if any) and the headers to send."""

    rejected_by: Policy | None
    headers: Headers


class RollingWindow:
    """Arrival times within the last `length_s` seconds (a true rolling window, not fixed buckets)."""

    def __init__(self, length_s: float) -> None:
        self._length_s = length_s
        self._arrivals: deque[float] = deque()

    def arrive(self, now: float) -> int:
        """Record an arrival at `now`; return how many arrivals the window now holds."""
        while self._arrivals and self._arrivals[0] <= now - self._length_s:
            self._arrivals.popleft()
        self._arrivals.append(now)
        return len(self._arrivals)


class RateLimiter:
    """The 10-second window and daily cap for ordinary routes; the per-second limit for search."""

    def __init__(
        self, *, window_ms: int, max_per_window: int, daily_limit: int, search_per_second: int, clock: Clock
    ) -> None:
        self._window_ms = window_ms
        self._max_per_window = max_per_window
        self._daily_limit = daily_limit
        self._search_per_second = search_per_second
        self._clock = clock
        self._window = RollingWindow(window_ms / 1000)
        self._search_window = RollingWindow(1.0)
        self._daily_used = 0
        self.max_in_window = 0

    def admit(self, *, search: bool) -> Admission:
        """Count one arriving request and decide whether it may proceed."""
        self._daily_used += 1
        over_daily = self._daily_used > self._daily_limit
        if search:
            # Search is exempt from the 10-second window and its answers carry no window headers.
            in_second = self._search_window.arrive(self._clock())
            over_second = in_second > self._search_per_second
            return Admission(_verdict(over_daily, over_second, Policy.SECONDLY), [])
        in_window = self._window.arrive(self._clock())
        self.max_in_window = max(self.max_in_window, in_window)
        over_window = in_window > self._max_per_window
        policy = _verdict(over_daily, over_window, Policy.TEN_SECONDLY_ROLLING)
        return Admission(policy, self._headers(in_window))

    def _headers(self, in_window: int) -> Headers:
        values = {
            "max": self._max_per_window,
            "remaining": max(0, self._max_per_window - in_window),
            "interval-milliseconds": self._window_ms,
            "daily": self._daily_limit,
            "daily-remaining": max(0, self._daily_limit - self._daily_used),
        }
        return [
            (f"x-hubspot-ratelimit-{name}".encode(), str(value).encode()) for name, value in values.items()
        ]


def _verdict(over_daily: bool, over_short: bool, short_policy: Policy) -> Policy | None:
    # The daily cap outranks the short windows: waiting a few seconds does not help a client that hit it.
    if over_daily:
        return Policy.DAILY
    return short_policy if over_short else None
