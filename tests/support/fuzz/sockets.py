"""The plain WebSocket front ends (CONTRACT §3, §4, §5): junk text frames, invalid JSON,
binary frames, wrong types, and weird path ids and query parameters.

Each frame is drawn with the answer the contract gives it, computed from the frame alone:
orjson decides what is JSON (as the server's parser does: no NaN, no lone surrogates),
then the endpoint's rules decide which error, echo or reply follows.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

import aiohttp
import orjson
from hypothesis import strategies as st
from yarl import URL

from server.texts import (
    AGENT_NOT_FOUND,
    COUNSELING_MESSAGE_EMPTY,
    COUNSELING_RATE_LIMITED,
    MESSAGE_EMPTY,
    NOT_A_JSON_OBJECT,
    RATE_LIMITED,
    TEXT_FRAMES_ONLY,
    invalid_field,
    message_too_long,
    unknown_type,
)
from tests.support.fuzz import junk
from tests.support.fuzz.shapes import Spec, not_strings, objects, strings

MAX_MESSAGE = 2000
FRAME_TIMEOUT_SECONDS = 30.0
AGENTS = {("project_001", "집사"), ("project_001", "복지상담사")}  # the shipped configuration

Frame = str | bytes


def decoded(frame: Frame) -> tuple[bool, Any]:
    """(is JSON, value) as the server's parser (orjson) sees a text frame."""
    if isinstance(frame, bytes):
        return False, None
    try:
        return True, orjson.loads(frame)
    except orjson.JSONDecodeError:
        return False, None


class Socket:
    """A client WebSocket: send a frame, read the next JSON frame."""

    def __init__(self, ws: aiohttp.ClientWebSocketResponse) -> None:
        self.ws = ws

    async def send(self, frame: Frame) -> None:
        if isinstance(frame, bytes):
            await self.ws.send_bytes(frame)
        else:
            await self.ws.send_str(frame)

    async def next(self) -> dict[str, Any]:
        msg = await self.ws.receive(timeout=FRAME_TIMEOUT_SECONDS)
        assert msg.type is aiohttp.WSMsgType.TEXT, (msg.type, msg.data, msg.extra)
        value = json.loads(msg.data)
        assert isinstance(value, dict), value
        return value


# ---- shared frame strategies --------------------------------------------------------------


def _dumps(value: Any) -> str:
    return json.dumps(value)  # ASCII, NaN as `NaN`: orjson refuses both NaN and lone surrogates


def junk_frames() -> st.SearchStrategy[Frame]:
    """Frames no endpoint can use: not JSON, JSON that is not an object, binary."""
    return st.one_of(
        junk.raw_text_frames,
        junk.not_objects().map(_dumps),
        st.binary(max_size=128),
    )


def typed_frames(types: list[str]) -> st.SearchStrategy[Frame]:
    """Objects whose `type` is anything (a known one sometimes), with junk around it."""
    kinds = st.one_of(st.sampled_from(types), junk.json_values())
    return st.builds(
        lambda extra, kind: _dumps({**extra, "type": kind}),
        junk.junk_extra(frozenset({"type"})),
        kinds,
    )


# ---- §3 agent chat /ws/chat/{client_id} -------------------------------------------------

_AGENT_SPECS = (
    Spec(
        "message",
        st.one_of(strings(0, MAX_MESSAGE), junk.huge_text),
        not_strings(0, None, binary=False, surrogates=False),
    ),
    Spec(
        "agent_name",
        st.one_of(st.sampled_from(["집사", "복지상담사"]), strings(0, 60)),
        not_strings(0, None, binary=False, surrogates=False),
    ),
    Spec(
        "project_id",
        st.one_of(st.just("project_001"), strings(0, 60)),
        not_strings(0, None, binary=False, surrogates=False),
    ),
    Spec(
        "images",
        st.lists(strings(0, 40), max_size=2),
        junk.json_values().filter(lambda v: not isinstance(v, list)),
        required=False,
    ),
)


def agent_frames() -> st.SearchStrategy[Frame]:
    chats = objects(_AGENT_SPECS, non_objects=False).map(
        lambda c: _dumps({**c.payload, "type": "chat"})
    )
    bad_images = st.builds(
        lambda before, bad, after: _dumps(
            {"type": "chat", "message": "m", "agent_name": "a", "project_id": "p",
             "images": [*before, bad, *after]}
        ),
        st.lists(strings(0, 10), max_size=2),
        junk.json_values().filter(lambda v: not isinstance(v, str)),
        st.lists(junk.json_values(), max_size=2),
    )  # fmt: skip
    return st.one_of(
        junk_frames(),
        typed_frames(["ping", "auth", "chat", "pong", "CHAT"]),
        chats,
        chats,
        bad_images,
    )


