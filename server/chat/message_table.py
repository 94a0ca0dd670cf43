"""The statements of a chat turn on `chat_messages`, in plain parameterized SQL, batched.

The ORM's query building cost more than the queries themselves (`make bench`), so the hot
path talks SQL on the ORM's own connection; and under load, statements that queued for a
connection go as one (`server.chat.batch`).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from tortoise.backends.base.client import BaseDBAsyncClient

from server.chat.batch import Batcher, gate_for
from server.sql import for_dialect, typed

Row = Sequence[Any]  # the values of `COLUMNS`, in order
COLUMNS = (
    "id",
    "session_id",
    "sender",
    "message_type",
    "content",
    "metadata",
    "created_at",
    "updated_at",
)
# the column types, for PostgreSQL's casts of `INSERT ... SELECT` parameters
_TYPES = ["varchar", "varchar", "varchar", "varchar", "text", "jsonb", "timestamptz", "timestamptz"]
_INSERT = f"INSERT INTO chat_messages ({', '.join(COLUMNS)})"
SELECTED = "id, session_id, sender, message_type, content, metadata, created_at"


class MessageTable:
    def __init__(self, conn: BaseDBAsyncClient) -> None:
        self.conn = conn
        self.dialect = conn.capabilities.dialect
        self._values = "(" + ", ".join(["?"] * len(COLUMNS)) + ")"
        self._if_active = (
            f"SELECT {typed(self.dialect, _TYPES)} "
            "FROM chat_sessions WHERE session_id = ? AND is_active"
        )
        self._recent = self._sql(
            f"SELECT {SELECTED} FROM chat_messages WHERE session_id = ? "
            "ORDER BY created_at DESC LIMIT ?"
        )
        self.gate = gate_for(conn)
        self._inserts: Batcher[Row, None] = Batcher(self._insert_many, self.gate)
        self._gated: Batcher[tuple[Row, str], bool] = Batcher(
            self._insert_if_active_many, self.gate
        )
        self._counts: Batcher[str, int] = Batcher(self._count_many, self.gate)

    async def insert(self, row: Row) -> None:
        await self._inserts.submit(row)

    async def insert_if_active(self, row: Row, session_id: str) -> bool:
        """Insert `row` only if the session is active; whether it was."""
        return await self._gated.submit((row, session_id))

    async def count(self, session_id: str) -> int:
        """The session's number of rows (an index-only, non-locking read)."""
        return await self._counts.submit(session_id)

    async def recent(self, session_id: str, limit: int) -> Sequence[Any]:
        """The last `limit` rows of `SELECTED`, newest first."""
        async with self.gate:
            _, rows = await self.conn.execute_query(self._recent, [session_id, limit])
        return rows

    async def _insert_many(self, rows: Sequence[Row]) -> list[None]:
        values = ", ".join([self._values] * len(rows))
        await self.conn.execute_query(self._sql(f"{_INSERT} VALUES {values}"), _flat(rows))
        return [None] * len(rows)

    async def _insert_if_active_many(self, items: Sequence[tuple[Row, str]]) -> list[bool]:
        selects = " UNION ALL ".join([self._if_active] * len(items))
        params = [v for row, session_id in items for v in (*row, session_id)]
        inserted, _ = await self.conn.execute_query(self._sql(f"{_INSERT} {selects}"), params)
        # (asyncpg's INSERT status reads as 0 rows through Tortoise: the look-up below decides)
        if inserted == len(items):
            return [True] * len(items)
        # some sessions were not active: which rows went in?
        ids = [row[0] for row, _ in items]
        marks = ", ".join(["?"] * len(ids))
        _, found = await self.conn.execute_query(
            self._sql(f"SELECT id FROM chat_messages WHERE id IN ({marks})"), ids
        )
        stored = {r["id"] for r in found}
        return [row[0] in stored for row, _ in items]

    async def _count_many(self, session_ids: Sequence[str]) -> list[int]:
        unique = list(dict.fromkeys(session_ids))
        marks = ", ".join(["?"] * len(unique))
        _, rows = await self.conn.execute_query(
            self._sql(
                "SELECT session_id, COUNT(*) AS n FROM chat_messages "
                f"WHERE session_id IN ({marks}) GROUP BY session_id"
            ),
            unique,
        )
        counts = {r["session_id"]: int(r["n"]) for r in rows}
        if not counts.keys() <= set(unique):
            # a case- or accent-insensitive collation (MySQL) grouped ids that differ here
            return [await self._count_one(s) for s in session_ids]
        return [counts.get(s, 0) for s in session_ids]

    async def _count_one(self, session_id: str) -> int:
        _, rows = await self.conn.execute_query(
            self._sql("SELECT COUNT(*) AS n FROM chat_messages WHERE session_id = ?"), [session_id]
        )
        return int(rows[0]["n"])

    def _sql(self, sql: str) -> str:
        return for_dialect(sql, self.dialect)


def _flat(rows: Sequence[Row]) -> list[Any]:
    return [v for row in rows for v in row]
