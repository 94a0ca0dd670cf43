"""Socket.IO settings that make each packet cheaper (measured with `make bench`).

- `OrjsonModule`: python-socketio encodes and decodes every packet with its `json` module;
  orjson is several times faster. What orjson refuses or reads differently (lone
  surrogates, non-string keys, integers past 64 bits, NaN, deep nesting) goes through the
  standard module, as before: what is accepted does not change, and what is sent is the
  same JSON (Korean as UTF-8 rather than `\\uXXXX` escapes: half the bytes).
- `use_lean_websockets`: websockets served by `server.transport.websocket` outside aiohttp once
  the handshake is done, and pings by a `PingWheel`. Without permessage-deflate:
  python-engineio's aiohttp websocket accepted it whenever a client offered it (the npm
  client does), and then deflated every frame, each connection holding its own zlib state
  (most of the drop from 137 to 44 KiB per connection that `make bench` measured when it
  went). The NestJS server's engine.io has `perMessageDeflate: false` by default; so do we:
  replies are a few hundred bytes, and memory per connection matters more.
- `PacketQueue`: each socket's outgoing queue, at a fifteenth of `asyncio.Queue`'s size.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import re
import time
from typing import Any

import orjson
from engineio import json as engineio_json
from engineio import packet as eio_packet
from engineio.async_socket import AsyncSocket

from server.transport.websocket import DetachedWebSocket

log = logging.getLogger(__name__)

_LONG_NUMBER = re.compile(r"\d{16}")  # may not fit in 64 bits
_SEND_PING = AsyncSocket._send_ping  # hooks.py: an AttributeError at import if it is renamed


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


class PingWheel:
    """Every socket's next ping and ping deadline, in one-second slots, kept by one task.

    python-engineio starts a task per socket that sleeps through the ping interval (25 s),
    and its websocket loop reads and writes under deadlines (a task and a timer each): per
    idle connection, two tasks and three timers more. Here a socket is pinged from its slot,
    then looked at again once its answer is overdue: one whose PONG has not come is closed
    (python-engineio's own `check_ping_timeout`, which its service task also runs, but only
    once per round of every socket: up to a ping timeout later), and a closed socket's queue
    gets the end mark, which hangs up the websocket or ends the pending long-poll. A ping up
    to a second late is well inside the client's allowance (interval + timeout + grace)."""

    def __init__(self, eio: Any) -> None:
        self.eio = eio  # its ping_interval and ping_timeout, read when they are used
        self._slots: dict[int, list[tuple[AsyncSocket, bool]]] = {}  # (socket, is a deadline)
        self._ticker: asyncio.Task[None] | None = None
        self.sent = 0  # pings sent so far (the transport contract test reads it)

    def add(
        self, socket: AsyncSocket, *, after: float | None = None, deadline: bool = False
    ) -> None:
        loop = asyncio.get_running_loop()
        slot = math.ceil(loop.time() + (self.eio.ping_interval if after is None else after))
        self._slots.setdefault(slot, []).append((socket, deadline))
        if self._ticker is None or self._ticker.done():
            self._ticker = loop.create_task(self._tick())

    async def _tick(self) -> None:
        loop = asyncio.get_running_loop()
        while self._slots:
            await asyncio.sleep(1 - loop.time() % 1)
            now = loop.time()
            for second in [s for s in self._slots if s <= now]:
                for socket, deadline in self._slots.pop(second):
                    if deadline:
                        await self._let_go_if_silent(socket)
                    elif not socket.closing and not socket.closed:
                        socket.last_ping = time.time()  # what `check_ping_timeout` reads
                        socket.queue.put_nowait(eio_packet.Packet(eio_packet.PING))
                        self.sent += 1
                        self.add(socket, after=self.eio.ping_timeout + 1, deadline=True)

    @staticmethod
    async def _let_go_if_silent(socket: AsyncSocket) -> None:
        try:
            if not socket.closed and not socket.closing:
                await socket.check_ping_timeout()  # closes it when its PONG is overdue
        except Exception:  # a disconnect handler's failure must not stop every ping
            log.exception("engine.io ping timeout close failed")
        if socket.closed or socket.closing:
            socket.queue.put_nowait(None)  # the end mark: its transport is let go

    async def aclose(self) -> None:
        self._slots.clear()
        if self._ticker is not None:
            self._ticker.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._ticker


def use_lean_websockets(eio: Any) -> PingWheel:
    """python-engineio picks the websocket class from its async driver table (no option), and
    schedules each socket's next ping with `start_background_task(socket._send_ping)`: both
    are replaced. The wheel is to be closed when the server stops."""
    eio._async = {**eio._async, "websocket": DetachedWebSocket}
    wheel = PingWheel(eio)
    start_background_task = eio.start_background_task

    def start(target: Any, *args: Any, **kwargs: Any) -> Any:
        if getattr(target, "__func__", None) is _SEND_PING:  # a bound `socket._send_ping`
            return wheel.add(target.__self__)
        return start_background_task(target, *args, **kwargs)

    eio.start_background_task = start
    return wheel


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
