"""What stands in front of every route, as HubSpot's edge does: auth, rate limits, faults and common headers.

A pure ASGI wrapper rather than Starlette middleware, because a dropped connection needs the raw `send`:
it reads the request body, sends a response's status line and headers (with a Content-Length) and returns
without the body. Uvicorn then closes the socket, and an httpx client gets `RemoteProtocolError` ("peer
closed connection without sending complete message body"), as it would from a real cut.
"""

from __future__ import annotations

import asyncio
import uuid
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass
from enum import Enum

from starlette.applications import Starlette
from starlette.datastructures import Headers as RequestHeaders
from starlette.routing import Match, Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from importer.sandbox.errors import CORRELATION_KEY, ApiError, rate_limit_response, server_error
from importer.sandbox.faults import FaultKind
from importer.sandbox.limits import Headers, Policy
from importer.sandbox.state import SPURIOUS, SandboxState

ADMIN_PREFIX = "/__sandbox/"
_MISSING_CREDENTIALS = (
    "Authentication credentials not found. This API supports OAuth 2.0 authentication and you can find more "
    "details at https://developers.hubspot.com/docs/methods/auth/oauth-overview"
)
_BAD_CREDENTIALS = "The access token in the Authorization header is not valid."


class RouteKind(Enum):
    """How the gateway treats a route: limits and faults differ between them."""

    API = "api"
    SEARCH = "search"
    CREATE = "create"  # makes meetings
    WRITE = "write"  # changes meetings or their associations
    ADMIN = "admin"


@dataclass(frozen=True)
class _Target:
    name: str
    kind: RouteKind
    app: ASGIApp


class Gateway:
    """The ASGI app uvicorn serves: checks a request, then hands it to the routes (or a fault)."""

    def __init__(self, routes: Starlette, state: SandboxState, kinds: Mapping[str, RouteKind]) -> None:
        self.routes = routes
        self.state = state
        self._kinds = kinds

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.routes(scope, receive, send)
            return
        scope[CORRELATION_KEY] = str(uuid.uuid4())
        target = self._target(scope)
        if target.kind is RouteKind.ADMIN:
            await target.app(scope, receive, _Outbox(send, scope, None).send)
        else:
            await self._serve_api(target, scope, receive, send)

    async def _serve_api(self, target: _Target, scope: Scope, receive: Receive, send: Send) -> None:
        state = self.state
        if state.faults.uplink_ms or state.faults.uplink_jitter_ms:
            # The way in: HubSpot counts a request when it arrives, later than the client sent it.
            await asyncio.sleep(state.dice.delay_s(state.faults.uplink_ms, state.faults.uplink_jitter_ms))
        state.stats.count_request(target.name)
        inbox = _Inbox(receive)
        outbox = _Outbox(send, scope, state.stats.by_status)
        problem = self._auth_problem(scope)
        if problem is not None:
            error = ApiError(401, "INVALID_AUTHENTICATION", problem)
            await error.response(scope)(scope, inbox.receive, outbox.send)
            return
        admission = state.limiter.admit(search=target.kind is RouteKind.SEARCH)
        outbox.extra_headers = admission.headers
        if admission.rejected_by is not None:
            state.stats.rate_limited[admission.rejected_by] += 1
            await rate_limit_response(scope, admission.rejected_by)(scope, inbox.receive, outbox.send)
            return
        if state.faults.latency_ms or state.faults.latency_jitter_ms:
            await asyncio.sleep(state.dice.delay_s(state.faults.latency_ms, state.faults.latency_jitter_ms))
        fault = state.dice.roll(
            state.faults,
            on_create_route=target.kind is RouteKind.CREATE,
            on_write_route=target.kind is RouteKind.WRITE,
        )
        if fault is None:
            await target.app(scope, inbox.receive, outbox.send)
        else:
            state.stats.faults[fault] += 1
            await self._inject(fault, target.app, scope, inbox, outbox)

    async def _inject(
        self, fault: FaultKind, app: ASGIApp, scope: Scope, inbox: _Inbox, outbox: _Outbox
    ) -> None:
        match fault:
            case FaultKind.DROP_BEFORE:
                # The work is never done, so the status line that precedes the cut says 502, not success.
                await _cut_off(server_error(502).response(scope), scope, inbox, outbox)
            case FaultKind.ERROR_5XX:
                error = server_error(self.state.dice.server_error_status())
                await error.response(scope)(scope, inbox.receive, outbox.send)
            case FaultKind.SPURIOUS_429:
                self.state.stats.rate_limited[SPURIOUS] += 1
                await rate_limit_response(scope, Policy.TEN_SECONDLY_ROLLING)(
                    scope, inbox.receive, outbox.send
                )
            case FaultKind.DROP_AFTER:
                await _cut_off(app, scope, inbox, outbox)
            case FaultKind.ERROR_5XX_AFTER:
                # A gateway that gave up waiting while the backend committed: the work is done, the
                # answer is an error.
                await _hold(app, scope, inbox.receive)
                error = server_error(self.state.dice.after_work_status())
                await error.response(scope)(scope, inbox.receive, outbox.send)
            case FaultKind.SLOW:
                # The work happens first, so a client that times out while waiting leaves it done.
                held = await _hold(app, scope, inbox.receive)
                await asyncio.sleep(self.state.faults.slow_ms / 1000)
                for message in held:
                    await outbox.send(message)

    def _target(self, scope: Scope) -> _Target:
        wrong_method = False
        for route in self.routes.routes:
            match, _ = route.matches(scope)
            if match is Match.FULL and isinstance(route, Route):
                return _Target(route.name, self._kinds[route.name], self.routes)
            wrong_method = wrong_method or match is Match.PARTIAL
        kind = RouteKind.ADMIN if scope["path"].startswith(ADMIN_PREFIX) else RouteKind.API
        if wrong_method:
            return _Target("method_not_allowed", kind, _WRONG_METHOD)
        return _Target("not_found", kind, _NO_ROUTE)

    def _auth_problem(self, scope: Scope) -> str | None:
        header = RequestHeaders(scope=scope).get("authorization")
        if not header:
            return _MISSING_CREDENTIALS
        scheme, _, token = header.partition(" ")
        if scheme.lower() != "bearer" or token.strip() != self.state.config.token:
            return _BAD_CREDENTIALS
        return None


