"""`meeting-importer sandbox` (also `python -m importer.sandbox`): options in, one serve() call out."""

from __future__ import annotations

from pathlib import Path
from typing import cast
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import click

from importer.sandbox.config import DEFAULT_SEED, SandboxConfig
from importer.sandbox.faults import FAULT_SCOPES, Faults, FaultScope
from importer.sandbox.seed import SeedError
from importer.sandbox.server import serve

_DEFAULTS = SandboxConfig()
_FAULT_DEFAULTS = Faults()
_PROBABILITY = click.FloatRange(0.0, 1.0)
_MILLISECONDS = click.IntRange(min=0)
_POSITIVE = click.IntRange(min=1)


def _time_zone(value: str) -> str:
    """Refuse a zone name at start rather than on the first account-details request."""
    try:
        ZoneInfo(value)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise click.BadParameter(f"'{value}' is not an IANA time zone name.") from exc
    return value


@click.command("sandbox")
@click.option("--host", default=_DEFAULTS.host, show_default=True, help="Address to listen on.")
@click.option(
    "--port",
    type=click.IntRange(0, 65535),
    default=_DEFAULTS.port,
    show_default=True,
    help="Port to listen on; 0 lets the OS pick one.",
)
@click.option(
    "--port-file",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Write the port number to this file once listening.",
)
@click.option("--token", default=_DEFAULTS.token, show_default=True, help="The only Bearer token accepted.")
@click.option(
    "--portal-id",
    type=click.IntRange(min=1),
    default=_DEFAULTS.portal_id,
    show_default=True,
    help="The account id GET /account-info/v3/details reports.",
)
@click.option(
    "--time-zone",
    default=_DEFAULTS.time_zone,
    show_default=True,
    callback=lambda _context, _param, value: _time_zone(value),
    help="The account's IANA time zone, as GET /account-info/v3/details reports it.",
)
@click.option(
    "--window-ms",
    type=_POSITIVE,
    default=_DEFAULTS.window_ms,
    show_default=True,
    help="Length of the rolling rate-limit window.",
)
@click.option(
    "--max-per-window",
    type=_POSITIVE,
    default=_DEFAULTS.max_per_window,
    show_default=True,
    help="Requests allowed in one window (search excluded).",
)
@click.option(
    "--daily-limit",
    type=_POSITIVE,
    default=_DEFAULTS.daily_limit,
    show_default=True,
    help="Requests allowed per day.",
)
@click.option(
    "--search-per-second",
    type=_POSITIVE,
    default=_DEFAULTS.search_per_second,
    show_default=True,
    help="Search requests allowed in any rolling second.",
)
@click.option(
    "--search-lag-ms",
    type=_MILLISECONDS,
    default=_DEFAULTS.search_lag_ms,
    show_default=True,
    help="How long a new meeting stays invisible to search.",
)
@click.option(
    "--data",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    default=DEFAULT_SEED,
    help="Fixture of owners and CRM records (same shape as the bundled seed.json).",
)
@click.option(
    "--latency-ms",
    type=_MILLISECONDS,
    default=_FAULT_DEFAULTS.latency_ms,
    show_default=True,
    help="Delay added to every API answer.",
)
@click.option(
    "--latency-jitter-ms",
    type=_MILLISECONDS,
    default=_FAULT_DEFAULTS.latency_jitter_ms,
    show_default=True,
    help="Up to this much more delay on each answer, at random.",
)
@click.option(
    "--uplink-ms",
    type=_MILLISECONDS,
    default=_FAULT_DEFAULTS.uplink_ms,
    show_default=True,
    help="Delay before a request is counted by the rate limits, as if it arrived late.",
)
@click.option(
    "--uplink-jitter-ms",
    type=_MILLISECONDS,
    default=_FAULT_DEFAULTS.uplink_jitter_ms,
    show_default=True,
    help="Up to this much more uplink delay, at random: requests may arrive out of order.",
)
@click.option(
    "--error-5xx",
    type=_PROBABILITY,
    default=_FAULT_DEFAULTS.error_5xx,
    show_default=True,
    help="Probability of a 500/502/503/504 answer.",
)
@click.option(
    "--drop-before",
    type=_PROBABILITY,
    default=_FAULT_DEFAULTS.drop_before,
    show_default=True,
    help="Probability of cutting the connection before doing the work.",
)
@click.option(
    "--drop-after",
    type=_PROBABILITY,
    default=_FAULT_DEFAULTS.drop_after,
    show_default=True,
    help="Probability of doing the work, then cutting the connection.",
)
@click.option(
    "--spurious-429",
    type=_PROBABILITY,
    default=_FAULT_DEFAULTS.spurious_429,
    show_default=True,
    help="Probability of a TEN_SECONDLY_ROLLING 429 while the window is not full.",
)
@click.option(
    "--slow",
    type=_PROBABILITY,
    default=_FAULT_DEFAULTS.slow,
    show_default=True,
    help="Probability of doing the work, then answering only after --slow-ms.",
)
@click.option(
    "--slow-ms",
    type=_MILLISECONDS,
    default=_FAULT_DEFAULTS.slow_ms,
    show_default=True,
    help="Delay of a slow answer.",
)
@click.option(
    "--error-5xx-after",
    type=_PROBABILITY,
    default=_FAULT_DEFAULTS.error_5xx_after,
    show_default=True,
    help="Probability of doing the work, then answering 500/502/504 (a gateway that timed out).",
)
@click.option(
    "--search-lag-extra-ms",
    type=_MILLISECONDS,
    default=_FAULT_DEFAULTS.search_lag_extra_ms,
    show_default=True,
    help="Extra time a share of new or updated meetings stays invisible or stale to search.",
)
@click.option(
    "--search-lag-extra-share",
    type=_PROBABILITY,
    default=_FAULT_DEFAULTS.search_lag_extra_share,
    show_default=True,
    help="Share of new or updated meetings that get --search-lag-extra-ms on top of --search-lag-ms.",
)
@click.option(
    "--forbid-title",
    default=_FAULT_DEFAULTS.forbid_title,
    help="Refuse with 403 MISSING_SCOPES any create whose hs_meeting_title contains this text.",
)
@click.option(
    "--refuse-title",
    default=_FAULT_DEFAULTS.refuse_title,
    help="Refuse as invalid (400; in a batch create, that input alone, 207) any create whose"
    " hs_meeting_title contains this text.",
)
@click.option(
    "--fault-scope",
    type=click.Choice(FAULT_SCOPES),
    default=_FAULT_DEFAULTS.scope,
    show_default=True,
    help="Inject faults on the meeting create routes, on every route that writes, on every route that only reads, or on every API route.",
)
@click.option(
    "--fault-seed",
    type=int,
    default=_FAULT_DEFAULTS.seed,
    show_default=True,
    help="Seed for the fault dice, so runs repeat.",
)
def sandbox_command(
    host: str,
    port: int,
    port_file: Path | None,
    token: str,
    portal_id: int,
    time_zone: str,
    window_ms: int,
    max_per_window: int,
    daily_limit: int,
    search_per_second: int,
    search_lag_ms: int,
    data: Path,
    latency_ms: int,
    latency_jitter_ms: int,
    uplink_ms: int,
    uplink_jitter_ms: int,
    error_5xx: float,
    drop_before: float,
    drop_after: float,
    spurious_429: float,
    slow: float,
    slow_ms: int,
    error_5xx_after: float,
    search_lag_extra_ms: int,
    search_lag_extra_share: float,
    forbid_title: str | None,
    refuse_title: str | None,
    fault_scope: str,
    fault_seed: int,
) -> None:
    """Run a local HubSpot stand-in for demos and integration tests.

    It serves account details, owners, batch read, search, Scheduler meeting create, and the CRM meeting
    routes (read, update, batch create, v4 associations) with HubSpot's shapes, rate limits and validation,
    and can inject faults. Admin API (no auth): /__sandbox/stats, /__sandbox/meetings (GET; POST adds a
    meeting as if made in HubSpot's UI), /__sandbox/faults, /__sandbox/reset.

    \b
    Example:
      meeting-importer sandbox --port 0 --port-file /tmp/sandbox.port --drop-after 0.1
    """
    faults = Faults(
        error_5xx=error_5xx,
        drop_before=drop_before,
        drop_after=drop_after,
        spurious_429=spurious_429,
        slow=slow,
        slow_ms=slow_ms,
        latency_ms=latency_ms,
        latency_jitter_ms=latency_jitter_ms,
        uplink_ms=uplink_ms,
        uplink_jitter_ms=uplink_jitter_ms,
        scope=cast(FaultScope, fault_scope),
        seed=fault_seed,
        error_5xx_after=error_5xx_after,
        search_lag_extra_ms=search_lag_extra_ms,
        search_lag_extra_share=search_lag_extra_share,
        forbid_title=forbid_title or None,
        refuse_title=refuse_title or None,
    )
    config = SandboxConfig(
        host=host,
        port=port,
        port_file=port_file,
        token=token,
        portal_id=portal_id,
        time_zone=time_zone,
        window_ms=window_ms,
        max_per_window=max_per_window,
        daily_limit=daily_limit,
        search_per_second=search_per_second,
        search_lag_ms=search_lag_ms,
        data=data,
        faults=faults,
    )
    try:
        serve(config)
    except SeedError as exc:
        raise click.ClickException(str(exc)) from exc
