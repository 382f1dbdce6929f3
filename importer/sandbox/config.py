"""The sandbox's settings, fixed at start (faults can still change at runtime through the admin API)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from importer.sandbox.faults import Faults

DEFAULT_SEED = Path(__file__).with_name("seed.json")


@dataclass(frozen=True)
class SandboxConfig:
    """Where to listen, which token to accept, the rate limits to enforce and the faults to start with."""

    host: str = "127.0.0.1"
    port: int = 8787
    port_file: Path | None = None
    token: str = "sandbox-token"
    portal_id: int = 12345678  # the account's id, as GET /account-info/v3/details reports it
    time_zone: str = "Asia/Tokyo"  # the account's zone, as the same route reports it
    window_ms: int = 10_000
    max_per_window: int = 100
    daily_limit: int = 250_000
    search_per_second: int = 4
    search_lag_ms: int = 3000
    data: Path = DEFAULT_SEED
    faults: Faults = field(default_factory=Faults)
