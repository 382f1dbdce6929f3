"""Injected failures: which ones are switched on, and the seeded dice that decide each request's fate."""

from __future__ import annotations

import dataclasses
import random
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, Literal, TypeVar

# "create": routes that make meetings; "writes": every route that changes data; "reads": every API route
# that changes nothing (owners, batch reads, searches: an incident of HubSpot's CRM search, say); "all":
# every API route.
FaultScope = Literal["create", "writes", "reads", "all"]
FAULT_SCOPES: tuple[FaultScope, ...] = ("create", "writes", "reads", "all")
SERVER_ERROR_STATUSES = (500, 502, 503, 504)
# What a gateway answers when the backend committed but the answer did not come back in time (no 503:
# that one says the service refused the request).
AFTER_WORK_STATUSES = (500, 502, 504)


T = TypeVar("T")


class FaultKind(StrEnum):
    """A failure the sandbox can inject instead of (or around) the real answer."""

    DROP_BEFORE = "drop_before"
    ERROR_5XX = "error_5xx"
    SPURIOUS_429 = "spurious_429"
    DROP_AFTER = "drop_after"
    ERROR_5XX_AFTER = "error_5xx_after"
    SLOW = "slow"


# Faults that skip the work come first (drop_before, error_5xx, spurious_429), so with several probabilities
# at 1 the cheapest outcome wins; then those that do the work and spoil the answer (drop_after,
# error_5xx_after, slow).
_ROLL_ORDER = (
    FaultKind.DROP_BEFORE,
    FaultKind.ERROR_5XX,
    FaultKind.SPURIOUS_429,
    FaultKind.DROP_AFTER,
    FaultKind.ERROR_5XX_AFTER,
    FaultKind.SLOW,
)


_MILLISECONDS = ("slow_ms", "latency_ms", "latency_jitter_ms", "uplink_ms", "uplink_jitter_ms")


class FaultSettingsError(ValueError):
    """Raised when fault settings sent to the admin API are not valid."""


@dataclass(frozen=True)
class Faults:
    """Fault probabilities (0..1) and timings; `scope` says which routes they hit."""

    error_5xx: float = 0.0
    drop_before: float = 0.0
    drop_after: float = 0.0
    spurious_429: float = 0.0
    slow: float = 0.0
    slow_ms: int = 5000
    latency_ms: int = 0
    latency_jitter_ms: int = 0  # up to this much more on each answer, at random
    uplink_ms: int = 0  # before a request is counted: it reaches "HubSpot" later than it was sent
    uplink_jitter_ms: int = 0  # up to this much more, at random, so requests may arrive out of order
    scope: FaultScope = "create"
    seed: int = 0
    error_5xx_after: float = 0.0
    # Account behaviour rather than per-request faults, kept here so a test can change it at runtime.
    search_lag_extra_ms: int = 0
    search_lag_extra_share: float = 0.0
    forbid_title: str | None = None
    refuse_title: str | None = None

    def probability(self, kind: FaultKind) -> float:
        value: float = getattr(self, kind.value)
        return value

    def to_json(self) -> dict[str, object]:
        return dataclasses.asdict(self)

    def updated(self, changes: dict[str, object]) -> Faults:
        """Return these settings with `changes` applied, each value checked."""
        known = {field.name for field in dataclasses.fields(self)}
        unknown = sorted(set(changes) - known)
        if unknown:
            raise FaultSettingsError(f"Unknown fault setting(s): {', '.join(unknown)}.")
        checked: dict[str, Any] = {name: _check_setting(name, value) for name, value in changes.items()}
        return dataclasses.replace(self, **checked)


def _check_setting(name: str, value: object) -> object:
    if name == "scope":
        if value not in FAULT_SCOPES:
            raise FaultSettingsError(f"scope must be one of {', '.join(FAULT_SCOPES)}, got {value!r}.")
        return value
    if name in ("forbid_title", "refuse_title"):
        if value is not None and (not isinstance(value, str) or not value):
            raise FaultSettingsError(f"{name} must be a non-empty string or null, got {value!r}.")
        return value
    if name in _MILLISECONDS or name in ("seed", "search_lag_extra_ms"):
        if not isinstance(value, int) or isinstance(value, bool) or (name != "seed" and value < 0):
            raise FaultSettingsError(f"{name} must be a non-negative integer, got {value!r}.")
        return value
    if not isinstance(value, int | float) or isinstance(value, bool) or not 0.0 <= value <= 1.0:
        raise FaultSettingsError(f"{name} must be a probability between 0 and 1, got {value!r}.")
    return float(value)


class FaultDice:
    """Seeded randomness, so a test that sets `seed` sees the same faults on every run."""

    def __init__(self, seed: int) -> None:
        self._rng = random.Random(seed)
        # Their own streams, so turning a lag share or a batch on does not shift which requests fail.
        self._lag_rng = random.Random(seed)
        self._order_rng = random.Random(seed)
        self._delays = random.Random(f"{seed}-delays")  # apart, so delays leave the faults' sequence as is

    def delay_s(self, base_ms: int, jitter_ms: int) -> float:
        """`base_ms` plus up to `jitter_ms` at random, in seconds."""
        return (base_ms + (self._delays.uniform(0, jitter_ms) if jitter_ms else 0)) / 1000

    def roll(self, faults: Faults, on_create_route: bool, on_write_route: bool = False) -> FaultKind | None:
        """Pick the fault for one request, or None to answer normally."""
        if faults.scope == "create" and not on_create_route:
            return None
        if faults.scope == "writes" and not (on_create_route or on_write_route):
            return None
        if faults.scope == "reads" and (on_create_route or on_write_route):
            return None
        # One draw per kind on every request keeps the sequence independent of which kinds are on.
        draws = [(kind, self._rng.random()) for kind in _ROLL_ORDER]
        for kind, draw in draws:
            if draw < faults.probability(kind):
                return kind
        return None

    def server_error_status(self) -> int:
        return self._rng.choice(SERVER_ERROR_STATUSES)

    def after_work_status(self) -> int:
        return self._rng.choice(AFTER_WORK_STATUSES)

    def lags_longer(self, share: float) -> bool:
        """Whether one write joins the share that search sees only after the extra lag."""
        return self._lag_rng.random() < share

    def shuffled(self, items: list[T]) -> list[T]:
        """`items` in a seeded random order, as HubSpot returns batch results in no particular order."""
        mixed = list(items)
        self._order_rng.shuffle(mixed)
        return mixed
