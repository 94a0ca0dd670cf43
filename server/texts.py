"""Every text a user sees, worded exactly as the contract specifies (values never change:
clients match on some of them). Failures carry them as `server.errors.ChatError`."""

from __future__ import annotations

# -- /chat and shared by every protocol (CONTRACT §1, §1.4) --------------------------------
SESSION_NOT_FOUND = "세션을 찾을 수 없습니다"
SESSION_FORBIDDEN = "세션에 접근할 권한이 없습니다"
MESSAGE_EMPTY = "메시지가 비어 있습니다"
RATE_LIMITED = "요청이 너무 많습니다. 잠시 후 다시 시도해 주세요"
AI_FAILED = "AI 응답 생성에 실패했습니다"
TEMPORARY_FAILURE = "일시적인 오류가 발생했습니다. 잠시 후 다시 시도해 주세요"

JOINED = "채팅에 참가했습니다"
GREETING = "안녕하세요! 복지 서비스 검색 AI입니다. 어떤 복지 서비스를 찾고 계신가요?"

AUTH_REQUIRED = "인증이 필요합니다"
AUTH_FAILED = "인증에 실패했습니다"


def invalid_field(field: str) -> str:
    return f"잘못된 요청입니다: {field}"


def message_too_long(limit: int) -> str:
    return f"메시지가 너무 깁니다 (최대 {limit}자)"


# -- calls (CONTRACT §2) ---------------------------------------------------------------------
CALL_NOT_FOUND = "통화를 찾을 수 없습니다"
CALL_FINISHED = "이미 종료된 통화입니다"
SPEECH_FAILED = "음성 처리에 실패했습니다"
NOTHING_HEARD = "음성에서 말을 인식하지 못했습니다"


def illegal_transition(current: str, target: str) -> str:
    """`current` and `target`: call statuses (`CallStatus.value`)."""
    return f"통화 상태를 {current}에서 {target}(으)로 바꿀 수 없습니다"


# -- plain WebSocket front ends (CONTRACT §3, §4, §5): their own wording, kept as specified -
AGENT_NOT_FOUND = "에이전트를 찾을 수 없습니다"
COUNSELING_MESSAGE_EMPTY = "메시지가 비어있습니다"
COUNSELING_RATE_LIMITED = "요청이 너무 많습니다. 잠시 후 다시 시도해주세요"
COUNSELING_INVALID_SESSION = "잘못된 세션 ID입니다"

# -- agent chat (CONTRACT §3) ----------------------------------------------------------------
PROJECT_FORBIDDEN = "이 프로젝트에 접근할 권한이 없습니다"
AGENT_NOT_RUNNING = "에이전트가 실행 중이 아닙니다"
CONNECTION_REPLACED = "같은 client_id로 새 연결이 열려 이 연결을 닫습니다"
NOT_A_JSON_OBJECT = "잘못된 요청입니다: JSON 객체가 아닙니다"
TEXT_FRAMES_ONLY = "잘못된 요청입니다: 텍스트(JSON) 프레임만 받습니다"
BROADCAST_DISABLED = "AUTH_SECRET이 설정되지 않아 브로드캐스트를 쓸 수 없습니다"
BROADCAST_FORBIDDEN = "관리자 토큰이 필요합니다"
TOO_MANY_QUEUED = "처리 대기 중인 메시지가 너무 많습니다. 잠시 후 다시 시도해 주세요"

DELEGATION_EMPTY = "맡길 작업을 적어 주세요 (예: /report 노인 복지 서비스 조사)"
TOO_MANY_DELEGATIONS = "진행 중인 위임 작업이 너무 많습니다. 끝난 뒤에 다시 맡겨 주세요"


def unknown_type(frame_type: str) -> str:
    return f"알 수 없는 메시지 유형입니다: {frame_type[:30]}"


def delegation_accepted(task: str) -> str:
    return f"작업을 맡았습니다. 끝나면 자동으로 보고드리겠습니다: {task}"


def delegation_done(task: str, result: str) -> str:
    return f"맡기신 작업을 마쳤습니다: {task}\n\n{result}"


def delegation_failed(task: str) -> str:
    return f"맡기신 작업을 끝내지 못했습니다: {task}. 잠시 후 다시 맡겨 주세요."


# Administrators (privacy routes, /admin; docs/operations.md)
ADMIN_REQUIRED = "관리자 권한이 필요합니다"
ADMIN_LOOPBACK_ONLY = (
    "관리자 기능은 서버와 같은 컴퓨터에서만 열 수 있습니다 "
    "(ADMIN_TOKEN 또는 AUTH_SECRET을 설정하세요)"
)
ADMIN_TOKEN_MISSING = "토큰을 입력하세요"
MESSAGE_NOT_FOUND = "메시지를 찾을 수 없습니다"  # `before` of the messages route names none


def method_not_allowed(method: str) -> str:
    return f"허용되지 않는 메서드입니다: {method[:20]}"
