"""Mapper: owners and association ids for every meeting, with as few calls as HubSpot allows.

Each distinct value is looked up once per run: owners in one paged pass, contacts by e-mail and deals and
tickets by id in batch reads of 100, companies by domain through search (HubSpot's `domain` is not a
unique property, so batch read cannot take it, and one domain may name several companies). The result,
per meeting, is the complete create request or the reasons it cannot be made.
"""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from importer import problems as codes
from importer.hubspot import BATCH_LIMIT, HubSpotClient, Owner
from importer.messages import N_
from importer.models import Meeting

# HUBSPOT_DEFINED association type ids, meeting -> object (HubSpot's AssociationTypes enum).
ASSOCIATION_TYPE_IDS = {"contacts": 200, "companies": 188, "deals": 212, "tickets": 226}
ASSOCIATION_FIELDS = {
    "contacts": "contact_emails",
    "companies": "company_domains",
    "deals": "deal_ids",
    "tickets": "ticket_ids",
}
"""Object type -> the meeting's field whose values name the records it is associated with."""
_IN_VALUES = 100  # values per IN filter of a company search
_BATCH = min(BATCH_LIMIT, _IN_VALUES)  # values per lookup request: batch read inputs, IN filter values
_FILL_LOOKAHEAD = 2_000  # rows to come scanned for values that fill a batch: bounded, so chunks stay cheap


@dataclass(frozen=True, slots=True)
class CreateRequest:
    """Everything `POST /scheduler/2026-03/meetings/calendar` needs for one meeting."""

    organizer_user_id: int
    body: dict[str, Any]
    owner_id: str  # with start_ms and title: how a lost create is found again by search
    start_ms: int
    title: str
    notes: tuple[codes.Problem, ...] = ()  # associations left out under on_missing_association = "skip"


@dataclass(frozen=True, slots=True)
class Mapped:
    """A meeting's create request, or why there is none."""

    request: CreateRequest | None
    problems: tuple[codes.Problem, ...] = ()


@dataclass(frozen=True)
class Directory:
    """What HubSpot has for the run's values: owners by e-mail, object ids by e-mail, domain or id."""

    owners: dict[str, Owner]
    contacts: dict[str, str]
    companies: dict[str, list[str]]
    deals: set[str]
    tickets: set[str]


class Lookups:
    """The run's directory, grown as rows come: each chunk of rows asks HubSpot only for the values no
    earlier chunk named, so the first rows can be sent while later ones are still being looked up."""

    def __init__(self, client: HubSpotClient) -> None:
        self._client = client
        self._owners_read = False
        self.directory = Directory({}, {}, {}, set(), set())
        self._asked: dict[str, set[str]] = {kind: set() for kind in ASSOCIATION_FIELDS}

    async def directory_for(self, meetings: Sequence[Meeting], then: Iterable[Meeting] = ()) -> Directory:
        """The directory, now holding everything `meetings` name. Values of the rows that come `then`
        fill each lookup's last batch, so chunking the rows costs no more requests than one pass."""
        found = self.directory
        if not self._owners_read:
            # Owners first: every run needs them, and a refused token then costs one request, not one per
            # lookup.
            found.owners.update(await _owners(self._client))
            self._owners_read = True
        new = {
            kind: self._new(kind, (getattr(m, field) for m in meetings))
            for kind, field in ASSOCIATION_FIELDS.items()
        }
        self._fill(new, then)
        contacts, companies, deals, tickets = await asyncio.gather(
            _contacts(self._client, new["contacts"]),
            _companies(self._client, new["companies"]),
            _existing(self._client, "deals", new["deals"]),
            _existing(self._client, "tickets", new["tickets"]),
        )
        found.contacts.update(contacts)
        found.companies.update(companies)
        found.deals.update(deals)
        found.tickets.update(tickets)
        for kind, values in new.items():
            self._asked[kind].update(values)  # only once answered: a failed lookup is asked again
        return found

    def _fill(self, new: dict[str, list[str]], then: Iterable[Meeting]) -> None:
        """Round each kind's new values up to whole batches with values of the rows to come."""
        room = {kind: -len(values) % _BATCH for kind, values in new.items() if values}
        taken = {kind: set(values) for kind, values in new.items()}
        for meeting in itertools.islice(then, _FILL_LOOKAHEAD):
            if not any(room.values()):
                return
            for kind in [kind for kind, left in room.items() if left]:
                for value in getattr(meeting, ASSOCIATION_FIELDS[kind]):
                    if room[kind] and value not in taken[kind] and value not in self._asked[kind]:
                        new[kind].append(value)
                        taken[kind].add(value)
                        room[kind] -= 1

    def _new(self, kind: str, groups: Any) -> list[str]:
        asked = self._asked[kind]
        return [value for value in _distinct(groups) if value not in asked]


