"""The mapper: directory lookups (each distinct value once, in batches) and meetings -> create requests.

Lookups run against a fake client that records its calls, and once end to end through the real
HubSpotClient on httpx.MockTransport to count HTTP calls. Every create body built here is validated against
tests/data/create_meeting.schema.json, with the organizer's userId and owner id checked never to swap.
"""

from __future__ import annotations

import asyncio
import json
import math
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Literal, cast

import httpx
import pytest
from hypothesis import given
from hypothesis import strategies as st
from jsonschema import Draft202012Validator

from importer.hubspot import BatchRead, HubSpotClient, ObjectType, Owner, Record
from importer.mapper import (
    ASSOCIATION_TYPE_IDS,
    CreateRequest,
    Directory,
    Lookups,
    Mapped,
    crm_input,
    map_meeting,
)
from importer.models import Meeting, Reminder, TimeUnit
from importer.problems import describe, rendered

TYPE_IDS = {"contacts": 200, "companies": 188, "deals": 212, "tickets": 226}
"""HUBSPOT_DEFINED meeting -> object association type ids (HubSpot's AssociationTypes enum)."""
SCHEMA = Draft202012Validator(
    json.loads((Path(__file__).parent / "data" / "create_meeting.schema.json").read_text())
)
START = datetime(2026, 12, 1, 10, 0, tzinfo=UTC)
START_MS = 1_796_119_200_000

EMMA = Owner("8100002", 4242001, "emma.wilson@example.com", first_name="Emma")
LIAM = Owner("8100006", 4242006, "liam.brown@example.com")
OLIVIA = Owner("8100007", 4242007, "olivia.old@example.com", archived=True)
NOAH = Owner("8100009", None, "noah.nouser@example.com")
AVA_ARCHIVED = Owner("8100001", 4242000, "ava.back@example.com", archived=True)
AVA = Owner("8100011", 4242011, "ava.back@example.com")
ACTIVE = [EMMA, LIAM, NOAH, AVA]
ARCHIVED = [OLIVIA, AVA_ARCHIVED]

CONTACTS = {"a@b.com": "501", "mixed.case@northwind.com": "502"}
COMPANIES = [
    ("601", "northwind.com"),
    ("602", "contoso.com"),
    ("603", "contoso.com"),
    ("604", "fabrikam.com"),
]
DEALS = {"701", "702"}
TICKETS = {"801"}

DIRECTORY = Directory(
    owners={o.email: o for o in [*ARCHIVED, *ACTIVE]},
    contacts=dict(CONTACTS),
    companies={"northwind.com": ["601"], "contoso.com": ["602", "603"], "fabrikam.com": ["604"]},
    deals=set(DEALS),
    tickets=set(TICKETS),
)

BASE: dict[str, Any] = {
    "title": "Quarterly business review",
    "start": START,
    "end": START + timedelta(hours=1),
    "timezone": "America/New_York",
    "owner_email": EMMA.email,
}


def meeting(**changes: Any) -> Meeting:
    return Meeting.model_validate({**BASE, **changes})


def mapped(
    m: Meeting,
    *,
    missing: Literal["fail", "skip"] = "fail",
    ambiguous: Literal["fail", "all"] = "fail",
    invite: bool = False,
    directory: Directory = DIRECTORY,
) -> Mapped:
    return map_meeting(
        m,
        directory,
        on_missing_association=missing,
        ambiguous_company_domain=ambiguous,
        include_invite_description=invite,
    )


def request_of(result: Mapped) -> CreateRequest:
    assert result.problems == ()
    assert result.request is not None
    return result.request


def refused(result: Mapped) -> tuple[str | None, str | None]:
    """A row the mapper fails: its `error` and `error_code` cells."""
    assert result.request is None
    return describe(result.problems)


def notes(request: CreateRequest) -> tuple[str, ...]:
    return tuple(message for message, _ in rendered(request.notes))


def assoc(kind: str, object_id: str) -> dict[str, Any]:
    return {
        "to": {"id": object_id},
        "types": [{"associationCategory": "HUBSPOT_DEFINED", "associationTypeId": TYPE_IDS[kind]}],
    }


