"""HTTP/1.1 for one job: POST a JSON body and read the answer's lines as they stream, on
kept-alive connections.

A chat turn's model call was the largest share of its CPU through the `openai` SDK, and
still a quarter of it through aiohttp's client (`make bench`); this is the part of HTTP
that the call needs and nothing else: one write per request, a status line and headers,
a chunked (or sized, or until-close) body split into lines. Through `HTTPS_PROXY` (or
`HTTP_PROXY` for an `http` base URL), connections are tunnelled with `CONNECT`.
Deadlines are the caller's (every chat turn runs under AI_TIMEOUT_SECONDS).
"""

from __future__ import annotations

import asyncio
import ssl
import time
import urllib.request
from collections.abc import AsyncIterator, Mapping
from urllib.parse import urlsplit

MAX_IDLE = 1000  # kept-alive connections (the SDK allowed 1000 at once)
IDLE_SECONDS = 60.0  # a connection idle longer is not reused
MAX_ERROR_BODY = 4096
MAX_BUFFER = 1 << 20  # an answer piling up past this without being read is refused


class HTTPError(Exception):
    """The server answered with a status other than 200."""

    def __init__(self, status: int, body: str) -> None:
        super().__init__(f"HTTP {status}: {body}")
        self.status = status
        self.body = body


class _Connection(asyncio.Protocol):
    """One connection: what arrives is appended to `buffer`, and `more()` waits for more."""

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.buffer = bytearray()
        self.closed = False
        self.idle_since = 0.0
        self._waiter: asyncio.Future[None] | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        self._wake()

    def eof_received(self) -> bool:
        self.closed = True
        self._wake()
        return False

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        self._wake()

    def _wake(self) -> None:
        if self._waiter is not None and not self._waiter.done():
            self._waiter.set_result(None)

    async def more(self) -> None:
        """Wait until something more has arrived; `ConnectionError` once closed."""
        if len(self.buffer) > MAX_BUFFER:
            raise ConnectionError("answer too large")
        if self.closed:
            raise ConnectionError("connection closed by the server")
        self._waiter = asyncio.get_running_loop().create_future()
        try:
            await self._waiter
        finally:
            self._waiter = None

    def usable(self) -> bool:
        return not self.closed and self.transport is not None and not self.transport.is_closing()

    def close(self) -> None:
        self.closed = True
        if self.transport is not None:
            self.transport.close()


class SSEClient:
    def __init__(self, url: str, headers: Mapping[str, str]) -> None:
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"unsupported URL: {url!r}")
        self._host = parts.hostname
        self._port = parts.port or (443 if parts.scheme == "https" else 80)
        self._tls = ssl.create_default_context() if parts.scheme == "https" else None
        self._proxy = _proxy_for(parts.scheme, self._host)
        path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        host = self._host if parts.port is None else f"{self._host}:{self._port}"
        lines = [f"POST {path} HTTP/1.1", f"Host: {host}"]
        lines += [f"{name}: {value}" for name, value in headers.items()]
        self._head = ("\r\n".join(lines) + "\r\nContent-Length: ").encode("latin-1")
        self._idle: list[_Connection] = []
        self._open: set[_Connection] = set()

    async def post_lines(self, body: bytes) -> AsyncIterator[bytes]:
        """POST `body`; the lines of a 200 answer as they arrive (an `HTTPError` otherwise).
        A kept-alive connection the server closed meanwhile is replaced once."""
        request = self._head + str(len(body)).encode() + b"\r\n\r\n" + body
        conn, reused = await self._checkout()
        try:
            try:
                status, headers = await _send(conn, request)
            except ConnectionError:
                if not reused:
                    raise
                self._drop(conn)  # closed by the server while it was idle
                conn = await self._connect()
                status, headers = await _send(conn, request)
            chunked = "chunked" in headers.get("transfer-encoding", "")
            length = None if chunked else _content_length(headers)
            reusable = headers.get("connection", "").lower() != "close" and (
                chunked or length is not None
            )
            if status != 200:
                data = await _read_body(conn, chunked, length, MAX_ERROR_BODY)
                raise HTTPError(status, data.decode("utf-8", "replace"))
            rest = b""
            async for data in _body(conn, chunked, length):
                *lines, rest = (rest + data).split(b"\n")
                for line in lines:
                    yield line
            if rest:
                yield rest
        except BaseException:
            self._drop(conn)  # a half-read answer cannot be followed by another request
            raise
        if reusable and not conn.buffer:
            self._checkin(conn)
        else:
            self._drop(conn)

    def _drop(self, conn: _Connection) -> None:
        conn.close()
        self._open.discard(conn)

    async def _checkout(self) -> tuple[_Connection, bool]:
        now = time.monotonic()
        while self._idle:
            conn = self._idle.pop()
            if conn.usable() and now - conn.idle_since < IDLE_SECONDS:
                return conn, True
            self._drop(conn)
        return await self._connect(), False

    def _checkin(self, conn: _Connection) -> None:
        if len(self._idle) >= MAX_IDLE or not conn.usable():
            self._drop(conn)
            return
        conn.idle_since = time.monotonic()
        self._idle.append(conn)

    async def _connect(self) -> _Connection:
        loop = asyncio.get_running_loop()
        if self._proxy is None:
            _, conn = await loop.create_connection(
                _Connection, self._host, self._port, ssl=self._tls
            )
        else:
            conn = await _tunnel(self._proxy, self._host, self._port, self._tls)
        self._open.add(conn)
        return conn

    async def aclose(self) -> None:
        self._idle.clear()
        for conn in list(self._open):
            self._drop(conn)


