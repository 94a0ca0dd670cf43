"""What every Socket.IO namespace shares: event routing, order, validation, error handling."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any, TypeVar

import socketio
from pydantic import BaseModel, ConfigDict, ValidationError, field_validator

from server.conversation.lanes import Lanes
from server.errors import InvalidField, describe_failure
from server.metrics import CONNECTIONS
from server.tasks import BackgroundTasks

log = logging.getLogger(__name__)

PayloadT = TypeVar("PayloadT", bound="Payload")
_LIFECYCLE = {"connect", "disconnect"}


class Payload(BaseModel):
    """A client payload: strict types (no '1' for 1), unknown fields ignored, text that is
    Unicode (JSON lets a lone surrogate through, and no database can store one)."""

    model_config = ConfigDict(strict=True, extra="ignore", frozen=True)

    @field_validator("*")
    @classmethod
    def _unicode_text(cls, value: Any) -> Any:
        texts = value if isinstance(value, list) else [value]
        if any(isinstance(t, str) and not _is_unicode(t) for t in texts):
            raise ValueError("lone surrogate")
        return value


def _is_unicode(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def parse(model: type[PayloadT], data: Any) -> PayloadT:
    if not isinstance(data, dict):
        raise InvalidField("payload")
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        field = ".".join(str(p) for p in first["loc"]) or "payload"
        raise InvalidField(field) from None


class ContractNamespace(socketio.AsyncNamespace):
    """Routes `join-chat` to `on_join_chat`, one connection's events in arrival order.

    python-socketio looks up `on_<event>` verbatim and silently ignores hyphenated names,
    and runs each event as its own task; both are fixed here, once. Any failure becomes the
    contract's `error { message }` event (and the ack), and the server keeps serving.
    """

    def __init__(self, namespace: str) -> None:
        super().__init__(namespace)
        self._order = Lanes()
        self._background = BackgroundTasks()

    async def trigger_event(self, event: str, *args: Any) -> Any:
        sid = args[0]
        name = event if isinstance(event, str) else ""  # a raw packet may name it 5 or []
        handler: Callable[..., Awaitable[Any]] | None = getattr(
            self, "on_" + name.replace("-", "_"), None
        )
        # python-socketio runs `connect`/`disconnect` while the socket is half connected or
        # half gone; a connected client emitting an event of that name is not either
        if name in _LIFECYCLE and not self.server.manager.is_connected(sid, self.namespace):
            result = await handler(*args) if handler else None
            if event == "disconnect":
                CONNECTIONS.labels(self.namespace).dec()
            elif result is not False:  # a refused connect raises or returns False
                CONNECTIONS.labels(self.namespace).inc()
            return result
        if handler is None or name in _LIFECYCLE:
            log.info(
                "unknown event ignored", extra={"event": str(event)[:50], "ns": self.namespace}
            )
            return None
        payload = args[1] if len(args) > 1 else None
        async with self._order.lane(sid):
            try:
                return await handler(sid, payload)
            except Exception as exc:
                return await self.fail(sid, exc)

    async def fail(self, sid: str, exc: BaseException) -> dict[str, Any] | None:
        if not self.server.manager.is_connected(sid, self.namespace):
            log.info("client left before its event was handled", extra={"sid": sid})
            return None
        message = describe_failure(exc)
        await self.emit("error", {"message": message}, to=sid)
        return {"error": {"message": message}}

    def spawn(self, coro: Coroutine[Any, Any, None]) -> None:
        """Run work that outlives the event (an AI turn), held so shutdown can wait for it."""
        self._background.spawn(coro)

    async def drain(self, timeout: float) -> None:
        """Let in-flight work finish (graceful shutdown), then cancel what is left."""
        await self._background.drain(timeout)
