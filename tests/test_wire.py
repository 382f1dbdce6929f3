"""The lean transport against a raw HTTP server on a loopback port: bodies, reuse, and every failure as the
httpx exception httpcore would raise, so the client tells a request never sent from an answer lost."""

from __future__ import annotations

import asyncio
import gzip
from collections.abc import Awaitable, Callable
from typing import TypeVar

import httpx
import pytest

from importer.hubspot import Account, HubSpotClient, NotSent, RetryPolicy
from importer.wire import LeanTransport

T = TypeVar("T")
Reply = bytes | None
"""What the server writes after reading one request; None: it closes the connection without answering."""


def _ends_by_close(reply: bytes) -> bool:
    head = reply.split(b"\r\n\r\n")[0].lower()
    return b"close" in head or not any(w in head for w in (b"content-length", b"chunked", b" 204 "))


def ok(body: bytes, *headers: str) -> bytes:
    head = "".join(f"{h}\r\n" for h in headers)
    return f"HTTP/1.1 200 OK\r\nContent-Length: {len(body)}\r\n{head}\r\n".encode() + body


class RawServer:
    """Answers each request with the next reply; keeps the connections' count and the requests' bytes.
    A reply that says `Connection: close`, or whose body ends by a close, closes its connection after it."""

    def __init__(self, *replies: Reply, close_after_each: bool = False) -> None:
        self.replies = list(replies)
        self.close_after_each = close_after_each
        self.connections = 0
        self.requests: list[bytes] = []
        self.port = 0

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        try:
            while self.replies:
                head = await reader.readuntil(b"\r\n\r\n")
                length = next(
                    (
                        int(line.split(b":")[1])
                        for line in head.split(b"\r\n")
                        if line.lower().startswith(b"content-length:")
                    ),
                    0,
                )
                self.requests.append(head + await reader.readexactly(length))
                reply = self.replies.pop(0)
                if reply is None:
                    break
                writer.write(reply)
                await writer.drain()
                if self.close_after_each or _ends_by_close(reply):
                    break
        except asyncio.IncompleteReadError:
            pass  # the client closed its connection
        writer.close()

    def run(self, call: Callable[[httpx.AsyncClient], Awaitable[T]], **timeouts: float) -> T:
        """`call` with an httpx client on the lean transport, this server its base URL."""

        async def with_client(url: str) -> T:
            timeout = httpx.Timeout(timeouts.get("read", 5.0), connect=5.0)
            transport = LeanTransport(max_connections=2)
            async with httpx.AsyncClient(base_url=url, transport=transport, timeout=timeout) as client:
                return await call(client)

        return self.serve(with_client)

    def serve(self, call: Callable[[str], Awaitable[T]]) -> T:
        """`call` with this server's base URL, while it serves."""

        async def main() -> T:
            server = await asyncio.start_server(self.handle, "127.0.0.1", 0)
            self.port = server.sockets[0].getsockname()[1]
            async with server:
                return await call(f"http://127.0.0.1:{self.port}")

        return asyncio.run(main())


def get(path: str = "/") -> Callable[[httpx.AsyncClient], Awaitable[httpx.Response]]:
    return lambda client: client.get(path)


def test_a_body_by_length_chunked_or_until_close() -> None:
    chunked = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5;x=1\r\nhello\r\n6\r\n world\r\n0\r\nT: 1\r\n\r\n"
    until_close = b"HTTP/1.1 200 OK\r\n\r\nthe rest"

    async def four(client: httpx.AsyncClient) -> list[bytes]:
        return [(await client.get("/")).content for _ in range(4)]

    server = RawServer(ok(b'{"id": "1"}'), chunked, until_close, ok(b"again"))
    assert server.run(four) == [b'{"id": "1"}', b"hello world", b"the rest", b"again"]
    assert server.connections == 2  # the answer without a length ended its connection


def test_the_request_goes_out_as_httpx_built_it() -> None:
    server = RawServer(ok(b"{}"))
    answer = server.run(
        lambda client: client.post("/crm/v3?a=1", json={"title": "商談"}, headers={"X-A": "b"})
    )
    assert answer.status_code == 200
    (request,) = server.requests
    head, body = request.split(b"\r\n\r\n")
    lines = head.split(b"\r\n")
    assert lines[0] == b"POST /crm/v3?a=1 HTTP/1.1"
    assert body == '{"title":"商談"}'.encode()
    expected = {b"host: 127.0.0.1:%d" % server.port, b"x-a: b", b"content-length: %d" % len(body)}
    assert expected <= {line.lower() for line in lines}


def test_a_connection_is_reused_and_one_the_server_closed_is_not() -> None:
    async def three(client: httpx.AsyncClient) -> list[int]:
        return [(await client.get("/")).status_code for _ in range(3)]

    kept = RawServer(ok(b"1"), ok(b"2"), ok(b"3"))
    assert kept.run(three) == [200, 200, 200]
    assert kept.connections == 1
    closed = RawServer(ok(b"1"), ok(b"2"), ok(b"3"), close_after_each=True)

    async def three_apart(client: httpx.AsyncClient) -> list[int]:
        codes = []
        for _ in range(3):
            codes.append((await client.get("/")).status_code)
            await asyncio.sleep(0.05)  # the server's close reaches the client's loop
        return codes

    assert closed.run(three_apart) == [200, 200, 200]
    assert closed.connections == 3