def _distinct(groups: Any) -> list[str]:
    return list(dict.fromkeys(value for group in groups for value in group))


async def _owners(client: HubSpotClient) -> dict[str, Owner]:
    """Owners by lower-case e-mail; archived ones too, so a row can be told why its owner won't do."""
    active, archived = await asyncio.gather(client.list_owners(), client.list_owners(archived=True))
    owners = {o.email: o for o in archived if o.email}
    owners.update({o.email: o for o in active if o.email})
    return owners


async def _contacts(client: HubSpotClient, emails: list[str]) -> dict[str, str]:
    if not emails:
        return {}
    read = await client.batch_read("contacts", emails, id_property="email", properties=["email"])
    return {str(r.properties.get("email") or "").lower(): r.id for r in read.found}


async def _companies(client: HubSpotClient, domains: list[str]) -> dict[str, list[str]]:
    chunks = [domains[i : i + _IN_VALUES] for i in range(0, len(domains), _IN_VALUES)]
    pages = await asyncio.gather(
        *(
            client.search(
                "companies",
                [{"filters": [{"propertyName": "domain", "operator": "IN", "values": chunk}]}],
                properties=["domain", "name"],
            )
            for chunk in chunks
        )
    )
    companies: dict[str, list[str]] = {}
    for page in pages:
        for record in page:
            domain = str(record.properties.get("domain") or "").lower()
            companies.setdefault(domain, []).append(record.id)
    return companies


async def _existing(
    client: HubSpotClient, object_type: Literal["deals", "tickets"], ids: list[str]
) -> set[str]:
    if not ids:
        return set()
    read = await client.batch_read(object_type, ids)
    return {r.id for r in read.found}


def map_meeting(
    meeting: Meeting,
    directory: Directory,
    *,
    on_missing_association: Literal["fail", "skip"],
    ambiguous_company_domain: Literal["fail", "all"],
    include_invite_description: bool,
) -> Mapped:
    """The create request for `meeting`, or every reason it cannot be made."""
    errors: list[codes.Problem] = []
    notes: list[codes.Problem] = []
    skip = on_missing_association == "skip"

    organizer = _organizer(meeting.owner_email, directory, errors)
    attendee_ids = []
    for email in meeting.attendee_emails:
        owner = directory.owners.get(email)
        if owner is None or owner.archived:
            problem = codes.Problem(codes.ATTENDEE_NOT_AN_OWNER, "attendee_emails", email)
            (notes if skip else errors).append(problem)
        else:
            attendee_ids.append(owner.id)

    associations: list[tuple[str, str]] = []
    for email in meeting.contact_emails:
        _associate("contacts", email, directory.contacts.get(email), skip, associations, errors, notes)
    for domain in meeting.company_domains:
        ids = directory.companies.get(domain, [])
        if len(ids) > 1 and ambiguous_company_domain == "fail":
            params = {"ids": ", ".join(ids)}
            errors.append(
                codes.Problem(codes.MULTIPLE_COMPANIES_WITH_THIS_DOMAIN, "company_domains", domain, params)
            )
            continue
        if not ids:
            _associate("companies", domain, None, skip, associations, errors, notes)
        associations.extend(("companies", company_id) for company_id in ids)
    for deal_id in meeting.deal_ids:
        found = deal_id if deal_id in directory.deals else None
        _associate("deals", deal_id, found, skip, associations, errors, notes)
    for ticket_id in meeting.ticket_ids:
        found = ticket_id if ticket_id in directory.tickets else None
        _associate("tickets", ticket_id, found, skip, associations, errors, notes)

    if errors or organizer is None or organizer.user_id is None:
        return Mapped(None, tuple(errors))
    body = meeting.body_without_ids(include_invite_description)
    body["properties"]["hubspot_owner_id"] = organizer.id
    if attendee_ids:
        # The Scheduler spec types this as an array of owner ids (CRM properties elsewhere use `a;b`).
        body["properties"]["hs_attendee_owner_ids"] = list(dict.fromkeys(attendee_ids))
    body["associations"] = [_association(kind, object_id) for kind, object_id in associations]
    start_ms = round(meeting.start.timestamp() * 1000)
    request = CreateRequest(organizer.user_id, body, organizer.id, start_ms, meeting.title, tuple(notes))
    return Mapped(request)