@dataclass
class AgentOracle:
    socket: Socket
    turns: int = 0  # valid messages the model answered

    async def check(self, frame: Frame) -> None:
        await self.socket.send(frame)
        expected = self._expected(frame)
        if expected == "pong":
            assert await self._next() == {"type": "pong"}, frame
        elif expected == "silent":  # the next frame answers the next request, nothing else
            await self.socket.send('{"type": 5}')
            assert await self._next() == _agent_error(invalid_field("type")), frame
        elif expected == "turn":
            await self._turn(frame)
        else:
            assert await self._next() == _agent_error(expected), frame

    def _expected(self, frame: Frame) -> str:
        if isinstance(frame, bytes):
            return TEXT_FRAMES_ONLY
        is_json, data = decoded(frame)
        if not is_json or not isinstance(data, dict):
            return NOT_A_JSON_OBJECT
        kind = data.get("type")
        if not isinstance(kind, str):
            return invalid_field("type")
        if kind == "ping":
            return "pong"
        if kind == "auth":
            return "silent"  # no AUTH_SECRET: nothing to do
        if kind != "chat":
            return unknown_type(kind)
        for name in ("message", "agent_name", "project_id"):
            if not isinstance(data.get(name), str):
                return invalid_field(name)
        images = data.get("images", [])
        if not isinstance(images, list):
            return invalid_field("images")
        for i, image in enumerate(images):
            if not isinstance(image, str):
                return invalid_field(f"images.{i}")
        if (data["project_id"], data["agent_name"]) not in AGENTS:
            return AGENT_NOT_FOUND
        if not data["message"].strip():
            return MESSAGE_EMPTY
        if len(data["message"]) > MAX_MESSAGE:
            return message_too_long(MAX_MESSAGE)
        return "turn"

    async def _turn(self, frame: Frame) -> None:
        """start, response..., end; or refused (rate limit, a delegation it cannot take)."""
        first = await self._next()
        if first.get("type") == "error":
            assert first["message"] in _AGENT_REFUSALS, (frame, first)
            return
        assert first == {"type": "start"}, (frame, first)
        while (frame_out := await self._next()) != {"type": "end"}:
            assert frame_out.get("type") == "response", (frame, frame_out)
            assert isinstance(frame_out["content"], str)
        self.turns += 1

    async def _next(self) -> dict[str, Any]:
        while (frame := await self.socket.next()).get("type") == "auto_report":
            pass  # a delegated task's report comes whenever it is done
        return frame


_AGENT_REFUSALS = {
    RATE_LIMITED,
    "맡길 작업을 적어 주세요 (예: /report 노인 복지 서비스 조사)",
    "진행 중인 위임 작업이 너무 많습니다. 끝난 뒤에 다시 맡겨 주세요",
}


def room_error(message: str) -> dict[str, Any]:
    return {"hd": {"event": "error"}, "bd": {"text": message}}


def _agent_error(message: str) -> dict[str, Any]:
    return {"type": "error", "message": message}


# ---- §4 rooms /v1/session/chat?sid= -------------------------------------------------------

_ROOM_MAX_FRAME = 4 * MAX_MESSAGE + 4096
_role = st.one_of(st.none(), strings(1, 32).filter(lambda r: r.strip() != ""))
_blank_prompt = st.sampled_from([None, "", "  ", "\n"])


@dataclass(frozen=True)
class RoomFrame:
    text: Frame
    error: str | None  # None: a valid frame, echoed to the room


def _room_frame(hd: Any, bd: Any, extra: dict[str, Any]) -> dict[str, Any]:
    return {**extra, "hd": hd, "bd": bd}


