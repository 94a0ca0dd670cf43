"""The Socket.IO tuning of `server/transport/tuning.py`: the small packet queue behaves as the
`asyncio.Queue` python-engineio expects, the orjson module round-trips what the standard
one does, and the websockets (`server/transport/websocket.py`, with the ping wheel) ping, close,
upgrade and refuse as python-engineio's own did."""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import aiohttp
import pytest

from server.keys import SIO
from server.transport.tuning import OrjsonModule, PacketQueue
from tests.conftest import LiveServer, make_settings, serve
from tests.support.sio import RecordingClient, joined_chat_client


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


@pytest.fixture
async def quick_pings(sqlite_url: str) -> AsyncIterator[LiveServer]:
    """The app with a 1 s ping interval and timeout (25 s and 20 s by default)."""
    async with serve(make_settings(sqlite_url)) as live:
        eio = live.app[SIO].eio
        eio.ping_interval = eio.ping_timeout = 1
        yield live


@asynccontextmanager
async def engineio_socket(live: LiveServer) -> AsyncIterator[aiohttp.ClientWebSocketResponse]:
    """A bare Engine.IO websocket, its OPEN packet read."""
    async with (
        aiohttp.ClientSession() as session,
        session.ws_connect(f"{live.url}/socket.io/?EIO=4&transport=websocket") as ws,
    ):
        assert (await ws.receive_str(timeout=5)).startswith("0{")  # OPEN
        yield ws


@pytest.mark.slow
async def test_an_idle_websocket_is_pinged_and_stays_while_it_answers(
    quick_pings: LiveServer,
) -> None:
    async with engineio_socket(quick_pings) as ws:
        for _ in range(3):  # each ping comes about a second after the last answer
            assert await ws.receive_str(timeout=4) == "2"  # PING
            await ws.send_str("3")  # PONG
        assert len(quick_pings.app[SIO].eio.sockets) == 1


@pytest.mark.slow
@pytest.mark.parametrize("service_task", [True, False])
async def test_a_websocket_that_stops_answering_pings_is_closed(
    quick_pings: LiveServer, service_task: bool
) -> None:
    eio = quick_pings.app[SIO].eio
    async with engineio_socket(quick_pings) as ws:
        if not service_task:  # python-engineio's round of every socket may come late
            eio.service_task_event.set()
            await eio.service_task_handle
        assert await ws.receive_str(timeout=4) == "2"
        # no PONG: the socket is closed, and the websocket goes
        msg = await ws.receive(timeout=8)
        assert msg.type in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSED)
        for _ in range(50):
            if not eio.sockets:
                break
            await asyncio.sleep(0.05)
        assert not eio.sockets


async def test_a_frame_that_is_not_engineio_ends_only_its_connection(server: LiveServer) -> None:
    async with engineio_socket(server) as ws:
        await ws.send_str("x-not-a-packet")
        msg = await ws.receive(timeout=5)
        assert msg.type in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSED)
    client, session_id = await joined_chat_client(server.url)  # the server serves on
    try:
        assert session_id
    finally:
        await client.close()


async def test_a_message_of_json_text_is_refused_and_the_connection_serves_on(
    server: LiveServer, caplog: pytest.LogCaptureFixture
) -> None:
    async with engineio_socket(server) as ws:
        for text in ("4[1]", '4{"a": 1}', "4[[2]]"):  # Engine.IO hands these on decoded
            await ws.send_str(text)
        await ws.send_str("40/chat,")  # a Socket.IO connect to /chat after them
        assert (await ws.receive_str(timeout=5)).startswith("40/chat,{")
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]


async def test_a_polling_client_upgrades_to_the_websocket(server: LiveServer) -> None:
    client = RecordingClient()
    await client.sio.connect(
        server.url, namespaces=["/chat"], transports=["polling", "websocket"], wait_timeout=5
    )
    try:
        for _ in range(100):
            if client.sio.transport() == "websocket":
                break
            await asyncio.sleep(0.05)
        assert client.sio.transport() == "websocket"
        joined = await client.call("join-chat", {"userId": "upgraded"})
        await client.emit("send-message", {"sessionId": joined["sessionId"], "message": "안녕"})
        assert (await client.next("message-sent"))["content"] == "안녕"
        assert await client.next("ai-message")  # the greeting
    finally:
        await client.close()