def crm_input(request: CreateRequest, trace_id: str) -> dict[str, Any]:
    """The input of a CRM batch create (`POST /crm/v3/objects/meetings/batch/create`) that logs the meeting of
    `request` without a calendar event: the same properties as strings (owner ids `;`-joined, as the CRM
    API writes multi-value properties) and the same associations. What only the Scheduler takes (organizer,
    time zone, reminders, invite description) has no place in it."""
    properties = {
        name: ";".join(value) if isinstance(value, list) else str(value)
        for name, value in request.body["properties"].items()
    }
    return {
        "properties": properties,
        "associations": request.body["associations"],
        "objectWriteTraceId": trace_id,
    }


def _organizer(email: str, directory: Directory, errors: list[codes.Problem]) -> Owner | None:
    owner = directory.owners.get(email)
    if owner is None:
        code = codes.COULD_NOT_FIND_OWNER
    elif owner.archived:
        code = codes.ARCHIVED_OWNER
    elif owner.user_id is None:
        code = codes.OWNER_WITHOUT_USER
    else:
        return owner
    errors.append(codes.Problem(code, "owner_email", email))
    return None


# What an association that HubSpot lacks is called, by object type: its column and the complaint.
_MISSING = {
    "contacts": ("contact_emails", N_("contact not found"), codes.ASSOCIATION_RECORD_NOT_FOUND),
    "companies": ("company_domains", N_("company not found for domain"), codes.ASSOCIATION_RECORD_NOT_FOUND),
    "deals": ("deal_ids", N_("deal not found"), codes.UNKNOWN_ASSOCIATION_RECORD_ID),
    "tickets": ("ticket_ids", N_("ticket not found"), codes.UNKNOWN_ASSOCIATION_RECORD_ID),
}


def _associate(
    kind: str,
    value: str,
    object_id: str | None,
    skip: bool,
    associations: list[tuple[str, str]],
    errors: list[codes.Problem],
    notes: list[codes.Problem],
) -> None:
    if object_id is not None:
        associations.append((kind, object_id))
        return
    column, complaint, code = _MISSING[kind]
    what = {"what": codes.Text(complaint)}
    if skip:
        notes.append(codes.Problem(codes.ASSOCIATION_SKIPPED, column, value, what))
    else:
        errors.append(codes.Problem(code, column, value, what))


def _association(kind: str, object_id: str) -> dict[str, Any]:
    return {
        "to": {"id": object_id},
        "types": [
            {"associationCategory": "HUBSPOT_DEFINED", "associationTypeId": ASSOCIATION_TYPE_IDS[kind]}
        ],
    }
