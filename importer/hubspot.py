"""HubSpot client: owners, batch reads, search, the calendar-meeting create and the CRM batch create (meetings
logged without a calendar event), with httpx's requests and answers: on the lean transport of importer.wire
when no proxy is set, else through an httpx.AsyncClient (a test's transport too).

It knows HTTP and HubSpot's answers, nothing about spreadsheets, rows or the ledger. Every answer's
`X-HubSpot-RateLimit-*` headers go to the gate; every failure becomes one of these types, translated in
one place (`_send`):

    HubSpotError
    ├── ApiError                HubSpot answered with an error status (status, category, correlation id)
    │   ├── RateLimited         429 for the rolling window or the search limit: wait, then retry
    │   ├── DailyLimitReached   429 for the daily cap: stop sending until it resets
    │   ├── Unavailable         HubSpot is struggling, or answered what is not JSON; retry with backoff
    │   │   ├── TryLater        423, 477: HubSpot did not take the request now
    │   │   └── ServerError     5xx: HubSpot failed, maybe after doing the work (a gateway timed out)
    │   ├── AuthFailed          401 or 403: the token or its scopes are wrong; stop the run
    │   └── Rejected            any other 4xx: this request is wrong; retrying cannot help
    │       └── TooManyResults  a search matched more than HubSpot pages through (10,000)
    └── NoAnswer                no complete answer came back
        ├── NotSent             the connection never carried the request: safe to send again
        └── OutcomeUnknown      sent, answer lost: a create may or may not have happened
            └── CreatedWithoutId  a 2xx naming no meeting: it was created, its id is unknown

Reads (owners, batch read, search) change nothing, so the client retries them on every transient error,
dropped connections included. A create, single or batch, is tried exactly once: whether to try it again is
the sender's decision, because HubSpot has no idempotency key.
"""

from __future__ import annotations

import asyncio
import functools
import json
import logging
import random
import urllib.request
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Mapping, Sequence
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol, TypeVar

import httpx

from importer.wire import LeanTransport

log = logging.getLogger(__name__)
CREATE_MEETING_PATH = "/scheduler/2026-03/meetings/calendar"
MEETINGS_PATH = "/crm/v3/objects/meetings"
BATCH_CREATE_PATH = "/crm/v3/objects/meetings/batch/create"
BATCH_CREATE_LIMIT = 100  # HubSpot's maximum inputs per batch create
ACCOUNT_DETAILS_PATH = "/account-info/v3/details"
BATCH_LIMIT = 100  # HubSpot's maximum inputs per batch read
SEARCH_PAGE_LIMIT = 200  # HubSpot's maximum search page size
SEARCH_RESULT_LIMIT = 10_000  # HubSpot pages through at most this many results of one search
OWNERS_PAGE_LIMIT = 500
ObjectType = Literal["contacts", "companies", "deals", "tickets", "meetings"]
Kind = Literal["api", "search"]
T = TypeVar("T")


class HubSpotError(Exception):
    """Base of everything the client raises."""

    attempts = 1  # the requests that ended so: `retrying` counts its own


class ApiError(HubSpotError):
    """HubSpot answered with an error status; its JSON (every field optional) is kept."""

    def __init__(
        self,
        status: int,
        message: str,
        *,
        category: str | None = None,
        correlation_id: str | None = None,
        policy_name: str | None = None,
        retry_after: float | None = None,
        details: tuple[str, ...] = (),
    ) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.category = category
        self.correlation_id = correlation_id
        self.policy_name = policy_name
        self.retry_after = retry_after
        self.details = details

    def __str__(self) -> str:
        parts = [f"HubSpot {self.status}"]
        if self.category:
            parts.append(self.category)
        text = " ".join(parts) + f": {self.message}"
        if self.details:
            text += " (" + "; ".join(self.details) + ")"
        return text


class RateLimited(ApiError):
    """429 for the rolling 10-second window (TEN_SECONDLY_ROLLING) or the search limit (SECONDLY)."""


class DailyLimitReached(ApiError):
    """429 with policyName DAILY: nothing more can be sent until the account's day resets."""


class Unavailable(ApiError):
    """423 (locked, wait at least 2 s), 477 (migration, honour Retry-After), or a 5xx: retry later."""


