"""A TCP proxy a test owns, between the server under test and a real service (MariaDB), to
simulate that service's outage without touching the service itself.

    async with TcpProxy("127.0.0.1", 3306) as proxy:   # the server connects to proxy.port
        await proxy.reset()   # refused: every open connection reset (RST), no one listening
        await proxy.drop()    # silence: nothing forwarded either way, nothing closed
        await proxy.restore() # forwarding again (after drop, held bytes go on: a healed link)
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import struct
from dataclasses import dataclass, field
from types import TracebackType

CHUNK = 64 * 1024


@dataclass(eq=False)
class _Link:
    """One client connection and its connection to the service."""

    client: asyncio.StreamWriter
    upstream: asyncio.StreamWriter
    cut: bool = False
    pipes: list[asyncio.Task[None]] = field(default_factory=list)


def _abort(writer: asyncio.StreamWriter, *, rst: bool) -> None:
    """Close at once; with `rst`, the peer sees `ECONNRESET` rather than an orderly end."""
    if rst:
        sock = writer.get_extra_info("socket")
        if sock is not None:
            with contextlib.suppress(OSError):
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    writer.transport.abort()


class TcpProxy:
    def __init__(self, upstream_host: str, upstream_port: int) -> None:
        self.upstream = (upstream_host, upstream_port)
        self.port = 0
        self._listener: asyncio.Server | None = None
        self._links: set[_Link] = set()
        self._handlers: set[asyncio.Task[None]] = set()  # one per accepted connection
        self._flowing = asyncio.Event()
        self._flowing.set()
        self.connections = 0  # accepted so far

    async def __aenter__(self) -> TcpProxy:
        await self._listen()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    async def _listen(self) -> None:
        self._listener = await asyncio.start_server(
            self._accept, "127.0.0.1", self.port, reuse_address=True
        )
        self.port = int(self._listener.sockets[0].getsockname()[1])

    async def _stop_listening(self) -> None:
        if self._listener is not None:
            self._listener.close()
            await self._listener.wait_closed()
            self._listener = None

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        handler = asyncio.current_task()
        assert handler is not None
        self._handlers.add(handler)
        try:
            up_reader, up_writer = await asyncio.open_connection(*self.upstream)
        except OSError:
            _abort(writer, rst=True)
            self._handlers.discard(handler)
            return
        link = _Link(writer, up_writer)
        self._links.add(link)
        link.pipes = [
            asyncio.create_task(self._pipe(link, reader, up_writer)),
            asyncio.create_task(self._pipe(link, up_reader, writer)),
        ]
        try:
            await asyncio.gather(*link.pipes, return_exceptions=True)
        finally:
            self._links.discard(link)
            self._handlers.discard(handler)
            _abort(writer, rst=False)
            _abort(up_writer, rst=False)

    async def _pipe(
        self, link: _Link, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        """Forward one direction. While dropped, the bytes read stay here and nothing more
        is read (TCP's own flow control holds the rest), as on a link that went silent."""
        try:
            while data := await reader.read(CHUNK):
                await self._flowing.wait()
                if link.cut:
                    return
                writer.write(data)
                await writer.drain()
        except OSError:
            pass
        finally:
            if not link.cut:  # an orderly end on one side ends both
                for pipe in link.pipes:
                    if pipe is not asyncio.current_task():
                        pipe.cancel()

    async def reset(self) -> None:
        """The service is gone: new connections are refused, open ones are reset."""
        await self._stop_listening()
        for link in list(self._links):
            link.cut = True
            _abort(link.client, rst=True)
            _abort(link.upstream, rst=True)
            for pipe in link.pipes:
                pipe.cancel()
        self._flowing.set()

    def drop(self) -> None:
        """The service goes silent: connections stay open (new ones are accepted) but no
        byte is forwarded either way until `restore()`."""
        self._flowing.clear()

    async def restore(self) -> None:
        """Forward again, listening on the same port."""
        if self._listener is None:
            await self._listen()
        self._flowing.set()

    @property
    def open_links(self) -> int:
        return len(self._links)

    async def aclose(self) -> None:
        await self.reset()
        await asyncio.gather(*self._handlers, return_exceptions=True)
