"""Socket.IO packets a client got wrong are dropped, not tracebacks in the log.

python-socketio decodes each packet in its message handler and lets whatever the decoding
raises escape (`[]`, `{}`, `[5]` as an event, bad JSON, JSON nested past the recursion
limit, a bad attachment placeholder, an unknown packet type): python-engineio then logs
the traceback of every such packet, and a binary packet left waiting for attachments that
never fit makes every later packet of that client fail the same way. Here a packet that
Socket.IO v5 does not allow from a client is dropped with one INFO line, and the client's
other packets are served as usual.
"""

from __future__ import annotations

import logging
from typing import Any

import socketio
from socketio import packet

log = logging.getLogger(__name__)

_FROM_CLIENT = {packet.CONNECT, packet.DISCONNECT, packet.EVENT, packet.ACK}
_BINARY = {packet.BINARY_EVENT, packet.BINARY_ACK}
_EVENTS = {packet.EVENT, packet.BINARY_EVENT}
_ACKS = {packet.ACK, packet.BINARY_ACK}
# what python-socketio raises itself, past decoding, for a packet it will not take
_REFUSED_BY_LIBRARY = {"Unexpected binary packet"}


class MalformedPacket(ValueError):
    pass


class ContractPacket(socketio.packet.Packet):  # type: ignore[misc]
    """A Socket.IO packet that refuses, as `MalformedPacket`, what a client may not send."""

    def __init__(self, *args: Any, encoded_packet: Any = None, **kwargs: Any) -> None:
        if encoded_packet is not None and not encoded_packet:
            # python-socketio would take an empty message for an EVENT with no data at all
            raise MalformedPacket("empty")
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
        if (kind in _BINARY) != (attachments > 0):
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
        try:
            return bool(super().add_attachment(attachment))
        except (ValueError, TypeError, LookupError, RecursionError) as exc:
            raise MalformedPacket(f"attachment: {type(exc).__name__}") from None


class ContractSocketServer(socketio.AsyncServer):  # type: ignore[misc]
    """python-socketio's server, decoding with `ContractPacket` and dropping what it refuses."""

    def __init__(self, **options: Any) -> None:
        super().__init__(serializer=ContractPacket, **options)

    async def _handle_eio_message(self, eio_sid: str, data: Any) -> None:
        try:
            await super()._handle_eio_message(eio_sid, data)
        except ValueError as exc:
            if not isinstance(exc, MalformedPacket) and str(exc) not in _REFUSED_BY_LIBRARY:
                raise
            self._binary_packet.pop(eio_sid, None)
            log.info("malformed Socket.IO packet dropped", extra={"reason": str(exc)[:80]})
