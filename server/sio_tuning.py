"""Socket.IO settings that make each packet cheaper (measured with `make bench`).

- `OrjsonModule`: python-socketio encodes and decodes every packet with its `json` module;
  orjson is several times faster. What orjson refuses or reads differently (lone
  surrogates, non-string keys, integers past 64 bits, NaN, deep nesting) goes through the
  standard module, as before: what is accepted does not change, and what is sent is the
  same JSON (Korean as UTF-8 rather than `\\uXXXX` escapes: half the bytes).
- `UncompressedWebSocket`: python-engineio's aiohttp websocket accepts permessage-deflate
  whenever a client offers it (the npm client does), and then deflates every frame, each
  connection holding its own zlib state (most of the drop from 137 to 44 KiB per connection
  that `make bench` measured when it went). The NestJS server's engine.io has
  `perMessageDeflate: false` by default; so do we: replies are a few hundred bytes, and
  memory per connection matters more.
- `PacketQueue`: each socket's outgoing queue, at a fifteenth of `asyncio.Queue`'s size.
"""

from __future__ import annotations

import asyncio
import re
from typing import Any

import orjson
from aiohttp.web import WebSocketResponse
from engineio import json as engineio_json
from engineio.async_drivers.aiohttp import WebSocket

_LONG_NUMBER = re.compile(r"\d{16}")  # may not fit in 64 bits


class OrjsonModule:
    """What python-socketio's `json=` option wants: `dumps` and `loads` returning str."""

    @staticmethod
    def dumps(obj: Any, **kwargs: Any) -> str:
        try:
            return orjson.dumps(obj).decode()
        except TypeError:
            return engineio_json.dumps(obj, separators=(",", ":"))  # type: ignore[attr-defined,no-any-return]

    @staticmethod
    def loads(text: str | bytes, **kwargs: Any) -> Any:
        # orjson reads integers past 64 bits as floats, and refuses what the standard module
        # takes (NaN, lone surrogates, deep nesting): those texts go to the standard module
        if isinstance(text, str) and not _LONG_NUMBER.search(text):
            try:
                return orjson.loads(text)
            except orjson.JSONDecodeError:
                pass
        return engineio_json.loads(text, **kwargs)


class UncompressedWebSocket(WebSocket):  # type: ignore[misc]
    """python-engineio's aiohttp websocket, without permessage-deflate."""

    async def __call__(self, environ: dict[str, Any]) -> WebSocketResponse:
        request = environ["aiohttp.request"]
        self._sock = WebSocketResponse(
            max_msg_size=self.server.max_http_buffer_size, compress=False
        )
        await self._sock.prepare(request)
        self.environ = environ
        await self.handler(self)
        return self._sock


def use_uncompressed_websockets(eio: Any) -> None:
    """python-engineio picks the websocket class from its async driver table (no option)."""
    eio._async = {**eio._async, "websocket": UncompressedWebSocket}


class PacketQueue:
    """What python-engineio needs of a socket's outgoing queue (`get` with a deadline,
    `get_nowait`, `put`, `put_nowait`, `task_done`, `join`), in ~200 bytes: an
    `asyncio.Queue` holds ~3 KiB of deques and futures for every connection, idle or not.
    """

    __slots__ = ("_getters", "_items", "_joiner", "_unfinished")

    def __init__(self) -> None:
        self._items: list[Any] = []
        self._getters: list[asyncio.Future[None]] | None = None  # made when someone waits
        self._joiner: asyncio.Future[None] | None = None
        self._unfinished = 0

    def qsize(self) -> int:
        return len(self._items)

    def empty(self) -> bool:
        return not self._items

    def put_nowait(self, item: Any) -> None:
        self._items.append(item)
        self._unfinished += 1
        if self._getters:
            self._wake_next()

    async def put(self, item: Any) -> None:
        self.put_nowait(item)

    def get_nowait(self) -> Any:
        if not self._items:
            raise asyncio.QueueEmpty
        return self._items.pop(0)

    async def get(self) -> Any:
        while not self._items:
            waiter = asyncio.get_running_loop().create_future()
            if self._getters is None:
                self._getters = []
            self._getters.append(waiter)
            try:
                await waiter
            except BaseException:
                if self._getters is not None and waiter in self._getters:
                    self._getters.remove(waiter)
                elif self._items and self._getters:
                    # woken and then cancelled: the item goes to the next in line
                    self._wake_next()
                raise
            if not self._getters:
                self._getters = None
        return self._items.pop(0)

    def _wake_next(self) -> None:
        while self._getters:
            waiter = self._getters.pop(0)
            if not waiter.done():
                waiter.set_result(None)
                return

    def task_done(self) -> None:
        if self._unfinished <= 0:
            raise ValueError("task_done() called too many times")
        self._unfinished -= 1
        if self._unfinished == 0 and self._joiner is not None and not self._joiner.done():
            self._joiner.set_result(None)

    async def join(self) -> None:
        if self._unfinished:
            if self._joiner is None or self._joiner.done():
                self._joiner = asyncio.get_running_loop().create_future()
            await asyncio.shield(self._joiner)


def use_small_queues(eio: Any) -> None:
    """`create_queue` is python-engineio's hook for the queue of each socket."""
    eio.create_queue = lambda *args, **kwargs: PacketQueue()
