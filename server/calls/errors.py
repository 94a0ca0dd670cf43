"""The failures of calls (their texts are in `server.texts`).

They subclass `ChatError`, so a Socket.IO adapter turns them into `error { message }` as it
does every other failure; the REST routes map them to 400/404/409.
"""

from __future__ import annotations

from server.calls.status import CallStatus
from server.errors import ChatError
from server.texts import (
    CALL_FINISHED,
    CALL_NOT_FOUND,
    NOTHING_HEARD,
    SPEECH_FAILED,
    illegal_transition,
)


class CallNotFound(ChatError):
    def __init__(self) -> None:
        super().__init__(CALL_NOT_FOUND)


class IllegalTransition(ChatError):
    def __init__(self, current: CallStatus, target: CallStatus) -> None:
        super().__init__(illegal_transition(current.value, target.value))
        self.current = current
        self.target = target


class CallFinished(ChatError):
    """The call is ENDED or FAILED: nothing more may be said in it."""

    def __init__(self) -> None:
        super().__init__(CALL_FINISHED)


class SpeechFailed(ChatError):
    def __init__(self, message: str = SPEECH_FAILED) -> None:
        super().__init__(message)


class NothingHeard(ChatError):
    """The transcript is empty: there is nothing to answer."""

    def __init__(self) -> None:
        super().__init__(NOTHING_HEARD)
