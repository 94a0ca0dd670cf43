"""Texts users see, worded exactly as the contract (§1, §1.4), and the error types."""

from __future__ import annotations

SESSION_NOT_FOUND = "세션을 찾을 수 없습니다"
SESSION_FORBIDDEN = "세션에 접근할 권한이 없습니다"
MESSAGE_EMPTY = "메시지가 비어 있습니다"
RATE_LIMITED = "요청이 너무 많습니다. 잠시 후 다시 시도해 주세요"
AI_FAILED = "AI 응답 생성에 실패했습니다"
TEMPORARY_FAILURE = "일시적인 오류가 발생했습니다. 잠시 후 다시 시도해 주세요"

JOINED = "채팅에 참가했습니다"
GREETING = "안녕하세요! 복지 서비스 검색 AI입니다. 어떤 복지 서비스를 찾고 계신가요?"


def invalid_field(field: str) -> str:
    return f"잘못된 요청입니다: {field}"


def message_too_long(limit: int) -> str:
    return f"메시지가 너무 깁니다 (최대 {limit}자)"


class ChatError(Exception):
    """A failure the client is told about (`error { message }`, `ai_stream_error { error }`...)."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class InvalidField(ChatError):
    def __init__(self, field: str) -> None:
        super().__init__(invalid_field(field))
        self.field = field


# Plain WebSocket front ends (CONTRACT §3, §4, §5): their own wording, kept as specified.
AGENT_NOT_FOUND = "에이전트를 찾을 수 없습니다"
COUNSELING_MESSAGE_EMPTY = "메시지가 비어있습니다"
COUNSELING_RATE_LIMITED = "요청이 너무 많습니다. 잠시 후 다시 시도해주세요"
COUNSELING_INVALID_SESSION = "잘못된 세션 ID입니다"


def describe_failure(exc: BaseException) -> str:
    """What a client is told about any failure: a ChatError's own text; for anything else the
    temporary-failure text, with the cause logged (a warning for a database outage, the
    traceback for a bug)."""
    import logging

    from server.db import DB_UNAVAILABLE_ERRORS

    if isinstance(exc, ChatError):
        return exc.message
    log = logging.getLogger("server.failures")
    if isinstance(exc, DB_UNAVAILABLE_ERRORS):
        log.warning("database unavailable: %s", exc)
    else:
        log.error("unexpected failure", exc_info=exc)
    return TEMPORARY_FAILURE
