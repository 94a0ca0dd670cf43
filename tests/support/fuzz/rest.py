"""REST (CONTRACT §1.5, §2.1, §4): random path segments, query strings and bodies on every
route, with the status and envelope each must answer.

Every answer is checked for what all routes share: never a 5xx (except the contract's 502
for speech that failed), JSON from the routes' own handlers, CORS headers on them; then
for what each route says about its own input.
"""

from __future__ import annotations

import io
import json
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote

import aiohttp
from hypothesis import strategies as st
from yarl import URL

from server.texts import CALL_NOT_FOUND, SESSION_NOT_FOUND, invalid_field
from tests.support.fuzz import junk
from tests.support.fuzz.shapes import strings

ORIGIN = "http://fuzz.example"
# aiohttp refuses a request line past 8190 bytes itself (400, and an ERROR line in its log on
# a kept-alive connection): that is its HTTP parser, not a route, so paths stay under it
MAX_PATH = 7000
CALL_STATUSES = {"INITIATING", "RINGING", "CONNECTING", "IN_PROGRESS", "ENDED", "FAILED"}


@dataclass
class Known:
    """Things that exist on the server, so fuzzed ids sometimes name them."""

    session_id: str
    call_id: str
    room: str


@dataclass(frozen=True)
class Response:
    status: int
    headers: Any
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


Check = Callable[[Response], None]


@dataclass(frozen=True)
class Request:
    method: str
    path: str  # already percent-encoded
    check: Check = field(compare=False)
    query: tuple[tuple[str, str], ...] = ()
    body: bytes | aiohttp.FormData | None = None
    content_type: str | None = None


def segment(value: str) -> str:
    return quote(value, safe="")


def routable(value: str) -> bool:
    """aiohttp's `{name}` is `[^{}/]+` over the path with only %2F and %25 kept encoded."""
    return value != "" and "{" not in value and "}" not in value


_segments = st.one_of(
    junk.text.filter(junk.sendable),
    strings(1, 40),
    st.sampled_from(["..", ".", "%", "a%2Fb", "null", "-1", "0", "x" * 300]),
    st.integers(300, 3000).map(lambda n: "s" * n),
)
_queries = st.lists(
    st.tuples(st.sampled_from(["limit", "x", "sid", "format"]), junk.text.filter(junk.sendable)),
    max_size=3,
).map(tuple)


def _ours(response: Response) -> Any:
    """A response of one of the routes' own handlers: JSON, with CORS headers."""
    assert response.headers.get("Access-Control-Allow-Origin") in ("*", ORIGIN), response
    assert response.headers.get("Content-Type", "").startswith("application/json"), response
    return response.json()


def _not_found(response: Response) -> None:
    assert response.status == 404, response


def _call_error(status: int, message: str | None = None) -> Check:
    def check(response: Response) -> None:
        assert response.status == status, response
        body = _ours(response)
        assert body["success"] is False and isinstance(body["error"]["message"], str), body
        if message is not None:
            assert body["error"]["message"] == message, body

    return check


def _a_call(response: Response) -> dict[str, Any]:
    body = _ours(response)
    assert body["success"] is True, body
    call = body["data"]["call"]
    assert call["status"] in CALL_STATUSES and isinstance(call["id"], str), body
    return dict(call)


def session_messages(known: Known) -> st.SearchStrategy[Request]:
    def build(session_id: str, query: tuple[tuple[str, str], ...]) -> Request:
        def check(response: Response) -> None:
            if not routable(session_id):
                return _not_found(response)
            body = _ours(response)
            limits = [value for name, value in query if name == "limit"]
            if limits and not _a_limit(limits[0]):  # aiohttp reads the first of a repeated name
                assert (response.status, body) == (400, {"message": "잘못된 요청입니다: limit"})
            elif session_id == known.session_id:
                assert response.status == 200 and body["messages"], body
                for m in body["messages"]:
                    assert m["sessionId"] == session_id and m["messageType"] in {
                        "TEXT", "AUDIO", "SYSTEM"}, m  # fmt: skip
            else:
                assert (response.status, body) == (404, {"message": SESSION_NOT_FOUND}), body

        path = f"/api/v1/chat/sessions/{segment(session_id)}/messages"
        return Request("GET", path, check, query)

    return st.builds(build, st.one_of(st.just(known.session_id), _segments), _queries)


def _a_limit(value: str) -> bool:
    return value.isascii() and value.isdigit() and 1 <= int(value) <= 200


def _healthy(response: Response) -> None:
    body = _ours(response)
    assert response.status == 200 and body["status"] == "ok" and body["db"] == "ok", body


HEALTH = Request("GET", "/api/v1/health", _healthy)


def health() -> st.SearchStrategy[Request]:
    return st.builds(lambda q: Request("GET", "/api/v1/health", _healthy, q), _queries)


def call_config() -> st.SearchStrategy[Request]:
    def check(response: Response) -> None:
        body = _ours(response)
        assert response.status == 200 and body["data"]["config"]["iceServers"] is not None

    return st.builds(lambda q: Request("GET", "/api/v1/calls/config", check, q), _queries)