def check_request(request: CreateRequest, owners: Iterable[Owner] = ACTIVE) -> None:
    """Valid against the schema; organizerUserId is the owner's userId, hubspot_owner_id its id."""
    assert list(SCHEMA.iter_errors(request.body)) == []
    owner_id = request.body["properties"]["hubspot_owner_id"]
    (owner,) = [o for o in owners if o.id == owner_id]
    assert type(request.organizer_user_id) is int
    assert request.organizer_user_id == owner.user_id
    assert request.owner_id == owner.id
    assert request.organizer_user_id != int(owner.id)


# --- a fake client: records every call ---


class FakeClient:
    """The three lookups of HubSpotClient over in-memory data, recording each call."""

    def __init__(self, companies: Sequence[tuple[str, str]] = COMPANIES) -> None:
        self.companies = companies
        self.calls: list[tuple[Any, ...]] = []

    async def list_owners(self, *, archived: bool = False) -> list[Owner]:
        self.calls.append(("owners", archived))
        return list(ARCHIVED if archived else ACTIVE)

    async def batch_read(
        self,
        object_type: ObjectType,
        ids: Iterable[str],
        *,
        id_property: str | None = None,
        properties: Iterable[str] = (),
    ) -> BatchRead:
        ids = list(ids)
        self.calls.append(("batch_read", object_type, ids, id_property, list(properties)))
        if object_type == "contacts":
            # HubSpot stores the address as typed: the mapper must compare it lower-cased.
            known = {email.lower(): (email, cid) for email, cid in CONTACTS.items()}
            found = [Record(known[i][1], {"email": known[i][0].upper()}) for i in ids if i in known]
            return BatchRead(found, [i for i in ids if i not in known])
        existing = DEALS if object_type == "deals" else TICKETS
        return BatchRead([Record(i, {}) for i in ids if i in existing], [i for i in ids if i not in existing])

    async def search(
        self,
        object_type: ObjectType,
        filter_groups: list[dict[str, Any]],
        *,
        properties: Iterable[str] = (),
        limit: int = 200,
    ) -> list[Record]:
        self.calls.append(("search", object_type, filter_groups, list(properties)))
        (group,) = filter_groups
        (only,) = group["filters"]
        values = set(only["values"])
        return [Record(cid, {"domain": domain.upper()}) for cid, domain in self.companies if domain in values]

    def of(self, kind: str, object_type: str | None = None) -> list[tuple[Any, ...]]:
        return [c for c in self.calls if c[0] == kind and (object_type is None or c[1] == object_type)]


def directory_from(fake: FakeClient, meetings: Sequence[Meeting]) -> Directory:
    return asyncio.run(Lookups(cast(HubSpotClient, fake)).directory_for(meetings))


# --- Lookups: the directory grown chunk by chunk ---


def test_chunks_ask_only_for_values_no_earlier_chunk_asked_and_fill_whole_batches() -> None:
    fake = FakeClient()
    emails = [f"p{i:03d}@x.com" for i in range(250)]
    rows = [meeting(contact_emails=(email,)) for email in emails]
    lookups = Lookups(cast(HubSpotClient, fake))

    async def main() -> None:
        await lookups.directory_for(rows[:30], iter(rows[30:]))  # 30 of its own, 70 of the rows to come
        await lookups.directory_for(rows[30:120], iter(rows[120:]))  # 20 left of its own, 80 to come
        await lookups.directory_for(rows[120:], iter(()))

    asyncio.run(main())

    reads = [call[2] for call in fake.of("batch_read", "contacts")]
    assert [len(ids) for ids in reads] == [100, 100, 50]
    assert reads[0][:30] == emails[:30]  # a chunk's own values first
    assert sorted(i for ids in reads for i in ids) == emails  # each once
    assert len(fake.of("owners")) == 2  # active and archived, on the first chunk only


def test_a_chunk_whose_values_are_known_asks_nothing() -> None:
    fake = FakeClient()
    rows = [meeting(contact_emails=("a@b.com",), deal_ids=("701",)) for _ in range(5)]
    lookups = Lookups(cast(HubSpotClient, fake))

    async def main() -> Directory:
        await lookups.directory_for(rows[:2])
        calls = len(fake.calls)
        directory = await lookups.directory_for(rows[2:])
        assert len(fake.calls) == calls
        return directory

    assert asyncio.run(main()).contacts == {"a@b.com": "501"}


