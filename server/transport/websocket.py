"""Engine.IO websockets that leave aiohttp once the handshake is done.

aiohttp serves a websocket from inside the handler of its upgrade request, so for as long as
a Socket.IO client stays connected aiohttp keeps that request (its parsed headers, its parser,
its handler and the frames of the handler chain), a websocket reader with its queues and a
writer task: ~11 KiB of a connection's ~23 that no one uses once the 101 is sent. Here the
handshake is answered by `websockets`' sans-I/O `ServerProtocol`, the connection's transport
is handed to an `EngineIOConnection` (an asyncio protocol with no task of its own), and
aiohttp finishes the request as if the client had gone. An idle connection is then its
transport, its `EngineIOConnection`, its `websockets` frame parser and python-engineio's and
python-socketio's own state. The frames are `websockets`' (RFC 6455: masking, fragments,
control frames, the closing handshake, UTF-8, the size limit); permessage-deflate is not
offered (see `server/transport/tuning.py`).

Reading: each frame arrives in `data_received`; complete messages are handed to the socket in
order by a task that lives only while there are messages to hand over. Writing: once the
websocket is up, the connection *is* the socket's queue: python-engineio's `send` puts a
packet there and it is framed and written at once, and the `None` that ends a socket's queue
closes the websocket. A client that stops reading while the server writes to it is cut off
once `MAX_UNSENT_BYTES` wait for it, rather than held in memory without bound.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any, cast

from aiohttp import web
from engineio import exceptions as eio_exceptions
from engineio import packet as eio_packet
from engineio.async_socket import AsyncSocket
from websockets.datastructures import Headers
from websockets.frames import CloseCode, Frame, Opcode
from websockets.http11 import Request
from websockets.protocol import Protocol, Side, State
from websockets.server import ServerProtocol

log = logging.getLogger(__name__)

# `websockets` logs "connection open" and "connection closed" at INFO for each connection
_FRAMES_LOG = logging.getLogger(__name__ + ".frames")
_FRAMES_LOG.setLevel(logging.WARNING)

MAX_UNSENT_BYTES = 16 * 1024 * 1024  # written but not yet taken by the client: then cut off
CLOSE_TIMEOUT = 5.0  # seconds a client has to answer our close frame before it is let go
MAX_INBOX = 64  # messages waiting for their turn before reading pauses

APP_ENVIRON_KEY = "aiohttp.app"  # the application, in the environ of a websocket connection

_CLIENT_PACKET_TYPES = frozenset(range(eio_packet.CLOSE, eio_packet.NOOP + 1))
_END = object()  # the connection is gone: the socket is closed after what came before
_PROBE, _AWAIT_UPGRADE, _OPEN = 0, 1, 2  # a polling client moving over, then Engine.IO


class DetachedWebSocket:
    """What python-engineio's driver table calls for a websocket: `cls(handler, server)`,
    then `await ws(environ)` from the socket's GET request, which returns the HTTP response."""

    def __init__(self, handler: Any, server: Any) -> None:
        self.socket: AsyncSocket = handler.__self__  # handler: the socket's own
        self.server = server

    async def __call__(self, environ: dict[str, Any]) -> web.StreamResponse:
        request: web.Request = environ["aiohttp.request"]
        socket = self.socket
        handshake = ServerProtocol(logger=_FRAMES_LOG)  # parses no HTTP: aiohttp has
        response = handshake.accept(Request(request.path_qs, Headers(request.headers.items())))
        transport = request.transport
        if response.status_code != 101 or transport is None or transport.is_closing():
            if not socket.connected:  # a new connection that never opened: it is no more
                await socket.close(wait=False, abort=True)
            return web.Response(
                status=response.status_code, body=response.body, content_type="text/plain"
            )
        frames = Protocol(
            Side.SERVER,
            state=State.OPEN,
            max_size=self.server.max_http_buffer_size,
            logger=_FRAMES_LOG,
        )
        transport.write(response.serialize())
        connection = EngineIOConnection(socket, frames, transport, upgrading=socket.connected)
        tail = _detach(request, transport, connection)
        # what the environ kept alive was the request itself: the app is all the
        # namespaces need of it afterwards (`server.auth.socket_grant`)
        environ[APP_ENVIRON_KEY] = request.app
        del environ["aiohttp.request"], environ["wsgi.input"]
        connection.start(tail)
        return _Detached(status=101)