def call_routes(known: Known) -> st.SearchStrategy[Request]:
    """GET a call, POST connect / end to it: junk ids are 404, the known call moves along
    its status machine (200) or is refused (409)."""

    def build(call_id: str, action: str) -> Request:
        def check(response: Response) -> None:
            if not routable(call_id) or (call_id == "config" and action == ""):
                return None  # no call route (`/calls/config` is the configuration)
            if call_id != known.call_id:
                return _call_error(404, CALL_NOT_FOUND)(response)
            if response.status == 409:
                return _call_error(409)(response)
            assert response.status == 200, response
            _a_call(response)
            return None

        method = "GET" if action == "" else "POST"
        return Request(method, f"/api/v1/calls/{segment(call_id)}{action}", check)

    return st.builds(
        build,
        st.one_of(st.just(known.call_id), _segments),
        st.sampled_from(["", "/connect", "/end"]),
    )


_numbers = st.one_of(
    st.sampled_from(["01012345678", "010-1234-5678", "02 123 4567", "0212345", "+821012345678"]),
    st.from_regex(r"[0-9 -]{0,14}", fullmatch=True),
    junk.text,
)


def create_call() -> st.SearchStrategy[Request]:
    """POST /api/v1/calls with any body: 201 with the call, or 400 naming what is wrong."""
    fields = {"callerNumber", "receiverNumber"}

    def json_body(value: Any) -> Request:
        is_object = isinstance(value, dict)
        named: Any = value.get("callerNumber") if is_object else None

        def check(response: Response) -> None:
            body = _ours(response)
            if response.status == 201:
                assert is_object and isinstance(named, str), (value, body)
                assert body["data"]["call"]["status"] == "RINGING", body
                return
            assert response.status == 400 and body["success"] is False, (value, body)
            message = body["error"]["message"]
            if not is_object:
                assert message == invalid_field("body"), (value, body)
            elif not isinstance(named, str):
                assert message == invalid_field("callerNumber"), (value, body)
            else:
                assert message in {invalid_field(f) for f in fields}, (value, body)

        return Request("POST", "/api/v1/calls", check, body=json.dumps(value).encode(),
                       content_type="application/json")  # fmt: skip

    def raw_body(raw: bytes, content_type: str | None) -> Request:
        def check(response: Response) -> None:
            if response.status == 413:  # over the server's 1 MB body limit
                return
            assert response.status in (201, 400), response
            _ours(response)

        return Request("POST", "/api/v1/calls", check, body=raw, content_type=content_type)

    objects = st.builds(
        lambda more, caller, receiver: {**more, "callerNumber": caller, "receiverNumber": receiver},
        junk.junk_extra(frozenset(fields)),
        st.one_of(_numbers, junk.json_values()),
        st.one_of(st.none(), _numbers, junk.json_values()),
    )
    raw = st.one_of(
        junk.raw_text_frames.map(str.encode),
        st.binary(max_size=256),
        st.integers(1, 200_000).map(lambda n: b"[" * n + b"]" * n),
        st.integers(1_000_001, 1_100_000).map(lambda n: b"x" * n),  # past the body limit
    )
    content_types = st.sampled_from(
        [
            None,
            "application/json",
            "text/plain",
            "multipart/form-data",
            "application/x-www-form-urlencoded",
        ]
    )
    return st.one_of(
        objects.map(json_body),
        junk.json_values().map(json_body),
        st.builds(raw_body, raw, content_types),
    )


