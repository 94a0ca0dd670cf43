"""`/chat` (CONTRACT §1): every event's payloads, and what the contract answers to each.

The oracle keeps a model of what the fuzzing socket has joined and who owns which session,
so a valid-shaped payload has an exact expected answer too (joined or not, owner or not),
except where time decides (the AI rate limit: accepted or `요청이 너무 많습니다`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from hypothesis import strategies as st

from namespaces.chat import ChatNamespace
from server.texts import (
    JOINED,
    MESSAGE_EMPTY,
    RATE_LIMITED,
    SESSION_FORBIDDEN,
    SESSION_NOT_FOUND,
    invalid_field,
    message_too_long,
)
from tests.support.fuzz import junk
from tests.support.fuzz.shapes import (
    Case,
    Spec,
    not_booleans,
    not_ints,
    not_strings,
    objects,
    strings,
)
from tests.support.fuzz.sio import FuzzClient

USER = "fuzz-user"
MAX_MESSAGE = 2000
HISTORY_MAX = 50

EVENTS = ("join-chat", "send-message", "leave-chat", "get-history", "typing")


@dataclass(frozen=True)
class Event:
    name: str
    case: Case
    extra_args: tuple[Any, ...] = ()  # more arguments after the payload: ignored

    @property
    def data(self) -> Any:
        if self.extra_args:
            return (self.case.payload, *self.extra_args)
        return self.case.payload


def _session_ids(home: str) -> st.SearchStrategy[str]:
    return st.one_of(st.just(home), strings(1, 255))


def event_specs(home: str) -> dict[str, tuple[Spec, ...]]:
    sid = Spec("sessionId", _session_ids(home), not_strings(1, 255))
    return {
        "join-chat": (
            Spec("userId", st.one_of(st.just(USER), strings(1, 255)), not_strings(1, 255)),
            Spec(
                "sessionId",
                st.one_of(st.none(), _session_ids(home)),
                not_strings(1, 255, nullable=True),
                required=False,
            ),
            Spec("stream", st.booleans(), not_booleans(), required=False),
            Spec(
                "lastMessageId",
                st.one_of(st.none(), strings(1, 255)),
                not_strings(1, 255, nullable=True),
                required=False,
            ),
        ),
        "send-message": (
            sid,
            Spec(
                "message",
                st.one_of(strings(0, MAX_MESSAGE), junk.huge_text.filter(_no_surrogate)),
                not_strings(0, None),
            ),
        ),
        "leave-chat": (sid,),
        "get-history": (
            sid,
            Spec(
                "limit",
                # past 64 bits a number arrives as a float (orjson; a browser sends those
                # as floats anyway): not an int
                st.one_of(st.integers(1, 100), st.integers(1, 2**64 - 1)),
                not_ints(low=1),
                required=False,
            ),
        ),
        "typing": (sid, Spec("isTyping", st.booleans(), not_booleans())),
    }


def _no_surrogate(text: str) -> bool:
    return not any(0xD800 <= ord(c) <= 0xDFFF for c in text)


def events(home: str) -> st.SearchStrategy[Event]:
    """Any of the five events with any payload, sometimes with extra arguments."""
    specs = event_specs(home)
    per_event = [
        st.builds(
            Event,
            st.just(name),
            st.one_of(
                objects(specs[name]),
                st.builds(Case, st.binary(max_size=64), st.just("payload")),
                st.just(Case(None, "payload")),
            ),
            st.one_of(st.just(()), st.tuples(junk.json_values(binary=True))),
        )
        for name in EVENTS
    ]
    return st.one_of(*per_event)


def unknown_events(
    namespace: type[Any] = ChatNamespace, known: tuple[str, ...] = EVENTS
) -> st.SearchStrategy[tuple[str, Any]]:
    """Events no handler of `namespace` serves (the lifecycle names included: a client may
    send those as ordinary events) with any payload."""
    handled = {name[3:] for name in dir(namespace) if name.startswith("on_")}
    names = st.one_of(
        junk.text.filter(lambda n: n.replace("-", "_") not in handled),
        st.sampled_from(["connect", "disconnect", "connect_error", "error", "message", "*"]),
        st.sampled_from([f"{e}-x" for e in known] + [e.upper() for e in known]),
    )
    return st.tuples(names, junk.json_values(binary=True))


async def ignored(client: FuzzClient, named: tuple[str, Any]) -> None:
    """An unknown event gets an empty ack and nothing else."""
    name, data = named
    assert await client.call(name, data) is None, named
    assert not client.errors, (named, client.errors)


@dataclass
class ChatOracle:
    """What the fuzzing socket has joined and who owns each session it created."""

    client: FuzzClient
    home: str
    joined: set[str] = field(default_factory=set)
    owners: dict[str, str] = field(default_factory=dict)

    async def check(self, event: Event) -> None:
        case = event.case
        if not case.valid:
            await self.client.answered(event.name, event.data, invalid_field(str(case.broken)))
            return
        payload: dict[str, Any] = case.payload
        check = getattr(self, "_" + event.name.replace("-", "_"))
        await check(event, payload)

    async def check_unknown(self, named: tuple[str, Any]) -> None:
        await ignored(self.client, named)

    async def _join_chat(self, event: Event, p: dict[str, Any]) -> None:
        user, session_id = p["userId"], p.get("sessionId")
        owner = self.owners.get(session_id) if session_id is not None else None
        if owner is not None and owner != user:
            await self.client.answered(event.name, event.data, SESSION_FORBIDDEN)
            return
        reply = await self.client.answered(event.name, event.data, None)
        assert reply["userId"] == user and reply["message"] == JOINED, reply
        if session_id is not None:
            assert reply["sessionId"] == session_id, reply
        self.owners[reply["sessionId"]] = user
        self.joined.add(reply["sessionId"])

    async def _send_message(self, event: Event, p: dict[str, Any]) -> None:
        text = p["message"]
        if p["sessionId"] not in self.joined:
            await self.client.answered(event.name, event.data, SESSION_NOT_FOUND)
        elif not text.strip():
            await self.client.answered(event.name, event.data, MESSAGE_EMPTY)
        elif len(text) > MAX_MESSAGE:
            await self.client.answered(event.name, event.data, message_too_long(MAX_MESSAGE))
        else:  # stored and answered, unless the session is over its rate limit
            reply = await self.client.call(event.name, event.data)
            if reply == {"error": {"message": RATE_LIMITED}}:
                await self.client.expect_error(RATE_LIMITED)
            else:
                assert reply["content"] == text and isinstance(reply["timestamp"], int), reply

    async def _leave_chat(self, event: Event, p: dict[str, Any]) -> None:
        reply = await self.client.answered(event.name, event.data, None)
        assert reply == {"sessionId": p["sessionId"]}, reply
        self.joined.discard(p["sessionId"])

    async def _get_history(self, event: Event, p: dict[str, Any]) -> None:
        if p["sessionId"] not in self.joined:
            await self.client.answered(event.name, event.data, SESSION_NOT_FOUND)
            return
        reply = await self.client.answered(event.name, event.data, None)
        limit = min(p.get("limit", HISTORY_MAX), HISTORY_MAX)
        assert isinstance(reply["messages"], list) and len(reply["messages"]) <= limit, reply
        for item in reply["messages"]:
            assert set(item) >= {"id", "sender", "content", "createdAt"}, item

    async def _typing(self, event: Event, p: dict[str, Any]) -> None:
        if p["sessionId"] not in self.joined:
            await self.client.answered(event.name, event.data, SESSION_NOT_FOUND)
            return
        reply = await self.client.answered(event.name, event.data, None)
        assert reply == {"isTyping": p["isTyping"]}, reply

    async def rejoin_home(self) -> None:
        """A valid request is still answered: the socket rejoins its session and reads it."""
        reply = await self.client.answered(
            "join-chat", {"userId": USER, "sessionId": self.home}, None
        )
        assert reply["sessionId"] == self.home
        self.joined.add(self.home)
        history = await self.client.answered("get-history", {"sessionId": self.home}, None)
        assert history["messages"], history  # the greeting at least
        assert not self.client.errors, self.client.errors