# --- one pass of lookups ---


def test_each_distinct_value_is_looked_up_once() -> None:
    fake = FakeClient()
    meetings = [
        meeting(contact_emails=("a@b.com", "x@y.com"), company_domains=("contoso.com",), deal_ids=("701",)),
        meeting(contact_emails=("x@y.com", "a@b.com"), company_domains=("contoso.com", "northwind.com")),
        meeting(deal_ids=("701", "799"), ticket_ids=("801",)),
        meeting(ticket_ids=("801", "802"), contact_emails=("a@b.com",)),
    ]
    directory_from(fake, meetings)
    assert sorted(fake.of("owners")) == [("owners", False), ("owners", True)]
    assert fake.of("batch_read", "contacts") == [
        ("batch_read", "contacts", ["a@b.com", "x@y.com"], "email", ["email"])
    ]
    filters = [
        {
            "filters": [
                {"propertyName": "domain", "operator": "IN", "values": ["contoso.com", "northwind.com"]}
            ]
        }
    ]
    assert fake.of("search") == [("search", "companies", filters, ["domain", "name"])]
    assert fake.of("batch_read", "deals") == [("batch_read", "deals", ["701", "799"], None, [])]
    assert fake.of("batch_read", "tickets") == [("batch_read", "tickets", ["801", "802"], None, [])]
    assert len(fake.calls) == 6


def test_no_lookup_for_what_no_meeting_names() -> None:
    fake = FakeClient()
    directory = directory_from(fake, [meeting(), meeting(title="Another")])
    assert sorted(fake.calls) == [("owners", False), ("owners", True)]
    assert (directory.contacts, directory.companies, directory.deals, directory.tickets) == (
        {},
        {},
        set(),
        set(),
    )


def test_company_search_uses_in_filters_of_at_most_100_values() -> None:
    domains = [f"company{n}.com" for n in range(250)]
    fake = FakeClient(companies=[(str(1000 + n), d) for n, d in enumerate(domains)])
    meetings = [meeting(company_domains=tuple(domains[i : i + 5])) for i in range(0, 250, 5)]
    directory = directory_from(fake, meetings)
    searches = fake.of("search")
    values = [call[2][0]["filters"][0]["values"] for call in searches]
    assert [len(v) for v in values] == [100, 100, 50]
    assert [v for chunk in values for v in chunk] == domains
    assert {call[2][0]["filters"][0]["operator"] for call in searches} == {"IN"}
    assert directory.companies["company249.com"] == ["1249"]


def test_directory_contents() -> None:
    fake = FakeClient()
    meetings = [
        meeting(
            contact_emails=("a@b.com", "mixed.case@northwind.com", "nobody@x.com"),
            company_domains=("contoso.com", "fabrikam.com", "unknown.com"),
            deal_ids=("701", "799"),
            ticket_ids=("801", "899"),
        )
    ]
    directory = directory_from(fake, meetings)
    assert directory.owners == {
        "emma.wilson@example.com": EMMA,
        "liam.brown@example.com": LIAM,
        "noah.nouser@example.com": NOAH,
        "olivia.old@example.com": OLIVIA,
        "ava.back@example.com": AVA,  # active wins over an archived owner with the same e-mail
    }
    assert directory.contacts == {"a@b.com": "501", "mixed.case@northwind.com": "502"}
    assert directory.companies == {"contoso.com": ["602", "603"], "fabrikam.com": ["604"]}
    assert (directory.deals, directory.tickets) == ({"701"}, {"801"})


# --- map_meeting: owners ---