def room_frames() -> st.SearchStrategy[RoomFrame]:
    extra = junk.junk_extra(frozenset({"hd", "bd"}))
    hd_extra = junk.junk_extra(frozenset({"event", "role", "timestamp"}))
    bd_extra = junk.junk_extra(frozenset({"text", "prompt"}))
    text = strings(1, MAX_MESSAGE).filter(lambda t: t.strip() != "")

    def hd(event: Any = "chat.message", role: Any = None, timestamp: Any = None) -> Any:
        return st.builds(
            lambda more, r, ts: {**more, "event": event, "role": r, "timestamp": ts},
            hd_extra,
            st.just(role) if role is not None else _role,
            st.just(timestamp) if timestamp is not None else st.one_of(st.none(), strings(0, 40)),
        )

    def bd(text_value: Any = None, prompt: Any = None) -> Any:
        return st.builds(
            lambda more, t, p: {**more, "text": t, "prompt": p},
            bd_extra,
            st.just(text_value) if text_value is not None else text,
            st.just(prompt) if prompt is not None else _blank_prompt,
        )

    def framed(hd_s: Any, bd_s: Any, error: str | None) -> st.SearchStrategy[RoomFrame]:
        return st.builds(
            lambda h, b, e: RoomFrame(_dumps(_room_frame(h, b, e)), error), hd_s, bd_s, extra
        )

    not_none = junk.json_values().filter(lambda v: v is not None)
    cases = [
        framed(hd(), bd(), None),
        framed(hd(), bd(), None),
        framed(junk.not_objects(), junk.json_values(), invalid_field("hd")),
        framed(hd(), junk.not_objects(), invalid_field("bd")),
        framed(
            st.builds(lambda e: {"event": e}, junk.json_values().filter(
                lambda e: e not in ("chat.message", "llm.invoke"))),
            bd(),
            invalid_field("hd.event"),
        ),
        framed(
            st.builds(lambda r: {"event": "chat.message", "role": r}, st.one_of(
                not_none.filter(lambda r: not isinstance(r, str)),
                st.sampled_from(["", " ", "\t\n"]),
                st.integers(33, 200).map(lambda n: "r" * n),
            )),
            bd(),
            invalid_field("hd.role"),
        ),
        framed(
            st.builds(lambda ts: {"event": "chat.message", "timestamp": ts},
                      not_none.filter(lambda t: not isinstance(t, str))),
            bd(),
            invalid_field("hd.timestamp"),
        ),
        framed(
            hd(),
            st.builds(lambda p: {"text": "t", "prompt": p},
                      not_none.filter(lambda p: not isinstance(p, str))),
            invalid_field("bd.prompt"),
        ),
        framed(
            hd(),
            st.builds(lambda t, p: {"text": t, "prompt": p},
                      junk.json_values().filter(lambda t: not isinstance(t, str)), _blank_prompt),
            invalid_field("bd.text"),
        ),
        framed(hd(), bd(text_value=" \t\n "), MESSAGE_EMPTY),
        framed(
            hd(),
            st.builds(lambda n: {"text": "가" * n}, st.integers(MAX_MESSAGE + 1, 3000)),
            message_too_long(MAX_MESSAGE),
        ),
        framed(
            hd(),
            st.builds(
                lambda n: {"text": "t", "prompt": "p" * n}, st.integers(MAX_MESSAGE + 1, 3000)
            ),
            message_too_long(MAX_MESSAGE),
        ),
        st.builds(
            lambda n: RoomFrame(
                _dumps({"hd": {"event": "chat.message"}, "bd": {"text": "t"}, "pad": "x" * n}),
                message_too_long(MAX_MESSAGE),
            ),
            st.integers(_ROOM_MAX_FRAME, _ROOM_MAX_FRAME + 5000),
        ),
        junk_frames()
        .filter(lambda f: not isinstance(decoded(f)[1], dict))
        .map(lambda f: RoomFrame(f, invalid_field("payload"))),
    ]  # fmt: skip
    return st.one_of(*cases).map(_not_json_is_payload)


def _not_json_is_payload(frame: RoomFrame) -> RoomFrame:
    """A frame orjson refuses (a NaN somewhere) is not JSON, whatever else it got wrong;
    and a frame past the size limit is refused for its size before anything else."""
    if isinstance(frame.text, str) and len(frame.text) > _ROOM_MAX_FRAME:
        return RoomFrame(frame.text, message_too_long(MAX_MESSAGE))
    is_json, value = decoded(frame.text)
    if not is_json or not isinstance(value, dict):
        return RoomFrame(frame.text, invalid_field("payload"))
    return frame


@dataclass
class RoomOracle:
    socket: Socket
    echoed: int = 0

    async def check(self, frame: RoomFrame) -> None:
        await self.socket.send(frame.text)
        got = await self.socket.next()
        if frame.error is not None:
            assert got == room_error(frame.error), (frame, got)
            return
        sent = json.loads(frame.text)
        assert got["hd"]["event"] == "chat.message", (frame, got)
        assert got["hd"]["role"] == (sent["hd"].get("role") or "user"), (frame, got)
        assert isinstance(got["hd"]["timestamp"], str), got
        assert got["bd"]["text"] == sent["bd"]["text"], (frame, got)
        self.echoed += 1


# ---- §5 counseling /ws/session/{session_id} -----------------------------------------------

_COUNSELING_REQUEST = "request_ai_response"


