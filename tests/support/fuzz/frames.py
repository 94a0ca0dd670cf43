"""Raw websocket frames on a Socket.IO connection (`server/transport/websocket.py`), as a hostile
client would write them after the handshake: any opcode, reserved bits, unmasked frames,
lengths that lie, control frames too long or fragmented, invalid UTF-8, bytes that are no
frame at all, between valid Engine.IO packets.

Whatever arrives, the server has answered the handshake, never crashes, and nothing reaches
the logs as a traceback; once the client drops the connection, its Engine.IO socket is gone
(checked after the campaign), and the chat still has whole turns.
"""

from __future__ import annotations

import asyncio
import os
from dataclasses import dataclass
from urllib.parse import urlsplit

from hypothesis import strategies as st
from websockets.frames import Opcode
from websockets.protocol import Protocol, Side, State

from tests.support.fuzz import junk

HANDSHAKE = (
    b"GET /socket.io/?EIO=4&transport=websocket HTTP/1.1\r\n"
    b"Host: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
    b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
)
QUIET_SECONDS = 0.3  # a connection still open this long after the frames is serving on


@dataclass(frozen=True)
class RawFrame:
    """One frame as written on the wire: any header bits, any declared length."""

    opcode: int
    payload: bytes
    fin: bool = True
    rsv: int = 0
    masked: bool = True
    declared: int | None = None  # the length in the header, when it lies

    def encode(self) -> bytes:
        length = len(self.payload) if self.declared is None else self.declared
        head = bytes([(0x80 if self.fin else 0) | (self.rsv << 4) | self.opcode])
        mask_bit = 0x80 if self.masked else 0
        if length < 126:
            head += bytes([mask_bit | length])
        elif length < 1 << 16:
            head += bytes([mask_bit | 126]) + length.to_bytes(2, "big")
        else:
            head += bytes([mask_bit | 127]) + length.to_bytes(8, "big")
        if not self.masked:
            return head + self.payload
        key = os.urandom(4)
        return head + key + bytes(b ^ key[i % 4] for i, b in enumerate(self.payload))


_engineio_texts = st.sampled_from(
    ["2", "3", "4", "5", "6", "1", "40/chat,", '42/chat,["typing"]', "2probe", "0", "", "4{}"]
).map(str.encode)
_payloads = st.one_of(
    _engineio_texts,
    junk.text.map(lambda t: t.encode("utf-8", "surrogatepass")),
    st.binary(max_size=300),
    st.sampled_from([b"4\xff\xfe", b"\xc3", b"4\xed\xa0\x80", b"\x00" * 200]),
)
_frames = st.builds(
    RawFrame,
    opcode=st.one_of(
        st.sampled_from([Opcode.TEXT.value, Opcode.BINARY.value, Opcode.CONT.value]),
        st.sampled_from([Opcode.PING.value, Opcode.PONG.value, Opcode.CLOSE.value]),
        st.integers(0, 15),
    ),
    payload=_payloads,
    fin=st.booleans() | st.just(True),
    rsv=st.just(0) | st.integers(0, 7),
    masked=st.just(True) | st.booleans(),
    declared=st.none()
    | st.none()
    | st.sampled_from([0, 1, 125, 126, 65535, 65536, 2**40, 2**63 - 1]),
)
_pieces = st.one_of(_frames.map(RawFrame.encode), st.binary(min_size=1, max_size=40))
writes = st.lists(_pieces, min_size=1, max_size=4)


async def send_frames(url: str, pieces: list[bytes]) -> None:
    """Handshake, the OPEN packet, the pieces; then, if the server has not closed the
    connection, a ping and a close frame (unanswered when the pieces left the server inside a
    frame), and the connection is dropped."""
    address = urlsplit(url)
    reader, writer = await asyncio.open_connection(address.hostname, address.port)
    client = Protocol(Side.CLIENT, state=State.OPEN)
    try:
        writer.write(HANDSHAKE)
        head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)
        assert head.startswith(b"HTTP/1.1 101"), head
        writer.write(b"".join(pieces))
        if await _closed_within(reader, client, QUIET_SECONDS):
            return
        client.send_ping(b"alive?")
        client.send_close()
        writer.write(b"".join(client.data_to_send()))
        await _closed_within(reader, client, QUIET_SECONDS)
    finally:
        writer.transport.abort()


async def _closed_within(reader: asyncio.StreamReader, client: Protocol, seconds: float) -> bool:
    loop = asyncio.get_running_loop()
    end = loop.time() + seconds
    while (left := end - loop.time()) > 0:
        try:
            data = await asyncio.wait_for(reader.read(65536), left)
        except TimeoutError:
            return False
        if not data:
            return True
        try:
            client.receive_data(data)
        except EOFError:  # our parser of the server's frames is done: the server's too
            return True
        client.events_received()
    return False
