"""One Redis pub/sub connection per process, channels subscribed on demand.

Shared by the Socket.IO fan-out (`server.transport.fanout`, a channel per room) and the
`/v1/session/chat` rooms (`server.rooms.registry`). No library internals here.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any

from redis.asyncio import Redis
from redis.exceptions import RedisError

log = logging.getLogger(__name__)

Handler = Callable[[bytes], Awaitable[None]]
_Publication = tuple[str, str | bytes, "asyncio.Future[None]"]
SUBSCRIBE_TIMEOUT = 5.0
PUBLISH_QUEUE = 10_000  # publications waiting for the publisher; past it, `publish` waits
PUBLISH_BATCH = 500  # publications per pipelined round trip
PUBLISH_ATTEMPTS = 3  # tries of a failed batch (0.1 s, then 0.2 s apart) before it is reported


class RedisChannels:
    """One Redis pub/sub connection of this process, channels subscribed on demand, and one
    publisher.

    `subscribe` returns once Redis has confirmed it, so a message published after that is
    delivered. The listener lives as long as this object: it waits while nothing is
    subscribed, and after Redis drops it reconnects and subscribes the same channels again
    (messages published while it was down are lost, as with any pub/sub).

    Publishing goes through one task and one connection: publications queue (at most
    `PUBLISH_QUEUE`; a burst beyond waits for room) and leave in pipelined batches, so a burst
    never asks the pool for a connection per message (redis-py's pool holds 100, and a burst
    of emits ran out: "Too many connections"). A batch that fails is tried again
    (`PUBLISH_ATTEMPTS`); `publish` returns once Redis took the message, or raises the error.
    """

    def __init__(self, url: str) -> None:
        self.redis = Redis.from_url(url)
        self._pubsub = self.redis.pubsub(ignore_subscribe_messages=False)
        self._handlers: dict[bytes, Handler] = {}
        self._confirmed: dict[bytes, asyncio.Event] = {}
        self._locks: dict[str, asyncio.Lock] = {}
        self._wanted = asyncio.Event()  # something is subscribed: the listener reads
        self._outbox: asyncio.Queue[_Publication] = asyncio.Queue(maxsize=PUBLISH_QUEUE)
        self._tasks: dict[str, asyncio.Task[None]] = {}

    def _start(self, work: Callable[[], Coroutine[Any, Any, None]]) -> None:
        """The listener or the publisher, in the running loop, on first use (the listener
        needs the pub/sub connection that the first subscription opens)."""
        name = work.__name__
        if name not in self._tasks:
            self._tasks[name] = asyncio.create_task(work(), name=f"redis-channels{name}")

    async def subscribe(self, channel: str, handler: Handler) -> None:
        key = channel.encode()
        self._handlers[key] = handler
        confirmed = self._confirmed.setdefault(key, asyncio.Event())
        confirmed.clear()
        try:
            await self._pubsub.subscribe(key)
        except BaseException:  # not subscribed: the next `follow` tries again
            self._handlers.pop(key, None)
            self._confirmed.pop(key, None)
            raise
        self._start(self._listen)
        self._wanted.set()
        try:
            await asyncio.wait_for(confirmed.wait(), SUBSCRIBE_TIMEOUT)
        except TimeoutError:
            log.warning("redis subscription not confirmed in time", extra={"channel": channel})

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
        self._start(self._publish_batches)
        sent: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        await self._outbox.put((channel, data, sent))
        await sent

    async def aclose(self) -> None:
        for task in self._tasks.values():
            task.cancel()
        await asyncio.gather(*self._tasks.values(), return_exceptions=True)
        while not self._outbox.empty():  # queued, never to be sent
            self._outbox.get_nowait()[2].cancel()
        await self._pubsub.aclose()
        await self.redis.aclose()

    async def _listen(self) -> None:
        delay = 0.1
        while True:
            if not self._handlers:
                self._wanted.clear()
                await self._wanted.wait()
            try:
                # blocking: a read cut by a timeout can leave half a reply in the parser
                message = await self._pubsub.get_message(timeout=None)
            except (RedisError, OSError) as exc:
                log.warning("redis pub/sub connection lost, retrying: %s", exc)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 5.0)
                continue
            delay = 0.1
            if message is not None:
                await self._dispatch(message)

    async def _publish_batches(self) -> None:
        while True:
            batch = [await self._outbox.get()]
            while len(batch) < PUBLISH_BATCH and not self._outbox.empty():
                batch.append(self._outbox.get_nowait())
            try:
                failure = await self._send(batch)
            except asyncio.CancelledError:  # closing: nobody waits for these forever
                for _, _, sent in batch:
                    sent.cancel()
                raise
            for _, _, sent in batch:
                if sent.done():  # its publisher gave up waiting
                    continue
                if failure is None:
                    sent.set_result(None)
                else:
                    sent.set_exception(failure)

    async def _send(self, batch: list[_Publication]) -> Exception | None:
        delay = 0.1
        failure: Exception | None = None
        for _ in range(PUBLISH_ATTEMPTS):
            try:
                async with self.redis.pipeline(transaction=False) as pipe:
                    for channel, data, _ in batch:
                        pipe.publish(channel, data)
                    await pipe.execute()
                return None
            except (RedisError, OSError) as exc:
                failure = exc
                await asyncio.sleep(delay)
                delay *= 2
        log.error("redis publish failed", extra={"messages": len(batch), "error": str(failure)})
        return failure

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
