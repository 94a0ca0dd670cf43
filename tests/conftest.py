"""Shared fixtures: the real app on a real port, a fresh database per test."""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
from aiohttp import web

from server.app import create_app
from server.config import Settings
from tests.support.fakes.openai_server import FakeOpenAI, running_fake_openai

IN_CI = os.environ.get("CI") == "true"
MYSQL_SERVER_URL = os.environ.get("TEST_MYSQL_URL", "mysql://root:@127.0.0.1:3306")
POSTGRES_SERVER_URL = os.environ.get("TEST_POSTGRES_URL", "postgres://postgres@127.0.0.1:5432")
# MySQL and PostgreSQL runs are marked `server_db`: `make test-fast` runs the SQLite one only
DATABASE_BACKENDS = [
    "sqlite",
    pytest.param("mysql", marks=pytest.mark.server_db),
    pytest.param("postgres", marks=pytest.mark.server_db),
]
# Every MySQL or PostgreSQL database a test makes is named with this prefix and a random
# part, and dropped after. A CI run gives its own prefix (`.ci/run`), so its cleanup drops
# its own run's only.
DB_PREFIX = os.environ.get("TEST_DB_PREFIX", "mobok_test_")
if not DB_PREFIX.replace("_", "").isalnum() or len(DB_PREFIX) > 40:
    raise ValueError(f"TEST_DB_PREFIX must be letters, digits and _ (40 at most): {DB_PREFIX!r}")


def require(condition: bool, reason: str) -> None:
    """Skip when a test's dependency is missing, but fail under CI, where it must exist."""
    if condition:
        return
    if IN_CI:
        pytest.fail(f"required under CI: {reason}")
    pytest.skip(reason)


@dataclass
class LiveServer:
    url: str
    app: web.Application
    settings: Settings


@asynccontextmanager
async def serve(settings: Settings) -> AsyncIterator[LiveServer]:
    app = create_app(settings)
    runner = web.AppRunner(app, shutdown_timeout=1)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    try:
        yield LiveServer(f"http://127.0.0.1:{port}", app, settings)
    finally:
        await runner.cleanup()


def make_settings(database_url: str, **overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "database_url": database_url,
        "ai_provider": "local",
        "openai_api_key": None,
        "gemini_api_key": None,
        "redis_url": None,
        "auth_secret": None,
        "jwt_secret_key": None,
        "admin_token": None,
        # the spend limits have tests of their own (test_limits.py); others place many calls
        "max_calls_per_hour": 100_000,
        "max_process_per_minute": 100_000,
        # each test's app would load the offline Whisper model (~2 s of CPU) whether or not
        # it speaks: tests that do load it at their first utterance
        "stt_preload": False,
    }
    values.update(overrides)
    return Settings(_env_file=None, **values)  # type: ignore[call-arg]


def fake_openai_settings(database_url: str, fake: FakeOpenAI, **overrides: Any) -> Settings:
    """Settings whose OpenAI provider (chat, Whisper, TTS) is the fake OpenAI server `fake`."""
    return make_settings(
        database_url,
        ai_provider="openai",
        openai_api_key="sk-test-not-a-real-key",
        openai_base_url=fake.url,
        **overrides,
    )


async def _mysql_reachable() -> bool:
    import aiomysql

    parts = urlsplit(MYSQL_SERVER_URL)
    try:
        conn = await aiomysql.connect(
            host=parts.hostname or "127.0.0.1",
            port=parts.port or 3306,
            user=parts.username or "root",
            password=parts.password or "",
            connect_timeout=3,
        )
    except Exception:
        return False
    conn.close()
    return True


async def _drop_mysql_database(name: str) -> None:
    import aiomysql

    parts = urlsplit(MYSQL_SERVER_URL)
    conn = await aiomysql.connect(
        host=parts.hostname or "127.0.0.1",
        port=parts.port or 3306,
        user=parts.username or "root",
        password=parts.password or "",
    )
    try:
        async with conn.cursor() as cur:
            await cur.execute(f"DROP DATABASE IF EXISTS `{name}`")
    finally:
        conn.close()


async def _postgres_admin() -> Any:
    """A connection to the PostgreSQL server's `postgres` database, or None."""
    import asyncpg

    parts = urlsplit(POSTGRES_SERVER_URL)
    try:
        return await asyncpg.connect(
            host=parts.hostname or "127.0.0.1",
            port=parts.port or 5432,
            user=parts.username or "postgres",
            password=parts.password or None,
            database="postgres",
            timeout=3,
        )
    except Exception:
        return None


async def _drop_postgres_database(name: str) -> None:
    conn = await _postgres_admin()
    assert conn is not None, f"PostgreSQL went away at {POSTGRES_SERVER_URL}"
    try:
        await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await conn.close()


@asynccontextmanager
async def fresh_database(backend: str, tmp_path: Path) -> AsyncIterator[str]:
    if backend == "sqlite":
        yield f"sqlite://{tmp_path / 'test.sqlite3'}"
        return
    name = f"{DB_PREFIX}{uuid.uuid4().hex[:10]}"
    if backend == "postgres":
        admin = await _postgres_admin()
        require(admin is not None, f"PostgreSQL not reachable at {POSTGRES_SERVER_URL}")
        await admin.close()
        try:  # the server makes the database on its first start, as in production
            yield f"{POSTGRES_SERVER_URL.rstrip('/')}/{name}"
        finally:
            await _drop_postgres_database(name)
        return
    require(await _mysql_reachable(), f"MySQL not reachable at {MYSQL_SERVER_URL}")
    try:
        yield f"{MYSQL_SERVER_URL.rstrip('/')}/{name}"
    finally:
        await _drop_mysql_database(name)


@pytest.fixture(params=DATABASE_BACKENDS)
async def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[str]:
    """A fresh, empty database on each backend."""
    async with fresh_database(request.param, tmp_path) as url:
        yield url


@pytest.fixture
async def sqlite_url(tmp_path: Path) -> AsyncIterator[str]:
    async with fresh_database("sqlite", tmp_path) as url:
        yield url


@pytest.fixture
async def server(sqlite_url: str) -> AsyncIterator[LiveServer]:
    """The app on SQLite with the offline `local` provider."""
    async with serve(make_settings(sqlite_url)) as live:
        yield live


@pytest.fixture
async def any_server(database_url: str) -> AsyncIterator[LiveServer]:
    """The app on each database backend (SQLite, MySQL, PostgreSQL)."""
    async with serve(make_settings(database_url)) as live:
        yield live


@pytest.fixture
async def fake_openai() -> AsyncIterator[FakeOpenAI]:
    """A local fake of the OpenAI HTTP API (`tests/support/fakes/openai_server.py`)."""
    async with running_fake_openai() as fake:
        yield fake


async def postgres_columns(table: str) -> dict[str, tuple[str, int | None, str]]:
    """`{column: (data_type, character_maximum_length, is_nullable)}` of a PostgreSQL table."""
    from server import db

    _, rows = await db.connection().execute_query(
        "SELECT column_name AS c, data_type AS d, character_maximum_length AS n, "
        "is_nullable AS nullable FROM information_schema.columns "
        "WHERE table_schema = current_schema() AND table_name = $1",
        [table],
    )
    return {r["c"]: (r["d"], r["n"], r["nullable"]) for r in rows}
