"""Socket.IO packets a client got wrong are dropped, not tracebacks in the log.

python-socketio decodes each packet in its message handler and lets whatever the decoding
raises escape (`[]`, `{}`, `[5]` as an event, bad JSON, JSON nested past the recursion
limit, a bad attachment placeholder, an unknown packet type): python-engineio then logs
the traceback of every such packet, and a binary packet left waiting for attachments that
never fit makes every later packet of that client fail the same way. Here a packet that
Socket.IO v5 does not allow from a client is dropped with one INFO line, and the client's
other packets are served as usual; each connection's first mistake is logged at INFO, the
next ones at DEBUG.

A binary event's attachments count towards `MAX_PAYLOAD_BYTES` with the packet itself, and
at most `MAX_ATTACHMENTS` are taken: python-socketio keeps every attachment in memory until
the last one has come (100 of 990 KB each held 98 MiB).

Engine.IO's polling POSTs are checked here before python-engineio reads them: a body past
`MAX_PAYLOAD_BYTES` (or of unknown length) is answered 413 at once and its session closed
(python-engineio answered nothing at all, and its `disconnect` then waited for the session's
queue forever, holding up shutdown too), and a body that is not Engine.IO packets a client
may send (not UTF-8, an unknown packet type such as `7`, bad base64) is answered 400 and the
session closed, instead of a traceback and 200.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import logging
from typing import Any

import engineio
import socketio
from aiohttp import web
from socketio import packet

from server.texts import invalid_field

log = logging.getLogger(__name__)

_FROM_CLIENT = {packet.CONNECT, packet.DISCONNECT, packet.EVENT, packet.ACK}
_BINARY = {packet.BINARY_EVENT, packet.BINARY_ACK}
_EVENTS = {packet.EVENT, packet.BINARY_EVENT}
_ACKS = {packet.ACK, packet.BINARY_ACK}
# what python-socketio raises itself, past decoding, for a packet it will not take
_REFUSED_BY_LIBRARY = {"Unexpected binary packet"}
MAX_ATTACHMENTS = 10  # binary attachments of one event (the contract's events have none)
# Engine.IO v4 packets a client may send: CLOSE, PING, PONG, MESSAGE, UPGRADE, NOOP
ENGINEIO_CLIENT_TYPES = frozenset("123456")
_PACKET_SEPARATOR = "\x1e"
BODY_READ_SECONDS = 10.0  # a polling POST's body must have come by then (slowloris)


class MalformedPacket(ValueError):
    pass


class ContractPacket(socketio.packet.Packet):  # type: ignore[misc]
    """A Socket.IO packet that refuses, as `MalformedPacket`, what a client may not send."""

    max_bytes = 1_000_000  # the packet and its attachments together (`MAX_PAYLOAD_BYTES`)

    def __init__(self, *args: Any, encoded_packet: Any = None, **kwargs: Any) -> None:
        if encoded_packet is not None and not encoded_packet:
            # python-socketio would take an empty message for an EVENT with no data at all
            raise MalformedPacket("empty")
        self.received_bytes = len(encoded_packet) if encoded_packet is not None else 0
        super().__init__(*args, encoded_packet=encoded_packet, **kwargs)

    def decode(self, encoded_packet: Any) -> int:
        try:
            attachments: int = super().decode(encoded_packet)
        except (ValueError, TypeError, LookupError, RecursionError) as exc:
            raise MalformedPacket(f"undecodable: {type(exc).__name__}") from None
        kind = self.packet_type
        if not isinstance(kind, int):
            # an Engine.IO message whose text is JSON (`4[1]`) arrives decoded; python-socketio
            # then takes the whole object for the packet type
            raise MalformedPacket(f"packet type of a {type(kind).__name__}")
        if kind not in _FROM_CLIENT and kind not in _BINARY:
            raise MalformedPacket(f"packet type {kind!r}")
        if (kind in _BINARY) != (attachments > 0) or attachments > MAX_ATTACHMENTS:
            raise MalformedPacket("attachment count")
        if kind in _EVENTS and not (
            isinstance(self.data, list) and self.data and isinstance(self.data[0], str)
        ):
            raise MalformedPacket("an event is [name, ...arguments]")
        if kind in _ACKS and not isinstance(self.data, list):
            raise MalformedPacket("an ack is [...arguments]")
        return attachments

    def add_attachment(self, attachment: Any) -> bool:
        if not isinstance(attachment, bytes):
            raise MalformedPacket("text where a binary attachment was due")
        self.received_bytes += len(attachment)
        if self.received_bytes > self.max_bytes:
            raise MalformedPacket("attachments past MAX_PAYLOAD_BYTES")
        try:
            return bool(super().add_attachment(attachment))
        except (ValueError, TypeError, LookupError, RecursionError) as exc:
            raise MalformedPacket(f"attachment: {type(exc).__name__}") from None


class ContractSocketServer(socketio.AsyncServer):  # type: ignore[misc]
    """python-socketio's server, decoding with `ContractPacket` and dropping what it refuses."""

    def __init__(self, **options: Any) -> None:
        limit = options.get("max_http_buffer_size", ContractPacket.max_bytes)
        serializer = type("LimitedPacket", (ContractPacket,), {"max_bytes": limit})
        super().__init__(serializer=serializer, **options)
        self._told: set[str] = set()  # connections whose first mistake is logged already

    def _engineio_server_class(self) -> type:
        return ContractEngineServer

    async def _handle_eio_message(self, eio_sid: str, data: Any) -> None:
        try:
            await super()._handle_eio_message(eio_sid, data)
        except ValueError as exc:
            if not isinstance(exc, MalformedPacket) and str(exc) not in _REFUSED_BY_LIBRARY:
                raise
            self._binary_packet.pop(eio_sid, None)
            level = logging.DEBUG if eio_sid in self._told else logging.INFO
            self._told.add(eio_sid)
            log.log(level, "malformed Socket.IO packet dropped", extra={"reason": str(exc)[:80]})

    async def _handle_eio_disconnect(self, eio_sid: str, reason: Any = None) -> None:
        self._told.discard(eio_sid)
        await super()._handle_eio_disconnect(eio_sid, reason)


