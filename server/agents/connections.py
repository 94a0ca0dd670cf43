"""Who is connected: one live link per client id, and sending to one, a project, or everyone.

The core speaks in `AgentEvent`s; the WebSocket adapter turns them into frames. A client id
has at most one link: a newer connection replaces the older one (the adapter closes it).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Protocol

from server.conversation.lanes import Lanes


@dataclass(frozen=True, slots=True)
class ReplyStarted:
    pass


@dataclass(frozen=True, slots=True)
class ReplyDelta:
    text: str


@dataclass(frozen=True, slots=True)
class ReplyEnded:
    pass


@dataclass(frozen=True, slots=True)
class AutoReport:
    content: str


@dataclass(frozen=True, slots=True)
class Failure:
    message: str


AgentEvent = ReplyStarted | ReplyDelta | ReplyEnded | AutoReport | Failure


class ClientLink(Protocol):
    async def send(self, event: AgentEvent) -> bool:
        """False when the connection is gone (nothing raised)."""
        ...


@dataclass
class _Entry:
    link: ClientLink
    projects: set[str] = field(default_factory=set)


class ConnectionRegistry:
    def __init__(self) -> None:
        self._entries: dict[str, _Entry] = {}
        # Held by whoever sends a client an ordered block (a reply from start to end, or
        # reports), so an auto_report never lands between a reply's start and end.
        self._blocks = Lanes()

    def connect(
        self, client_id: str, link: ClientLink, projects: Iterable[str] = ()
    ) -> ClientLink | None:
        """Make `link` the client's connection; the one it replaces, if any, is returned."""
        previous = self._entries.get(client_id)
        self._entries[client_id] = _Entry(link, set(projects))
        return previous.link if previous is not None else None

    def disconnect(self, client_id: str, link: ClientLink) -> None:
        entry = self._entries.get(client_id)
        if entry is not None and entry.link is link:
            del self._entries[client_id]

    def current(self, client_id: str) -> ClientLink | None:
        entry = self._entries.get(client_id)
        return entry.link if entry is not None else None

    def note_project(self, client_id: str, project_id: str) -> None:
        """The connected client talks to this project (it then receives its broadcasts)."""
        entry = self._entries.get(client_id)
        if entry is not None:
            entry.projects.add(project_id)

    def clients(self, project_id: str | None = None) -> list[str]:
        return [
            client_id
            for client_id, entry in self._entries.items()
            if project_id is None or project_id in entry.projects
        ]

    @asynccontextmanager
    async def block(self, client_id: str) -> AsyncIterator[None]:
        async with self._blocks.lane(client_id):
            yield

    async def send(self, client_id: str, event: AgentEvent) -> bool:
        link = self.current(client_id)
        return link is not None and await link.send(event)

    async def broadcast(self, event: AgentEvent, project_id: str | None = None) -> int:
        """Send to every connected client (of `project_id` when given), between their reply
        blocks; the number of clients that got it."""

        async def one(client_id: str) -> bool:
            async with self.block(client_id):
                return await self.send(client_id, event)

        sent = await asyncio.gather(*(one(c) for c in self.clients(project_id)))
        return sum(sent)
