"""Pacing: the rules (`Window`) on a fake clock, against a simulated HubSpot window that counts arrivals;
then the event-loop wrapper and the `Pacer` gate. No assertion depends on how fast this machine is.
"""

from __future__ import annotations

import asyncio
import functools
import heapq
import random
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from importer.hubspot import Kind, RateLimitInfo
from importer.pacing import MARGIN, SPREAD_S, Pacer, Ticket, Window, WindowPacer

W = 10.0
PACE = (
    (100 - MARGIN) / 100 * W / (W + SPREAD_S)
)  # the share of the limit when alone, at the lowest tier: 0.980


@dataclass
class HubSpot:
    """HubSpot's rolling window as the sandbox keeps it: arrivals counted, 429s included."""

    max: int
    arrivals: deque[float] = field(default_factory=deque)
    busiest: int = 0

    def arrive(self, at: float) -> RateLimitInfo:
        while self.arrivals and self.arrivals[0] <= at - W:
            self.arrivals.popleft()
        self.arrivals.append(at)
        self.busiest = max(self.busiest, len(self.arrivals))
        return RateLimitInfo(self.max, max(0, self.max - len(self.arrivals)), int(W * 1000))


@dataclass
class Client:
    """Requests always waiting, sent when the rules say; each arrives `uplink()` after it is sent and
    is answered `latency()` after it arrives."""

    rules: Window
    requests: int
    uplink: Callable[[], float] = lambda: 0.0
    latency: Callable[[], float] = lambda: 0.15
    sent: list[float] = field(default_factory=list)


def drive(hubspot: HubSpot, *clients: Client, starts: tuple[float, ...] = ()) -> None:
    """Run the clients to the end on one simulated clock."""
    events: list[tuple[float, int, Callable[[float], None]]] = []
    order = iter(range(10**9))

    def at(when: float, action: Callable[[float], None]) -> None:
        heapq.heappush(events, (when, next(order), action))

    def turn(client: Client, waited: bool = False) -> Callable[[float], None]:
        def act(now: float) -> None:
            if len(client.sent) == client.requests:
                return
            delay = client.rules.delay(now)
            if delay > 0:
                at(now + delay, turn(client, waited=True))  # the pacer's sleep: re-checked when it ends
                return
            ticket = client.rules.send(now, waited=waited)
            client.sent.append(now)
            at(now + client.uplink(), arrive(client, ticket))
            at(now, turn(client))

        return act

    def arrive(client: Client, ticket: Ticket) -> Callable[[float], None]:
        def act(now: float) -> None:
            info = hubspot.arrive(now)

            def answer(answered: float) -> None:
                client.rules.learn(ticket, info, answered)

            at(now + client.latency(), answer)

        return act

    for index, client in enumerate(clients):
        at(starts[index] if starts else 0.0, turn(client))
    while events:
        now, _, action = heapq.heappop(events)
        action(now)


def api(ceiling: float | None = None) -> Window:
    return Window(ceiling, W, follow=True)