class TryLater(Unavailable):
    """423 (locked) or 477 (migration in progress): HubSpot turned the request away without doing it."""


class ServerError(Unavailable):
    """5xx: HubSpot failed, possibly after doing the work (a gateway that timed out after the commit)."""


class AuthFailed(ApiError):
    """401 or 403: the token is wrong, expired, or lacks a scope. No request can succeed."""


class Rejected(ApiError):
    """Any other 4xx (400 validation, 404, 409): this request is wrong and will stay wrong."""


class TooManyResults(Rejected):
    """A search matched more results than HubSpot pages through: narrow it and search again."""


class NoAnswer(HubSpotError):
    """No complete answer: the request may or may not have reached HubSpot (see the subclasses)."""


class NotSent(NoAnswer):
    """The connection failed before the request went out (refused, connect timeout, pool full)."""


class OutcomeUnknown(NoAnswer):
    """The request went out but its answer was lost (read timeout, reset, dropped connection)."""


class CreatedWithoutId(OutcomeUnknown):
    """HubSpot answered 2xx to a create but named no meeting: it exists, we only do not know its id."""


@dataclass(frozen=True, slots=True)
class RateLimitInfo:
    """HubSpot's `X-HubSpot-RateLimit-*` headers of one answer; None where a header was absent."""

    max: int | None = None
    remaining: int | None = None
    interval_ms: int | None = None
    daily: int | None = None
    daily_remaining: int | None = None

    @classmethod
    def from_headers(cls, headers: Mapping[str, str]) -> RateLimitInfo:
        def number(name: str) -> int | None:
            value = headers.get(f"x-hubspot-ratelimit-{name}")
            try:
                return int(value) if value is not None else None
            except ValueError:
                return None

        return cls(
            number("max"),
            number("remaining"),
            number("interval-milliseconds"),
            number("daily"),
            number("daily-remaining"),
        )


class Gate(Protocol):
    """Paces requests: entered around every request, told every answer's rate-limit headers."""

    def slot(self, kind: Kind) -> AbstractAsyncContextManager[Any]:
        """Held while one request of `kind` is in flight; yields a ticket, given back to `observe`."""

    def observe(self, kind: Kind, info: RateLimitInfo, ticket: Any) -> None:
        """Learn from the headers of the answer to the request that held `ticket` (HubSpot counted it
        when it arrived: the gate knows when it let it through)."""

    def back_off(self, kind: Kind, seconds: float) -> None:
        """Hold every request of `kind` for `seconds` (after a 429 for a window)."""


class OpenGate:
    """A gate that never waits: for tests of the client alone."""

    @asynccontextmanager
    async def slot(self, kind: Kind) -> AsyncIterator[None]:
        yield

    def observe(self, kind: Kind, info: RateLimitInfo, ticket: Any) -> None:
        pass

    def back_off(self, kind: Kind, seconds: float) -> None:
        pass


@dataclass(frozen=True)
class RetryPolicy:
    """How often and how long to retry. Delay before attempt n+1 (full jitter):
    uniform(0, min(cap_s, base_s * 2**(n-1))), or the wait HubSpot asked for when it said so."""

    max_attempts: int = 5
    base_s: float = 0.5
    cap_s: float = 30.0
    deadline_s: float = 300.0
    locked_min_s: float = 2.0  # HubSpot asks for at least 2 s after a 423

    def delay(self, attempt: int, error: HubSpotError) -> float:
        backoff = random.uniform(0, min(self.cap_s, self.base_s * 2 ** (attempt - 1)))
        if isinstance(error, ApiError) and error.retry_after is not None:
            return max(error.retry_after, backoff)
        if isinstance(error, TryLater) and error.status == 423:
            return max(self.locked_min_s, backoff)
        return backoff


RETRIABLE_READ_ERRORS: tuple[type[HubSpotError], ...] = (RateLimited, Unavailable, NoAnswer)


@dataclass(frozen=True, slots=True)
class Owner:
    """A HubSpot owner: `id` goes in hubspot_owner_id, `user_id` in organizerUserId. Never swap them."""

    id: str
    user_id: int | None
    email: str
    archived: bool = False
    first_name: str | None = None
    last_name: str | None = None


@dataclass(frozen=True, slots=True)
class Record:
    """A CRM object as HubSpot returns it."""

    id: str
    properties: dict[str, Any]


