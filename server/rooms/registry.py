"""Who is in which room, and sending a frame to all of them."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any, Protocol

import orjson
from redis.exceptions import RedisError

from server.transport.redis_channels import RedisChannels

log = logging.getLogger(__name__)


class RoomClient(Protocol):
    """One connected client; `send` never raises for a client that has gone away."""

    async def send(self, frame: Mapping[str, Any]) -> None: ...

    async def close(self) -> None: ...


class RoomRegistry:
    """The clients of each room in this process; a frame reaches the room's clients here."""

    def __init__(self) -> None:
        self._rooms: dict[str, set[RoomClient]] = {}

    async def join(self, sid: str, client: RoomClient) -> None:
        self._rooms.setdefault(sid, set()).add(client)

    async def leave(self, sid: str, client: RoomClient) -> None:
        clients = self._rooms.get(sid)
        if clients is None:
            return
        clients.discard(client)
        if not clients:
            del self._rooms[sid]

    def clients(self, sid: str) -> list[RoomClient]:
        return list(self._rooms.get(sid, ()))

    def everyone(self) -> list[RoomClient]:
        return [c for clients in self._rooms.values() for c in clients]

    async def broadcast(self, sid: str, frame: Mapping[str, Any]) -> None:
        """To every client of the room, the sender included."""
        for client in self.clients(sid):
            await client.send(frame)


class ClusterRoomRegistry(RoomRegistry):
    """Rooms shared by every instance (`REDIS_URL`): a frame is published on the room's Redis
    channel, which each instance with clients in that room follows, the sender's included,
    so every client of the room, wherever it is connected, gets the frames in one order."""

    def __init__(self, bus: RedisChannels, prefix: str = "mobok-rooms#") -> None:
        super().__init__()
        self._bus = bus
        self._prefix = prefix

    async def join(self, sid: str, client: RoomClient) -> None:
        await super().join(sid, client)
        await self._follow(sid)

    async def leave(self, sid: str, client: RoomClient) -> None:
        await super().leave(sid, client)
        await self._follow(sid)

    async def broadcast(self, sid: str, frame: Mapping[str, Any]) -> None:
        try:
            await self._bus.publish(self._prefix + sid, orjson.dumps(frame))
        except (RedisError, OSError) as exc:  # the other instances miss it; these clients not
            log.error("cannot publish a room frame: %s", exc)
            await super().broadcast(sid, frame)

    async def _follow(self, sid: str) -> None:
        async def deliver(data: bytes) -> None:
            await RoomRegistry.broadcast(self, sid, orjson.loads(data))

        await self._bus.follow(self._prefix + sid, lambda: bool(self.clients(sid)), deliver)
