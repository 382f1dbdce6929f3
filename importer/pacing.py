"""Pacing: every request of a run, lookups included, waits here for its turn within HubSpot's limits.

HubSpot counts a request when it *arrives*, in a rolling window of `Interval-Milliseconds` (10 s), and
refuses it (429) when the window then holds more than `Max`; an answer's `Remaining` is Max minus what the
window held at that request's arrival. We see our sends, never the arrivals. The rules, and why:

- Arrival = send + uplink delay, and only the delay's *spread* D (`SPREAD_S`) matters: requests HubSpot sees
  less than a window W apart were sent less than W + D apart. So each send counts in our log for W + D, and
  the log never holds more than the limit less one (`MARGIN`, room for another client's first request):
  HubSpot's window then cannot either, whatever the latency. The answer's delay plays no part, so the pace
  does not fall as answers slow. Cost: D / (W + D) = 1 % and the one request, 0.980 of 100, 0.985 of 250.
- Sends are spaced evenly, (W + D) / limit apart (a GCRA scheduler; a late wake-up is made up): no
  bursts for another client to collide with, and one timer per request, no polling.
- Other integrations on the same app use the window too. HubSpot's count minus the most of ours it can
  have counted (our sends from W + D before that request to D after it) is a lower bound on theirs: zero
  when we are alone, so noise costs nothing then. It holds for a window after its answer. While others are
  there, they may add requests we learn of a round trip later: we leave them what the limit lets one client
  send in a round trip plus 3 D (and our own uplink spread, which the lower bound leaves out).
- The limit: one request alone until the first answer (the account details: others may have filled the
  window), at the lowest tier's pace (100); then the answers' Max and Interval, up as well as down.
  `--rate-limit` is a ceiling, never a floor.
- A 429 for the window holds everything (Retry-After, else a window): the safety net, not the signal.

Search has its own limit (per second, exempt from the window, no headers): the same rules on a fixed limit.
"""

from __future__ import annotations

import asyncio
import bisect
import math
import time
from collections import deque
from collections.abc import Callable
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass

from importer.hubspot import Kind, RateLimitInfo

SPREAD_S = 0.1  # uplink spread absorbed (measured jitter up to 100 ms, plus our own wake-up delays)
START_LIMIT = 100  # HubSpot's lowest tier: the pace until an answer tells the real one
_ROUND_TRIP_WEIGHT = 0.1  # smoothing of the round-trip estimate (a moving average over ~10 answers)
_OTHERS_WEIGHT = 0.1  # and of the unbiased estimate of others' requests
_PROBE_SHARE = 0.1  # of the window, between our requests while another client takes the rest
MARGIN = 1  # requests always left free: room for another client's first request
Clock = Callable[[], float]


@dataclass(frozen=True, slots=True)
class Ticket:
    """What a request carries from its slot to its answer: when it was let through."""

    sent_at: float


class _Others:
    """Other clients' requests in HubSpot's window, told by the answers: HubSpot's count minus ours.

    Two estimates: a lower bound from the freshest answer (what HubSpot counted beyond the most of ours it can
    have counted), zero whenever we are alone, and fast; and an average of the unbiased difference (our sends
    of the window before that request), which finds a client too small for the bound's slack."""

    def __init__(self) -> None:
        self.at_least = 0
        self._mean = 0.0
        self.since = -math.inf  # send time of the request whose answer told the bound
        self.until = -math.inf  # everything HubSpot counted then has left its window by this time

    def tell(self, counted: int, ours_at_most: int, ours_likely: int, sent_at: float, until: float) -> None:
        self.at_least = max(0, counted - ours_at_most)
        difference = counted - ours_likely
        if abs(difference - self._mean) > ours_at_most - ours_likely + 1:
            self._mean = difference  # more than our uplink spread can explain: a real change, follow it now
        else:
            self._mean += _OTHERS_WEIGHT * (difference - self._mean)
        self.since, self.until = sent_at, until

    def count(self, now: float) -> int:
        return max(self.at_least, round(self._mean)) if now < self.until else 0

    def certain(self, now: float) -> bool:
        """Whether someone else surely uses the window (not only perhaps, within the noise)."""
        return self.at_least > 0 and now < self.until


