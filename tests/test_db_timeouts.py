"""A database that stops answering without a reset (issue #17, defect 4): every wait on it is
bounded by `DB_QUERY_TIMEOUT_SECONDS`, a turn caught in it gets the contract's temporary
failure, and the pool heals once packets flow again.

The real MariaDB is behind a proxy this test owns (`tests/support/tcp_proxy.py`), dropping: bytes
are swallowed both ways, connections stay open, as on a cut link."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from server.db_clients import StatementTimeout, bounded_connection, get_client_class
from server.texts import TEMPORARY_FAILURE
from tests.conftest import LiveServer, fresh_database, make_settings, serve
from tests.support.sio import RecordingClient
from tests.support.tcp_proxy import TcpProxy
from tests.support.waiting import until

QUERY_TIMEOUT = 1.0
GENEROUS = 10.0  # on top of the timeout: a loaded machine, not a speed claim


@asynccontextmanager
async def server_behind_proxy(tmp_path: Path) -> AsyncIterator[tuple[LiveServer, TcpProxy]]:
    async with fresh_database("mysql", tmp_path) as url:
        parts = urlsplit(url)
        async with TcpProxy(parts.hostname or "127.0.0.1", parts.port or 3306) as proxy:
            proxied = parts._replace(netloc=f"{parts.username}:@127.0.0.1:{proxy.port}").geturl()
            settings = make_settings(proxied, db_query_timeout_seconds=QUERY_TIMEOUT)
            async with serve(settings) as live:
                yield live, proxy


async def test_a_silent_database_fails_a_turn_in_time_and_the_pool_recovers(
    tmp_path: Path,
) -> None:
    async with server_behind_proxy(tmp_path) as (live, proxy):
        client = RecordingClient()
        await client.connect(live.url)
        try:
            joined = await client.call("join-chat", {"userId": "u-silent"})
            session_id = joined["sessionId"]
            sent = {"sessionId": session_id, "message": "들리세요?"}
            assert "id" in await client.call("send-message", sent)

            proxy.drop()
            silenced = time.monotonic()
            # bounded: the contract's error, not an ack after the TCP timeout (minutes)
            refused = await client.call("send-message", sent, timeout=QUERY_TIMEOUT + GENEROUS)
            assert refused == {"error": {"message": TEMPORARY_FAILURE}}
            told = time.monotonic() - silenced
            # a new join needs a new statement too: bounded as well
            refused = await client.call(
                "join-chat", {"userId": "u-silent-2"}, timeout=QUERY_TIMEOUT + GENEROUS
            )
            assert refused == {"error": {"message": TEMPORARY_FAILURE}}

            await proxy.restore()

            async def answered() -> bool:
                ack = await client.call("send-message", sent, timeout=QUERY_TIMEOUT + GENEROUS)
                return "id" in ack

            restored = time.monotonic()
            await until(answered, 30, "an ack once the database answers again")
            print(
                f"\nsilent database: temporary failure after {told:.2f} s "
                f"(DB_QUERY_TIMEOUT_SECONDS={QUERY_TIMEOUT:g}); acks again "
                f"{time.monotonic() - restored:.2f} s after packets flow"
            )
        finally:
            await client.close()


pytestmark = pytest.mark.slow  # issue 17 fault tests: seconds each


async def test_each_client_bounds_a_statement_on_a_silent_link(tmp_path: Path) -> None:
    """The bounded client of each network backend, straight on a silent link: MariaDB
    (aiomysql) and PostgreSQL (asyncpg)."""
    for backend, host, port, credentials in (
        ("mysql", "127.0.0.1", 3306, {"user": "root", "password": "", "database": "mysql"}),
        ("asyncpg", "127.0.0.1", 5432, {"user": "postgres", "database": "postgres"}),
    ):
        async with TcpProxy(host, port) as proxy:
            config = bounded_connection(
                {
                    "engine": f"tortoise.backends.{backend}",
                    "credentials": {"host": "127.0.0.1", "port": proxy.port, **credentials},
                },
                QUERY_TIMEOUT,
            )
            client = get_client_class(config)(connection_name=backend, **config["credentials"])
            await client.create_connection(with_db=True)
            try:
                assert (await client.execute_query("SELECT 1 AS one"))[1][0]["one"] == 1
                proxy.drop()
                with pytest.raises(StatementTimeout):
                    await client.execute_query("SELECT 1 AS one")
                await proxy.restore()
                rows = await client.execute_query("SELECT 2 AS two")  # a new connection
                assert rows[1][0]["two"] == 2
            finally:
                await client.close()
