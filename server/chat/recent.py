"""The last messages of recently active sessions, kept in memory (see `history.py` for when
they are trusted).

An entry holds up to `keep` messages in stored order (`created_at`) and the number of rows
the session had in the database when they were read, kept in step with this process's own
writes. Least recently used sessions are forgotten past `sessions` entries.
"""

from __future__ import annotations

from bisect import insort
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from server.chat.stored import StoredMessage

DEFAULT_KEEP = 48  # a context of 20 needs up to 40 (questions and answers interleaved) + a few
DEFAULT_SESSIONS = 4096


@dataclass(slots=True)
class _Entry:
    count: int  # rows of the session in the database
    messages: list[StoredMessage] = field(default_factory=list)


def _stamp(m: StoredMessage) -> tuple[object, str]:
    return (m.created_at, m.id)


class RecentCache:
    def __init__(self, keep: int = DEFAULT_KEEP, sessions: int = DEFAULT_SESSIONS) -> None:
        self.keep = keep
        self.sessions = sessions
        self._entries: OrderedDict[str, _Entry] = OrderedDict()

    def __len__(self) -> int:
        return len(self._entries)

    def count(self, session_id: str) -> int | None:
        entry = self._entries.get(session_id)
        return None if entry is None else entry.count

    def recent(self, session_id: str, limit: int) -> list[StoredMessage] | None:
        """The last `limit` messages, or None when the entry cannot tell (absent, or the
        session has more rows than the entry holds and `limit` reaches past them)."""
        entry = self._entries.get(session_id)
        if entry is None:
            return None
        if limit > len(entry.messages) and entry.count > len(entry.messages):
            return None
        self._entries.move_to_end(session_id)
        return entry.messages[-limit:] if limit > 0 else []

    def fill(self, session_id: str, messages: list[StoredMessage], count: int) -> None:
        """What the database said: the last messages (oldest first) and the row count."""
        self._entries[session_id] = _Entry(count, messages[-self.keep :])
        self._entries.move_to_end(session_id)
        while len(self._entries) > self.sessions:
            self._entries.popitem(last=False)

    def stored(self, message: StoredMessage) -> None:
        """This process stored `message`: a cached session keeps it (in stored order)."""
        entry = self._entries.get(message.session_id)
        if entry is None:
            return
        if any(m.id == message.id for m in entry.messages):
            return  # a read that raced the write has it already
        entry.count += 1
        insort(entry.messages, message, key=_stamp)
        if len(entry.messages) > self.keep:
            del entry.messages[0]

    def replaced(self, message: StoredMessage) -> None:
        """This process changed a stored message (its metadata, its content): a cached copy
        is swapped for it. The row count is unchanged."""
        entry = self._entries.get(message.session_id)
        if entry is None:
            return
        for i, cached in enumerate(entry.messages):
            if cached.id == message.id:
                entry.messages[i] = message
                return

    def drop(self, session_id: str) -> None:
        self._entries.pop(session_id, None)