def process_conversation(known: Known) -> st.SearchStrategy[Request]:
    """POST /api/v1/calls/conversation/process: multipart with junk in every part, or no
    multipart at all."""

    def form(audio: bytes | None, filename: str, mime: str, call_id: Any, prompt: Any) -> Request:
        data = aiohttp.FormData()
        if audio is not None:
            data.add_field("audio", audio, filename=filename, content_type=mime)
        if call_id is not None:
            data.add_field("callId", str(call_id))
        if prompt is not None:
            data.add_field("systemPrompt", str(prompt))
        has_call = isinstance(call_id, str) and call_id.strip() != ""

        def check(response: Response) -> None:
            body = _ours(response)
            assert body["success"] is False or response.status == 200, body
            if not audio:
                assert (response.status, body["error"]["message"]) == (400, invalid_field("audio"))
            elif not has_call:
                assert (response.status, body["error"]["message"]) == (
                    400, invalid_field("callId")), body  # fmt: skip
            elif call_id.strip() != known.call_id:
                assert (response.status, body["error"]["message"]) == (404, CALL_NOT_FOUND), body
            else:  # junk audio for a real call: not audio at all, nothing heard, no speech
                if response.status == 400:
                    assert body["error"]["message"] == invalid_field("audio"), body
                assert response.status in (200, 400, 409, 422, 502), body

        return Request("POST", "/api/v1/calls/conversation/process", check, body=data)

    def raw(payload: bytes, content_type: str | None) -> Request:
        def check(response: Response) -> None:
            if response.status == 413:
                return
            body = _ours(response)
            assert response.status == 400 and body["success"] is False, body

        return Request("POST", "/api/v1/calls/conversation/process", check, body=payload,
                       content_type=content_type)  # fmt: skip

    audio = st.one_of(
        st.none(),
        st.just(b""),
        st.binary(min_size=1, max_size=512),
        st.sampled_from(
            [b"RIFF\x00\x00\x00\x00WAVEfmt ", b"\x1aE\xdf\xa3", b"ID3\x03\x00", b"OggS"]
        ),
    )
    call_ids = st.one_of(
        st.none(), st.just(known.call_id), st.just(f" {known.call_id}\n"), strings(0, 40)
    )
    multipart_junk = st.builds(
        lambda boundary, body: (body, f"multipart/form-data; boundary={boundary}"),
        st.sampled_from(["b", "x" * 80, '"q"', ""]),
        st.one_of(st.binary(max_size=200), junk.raw_text_frames.map(str.encode),
                  st.just(b"--b\r\nContent-Disposition: form-data\r\n\r\nx\r\n--b--\r\n"),
                  st.just(b'--b\r\nContent-Disposition: form-data; name="audio"\r\n\r\n')),
    )  # fmt: skip
    return st.one_of(
        st.builds(
            form,
            audio,
            st.one_of(  # what aiohttp's client will write as a filename (the raw bodies below
                # carry the rest)
                st.sampled_from(["a.wav", "a.webm", "", "../../x", "a.exe", 'a".wav']),
                junk.text.filter(lambda f: f.isprintable() and junk.sendable(f)),
            ),
            st.sampled_from(["audio/wav", "audio/webm", "application/octet-stream", "x/y"]),
            call_ids,
            st.one_of(st.none(), strings(0, 200)),
        ),
        multipart_junk.map(lambda pair: raw(pair[0], pair[1])),
        st.builds(raw, st.binary(max_size=100), st.sampled_from([None, "application/json"])),
    )


def room_history(known: Known) -> st.SearchStrategy[Request]:
    from server.rest.rooms import SID

    def build(sid: str, limit: str | None) -> Request:
        def check(response: Response) -> None:
            if not routable(sid):
                return _not_found(response)
            body = _ours(response)
            if not SID.fullmatch(sid):
                assert (response.status, body) == (400, {"message": invalid_field("sid")}), body
            elif limit is not None and not (limit.isdecimal() and int(limit) >= 1):
                assert (response.status, body) == (400, {"message": invalid_field("limit")}), body
            else:
                assert response.status == 200 and body["sessionId"] == sid, body
                if sid == known.room:
                    assert body["messages"], body
            return None

        query = () if limit is None else (("limit", limit),)
        return Request("GET", f"/api/chat/history/{segment(sid)}", check, query)

    limits = st.one_of(
        st.none(),
        st.integers(-5, 5000).map(str),
        st.sampled_from(["", "1.5", "1e3", "٣", "99999999999999999999999", " 5"]),
        junk.text.filter(junk.sendable),
    )
    return st.builds(build, st.one_of(st.just(known.room), _segments), limits)


def anything_else() -> st.SearchStrategy[Request]:
    """Any method on any path: never a server error."""

    def check(response: Response) -> None:
        assert response.status < 500, response

    methods = st.sampled_from(["GET", "POST", "PUT", "DELETE", "PATCH", "OPTIONS", "HEAD"])
    paths = st.one_of(
        st.sampled_from(
            ["/api/v1/calls", "/api/v1/health", "/api/docs", "/api/docs/openapi.json", "/metrics",
             "/api/v1/agents/broadcast", "/api/v1/chat/sessions", "/api/", "/", "/index.html"]
        ),
        st.lists(_segments.map(segment), min_size=1, max_size=4)
        .map(lambda parts: "/api/" + "/".join(parts))
        .filter(lambda path: len(path) <= MAX_PATH),
    )  # fmt: skip
    return st.builds(
        lambda method, path, body: Request(method, path, check, body=body),
        methods,
        paths,
        st.one_of(st.none(), st.binary(max_size=64)),
    )


def requests(known: Known) -> st.SearchStrategy[Request]:
    return st.one_of(
        session_messages(known),
        health(),
        call_config(),
        call_routes(known),
        call_routes(known),
        create_call(),
        create_call(),
        process_conversation(known),
        room_history(known),
        anything_else(),
    )


async def send(http: aiohttp.ClientSession, base: str, request: Request) -> None:
    url = URL(base + request.path, encoded=True)
    if request.query:
        url = url.with_query(list(request.query))
    headers = {"Origin": ORIGIN}
    if request.content_type is not None:
        headers["Content-Type"] = request.content_type
    body: bytes | io.BytesIO | aiohttp.FormData | None = request.body
    if isinstance(body, bytes) and len(body) > 64 * 1024:
        body = io.BytesIO(body)  # aiohttp warns about large raw bytes (an error here)
    async with http.request(request.method, url, data=body, headers=headers) as r:
        response = Response(r.status, r.headers, await r.read())
    ok_5xx = request.path.endswith("/conversation/process") and response.status == 502
    assert response.status < 500 or ok_5xx, (request, response)
    request.check(response)


Sender = Callable[[Request], Awaitable[None]]
