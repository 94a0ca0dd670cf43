"""The session reaper (§1.3) with a one-second timeout and interval."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import timedelta

import pytest

from models import ChatSession
from server.app import CHAT_NAMESPACE
from server.chat import clock
from server.chat.reaper import reap_once
from server.keys import CHAT
from tests.conftest import LiveServer, make_settings, serve
from tests.support.sio import RecordingClient

ONE_SECOND_IN_MINUTES = 1 / 60


@pytest.fixture
async def fast_reaper(database_url: str) -> AsyncIterator[LiveServer]:
    settings = make_settings(
        database_url,
        session_timeout_minutes=ONE_SECOND_IN_MINUTES,
        session_reap_interval_minutes=ONE_SECOND_IN_MINUTES,
    )
    async with serve(settings) as live:
        yield live


@pytest.mark.slow  # seconds of its own (a real call, a timeout, a retry schedule)
async def test_idle_session_is_ended_and_its_sockets_told(fast_reaper: LiveServer) -> None:
    c = RecordingClient()
    await c.connect(fast_reaper.url)
    try:
        joined = await c.call("join-chat", {"userId": "u1"})
        session_id = joined["sessionId"]
        await c.next("chat-history")
        assert (await c.next("chat-left", timeout=5)) == {"sessionId": session_id}
        assert not (await ChatSession.get(session_id=session_id)).is_active
        # the socket left the room: sending now is refused
        reply = await c.call("send-message", {"sessionId": session_id, "message": "hi"})
        assert reply == {"error": {"message": "세션을 찾을 수 없습니다"}}
        # the same user may rejoin: reactivated, history replayed, no second greeting
        await c.emit("join-chat", {"userId": "u1", "sessionId": session_id})
        assert (await c.next("chat-joined"))["sessionId"] == session_id
        history = (await c.next("chat-history"))["messages"]
        assert [m["sender"] for m in history] == ["assistant"]
        assert (await ChatSession.get(session_id=session_id)).is_active
        assert len(c.of("ai-message")) == 1
        # another user may not
        other = await c.call("join-chat", {"userId": "u2", "sessionId": session_id})
        assert other == {"error": {"message": "세션에 접근할 권한이 없습니다"}}
    finally:
        await c.close()


async def test_active_session_survives_and_reaping_is_idempotent(sqlite_url: str) -> None:
    async with serve(make_settings(sqlite_url)) as live:  # default 30-minute timeout
        chat = live.app[CHAT]
        fresh = await chat.sessions.join("u1", "fresh")
        stale = await chat.sessions.join("u2", "stale")
        await ChatSession.filter(session_id=stale.session_id).update(
            last_activity=clock.now() - timedelta(minutes=31)
        )
        namespace = live.app[CHAT_NAMESPACE]
        # two reapers at once (as on two instances): one UPDATE's worth of effect
        ended = await asyncio.gather(reap_once(chat, namespace), reap_once(chat, namespace))
        assert sorted(ended) == [0, 1]
        assert (await ChatSession.get(session_id=fresh.session_id)).is_active
        assert not (await ChatSession.get(session_id=stale.session_id)).is_active
