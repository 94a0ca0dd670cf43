"""Texts callers see for calls, and the failures that carry them.

They subclass `ChatError`, so a Socket.IO adapter turns them into `error { message }` as it
does every other failure; the REST routes map them to 400/404/409.
"""

from __future__ import annotations

from server.calls.status import CallStatus
from server.errors import ChatError

CALL_NOT_FOUND = "통화를 찾을 수 없습니다"
CALL_FINISHED = "이미 종료된 통화입니다"
SPEECH_FAILED = "음성 처리에 실패했습니다"
NOTHING_HEARD = "음성에서 말을 인식하지 못했습니다"


def illegal_transition(current: CallStatus, target: CallStatus) -> str:
    return f"통화 상태를 {current.value}에서 {target.value}(으)로 바꿀 수 없습니다"


class CallNotFound(ChatError):
    def __init__(self) -> None:
        super().__init__(CALL_NOT_FOUND)


class IllegalTransition(ChatError):
    def __init__(self, current: CallStatus, target: CallStatus) -> None:
        super().__init__(illegal_transition(current, target))
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
