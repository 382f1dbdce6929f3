"""Settings: built-in defaults < config file (TOML) < environment < command-line flags, merged in one place.

Nothing else in the importer reads `os.environ` or the config file. Every setting has an environment
variable `MEETING_IMPORTER_<NAME>` (upper case); `HUBSPOT_BASE_URL` also sets `base_url`. The access token
is read from the variable named by `token_env` and kept as a secret that never prints.
"""

from __future__ import annotations

import codecs
import tomllib
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, Literal, get_args

from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError, field_validator

from importer.cells import DateOrder, zone_name
from importer.errors import ConfigError
from importer.messages import Language, _, language_from
from importer.models import ENUM_ALIASES, FIELDS, Outcome, ReminderError, allowed_values, parse_reminders

ENV_PREFIX = "MEETING_IMPORTER_"


class Settings(BaseModel):
    """Every knob of a run; frozen once merged. `config/importer.toml` documents each one."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    # reading
    encoding: str | None = None
    sheet: str | None = None
    header_row: int | None = Field(default=None, ge=1)
    columns: dict[str, str] = Field(default_factory=dict)
    # None: the HubSpot account's zone (a 14:00 with no zone anywhere is 14:00 where the team works).
    default_timezone: str | None = None
    default_outcome: str = "SCHEDULED"
    default_reminders: str = "30m"
    date_order: DateOrder = "YMD"  # how a date with the year last reads (cells.DateOrder)
    include_invite_description: bool = False
    # HubSpot
    base_url: str = "https://api.hubapi.com"
    token_env: str = "HUBSPOT_ACCESS_TOKEN"
    token: SecretStr | None = None
    timeout_s: float = Field(default=30.0, gt=0)
    connect_timeout_s: float = Field(default=5.0, gt=0)
    on_missing_association: Literal["fail", "skip"] = "fail"
    ambiguous_company_domain: Literal["fail", "all"] = "fail"
    # sending
    # A ceiling under HubSpot's own limit (to leave room for other integrations); None follows HubSpot alone.
    requests_per_10s: int | None = Field(default=None, ge=1, le=10_000)
    search_per_second: float = Field(default=4.0, gt=0)
    concurrency: int = Field(default=8, ge=1, le=256)
    max_attempts: int = Field(default=5, ge=1, le=50)
    row_deadline_s: float = Field(default=300.0, gt=0)
    backoff_base_s: float = Field(default=0.5, gt=0)
    backoff_cap_s: float = Field(default=30.0, gt=0)
    search_lag_s: float = Field(default=30.0, ge=0)
    outage_s: float = Field(default=300.0, gt=0)
    check_existing: bool = True
    # identity and edits
    key_column: str | None = None
    on_change: Literal["update", "skip"] = "update"
    recreate_missing: bool = False
    mode: Literal["schedule", "log", "auto"] = "schedule"
    # messages: the run's language; unset, the locale's (ja when LC_ALL, LC_MESSAGES or LANG starts with ja)
    language: Language = "en"
    # files
    results: Path | None = None
    state_path: Path | None = None
    only_failed: Path | None = None
    dry_run: bool = False

    @field_validator("default_timezone")
    @classmethod
    def _zone(cls, value: str | None) -> str | None:
        if value is None:
            return None
        name = zone_name(value)
        if name is None:
            raise ValueError(
                _("unknown time zone '{value}' (use an IANA name such as Asia/Tokyo)").format(value=value)
            )
        return name

    @field_validator("date_order", mode="before")
    @classmethod
    def _date_order(cls, value: Any) -> Any:
        return value.strip().upper() if isinstance(value, str) else value

    @field_validator("default_outcome")
    @classmethod
    def _outcome(cls, value: str) -> str:
        upper = ENUM_ALIASES.get(value.strip().upper(), value.strip().upper())
        if upper not in get_args(Outcome):
            allowed = allowed_values(get_args(Outcome))
            raise ValueError(_("'{value}' is not one of {allowed}").format(value=value, allowed=allowed))
        return upper

    @field_validator("default_reminders")
    @classmethod
    def _reminders(cls, value: str) -> str:
        try:
            parse_reminders(value)
        except ReminderError as exc:
            message = _("'{value}' is not a reminder like 30m, 2h, 1d or 1w").format(value=exc.part)
            raise ValueError(message) from None
        return value

    @field_validator("columns")
    @classmethod
    def _columns(cls, value: dict[str, str]) -> dict[str, str]:
        unknown = sorted(set(value.values()) - set(FIELDS))
        if unknown:
            message = _("maps to unknown fields {unknown}; known: {known}")
            raise ValueError(message.format(unknown=unknown, known=", ".join(FIELDS)))
        return value

    @field_validator("sheet", mode="before")
    @classmethod
    def _sheet(cls, value: Any) -> Any:
        # A position in the file (`sheet = 2`) becomes text; spaces typed around a name are not part of it.
        if isinstance(value, int):
            return str(value)
        return (value.strip() or None) if isinstance(value, str) else value


def load_settings(
    config_path: Path | None,
    environ: Mapping[str, str],
    flags: Mapping[str, Any],
) -> Settings:
    """Merge the layers, later winning: defaults, `config_path`, `environ`, then the flags that were given.

    A bad value is reported with the layer it came from: the file, the environment variable or the flag.
    """
    merged: dict[str, Any] = {}
    sources: dict[str, str] = {}
    layers: list[tuple[dict[str, Any], Callable[[str], str]]] = []
    if config_path is not None:
        layers.append((_read_toml(config_path), lambda name: str(config_path)))
    layers.append((_from_environ(environ), _environ_name))
    layers.append(
        (
            {k: v for k, v in flags.items() if v is not None},
            lambda name: _("option --{name}").format(name=name.replace("_", "-")),
        )
    )
    for values, source in layers:
        merged.update(values)
        sources.update({name: source(name) for name in values})
    merged.setdefault("language", language_from(environ))
    token_env = str(merged.get("token_env", Settings.model_fields["token_env"].default))
    token = _token(environ.get(token_env), token_env)
    if token:
        merged["token"] = token
    try:
        return Settings(**merged)
    except ValidationError as exc:
        raise ConfigError(_describe(exc, sources)) from None


def _environ_name(name: str) -> str:
    if name == "base_url":
        return _("environment variable HUBSPOT_BASE_URL or MEETING_IMPORTER_BASE_URL")
    return _("environment variable {name}").format(name=f"{ENV_PREFIX}{name.upper()}")


def _token(raw: str | None, token_env: str) -> str | None:
    """The token as a file saved on Windows or `$(cat token)` gives it: spaces, CR and LF around it come
    off. One with white space inside is refused, without showing it."""
    token = (raw or "").strip()
    if any(c.isspace() for c in token):
        message = _("the access token in {variable} has white space inside it: check how it is set")
        raise ConfigError(message.format(variable=token_env))
    return token or None


def _read_toml(path: Path) -> dict[str, Any]:
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise ConfigError(_("config file not found: {path}").format(path=path)) from None
    except OSError as exc:
        message = _("cannot read config file {path}: {error}")
        raise ConfigError(message.format(path=path, error=exc.strerror or exc)) from None
    try:
        # Notepad and Japanese editors add a BOM; TOML itself is UTF-8 only.
        text = raw.removeprefix(codecs.BOM_UTF8).decode("utf-8")
    except UnicodeDecodeError as exc:
        line = raw[: exc.start].count(b"\n") + 1
        message = _(
            "cannot read config file {path}: line {line} is not UTF-8 (save it as UTF-8, not Shift_JIS)"
        )
        raise ConfigError(message.format(path=path, line=line)) from None
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        message = _("cannot read config file {path}: {error}")
        raise ConfigError(message.format(path=path, error=exc)) from None
    if "token" in data:
        message = _("{path}: put the access token in an environment variable (token_env), not the file")
        raise ConfigError(message.format(path=path))
    return data


def _from_environ(environ: Mapping[str, str]) -> dict[str, Any]:
    values: dict[str, Any] = {}
    if environ.get("HUBSPOT_BASE_URL"):
        values["base_url"] = environ["HUBSPOT_BASE_URL"]
    for name in Settings.model_fields:
        if name in ("columns", "token"):
            continue
        raw = environ.get(ENV_PREFIX + name.upper())
        if raw is not None and raw != "":
            values[name] = raw
    return values


def _describe(exc: ValidationError, sources: dict[str, str]) -> str:
    """`bad setting in <where it came from>: <setting>: <what is wrong>`, grouped by source."""
    groups: dict[str | None, list[str]] = {}
    for error in exc.errors():
        where = ".".join(str(p) for p in error["loc"]) or "settings"
        message = error["msg"].removeprefix("Value error, ")
        if error["type"] == "extra_forbidden":
            message = _("unknown setting")
        source = sources.get(str(error["loc"][0])) if error["loc"] else None
        groups.setdefault(source, []).append(f"{where}: {message}")
    return "; ".join(
        (_("bad setting in {source}: {problems}") if source else _("bad setting: {problems}")).format(
            source=source, problems="; ".join(parts)
        )
        for source, parts in groups.items()
    )
