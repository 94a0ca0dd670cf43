"""Settings (§7): defaults, the NestJS-style DB_* variables, provider choice."""

from __future__ import annotations

import os
import uuid

import pytest

from models import ChatSession
from server.config import DEFAULT_SQLITE_PATH, Settings
from tests.conftest import MYSQL_SERVER_URL, make_settings, require, serve


def settings(**env: str) -> Settings:
    return Settings(_env_file=None, **env)  # type: ignore[call-arg, arg-type]


def test_defaults(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("DATABASE_URL", "DB_HOST", "AI_PROVIDER", "OPENAI_API_KEY", "GEMINI_API_KEY"):
        monkeypatch.delenv(name, raising=False)
    s = settings()
    assert s.port == 3000
    assert s.database_url == f"sqlite://{DEFAULT_SQLITE_PATH}"
    assert s.provider == "local"
    assert s.session_timeout_minutes == 30 and s.session_reap_interval_minutes == 5
    assert s.max_message_length == 2000 and s.max_ai_requests_per_minute == 10
    assert s.history_context_messages == 20 and s.cors_origins == "*"


def test_db_variables_build_the_mysql_url() -> None:
    s = settings(db_host="db.internal", db_password="p@ss:w/rd", db_name="mobok")
    assert s.database_url == "mysql://root:p%40ss%3Aw%2Frd@db.internal:3306/mobok"


def test_provider_follows_the_key_that_is_set() -> None:
    assert settings(openai_api_key="sk-x").provider == "openai"
    assert settings(gemini_api_key="g-x").provider == "gemini"
    assert settings(openai_api_key="sk-x", ai_provider="local").provider == "local"


def test_env_file_is_honoured(tmp_path: pytest.TempPathFactory, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.chdir(tmp_path)  # type: ignore[arg-type]
    monkeypatch.delenv("PORT", raising=False)
    (tmp_path / ".env").write_text("PORT=4555\nCORS_ORIGIN=http://a.test, http://b.test\n")  # type: ignore[operator]
    s = Settings()
    assert s.port == 4555
    assert s.cors_origins == ["http://a.test", "http://b.test"]


async def test_serves_an_existing_mysql_database_named_by_db_variables() -> None:
    name = os.environ.get("TEST_MYSQL_DATABASE")
    require(name is not None, "TEST_MYSQL_DATABASE (set by .ci/run) names a MySQL database")
    assert name is not None
    host_port = MYSQL_SERVER_URL.split("@")[-1]
    host, _, port = host_port.partition(":")
    s = settings(db_host=host, db_port=port or "3306", db_user="root", db_name=name)
    # the database outlives the test (and may serve parallel runs): a row of this test's own
    session_id = f"ci-smoke-{uuid.uuid4().hex[:12]}"
    async with serve(make_settings(s.database_url)):
        await ChatSession.create(user_id="u", session_id=session_id, last_activity=_now())
        assert await ChatSession.filter(session_id=session_id).exists()
    # start-up is idempotent: a second start on the same tables works and keeps the data
    async with serve(make_settings(s.database_url)):
        assert await ChatSession.filter(session_id=session_id).exists()
        await ChatSession.filter(session_id=session_id).delete()


def _now():  # type: ignore[no-untyped-def]
    from server.chat.clock import now

    return now()