def test_a_complete_meeting_maps_to_its_create_request() -> None:
    m = meeting(
        attendee_emails=(LIAM.email, NOAH.email),
        contact_emails=("a@b.com", "mixed.case@northwind.com"),
        company_domains=("northwind.com",),
        deal_ids=("701",),
        ticket_ids=("801",),
        reminders=(Reminder(1, TimeUnit.DAYS), Reminder(30, TimeUnit.MINUTES)),
    )
    request = request_of(mapped(m))
    assert (request.organizer_user_id, request.owner_id, request.start_ms, request.title, request.notes) == (
        4242001,
        "8100002",
        START_MS,
        "Quarterly business review",
        (),
    )
    assert request.body == {
        "properties": {
            "hs_meeting_title": "Quarterly business review",
            "hs_meeting_start_time": "2026-12-01T10:00:00Z",
            "hs_meeting_end_time": "2026-12-01T11:00:00Z",
            "hs_timestamp": "2026-12-01T10:00:00Z",
            "hs_meeting_outcome": "SCHEDULED",
            "hubspot_owner_id": "8100002",
            "hs_attendee_owner_ids": ["8100006", "8100009"],
        },
        "timezone": "America/New_York",
        "emailReminderSchedule": {
            "reminders": [
                {"numberOfTimeUnits": 1, "timeUnit": "DAYS"},
                {"numberOfTimeUnits": 30, "timeUnit": "MINUTES"},
            ],
            "shouldIncludeInviteDescription": False,
        },
        "associations": [
            assoc("contacts", "501"),
            assoc("contacts", "502"),
            assoc("companies", "601"),
            assoc("deals", "701"),
            assoc("tickets", "801"),
        ],
    }
    check_request(request)


def test_a_logged_meeting_carries_the_same_properties_and_associations_as_strings() -> None:
    m = meeting(
        attendee_emails=(LIAM.email, NOAH.email),
        contact_emails=("a@b.com",),
        deal_ids=("701",),
        location="Room 4",
        location_type="ADDRESS",
        body="Agenda",
        internal_notes="Bring the figures",
        outcome="COMPLETED",
        reminders=(Reminder(1, TimeUnit.DAYS),),
    )
    request = request_of(mapped(m, invite=True))
    assert crm_input(request, "row-key-1") == {
        "properties": {
            "hs_meeting_title": "Quarterly business review",
            "hs_meeting_start_time": "2026-12-01T10:00:00Z",
            "hs_meeting_end_time": "2026-12-01T11:00:00Z",
            "hs_timestamp": "2026-12-01T10:00:00Z",
            "hs_meeting_outcome": "COMPLETED",
            "hs_meeting_body": "Agenda",
            "hs_meeting_location": "Room 4",
            "hs_meeting_location_type": "ADDRESS",
            "hs_internal_meeting_notes": "Bring the figures",
            "hubspot_owner_id": "8100002",
            "hs_attendee_owner_ids": "8100006;8100009",
        },
        "associations": [assoc("contacts", "501"), assoc("deals", "701")],
        "objectWriteTraceId": "row-key-1",
    }


def test_a_logged_meeting_sends_no_organizer_time_zone_or_reminders() -> None:
    request = request_of(mapped(meeting(reminders=(Reminder(30, TimeUnit.MINUTES),))))
    logged = crm_input(request, "k")
    assert set(logged) == {"properties", "associations", "objectWriteTraceId"}
    assert all(type(value) is str for value in logged["properties"].values())
    assert "hs_attendee_owner_ids" not in logged["properties"]
    assert request.body["properties"]["hubspot_owner_id"] == "8100002"  # the request itself is untouched


def test_association_type_ids_are_hubspots_meeting_ids() -> None:
    assert ASSOCIATION_TYPE_IDS == TYPE_IDS


@pytest.mark.parametrize(
    ("owner_email", "error", "code"),
    [
        (
            "nobody@example.com",
            "owner not found: no HubSpot owner has the e-mail nobody@example.com",
            "COULD_NOT_FIND_OWNER",
        ),
        ("olivia.old@example.com", "owner is archived in HubSpot: olivia.old@example.com", "ARCHIVED_OWNER"),
        (
            "noah.nouser@example.com",
            "owner has no HubSpot user (deactivated?) and cannot organise meetings: noah.nouser@example.com",
            "OWNER_WITHOUT_USER",
        ),
    ],
)
def test_an_owner_who_cannot_organise_fails_the_row(owner_email: str, error: str, code: str) -> None:
    for missing in ("fail", "skip"):
        assert refused(mapped(meeting(owner_email=owner_email), missing=missing)) == (error, code)


