"""Follow-up questions about a list already given: `그 중 첫 번째는 어떻게 신청해요?`,
`두 번째 자세히`, `3번 연락처`. The offline provider resolves them against the numbered
services of its previous answer in the same conversation (§1.1 format)."""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any

from server.ai.base import PromptMessage
from server.welfare.tool import format_services

_NUMBER_WORDS = {
    "첫": 1, "한": 1, "두": 2, "둘": 2, "세": 3, "셋": 3, "네": 4, "넷": 4, "다섯": 5,
    "여섯": 6, "일곱": 7, "여덟": 8, "아홉": 9, "열": 10,
}  # fmt: skip
_ORDINAL = re.compile(
    r"^\s*(?:그\s*중(?:에)?(?:서)?|그럼|그러면|거기서|위에서?|방금)?\s*"
    r"(?:(?P<word>첫|두|둘|세|셋|네|넷|다섯|여섯|일곱|여덟|아홉|열)\s*(?:번\s*)?째"
    r"|(?P<digit>\d{1,2})\s*번(?:\s*째)?|(?P<last>마지막))"
    r"(?!\s*(?:아이|아기|애|자녀|출산|임신|자식))"
)
_LISTED = re.compile(r"^(\d{1,2})\. (.+)$", re.MULTILINE)


def ordinal(text: str) -> int | None:
    """1-based position a follow-up asks about (-1: the last), or None if it is not one."""
    match = _ORDINAL.match(text)
    if match is None:
        return None
    if match["last"]:
        return -1
    if match["digit"]:
        return int(match["digit"]) or None
    return _NUMBER_WORDS[match["word"]]


def listed_before_last_question(messages: Sequence[PromptMessage]) -> list[str]:
    """The service names of the numbered list in the assistant's answer before the user's
    newest message; empty when there is none."""
    asked = max((i for i, m in enumerate(messages) if m.role == "user"), default=-1)
    for message in reversed(messages[:asked]):
        if message.role == "assistant" and message.content.strip():
            return [name.strip() for _, name in _LISTED.findall(message.content)]
    return []


def followed_up(messages: Sequence[PromptMessage]) -> tuple[int, str] | None:
    """(position, service name) when the newest user message asks about an item of the
    previous list; (position, "") when that list has no such item."""
    asked = next((m for m in reversed(messages) if m.role == "user"), None)
    if asked is None:
        return None
    position = ordinal(asked.content)
    names = listed_before_last_question(messages)
    if position is None or not names:
        return None
    if position == -1:
        position = len(names)
    if not 1 <= position <= len(names):
        return position, ""
    return position, names[position - 1]


def not_listed(position: int, listed: int) -> str:
    return (
        f"앞에서 안내한 목록에는 {listed}개까지 있어요. "
        f"1번부터 {listed}번 중에서 궁금한 번호를 말씀해 주세요."
    )


def describe(position: int, service: Mapping[str, Any]) -> str:
    """The details of one service, as the answer to a follow-up."""
    summary = str(service.get("summary") or "").strip()
    parts = [
        f"앞에서 안내한 {position}번째 서비스 '{service.get('name')}'의 자세한 내용입니다.",
        format_services([service]),
    ]
    if summary:
        parts.append(f"내용: {summary}")
    where = "신청 사이트나 담당 기관" if service.get("url") else "담당 기관"
    parts.append(
        f"신청은 {where}에 문의하시거나 가까운 읍·면·동 행정복지센터에서 할 수 있어요. "
        "자격이 되는지는 보건복지상담센터(국번 없이 129)에서도 확인해 드립니다."
    )
    return "\n\n".join(parts)
