"""HTTP/1.1 for the OpenAI SDK on the worker's event loop (`conversations.eventloop`).

The SDK still builds every request and reads every answer (same headers, errors, timeouts,
retries); only the connection layer under httpx is this one: a keep-alive pool per host on
the loop's own streams. httpx's default (httpcore over anyio and h11) cost 1.3 ms of CPU per
call on our 2-core machine, 0.75 ms of it below httpx, growing with the calls in flight (it
walks every pooled connection on each request); the loop makes two calls per customer text.

What it does not do, and when the default is used instead: proxies (an HTTPS_PROXY,
HTTP_PROXY or ALL_PROXY setting), HTTP/2. Bodies are asked for uncompressed (the answers are
small JSON). A connection that the server closed while idle is noticed before use, and a
request that found its reused connection dead before any byte of the answer is sent again
once on a new one.
"""

from __future__ import annotations

import asyncio
import os
import ssl
from collections import defaultdict

import httpx2

# Idle connections kept per host at most (about the calls in flight at once).
MAX_IDLE_PER_HOST = 512
# Longest status line plus headers accepted.
MAX_HEAD_BYTES = 64 * 1024


def usable() -> bool:
    """False when a proxy is configured: httpx's own transport honours it, this one cannot."""
    return not any(os.environ.get(name) for name in ("HTTPS_PROXY", "https_proxy", "HTTP_PROXY", "http_proxy", "ALL_PROXY", "all_proxy"))


class _Connection:
    __slots__ = ("reader", "writer")

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer

    def alive(self) -> bool:
        return not (self.writer.is_closing() or self.reader.at_eof())

    def close(self) -> None:
        self.writer.close()


class _Stale(Exception):
    """The reused connection was closed before any byte of the answer came back."""


class LoopTransport(httpx2.AsyncBaseTransport):
    def __init__(self) -> None:
        self._idle: defaultdict[tuple, list[_Connection]] = defaultdict(list)
        self._ssl: ssl.SSLContext | None = None

    async def handle_async_request(self, request: httpx2.Request) -> httpx2.Response:
        url = request.url
        if url.scheme not in ("http", "https"):
            raise httpx2.UnsupportedProtocol(f"Unsupported URL scheme {url.scheme!r}", request=request)
        key = (url.scheme, url.host, url.port or (443 if url.scheme == "https" else 80))
        timeouts = request.extensions.get("timeout") or {}
        data = _request_bytes(request, await request.aread())
        while self._idle[key]:
            connection = self._idle[key].pop()
            if not connection.alive():
                connection.close()
                continue
            try:
                return await self._exchange(connection, key, data, request, timeouts, reused=True)
            except _Stale:
                continue  # the server had closed it: once more, on another
        connection = await self._connect(key, request, timeouts)
        try:
            return await self._exchange(connection, key, data, request, timeouts, reused=False)
        except _Stale:
            raise httpx2.RemoteProtocolError("Server disconnected without sending a response.", request=request) from None

    async def _connect(self, key: tuple, request: httpx2.Request, timeouts: dict) -> _Connection:
        scheme, host, port = key
        secure = scheme == "https"
        if secure and self._ssl is None:
            self._ssl = ssl.create_default_context()
        try:
            reader, writer = await asyncio.wait_for(
                asyncio.open_connection(host, port, ssl=self._ssl if secure else None, server_hostname=host if secure else None, limit=MAX_HEAD_BYTES),
                timeouts.get("connect"),
            )
        except asyncio.TimeoutError:
            raise httpx2.ConnectTimeout("Timed out connecting.", request=request) from None
        except (OSError, ssl.SSLError) as exc:
            raise httpx2.ConnectError(f"Could not connect: {type(exc).__name__}", request=request) from None
        return _Connection(reader, writer)

    async def _exchange(
        self, connection: _Connection, key: tuple, data: bytes, request: httpx2.Request, timeouts: dict, *, reused: bool
    ) -> httpx2.Response:
        try:
            connection.writer.write(data)
            await asyncio.wait_for(connection.writer.drain(), timeouts.get("write"))
        except asyncio.TimeoutError:
            connection.close()
            raise httpx2.WriteTimeout("Timed out sending the request.", request=request) from None
        except (OSError, ConnectionError) as exc:
            connection.close()
            if reused:
                raise _Stale from None
            raise httpx2.WriteError(f"Could not send the request: {type(exc).__name__}", request=request) from None
        except BaseException:  # cancelled midway: the connection's state is unknown
            connection.close()
            raise
        try:
            status, headers, body, keep = await asyncio.wait_for(_response_read(connection.reader, request), timeouts.get("read"))
        except asyncio.TimeoutError:
            connection.close()
            raise httpx2.ReadTimeout("Timed out waiting for the answer.", request=request) from None
        except asyncio.IncompleteReadError as exc:
            connection.close()
            if reused and not exc.partial and not getattr(exc, "head_started", False):
                raise _Stale from None
            raise httpx2.RemoteProtocolError("Server disconnected in the middle of the answer.", request=request) from None
        except (OSError, ConnectionError) as exc:
            connection.close()
            if reused and isinstance(exc, ConnectionResetError):
                raise _Stale from None  # reset by the server while it sat idle
            raise httpx2.ReadError(f"Could not read the answer: {type(exc).__name__}", request=request) from None
        except (ValueError, asyncio.LimitOverrunError) as exc:
            connection.close()
            raise httpx2.RemoteProtocolError(f"Malformed answer: {exc}"[:200], request=request) from None
        except BaseException:  # cancelled midway: the connection's state is unknown
            connection.close()
            raise
        if keep and len(self._idle[key]) < MAX_IDLE_PER_HOST:
            self._idle[key].append(connection)
        else:
            connection.close()
        return httpx2.Response(status, headers=headers, content=body, request=request, extensions={"http_version": b"HTTP/1.1"})

    async def aclose(self) -> None:
        for connections in self._idle.values():
            for connection in connections:
                connection.close()
        self._idle.clear()