def test_an_owner_active_and_archived_under_one_email_is_the_active_one() -> None:
    request = request_of(mapped(meeting(owner_email="ava.back@example.com")))
    assert (request.organizer_user_id, request.body["properties"]["hubspot_owner_id"]) == (4242011, "8100011")


def test_attendee_owner_ids_are_an_array_of_owner_ids_once_each_in_order() -> None:
    """BUG: the Scheduler spec types hs_attendee_owner_ids as an array of strings; the mapper sends the
    CRM's ';'-joined string, which this endpoint does not declare. Fix: send list(dict.fromkeys(ids))."""
    m = meeting(attendee_emails=(LIAM.email, EMMA.email, LIAM.email))
    request = request_of(mapped(m))
    assert request.body["properties"]["hs_attendee_owner_ids"] == ["8100006", "8100002"]
    check_request(request)


def test_no_attendees_no_attendee_property() -> None:
    assert "hs_attendee_owner_ids" not in request_of(mapped(meeting())).body["properties"]


def test_attendees_who_are_not_active_owners() -> None:
    m = meeting(attendee_emails=("stranger@example.com", OLIVIA.email, LIAM.email))
    assert refused(mapped(m)) == (
        "attendee is not an active HubSpot owner: stranger@example.com; "
        "attendee is not an active HubSpot owner: olivia.old@example.com",
        "ATTENDEE_NOT_AN_OWNER;ATTENDEE_NOT_AN_OWNER",
    )
    request = request_of(mapped(m, missing="skip"))
    assert request.body["properties"]["hs_attendee_owner_ids"] == ["8100006"]
    assert notes(request) == (
        "attendee is not an active HubSpot owner: stranger@example.com",
        "attendee is not an active HubSpot owner: olivia.old@example.com",
    )


# --- map_meeting: associations ---


@pytest.mark.parametrize(
    ("change", "error", "code"),
    [
        (
            {"contact_emails": ("nobody@x.com",)},
            "contact not found: nobody@x.com",
            "ASSOCIATION_RECORD_NOT_FOUND",
        ),
        (
            {"company_domains": ("unknown.com",)},
            "company not found for domain: unknown.com",
            "ASSOCIATION_RECORD_NOT_FOUND",
        ),
        ({"deal_ids": ("799",)}, "deal not found: 799", "UNKNOWN_ASSOCIATION_RECORD_ID"),
        ({"ticket_ids": ("899",)}, "ticket not found: 899", "UNKNOWN_ASSOCIATION_RECORD_ID"),
    ],
)
def test_a_missing_association_fails_the_row(change: dict[str, Any], error: str, code: str) -> None:
    assert refused(mapped(meeting(**change))) == (error, code)


def test_every_reason_is_given_in_order() -> None:
    m = meeting(
        owner_email="nobody@example.com",
        attendee_emails=("stranger@example.com",),
        contact_emails=("a@b.com", "nobody@x.com"),
        company_domains=("unknown.com", "contoso.com"),
        deal_ids=("799",),
        ticket_ids=("899", "801"),
    )
    assert refused(mapped(m)) == (
        "owner not found: no HubSpot owner has the e-mail nobody@example.com; "
        "attendee is not an active HubSpot owner: stranger@example.com; "
        "contact not found: nobody@x.com; "
        "company not found for domain: unknown.com; "
        "company domain is ambiguous: contoso.com belongs to companies 602, 603; "
        "deal not found: 799; "
        "ticket not found: 899",
        "COULD_NOT_FIND_OWNER;ATTENDEE_NOT_AN_OWNER;ASSOCIATION_RECORD_NOT_FOUND;ASSOCIATION_RECORD_NOT_FOUND;"
        "MULTIPLE_COMPANIES_WITH_THIS_DOMAIN;UNKNOWN_ASSOCIATION_RECORD_ID;UNKNOWN_ASSOCIATION_RECORD_ID",
    )


