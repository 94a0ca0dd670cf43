"""Engine.IO websockets served outside aiohttp once the handshake is done
(`server/transport/websocket.py`): frames a browser or a hostile client may send, and the ends of a
connection. A bare TCP client with `websockets`' sans-I/O client protocol chooses exactly what
is sent and when."""

from __future__ import annotations

import asyncio
import gc
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any
from urllib.parse import urlsplit

import pytest
from websockets.frames import CloseCode, Frame, Opcode
from websockets.protocol import Protocol, Side, State

from server.keys import SIO
from server.transport import websocket as sio_websocket
from server.transport.websocket import EngineIOConnection
from tests.conftest import LiveServer
from tests.support.waiting import until

HANDSHAKE = (
    "GET /socket.io/?EIO=4&transport=websocket HTTP/1.1\r\n"
    "Host: 127.0.0.1\r\n"
    "Upgrade: websocket\r\n"
    "Connection: Upgrade\r\n"
    "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
    "Sec-WebSocket-Version: 13\r\n"
    "\r\n"
)


class RawWebSocket:
    """A websocket client on a bare TCP connection: the test sends what it likes, frame by
    frame, and reads the server's frames one at a time."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer
        self.frames = Protocol(Side.CLIENT, state=State.OPEN)
        self.events: list[Frame] = []

    def send(self, opcode: Opcode, data: bytes, *, fin: bool = True) -> None:
        if opcode is Opcode.TEXT:
            self.frames.send_text(data, fin=fin)
        elif opcode is Opcode.BINARY:
            self.frames.send_binary(data, fin=fin)
        elif opcode is Opcode.CONT:
            self.frames.send_continuation(data, fin=fin)
        elif opcode is Opcode.PING:
            self.frames.send_ping(data)
        self.flush()

    def flush(self) -> None:
        for data in self.frames.data_to_send():
            if data:
                self.writer.write(data)

    async def next(self, timeout: float = 5) -> Frame | None:
        """The server's next frame; None once it has closed the connection."""
        while not self.events:
            data = await asyncio.wait_for(self.reader.read(65536), timeout)
            if not data:
                return None
            self.frames.receive_data(data)
            self.events.extend(self.frames.events_received())
        return self.events.pop(0)

    async def next_text(self, timeout: float = 5) -> str:
        frame = await self.next(timeout)
        assert frame is not None and frame.opcode is Opcode.TEXT, frame
        return frame.data.decode()

    async def closed_by_server(self, timeout: float = 5, *, answer: bool = True) -> bool:
        """Whether the server hangs up within `timeout`; its frames until then are read, and
        a close frame answered unless `answer` is false."""
        try:
            while await self.next(timeout) is not None:
                if answer:
                    self.flush()
        except TimeoutError:
            return False
        return True


@asynccontextmanager
async def raw_websocket(
    live: LiveServer, *, handshake: str = HANDSHAKE, with_request: bytes = b""
) -> AsyncIterator[tuple[RawWebSocket, str]]:
    """A raw connection to Socket.IO, its handshake answered; `with_request` is sent in the
    same write as the request. Yields the client and the response head."""
    address = urlsplit(live.url)
    reader, writer = await asyncio.open_connection(address.hostname, address.port)
    try:
        writer.write(handshake.encode() + with_request)
        head = (await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)).decode()
        yield RawWebSocket(reader, writer), head
    finally:
        writer.close()


def client_frames() -> Protocol:
    return Protocol(Side.CLIENT, state=State.OPEN)


async def test_frames_sent_with_the_handshake_are_read(server: LiveServer) -> None:
    early = client_frames()
    early.send_text(b"40/chat,")  # a client that does not wait for the 101
    async with raw_websocket(server, with_request=b"".join(early.data_to_send())) as (ws, head):
        assert head.startswith("HTTP/1.1 101")
        assert (await ws.next_text()).startswith("0{")  # OPEN
        assert (await ws.next_text()).startswith("40/chat,{")  # connected to /chat