class _Inbox:
    """Wraps `receive` to know whether the request body has been read to the end."""

    def __init__(self, receive: Receive) -> None:
        self._receive = receive
        self._body_done = False

    async def receive(self) -> Message:
        message = await self._receive()
        if message["type"] != "http.request" or not message.get("more_body", False):
            self._body_done = True
        return message

    async def drain(self) -> None:
        while not self._body_done:
            await self.receive()


class _Outbox:
    """Wraps `send`: stamps the correlation id and rate-limit headers, and counts each completed answer."""

    def __init__(self, send: Send, scope: Scope, statuses: Counter[int] | None) -> None:
        self._send = send
        self._correlation_id = str(scope[CORRELATION_KEY]).encode()
        self._statuses = statuses
        self._status = 0
        self.extra_headers: Headers = []

    async def send(self, message: Message) -> None:
        if message["type"] == "http.response.start":
            self._status = message["status"]
            headers = [*message.get("headers", []), (b"x-hubspot-correlation-id", self._correlation_id)]
            message = {**message, "headers": headers + self.extra_headers}
        elif (
            message["type"] == "http.response.body"
            and not message.get("more_body", False)
            and self._statuses is not None
        ):
            # Only complete answers count; a cut-off one shows up under faults instead.
            self._statuses[self._status] += 1
        await self._send(message)


async def _hold(app: ASGIApp, scope: Scope, receive: Receive) -> list[Message]:
    """Run `app` to the end and keep what it would have sent."""
    held: list[Message] = []

    async def keep(message: Message) -> None:
        held.append(message)

    await app(scope, receive, keep)
    return held


async def _cut_off(app: ASGIApp, scope: Scope, inbox: _Inbox, outbox: _Outbox) -> None:
    """Send only the status line and headers of `app`'s answer, whose Content-Length promises a body."""
    held = await _hold(app, scope, inbox.receive)
    # Closing a socket with unread request data sends a TCP reset, and the client would see ReadError
    # or RemoteProtocolError depending on timing; with the body read it is always RemoteProtocolError.
    await inbox.drain()
    await outbox.send(held[0])


def _refusal(status: int, category: str, what: str) -> ASGIApp:
    async def refuse(scope: Scope, receive: Receive, send: Send) -> None:
        error = ApiError(status, category, f"{what}: {scope['method']} {scope['path']}")
        await error.response(scope)(scope, receive, send)

    return refuse


_NO_ROUTE = _refusal(404, "OBJECT_NOT_FOUND", "No such route")
_WRONG_METHOD = _refusal(405, "METHOD_NOT_ALLOWED", "This route does not accept the method")
