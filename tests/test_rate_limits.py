"""The AI budget holds per caller too (issue #17): one connection opening many sessions used
to get a full budget in each (300 AI turns in 0.5 s over 30 sessions)."""

from __future__ import annotations

from server.texts import RATE_LIMITED
from tests.conftest import make_settings, serve
from tests.support.sio import RecordingClient

LIMIT = 3


async def test_one_connection_shares_one_budget_across_its_sessions(sqlite_url: str) -> None:
    async with serve(make_settings(sqlite_url, max_ai_requests_per_minute=LIMIT)) as live:
        client = RecordingClient()
        await client.connect(live.url)
        try:
            acks = []
            for n in range(2 * LIMIT):  # a new session for every message
                joined = await client.call("join-chat", {"userId": "u-many"})
                sent = {"sessionId": joined["sessionId"], "message": f"질문 {n}"}
                acks.append(await client.call("send-message", sent))
            refused = [a for a in acks if a == {"error": {"message": RATE_LIMITED}}]
            assert len(refused) == LIMIT
            assert all("id" in a for a in acks[:LIMIT])
        finally:
            await client.close()

        other = RecordingClient()  # another connection has a budget of its own
        await other.connect(live.url)
        try:
            joined = await other.call("join-chat", {"userId": "u-other"})
            ack = await other.call(
                "send-message", {"sessionId": joined["sessionId"], "message": "?"}
            )
            assert "id" in ack
        finally:
            await other.close()
