"""Pacing: every request of a run, lookups included, waits here for its turn within HubSpot's limits.

HubSpot counts requests in a rolling 10-second window (and CRM search separately, per second). A leaky
bucket alone is not enough: `AsyncLimiter(N, 10)` lets N through at once and N more over the next ten
seconds, 2N in one rolling window (measured: 199 of 100). So each limit is two mechanisms together:
a small-burst leaky bucket that spreads requests evenly at 97 % of the limit, and a log of send times that
never lets more than 97 % of the limit into any window, however the bucket behaves. The 3 % is slack for
the distance between our clock and HubSpot's. Answers' headers then correct us: a lower
X-HubSpot-RateLimit-Max than configured lowers the cap, a nearly empty Remaining (another integration on
the same app) slows us, and a 429 holds everything for the window.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections import deque
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager

from aiolimiter import AsyncLimiter

from importer.hubspot import Kind, RateLimitInfo

SAFETY = 0.97
_RESERVE = 0.03  # slow down when HubSpot says less than this share of the window remains


class WindowPacer:
    """At most `cap` acquisitions in any rolling `window_s`, spread evenly, with short holds on demand."""

    def __init__(self, limit: float, window_s: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.window_s = window_s
        self._clock = clock
        self._log: deque[float] = deque()
        self._lock = asyncio.Lock()
        self._hold_until = 0.0
        self.set_limit(limit)

    def set_limit(self, limit: float) -> None:
        """Pace to `limit` per window (with the safety margin)."""
        self.limit = limit
        self.cap = max(1, math.floor(limit * SAFETY))
        burst = max(1, math.floor(limit * _RESERVE))
        self._bucket = AsyncLimiter(burst, burst * self.window_s / (limit * SAFETY))

    def hold(self, seconds: float) -> None:
        """Let nothing through for `seconds` from now (a later hold extends, an earlier one doesn't cut)."""
        self._hold_until = max(self._hold_until, self._clock() + seconds)

    async def acquire(self) -> None:
        async with self._lock:
            await self._bucket.acquire()
            while (wait := self._wait()) > 0:
                await asyncio.sleep(wait)
            self._log.append(self._clock())

    def _wait(self) -> float:
        now = self._clock()
        while self._log and self._log[0] <= now - self.window_s:
            self._log.popleft()
        if now < self._hold_until:
            return self._hold_until - now
        if len(self._log) >= self.cap:
            return self._log[0] + self.window_s - now
        return 0.0


class Pacer:
    """The run's gate (see `importer.hubspot.Gate`): one pacer for the API window, one for search."""

    def __init__(self, requests_per_10s: int, search_per_second: float, window_s: float = 10.0) -> None:
        self.api = WindowPacer(requests_per_10s, window_s)
        self.search = WindowPacer(search_per_second, 1.0)
        self.configured = requests_per_10s
        self.daily_remaining: int | None = None
        self.slowdowns = 0

    @asynccontextmanager
    async def slot(self, kind: Kind) -> AsyncIterator[None]:
        await (self.search if kind == "search" else self.api).acquire()
        yield

    def observe(self, kind: Kind, info: RateLimitInfo) -> None:
        if kind == "search":
            return  # search answers carry no window headers
        if info.daily_remaining is not None:
            self.daily_remaining = info.daily_remaining
        if info.interval_ms and info.interval_ms / 1000 != self.api.window_s:
            self.api.window_s = info.interval_ms / 1000
            self.api.set_limit(self.api.limit)
        if info.max and info.max < self.api.limit:
            self.api.set_limit(info.max)  # the account's tier is lower than configured
        if info.max and info.remaining is not None:
            reserve = max(1, math.floor(info.max * _RESERVE))
            if info.remaining < reserve:
                # Someone else shares this app's window: wait for a few slots' worth of the average pace.
                self.slowdowns += 1
                self.api.hold((reserve - info.remaining) * self.api.window_s / info.max)

    def back_off(self, kind: Kind, seconds: float) -> None:
        (self.search if kind == "search" else self.api).hold(seconds)