def _detach(
    request: web.Request, transport: asyncio.Transport, connection: EngineIOConnection
) -> bytes:
    """Hand the transport to `connection` and let aiohttp's handler of the request forget
    it (its `connection_lost` without a transport closes nothing). Returns the bytes the
    client sent after its request that aiohttp has not parsed."""
    handler = request.protocol
    tail: bytes = handler._message_tail  # see hooks.py: no quiet default
    transport.set_protocol(connection)
    if not transport.is_reading():  # aiohttp pauses a connection whose tail fills its buffer
        transport.resume_reading()
    handler.transport = None
    handler.connection_lost(None)
    return tail


class _Detached(web.StreamResponse):
    """The response of an upgrade request whose connection has left aiohttp: its 101 is
    written already, and the connection is no longer aiohttp's to write to."""

    async def prepare(self, request: web.BaseRequest) -> None:
        return None

    async def write_eof(self, data: bytes = b"") -> None:
        return None


class EngineIOConnection(asyncio.Protocol):
    """One Engine.IO websocket: the transport's protocol, and the socket's queue once the
    websocket is up (python-engineio's `send` puts packets, its `close` may `join`)."""

    __slots__ = (
        "_closer",
        "_inbox",
        "_parts",
        "_stage",
        "_text",
        "_worker",
        "frames",
        "socket",
        "transport",
    )

    def __init__(
        self, socket: AsyncSocket, frames: Protocol, transport: Any, *, upgrading: bool
    ) -> None:
        self.socket = socket
        self.frames = frames
        self.transport = transport
        self._stage = _PROBE if upgrading else _OPEN
        self._parts: list[bytes] | None = None  # a fragmented message so far
        self._text = True  # and whether it is text
        self._inbox: list[Any] = []
        self._worker: asyncio.Task[None] | None = None
        self._closer: asyncio.TimerHandle | None = None

    def start(self, tail: bytes) -> None:
        """Take over the socket's queue (a new connection's OPEN packet is there) and read
        what came with the handshake."""
        socket = self.socket
        if self._stage == _PROBE:
            socket.upgrading = True  # its packets wait in the polling queue meanwhile
        else:
            socket.connected = socket.upgraded = True
            self._take_queue()
        if tail:
            self.data_received(tail)

    # the socket's queue

    def put_nowait(self, pkt: Any) -> None:
        if pkt is None:  # the end of the socket
            self.hang_up()
            return
        if self.frames.state is not State.OPEN:
            return
        data = pkt.encode()
        if isinstance(data, str):
            self.frames.send_text(data.encode())
        else:
            self.frames.send_binary(data)
        self._flush()
        if pkt.packet_type == eio_packet.CLOSE:  # the socket's last packet
            self.hang_up()

    async def put(self, pkt: Any) -> None:
        self.put_nowait(pkt)

    async def join(self) -> None:  # everything put is already written
        return None

    def hang_up(self) -> None:
        """Close the websocket: a close frame, then the transport once the client answers
        (or after `CLOSE_TIMEOUT`)."""
        if self.frames.state is State.OPEN:
            self.frames.send_close(CloseCode.NORMAL_CLOSURE)
            self._flush()
        self._expect_close()

    # the transport's protocol

    def data_received(self, data: bytes) -> None:
        frames = self.frames
        frames.receive_data(data)
        self._flush()  # pongs and the answer to a close frame
        for frame in cast(list[Frame], frames.events_received()):  # frames once OPEN
            opcode = frame.opcode
            if opcode is Opcode.TEXT or opcode is Opcode.BINARY:
                if frame.fin:
                    self._message(bytes(frame.data), opcode is Opcode.TEXT)
                else:
                    self._parts = [bytes(frame.data)]
                    self._text = opcode is Opcode.TEXT
            elif opcode is Opcode.CONT and self._parts is not None:
                self._parts.append(bytes(frame.data))
                if frame.fin:
                    data, self._parts = b"".join(self._parts), None
                    self._message(data, self._text)
        self._expect_close()

    def eof_received(self) -> bool:
        self.frames.receive_eof()
        self._flush()
        return False  # the transport closes itself

    def connection_lost(self, exc: Exception | None) -> None:
        if self._closer is not None:
            self._closer.cancel()
            self._closer = None
        if self._stage == _OPEN:
            self._deliver(_END)
        else:  # the upgrade never happened: the socket stays with its polling transport
            self.socket.upgrading = False

    # inside

    def _message(self, data: bytes, text: bool) -> None:
        if self.frames.state is not State.OPEN:
            return  # after a close frame, or a protocol error: nothing more is read
        try:
            pkt = eio_packet.Packet(encoded_packet=data.decode() if text else data)
        except UnicodeDecodeError:
            self._fail(CloseCode.INVALID_DATA, "invalid UTF-8")
            return
        except Exception:  # not an Engine.IO packet: the connection ends
            self._fail(CloseCode.PROTOCOL_ERROR, "not an Engine.IO packet")
            return
        if pkt.packet_type not in _CLIENT_PACKET_TYPES:  # `7`, `8`, `9`: none a client sends
            log.info("engine.io client sent an unknown packet type: closed")
            self._fail(CloseCode.PROTOCOL_ERROR, "unknown Engine.IO packet type")
            return
        if self._stage == _OPEN:
            self._deliver(pkt)
        elif self._stage == _PROBE:
            if pkt.packet_type == eio_packet.PING and pkt.data == "probe":
                self._stage = _AWAIT_UPGRADE
                self.frames.send_text(b"3probe")
                self._flush()
                self.socket.queue.put_nowait(eio_packet.Packet(eio_packet.NOOP))  # ends the poll
            else:
                self._give_up_upgrade()
        elif pkt.packet_type == eio_packet.UPGRADE:
            socket = self.socket
            self._stage = _OPEN
            socket.upgraded = True
            socket.upgrading = False
            self._take_queue()
        else:
            self._give_up_upgrade()

    def _give_up_upgrade(self) -> None:
        self.socket.upgrading = False
        self.hang_up()

    def _take_queue(self) -> None:
        """Send what waits in the socket's queue, then become its queue."""
        socket = self.socket
        queue = socket.queue
        socket.queue = self
        while not queue.empty():
            pkt = queue.get_nowait()
            queue.task_done()
            self.put_nowait(pkt)

    def _deliver(self, item: Any) -> None:
        inbox = self._inbox
        inbox.append(item)
        if self._worker is None:
            self._worker = asyncio.get_running_loop().create_task(self._work())
        elif len(inbox) > MAX_INBOX and self.transport.is_reading():
            self.transport.pause_reading()

    async def _work(self) -> None:
        """Hand the inbox to the socket, in order; at the end, close the socket."""
        socket, inbox = self.socket, self._inbox
        while inbox:
            item = inbox.pop(0)
            if item is _END:
                inbox.clear()
                await socket.close(
                    wait=False, abort=True, reason=socket.server.reason.TRANSPORT_CLOSE
                )
                socket.server.sockets.pop(socket.sid, None)
                break
            try:
                await socket.receive(item)
            except eio_exceptions.UnknownPacketError:
                pass
            except eio_exceptions.SocketIsClosedError:
                pass
            except Exception:
                log.exception("engine.io receive error")
            if socket.closed:  # the client's CLOSE packet, say: the websocket goes too
                self.hang_up()
            if not self.transport.is_reading() and len(inbox) <= MAX_INBOX // 2:
                if not self.transport.is_closing():
                    self.transport.resume_reading()
        self._worker = None

    def _fail(self, code: CloseCode, reason: str) -> None:
        self.frames.fail(code, reason)
        self._flush()
        self._expect_close()

    def _flush(self) -> None:
        transport = self.transport
        for data in self.frames.data_to_send():
            if transport.is_closing():
                return
            if data:
                transport.write(data)
            else:  # the end of the stream, once both close frames have gone
                transport.close()
                return
        if transport.get_write_buffer_size() > MAX_UNSENT_BYTES:
            log.warning("engine.io client %s reads too slowly: cut off", self.socket.sid)
            transport.abort()

    def _expect_close(self) -> None:
        if (
            self._closer is None
            and self.frames.close_expected()
            and not self.transport.is_closing()
        ):
            loop = asyncio.get_running_loop()
            self._closer = loop.call_later(CLOSE_TIMEOUT, self.transport.abort)
