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
# Every MySQL database a test makes is named with this prefix and a random part, and dropped
# after. A CI run gives its own prefix (`.ci/run`), so its cleanup drops its own run's only.
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


@asynccontextmanager
async def fresh_database(backend: str, tmp_path: Path) -> AsyncIterator[str]:
    if backend == "sqlite":
        yield f"sqlite://{tmp_path / 'test.sqlite3'}"
        return
    require(await _mysql_reachable(), f"MySQL not reachable at {MYSQL_SERVER_URL}")
    name = f"{DB_PREFIX}{uuid.uuid4().hex[:10]}"
    try:
        yield f"{MYSQL_SERVER_URL.rstrip('/')}/{name}"
    finally:
        await _drop_mysql_database(name)


@pytest.fixture(params=["sqlite", "mysql"])
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
    """The app on each database backend (SQLite, then MySQL)."""
    async with serve(make_settings(database_url)) as live:
        yield live


@pytest.fixture
async def fake_openai() -> AsyncIterator[FakeOpenAI]:
    """A local fake of the OpenAI HTTP API (`tests/support/fakes/openai_server.py`)."""
    async with running_fake_openai() as fake:
        yield fake