@dataclass(frozen=True, slots=True)
class BatchRead:
    """A batch read: the records found and the inputs HubSpot reported missing."""

    found: list[Record] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class Account:
    """The HubSpot account (portal) a token belongs to: `GET /account-info/v3/details`."""

    portal_id: int
    time_zone: str | None = None
    ui_domain: str | None = None
    account_type: str | None = None

    def record_url(self, meeting_id: str) -> str | None:
        """The meeting's page in HubSpot's UI."""
        if not self.ui_domain:
            return None
        return f"https://{self.ui_domain}/contacts/{self.portal_id}/record/0-47/{meeting_id}"


@dataclass(frozen=True, slots=True)
class Created:
    """A created meeting: its id and the answer's correlation id."""

    id: str
    correlation_id: str | None
    status: int


@dataclass(frozen=True, slots=True)
class LoggedMeeting:
    """One meeting a batch create made: its id, the objectWriteTraceId HubSpot echoed (if it did) and the
    properties HubSpot stored."""

    id: str
    trace_id: str | None
    properties: dict[str, Any]


@dataclass(frozen=True, slots=True)
class RefusedInput:
    """Inputs a batch create refused, certainly without creating them: the objectWriteTraceIds its error
    names (none when it names none) and HubSpot's error."""

    trace_ids: tuple[str, ...]
    error: Rejected


@dataclass(frozen=True, slots=True)
class BatchCreated:
    """A batch create's answer: 201 when every input was created, 207 when some were refused. `logged` and
    `refused` come in no particular order (HubSpot's batch results are unordered)."""

    status: int
    correlation_id: str | None
    logged: list[LoggedMeeting]
    refused: list[RefusedInput]


