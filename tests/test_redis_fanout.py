"""Fan-out over Redis under faults (issue #17, defects 1 and 3), against a Redis server of
the test's own (`tests/own_redis.py`), stopped and started again by the test.

- Rooms keep delivering: after the last room of an instance is left (the listener used to
  end there, for good), and after Redis itself went away and came back.
- A burst of publications never asks the connection pool for more than it has.
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pytest

from server.transport.redis_channels import RedisChannels
from tests.conftest import fresh_database, make_settings, serve
from tests.support.own_redis import own_redis
from tests.support.waiting import until
from tests.test_faults import FrameClient

GENEROUS = 15.0


def chat(text: str) -> dict[str, object]:
    return {"hd": {"event": "chat.message"}, "bd": {"text": text}}


def got(client: FrameClient, text: str) -> bool:
    return any(f.get("bd", {}).get("text") == text for f in client.frames)


async def test_rooms_keep_delivering_across_instances_after_leaving_and_a_redis_restart(
    tmp_path: Path,
) -> None:
    async with (
        own_redis(tmp_path) as redis,
        fresh_database("sqlite", tmp_path / "x") as db_x,
        fresh_database("sqlite", tmp_path / "y") as db_y,
        serve(make_settings(db_x, redis_url=redis.url)) as x,
        serve(make_settings(db_y, redis_url=redis.url)) as y,
    ):
        first = await FrameClient.connect(f"{x.url}/v1/session/chat?sid=r1")
        await first.send(chat("하나"))
        await until(lambda: got(first, "하나"), GENEROUS, "the first room's echo")
        await first.close()  # the instance's last room: nothing left subscribed

        on_x = await FrameClient.connect(f"{x.url}/v1/session/chat?sid=r2")
        on_y = await FrameClient.connect(f"{y.url}/v1/session/chat?sid=r2")
        try:
            await on_y.send(chat("둘"))
            await until(lambda: got(on_x, "둘"), GENEROUS, "a frame from the other instance")

            await redis.stop()
            await redis.start()  # same port, empty
            restarted = time.monotonic()

            async def delivered_again() -> bool:
                text = f"셋 {len(on_y.frames)}"
                await on_y.send(chat(text))
                await asyncio.sleep(0.3)
                return got(on_x, text)

            await until(delivered_again, 30, "delivery after Redis came back")
            print(f"\nrooms deliver again {time.monotonic() - restarted:.2f} s after Redis")
        finally:
            await on_x.close()
            await on_y.close()


async def test_a_burst_of_publications_is_delivered_whole(tmp_path: Path) -> None:
    async with own_redis(tmp_path) as redis:
        bus = RedisChannels(redis.url)
        received: list[bytes] = []

        async def count(data: bytes) -> None:
            received.append(data)

        try:
            await bus.subscribe("burst", count)
            burst = [bus.publish("burst", f"m{i}") for i in range(3000)]
            results = await asyncio.gather(*burst, return_exceptions=True)
            assert [r for r in results if r is not None][:3] == []
            await until(lambda: len(received) == 3000, GENEROUS, "every publication")
            assert sorted(received) == sorted(f"m{i}".encode() for i in range(3000))
        finally:
            await bus.aclose()


pytestmark = pytest.mark.slow  # issue 17 fault tests: seconds each
