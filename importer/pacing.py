"""Pacing: every request of a run, lookups included, waits here for its turn within HubSpot's limits.

HubSpot counts requests in a rolling 10-second window (and CRM search separately, per second). A leaky
bucket alone is not enough: `AsyncLimiter(N, 10)` lets N through at once and N more over the next ten
seconds, 2N in one rolling window (measured: 199 of 100). So each limit is two mechanisms together:
a small-burst leaky bucket that spreads requests evenly, and a log that never lets more than 98 % of the
limit into any window HubSpot could see. HubSpot counts a request when it arrives, which we cannot see:
somewhere between letting it through and its answer. So a request counts from the moment it is let
through until one window after its answer came back; counted so, no pattern of latencies can put more
requests into one of HubSpot's windows than into ours. Answers' headers then correct us: a lower
X-HubSpot-RateLimit-Max than configured lowers the cap, a nearly empty Remaining (another integration on
the same app) slows us, and a 429 holds everything for the window.
"""

from __future__ import annotations

import asyncio
import bisect
import math
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager

from aiolimiter import AsyncLimiter

from importer.hubspot import Kind, RateLimitInfo

SAFETY = 0.98
_RESERVE = 0.03  # slow down when HubSpot says less than this share of the window remains
_POLL_S = 0.05  # how often to look again when only requests in flight fill the window


class WindowPacer:
    """At most `cap` requests in any rolling `window_s`, spread evenly, with short holds on demand."""

    def __init__(self, limit: float, window_s: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.window_s = window_s
        self._clock = clock
        self._done: list[float] = []  # sorted: when each finished request stops counting, minus a window
        self._in_flight = 0
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

    @asynccontextmanager
    async def slot(self) -> AsyncIterator[None]:
        """Wait for a turn, then hold it while the request is in flight, and for a window after."""
        await self._admit()
        self._in_flight += 1
        try:
            yield
        finally:
            self._in_flight -= 1
            bisect.insort(self._done, self._clock())

    async def acquire(self) -> None:
        """A turn for a request that is over at once (counted for one window from now)."""
        async with self.slot():
            pass

    async def _admit(self) -> None:
        async with self._lock:
            await self._bucket.acquire()
            while (wait := self._wait()) > 0:
                await asyncio.sleep(wait)

    def _wait(self) -> float:
        now = self._clock()
        expired = bisect.bisect_right(self._done, now - self.window_s)
        del self._done[:expired]
        if now < self._hold_until:
            return self._hold_until - now
        if len(self._done) + self._in_flight < self.cap:
            return 0.0
        if self._done:
            return self._done[0] + self.window_s - now
        return _POLL_S  # the window is full of requests still in flight: one of them must finish first


class Pacer:
    """The run's gate (see `importer.hubspot.Gate`): one pacer for the API window, one for search."""

    def __init__(self, requests_per_10s: int, search_per_second: float, window_s: float = 10.0) -> None:
        self.api = WindowPacer(requests_per_10s, window_s)
        self.search = WindowPacer(search_per_second, 1.0)
        self.daily_remaining: int | None = None
        self.slowdowns = 0

    @asynccontextmanager
    async def slot(self, kind: Kind) -> AsyncIterator[None]:
        async with (self.search if kind == "search" else self.api).slot():
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