def counseling_frames() -> st.SearchStrategy[Frame]:
    data = st.fixed_dictionaries(
        {},
        optional={
            "message": st.one_of(
                strings(0, MAX_MESSAGE), junk.huge_text.filter(junk.sendable), junk.json_values()
            ),
            "emotion": st.one_of(
                st.sampled_from(["happy", "SAD ", "angry", "anxious", "neutral", "x"]),
                junk.json_values(),
            ),
            "timestamp": st.one_of(
                st.integers(),
                st.sampled_from(["2024-12-14T10:30:00.000Z", "123", "x"]),
                junk.json_values(),
            ),
        },
    ).flatmap(lambda d: st.builds(lambda more: {**more, **d}, junk.junk_extra(frozenset(d))))
    requests = st.builds(
        lambda d, more: _dumps({**more, "type": _COUNSELING_REQUEST, "data": d}),
        st.one_of(data, data, junk.json_values()),
        junk.junk_extra(frozenset({"type", "data"})),
    )
    return st.one_of(
        junk_frames(),
        typed_frames([_COUNSELING_REQUEST, "emotion_update", "vad_metrics"]),
        requests,
        requests,
    )


@dataclass
class CounselingOracle:
    socket: Socket
    replies: int = 0  # valid requests the model answered

    async def check(self, frame: Frame) -> None:
        await self.socket.send(frame)
        expected = self._expected(frame)
        if expected == "ignored":  # the next frame answers the next request, nothing else
            await self.socket.send('{"type": 5}')
            expected = invalid_field("type")
        if expected != "reply":
            assert await self.socket.next() == counseling_error(expected), frame
            return
        first = await self.socket.next()
        if first == counseling_error(COUNSELING_RATE_LIMITED):
            return
        assert first == {"type": "ai_stream_begin", "data": {}}, (frame, first)
        while (out := await self.socket.next()) != {"type": "ai_stream_complete", "data": {}}:
            assert out["type"] == "ai_stream_chunk" and isinstance(out["data"]["chunk"], str), out
        self.replies += 1

    def _expected(self, frame: Frame) -> str:
        is_json, value = decoded(frame)
        if not is_json or not isinstance(value, dict):
            return invalid_field("payload")
        kind = value.get("type")
        if not isinstance(kind, str):
            return invalid_field("type")
        if kind != _COUNSELING_REQUEST:
            return "ignored"
        data = value.get("data")
        if not isinstance(data, dict):
            return invalid_field("data")
        message = data.get("message")
        if message is not None and not isinstance(message, str):
            return invalid_field("message")
        if not (message or "").strip():
            return COUNSELING_MESSAGE_EMPTY
        if len(message) > MAX_MESSAGE:  # type: ignore[arg-type]
            return message_too_long(MAX_MESSAGE)
        return "reply"


def counseling_error(message: str) -> dict[str, Any]:
    return {"type": "ai_stream_error", "data": {"error": message}}


# ---- path ids and query parameters: one connection each -------------------------------------

ids = st.one_of(
    junk.text.filter(junk.sendable),
    strings(1, 40),
    st.sampled_from(["test_session_123", "a-b_C", "x" * 128, "x" * 129, "x" * 255, "x" * 256]),
    st.integers(200, 3000).map(lambda n: "i" * n),
)


def path_url(base: str, prefix: str, value: str, query: dict[str, str] | None = None) -> URL:
    url = URL(f"{base}{prefix}{quote(value, safe='')}", encoded=True)
    return url.update_query(query) if query else url


async def connect_and_probe(
    http: aiohttp.ClientSession,
    url: URL,
    refusal: dict[str, Any] | None,
    probe: Callable[[Socket], Awaitable[None]],
) -> None:
    """`refusal`: the frame the server sends before it closes the socket; None: the
    socket is served (`probe` proves it)."""
    async with http.ws_connect(url) as ws:
        socket = Socket(ws)
        if refusal is not None:
            assert await socket.next() == refusal, url
            closing = await ws.receive(timeout=FRAME_TIMEOUT_SECONDS)
            assert closing.type in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSED), closing
            return
        await probe(socket)


def room_queries() -> st.SearchStrategy[list[tuple[str, str]]]:
    value = st.one_of(ids, st.sampled_from(["", " ", "a b", "ok_1", "%", "&", "="]))
    return st.lists(st.tuples(st.sampled_from(["sid", "sid", "SID", "x"]), value), max_size=3)


def agent_queries() -> st.SearchStrategy[list[tuple[str, str]]]:
    value = st.one_of(junk.text.filter(junk.sendable), st.just("project_001"))
    return st.lists(st.tuples(st.sampled_from(["project_id", "token", "x"]), value), max_size=3)