def share(client: Client, limit: int, after: float = 1.0) -> float:
    """The client's pace once it knows the tier, as a share of `limit` per window: its sends over whole
    spans of W + D (the rules' period), so that where the run happens to stop does not count."""
    period = W + SPREAD_S
    periods = int((client.sent[-1] - after) // period)
    sent = sum(1 for t in client.sent if after <= t < after + periods * period)
    return sent / (periods * period) / (limit / W)


def taught(portal: int) -> Window:
    """Rules that have heard the portal's tier, long ago."""
    rules = api()
    answer(rules, -100.0, portal, portal - 1)
    return rules


def most_in(times: list[float], span: float) -> int:
    """The most of `times` inside any half-open span (t - span, t] (a rounding error short of `span`)."""
    times, most, first = sorted(times), 0, 0
    for last, stamp in enumerate(times):
        while times[first] <= stamp - span + 1e-9:
            first += 1
        most = max(most, last - first + 1)
    return most


def test_most_in_counts_a_sliding_half_open_span() -> None:
    assert most_in([0.0, 0.5, 0.99, 1.0, 1.98], 1.0) == 3  # 0.0 and 1.0 are a span apart
    assert most_in([], 1.0) == 0


# --- the limit: the lowest tier until HubSpot says, then HubSpot's, under the user's ceiling ---


def answer(
    rules: Window, now: float, max_: int | None, remaining: int | None, interval_ms: int = 10_000
) -> None:
    ticket = rules.send(now)
    rules.learn(ticket, RateLimitInfo(max_, remaining, interval_ms), now + 0.1)


def test_before_any_answer_the_pace_is_the_lowest_tier() -> None:
    assert api().limit == 100
    assert api(250).limit == 100  # a ceiling is not a floor
    assert api(50).limit == 50


@pytest.mark.parametrize(
    ("ceiling", "portal", "limit"),
    [(None, 190, 190), (None, 250, 250), (None, 100, 100), (150, 190, 150), (250, 100, 100)],
)
def test_the_answers_max_sets_the_limit_under_the_ceiling(
    ceiling: int | None, portal: int, limit: int
) -> None:
    rules = api(ceiling)
    answer(rules, 0.0, portal, portal - 1)
    assert rules.limit == limit


def test_max_follows_hubspot_down_as_well_as_up() -> None:
    rules = api()
    answer(rules, 0.0, 250, 249)
    answer(rules, 1.0, 190, 188)
    assert rules.limit == 190


def test_interval_milliseconds_sets_the_window() -> None:
    rules = api(50)
    answer(rules, 0.0, 100, 99, interval_ms=1_000)
    assert (rules.window_s, rules.limit) == (1.0, 50)


def test_headers_absent_change_nothing() -> None:
    rules = api()
    answer(rules, 0.0, None, None, interval_ms=0)
    assert (rules.limit, rules.window_s, rules.others.count(0.2)) == (100, 10.0, 0)


@pytest.mark.parametrize("portal", [100, 190, 250])
def test_a_run_learns_its_tier_from_the_first_answer(portal: int) -> None:
    hubspot, client = HubSpot(portal), Client(api(), 6 * portal)
    drive(hubspot, client)
    assert client.rules.limit == portal
    assert share(client, portal) >= PACE - 0.002  # a send more or less at the ends of the span
    assert hubspot.busiest <= portal - MARGIN


# --- the window: what HubSpot counts, whatever the latency ---


def test_pace_does_not_depend_on_latency() -> None:
    """Alone on the app, a run sends at the same moments whether answers take 50 ms or 500."""
    schedules = []
    for latency in (0.05, 0.5):
        client = Client(taught(190), 400, latency=functools.partial(float, latency))
        drive(HubSpot(190), client)
        schedules.append(client.sent)
    assert schedules[0] == schedules[1]


@settings(max_examples=40, deadline=None)
@given(
    portal=st.sampled_from([100, 190, 250]),
    seed=st.integers(0, 2**32 - 1),
    latency_s=st.floats(0.05, 0.5),
    latency_spread_s=st.floats(0.0, 0.2),
    uplink_s=st.floats(0.0, 0.2),
)
def test_hubspot_never_counts_more_than_the_limit_minus_the_margin(
    portal: int, seed: int, latency_s: float, latency_spread_s: float, uplink_s: float
) -> None:
    """Any latencies, and uplink delays spread by up to SPREAD_S: HubSpot's window stays inside."""
    rng = random.Random(seed)
    client = Client(
        api(),
        3 * portal,
        uplink=lambda: uplink_s + rng.uniform(0, SPREAD_S),
        latency=lambda: latency_s + rng.uniform(0, latency_spread_s),
    )
    hubspot = HubSpot(portal)
    drive(hubspot, client)
    assert hubspot.busiest <= portal - MARGIN
    assert most_in(client.sent, W + SPREAD_S) <= portal - MARGIN
    assert share(client, portal) >= PACE - 0.002


def test_sends_are_spread_evenly() -> None:
    client = Client(taught(100), 300)
    drive(HubSpot(100), client)
    gaps = {round(b - a, 9) for a, b in zip(client.sent, client.sent[1:], strict=False)}
    assert gaps == {round((W + SPREAD_S) / (100 - MARGIN), 9)}


# --- others on the same app ---


def test_others_in_the_window_take_their_share_until_a_window_after_the_answer() -> None:
    rules = api()
    ticket = rules.send(0.0)  # HubSpot counted 41: ours and 40 of someone else's
    rules.learn(ticket, RateLimitInfo(100, 59, 10_000), 0.2)
    assert rules.others.count(0.2) == 40
    assert rules.others.count(10.2) == 0


def test_our_own_uplink_spread_is_not_mistaken_for_others() -> None:
    """Requests sent just before a window ago may still be in HubSpot's, and later ones overtake."""
    rules, now = api(), 0.0
    for _ in range(99):
        rules.send(now)
        now += 0.102
    # Our 100 sends span 10.098 s, and HubSpot counted them all: the first arrived late.
    ticket = rules.send(now)
    rules.learn(ticket, RateLimitInfo(100, 0, 10_000), now + 0.2)
    assert (rules.others.at_least, rules.others.count(now + 0.2)) == (0, 0)


def test_two_importers_together_stay_inside_the_window() -> None:
    rng = random.Random(7)
    clients = [
        Client(api(), 600, uplink=lambda: rng.uniform(0, SPREAD_S), latency=lambda: rng.uniform(0.05, 0.25))
        for _ in range(2)
    ]
    hubspot = HubSpot(100)
    drive(hubspot, *clients)
    assert hubspot.busiest <= 100 - MARGIN
    together = sorted(clients[0].sent + clients[1].sent)
    assert (len(together) - 1) / (together[-1] - together[0]) / (100 / W) >= 0.9


def test_an_importer_joining_a_busy_window_waits_for_room() -> None:
    rng = random.Random(3)
    clients = [
        Client(api(), 600, uplink=lambda: rng.uniform(0, SPREAD_S), latency=lambda: rng.uniform(0.05, 0.25))
        for _ in range(2)
    ]
    hubspot = HubSpot(100)
    drive(hubspot, *clients, starts=(0.0, 20.0))
    assert hubspot.busiest <= 100


def test_a_small_other_client_is_seen_on_average() -> None:
    """One request of someone else's hides in the slack of any one answer; their average finds it."""
    rules, sent, now = api(), [0.0, 0.0], 0.0
    tickets = [rules.send(now), rules.send(now)]
    for _ in range(150):
        now += 0.102
        tickets.append(rules.send(now))
        sent.append(now)
        answered = tickets[-3].sent_at  # answers come back two sends later
        ours = sum(1 for t in sent if answered - W < t <= answered)
        rules.learn(tickets[-3], RateLimitInfo(100, 100 - ours - 1, 10_000), now)
    assert (rules.others.at_least, rules.others.count(now)) == (0, 1)


def test_an_older_answer_than_the_freshest_tells_nothing() -> None:
    rules = api()
    old, new = rules.send(0.0), rules.send(0.2)
    rules.learn(new, RateLimitInfo(100, 98, 10_000), 0.4)
    rules.learn(old, RateLimitInfo(100, 50, 10_000), 0.5)  # arrived late, says little of now
    assert rules.others.count(0.5) == 0


def test_a_full_window_of_others_waits_until_they_have_left() -> None:
    rules = api()
    ticket = rules.send(0.0)
    rules.learn(ticket, RateLimitInfo(100, 0, 10_000), 0.2)
    assert rules.delay(0.2) == pytest.approx(10.0)


# --- holds ---


def test_a_hold_delays_and_a_shorter_one_does_not_cut_it() -> None:
    rules = api()
    rules.hold(10.0, now=0.0)
    rules.hold(1.0, now=0.0)
    assert rules.delay(0.0) == 10.0
    assert rules.delay(10.0) == 0.0


# --- search: its own fixed limit, no headers ---


def test_search_keeps_its_own_limit_per_second() -> None:
    rules = Window(4.0, 1.0, follow=False, margin=0)
    rules.learn(rules.send(0.0), RateLimitInfo(10, 0, 1_000), 0.1)
    assert (rules.limit, rules.window_s, rules.others.count(0.1)) == (4.0, 1.0, 0)
    client = Client(Window(4.0, 1.0, follow=False, margin=0), 40)
    drive(HubSpot(10**6), client)
    assert most_in(client.sent, 1.0 + SPREAD_S) == 4


# --- the event loop: one sleeper, woken early by good news ---


class FakeClock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_an_answer_that_raises_the_limit_wakes_the_waiting_request() -> None:
    async def main() -> Ticket:
        clock = FakeClock()
        pacer = WindowPacer(taught(2), clock)  # one request per window and spread
        await pacer.acquire()
        waiting = asyncio.create_task(pacer.acquire())  # sleeps for the window to pass
        await asyncio.sleep(0)
        clock.now = 1.0
        pacer.learn(Ticket(0.0), RateLimitInfo(250, 248, 10_000))
        # A failing pacer would sleep about ten seconds; this bound is only there to stop it.
        return await asyncio.wait_for(waiting, 5.0)

    assert asyncio.run(main()).sent_at == 1.0


def test_requests_are_let_through_in_the_order_they_asked() -> None:
    async def main() -> list[int]:
        pacer, order = WindowPacer(Window(1000.0, W, follow=False, margin=0)), []

        async def one(index: int) -> None:
            await pacer.acquire()
            order.append(index)

        await asyncio.gather(*(one(index) for index in range(20)))
        return order

    assert asyncio.run(main()) == list(range(20))


# --- the Pacer gate ---


def test_the_gate_sends_each_kind_to_its_window() -> None:
    clock = FakeClock()
    pacer = Pacer(None, 4.0, clock=clock)
    pacer.observe("api", RateLimitInfo(190, 189, 10_000, 625_000, 624_000), Ticket(0.0))
    pacer.observe("search", RateLimitInfo(10, 0, 1_000, 5, 5), Ticket(0.0))
    assert (pacer.api.rules.limit, pacer.search.rules.limit, pacer.search.rules.window_s) == (190, 4.0, 1.0)
    assert pacer.daily_remaining == 624_000  # search answers carry no daily header: kept


def test_daily_remaining_is_kept_when_an_answer_lacks_it() -> None:
    pacer = Pacer(None, 4.0)
    pacer.observe("api", RateLimitInfo(daily=250_000, daily_remaining=1234))
    pacer.observe("api", RateLimitInfo(max=100, remaining=50))
    assert pacer.daily_remaining == 1234


def test_the_ceiling_caps_what_hubspot_allows() -> None:
    assert Pacer(150, 4.0).api.rules.limit == 100  # until HubSpot says more
    pacer = Pacer(150, 4.0)
    pacer.observe("api", RateLimitInfo(190, 189, 10_000), Ticket(0.0))
    assert pacer.api.rules.limit == 150


@pytest.mark.parametrize(("held", "free"), [("api", "search"), ("search", "api")])
def test_a_back_off_holds_only_its_own_kind(held: Kind, free: Kind) -> None:
    clock = FakeClock()
    pacer = Pacer(None, 4.0, clock=clock)
    pacer.back_off(held, 60.0)
    window = {"api": pacer.api, "search": pacer.search}
    assert (window[held].rules.delay(0.0), window[free].rules.delay(0.0)) == (60.0, 0.0)