def test_skip_leaves_missing_associations_out_and_names_them() -> None:
    m = meeting(
        contact_emails=("nobody@x.com", "a@b.com"),
        company_domains=("unknown.com", "northwind.com"),
        deal_ids=("799", "702"),
        ticket_ids=("899",),
    )
    request = request_of(mapped(m, missing="skip"))
    assert request.body["associations"] == [
        assoc("contacts", "501"),
        assoc("companies", "601"),
        assoc("deals", "702"),
    ]
    assert notes(request) == (
        "contact not found (association skipped): nobody@x.com",
        "company not found for domain (association skipped): unknown.com",
        "deal not found (association skipped): 799",
        "ticket not found (association skipped): 899",
    )
    check_request(request)


def test_skip_with_nothing_found_sends_no_associations() -> None:
    m = meeting(contact_emails=("nobody@x.com",), ticket_ids=("899",))
    request = request_of(mapped(m, missing="skip"))
    assert request.body["associations"] == []
    assert notes(request) == (
        "contact not found (association skipped): nobody@x.com",
        "ticket not found (association skipped): 899",
    )
    check_request(request)


def test_two_companies_on_one_domain_is_ambiguous() -> None:
    expected = (
        "company domain is ambiguous: contoso.com belongs to companies 602, 603",
        "MULTIPLE_COMPANIES_WITH_THIS_DOMAIN",
    )
    assert refused(mapped(meeting(company_domains=("contoso.com",)))) == expected
    # Skipping covers what is missing, not what is ambiguous.
    assert refused(mapped(meeting(company_domains=("contoso.com",)), missing="skip")) == expected


def test_ambiguous_all_associates_every_company_of_the_domain() -> None:
    request = request_of(mapped(meeting(company_domains=("contoso.com", "fabrikam.com")), ambiguous="all"))
    assert request.body["associations"] == [
        assoc("companies", "602"),
        assoc("companies", "603"),
        assoc("companies", "604"),
    ]
    check_request(request)


def test_invite_description_setting_reaches_the_body() -> None:
    body = request_of(mapped(meeting(), invite=True)).body
    assert body["emailReminderSchedule"] == {"reminders": [], "shouldIncludeInviteDescription": True}


# --- every body against the schema ---


def _meetings_for_schema() -> list[tuple[Meeting, Literal["fail", "skip"], Literal["fail", "all"]]]:
    everything = meeting(
        title='見積もりレビュー — Q4 "final"',
        start=datetime(2027, 3, 14, 1, 30, 15, 250_000, tzinfo=UTC),
        end=datetime(2027, 3, 14, 2, 0, tzinfo=UTC),
        timezone="Asia/Tokyo",
        owner_email=LIAM.email,
        attendee_emails=(EMMA.email, NOAH.email),
        contact_emails=("a@b.com", "mixed.case@northwind.com"),
        company_domains=("northwind.com", "contoso.com"),
        deal_ids=("701", "702"),
        ticket_ids=("801",),
        location="Room 4F\nBuilding B",
        location_type="ADDRESS",
        body="Agenda:\n1. numbers",
        internal_notes="bring the Q3 deck",
        outcome="COMPLETED",
        reminders=(Reminder(1, TimeUnit.WEEKS), Reminder(2, TimeUnit.HOURS)),
    )
    skipped = meeting(
        contact_emails=("nobody@x.com",),
        company_domains=("unknown.com",),
        deal_ids=("799",),
        ticket_ids=("899",),
        attendee_emails=("stranger@example.com",),
        location_type="PHONE",
        timezone="UTC",
    )
    return [
        (meeting(), "fail", "fail"),
        (everything, "fail", "all"),
        (everything.model_copy(update={"outcome": "NO_SHOW", "location_type": "CUSTOM"}), "skip", "all"),
        (skipped, "skip", "fail"),
        (meeting(timezone="America/Argentina/Buenos_Aires", outcome="CANCELED"), "fail", "fail"),
    ]


