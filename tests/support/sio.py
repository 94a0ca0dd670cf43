"""A Socket.IO test client that records every event and waits for the next one by name."""

from __future__ import annotations

import asyncio
from typing import Any

import socketio


class RecordingClient:
    def __init__(self, namespace: str = "/chat") -> None:
        self.namespace = namespace
        self.sio = socketio.AsyncClient(reconnection=False)
        self.events: list[tuple[str, Any]] = []
        self._cursor: dict[str, int] = {}
        self._changed = asyncio.Event()
        self.sio.on("*", self._record, namespace=namespace)

    async def _record(self, event: str, *args: Any) -> None:
        self.events.append((event, args[0] if args else None))
        self._changed.set()

    async def connect(self, url: str, transport: str = "websocket", **kwargs: Any) -> None:
        await self.sio.connect(
            url, namespaces=[self.namespace], transports=[transport], wait_timeout=5, **kwargs
        )

    async def emit(self, event: str, data: Any = None) -> None:
        await self.sio.emit(event, data, namespace=self.namespace)

    async def call(self, event: str, data: Any = None, timeout: float = 5) -> Any:
        """Emit and wait for the acknowledgement."""
        return await self.sio.call(event, data, namespace=self.namespace, timeout=timeout)

    def of(self, event: str) -> list[Any]:
        return [data for name, data in self.events if name == event]

    def names(self) -> list[str]:
        return [name for name, _ in self.events]

    async def next(self, event: str, timeout: float = 5) -> Any:
        """The next not yet consumed `event`, waiting for it if needed."""

        async def wait() -> Any:
            while True:
                seen = self.of(event)
                index = self._cursor.get(event, 0)
                if index < len(seen):
                    self._cursor[event] = index + 1
                    return seen[index]
                self._changed.clear()
                await self._changed.wait()

        return await asyncio.wait_for(wait(), timeout)

    async def nothing(self, event: str, seconds: float = 0.3) -> bool:
        """True when no new `event` arrives within `seconds`."""
        try:
            await self.next(event, timeout=seconds)
        except TimeoutError:
            return True
        return False

    async def close(self) -> None:
        if self.sio.transport() != "polling":
            await self.sio.disconnect()
            return
        # The polling client waits for its pending long-poll (up to the ping interval) after
        # sending the close packet; abort it instead of waiting.
        eio = self.sio.eio
        reader = eio.read_loop_task
        for namespace in self.sio.namespaces:
            await self.sio._send_packet(self.sio.packet_class(1, namespace=namespace))
        await eio.disconnect(abort=True)
        if reader is not None:
            reader.cancel()
            await asyncio.gather(reader, return_exceptions=True)


async def joined_chat_client(url: str, user_id: str = "user-1") -> tuple[RecordingClient, str]:
    """A `/chat` client that joined a new streaming session and has had its greeting."""
    client = RecordingClient()
    await client.connect(url)
    await client.emit("join-chat", {"userId": user_id, "stream": True})
    session_id = str((await client.next("chat-joined"))["sessionId"])
    await client.next("ai-message")
    return client, session_id
