"""Fan-out across instances: python-socketio's pub/sub manager over Redis, a channel per room.

python-socketio's `AsyncRedisManager` publishes every emit on one channel, so every instance
decodes every emit of the cluster, even for rooms it has no sockets in, and even an emit to a
socket of its own goes through Redis. Here:

- an emit to one of this instance's own sockets (`to=sid`) never leaves the process;
- an emit to a named room (`chat:<id>`: our room names always hold a `:`, Engine.IO sids never
  do) is published on that room's channel, which only instances with members in the room
  subscribe to (they subscribe when their first socket enters it and before `enter_room`
  returns, so nothing stored after a join can be missed);
- everything else (remote disconnects, room changes of remote sockets, ack callbacks,
  broadcasts) keeps the shared channel, as python-socketio does.

Both managers (this one and the single-process one) can also *hold* a socket's room events
while it is being resumed; see `EventHold`.
"""

from __future__ import annotations

import asyncio
import base64
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine
from functools import partial
from typing import Any, TypeGuard

from engineio import packet as eio_packet
from redis.asyncio import Redis
from redis.exceptions import RedisError
from socketio import packet as sio_packet
from socketio.async_manager import AsyncManager
from socketio.async_pubsub_manager import AsyncPubSubManager
from socketio.packet import Packet

from server.metrics import FANOUT_RECEIVED

log = logging.getLogger(__name__)

Handler = Callable[[bytes], Awaitable[None]]
_Publication = tuple[str, str | bytes, "asyncio.Future[None]"]
SUBSCRIBE_TIMEOUT = 5.0
LISTEN_POLL_SECONDS = 1.0  # the listener's read wakes this often (a new subscription, a drop)
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
        await self._pubsub.aclose()
        await self.redis.aclose()

    async def _listen(self) -> None:
        delay = 0.1
        while True:
            if not self._handlers:
                self._wanted.clear()
                await self._wanted.wait()
            try:
                message = await self._pubsub.get_message(timeout=LISTEN_POLL_SECONDS)
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
            failure = await self._send(batch)
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


class EventHold:
    """Room events to a resuming socket kept back, then delivered in order, minus replays.

    A resuming client enters its session room before the server reads what it missed, so
    nothing stored meanwhile can slip between the two. Its live room events are held while the
    missed messages are replayed; then the held ones are delivered, except the messages the
    replay already sent (by `id`), which are also dropped if their live copy comes later.
    """

    def __init__(self) -> None:
        self._held: dict[tuple[str, str], list[tuple[str, Any]]] = {}
        self._replayed: dict[tuple[str, str], set[str]] = {}

    def hold(self, namespace: str, sid: str) -> None:
        self._held.setdefault((namespace, sid), [])

    async def release(
        self, manager: AsyncManager, namespace: str, sid: str, replayed: set[str]
    ) -> None:
        key = (namespace, sid)
        if replayed:
            self._replayed.setdefault(key, set()).update(replayed)
        while self._held.get(key):  # events that arrive while flushing join the queue
            batch, self._held[key] = self._held[key], []
            for event, data in batch:
                if not self._already_sent(key, data):
                    await AsyncManager.emit(manager, event, data, namespace, room=sid)
        self._held.pop(key, None)

    def forget(self, namespace: str, sid: str) -> None:
        self._held.pop((namespace, sid), None)
        self._replayed.pop((namespace, sid), None)

    def keep_back(
        self, manager: AsyncManager, event: str, data: Any, namespace: str, room: Any, skip_sid: Any
    ) -> list[str]:
        """Queue or drop the event for resuming sockets in `room`; returns them, to be
        skipped by the delivery under way."""
        if not (self._held or self._replayed) or not isinstance(room, str):
            return []
        skipped = skip_sid if isinstance(skip_sid, list) else [skip_sid]
        kept = []
        for sid, _ in manager.get_participants(namespace, room):
            key = (namespace, sid)
            if sid == room or sid in skipped:
                continue
            queue = self._held.get(key)
            if queue is not None:
                queue.append((event, data))
                kept.append(sid)
            elif key in self._replayed and self._already_sent(key, data):
                kept.append(sid)
        return kept

    def _already_sent(self, key: tuple[str, str], data: Any) -> bool:
        replayed = self._replayed.get(key)
        if not replayed or not isinstance(data, dict) or data.get("id") not in replayed:
            return False
        replayed.discard(data["id"])  # a message is emitted live once
        if not replayed:
            del self._replayed[key]
        return True


async def _deliver_locally(
    manager: AsyncManager,
    holds: EventHold,
    event: str,
    data: Any,
    namespace: str,
    room: Any,
    skip_sid: Any,
    callback: Any,
) -> None:
    if callback is not None:
        await AsyncManager.emit(
            manager, event, data, namespace, room=room, skip_sid=skip_sid, callback=callback
        )
        return
    held = holds.keep_back(manager, event, data, namespace, room, skip_sid)
    skipped = set(skip_sid if isinstance(skip_sid, list) else [skip_sid])
    skipped.update(held or ())
    await _send_to_each(manager, event, data, namespace, room, skipped)


async def _send_to_each(
    manager: AsyncManager, event: str, data: Any, namespace: str, room: Any, skipped: set[Any]
) -> None:
    """python-socketio's `emit` without a callback, less a task per recipient: it encodes the
    packet once, then starts a task for each socket and waits for them all, which was a tenth
    of a chat turn's CPU (`make bench`); putting a packet on a socket's queue never waits."""
    if namespace not in manager.rooms:
        return
    recipients = [
        eio_sid for sid, eio_sid in manager.get_participants(namespace, room) if sid not in skipped
    ]
    if not recipients:
        return
    args = list(data) if isinstance(data, tuple) else [] if data is None else [data]
    encoded = manager.server.packet_class(
        sio_packet.EVENT, namespace=namespace, data=[event, *args]
    ).encode()
    packets = [
        eio_packet.Packet(eio_packet.MESSAGE, p)
        for p in (encoded if isinstance(encoded, list) else [encoded])
    ]
    for eio_sid in recipients:
        for p in packets:
            await manager.server._send_eio_packet(eio_sid, p)


