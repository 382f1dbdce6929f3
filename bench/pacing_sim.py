"""The pacer's rules on a simulated clock: many seeds, every tier and latency, one or two importers at once.

Runs `importer.pacing.Window` (the rules the real pacer follows) against a simulated HubSpot window that
counts arrivals (send + uplink delay), as the sandbox does, in seconds of CPU instead of minutes of wall.
Prints, per case, the share of the limit while creating (worst seed), the busiest window HubSpot saw and
the 429s. The end-to-end figures come from `bench/throughput.py`.

    .venv/bin/python bench/pacing_sim.py [--seeds 20] [--requests 600]
"""

from __future__ import annotations

import argparse
import heapq
import math
import random
import statistics
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field

from importer.hubspot import RateLimitInfo
from importer.pacing import Ticket, Window

WINDOW_S = 10.0


@dataclass(frozen=True)
class Case:
    name: str
    max_per_window: int
    latency_ms: float
    latency_jitter_ms: float
    uplink_jitter_ms: float
    importers: int = 1
    stagger_s: float = 0.0  # the second importer starts this much later
    concurrency: int = 8
    foreign_per_10s: float = 0.0  # another integration's requests, at random times, unpaced


class Loop:
    """Events in time order."""

    def __init__(self) -> None:
        self.now = 0.0
        self._events: list[tuple[float, int, Callable[[], None]]] = []
        self._count = 0

    def at(self, when: float, action: Callable[[], None]) -> None:
        self._count += 1
        heapq.heappush(self._events, (when, self._count, action))

    def run(self) -> None:
        while self._events:
            self.now, _, action = heapq.heappop(self._events)
            action()


class HubSpot:
    """A rolling window over arrivals, 429s counted too; headers as HubSpot's."""

    def __init__(self, max_per_window: int) -> None:
        self.max = max_per_window
        self.arrivals: deque[float] = deque()
        self.busiest = 0
        self.rejected = 0

    def arrive(self, now: float) -> tuple[bool, RateLimitInfo]:
        while self.arrivals and self.arrivals[0] <= now - WINDOW_S:
            self.arrivals.popleft()
        self.arrivals.append(now)
        count = len(self.arrivals)
        self.busiest = max(self.busiest, count)
        over = count > self.max
        self.rejected += over
        return over, RateLimitInfo(self.max, max(0, self.max - count), int(WINDOW_S * 1000))


@dataclass
class Importer:
    """One run: a first request alone (the account details), then `concurrency` workers."""

    loop: Loop
    hubspot: HubSpot
    case: Case
    rng: random.Random
    requests: int
    rules: Window = field(default_factory=lambda: Window(None, WINDOW_S, follow=True))
    arrivals: list[float] = field(default_factory=list)
    _queue: deque[Callable[[bool], None]] = field(default_factory=deque)
    _wake_at: float = math.inf
    _slept: bool = False  # the first in line has slept for its turn
    _left: int = 0

    def start(self, at: float) -> None:
        self._left = self.requests
        self.loop.at(at, lambda: self._ask(self._first_answered))

    def _first_answered(self) -> None:
        for _ in range(self.case.concurrency):
            self._worker()

    def _worker(self) -> None:
        if self._left > 0:
            self._left -= 1
            self._ask(self._worker)

    def _ask(self, then: Callable[[], None]) -> None:
        self._queue.append(lambda waited: self._send(then, waited))
        self._wake()

    def _wake(self) -> None:
        """As `WindowPacer.slot`: the first in line sleeps until its turn, or until an answer brings it forward."""
        if not self._queue:
            return
        delay = self.rules.delay(self.loop.now)
        if delay <= 0:
            self._wake_at = math.inf
            self._queue.popleft()(self._slept)
            self._slept = False
            self._wake()
            return
        wake_at = self.loop.now + delay + self.rng.uniform(0, 0.002)  # the event loop wakes a little late
        if wake_at >= self._wake_at - 0.005:
            return
        self._wake_at = wake_at

        def woken() -> None:
            if self._wake_at == wake_at:
                self._wake_at = math.inf
                self._slept = True
                self._wake()

        self.loop.at(wake_at, woken)

    def _send(self, then: Callable[[], None], waited: bool) -> None:
        ticket = self.rules.send(self.loop.now, waited=waited)
        arrival = self.loop.now + self.rng.uniform(0, self.case.uplink_jitter_ms / 1000)
        self.loop.at(arrival, lambda: self._arrive(ticket, then))

    def _arrive(self, ticket: Ticket, then: Callable[[], None]) -> None:
        over, info = self.hubspot.arrive(self.loop.now)
        self.arrivals.append(self.loop.now)
        jitter = self.case.latency_jitter_ms
        latency = max(0.0, self.case.latency_ms + self.rng.uniform(-jitter, jitter)) / 1000

        def answered() -> None:
            self.rules.learn(ticket, info, self.loop.now)
            if over:
                self.rules.hold(WINDOW_S, self.loop.now)
                self._left += 1  # the create is tried again
            self._wake()
            then()

        self.loop.at(self.loop.now + latency, answered)


