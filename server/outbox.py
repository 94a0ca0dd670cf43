"""One plain websocket's outgoing frames: a queue of its own, written by a task of its own.

A client that stops reading fills its TCP window, then the kernel's buffer, then aiohttp's
writes wait (`drain`) for it. A broadcast that awaited each client in turn would then wait
for the slowest one, and every other client of the room (with Redis, of every room the
instance serves) would wait too. Here `put` never waits: the frame joins this client's queue
and its writer sends it when the client takes it. Past `limit` bytes not yet taken (queued
and in the transport's buffer), the client is cut off at once (the transport aborted: a
polite close frame would itself wait behind the unsent data), as the Socket.IO websockets
are at 16 MiB (`server.transport.websocket.MAX_UNSENT_BYTES`).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import deque

from aiohttp import WSMsgType, web

log = logging.getLogger(__name__)

CLOSE_FLUSH_SECONDS = 5.0  # a closing socket's queued frames get this long to be sent


class Outbox:
    def __init__(self, ws: web.WebSocketResponse, request: web.Request, limit: int) -> None:
        self._ws = ws
        self._transport = request.transport
        self._limit = limit
        self._frames: deque[bytes] = deque()
        self._queued = 0  # bytes in `_frames`
        self._ready = asyncio.Event()
        self._emptied = asyncio.Event()
        self._emptied.set()
        self.cut_off = False
        self._writer = asyncio.create_task(self._write())

    def put(self, frame: bytes) -> bool:
        """Queue one text frame (UTF-8 JSON); False when the client is gone or was cut off."""
        if self.cut_off or self._ws.closed or self._transport is None:
            return False
        if self._queued + self._unwritten() + len(frame) > self._limit:
            self._cut_off()
            return False
        self._frames.append(frame)
        self._queued += len(frame)
        self._emptied.clear()
        self._ready.set()
        return True

    async def close(self, code: int, message: bytes = b"") -> None:
        """Send what is queued (for a few seconds at most), then close the socket."""
        if not self.cut_off:
            try:
                async with asyncio.timeout(CLOSE_FLUSH_SECONDS):
                    await self._emptied.wait()
                    await self._ws.close(code=code, message=message)
            except TimeoutError:
                self._cut_off()
        await self.aclose()

    async def aclose(self) -> None:
        """Stop the writer (the socket's handler does this when the socket has ended)."""
        self._writer.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._writer

    def _unwritten(self) -> int:
        transport = self._transport
        return transport.get_write_buffer_size() if transport is not None else 0

    def _cut_off(self) -> None:
        self.cut_off = True
        log.info(
            "websocket client reads too slowly: cut off",
            extra={"unsent_bytes": self._queued + self._unwritten()},
        )
        self._frames.clear()
        self._queued = 0
        self._emptied.set()
        if self._transport is not None:
            self._transport.abort()  # the handler's read loop ends, and the client leaves

    async def _write(self) -> None:
        while True:
            await self._ready.wait()
            while self._frames:
                frame = self._frames.popleft()
                self._queued -= len(frame)  # from here on in the transport's buffer
                try:
                    await self._ws.send_frame(frame, WSMsgType.TEXT)
                except (ConnectionError, RuntimeError):  # gone: its handler ends the socket
                    self._frames.clear()
                    self._queued = 0
            self._ready.clear()
            self._emptied.set()
