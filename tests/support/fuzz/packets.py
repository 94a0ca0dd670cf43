"""Raw Socket.IO packets (`<type>[<n>-][<nsp>,][<id>][<json>]` plus binary attachments),
written straight onto a connected client's Engine.IO session, as a hostile client would.

Whatever the packet, the connection keeps serving its valid events afterwards, and nothing
reaches the logs as a traceback.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import socketio
from hypothesis import strategies as st

from server.texts import invalid_field
from tests.support.fuzz import junk
from tests.support.fuzz.sio import FuzzClient


@dataclass(frozen=True)
class RawPacket:
    text: str | bytes
    attachments: tuple[bytes, ...]


# no "1": a DISCONNECT of its own namespace is no junk, the socket just leaves
_types = st.sampled_from(["0", "2", "2", "3", "4", "5", "6", "7", "9", "x", "-", " "])
_counts = st.one_of(
    st.just(""), st.integers(0, 3).map(lambda n: f"{n}-"), st.sampled_from(["99999999999-", "-"])
)
_namespaces = st.one_of(
    st.just("/chat,"),
    st.sampled_from(["", "/signaling,", "/nope,", "/,", "/chat", "/chat?x=1,", "/chat,,"]),
    junk.text.map(lambda t: "/" + t.replace(",", "") + ","),
)
# Ack ids far above the fuzzing client's own: the server acks them back, and python-socketio's
# client keeps its id counter under id 0 and would take a small id's ack for its own call's.
_ids = st.one_of(
    st.just(""),
    st.integers(10**9, 2**64).map(str),
    st.integers(90, 120).map(lambda n: "9" * n),  # past what the server accepts
)
_placeholder = st.builds(
    lambda num: {"_placeholder": True, "num": num},
    st.one_of(st.integers(-2, 4), junk.scalars),
)
_event_like = st.one_of(
    st.lists(junk.json_values(), max_size=3),  # [], [5], [null], [[1]], ...
    st.builds(
        lambda name, args: [name, *args],
        st.one_of(st.sampled_from(["typing", "join-chat", "send-message"]), junk.scalars),
        st.lists(st.one_of(junk.json_values(), _placeholder), max_size=2),
    ),
)
_bodies = st.one_of(
    _event_like.map(junk.as_json_text),
    junk.json_values().map(junk.as_json_text),
    junk.raw_text_frames,
)


def raw_packets() -> st.SearchStrategy[RawPacket]:
    text = st.builds(lambda *parts: "".join(parts), _types, _counts, _namespaces, _ids, _bodies)
    return st.builds(
        RawPacket,
        st.one_of(
            text.filter(junk.sendable).filter(_not_a_handshake_of_chat), st.binary(max_size=64)
        ),
        st.lists(st.binary(max_size=32), max_size=3).map(tuple),
    )


def _not_a_handshake_of_chat(text: str) -> bool:
    """No CONNECT of `/chat` or `/`: a second one is refused with CONNECT_ERROR, as it
    should be, and python-socketio's client then drops `/chat` (for `/`, the whole
    connection). What a CONNECT may carry is `handshakes()`'s business."""
    try:
        decoded = socketio.packet.Packet(encoded_packet=text)
    except Exception:
        return True
    return not (
        decoded.packet_type == socketio.packet.CONNECT
        and (decoded.namespace or "/") in {"/", "/chat"}
    )


def handshakes() -> st.SearchStrategy[Any]:
    """What a client may put in its CONNECT packet (`auth`): an object with anything in it
    (Socket.IO v5 has no other shape: `40/chat,0.5` reads as ack id 0 and then junk)."""
    return st.one_of(
        st.none(),
        st.dictionaries(junk.text, junk.json_values(), max_size=4),
        st.builds(lambda token: {"token": token}, junk.json_values()),
    )


async def connect_with(url: str, auth: Any) -> None:
    """Any `auth` (no AUTH_SECRET here): the connection is served."""
    client = FuzzClient("/chat")
    await client.sio.connect(
        url, namespaces=["/chat"], transports=["websocket"], auth=auth, wait_timeout=5
    )
    try:
        reply = await client.call("get-history", {})
        assert reply == {"error": {"message": invalid_field("sessionId")}}, (auth, reply)
    finally:
        await client.close()


async def send_raw(client: FuzzClient, packet: RawPacket) -> None:
    """Write the packet and its attachments, then prove the socket still serves events."""
    eio = client.sio.eio
    await eio.send(packet.text)
    for attachment in packet.attachments:
        await eio.send(attachment)
    # a binary packet still waiting for attachments swallows this one and is dropped with it
    await eio.send('2/chat,["flush"]')
    reply = await client.call("get-history", {})
    assert reply == {"error": {"message": invalid_field("sessionId")}}, (packet, reply)
    client.errors.clear()  # a well-formed raw event may have earned its own error