class ContractEngineServer(engineio.AsyncServer):  # type: ignore[misc]
    """python-engineio's server, with its polling POSTs checked first (module docstring)."""

    async def handle_request(self, *args: Any, **kwargs: Any) -> Any:
        request = args[0]
        if isinstance(request, web.Request) and request.method == "POST":
            socket = self.sockets.get(request.query.get("sid", ""))
            if socket is not None and not socket.closed and not socket.upgraded:
                checked = await self._checked_post(request, socket)
                if isinstance(checked, web.StreamResponse):
                    return checked
                args = (checked, *args[1:])
        return await super().handle_request(*args, **kwargs)

    async def _checked_post(self, request: web.Request, socket: Any) -> Any:
        length = request.content_length
        if length is None or length > self.max_http_buffer_size:
            await self._close(socket, "polling body too large")
            return web.json_response({"message": invalid_field("payload")}, status=413)
        try:
            async with asyncio.timeout(BODY_READ_SECONDS):
                body = await request.content.readexactly(length) if length else b""
        except (TimeoutError, asyncio.IncompleteReadError):
            await self._close(socket, "polling body not sent in time")
            return web.json_response({"message": invalid_field("payload")}, status=408)
        reason = _malformed_payload(body)
        if reason is not None:
            await self._close(socket, reason)
            return web.json_response({"message": invalid_field("payload")}, status=400)
        return _WithBody(request, body)

    async def _close(self, socket: Any, reason: str) -> None:
        log.info("engine.io polling session closed", extra={"reason": reason})
        await socket.close(wait=False, abort=True, reason=self.reason.TRANSPORT_ERROR)
        socket.queue.put_nowait(None)  # ends a pending long-poll of the session at once
        self.sockets.pop(socket.sid, None)


def _malformed_payload(body: bytes) -> str | None:
    """Why an Engine.IO v4 polling body is not packets a client may send; None if it is."""
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        return "not UTF-8"
    for encoded in text.split(_PACKET_SEPARATOR):
        if encoded[:1] == "b":
            try:
                base64.b64decode(encoded[1:], validate=True)
            except (binascii.Error, ValueError):
                return "bad base64"
        elif encoded[:1] not in ENGINEIO_CLIENT_TYPES:
            return "packet type"
    return None


class _WithBody:
    """The POST request, its body already read (and checked), for python-engineio to read
    again: it reads `request.content` itself."""

    def __init__(self, request: web.Request, body: bytes) -> None:
        self._request = request
        self.content = _ReadBody(body)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._request, name)


class _ReadBody:
    def __init__(self, body: bytes) -> None:
        self._body = body

    async def read(self, n: int = -1) -> bytes:
        body, self._body = self._body, b""
        return body
