"""Client mistakes are the client's (issue #17, defect 8): each is answered with a clear
error and logged without a traceback; a traceback in the log means a bug of ours."""

from __future__ import annotations

import logging

import pytest

from server.errors import invalid_field
from tests.conftest import LiveServer
from tests.test_faults import FrameClient


def tracebacks(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.exc_info is not None]


async def test_a_deeply_nested_room_frame_is_refused_as_invalid(
    server: LiveServer, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    client = await FrameClient.connect(f"{server.url}/v1/session/chat?sid=nested")
    try:
        for depth in (253, 300, 1000):  # inside hd/bd: beyond what can be stored
            nested = '{"x":' * depth + "1" + "}" * depth
            raw = '{"hd": {"event": "chat.message"}, "bd": {"text": "t", "extra": ' + nested + "}}"
            await client.ws.send_str(raw)
            frames = await client.until(lambda f: len(f) >= 1)
            assert frames[-1] == {
                "hd": {"event": "error"},
                "bd": {"text": invalid_field("payload")},
            }
            client.frames.clear()
        # the socket still serves
        await client.send({"hd": {"event": "chat.message"}, "bd": {"text": "안녕"}})
        frames = await client.until(lambda f: len(f) >= 1)
        assert frames[-1]["bd"]["text"] == "안녕"
    finally:
        await client.close()
    assert tracebacks(caplog) == []
