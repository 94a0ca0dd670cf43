"""Tortoise's database clients with a bound on every wait (`DB_QUERY_TIMEOUT_SECONDS`).

A database whose packets are dropped without a reset (a cut link, a firewall, a frozen
host) never answers and never fails: aiomysql has no read timeout, and TCP's own gives up
after many minutes, so a chat turn waited 48.9 s and more. Here each statement (waiting for
a pooled connection, connecting, sending, reading every row) and each transaction's
BEGIN/COMMIT/ROLLBACK must finish within the timeout, else it fails with
`StatementTimeout`, one of the "database unavailable" errors that clients see as the
contract's temporary-failure text. MySQL (aiomysql), PostgreSQL (asyncpg) and SQLite.

What a cancelled statement leaves behind: aiomysql closes a connection whose read is
cancelled (`Connection._close_on_cancel`), and the pool drops closed connections on release,
so the pool heals by opening new ones. SQLite runs its statements in aiosqlite's thread,
which a timeout cannot stop: there the wait is also bounded in SQLite itself
(`PRAGMA busy_timeout`, the usual cause of a slow statement being another writer's lock).

The clients are picked with Tortoise's own extension point: a connection's `engine` names
a module with `get_client_class` (this one).
"""

from __future__ import annotations

import asyncio
from typing import Any

from tortoise.backends.asyncpg.client import AsyncpgDBClient
from tortoise.backends.asyncpg.client import TransactionWrapper as AsyncpgTransaction
from tortoise.backends.base.client import (
    BaseDBAsyncClient,
    NestedTransactionContext,
    TransactionContext,
    TransactionContextPooled,
)
from tortoise.backends.mysql.client import MySQLClient
from tortoise.backends.mysql.client import TransactionWrapper as MySQLTransaction
from tortoise.backends.sqlite.client import (
    SqliteClient,
    SqliteTransactionContext,
    SqliteTransactionWrapper,
)
from tortoise.exceptions import DBConnectionError

TIMEOUT_OPTION = "query_timeout"  # the credential that carries the timeout to the client
BACKEND_OPTION = "backend"  # which Tortoise client these credentials are for


class StatementTimeout(DBConnectionError):
    """The database did not answer within `DB_QUERY_TIMEOUT_SECONDS`."""


class _Bounded:
    """Every statement of a client within `query_timeout` seconds (a mixin, before the
    Tortoise client class in the bases)."""

    query_timeout: float

    async def _within(self, work: Any) -> Any:
        try:
            async with asyncio.timeout(self.query_timeout):
                return await work
        except TimeoutError:
            raise StatementTimeout(
                f"no answer from the database within {self.query_timeout:g} s"
            ) from None

    async def execute_insert(self, query: str, values: list[Any]) -> Any:
        return await self._within(super().execute_insert(query, values))  # type: ignore[misc]

    async def execute_many(self, query: str, values: list[Any]) -> None:
        await self._within(super().execute_many(query, values))  # type: ignore[misc]

    async def execute_query(self, query: str, values: list[Any] | None = None) -> Any:
        return await self._within(super().execute_query(query, values))  # type: ignore[misc]

    async def execute_script(self, query: str) -> None:
        await self._within(super().execute_script(query))  # type: ignore[misc]


class _BoundedTransaction(_Bounded):
    async def begin(self) -> None:
        await self._within(super().begin())  # type: ignore[misc]

    async def commit(self) -> None:
        await self._within(super().commit())  # type: ignore[misc]

    async def rollback(self) -> None:
        await self._within(super().rollback())  # type: ignore[misc]


class BoundedMySQLClient(_Bounded, MySQLClient):
    def __init__(self, *, query_timeout: float, backend: str, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.query_timeout = query_timeout

    def _in_transaction(self) -> TransactionContext:
        return TransactionContextPooled(BoundedMySQLTransaction(self), self._pool_init_lock)


class BoundedMySQLTransaction(_BoundedTransaction, MySQLTransaction):
    def __init__(self, connection: Any) -> None:
        super().__init__(connection)
        self.query_timeout = connection.query_timeout

    def _in_transaction(self) -> TransactionContext:
        return NestedTransactionContext(BoundedMySQLTransaction(self))


class BoundedSqliteClient(_Bounded, SqliteClient):
    def __init__(
        self, file_path: str, *, query_timeout: float, backend: str, **kwargs: Any
    ) -> None:
        # SQLite waits for another writer's lock this long itself (milliseconds)
        kwargs.setdefault("busy_timeout", int(query_timeout * 1000))
        super().__init__(file_path, **kwargs)
        self.query_timeout = query_timeout

    def _in_transaction(self) -> TransactionContext:
        return SqliteTransactionContext(BoundedSqliteTransaction(self), self._lock)


class BoundedSqliteTransaction(_BoundedTransaction, SqliteTransactionWrapper):
    def __init__(self, connection: Any) -> None:
        super().__init__(connection)
        self.query_timeout = connection.query_timeout

    def _in_transaction(self) -> TransactionContext:
        return NestedTransactionContext(BoundedSqliteTransaction(self))


class _AsyncpgBounded(_Bounded):
    """asyncpg bounds its statements itself (`command_timeout`: it cancels the statement on
    the server and keeps the connection sound); a cancellation from outside would instead
    wait in the pool's release for as long as the link is silent (61 s, measured)."""

    async def _within(self, work: Any) -> Any:
        try:
            return await work
        except TimeoutError:
            raise StatementTimeout(
                f"no answer from the database within {self.query_timeout:g} s"
            ) from None


class BoundedAsyncpgClient(_AsyncpgBounded, AsyncpgDBClient):
    def __init__(self, *, query_timeout: float, backend: str, **kwargs: Any) -> None:
        kwargs.setdefault("timeout", query_timeout)  # connecting
        kwargs.setdefault("command_timeout", query_timeout)  # each statement
        super().__init__(**kwargs)
        self.query_timeout = query_timeout

    def _in_transaction(self) -> TransactionContext:
        return TransactionContextPooled(BoundedAsyncpgTransaction(self), self._pool_init_lock)


class BoundedAsyncpgTransaction(_AsyncpgBounded, _BoundedTransaction, AsyncpgTransaction):
    def __init__(self, connection: Any) -> None:
        super().__init__(connection)
        self.query_timeout = connection.query_timeout

    def _in_transaction(self) -> TransactionContext:
        return NestedTransactionContext(BoundedAsyncpgTransaction(self))


_CLIENTS: dict[str, type[BaseDBAsyncClient]] = {
    "mysql": BoundedMySQLClient,
    "sqlite": BoundedSqliteClient,
    "asyncpg": BoundedAsyncpgClient,
}


def get_client_class(db_info: dict[str, Any]) -> type[BaseDBAsyncClient]:
    """Tortoise's hook: the client for a connection whose `engine` is this module."""
    return _CLIENTS[db_info["credentials"][BACKEND_OPTION]]


def bounded_connection(config: dict[str, Any], query_timeout: float) -> dict[str, Any]:
    """A connection config from `tortoise.backends.base.config_generator.expand_db_url`,
    served by the bounded client of its backend (unchanged for a backend without one)."""
    backend = config["engine"].rsplit(".", 1)[-1]
    if backend not in _CLIENTS:
        return config
    credentials = {**config["credentials"], TIMEOUT_OPTION: query_timeout, BACKEND_OPTION: backend}
    return {"engine": __name__, "credentials": credentials}