async def _send(conn: _Connection, request: bytes) -> tuple[int, dict[str, str]]:
    assert conn.transport is not None
    conn.transport.write(request)
    return await _read_head(conn)


async def _read_head(conn: _Connection) -> tuple[int, dict[str, str]]:
    while (end := conn.buffer.find(b"\r\n\r\n")) < 0:
        await conn.more()
    head = bytes(conn.buffer[:end]).decode("latin-1")
    del conn.buffer[: end + 4]
    status_line, *header_lines = head.split("\r\n")
    parts = status_line.split(" ", 2)
    if len(parts) < 2 or not parts[0].startswith("HTTP/1.") or not parts[1].isdigit():
        raise ConnectionError(f"not an HTTP/1.x answer: {status_line[:100]!r}")
    headers = {}
    for line in header_lines:
        name, sep, value = line.partition(":")
        if sep:
            headers[name.strip().lower()] = value.strip()
    return int(parts[1]), headers


def _content_length(headers: Mapping[str, str]) -> int | None:
    value = headers.get("content-length")
    return int(value) if value is not None and value.isdigit() else None


async def _body(conn: _Connection, chunked: bool, length: int | None) -> AsyncIterator[bytes]:
    """The body's pieces as they arrive: whatever is already there goes without waiting."""
    buffer = conn.buffer
    if not chunked:
        while length is None or length > 0:
            if not buffer:
                try:
                    await conn.more()
                except ConnectionError:
                    if length is None:  # the body ends with the connection
                        return
                    raise
                continue
            data = bytes(buffer if length is None else buffer[:length])
            del buffer[: len(data)]
            if length is not None:
                length -= len(data)
            yield data
        return
    while True:
        end = buffer.find(b"\r\n")
        if end < 0:
            await conn.more()
            continue
        size = int(bytes(buffer[:end]).split(b";", 1)[0].strip(), 16)
        if size == 0:  # the last chunk, then trailers (if any) and an empty line
            while (done := buffer.find(b"\r\n\r\n", end)) < 0:
                await conn.more()
            del buffer[: done + 4]
            return
        if len(buffer) < end + 2 + size + 2:
            await conn.more()
            continue
        data = bytes(buffer[end + 2 : end + 2 + size])
        del buffer[: end + 2 + size + 2]
        yield data


async def _read_body(conn: _Connection, chunked: bool, length: int | None, limit: int) -> bytes:
    data = b""
    async for piece in _body(conn, chunked, length):
        data += piece
        if len(data) >= limit:
            break
    return data[:limit]


def _proxy_for(scheme: str, host: str) -> tuple[str, int] | None:
    """The proxy the environment names for this scheme, unless NO_PROXY exempts the host."""
    if urllib.request.proxy_bypass(host):
        return None
    proxy = urllib.request.getproxies().get(scheme)
    if not proxy:
        return None
    parts = urlsplit(proxy if "://" in proxy else f"http://{proxy}")
    if not parts.hostname:
        return None
    return parts.hostname, parts.port or 80


async def _tunnel(
    proxy: tuple[str, int], host: str, port: int, tls: ssl.SSLContext | None
) -> _Connection:
    loop = asyncio.get_running_loop()
    transport, conn = await loop.create_connection(_Connection, *proxy)
    target = f"{host}:{port}"
    transport.write(f"CONNECT {target} HTTP/1.1\r\nHost: {target}\r\n\r\n".encode("latin-1"))
    try:
        status, _ = await _read_head(conn)
        if status != 200:
            raise ConnectionError(f"the proxy refused CONNECT {target}: {status}")
    except BaseException:
        conn.close()
        raise
    if tls is not None:
        tls_transport = await loop.start_tls(transport, conn, tls, server_hostname=host)
        assert isinstance(tls_transport, asyncio.Transport)
        conn.transport = tls_transport
    return conn