async def test_a_message_in_fragments_is_put_together(server: LiveServer) -> None:
    async with raw_websocket(server) as (ws, _head):
        assert (await ws.next_text()).startswith("0{")
        ws.send(Opcode.TEXT, b"40/c", fin=False)
        ws.send(Opcode.PING, b"between")  # control frames may come between fragments
        ws.send(Opcode.CONT, b"h", fin=False)
        ws.send(Opcode.CONT, b"at,", fin=True)
        pong = await ws.next()
        assert pong is not None and pong.opcode is Opcode.PONG and pong.data == b"between"
        assert (await ws.next_text()).startswith("40/chat,{")


@pytest.mark.parametrize(
    ("frame", "code"),
    [
        ((Opcode.TEXT, b"4\xff\xfe"), CloseCode.INVALID_DATA),  # not UTF-8
        ((Opcode.TEXT, b"x-not-a-packet"), CloseCode.PROTOCOL_ERROR),
        ((Opcode.CONT, b"no message to continue"), CloseCode.PROTOCOL_ERROR),
    ],
)
async def test_a_bad_frame_closes_its_connection_with_a_code(
    server: LiveServer, frame: tuple[Opcode, bytes], code: CloseCode
) -> None:
    eio = server.app[SIO].eio
    async with raw_websocket(server) as (ws, _head):
        assert (await ws.next_text()).startswith("0{")
        opcode, data = frame  # as it comes, whether the client protocol allows it or not
        ws.writer.write(Frame(opcode, data).serialize(mask=True, extensions=[]))
        closing = await ws.next()
        assert closing is not None and closing.opcode is Opcode.CLOSE
        assert int.from_bytes(closing.data[:2], "big") == code
        ws.flush()  # the client's answer to the close frame
        assert await ws.closed_by_server()
    await until(lambda: not eio.sockets)


async def test_a_handshake_without_a_key_is_refused_and_leaves_no_socket(
    server: LiveServer,
) -> None:
    keyless = HANDSHAKE.replace("Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n", "")
    async with raw_websocket(server, handshake=keyless) as (_ws, head):
        assert head.startswith("HTTP/1.1 400")
    assert not server.app[SIO].eio.sockets


async def test_a_client_that_drops_is_disconnected_everywhere(server: LiveServer) -> None:
    sio = server.app[SIO]
    async with raw_websocket(server) as (ws, _head):
        assert (await ws.next_text()).startswith("0{")
        ws.send(Opcode.TEXT, b"40/chat,")
        assert (await ws.next_text()).startswith("40/chat,{")
        assert list(sio.manager.get_participants("/chat", None))
        ws.writer.transport.abort()  # no close frame, no Engine.IO CLOSE
    await until(lambda: not sio.eio.sockets, 10, "every engine.io socket gone")
    assert not list(sio.manager.get_participants("/chat", None))


async def test_a_server_disconnect_closes_the_websocket(server: LiveServer) -> None:
    sio = server.app[SIO]
    async with raw_websocket(server) as (ws, _head):
        assert (await ws.next_text()).startswith("0{")
        ws.send(Opcode.TEXT, b"40/chat,")
        assert (await ws.next_text()).startswith("40/chat,{")
        [(sid, _)] = list(sio.manager.get_participants("/chat", None))
        await sio.disconnect(sid, namespace="/chat")
        assert await ws.next_text() == "41/chat,"  # Socket.IO DISCONNECT
        await sio.eio.disconnect()  # every Engine.IO socket
        assert await ws.next_text() == "1"  # Engine.IO CLOSE, then the close frame
        closing = await ws.next()
        assert closing is not None and closing.opcode is Opcode.CLOSE
        ws.flush()
        assert await ws.closed_by_server()


