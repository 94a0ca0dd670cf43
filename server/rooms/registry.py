"""Who is in which room, and sending a frame to all of them."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Protocol


class RoomClient(Protocol):
    """One connected client; `send` never raises for a client that has gone away."""

    async def send(self, frame: Mapping[str, Any]) -> None: ...

    async def close(self) -> None: ...


class RoomRegistry:
    """The clients of each room in this process (rooms are not shared across instances)."""

    def __init__(self) -> None:
        self._rooms: dict[str, set[RoomClient]] = {}

    def join(self, sid: str, client: RoomClient) -> None:
        self._rooms.setdefault(sid, set()).add(client)

    def leave(self, sid: str, client: RoomClient) -> None:
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
