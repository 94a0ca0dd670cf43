"""`kill -9` of the instance generating answers (issue #17, defect 5): the questions it had
acknowledged are answered by the other instance, exactly once, whether a client resumes the
session there (`join-chat` with `lastMessageId`) or is already listening there (the lease
runs out and the survivor's periodic pass takes over). A client's retry of a send with the
same `clientMessageId` stores nothing twice and gets the first ack again.

Two server processes share one SQLite database and a Redis of the test's own; the model is
the fake OpenAI, hanging while the first instance asks it, answering once it is dead.
"""

from __future__ import annotations

import asyncio
import sqlite3
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager, closing
from pathlib import Path

import orjson
import pytest

from tests.conftest import LiveServer
from tests.support.fakes.openai_server import FakeOpenAI, running_fake_openai
from tests.support.own_redis import own_redis
from tests.support.processes import ServerProcess, server_process
from tests.support.sio import RecordingClient
from tests.support.waiting import until

LEASE = 1.0  # TURN_LEASE_SECONDS of both instances
GENEROUS = 15.0  # slack on a loaded machine, not a speed claim


@asynccontextmanager
async def two_instances(tmp_path: Path, fake: FakeOpenAI) -> AsyncIterator[list[ServerProcess]]:
    async with own_redis(tmp_path) as redis:
        env = {
            "DATABASE_URL": f"sqlite://{tmp_path / 'shared.sqlite3'}",
            "REDIS_URL": redis.url,
            "AI_PROVIDER": "openai",
            "OPENAI_API_KEY": "sk-fake",
            "OPENAI_BASE_URL": fake.url,
            "AI_TIMEOUT_SECONDS": "60",
            "TURN_LEASE_SECONDS": str(LEASE),
        }
        async with server_process(tmp_path, **env) as a, server_process(tmp_path, **env) as b:
            yield [a, b]


def replies_to(db: Path, message_id: str) -> int:
    with closing(sqlite3.connect(db)) as conn:
        rows = conn.execute("SELECT metadata FROM chat_messages WHERE sender = 'assistant'")
        return sum(1 for (m,) in rows if m and orjson.loads(m).get("replyTo") == message_id)


def user_rows(db: Path, session_id: str) -> int:
    with closing(sqlite3.connect(db)) as conn:
        query = "SELECT COUNT(*) FROM chat_messages WHERE sender = 'user' AND session_id = ?"
        return int(conn.execute(query, (session_id,)).fetchone()[0])


async def test_answers_in_progress_on_a_killed_instance_are_given_by_the_survivor(
    tmp_path: Path,
) -> None:
    db = tmp_path / "shared.sqlite3"
    async with running_fake_openai() as fake, two_instances(tmp_path, fake) as (a, b):
        fake.hang = True  # the first instance's answers never come
        on_a, resumer, listener = RecordingClient(), RecordingClient(), RecordingClient()
        clients = [on_a, resumer, listener]
        try:
            await on_a.connect(a.url)
            resumed = (await on_a.call("join-chat", {"userId": "u-resume"}, timeout=GENEROUS))[
                "sessionId"
            ]
            listened = (await on_a.call("join-chat", {"userId": "u-listen"}, timeout=GENEROUS))[
                "sessionId"
            ]
            # a client of the second session is connected to the survivor already
            await listener.connect(b.url)
            await listener.call(
                "join-chat", {"userId": "u-listen", "sessionId": listened}, timeout=GENEROUS
            )
            asked = await on_a.call(
                "send-message",
                {"sessionId": resumed, "message": "기초연금 알려줘", "clientMessageId": "c-1"},
                timeout=GENEROUS,
            )
            waiting = await on_a.call(
                "send-message",
                {"sessionId": listened, "message": "장애인 복지 알려줘"},
                timeout=GENEROUS,
            )
            await until(lambda: len(fake.requests) >= 2, GENEROUS, "both turns under way")

            a.process.kill()  # kill -9, mid-answer
            await a.process.wait()
            killed = time.monotonic()
            fake.hang = False

            # the client of the first session resumes on the survivor, and is answered there
            await resumer.connect(b.url)
            await resumer.call(
                "join-chat",
                {"userId": "u-resume", "sessionId": resumed, "lastMessageId": asked["id"]},
                timeout=GENEROUS,
            )
            answer = await resumer.next("ai-message", timeout=LEASE + GENEROUS)
            assert answer["content"]
            resumed_after = time.monotonic() - killed
            # the listener on the survivor gets the second session's answer, unasked
            await until(lambda: len(listener.of("ai-message")) >= 1, LEASE + GENEROUS, "taken over")
            print(
                f"\nkill -9 mid-answer (TURN_LEASE_SECONDS={LEASE:g}): resumed client answered "
                f"{resumed_after:.2f} s after the kill, listening client "
                f"{time.monotonic() - killed:.2f} s after"
            )

            # the retry of a send cut by the kill: the first ack again, nothing stored twice
            retried = await resumer.call(
                "send-message",
                {"sessionId": resumed, "message": "기초연금 알려줘", "clientMessageId": "c-1"},
                timeout=GENEROUS,
            )
            assert retried == asked
            # exactly once, even after more lease periods have passed
            await asyncio.sleep(3 * LEASE)
            assert replies_to(db, asked["id"]) == 1
            assert replies_to(db, waiting["id"]) == 1
            assert user_rows(db, resumed) == 1
            assert len(resumer.of("ai-message")) == 1
            assert len(listener.of("ai-message")) == 1
            assert b.crashes() == []
        finally:
            for client in clients:
                await client.close()


async def test_a_retried_send_is_stored_and_answered_once(server: LiveServer) -> None:
    client = RecordingClient()
    await client.connect(server.url)
    try:
        session_id = (await client.call("join-chat", {"userId": "u-retry"}))["sessionId"]
        await client.next("ai-message")  # the greeting
        send = {"sessionId": session_id, "message": "안녕하세요", "clientMessageId": "r-1"}
        first = await client.call("send-message", send)
        again = await client.call("send-message", send)
        assert again == first
        await client.next("ai-message", timeout=GENEROUS)
        assert await client.nothing("ai-message", seconds=1.0)
        assert len(client.of("message-sent")) == 1
        other = await client.call("send-message", {**send, "clientMessageId": "r-2"})
        assert other["id"] != first["id"]
        history = await client.call("get-history", {"sessionId": session_id})
        assert [m["content"] for m in history["messages"] if m["sender"] == "user"] == [
            "안녕하세요",
            "안녕하세요",
        ]
    finally:
        await client.close()


pytestmark = [pytest.mark.cluster, pytest.mark.slow]  # issue 17 fault tests: seconds each