@pytest.mark.parametrize(("m", "missing", "ambiguous"), _meetings_for_schema())
def test_mapped_bodies_match_the_schema(
    m: Meeting, missing: Literal["fail", "skip"], ambiguous: Literal["fail", "all"]
) -> None:
    request = request_of(mapped(m, missing=missing, ambiguous=ambiguous))
    check_request(request)
    properties = request.body["properties"]
    assert properties["hs_timestamp"] == properties["hs_meeting_start_time"]
    assert request.start_ms == round(m.start.timestamp() * 1000)


@given(
    owner=st.sampled_from([EMMA, LIAM, AVA]),
    attendees=st.lists(st.sampled_from([EMMA, LIAM, NOAH, AVA]), max_size=4),
    contacts=st.lists(st.sampled_from(["a@b.com", "mixed.case@northwind.com", "nobody@x.com"]), max_size=3),
    domains=st.lists(
        st.sampled_from(["northwind.com", "contoso.com", "fabrikam.com", "unknown.com"]), max_size=3
    ),
    deals=st.lists(st.sampled_from(["701", "702", "799"]), max_size=3),
    tickets=st.lists(st.sampled_from(["801", "899"]), max_size=2),
    start=st.datetimes(datetime(2001, 1, 1), datetime(2099, 1, 1), timezones=st.just(UTC)),
    minutes=st.integers(1, 60 * 24 * 31),
    text=st.one_of(st.none(), st.text(min_size=1, max_size=40)),
    location_type=st.sampled_from([None, "ADDRESS", "CUSTOM", "PHONE"]),
    outcome=st.sampled_from(["SCHEDULED", "COMPLETED", "RESCHEDULED", "NO_SHOW", "CANCELED"]),
    reminders=st.lists(
        st.builds(Reminder, st.integers(1, 9999), st.sampled_from(list(TimeUnit))), max_size=3
    ),
    ambiguous=st.sampled_from(["fail", "all"]),
    invite=st.booleans(),
)
def test_every_mapped_body_matches_the_schema(
    owner: Owner,
    attendees: list[Owner],
    contacts: list[str],
    domains: list[str],
    deals: list[str],
    tickets: list[str],
    start: datetime,
    minutes: int,
    text: str | None,
    location_type: str | None,
    outcome: str,
    reminders: list[Reminder],
    ambiguous: Literal["fail", "all"],
    invite: bool,
) -> None:
    m = meeting(
        owner_email=owner.email,
        attendee_emails=tuple(dict.fromkeys(a.email for a in attendees)),
        contact_emails=tuple(dict.fromkeys(contacts)),
        company_domains=tuple(dict.fromkeys(domains)),
        deal_ids=tuple(dict.fromkeys(deals)),
        ticket_ids=tuple(dict.fromkeys(tickets)),
        start=start,
        end=start + timedelta(minutes=minutes),
        location=text,
        body=text,
        internal_notes=text,
        location_type=location_type,
        outcome=outcome,
        reminders=tuple(dict.fromkeys(reminders)),
    )
    result = mapped(m, missing="skip", ambiguous=ambiguous, invite=invite)
    if ambiguous == "fail" and "contoso.com" in domains:
        assert result.request is None
        return
    check_request(request_of(result))


# --- end to end over HTTP: how many calls the lookups take ---


class HubSpotData:
    """Answers owners, batch reads and company searches like HubSpot, counting calls per path."""

    def __init__(self, contacts: dict[str, str], companies: dict[str, str]) -> None:
        self.contacts = contacts  # e-mail as HubSpot stores it -> id
        self.companies = companies  # id -> domain
        self.requests: list[httpx.Request] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        path = request.url.path
        if path == "/crm/v3/owners":
            archived = request.url.params["archived"] == "true"
            owners = ARCHIVED if archived else ACTIVE
            results = [
                {
                    "id": o.id,
                    "userId": o.user_id,
                    "email": o.email.upper() if o is EMMA else o.email,
                    "archived": archived,
                }
                for o in owners
            ]
            return httpx.Response(200, json={"results": results})
        body = json.loads(request.content)
        if path == "/crm/v3/objects/companies/search":
            values = set(body["filterGroups"][0]["filters"][0]["values"])
            found = [{"id": i, "properties": {"domain": d}} for i, d in self.companies.items() if d in values]
            return httpx.Response(200, json={"total": len(found), "results": found})
        object_type = path.split("/")[4]
        inputs = [item["id"] for item in body["inputs"]]
        if object_type == "contacts":
            known = {email.lower(): (email, cid) for email, cid in self.contacts.items()}
            hits: dict[str, Any] = {
                i: {"id": known[i][1], "properties": {"email": known[i][0]}} for i in inputs if i in known
            }
        else:
            existing = DEALS if object_type == "deals" else TICKETS
            hits = {i: {"id": i, "properties": {}} for i in inputs if i in existing}
        missing = [i for i in inputs if i not in hits]
        answer: dict[str, Any] = {"status": "COMPLETE", "results": list(hits.values())}
        if not missing:
            return httpx.Response(200, json=answer)
        error = {
            "status": "error",
            "category": "OBJECT_NOT_FOUND",
            "message": "m",
            "context": {"ids": missing},
        }
        return httpx.Response(207, json={**answer, "numErrors": 1, "errors": [error]})

    def calls(self, path: str) -> list[Any]:
        return [json.loads(r.content) for r in self.requests if r.url.path == path]