def _request_bytes(request: httpx2.Request, body: bytes) -> bytes:
    lines = [b"%s %s HTTP/1.1" % (request.method.encode(), request.url.raw_path)]
    for name, value in request.headers.raw:
        lowered = name.lower()
        if lowered in (b"accept-encoding", b"connection", b"transfer-encoding", b"content-length"):
            continue  # set below
        lines.append(name + b": " + value)
    lines.append(b"Accept-Encoding: identity")
    lines.append(b"Content-Length: %d" % len(body))
    return b"\r\n".join(lines) + b"\r\n\r\n" + body


async def _response_read(reader: asyncio.StreamReader, request: httpx2.Request) -> tuple[int, list, bytes, bool]:
    """Status, headers, body and whether the connection can be used again."""
    head = await reader.readuntil(b"\r\n\r\n")
    status_line, *header_lines = head[:-4].split(b"\r\n")
    version, _, rest = status_line.partition(b" ")
    if not version.startswith(b"HTTP/1."):
        raise ValueError(f"not an HTTP/1 status line: {status_line[:60]!r}")
    status = int(rest[:3])
    headers, length, chunked, close = [], None, False, version == b"HTTP/1.0"
    for line in header_lines:
        name, _, value = line.partition(b":")
        name, value = name.strip(), value.strip()
        headers.append((name, value))
        lowered = name.lower()
        if lowered == b"content-length":
            length = int(value)
        elif lowered == b"transfer-encoding":
            chunked = b"chunked" in value.lower()
        elif lowered == b"connection":
            token = value.lower()
            close = b"close" in token or (close and b"keep-alive" not in token)
    if request.method == "HEAD" or status in (204, 304) or 100 <= status < 200:
        return status, headers, b"", not close
    try:
        if chunked:
            body = await _chunks_read(reader)
        elif length is not None:
            body = await reader.readexactly(length)
        else:
            return status, headers, await reader.read(), False  # delimited by the close
    except asyncio.IncompleteReadError as exc:
        exc.head_started = True  # not a stale connection: the answer had begun
        raise
    headers = [(n, v) for n, v in headers if n.lower() != b"transfer-encoding"]
    return status, headers, body, not close


async def _chunks_read(reader: asyncio.StreamReader) -> bytes:
    parts = []
    while True:
        size_line = await reader.readuntil(b"\r\n")
        size = int(size_line.split(b";", 1)[0].strip(), 16)
        if size == 0:
            while await reader.readuntil(b"\r\n") != b"\r\n":  # trailers
                pass
            return b"".join(parts)
        parts.append(await reader.readexactly(size))
        if await reader.readexactly(2) != b"\r\n":
            raise ValueError("chunk not followed by CRLF")
