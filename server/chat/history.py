"""Stored messages of a session (`chat_messages`).

The hot path of a chat turn (store the user's message, read the model's context, store the
reply) is plain parameterized SQL on the ORM's connection, batched under load
(`server.chat.message_table`); rarer reads use the models.

**The recent-messages cache, and when it is trusted.** Each `HistoryStore` keeps the last
messages of the sessions it served lately (`RecentCache`) with the number of rows the
session had in the database, kept in step with this store's own writes. Any instance (or
the NestJS server, or a call's transcript) may write to any session, so:

- the cache is only used for a model's context, and only after a check: the session's
  `COUNT(*)` (an index-only, non-locking read, batched with other sessions') must equal the
  cached count; if anyone else wrote, it differs, and the context is read from the
  database (and cached again). Messages are never deleted, so an equal count means the
  same rows;
- history, REST and resumes always read the database;
- a write that fails or is cancelled drops the session's entry (stored or not, nobody
  knows).

The check is its own statement: inside the user message's `INSERT ... SELECT` it made
InnoDB take shared next-key locks on the session's index range (gaps other sessions insert
into), and under load one turn of a 5,000-turn run failed with a database error.
"""

from __future__ import annotations

import uuid
from dataclasses import replace
from typing import Any

import orjson

from models import ChatMessage, MessageType, Sender
from server.chat import clock
from server.chat.message_table import MessageTable
from server.chat.recent import RecentCache
from server.chat.stored import StoredMessage

_MESSAGE_ID_LENGTH = 36  # `chat_messages.id`


class HistoryStore:
    def __init__(self, cache: RecentCache | None = None) -> None:
        self.cache = cache or RecentCache()
        self._table: MessageTable | None = None

    def _messages(self) -> MessageTable:
        conn = ChatMessage._meta.db  # the connection the models use
        if self._table is None or self._table.conn is not conn:
            self._table = MessageTable(conn)
        return self._table

    async def add(
        self,
        session_id: str,
        sender: Sender,
        content: str,
        *,
        message_type: MessageType = MessageType.TEXT,
        metadata: dict[str, Any] | None = None,
    ) -> StoredMessage:
        return await self.store(new_message(session_id, sender, content, message_type, metadata))

    async def store(self, message: StoredMessage) -> StoredMessage:
        """Store a message made with `new_message`."""
        try:
            await self._messages().insert(_values(message))
        except BaseException:
            self.cache.drop(message.session_id)  # stored or not: nobody knows
            raise
        self.cache.stored(message)
        return message

    async def annotate(self, message: StoredMessage, extra: dict[str, Any]) -> StoredMessage:
        """Add `extra` to a stored message's metadata (what was learned about it after it
        was stored, e.g. the sentiment of a caller's utterance)."""
        metadata = {**(message.metadata or {}), **extra}
        try:
            await ChatMessage.filter(id=message.id).update(metadata=metadata)
        except BaseException:
            self.cache.drop(message.session_id)  # changed or not: nobody knows
            raise
        annotated = replace(message, metadata=metadata)
        self.cache.replaced(annotated)
        return annotated

    def started(self, session_id: str) -> None:
        """A session this process has just created has no messages yet (if someone else
        wrote under its id before, the first check finds the count wrong)."""
        self.cache.fill(session_id, [], 0)

    async def add_if_active(
        self,
        session_id: str,
        sender: Sender,
        content: str,
        *,
        metadata: dict[str, Any] | None = None,
        message_id: str | None = None,
    ) -> StoredMessage | None:
        """Store the message if the session is active (one statement); None if it is not.
        A `message_id` already stored fails with the ORM's `IntegrityError`."""
        message = new_message(session_id, sender, content, MessageType.TEXT, metadata, message_id)
        try:
            inserted = await self._messages().insert_if_active(_values(message), session_id)
        except BaseException:
            self.cache.drop(session_id)
            raise
        if inserted:
            self.cache.stored(message)
            return message
        return None

    async def context(self, session_id: str, limit: int) -> list[StoredMessage]:
        """The last `limit` messages, oldest first, for a model's context: from the cache
        when nobody else has written to the session since (one `COUNT`), else read."""
        known = self.cache.count(session_id)
        if known is None:
            return await self._load(session_id, limit)
        count = await self._count(session_id)
        cached = self.cache.recent(session_id, limit) if count == known else None
        return cached if cached is not None else await self._load(session_id, limit, count)

    async def recent(self, session_id: str, limit: int) -> list[StoredMessage]:
        """The last `limit` messages, oldest first, read from the database."""
        return await self._load(session_id, limit)

    async def _count(self, session_id: str) -> int:
        return await self._messages().count(session_id)

    async def _load(
        self, session_id: str, limit: int, count: int | None = None
    ) -> list[StoredMessage]:
        # the count before the rows: a row stored between the two reads makes it too low,
        # which the next check catches (the other order could hide that row)
        if count is None:
            count = await self._count(session_id)
        rows = await self._messages().recent(session_id, max(limit, self.cache.keep))
        messages = [StoredMessage.from_sql(r) for r in reversed(rows)]
        self.cache.fill(session_id, messages, count)
        return messages[-limit:] if limit > 0 else []

    async def get(self, session_id: str, message_id: str) -> StoredMessage | None:
        if len(message_id) > _MESSAGE_ID_LENGTH:
            return None
        row = await ChatMessage.filter(id=message_id, session_id=session_id).first()
        return StoredMessage.from_row(row) if row is not None else None

    async def after(self, session_id: str, message_id: str) -> list[StoredMessage] | None:
        """Every message of the session stored after `message_id`, oldest first; None when
        that id is not a message of this session."""
        if len(message_id) > _MESSAGE_ID_LENGTH:  # names no message; the ORM refuses to compare
            return None
        mark = await ChatMessage.filter(id=message_id, session_id=session_id).first()
        if mark is None:
            return None
        rows = await ChatMessage.filter(
            session_id=session_id, created_at__gt=mark.created_at
        ).order_by("created_at")
        return [StoredMessage.from_row(r) for r in rows]


def new_message(
    session_id: str,
    sender: Sender,
    content: str,
    message_type: MessageType,
    metadata: dict[str, Any] | None,
    message_id: str | None = None,
) -> StoredMessage:
    """A message with its id and time, not stored yet (`HistoryStore.store` stores it)."""
    return StoredMessage(
        id=message_id or str(uuid.uuid4()),
        session_id=session_id,
        sender=sender.value,
        message_type=message_type.value,
        content=content,
        created_at=clock.next_timestamp(),
        metadata=metadata,
    )


def _values(m: StoredMessage) -> list[Any]:
    metadata = orjson.dumps(m.metadata).decode() if m.metadata is not None else None
    return [
        m.id,
        m.session_id,
        m.sender,
        m.message_type,
        m.content,
        metadata,
        m.created_at,
        m.created_at,
    ]