def test_lookups_over_http_take_one_call_per_100_distinct_values() -> None:
    emails = [f"contact{n}@example.com" for n in range(237)]
    domains = [f"company{n}.com" for n in range(130)]
    stored = {e.upper() if n % 7 == 0 else e: str(5000 + n) for n, e in enumerate(emails) if n % 50 != 1}
    data = HubSpotData(stored, {str(6000 + n): d for n, d in enumerate(domains)})
    owners = [EMMA, LIAM, AVA]
    meetings = [
        meeting(
            title=f"Meeting {i}",
            owner_email=owners[i % 3].email,
            attendee_emails=(LIAM.email,),
            contact_emails=tuple(dict.fromkeys(emails[(3 * i + j) % 237] for j in range(3))),
            company_domains=(domains[i % 130], domains[(i + 7) % 130]),
            deal_ids=("701", "702", "799")[: i % 4],
            ticket_ids=("801",),
        )
        for i in range(150)
    ]

    async def main() -> Directory:
        async with HubSpotClient(
            "https://api.hubapi.test", "pat-token", transport=httpx.MockTransport(data)
        ) as c:
            return await Lookups(c).directory_for(meetings)

    directory = asyncio.run(main())

    contact_calls = data.calls("/crm/v3/objects/contacts/batch/read")
    assert len(contact_calls) == math.ceil(237 / 100)
    read = [item["id"] for call in contact_calls for item in call["inputs"]]
    assert sorted(read) == sorted(emails)  # every distinct e-mail once, none twice
    searches = data.calls("/crm/v3/objects/companies/search")
    assert len(searches) == math.ceil(130 / 100)
    searched = [v for s in searches for v in s["filterGroups"][0]["filters"][0]["values"]]
    assert sorted(searched) == sorted(domains)
    assert len(data.calls("/crm/v3/objects/deals/batch/read")) == 1
    assert len(data.calls("/crm/v3/objects/tickets/batch/read")) == 1
    assert len([r for r in data.requests if r.url.path == "/crm/v3/owners"]) == 2
    assert len(data.requests) == 3 + 2 + 1 + 1 + 2

    # Owners match case-insensitively (HubSpot sent EMMA's address upper-cased), and so do contacts.
    emma = directory.owners[EMMA.email]
    assert (emma.id, emma.user_id, emma.email) == (EMMA.id, EMMA.user_id, EMMA.email)
    assert directory.contacts["contact7@example.com"] == "5007"
    assert "contact51@example.com" not in directory.contacts

    for m in meetings:
        request = request_of(mapped(m, missing="skip", directory=directory))
        check_request(request)
        contacts = [c for c in m.contact_emails if c in directory.contacts]
        assert request.body["associations"] == [
            *(assoc("contacts", directory.contacts[c]) for c in contacts),
            *(assoc("companies", directory.companies[d][0]) for d in m.company_domains),
            *(assoc("deals", d) for d in m.deal_ids if d in DEALS),
            assoc("tickets", "801"),
        ]
        assert len(request.notes) == len(m.contact_emails) - len(contacts) + m.deal_ids.count("799")
