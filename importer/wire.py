"""A lean HTTP/1.1 transport for httpx: keep-alive connections over asyncio streams.

httpx's own transport (httpcore over anyio, with h11) spends about 1.6 ms of CPU on each request when
requests come paced, one at a time, which is most of what a request costs the importer; a run sends
thousands. This one does what the HubSpot client needs and nothing more: HTTP/1.1 over TCP or TLS, one
request per connection at a time, bodies by Content-Length, chunked or until close, idle connections kept
for KEEPALIVE_S. No proxy: with one in the environment the client keeps httpx's transport.

Failures are httpx's exceptions, as httpcore raises them, so the client tells a request that never went out
from one whose answer was lost in the same way: ConnectError / ConnectTimeout before a byte was written;
WriteError / WriteTimeout, ReadError / ReadTimeout and RemoteProtocolError after.
"""

from __future__ import annotations

import asyncio
import contextlib
import select
import ssl
import time
from collections.abc import Awaitable
from typing import Any, TypeVar

import httpx

KEEPALIVE_S = 4.0  # under the 5 s after which servers such as uvicorn close an idle connection
_DEFAULT_PORTS = {"http": 80, "https": 443}
_HEAD_LIMIT = 256 * 1024  # the most a status line and headers may take
MESSAGE = "importer.wire.message"  # a request's extension: its bytes on the wire, made by `prepare`
Origin = tuple[str, str, int]
T = TypeVar("T")


class LeanTransport(httpx.AsyncBaseTransport):
    """At most `max_connections` requests in flight, each on a connection of its own, reused after."""

    def __init__(self, *, max_connections: int, ssl_context: ssl.SSLContext | None = None) -> None:
        self._ssl = ssl_context  # made on the first https connection: loading the CA bundle costs 40 ms
        self._idle: dict[Origin, list[_Connection]] = {}
        self._max_connections = max_connections
        self._slots: asyncio.Semaphore | None = None  # made on first use, on the loop that uses it

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        status, headers, content, extensions = await self._answer(request)
        stream = httpx.ByteStream(content)
        return httpx.Response(status, headers=headers.pairs, stream=stream, extensions=extensions)

    async def fetch(self, request: httpx.Request) -> httpx.Response:
        """`request`'s answer, read and decoded, with `request` set: what `AsyncClient.send` returns, without
        its stream, async generators and decoder lookups for a body we already hold (a tenth of a
        millisecond a request, once paced requests leave the CPU cold)."""
        status, headers, content, extensions = await self._answer(request)
        stream = httpx.ByteStream(content)
        response = httpx.Response(
            status, headers=headers.pairs, stream=stream, extensions=extensions, request=request
        )
        if headers.ascii_only:
            response.headers.encoding = "ascii"  # worked out once for the whole head, not header by header
        if b"content-encoding" in headers.fields:
            response.read()  # gzip, deflate, br: httpx's decoders
        else:
            # What read() leaves: the body in httpx's `_content`, the stream spent and closed.
            response._content = content
            response.is_stream_consumed = response.is_closed = True
        return response

    async def _answer(self, request: httpx.Request) -> tuple[int, _Head, bytes, dict[str, Any]]:
        """Send `request` on a connection of its own and read the answer: status, headers, body, and the
        response's extensions."""
        timeouts = request.extensions.get("timeout", {})
        url = request.url
        origin = (url.scheme, url.host, url.port or _DEFAULT_PORTS.get(url.scheme, 80))
        if self._slots is None:
            self._slots = asyncio.Semaphore(self._max_connections)
        async with self._slots:
            connection = self._reuse(origin) or await self._connect(origin, timeouts.get("connect"))
            try:
                status, reason, headers, content, reusable = await connection.exchange(request, timeouts)
            except BaseException:
                connection.close()
                raise
            if reusable:
                connection.idle_since = time.monotonic()
                self._idle.setdefault(origin, []).append(connection)
            else:
                connection.close()
        return status, headers, content, {"http_version": b"HTTP/1.1", "reason_phrase": reason}

    def prepare(self, request: httpx.Request) -> None:
        """Make `request`'s bytes on the wire now, to be sent as they are: for a request built ahead of its
        turn, with a chunk's others, rather than alone on the CPU gone cold while it waited (50 us a
        request). The request must not change after. One that cannot go out as it is (a header with a
        line break) is left to fail when it is sent, as any other."""
        # RequestNotRead: a body still to be streamed, read at send time.
        with contextlib.suppress(httpx.LocalProtocolError, httpx.RequestNotRead):
            request.extensions[MESSAGE] = _head(request) + request.content

    async def aclose(self) -> None:
        for connections in self._idle.values():
            for connection in connections:
                connection.close()
        self._idle.clear()

    def _reuse(self, origin: Origin) -> _Connection | None:
        """The most recently used idle connection the server has not closed nor may be closing."""
        idle = self._idle.get(origin, [])
        oldest = time.monotonic() - KEEPALIVE_S
        while idle:
            connection = idle.pop()
            if connection.idle_since > oldest and connection.open():
                return connection
            connection.close()
        return None

    async def _connect(self, origin: Origin, timeout: float | None) -> _Connection:
        scheme, host, port = origin
        tls = None
        if scheme == "https":
            tls = self._ssl = self._ssl or httpx.create_ssl_context()
        try:
            async with asyncio.timeout(timeout):
                reader, writer = await asyncio.open_connection(
                    host, port, ssl=tls, server_hostname=host if tls else None, limit=_HEAD_LIMIT
                )
        except TimeoutError:
            raise httpx.ConnectTimeout(f"connecting to {host}:{port} timed out") from None
        except (OSError, ssl.SSLError) as exc:  # refused, unreachable, no such host, a bad certificate
            raise httpx.ConnectError(f"cannot connect to {host}:{port}: {exc}") from None
        return _Connection(reader, writer)