class HubSpotClient:
    """One connection pool for a run. Use as `async with HubSpotClient(...) as client:`."""

    def __init__(
        self,
        base_url: str,
        token: str,
        *,
        gate: Gate | None = None,
        retry: RetryPolicy | None = None,
        timeout_s: float = 30.0,
        connect_timeout_s: float = 5.0,
        max_connections: int = 10,
        transport: httpx.AsyncBaseTransport | None = None,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        self._gate: Gate = gate or OpenGate()
        self._retry = retry or RetryPolicy()
        self._sleep = sleep
        self._base_url = base_url.rstrip("/")
        # With no proxy to go through, requests go straight to the lean transport (importer.wire): httpx's
        # own transport, and the client layers around it, cost several times its CPU per request.
        self._lean = None if transport or _proxies() else LeanTransport(max_connections=max_connections)
        timeout = httpx.Timeout(timeout_s, connect=connect_timeout_s, pool=None)
        self._timeouts = timeout.as_dict()
        self._http = httpx.AsyncClient(
            base_url=self._base_url,
            headers={"Authorization": f"Bearer {token}", "Accept": "application/json"},
            timeout=timeout,
            limits=httpx.Limits(max_connections=max_connections, max_keepalive_connections=max_connections),
            transport=transport or self._lean,
            follow_redirects=False,
        )
        # Every request goes out with the client's headers; the body's type is added for those with one.
        self._headers = httpx.Headers(self._http.headers)
        self._json_headers = httpx.Headers({**self._http.headers, "Content-Type": "application/json"})
        # A run asks a handful of URLs thousands of times (the create for each organizer): parsed once.
        self._url = functools.lru_cache(maxsize=1024)(self._parse_url)
        self.requests_sent = 0
        self.searches_sent = 0  # of requests_sent: searches, which have their own limit
        self.rate_limited = 0  # 429 answers seen, of any policy

    def __repr__(self) -> str:
        return f"HubSpotClient(base_url={self._base_url!r}, token=<hidden>)"

    async def __aenter__(self) -> HubSpotClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self._http.aclose()

    # --- reads: retried on every transient error ---

    async def account(self) -> Account:
        """The HubSpot account (portal) the token belongs to: `GET /account-info/v3/details`."""
        details = await self._read("GET", ACCOUNT_DETAILS_PATH)
        try:
            portal_id = int(details["portalId"])
        except (KeyError, TypeError, ValueError):
            raise Unavailable(200, "HubSpot's account details carry no portalId") from None

        def text(name: str) -> str | None:
            value = details.get(name)
            return str(value) if value else None

        return Account(portal_id, text("timeZone"), text("uiDomain"), text("accountType"))

    async def list_owners(self, *, archived: bool = False) -> list[Owner]:
        """Every owner, following the paging cursor (`archived=True`: the archived ones)."""
        owners: list[Owner] = []
        after: str | None = None
        while True:
            params = {"limit": str(OWNERS_PAGE_LIMIT), "archived": str(archived).lower()}
            if after:
                params["after"] = after
            page = await self._read("GET", "/crm/v3/owners", params=params)
            owners.extend(_owner(item, archived) for item in page.get("results", []))
            after = _next_after(page)
            if after is None:
                return owners

    async def batch_read(
        self,
        object_type: ObjectType,
        ids: Iterable[str],
        *,
        id_property: str | None = None,
        properties: Iterable[str] = (),
    ) -> BatchRead:
        """Read records by id (or by a unique property), BATCH_LIMIT per call, calls run concurrently."""
        unique = list(dict.fromkeys(ids))
        chunks = [unique[i : i + BATCH_LIMIT] for i in range(0, len(unique), BATCH_LIMIT)]
        answers = await asyncio.gather(
            *(self._batch_read_chunk(object_type, chunk, id_property, list(properties)) for chunk in chunks)
        )
        result = BatchRead()
        for answer in answers:
            result.found.extend(answer.found)
            result.missing.extend(answer.missing)
        return result

    async def _batch_read_chunk(
        self, object_type: ObjectType, ids: list[str], id_property: str | None, properties: list[str]
    ) -> BatchRead:
        body: dict[str, Any] = {"inputs": [{"id": i} for i in ids], "properties": properties}
        if id_property:
            body["idProperty"] = id_property
        answer = await self._read("POST", f"/crm/v3/objects/{object_type}/batch/read", json_body=body)
        found = [Record(str(r["id"]), dict(r.get("properties") or {})) for r in answer.get("results", [])]
        missing = [str(i) for e in answer.get("errors", []) for i in (e.get("context") or {}).get("ids", [])]
        return BatchRead(found, missing)

    async def search(
        self,
        object_type: ObjectType,
        filter_groups: list[dict[str, Any]],
        *,
        properties: Iterable[str] = (),
        sorts: list[dict[str, str]] | None = None,
        limit: int = SEARCH_PAGE_LIMIT,
    ) -> list[Record]:
        """Every record matching `filter_groups` (groups OR, filters in a group AND), all pages.

        Raises TooManyResults when the matches go past what HubSpot pages through (SEARCH_RESULT_LIMIT)."""
        records: list[Record] = []
        after: str | None = None
        while True:
            body: dict[str, Any] = {
                "filterGroups": filter_groups,
                "properties": list(properties),
                "limit": min(limit, SEARCH_PAGE_LIMIT),
            }
            if sorts:
                body["sorts"] = sorts
            if after:
                body["after"] = after
            page = await self._read(
                "POST", f"/crm/v3/objects/{object_type}/search", json_body=body, kind="search"
            )
            records.extend(
                Record(str(r["id"]), dict(r.get("properties") or {})) for r in page.get("results", [])
            )
            after = _next_after(page)
            if after is None:
                return records
            if len(records) + body["limit"] > SEARCH_RESULT_LIMIT:
                raise TooManyResults(400, f"more than {SEARCH_RESULT_LIMIT} {object_type} match one search")

    # --- the create: one attempt; the sender decides about another ---

    def create_request(self, organizer_user_id: int, body: Mapping[str, Any]) -> httpx.Request:
        """The create's request, to build ahead of its turn: built with a chunk's others it costs a sixth
        of what it does alone after a wait for the window, when the CPU has gone cold."""
        params = {"organizerUserId": str(organizer_user_id)}
        request = self._request("POST", CREATE_MEETING_PATH, params, body)
        if self._lean is not None:
            self._lean.prepare(request)  # its bytes on the wire too
        return request

    async def create_meeting(
        self, organizer_user_id: int, body: Mapping[str, Any], *, request: httpx.Request | None = None
    ) -> Created:
        """`POST /scheduler/2026-03/meetings/calendar?organizerUserId=...`; the spec says 200, CRM 201.
        `request`: `create_request`'s for the same meeting, built earlier (it may be sent again)."""
        request = request or self.create_request(organizer_user_id, body)
        response = await self._deliver(request, "api", f"POST {CREATE_MEETING_PATH}")
        correlation_id = response.headers.get("x-hubspot-correlation-id")
        try:
            meeting_id = _json(response)["id"]
            if not meeting_id:
                raise KeyError("id")
        except (Unavailable, KeyError):
            # HubSpot said it worked but we cannot tell which meeting: as good as a lost answer.
            raise CreatedWithoutId(
                f"POST {CREATE_MEETING_PATH}: {response.status_code} without a meeting id"
            ) from None
        return Created(str(meeting_id), correlation_id, response.status_code)

    # --- updates: the same request twice leaves the same meeting, so they are retried like reads ---

    async def update_meeting(self, meeting_id: str, properties: Mapping[str, str]) -> None:
        """`PATCH /crm/v3/objects/meetings/{id}` (an empty string clears a property)."""
        await self._read("PATCH", f"{MEETINGS_PATH}/{meeting_id}", json_body={"properties": dict(properties)})

    async def meeting_links(self, meeting_id: str, object_types: Sequence[str]) -> set[tuple[str, str]]:
        """(object type, object id) of every record the meeting is associated with, among `object_types`:
        `GET /crm/v3/objects/meetings/{id}?associations=...`, which search cannot answer."""
        params = {"associations": ",".join(object_types), "properties": "hs_meeting_title"}
        answer = await self._read("GET", f"{MEETINGS_PATH}/{meeting_id}", params=params)
        links: set[tuple[str, str]] = set()
        for object_type, found in (answer.get("associations") or {}).items():
            links.update((object_type, str(item["id"])) for item in found.get("results") or [])
        return links

    async def associate(self, object_type: str, pairs: Iterable[tuple[str, str, int]]) -> None:
        """Add (meeting id, object id, association type id) links: v4 batch create, BATCH_LIMIT a call."""
        inputs = [
            {
                "from": {"id": meeting_id},
                "to": {"id": object_id},
                "types": [{"associationCategory": "HUBSPOT_DEFINED", "associationTypeId": type_id}],
            }
            for meeting_id, object_id, type_id in pairs
        ]
        await self._batches(f"/crm/v4/associations/meetings/{object_type}/batch/create", inputs)

    async def dissociate(self, object_type: str, pairs: Iterable[tuple[str, str]]) -> None:
        """Remove (meeting id, object id) links: v4 batch archive, BATCH_LIMIT a call."""
        inputs = [{"from": {"id": meeting_id}, "to": [{"id": object_id}]} for meeting_id, object_id in pairs]
        await self._batches(f"/crm/v4/associations/meetings/{object_type}/batch/archive", inputs)

    async def _batches(self, path: str, inputs: list[dict[str, Any]]) -> None:
        for i in range(0, len(inputs), BATCH_LIMIT):
            answer = await self._read(
                "POST", path, json_body={"inputs": inputs[i : i + BATCH_LIMIT]}, empty_ok=True
            )
            errors = [e for e in answer.get("errors") or [] if isinstance(e, dict)]
            if answer.get("numErrors") or errors:
                message = str(errors[0].get("message") if errors else "some inputs were refused")
                raise Rejected(207, message, category=errors[0].get("category") if errors else None)

    async def batch_create_meetings(self, inputs: Sequence[Mapping[str, Any]]) -> BatchCreated:
        """`POST /crm/v3/objects/meetings/batch/create` with at most BATCH_CREATE_LIMIT inputs, each
        `{properties, associations, objectWriteTraceId}`: meetings logged without a calendar event, one
        request against the window. A 2xx whose results cannot be read is an unknown outcome: a 201 says
        every input was created (CreatedWithoutId), a 207 that some were not (OutcomeUnknown)."""
        if len(inputs) > BATCH_CREATE_LIMIT:
            raise ValueError(f"a batch create takes at most {BATCH_CREATE_LIMIT} inputs, not {len(inputs)}")
        body = {"inputs": list(inputs)}
        response = await self._send("POST", BATCH_CREATE_PATH, params=None, json_body=body, kind="api")
        correlation_id = response.headers.get("x-hubspot-correlation-id")
        status = response.status_code
        try:
            data = _json(response)
            logged = [_logged(item) for item in data["results"]]
            refused = [_refused(item, status, correlation_id) for item in data.get("errors") or []]
        except (Unavailable, KeyError, TypeError, ValueError, AttributeError):
            lost = CreatedWithoutId if status != 207 else OutcomeUnknown
            raise lost(f"POST {BATCH_CREATE_PATH}: {status} without readable results") from None
        return BatchCreated(status, correlation_id, logged, refused)

    # --- plumbing ---

    async def _read(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, str] | None = None,
        json_body: Any = None,
        kind: Kind = "api",
        empty_ok: bool = False,
    ) -> dict[str, Any]:
        async def once() -> dict[str, Any]:
            response = await self._send(method, path, params=params, json_body=json_body, kind=kind)
            if empty_ok and (response.status_code == 204 or not response.content):
                return {}  # a batch archive answers 204 without a body
            return _json(response)

        return await self.retrying(once, RETRIABLE_READ_ERRORS)

    async def retrying(
        self,
        call: Callable[[], Awaitable[T]],
        retriable: tuple[type[HubSpotError], ...],
        *,
        keep_going: Callable[[], bool] = lambda: True,
    ) -> T:
        """Run `call` until it succeeds, raises a non-`retriable` error, or the policy's attempts or
        deadline run out, or `keep_going()` turns false (the run is stopping): then the last error."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self._retry.deadline_s
        attempt = 1
        while True:
            try:
                return await call()
            except retriable as error:
                delay = self._retry.delay(attempt, error)
                if attempt >= self._retry.max_attempts or loop.time() + delay > deadline or not keep_going():
                    error.attempts = attempt
                    raise
                log.info("attempt %d failed (%s); retrying in %.1f s", attempt, error, delay)
                attempt += 1
                await self._sleep(delay)

    async def _send(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, str] | None,
        json_body: Any,
        kind: Kind,
    ) -> httpx.Response:
        return await self._deliver(self._request(method, path, params, json_body), kind, f"{method} {path}")

    async def _deliver(self, request: httpx.Request, kind: Kind, what: str) -> httpx.Response:
        """Send `request` in its turn and read the answer; `what` names it in errors (`POST /path`)."""
        async with self._gate.slot(kind) as ticket:
            self.requests_sent += 1
            self.searches_sent += kind == "search"
            try:
                response = await self._exchange(request)
            except (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout) as exc:
                raise NotSent(f"{what}: could not connect ({type(exc).__name__})") from None
            except (httpx.TimeoutException, httpx.NetworkError, httpx.RemoteProtocolError) as exc:
                raise OutcomeUnknown(f"{what}: no answer ({type(exc).__name__})") from None
            except httpx.TransportError as exc:
                # A proxy that refused, a URL httpx cannot use: the request never reached HubSpot.
                raise NotSent(f"{what}: could not send ({type(exc).__name__}: {exc})") from None
        info = RateLimitInfo.from_headers(response.headers)
        self._gate.observe(kind, info, ticket)
        if response.status_code >= 400:
            error = _api_error(response)
            if response.status_code == 429:
                self.rate_limited += 1
            if isinstance(error, RateLimited):
                self._gate.back_off(kind, _window_wait(error, info))
            raise error
        return response

    def _request(
        self, method: str, path: str, params: Mapping[str, str] | None, json_body: Any
    ) -> httpx.Request:
        """The request `AsyncClient.request` would build (same URL, headers and JSON bytes) for a tenth of
        its CPU: it parses and merges the URL, query and headers anew each time (0.5 ms a request)."""
        url = self._url(path, tuple(params.items()) if params else ())
        timeout = {"timeout": self._timeouts}
        if json_body is None:
            return httpx.Request(method, url, headers=self._headers, extensions=timeout)
        body = json.dumps(json_body, ensure_ascii=False, separators=(",", ":"), allow_nan=False)
        return httpx.Request(
            method, url, headers=self._json_headers, content=body.encode(), extensions=timeout
        )

    async def _exchange(self, request: httpx.Request) -> httpx.Response:
        """Send `request`, read its answer: on the lean transport, without what AsyncClient.send adds around
        it (auth flows, redirects, cookies, hooks), none of which the client uses."""
        if self._lean is None:
            return await self._http.send(request)
        return await self._lean.fetch(request)  # read, and decoded if HubSpot compressed it

    def _parse_url(self, path: str, query: tuple[tuple[str, str], ...]) -> httpx.URL:
        return httpx.URL(self._base_url + path, params=query or None)


def _proxies() -> bool:
    """Whether the environment names a proxy (HTTP_PROXY, HTTPS_PROXY, ALL_PROXY): httpx then goes through it."""
    return any(scheme != "no" for scheme in urllib.request.getproxies())


def _window_wait(error: RateLimited, info: RateLimitInfo) -> float:
    """After a 429 for a window: Retry-After if given, else the window's length (search: 1 s)."""
    if error.retry_after is not None:
        return error.retry_after
    if error.policy_name == "SECONDLY":
        return 1.0
    return (info.interval_ms or 10_000) / 1000