def test_an_answer_in_gzip_is_decoded_and_its_reason_kept() -> None:
    body = gzip.compress(b'{"ok": true}')
    reply = b"HTTP/1.1 503 Slow Down\r\nContent-Encoding: gzip\r\nContent-Length: %d\r\n\r\n%s" % (
        len(body),
        body,
    )
    answer = RawServer(reply).run(get())
    assert (answer.status_code, answer.reason_phrase, answer.json()) == (503, "Slow Down", {"ok": True})


def test_fetch_gives_the_answer_read_decoded_and_with_its_request() -> None:
    plain = ok(b'{"id": "1"}', "X-HubSpot-RateLimit-Max: 100", "X-Name: Zoë")  # sent as UTF-8
    packed = gzip.compress(b'{"id": "2"}')
    gzipped = b"HTTP/1.1 201 Created\r\nContent-Encoding: gzip\r\nContent-Length: %d\r\n\r\n%s" % (
        len(packed),
        packed,
    )

    async def two(url: str) -> list[httpx.Response]:
        transport = LeanTransport(max_connections=1)
        requests = [httpx.Request("GET", url + path) for path in ("/a", "/b")]
        try:
            return [await transport.fetch(request) for request in requests]
        finally:
            await transport.aclose()

    first, second = RawServer(plain, gzipped).serve(two)
    assert (first.status_code, first.json(), first.request.url.path) == (200, {"id": "1"}, "/a")
    assert first.headers["x-hubspot-ratelimit-max"] == "100"
    assert first.headers["x-name"] == "Zoë"  # not ASCII: httpx works out the encoding, as before
    assert (second.status_code, second.reason_phrase, second.json()) == (201, "Created", {"id": "2"})
    assert second.request.url.path == "/b"
    assert (first.is_closed, second.is_closed) == (True, True)


def test_no_body_for_a_204() -> None:
    async def two(client: httpx.AsyncClient) -> list[int]:
        return [(await client.get("/")).status_code for _ in range(2)]

    server = RawServer(b"HTTP/1.1 204 No Content\r\n\r\n", ok(b"x"))
    assert server.run(two) == [204, 200]
    assert server.connections == 1


def test_a_refused_connection_is_a_connect_error() -> None:
    async def refused(client: httpx.AsyncClient) -> httpx.Response:
        return await client.get("http://127.0.0.1:9/")  # the discard port: nothing listens on loopback

    with pytest.raises(httpx.ConnectError):
        RawServer(ok(b"")).run(refused)


@pytest.mark.parametrize(
    "reply",
    [None, b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nshort", b"garbage\r\n\r\n"],
    ids=["no answer", "cut short", "not http"],
)
def test_an_answer_lost_or_broken_is_a_remote_protocol_error(reply: Reply) -> None:
    with pytest.raises(httpx.RemoteProtocolError):
        RawServer(reply).run(get())


def test_an_answer_that_never_comes_is_a_read_timeout() -> None:
    async def hang(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.read()  # reads, never answers

    server = RawServer(ok(b""))
    server.handle = hang  # type: ignore[method-assign]
    with pytest.raises(httpx.ReadTimeout):
        server.run(get(), read=0.05)


def test_a_header_with_a_line_break_is_never_sent() -> None:
    server = RawServer(ok(b""))
    with pytest.raises(httpx.LocalProtocolError):
        server.run(lambda client: client.get("/", headers={"X-A": "b\r\nX-Injected: 1"}))
    assert server.requests == []


def test_a_request_prepared_ahead_goes_out_as_one_made_at_send_time() -> None:
    async def both(url: str) -> None:
        transport = LeanTransport(max_connections=1)
        requests = [httpx.Request("POST", url + "/crm/v3?a=1", json={"title": "商談"}) for _ in range(2)]
        transport.prepare(requests[1])
        broken = httpx.Request("GET", url + "/", headers={"X-A": "b\r\nX-Injected: 1"})
        transport.prepare(broken)  # left to fail when sent
        try:
            for request in requests:
                await transport.fetch(request)
            with pytest.raises(httpx.LocalProtocolError):
                await transport.fetch(broken)
        finally:
            await transport.aclose()

    server = RawServer(ok(b"{}"), ok(b"{}"))
    server.serve(both)
    made_then, made_ahead = server.requests
    assert made_ahead == made_then
    assert made_ahead.startswith(b"POST /crm/v3?a=1 HTTP/1.1\r\n")


def test_the_client_sends_on_it_unless_the_environment_names_a_proxy(monkeypatch: pytest.MonkeyPatch) -> None:
    details = ok(b'{"portalId": 7, "uiDomain": "app.hubspot.com"}', "Content-Type: application/json")

    async def account(url: str) -> Account:
        async with HubSpotClient(url, "pat-1", retry=RetryPolicy(max_attempts=1)) as client:
            return await client.account()

    assert RawServer(details).serve(account) == Account(7, ui_domain="app.hubspot.com")
    # httpx's transport then, through the proxy (here one that refuses): the server is never reached.
    monkeypatch.setenv("HTTP_PROXY", "http://127.0.0.1:9")
    monkeypatch.setenv("NO_PROXY", "")
    server = RawServer(details)
    with pytest.raises(NotSent):
        server.serve(account)
    assert server.requests == []