class _Connection:
    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer
        self.idle_since = 0.0

    def open(self) -> bool:
        """Whether the server has neither closed the connection nor sent anything unasked. Its close may
        be in the socket before the loop has read it, so the socket is asked too (as httpcore does)."""
        if self.reader.at_eof() or self.writer.transport.is_closing():
            return False
        sock = self.writer.get_extra_info("socket")
        return sock is None or not select.select([sock.fileno()], [], [], 0)[0]

    def close(self) -> None:
        self.writer.transport.close()

    async def exchange(
        self, request: httpx.Request, timeouts: dict[str, float | None]
    ) -> tuple[int, bytes, _Head, bytes, bool]:
        """Send `request`, read its whole answer: status, reason, headers, body, and whether the connection
        may carry another request."""
        message = request.extensions.get(MESSAGE)
        if message is None:
            message = _head(request) + await request.aread()
        self.writer.write(message)  # one write: one segment for a small request
        if self.writer.transport.get_write_buffer_size():  # the socket did not take it all at once
            await _within(self.writer.drain(), timeouts.get("write"), httpx.WriteTimeout, httpx.WriteError)
        # One timeout for the head and the body: each costs the loop a timer, and most answers come in
        # one segment (httpx's transport times each read alike, with the same seconds).
        return await _within(
            self._read_answer(request.method), timeouts.get("read"), httpx.ReadTimeout, httpx.ReadError
        )

    async def _read_answer(self, method: str) -> tuple[int, bytes, _Head, bytes, bool]:
        """Status, reason, headers, body, and whether the connection may carry another request."""
        status, reason, headers = await self._read_head()
        content, delimited = await self._read_body(method, status, headers.fields)
        return status, reason, headers, content, headers.keep_alive and delimited

    async def _read_head(self) -> tuple[int, bytes, _Head]:
        """Status, reason and headers; 1xx skipped."""
        while True:
            try:
                head = await self.reader.readuntil(b"\r\n\r\n")
            except asyncio.IncompleteReadError:
                raise httpx.RemoteProtocolError("Server disconnected without sending a response.") from None
            except asyncio.LimitOverrunError:
                raise httpx.RemoteProtocolError("the answer's headers are too long") from None
            status_line, *lines = head[:-4].split(b"\r\n")
            version, _, rest = status_line.partition(b" ")
            code, _, reason = rest.partition(b" ")
            if not version.startswith(b"HTTP/1.") or not code.isdigit():
                raise httpx.RemoteProtocolError(f"not an HTTP/1.1 status line: {status_line[:80]!r}")
            status = int(code)
            if not 100 <= status < 200:
                break
        return status, reason, _Head(lines, version, head.isascii())

    async def _read_body(self, method: str, status: int, fields: dict[bytes, bytes]) -> tuple[bytes, bool]:
        """The body (RFC 9112 section 6.3), and whether its end was told rather than a close."""
        if method == "HEAD" or status in (204, 304):
            return b"", True
        try:
            if b"chunked" in fields.get(b"transfer-encoding", b"").lower():
                return await self._read_chunks(), True
            if b"content-length" in fields:
                return await self.reader.readexactly(int(fields[b"content-length"])), True
        except asyncio.IncompleteReadError:
            raise httpx.RemoteProtocolError("Server disconnected before the answer's end.") from None
        except (ValueError, asyncio.LimitOverrunError):
            raise httpx.RemoteProtocolError("a malformed Content-Length or chunk size") from None
        return await self.reader.read(), False

    async def _read_chunks(self) -> bytes:
        parts: list[bytes] = []
        while True:
            size = int((await self.reader.readuntil(b"\r\n")).split(b";", 1)[0].strip(), 16)
            if size == 0:
                while await self.reader.readuntil(b"\r\n") != b"\r\n":
                    pass  # trailers: nothing the client reads
                return b"".join(parts)
            parts.append((await self.reader.readexactly(size + 2))[:-2])


