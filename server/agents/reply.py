"""One reply on its way to a client: start, coalesced deltas, end.

Frames go to the client's *current* connection. A client that reconnects in the middle of
a reply gets the block opened on its new connection, with the text sent so far, and the
rest as it comes: the reply is not lost to a network blip.
"""

from __future__ import annotations

from server.agents.connections import (
    AgentEvent,
    ClientLink,
    ConnectionRegistry,
    Failure,
    ReplyDelta,
    ReplyEnded,
    ReplyStarted,
)
from server.conversation.coalesce import DeltaCoalescer


class ReplyOutput:
    def __init__(self, registry: ConnectionRegistry, client_id: str, flush_seconds: float) -> None:
        self._registry = registry
        self._client_id = client_id
        self._link: ClientLink | None = None
        self._sent = ""  # the text this reply's deltas carried so far
        self._coalescer = DeltaCoalescer(self._send_delta, flush_seconds)

    async def start(self) -> None:
        await self._emit(ReplyStarted())

    async def add(self, delta: str) -> None:
        await self._coalescer.add(delta)

    async def flush(self) -> None:
        await self._coalescer.flush()

    async def end(self) -> None:
        await self.flush()
        await self._emit(ReplyEnded())

    async def fail(self, message: str) -> None:
        """The reply cannot be finished: say why, and still close the block."""
        await self.flush()
        await self._emit(Failure(message))
        await self._emit(ReplyEnded())

    async def _send_delta(self, text: str) -> None:
        await self._emit(ReplyDelta(text))
        self._sent += text

    async def _emit(self, event: AgentEvent) -> None:
        link = self._registry.current(self._client_id)
        if link is None:
            return  # nobody connected: the reply is still stored in the history
        if link is not self._link:
            self._link = link
            if not isinstance(event, ReplyStarted):
                # a connection that arrived mid-reply: open the block and catch it up
                await link.send(ReplyStarted())
                if self._sent:
                    await link.send(ReplyDelta(self._sent))
        await link.send(event)