def _api_error(response: httpx.Response) -> ApiError:
    status = response.status_code
    try:
        data = response.json()
    except ValueError:
        data = {}
    if not isinstance(data, dict):
        data = {}
    message = str(data.get("message") or response.reason_phrase or "error")
    details = tuple(
        str(e.get("message")) for e in data.get("errors") or [] if isinstance(e, dict) and e.get("message")
    )
    kwargs: dict[str, Any] = {
        "category": data.get("category") or data.get("errorType"),
        "correlation_id": data.get("correlationId") or response.headers.get("x-hubspot-correlation-id"),
        "policy_name": data.get("policyName"),
        "retry_after": _retry_after(response.headers.get("retry-after")),
        "details": details,
    }
    if status == 429:
        cls: type[ApiError] = DailyLimitReached if kwargs["policy_name"] == "DAILY" else RateLimited
    elif status in (401, 403):
        cls = AuthFailed
    elif status >= 500:
        cls = ServerError
    elif status in (423, 477):
        cls = TryLater
    else:
        cls = Rejected
    return cls(status, message, **kwargs)


def _retry_after(value: str | None) -> float | None:
    try:
        return max(0.0, float(value)) if value is not None else None
    except ValueError:
        return None  # an HTTP date: HubSpot sends seconds; fall back to our own backoff


