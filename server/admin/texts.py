"""Texts of the admin routes (the others are the contract's, in `server.errors`/`server.auth`)."""

from __future__ import annotations

ADMIN_REQUIRED = "관리자 권한이 필요합니다"
MESSAGE_NOT_FOUND = "메시지를 찾을 수 없습니다"  # `before` of the messages route names none
ADMIN_LOOPBACK_ONLY = (
    "관리자 기능은 서버와 같은 컴퓨터에서만 열 수 있습니다 "
    "(ADMIN_TOKEN 또는 AUTH_SECRET을 설정하세요)"
)
