"""One Redis pub/sub connection per process, channels subscribed on demand.

Shared by the Socket.IO fan-out (`server.transport.fanout`, a channel per room) and the
`/v1/session/chat` rooms (`server.rooms.registry`). No library internals here.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from redis.asyncio import Redis
from redis.exceptions import RedisError

log = logging.getLogger(__name__)

Handler = Callable[[bytes], Awaitable[None]]
SUBSCRIBE_TIMEOUT = 5.0


class RedisChannels:
    """One Redis pub/sub connection of this process, channels subscribed on demand.

    `subscribe` returns once Redis has confirmed it, so a message published after that is
    delivered. The connection comes back by itself after a Redis restart, with the same
    channels (messages published while it was down are lost, as with any pub/sub).
    """

    def __init__(self, url: str) -> None:
        self.redis = Redis.from_url(url)
        self._pubsub = self.redis.pubsub(ignore_subscribe_messages=False)
        self._handlers: dict[bytes, Handler] = {}
        self._confirmed: dict[bytes, asyncio.Event] = {}
        self._task: asyncio.Task[None] | None = None
        self._locks: dict[str, asyncio.Lock] = {}

    async def subscribe(self, channel: str, handler: Handler) -> None:
        key = channel.encode()
        self._handlers[key] = handler
        confirmed = self._confirmed.setdefault(key, asyncio.Event())
        confirmed.clear()
        await self._pubsub.subscribe(key)
        if self._task is None:
            self._task = asyncio.create_task(self._listen(), name="redis-channels")
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(confirmed.wait(), SUBSCRIBE_TIMEOUT)

    async def unsubscribe(self, channel: str) -> None:
        key = channel.encode()
        self._handlers.pop(key, None)
        self._confirmed.pop(key, None)
        await self._pubsub.unsubscribe(key)

    def is_subscribed(self, channel: str) -> bool:
        return channel.encode() in self._handlers

    async def follow(self, channel: str, wanted: Callable[[], bool], handler: Handler) -> None:
        """Subscribe or unsubscribe so that the channel is followed exactly while `wanted()`.

        Decisions about one channel are taken one at a time, on the state of the moment, so a
        join racing a leave always ends in the right state."""
        lock = self._locks.setdefault(channel, asyncio.Lock())
        async with lock:
            want = wanted()
            try:
                if want and not self.is_subscribed(channel):
                    await self.subscribe(channel, handler)
                elif not want and self.is_subscribed(channel):
                    await self.unsubscribe(channel)
            except (RedisError, OSError) as exc:
                log.error("cannot change a subscription: %s", exc)
        if not want and not lock.locked():
            self._locks.pop(channel, None)

    async def publish(self, channel: str, data: str | bytes) -> None:
        await self.redis.publish(channel, data)

    async def aclose(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
        await self._pubsub.aclose()
        await self.redis.aclose()

    async def _listen(self) -> None:
        delay = 0.1
        while True:
            try:
                async for message in self._pubsub.listen():
                    delay = 0.1
                    await self._dispatch(message)
                if not self._pubsub.subscribed:
                    return  # nothing left to listen to; the next subscribe starts again
            except (RedisError, OSError) as exc:
                log.warning("redis pub/sub connection lost, retrying: %s", exc)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 5.0)

    async def _dispatch(self, message: dict[str, Any]) -> None:
        kind = message["type"]
        channel = message["channel"]
        if kind == "subscribe":
            confirmed = self._confirmed.get(channel)
            if confirmed is not None:
                confirmed.set()
        elif kind == "message":
            handler = self._handlers.get(channel)
            if handler is not None:
                try:
                    await handler(message["data"])
                except Exception:
                    log.exception("pub/sub handler failed", extra={"channel": channel[:80]})
