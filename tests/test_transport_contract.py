"""The contract between server/transport and the library internals it leans on: every private
name still exists with the parameters we call it with (server/transport/hooks.py), after a
real connection the patched objects are the ones in use, and the server refuses to start on
library versions it was not tested with (server/transport/versions.py, pyproject.toml)."""

from __future__ import annotations

import asyncio
import inspect
import os
import re
import tomllib
from collections.abc import AsyncIterator
from importlib import metadata

import pytest
from aiohttp.test_utils import make_mocked_request
from engineio.async_socket import AsyncSocket
from socketio.async_pubsub_manager import AsyncPubSubManager

from server.app import TRANSPORT, create_app
from server.config import ROOT
from server.transport import TransportHookMissing, UntestedVersion, create_transport
from server.transport import versions as transport_versions
from server.transport.fanout import LocalManager, RoomChannelRedisManager
from server.transport.hooks import HOOKS, Hook, missing_on, owner_of, problem
from server.transport.packets import ContractEngineServer, ContractPacket, ContractSocketServer
from server.transport.tuning import OrjsonModule, PacketQueue
from server.transport.websocket import DetachedWebSocket, EngineIOConnection
from tests.conftest import LiveServer, make_settings, serve
from tests.support.sio import RecordingClient
from tests.support.waiting import until

REDIS_URL = os.environ.get("TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
ENGINEIO_SOCKET = "engineio.async_socket:AsyncSocket"


@pytest.mark.parametrize("hook", HOOKS, ids=lambda hook: hook.label)
def test_each_hook_exists_with_the_expected_signature(hook: Hook) -> None:
    assert problem(hook) is None
    owner = owner_of(hook)
    if hook.kind == "method":
        assert tuple(inspect.signature(getattr(owner, hook.name)).parameters) == hook.params
    elif hook.kind == "environ key":
        assert hook.name in owner(make_mocked_request("GET", "/socket.io/?EIO=4"))


def test_installing_refuses_a_library_without_a_hook(monkeypatch: pytest.MonkeyPatch) -> None:
    settings = make_settings("sqlite://:memory:")
    monkeypatch.delattr(AsyncPubSubManager, "_handle_emit")
    with pytest.raises(TransportHookMissing, match=r"AsyncPubSubManager\._handle_emit is gone"):
        create_transport(settings)
    monkeypatch.undo()

    async def send_ping(self: AsyncSocket, interval: float) -> None:  # a changed signature
        return None

    monkeypatch.setattr(AsyncSocket, "_send_ping", send_ping)
    with pytest.raises(TransportHookMissing, match=r"AsyncSocket\._send_ping takes"):
        create_app(settings)


def test_the_installed_versions_are_the_tested_ones() -> None:
    transport_versions.check_versions()  # raises otherwise


def test_other_versions_refuse_to_start_naming_them(monkeypatch: pytest.MonkeyPatch) -> None:
    installed = {name: metadata.version(name) for name in transport_versions.TESTED}
    real_version = metadata.version

    def version(name: str) -> str:
        return {"python-engineio": "4.10.0", "websockets": "18.0"}.get(name) or real_version(name)

    monkeypatch.setattr(transport_versions.metadata, "version", version)
    with pytest.raises(UntestedVersion) as refused:
        create_app(make_settings("sqlite://:memory:"))
    message = str(refused.value)
    assert "python-engineio 4.10.0 (tested: >=4.15.1,<4.16)" in message
    assert "websockets 18.0" in message
    assert "aiohttp" not in message and "python-socketio" not in message
    assert transport_versions.untested(installed) == []
    assert transport_versions.untested({**installed, "aiohttp": "3.15.0rc1"}) == [
        "aiohttp 3.15.0rc1 (tested: >=3.14.5,<3.15)"
    ]


def test_pyproject_states_the_tested_ranges() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    stated = {}
    for requirement in project["dependencies"]:
        match = re.fullmatch(r"([A-Za-z0-9_.-]+)\s*([^;]*?)\s*(;.*)?", requirement)
        assert match, requirement
        stated[match.group(1).lower()] = match.group(2).replace(" ", "")
    for name in transport_versions.TESTED:
        assert stated[name] == transport_versions.specifier(name), name


@pytest.fixture
async def quick_pings(sqlite_url: str) -> AsyncIterator[LiveServer]:
    """The app with a 1 s ping interval (25 s by default)."""
    async with serve(make_settings(sqlite_url)) as live:
        live.app[TRANSPORT].sio.eio.ping_interval = 1
        yield live


def _engineio_ping_tasks() -> list[asyncio.Task[object]]:
    name = AsyncSocket._send_ping.__qualname__
    return [t for t in asyncio.all_tasks() if t.get_coro().__qualname__ == name]  # type: ignore[union-attr]


async def test_after_a_connection_the_patched_objects_are_in_use(quick_pings: LiveServer) -> None:
    transport = quick_pings.app[TRANSPORT]
    sio, eio = transport.sio, transport.sio.eio
    assert isinstance(sio, ContractSocketServer)
    assert issubclass(sio.packet_class, ContractPacket) and sio.packet_class.json is OrjsonModule
    assert sio.packet_class.max_bytes == quick_pings.settings.max_payload_bytes
    assert isinstance(eio, ContractEngineServer)
    assert isinstance(sio.manager, LocalManager)
    assert eio._async["websocket"] is DetachedWebSocket
    client = RecordingClient()
    await client.connect(quick_pings.url)  # a websocket
    try:
        [socket] = eio.sockets.values()
        assert missing_on(socket, ENGINEIO_SOCKET) == []
        assert isinstance(socket.queue, EngineIOConnection)  # our websocket took the queue
        assert socket.upgraded and socket.connected
        # the ping wheel pinged the socket, and python-engineio's own pinger never ran
        await until(lambda: transport.pings.sent >= 2, what="two pings from the wheel")
        assert _engineio_ping_tasks() == []
        assert client.sio.connected
    finally:
        await client.close()


async def test_a_polling_socket_has_our_small_queue(server: LiveServer) -> None:
    client = RecordingClient()
    await client.connect(server.url, transport="polling")
    try:
        [socket] = server.app[TRANSPORT].sio.eio.sockets.values()
        assert isinstance(socket.queue, PacketQueue)
    finally:
        await client.close()


async def test_the_redis_manager_is_ours_and_its_listener_is_held(sqlite_url: str) -> None:
    async with serve(make_settings(sqlite_url, redis_url=REDIS_URL)) as live:
        manager = live.app[TRANSPORT].sio.manager
        assert isinstance(manager, RoomChannelRedisManager)
        client = RecordingClient()
        await client.connect(live.url)
        try:
            assert missing_on(manager, "socketio.async_pubsub_manager:AsyncPubSubManager") == []
            # python-socketio's `initialize` stored its listener where `aclose` cancels it
            assert isinstance(manager.thread, asyncio.Task) and not manager.thread.done()
        finally:
            await client.close()
        thread = manager.thread
    assert thread.done()  # the app's shutdown closed the transport