async def test_a_client_that_never_answers_the_close_frame_is_let_go(
    server: LiveServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(sio_websocket, "CLOSE_TIMEOUT", 0.2)
    eio = server.app[SIO].eio
    async with raw_websocket(server) as (ws, _head):
        assert (await ws.next_text()).startswith("0{")
        for socket in list(eio.sockets.values()):
            socket.queue.put_nowait(None)  # the end mark of a socket's queue: hang up
        closing = await ws.next()
        assert closing is not None and closing.opcode is Opcode.CLOSE
        # no answer: the server lets go of the connection once its timeout has passed
        assert await ws.closed_by_server(timeout=3, answer=False)


class StubTransport(asyncio.Transport):
    """What `EngineIOConnection` asks of its transport, recorded."""

    def __init__(self, buffered: int = 0) -> None:
        super().__init__()
        self.written: list[bytes] = []
        self.reading = True
        self.aborted = False
        self.buffered = buffered

    def write(self, data: Any) -> None:
        self.written.append(bytes(data))

    def get_write_buffer_size(self) -> int:
        return self.buffered

    def is_closing(self) -> bool:
        return self.aborted

    def is_reading(self) -> bool:
        return self.reading

    def pause_reading(self) -> None:
        self.reading = False

    def resume_reading(self) -> None:
        self.reading = True

    def abort(self) -> None:
        self.aborted = True

    def close(self) -> None:
        self.aborted = True


class StubSocket:
    """An Engine.IO socket whose `receive` waits until the test lets it go on."""

    def __init__(self) -> None:
        self.sid = "stub"
        self.received: list[Any] = []
        self.go_on = asyncio.Event()
        self.closed = self.closing = self.connected = self.upgraded = False
        self.queue = asyncio.Queue[Any]()

    async def receive(self, pkt: Any) -> None:
        await self.go_on.wait()
        self.received.append(pkt.data)


def open_connection(transport: StubTransport, socket: StubSocket) -> EngineIOConnection:
    frames = Protocol(Side.SERVER, state=State.OPEN)
    connection = EngineIOConnection(socket, frames, transport, upgrading=False)  # type: ignore[arg-type]
    connection.start(b"")
    return connection


async def test_reading_pauses_while_messages_wait_and_resumes_once_they_are_taken() -> None:
    transport, socket = StubTransport(), StubSocket()
    connection = open_connection(transport, socket)
    client = client_frames()
    count = sio_websocket.MAX_INBOX + 10
    for i in range(count):
        client.send_text(f"4{i}".encode())
    connection.data_received(b"".join(client.data_to_send()))
    assert not transport.reading  # the socket has not taken any yet
    socket.go_on.set()
    await until(lambda: len(socket.received) == count)
    assert transport.reading
    assert socket.received == [str(i) for i in range(count)]  # in order


async def test_a_client_that_does_not_read_is_cut_off() -> None:
    from engineio import packet as eio_packet

    transport = StubTransport(buffered=sio_websocket.MAX_UNSENT_BYTES + 1)
    connection = open_connection(transport, StubSocket())
    connection.put_nowait(eio_packet.Packet(eio_packet.MESSAGE, data='2["ai-message"]'))
    assert transport.aborted


@pytest.mark.slow
async def test_connections_that_end_leave_nothing_behind(server: LiveServer) -> None:
    from aiohttp.web_protocol import RequestHandler

    sio = server.app[SIO]
    sio.eio.ping_interval = sio.eio.ping_timeout = 1
    for ending in ("close frame", "engine.io close", "abort"):
        async with raw_websocket(server) as (ws, _head):
            assert (await ws.next_text()).startswith("0{")
            ws.send(Opcode.TEXT, b"40/chat,")
            assert (await ws.next_text()).startswith("40/chat,{")
            if ending == "close frame":
                ws.frames.send_close(CloseCode.NORMAL_CLOSURE)
                ws.flush()
                assert await ws.closed_by_server()
            elif ending == "engine.io close":
                ws.send(Opcode.TEXT, b"1")
                assert await ws.closed_by_server()
            else:
                ws.writer.transport.abort()
    await until(lambda: not sio.eio.sockets, 10, "every engine.io socket gone")
    assert not list(sio.manager.get_participants("/chat", None))
    # python-engineio's service task holds the last socket it looked at until its next round
    sio.eio.service_task_event.set()
    await sio.eio.service_task_handle

    def left_behind() -> list[Any]:
        gc.collect()
        kinds = (EngineIOConnection, RequestHandler)
        return [o for o in gc.get_objects() if isinstance(o, kinds)]

    # the ping wheel holds a socket until its next slot (here a second away): then the
    # connections are gone
    try:
        await until(lambda: not left_behind(), 10, "the ended connections collected")
    except AssertionError:  # say what stayed, and who holds it
        stayed = left_behind()
        holders = [type(r).__name__ for o in stayed for r in gc.get_referrers(o)]
        raise AssertionError(f"left behind: {stayed!r:.500}; held by {holders!r:.500}") from None
