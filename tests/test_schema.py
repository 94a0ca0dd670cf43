"""The tables are column for column the contract's (§1.2), on MySQL and on SQLite."""

from __future__ import annotations

from server import db
from tests.conftest import LiveServer, postgres_columns

MYSQL_COLUMNS = {
    "chat_sessions": {
        "id": ("varchar", 36),
        "user_id": ("varchar", 255),
        "session_id": ("varchar", 255),
        "is_active": ("tinyint", None),
        "last_activity": ("datetime", None),
        "created_at": ("datetime", None),
        "updated_at": ("datetime", None),
    },
    "chat_messages": {
        "id": ("varchar", 36),
        "session_id": ("varchar", 255),
        "sender": ("varchar", 50),
        "message_type": ("varchar", 50),
        "content": ("text", None),
        "metadata": ("json", None),
        "created_at": ("datetime", None),
        "updated_at": ("datetime", None),
    },
}


async def test_columns_and_types(any_server: LiveServer) -> None:
    conn = db.connection()
    if any_server.settings.database_url.startswith("sqlite"):
        for table, columns in MYSQL_COLUMNS.items():
            _, rows = await conn.execute_query(f"PRAGMA table_info({table})")
            assert {r["name"] for r in rows} == set(columns)
        return
    if conn.capabilities.dialect == "postgres":  # types: tests/test_postgres.py
        for table, columns in MYSQL_COLUMNS.items():
            assert set(await postgres_columns(table)) == set(columns)
        return
    _, rows = await conn.execute_query(
        "SELECT table_name AS t, column_name AS c, data_type AS d, "
        "character_maximum_length AS n, datetime_precision AS p, column_key AS k, "
        "is_nullable AS nullable FROM information_schema.columns "
        "WHERE table_schema = DATABASE() AND table_name IN ('chat_sessions', 'chat_messages')"
    )
    found = {(r["t"], r["c"]): r for r in rows}
    for table, columns in MYSQL_COLUMNS.items():
        assert {c for t, c in found if t == table} == set(columns)
        for column, (data_type, length) in columns.items():
            row = found[(table, column)]
            actual = row["d"]
            if data_type == "json":  # MariaDB stores JSON as longtext with a json_valid check
                assert actual in ("json", "longtext"), (table, column, actual)
            else:
                assert actual == data_type, (table, column, actual)
            if length is not None:
                assert row["n"] == length, (table, column, row["n"])
            if data_type == "datetime":
                assert row["p"] >= 3, (table, column, "needs at least milliseconds")
    assert found[("chat_sessions", "session_id")]["k"] == "UNI"
    assert found[("chat_sessions", "id")]["k"] == "PRI"
    assert found[("chat_messages", "id")]["k"] == "PRI"
    assert found[("chat_messages", "session_id")]["k"] == "MUL"
    assert found[("chat_messages", "metadata")]["nullable"] == "YES"
