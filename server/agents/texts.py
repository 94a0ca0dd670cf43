"""Texts the agent chat's users see (CONTRACT §3), beside the shared ones in `server.errors`."""

from __future__ import annotations

# the same texts on every protocol, defined with the token check
from server.auth import AUTH_FAILED as AUTH_FAILED
from server.auth import AUTH_REQUIRED as AUTH_REQUIRED

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
