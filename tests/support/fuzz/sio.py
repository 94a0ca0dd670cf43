"""A Socket.IO client for fuzzing: sends events with an ack, and pairs each error ack with
its `error` event (the contract sends both)."""

from __future__ import annotations

import asyncio
from typing import Any

import socketio

ACK_TIMEOUT_SECONDS = 10.0


class FuzzClient:
    def __init__(self, namespace: str) -> None:
        self.namespace = namespace
        self.sio = socketio.AsyncClient(reconnection=False)
        self.errors: list[Any] = []  # `error` events not yet paired with an ack
        self._arrived = asyncio.Event()
        self.sio.on("error", self._on_error, namespace=namespace)

    async def _on_error(self, data: Any = None) -> None:
        self.errors.append(data)
        self._arrived.set()

    async def connect(self, url: str) -> None:
        await self.sio.connect(
            url, namespaces=[self.namespace], transports=["websocket"], wait_timeout=5
        )

    async def call(self, event: str, data: Any = None) -> Any:
        """Emit `event` (a tuple is several arguments, None none) and return its ack."""
        return await self.sio.call(
            event, data, namespace=self.namespace, timeout=ACK_TIMEOUT_SECONDS
        )

    async def expect_error(self, message: str) -> None:
        """An `error {message}` event has arrived (or arrives): take it."""

        async def wait() -> None:
            while {"message": message} not in self.errors:
                self._arrived.clear()
                await self._arrived.wait()
            self.errors.remove({"message": message})

        await asyncio.wait_for(wait(), ACK_TIMEOUT_SECONDS)

    async def answered(self, event: str, data: Any, error: str | None) -> Any:
        """Send and check the contract's answer: with `error`, the ack `{error: {message}}`
        and the `error` event; without, an ack that is no error. Returns the ack."""
        reply = await self.call(event, data)
        if error is not None:
            assert reply == {"error": {"message": error}}, (event, data, reply)
            await self.expect_error(error)
        else:
            assert not (isinstance(reply, dict) and "error" in reply), (event, data, reply)
        return reply

    async def close(self) -> None:
        await self.sio.disconnect()