class Window:
    """The rules for one rolling window, on any clock: when the next request may go, what answers teach.

    `ceiling` is the user's, in requests per window (None: none). With `follow`, answers' headers set the
    limit; without, the ceiling is the limit (search). `margin` requests stay free for another client's."""

    def __init__(
        self,
        ceiling: float | None,
        window_s: float,
        *,
        follow: bool,
        margin: int = MARGIN,
        spread_s: float = SPREAD_S,
    ) -> None:
        if ceiling is None and not follow:
            raise ValueError("a window that follows no answers needs a ceiling")
        self.ceiling = ceiling
        self.window_s = window_s
        self.margin = margin
        self.spread_s = spread_s
        self.portal_max: int | None = None
        self.others = _Others()
        self._follow = follow
        self._sent: list[float] = []  # send times, oldest first, of the last two windows
        self._due = -math.inf  # GCRA: when the next send is due
        self._hold_until = -math.inf
        self._round_trip: float | None = None
        self._answered = False
        self._retune()

    def _retune(self) -> None:
        """Work out, once per change of limit or window, what every request's turn needs."""
        known = self.portal_max if self.portal_max is not None else START_LIMIT
        ceiling = math.inf if self.ceiling is None else self.ceiling
        # Requests allowed per window: HubSpot's Max (the lowest tier until known), under the ceiling.
        self.limit = min(ceiling, known) if self._follow else ceiling
        self._span = self.window_s + self.spread_s  # how long a send counts in our log
        self._base = max(1, math.floor(self.limit) - self.margin)  # our log's capacity when alone
        self._gap = self._span / self._base

    def delay(self, now: float) -> float:
        """Seconds until a request may be let through (0: now)."""
        return max(0.0, self._hold_until - now, self._due - now, self._room_in(now), self._blind(now))

    def send(self, now: float, *, waited: bool = False) -> Ticket:
        """Let one request through at `now` (after `delay(now)` said 0; `waited`: after a sleep)."""
        # A request that slept for its turn may have woken late: the next one is still due a gap after
        # this one was, so wake-up delays do not add up. One that found the pacer idle starts afresh.
        late = self._gap if waited else 0.0
        self._due = max(self._due, now - late) + self._gap
        self._sent.append(now)
        kept = now - 2 * self._span
        if self._sent[0] < kept:
            del self._sent[: bisect.bisect_left(self._sent, kept)]
        return Ticket(now)

    def hold(self, seconds: float, now: float) -> None:
        """Let nothing through for `seconds` (a later hold extends, an earlier one doesn't cut)."""
        self._hold_until = max(self._hold_until, now + seconds)

    def learn(self, ticket: Ticket, info: RateLimitInfo, now: float) -> bool:
        """Take in one answer's rate-limit headers (`ticket`: its request's). True if the next turn may
        have come sooner: the first answer, a higher limit, or fewer requests of others."""
        if not self._follow:
            return False
        sooner = not self._answered
        self._answered = True
        round_trip = now - ticket.sent_at
        previous = round_trip if self._round_trip is None else self._round_trip
        self._round_trip = previous + _ROUND_TRIP_WEIGHT * (round_trip - previous)
        window_s = info.interval_ms / 1000 if info.interval_ms else self.window_s
        if window_s != self.window_s or (info.max and info.max != self.portal_max):
            limit, self.window_s, self.portal_max = self.limit, window_s, info.max or self.portal_max
            self._retune()
            if self._sent and self.limit > limit:  # a higher limit applies from the next send on
                self._due = min(self._due, self._sent[-1] + self._gap)
                sooner = True
        # An answer older than the freshest one, or to a request sent a window ago, tells nothing new.
        sent_at = ticket.sent_at
        fresh = sent_at >= self.others.since and sent_at > now - window_s
        if info.max and info.remaining is not None and fresh:
            before = self.others.count(now)
            self.others.tell(
                info.max - info.remaining,
                ours_at_most=self._sent_between(sent_at - self._span, sent_at + self.spread_s),
                ours_likely=self._sent_between(sent_at - window_s, sent_at),
                sent_at=sent_at,
                until=now + window_s,
            )
            sooner = sooner or self.others.count(now) < before
        return sooner

    def _blind(self, now: float) -> float:
        """Until an answer tells how full the window is (others may have filled it), one request at a
        time, and another only now and then should no answer come."""
        if not self._follow or self._answered:
            return 0.0
        return self._since_last(now, self.window_s * _PROBE_SHARE)

    def _reserve(self, now: float) -> int:
        """While others surely share the window: room for their requests we can only know of a round trip
        later, sized as what the limit lets one client send meanwhile (and our uplink spread, left out of
        the lower bound)."""
        if not self.others.certain(now):
            return 0
        lag = (self._round_trip or 0.0) + 3 * self.spread_s
        return math.ceil(self.limit * lag / self.window_s)

    def _room_in(self, now: float) -> float:
        """Seconds until our log of the last W + D leaves room for one more request."""
        room = self._base - self.others.count(now)
        budget = room - self._reserve(now)
        first = bisect.bisect_right(self._sent, now - self._span)
        held = len(self._sent) - first
        if held < budget:
            return 0.0
        if budget <= 0 and held < room:
            # Squeezed out by another client, we still send now and then while HubSpot has room: to learn
            # when it is done (the others leaving is the only other way out).
            return self._since_last(now, self.window_s * _PROBE_SHARE)
        if budget <= 0:
            return self.others.until - now
        return self._sent[first + held - budget] + self._span - now

    def _since_last(self, now: float, seconds: float) -> float:
        """Seconds until `seconds` after our last send."""
        return (self._sent[-1] + seconds - now) if self._sent else 0.0

    def _sent_between(self, after: float, until: float) -> int:
        return bisect.bisect_right(self._sent, until) - bisect.bisect_right(self._sent, after)