def _head(request: httpx.Request) -> bytes:
    lines = [b"%s %s HTTP/1.1" % (request.method.encode("ascii"), request.url.raw_path)]
    for key, value in request.headers.raw:
        if b"\r" in value or b"\n" in value or b"\r" in key or b"\n" in key or b":" in key:
            raise httpx.LocalProtocolError(f"a header that would break the request: {key!r}")
        lines.append(key + b": " + value)
    return b"\r\n".join(lines) + b"\r\n\r\n"


class _Head:
    """An answer's headers: the (name, value) pairs, the values by lower-case name (the last of repeated
    ones), whether the server keeps the connection open, and whether the whole head is ASCII (httpx
    otherwise decodes every header to find their encoding)."""

    __slots__ = ("ascii_only", "fields", "keep_alive", "pairs")

    def __init__(self, lines: list[bytes], version: bytes, ascii_only: bool) -> None:
        self.ascii_only = ascii_only
        self.pairs: list[tuple[bytes, bytes]] = []
        self.fields: dict[bytes, bytes] = {}
        connection: list[bytes] = []
        for line in lines:  # one loop, no call per line: a paced request runs it cold
            key, colon, value = line.partition(b":")
            if not colon or not key or key != key.strip():
                raise httpx.RemoteProtocolError(f"a malformed header line: {line[:80]!r}")
            value = value.strip()
            self.pairs.append((key, value))
            lower = key.lower()
            self.fields[lower] = value
            if lower == b"connection":
                connection.append(value)
        tokens = b",".join(connection).lower()
        self.keep_alive = b"close" not in tokens and (version == b"HTTP/1.1" or b"keep-alive" in tokens)


async def _within(
    step: Awaitable[T],
    seconds: float | None,
    timeout: type[httpx.TimeoutException],
    failed: type[httpx.NetworkError],
) -> T:
    """Run one step of an exchange under its timeout, its failures as httpx's exceptions."""
    try:
        async with asyncio.timeout(seconds):
            return await step
    except TimeoutError:
        raise timeout("timed out") from None
    except OSError as exc:  # reset, broken pipe
        raise failed(str(exc) or type(exc).__name__) from None
