"""PostgreSQL (asyncpg): every table made with the contract's columns, and the server's
start on an existing database; the rest of the suite runs on it through `database_url`."""

from __future__ import annotations

import os
from pathlib import Path

from aiohttp import ClientSession

from server import db
from tests.conftest import (
    POSTGRES_SERVER_URL,
    fresh_database,
    make_settings,
    postgres_columns,
    require,
    serve,
)

TS = ("timestamp with time zone", None)
EXPECTED: dict[str, dict[str, tuple[str, int | None]]] = {
    "chat_sessions": {
        "id": ("character varying", 36),
        "user_id": ("character varying", 255),
        "session_id": ("character varying", 255),
        "is_active": ("boolean", None),
        "last_activity": TS,
        "created_at": TS,
        "updated_at": TS,
    },
    "chat_messages": {
        "id": ("character varying", 36),
        "session_id": ("character varying", 255),
        "sender": ("character varying", 50),
        "message_type": ("character varying", 50),
        "content": ("text", None),
        "metadata": ("jsonb", None),
        "created_at": TS,
        "updated_at": TS,
    },
    "calls": {
        "id": ("character varying", 36),
        "session_id": ("character varying", 255),
        "caller_number": ("character varying", 20),
        "receiver_number": ("character varying", 20),
        "status": ("character varying", 20),
        "created_at": TS,
        "updated_at": TS,
        "connected_at": TS,
        "ended_at": TS,
        "duration": ("integer", None),
    },
    "conversations": {
        "id": ("character varying", 36),
        "session_id": ("character varying", 128),
        "user_message": ("text", None),
        "ai_response": ("text", None),
        "emotion": ("character varying", 20),
        "timestamp": ("bigint", None),
        "created_at": TS,
    },
    "room_messages": {
        "id": ("character varying", 36),
        "session_id": ("character varying", 128),
        "participant": ("character varying", 32),
        "body": ("jsonb", None),
        "created_at": TS,
    },
}


async def test_every_table_with_the_contract_columns(tmp_path: Path) -> None:
    async with fresh_database("postgres", tmp_path) as url, serve(make_settings(url)):
        assert db.connection().capabilities.dialect == "postgres"
        for table, columns in EXPECTED.items():
            found = await postgres_columns(table)
            assert {c: (d, n) for c, (d, n, _) in found.items()} == columns, table
        _, rows = await db.connection().execute_query(
            "SELECT table_name AS t FROM information_schema.tables "
            "WHERE table_schema = current_schema()"
        )
        tables = {r["t"] for r in rows}
        assert set(EXPECTED) | {"agent_messages", "agent_reports", "session_owners"} <= tables


async def test_a_second_start_keeps_the_data_and_postgresql_scheme_is_accepted(
    tmp_path: Path,
) -> None:
    async with fresh_database("postgres", tmp_path) as url:
        async with serve(make_settings(url)):
            await db.connection().execute_query(
                "INSERT INTO chat_sessions (id, user_id, session_id, is_active, last_activity, "
                "created_at, updated_at) VALUES ($1, $2, $3, TRUE, now(), now(), now())",
                ["s-1", "u-1", "kept"],
            )
        libpq_spelling = url.replace("postgres://", "postgresql://", 1)
        async with serve(make_settings(libpq_spelling)):
            _, rows = await db.connection().execute_query(
                "SELECT user_id FROM chat_sessions WHERE session_id = $1", ["kept"]
            )
            assert [r["user_id"] for r in rows] == ["u-1"]


async def test_serves_an_existing_database_it_did_not_make() -> None:
    """`.ci/run` makes TEST_POSTGRES_DATABASE itself: an operator's existing database."""
    name = os.environ.get("TEST_POSTGRES_DATABASE")
    require(name is not None, "TEST_POSTGRES_DATABASE (set by .ci/run) names a database")
    url = f"{POSTGRES_SERVER_URL.rstrip('/')}/{name}"
    async with serve(make_settings(url)) as live, ClientSession() as http:
        async with http.get(live.url + "/api/v1/health") as resp:
            assert resp.status == 200
            assert (await resp.json())["db"] == "ok"
