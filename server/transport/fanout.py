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
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from functools import partial
from typing import Any, TypeGuard

from engineio import packet as eio_packet
from redis.exceptions import RedisError
from socketio import packet as sio_packet
from socketio.async_manager import AsyncManager
from socketio.async_pubsub_manager import AsyncPubSubManager
from socketio.packet import Packet

from server.metrics import FANOUT_RECEIVED
from server.transport.redis_channels import RedisChannels

log = logging.getLogger(__name__)


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


class RoomEvents:
    """What a namespace may ask of either manager, besides python-socketio's own methods."""

    holds: EventHold
    rooms: dict[str, dict[Any, Any]]

    @asynccontextmanager
    async def events_held(self, namespace: str, sid: str) -> AsyncIterator[set[str]]:
        """Hold the socket's room events for the block; then deliver them, except those
        whose `id` the block added to the yielded set (it sent them itself)."""
        self.holds.hold(namespace, sid)
        replayed: set[str] = set()
        try:
            yield replayed
        finally:
            await self.holds.release(self, namespace, sid, replayed)  # type: ignore[arg-type]

    def forget_held_events(self, namespace: str, sid: str) -> None:
        """The socket is gone: nothing is held or remembered for it any more."""
        self.holds.forget(namespace, sid)

    def may_have_members(self, namespace: str, room: str) -> bool:
        """False only when no socket anywhere is in the room (this process alone serves
        its rooms, and none of its sockets is in this one)."""
        return bool(self.rooms.get(namespace, {}).get(room))


class LocalManager(RoomEvents, AsyncManager):
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


class RoomChannelRedisManager(RoomEvents, AsyncPubSubManager):
    """python-socketio's pub/sub manager with a Redis channel per named room."""

    name = "mobok-redis"

    def __init__(self, url: str, channel: str = "mobok-socketio") -> None:
        super().__init__(channel=channel)
        self.bus = RedisChannels(url)
        self.holds = EventHold()
        self._inbox: asyncio.Queue[bytes] = asyncio.Queue()
        # python-socketio's listener task, set by its `initialize` (on the first connection)
        self.thread: asyncio.Future[None] | None = None

    def may_have_members(self, namespace: str, room: str) -> bool:
        return True  # other instances may have members

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
        thread = self.thread  # the listener python-socketio started, if anyone connected
        if thread is not None:
            thread.cancel()
            await asyncio.gather(thread, return_exceptions=True)
        await self.bus.aclose()
