"""The Socket.IO tuning of `server/sio_tuning.py`: the small packet queue behaves as the
`asyncio.Queue` python-engineio expects, and the orjson module round-trips what the
standard one does."""

from __future__ import annotations

import asyncio
import json

import pytest

from server.sio_tuning import OrjsonModule, PacketQueue


async def test_queue_hands_items_over_in_order_and_joins() -> None:
    queue = PacketQueue()
    getter = asyncio.ensure_future(queue.get())
    await asyncio.sleep(0)
    await queue.put("a")
    queue.put_nowait("b")
    assert await getter == "a"
    assert queue.get_nowait() == "b"
    with pytest.raises(asyncio.QueueEmpty):
        queue.get_nowait()
    joined = asyncio.ensure_future(queue.join())
    await asyncio.sleep(0)
    assert not joined.done()  # two items taken, none marked done
    queue.task_done()
    await asyncio.sleep(0)
    assert not joined.done()
    queue.task_done()
    await asyncio.wait_for(joined, 1)
    with pytest.raises(ValueError):
        queue.task_done()


async def test_a_getter_that_times_out_leaves_the_queue_usable() -> None:
    queue = PacketQueue()
    with pytest.raises(TimeoutError):
        await asyncio.wait_for(queue.get(), 0.01)
    first, second = asyncio.ensure_future(queue.get()), asyncio.ensure_future(queue.get())
    await asyncio.sleep(0)
    first.cancel()
    queue.put_nowait(None)  # python-engineio's "closed" marker
    assert await asyncio.wait_for(second, 1) is None
    assert first.cancelled()
    assert queue.empty()


def test_orjson_module_matches_the_standard_one() -> None:
    data = [{"content": "노인 복지", "n": 1, "f": 1.5, "none": None, "list": [True]}]
    assert json.loads(OrjsonModule.dumps(data)) == data
    assert OrjsonModule.loads(json.dumps(data)) == data
    # what orjson refuses goes through the standard module, as before
    assert json.loads(OrjsonModule.dumps({1: "int key"})) == {"1": "int key"}
    assert OrjsonModule.loads("[" + "9" * 30 + "]") == [int("9" * 30)]
    lone = "\ud800"
    assert OrjsonModule.dumps([lone]) == json.dumps([lone], separators=(",", ":"))
    assert OrjsonModule.loads('["\\ud800", NaN]')[0] == lone
    with pytest.raises(ValueError):
        OrjsonModule.loads("{not json")