def simulate(case: Case, seed: int, requests: int) -> tuple[float, int, int]:
    """(lowest share of the limit among the importers, busiest window, 429s)."""
    rng = random.Random(seed)
    loop, hubspot = Loop(), HubSpot(case.max_per_window)
    importers = [Importer(loop, hubspot, case, rng, requests) for _ in range(case.importers)]
    for index, importer in enumerate(importers):
        importer.start(index * case.stagger_s)
    if case.foreign_per_10s:
        _foreign(loop, hubspot, rng, case.foreign_per_10s / WINDOW_S, until=requests / 9)
    loop.run()
    allowed_per_s = case.max_per_window / WINDOW_S
    if case.importers == 1:
        arrivals = importers[0].arrivals[1:]  # the creates, after the lone first request
    else:  # together, from the first arrival of any until the last
        arrivals = [t for importer in importers for t in importer.arrivals]
    # Arrivals per second: the slope of a least-squares line, so the uplink jitter at the ends does not count.
    seconds_per_arrival = statistics.linear_regression(range(len(arrivals)), sorted(arrivals)).slope
    return 1 / seconds_per_arrival / allowed_per_s, hubspot.busiest, hubspot.rejected


def _foreign(loop: Loop, hubspot: HubSpot, rng: random.Random, per_s: float, until: float) -> None:
    when = rng.expovariate(per_s)
    while when < until:
        loop.at(when, lambda: hubspot.arrive(loop.now) and None)
        when += rng.expovariate(per_s)


CASES = [
    Case("tier 100, 150±100 ms, uplink 0-60", 100, 150, 100, 60),
    Case("tier 190, 150±100 ms, uplink 0-100", 190, 150, 100, 100),
    Case("tier 250, 150±100 ms, uplink 0-100", 250, 150, 100, 100),
    Case("tier 250, 150±100 ms, uplink 0-100, 16 conc", 250, 150, 100, 100, concurrency=16),
    Case("tier 100, 50 ms, uplink 0-100", 100, 50, 0, 100),
    Case("tier 100, 400±200 ms, uplink 0-100", 100, 400, 200, 100),
    Case("tier 100, 500±100 ms, uplink 0-100", 100, 500, 100, 100),
    Case("two importers, tier 100, 150±100 ms", 100, 150, 100, 100, importers=2),
    Case("two importers, tier 100, 400±200 ms", 100, 400, 200, 100, importers=2),
    Case("two importers, tier 250, 150±100 ms", 250, 150, 100, 100, importers=2),
    Case("two importers, 2nd 20 s later", 100, 150, 100, 100, importers=2, stagger_s=20),
    Case("tier 100 + another integration 2/10 s", 100, 150, 100, 100, foreign_per_10s=2),
    Case("tier 250 + another integration 20/10 s", 250, 150, 100, 100, foreign_per_10s=20),
]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seeds", type=int, default=20)
    parser.add_argument("--requests", type=int, default=600)
    args = parser.parse_args()
    print(f"{'case':48} {'share (worst seed)':>18} {'busiest window':>15} {'429s':>5}")
    for case in CASES:
        results = [simulate(case, seed, args.requests) for seed in range(args.seeds)]
        share = min(r[0] for r in results)
        busiest = max(r[1] for r in results)
        rejected = sum(r[2] for r in results)
        print(f"{case.name:48} {share:18.3f} {busiest:>9} / {case.max_per_window:<3} {rejected:5}")


if __name__ == "__main__":
    main()