def _json(response: httpx.Response) -> dict[str, Any]:
    try:
        data = response.json()
    except ValueError:  # json.JSONDecodeError and UnicodeDecodeError are both ValueErrors
        raise Unavailable(response.status_code, "HubSpot answered with something that is not JSON") from None
    if not isinstance(data, dict):
        raise Unavailable(response.status_code, "HubSpot answered with unexpected JSON")
    return data


def _logged(item: Mapping[str, Any]) -> LoggedMeeting:
    meeting_id = item["id"]
    if not meeting_id:
        raise KeyError("id")
    trace_id = item.get("objectWriteTraceId")
    return LoggedMeeting(
        str(meeting_id), str(trace_id) if trace_id else None, dict(item.get("properties") or {})
    )


def _refused(item: Mapping[str, Any], status: int, correlation_id: str | None) -> RefusedInput:
    """One entry of a 207's `errors[]`; its `context.objectWriteTraceId` names the inputs it refuses."""
    traced = (item.get("context") or {}).get("objectWriteTraceId") or []
    trace_ids = (traced,) if isinstance(traced, str) else tuple(str(t) for t in traced)
    details = tuple(
        str(e.get("message")) for e in item.get("errors") or [] if isinstance(e, dict) and e.get("message")
    )
    error = Rejected(
        status,
        str(item.get("message") or "input refused"),
        category=item.get("category"),
        correlation_id=correlation_id,
        details=details,
    )
    return RefusedInput(trace_ids, error)


def _next_after(page: Mapping[str, Any]) -> str | None:
    after = ((page.get("paging") or {}).get("next") or {}).get("after")
    return str(after) if after else None


def _owner(item: Mapping[str, Any], archived: bool) -> Owner:
    user_id = item.get("userId")
    return Owner(
        id=str(item["id"]),
        user_id=int(user_id) if user_id is not None else None,
        email=str(item.get("email") or "").lower(),
        archived=bool(item.get("archived", archived)),
        first_name=item.get("firstName"),
        last_name=item.get("lastName"),
    )
