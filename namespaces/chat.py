"""Socket.IO `/chat`: text chat with the welfare-search assistant (CONTRACT §1)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from pydantic import Field

from namespaces.base import ContractNamespace, Payload, parse
from server.auth import socket_grant, with_token_user
from server.chat import clock
from server.chat.history import StoredMessage
from server.chat.service import HISTORY_LIMIT, ChatService, JoinResult
from server.errors import ChatError, describe_failure
from server.metrics import TurnClock
from server.texts import JOINED, SESSION_NOT_FOUND

SessionId = Field(min_length=1, max_length=255)


class JoinChat(Payload):
    userId: str = Field(min_length=1, max_length=255)
    sessionId: str | None = Field(default=None, min_length=1, max_length=255)
    stream: bool = False
    # resume: the id of the last `message-sent` / `ai-message` this client saw
    lastMessageId: str | None = Field(default=None, min_length=1, max_length=255)


class SendMessage(Payload):
    sessionId: str = SessionId
    message: str
    # an addition: a retry with the same id stores nothing twice and gets the first ack
    clientMessageId: str | None = Field(default=None, min_length=1, max_length=64)


class LeaveChat(Payload):
    sessionId: str = SessionId


class GetHistory(Payload):
    sessionId: str = SessionId
    limit: int = Field(default=HISTORY_LIMIT, ge=1)


class Typing(Payload):
    sessionId: str = SessionId
    isTyping: bool


def room(session_id: str) -> str:
    return f"chat:{session_id}"


def stream_room(session_id: str) -> str:
    """Sockets that asked for `ai-message-chunk` deltas (`join-chat {stream: true}`)."""
    return f"chat-stream:{session_id}"


def history_item(m: StoredMessage) -> dict[str, Any]:
    return {
        "id": m.id,
        "sender": m.sender,
        "content": m.content,
        "createdAt": clock.to_iso(m.created_at),
    }


def live_message(m: StoredMessage) -> dict[str, Any]:
    """The `message-sent` / `ai-message` payload; `id` (an addition) is the resume cursor."""
    return {"content": m.content, "timestamp": m.timestamp_ms, "id": m.id}


_LIVE_EVENT_OF_SENDER = {"user": "message-sent", "assistant": "ai-message"}


class ChatNamespace(ContractNamespace):
    def __init__(self, chat: Callable[[], ChatService], namespace: str = "/chat") -> None:
        super().__init__(namespace)
        self._chat = chat
        # sessions with sockets on this instance: the reaper tells them when a session ends
        self._members: dict[str, set[str]] = {}

    @property
    def chat(self) -> ChatService:
        return self._chat()

    async def on_connect(self, sid: str, environ: dict[str, Any], auth: Any = None) -> None:
        grant = socket_grant(environ, auth)  # refuses the connection without a valid token
        await self.save_session(sid, {"sessions": set(), "user": grant.user})

    async def on_disconnect(self, sid: str, reason: Any = None) -> None:
        self.server.manager.forget_held_events(self.namespace, sid)
        state = await self.get_session(sid)
        for session_id in state.get("sessions", ()):
            self._forget(session_id, sid)

    async def on_join_chat(self, sid: str, data: Any) -> dict[str, Any]:
        req = parse(JoinChat, with_token_user(data, (await self.get_session(sid)).get("user")))
        joined = await self.chat.join(req.userId, req.sessionId)
        if req.lastMessageId is None:
            return await self._enter(sid, req, joined)
        # Resume: the socket enters the room before what it missed is read, so nothing stored
        # meanwhile can fall in between; the room's live events wait meanwhile, and those the
        # replay already sent are dropped.
        session_id = joined.session.session_id
        async with self.server.manager.events_held(self.namespace, sid) as replayed:
            reply = await self._enter(sid, req, joined)
            for m in await self.chat.missed(session_id, req.lastMessageId):
                await self.emit(_LIVE_EVENT_OF_SENDER[m.sender], live_message(m), to=sid)
                replayed.add(m.id)
            # questions a dead instance was answering: answered here, now
            for question in await self.chat.orphaned_in(session_id):
                self.spawn(self._answer(None, question))
            return reply

    async def _enter(self, sid: str, req: JoinChat, joined: JoinResult) -> dict[str, Any]:
        session_id = joined.session.session_id
        await self.enter_room(sid, room(session_id))
        if req.stream:
            await self.enter_room(sid, stream_room(session_id))
        else:
            await self.leave_room(sid, stream_room(session_id))
        state = await self.get_session(sid)
        state["sessions"].add(session_id)
        self._members.setdefault(session_id, set()).add(sid)
        reply = {"sessionId": session_id, "userId": req.userId, "message": JOINED}
        await self.emit("chat-joined", reply, to=sid)
        await self.emit(
            "chat-history", {"messages": [history_item(m) for m in joined.history]}, to=sid
        )
        if joined.greeting is not None:
            await self.emit("ai-message", live_message(joined.greeting), room=room(session_id))
        return reply

    async def on_send_message(self, sid: str, data: Any) -> dict[str, Any]:
        req = parse(SendMessage, data)
        await self._require_member(sid, req.sessionId)
        user = (await self.get_session(sid)).get("user")
        caller = f"user:{user}" if user else f"socket:{sid}"
        accepted = await self.chat.accept(req.sessionId, req.message, req.clientMessageId, caller)
        sent = live_message(accepted.message)
        if accepted.repeated:  # stored and answered (or being answered) once already
            return sent
        await self.emit("message-sent", sent, room=room(req.sessionId))
        self.spawn(self._answer(sid, accepted.message))
        return sent

    async def take_over(self, claimed: list[tuple[str, str]]) -> None:
        """Answer the questions of turns orphaned by a dead instance (`keep_leases`)."""
        for question in await self.chat.orphaned(claimed):
            self.spawn(self._answer(None, question))

    async def _answer(self, sid: str | None, stored: StoredMessage) -> None:
        """Answer `stored`, sent by the socket `sid` (None: a question taken over from a
        dead instance, whose failure the session's room is told)."""
        session_id = stored.session_id
        turn = TurnClock(self.namespace)

        async def on_delta(text: str) -> None:
            if not self._may_have_members(stream_room(session_id)):
                return  # nobody asked for chunks: not even encoded (`make bench`)
            chunk = {"content": text, "timestamp": clock.to_ms(clock.now())}
            await self.emit("ai-message-chunk", chunk, room=stream_room(session_id))

        try:
            reply = await self.chat.reply(stored, on_delta)
        except Exception as exc:
            turn.failed()
            if sid is not None:
                await self.fail(sid, exc)
            else:
                failure = {"message": describe_failure(exc)}
                await self.emit("error", failure, room=room(session_id))
            return
        await self.emit("ai-message", live_message(reply), room=room(session_id))
        turn.done()

    def _may_have_members(self, room_name: str) -> bool:
        return bool(self.server.manager.may_have_members(self.namespace, room_name))

    async def on_leave_chat(self, sid: str, data: Any) -> dict[str, Any]:
        req = parse(LeaveChat, data)
        await self._leave(sid, req.sessionId)
        reply = {"sessionId": req.sessionId}
        await self.emit("chat-left", reply, to=sid)
        return reply

    async def on_get_history(self, sid: str, data: Any) -> dict[str, Any]:
        req = parse(GetHistory, data)
        await self._require_member(sid, req.sessionId)
        messages = await self.chat.history(req.sessionId, req.limit)
        reply = {"messages": [history_item(m) for m in messages]}
        await self.emit("chat-history", reply, to=sid)
        return reply

    async def on_typing(self, sid: str, data: Any) -> dict[str, Any]:
        req = parse(Typing, data)
        await self._require_member(sid, req.sessionId)
        await self.chat.touch(req.sessionId)
        reply = {"isTyping": req.isTyping}
        await self.emit("user-typing", reply, room=room(req.sessionId), skip_sid=sid)
        return reply

    async def evict_inactive(self) -> None:
        """Sockets still in a session the reaper ended (or an admin deleted) get `chat-left`
        and leave its room."""
        ended = await self.chat.sessions.inactive_among(list(self._members))
        for session_id in ended:
            await self._evict_members(session_id)

    async def evict(self, session_id: str) -> None:
        """A deleted session: its sockets, on every instance, get `chat-left` and leave its
        room at once (other instances forget it at their next reaper pass)."""
        self.chat.store.cache.drop(session_id)
        await self._evict_members(session_id)
        if self._may_have_members(room(session_id)):  # sockets of other instances
            await self.emit("chat-left", {"sessionId": session_id}, room=room(session_id))
            await self.close_room(room(session_id))
            await self.close_room(stream_room(session_id))

    async def _evict_members(self, session_id: str) -> None:
        rooms = self.server.manager.rooms.get(self.namespace, {})
        for sid in list(self._members.get(session_id, ())):
            async with self._order.lane(sid):
                told = sid not in rooms.get(room(session_id), {})  # by another instance
                await self._leave(sid, session_id)
                if not told:
                    await self.emit("chat-left", {"sessionId": session_id}, to=sid)

    async def _require_member(self, sid: str, session_id: str) -> None:
        # `_members` mirrors each socket's `sessions` and is a plain dict lookup
        if sid not in self._members.get(session_id, ()):
            raise ChatError(SESSION_NOT_FOUND)

    async def _leave(self, sid: str, session_id: str) -> None:
        await self.leave_room(sid, room(session_id))
        await self.leave_room(sid, stream_room(session_id))
        try:
            state = await self.get_session(sid)
        except KeyError:  # the socket is gone already
            state = {}
        state.get("sessions", set()).discard(session_id)
        self._forget(session_id, sid)

    def _forget(self, session_id: str, sid: str) -> None:
        members = self._members.get(session_id)
        if members is not None:
            members.discard(sid)
            if not members:
                del self._members[session_id]