class WindowPacer:
    """A `Window` on the event loop. Requests wait in line; one timer, set for the first in line's turn,
    lets it through and is set again for the next: a loop wake-up per request, nothing polls."""

    def __init__(self, rules: Window, clock: Clock = time.monotonic) -> None:
        self.rules = rules
        self._clock = clock
        self._line: deque[asyncio.Future[Ticket]] = deque()
        self._timer: asyncio.TimerHandle | None = None
        self._timer_at = math.inf

    def slot(self) -> _Slot:
        """`async with pacer.slot() as ticket:` waits for a turn; the ticket goes back with the answer."""
        return _Slot(self)

    async def acquire(self) -> Ticket:
        """Wait for a turn (first come, first served) and take it."""
        if not self._line:
            now = self._clock()
            wait = self.rules.delay(now)
            if wait <= 0:
                return self.rules.send(now)
            self._set_timer(now + wait, wait)
        turn: asyncio.Future[Ticket] = asyncio.get_running_loop().create_future()
        self._line.append(turn)
        return await turn

    def learn(self, ticket: Ticket, info: RateLimitInfo) -> None:
        """Take in an answer; if it may have brought the next turn forward, the timer is set again."""
        if self.rules.learn(ticket, info, self._clock()) and self._line:
            self._let_through()

    def hold(self, seconds: float) -> None:
        self.rules.hold(seconds, self._clock())

    def _let_through(self) -> None:
        """Let through the requests in line whose turn has come; set the timer for the next one's."""
        while self._line:
            turn = self._line[0]
            if turn.done():  # its task was cancelled while it waited
                self._line.popleft()
                continue
            now = self._clock()
            wait = self.rules.delay(now)
            if wait > 0:
                self._set_timer(now + wait, wait)
                return
            self._line.popleft()
            turn.set_result(self.rules.send(now, waited=True))
        self._set_timer(math.inf, None)

    def _set_timer(self, at: float, wait: float | None) -> None:
        if at == self._timer_at:
            return
        if self._timer is not None:
            self._timer.cancel()
        self._timer_at = at
        self._timer = None if wait is None else asyncio.get_running_loop().call_later(wait, self._ring)

    def _ring(self) -> None:
        self._timer, self._timer_at = None, math.inf
        self._let_through()


class _Slot:
    """`async with` around one request: a turn in, nothing to give back out."""

    __slots__ = ("_pacer",)

    def __init__(self, pacer: WindowPacer) -> None:
        self._pacer = pacer

    async def __aenter__(self) -> Ticket:
        return await self._pacer.acquire()

    async def __aexit__(self, *exc: object) -> None:
        pass


class Pacer:
    """The run's gate (see `importer.hubspot.Gate`): one window for the API, one for search.

    `requests_per_10s` is the user's ceiling per window (HubSpot's is 10 s), None to follow HubSpot's
    limit alone; `search_per_second` is the search limit."""

    def __init__(
        self,
        requests_per_10s: float | None,
        search_per_second: float,
        window_s: float = 10.0,
        clock: Clock = time.monotonic,
    ) -> None:
        self.api = WindowPacer(Window(requests_per_10s, window_s, follow=True), clock)
        self.search = WindowPacer(Window(search_per_second, 1.0, follow=False, margin=0), clock)
        self.daily_remaining: int | None = None

    def slot(self, kind: Kind) -> AbstractAsyncContextManager[Ticket]:
        return self._window(kind).slot()

    def observe(self, kind: Kind, info: RateLimitInfo, ticket: Ticket | None = None) -> None:
        if kind == "api" and info.daily_remaining is not None:
            self.daily_remaining = info.daily_remaining
        if ticket is not None:
            self._window(kind).learn(ticket, info)

    def back_off(self, kind: Kind, seconds: float) -> None:
        self._window(kind).hold(seconds)

    def _window(self, kind: Kind) -> WindowPacer:
        return self.search if kind == "search" else self.api