class LocalManager(AsyncManager):
    """The single-process manager, with holds for resuming sockets."""

    def __init__(self) -> None:
        super().__init__()
        self.holds = EventHold()

    async def aclose(self) -> None:
        pass

    async def emit(  # type: ignore[override]
        self,
        event: str,
        data: Any,
        namespace: str,
        room: Any = None,
        skip_sid: Any = None,
        callback: Any = None,
        to: Any = None,
        **kwargs: Any,
    ) -> None:
        await _deliver_locally(
            self, self.holds, event, data, namespace, to or room, skip_sid, callback
        )


def is_named_room(room: Any) -> TypeGuard[str]:
    return isinstance(room, str) and ":" in room


class RoomChannelRedisManager(AsyncPubSubManager):
    """python-socketio's pub/sub manager with a Redis channel per named room."""

    name = "mobok-redis"

    def __init__(self, url: str, channel: str = "mobok-socketio") -> None:
        super().__init__(channel=channel)
        self.bus = RedisChannels(url)
        self.holds = EventHold()
        self._inbox: asyncio.Queue[bytes] = asyncio.Queue()

    # ---- routing ------------------------------------------------------------------------
    def room_channel(self, namespace: str, room: str) -> str:
        return f"{self.channel}#{namespace}#{room}"

    async def emit(  # type: ignore[override]
        self,
        event: str,
        data: Any,
        namespace: str | None = None,
        room: Any = None,
        skip_sid: Any = None,
        callback: Any = None,
        to: Any = None,
        **kwargs: Any,
    ) -> None:
        room = to or room
        namespace = namespace or "/"
        local_sid = isinstance(room, str) and self.is_connected(room, namespace)
        if kwargs.get("ignore_queue") or (local_sid and callback is None):
            await _deliver_locally(
                self, self.holds, event, data, namespace, room, skip_sid, callback
            )
            return
        await super().emit(
            event, data, namespace=namespace, room=room, skip_sid=skip_sid, callback=callback
        )

    async def _publish(self, data: dict[str, Any]) -> None:
        room = data.get("room")
        if data.get("method") == "emit" and data.get("callback") is None and is_named_room(room):
            channel = self.room_channel(data["namespace"], room)
        else:
            channel = self.channel
        try:
            await self.bus.publish(channel, self.json.dumps(data))
        except (RedisError, OSError) as exc:
            log.error("cannot publish to redis: %s", exc)

    async def _listen(self) -> AsyncIterator[bytes]:  # type: ignore[override]
        await self.bus.subscribe(self.channel, self._inbox.put)
        while True:
            data = await self._inbox.get()
            FANOUT_RECEIVED.inc()
            yield data

    async def _handle_emit(self, message: dict[str, Any]) -> None:
        remote_callback = message.get("callback")
        callback = None
        if remote_callback is not None and len(remote_callback) == 3:
            callback = partial(self._return_callback, message.get("host_id"), *remote_callback)
        data = message["data"]
        if message.get("binary"):
            attachments = [base64.b64decode(a) for a in data[1:]]
            data = Packet.reconstruct_binary(data[0], attachments)
        if isinstance(data, list):
            data = data[0] if len(data) == 1 else tuple(data)
        room = message.get("room")
        namespace = message.get("namespace") or "/"
        await _deliver_locally(
            self,
            self.holds,
            message["event"],
            data,
            namespace,
            room,
            message.get("skip_sid"),
            callback,
        )
        if is_named_room(room) and not self.get_participants(namespace, room):
            await self._sync_subscription(namespace, room)  # last member left meanwhile

    # ---- room membership drives the room channels ----------------------------------------
    async def enter_room(self, sid: str, namespace: str, room: str, eio_sid: Any = None) -> None:
        await super().enter_room(sid, namespace, room, eio_sid=eio_sid)
        if is_named_room(room) and self.is_connected(sid, namespace):
            await self._sync_subscription(namespace, room)

    async def leave_room(self, sid: str, namespace: str, room: str) -> None:
        await super().leave_room(sid, namespace, room)
        if is_named_room(room):
            await self._sync_subscription(namespace, room)

    async def _handle_enter_room(self, message: dict[str, Any]) -> None:
        await super()._handle_enter_room(message)  # another instance moved one of our sockets
        room, namespace = message.get("room"), message.get("namespace") or "/"
        if is_named_room(room):
            await self._sync_subscription(namespace, room)

    async def _handle_leave_room(self, message: dict[str, Any]) -> None:
        await super()._handle_leave_room(message)
        room, namespace = message.get("room"), message.get("namespace") or "/"
        if is_named_room(room):
            await self._sync_subscription(namespace, room)

    async def _sync_subscription(self, namespace: str, room: str) -> None:
        """Subscribed exactly while a socket of this instance is in the room."""
        await self.bus.follow(
            self.room_channel(namespace, room),
            lambda: bool(self.rooms.get(namespace, {}).get(room)),
            self._inbox.put,
        )

    async def aclose(self) -> None:
        thread = getattr(self, "thread", None)  # the listener python-socketio started
        if isinstance(thread, asyncio.Future):
            thread.cancel()
            await asyncio.gather(thread, return_exceptions=True)
        await self.bus.aclose()
