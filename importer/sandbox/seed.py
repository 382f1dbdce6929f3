"""The fixture the sandbox starts from: owners and CRM records, read from a JSON file like seed.json."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

# Seed records carry no timestamps of their own; HubSpot always sends them, so every record gets this one.
SEED_TIME = "2024-04-01T00:00:00.000Z"
SEEDED_TYPES = ("contacts", "companies", "deals", "tickets")


class SeedError(ValueError):
    """Raised when a fixture file is not of seed.json's shape."""


@dataclass(frozen=True)
class Owner:
    id: str
    user_id: int | None
    email: str
    first_name: str
    last_name: str
    archived: bool

    def to_json(self) -> dict[str, object]:
        body: dict[str, object] = {"id": self.id}
        # A deactivated user's owner record has no userId at all, rather than a null one.
        if self.user_id is not None:
            body["userId"] = self.user_id
        body |= {
            "email": self.email,
            "firstName": self.first_name,
            "lastName": self.last_name,
            "type": "PERSON",
            "archived": self.archived,
            "createdAt": SEED_TIME,
            "updatedAt": SEED_TIME,
        }
        return body


@dataclass(frozen=True)
class CrmRecord:
    id: str
    properties: dict[str, str]
    created_at: str = SEED_TIME
    updated_at: str = SEED_TIME


@dataclass(frozen=True)
class Seed:
    owners: tuple[Owner, ...]
    records: dict[str, dict[str, CrmRecord]]  # object type -> id -> record

    def active_owner_by_id(self, owner_id: str) -> Owner | None:
        return next((o for o in self.owners if o.id == owner_id and not o.archived), None)

    def active_owner_by_user_id(self, user_id: int) -> Owner | None:
        return next((o for o in self.owners if o.user_id == user_id and not o.archived), None)

    def owner_exists(self, owner_id: str) -> bool:
        return any(o.id == owner_id for o in self.owners)


def load_seed(path: Path) -> Seed:
    """Read a fixture; raise SeedError naming the file when it is malformed."""
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
        owners = tuple(_owner(item) for item in raw["owners"])
        records = {kind: _records(raw["objects"].get(kind, [])) for kind in SEEDED_TYPES}
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as exc:
        raise SeedError(f"{path}: not a valid sandbox fixture ({exc!r})") from exc
    return Seed(owners=owners, records=records)


def _owner(item: dict[str, Any]) -> Owner:
    user_id = item.get("userId")
    return Owner(
        id=str(item["id"]),
        user_id=None if user_id is None else int(user_id),
        email=str(item["email"]),
        first_name=str(item.get("firstName", "")),
        last_name=str(item.get("lastName", "")),
        archived=bool(item.get("archived", False)),
    )


def _records(items: list[dict[str, Any]]) -> dict[str, CrmRecord]:
    records = (CrmRecord(id=str(item["id"]), properties=dict(item["properties"])) for item in items)
    return {record.id: record for record in records}
