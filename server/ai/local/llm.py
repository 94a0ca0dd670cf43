"""A rule-based stand-in for a model that is useful offline.

It never pretends to be GPT. A welfare question becomes a real `search_welfare_services`
tool call (run by the core like any model's), and the results come back in the §1.1
numbered format; anything else gets a short, honest note of what it can do offline.
"""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import AsyncIterator, Sequence

from server.ai.base import LLMEvent, PromptMessage, TextDelta, ToolCall, ToolSpec
from server.welfare import TOOL_NAME, format_services
from server.welfare.followup import (
    describe,
    followed_up,
    listed_before_last_question,
    not_listed,
)

INTRO = (
    "안녕하세요! 저는 오프라인 모드로 동작하는 복지 서비스 검색 도우미입니다. "
    "지금은 AI 언어 모델에 연결되어 있지 않아 자유로운 대화는 어렵지만, "
    "복지 서비스 목록에서 검색해 안내해 드릴 수 있어요.\n"
    "예) '노인 복지 서비스 알려줘', '장애인 활동 지원', '아이 키우는 집 지원'"
)
THANKS = "도움이 되었다니 다행입니다. 다른 복지 서비스가 궁금하시면 언제든 물어보세요."
NOT_FOUND = (
    "'{query}'에 맞는 복지 서비스를 찾지 못했습니다. 지금은 오프라인 모드라 "
    "복지 서비스 목록 검색만 할 수 있어요. 대상(노인, 장애인, 임산부, 청년 등)이나 "
    "필요한 도움(일자리, 돌봄, 의료비, 주거 등)을 넣어 다시 물어봐 주세요. "
    "자세한 상담은 보건복지상담센터(국번 없이 129)에서 받을 수 있습니다."
)
FOUND_INTRO = "복지 서비스 목록에서 찾은 결과입니다 (오프라인 검색):"
FOUND_OUTRO = (
    "자세한 자격 요건과 신청 방법은 각 담당 기관이나 보건복지상담센터(129)로 문의해 주세요."
)

_GREETING = re.compile(r"^\s*(안녕|안뇽|하이|반가|hello|hi\b|hey\b)", re.IGNORECASE)
_THANKS = re.compile(r"(고마워|고맙|감사합니다|감사해요|thank)", re.IGNORECASE)
_WHO = re.compile(r"(누구|정체|gpt|chatgpt|모델|뭘 할 수|무엇을 할 수|도움말|help)", re.IGNORECASE)
_CHUNK = re.compile(r"\S+\s*|\s+")


class LocalLLM:
    name = "local"

    async def stream(
        self, messages: Sequence[PromptMessage], tools: Sequence[ToolSpec]
    ) -> AsyncIterator[LLMEvent]:
        last = messages[-1]
        can_search = any(t.name == TOOL_NAME for t in tools)
        follow_up = followed_up(messages) if can_search or last.role == "tool" else None
        if follow_up is not None and not follow_up[1]:  # "7번째" of a list of five
            text = not_listed(follow_up[0], len(listed_before_last_question(messages)))
        elif last.role == "tool" and follow_up is not None:
            text = self._detail(last.content, *follow_up)
        elif last.role == "tool":
            text = self._present(last.content, _last_user_text(messages))
        elif follow_up is not None:  # "그 중 첫 번째는?": that service, by its name
            arguments = json.dumps({"query": follow_up[1], "limit": 1}, ensure_ascii=False)
            yield ToolCall(id=f"call_{uuid.uuid4().hex[:12]}", name=TOOL_NAME, arguments=arguments)
            return
        elif _GREETING.search(last.content) and len(last.content) < 20:
            text = INTRO
        elif _THANKS.search(last.content):
            text = THANKS
        elif _WHO.search(last.content) or not can_search:
            text = INTRO
        else:
            arguments = json.dumps({"query": last.content.strip()}, ensure_ascii=False)
            yield ToolCall(id=f"call_{uuid.uuid4().hex[:12]}", name=TOOL_NAME, arguments=arguments)
            return
        for piece in _CHUNK.findall(text):
            yield TextDelta(piece)

    def _present(self, tool_output: str, query: str) -> str:
        try:
            services = json.loads(tool_output)
        except ValueError:
            services = None
        if not isinstance(services, list) or not services:
            return NOT_FOUND.format(query=query[:50])
        return f"{FOUND_INTRO}\n\n{format_services(services)}\n\n{FOUND_OUTRO}"

    def _detail(self, tool_output: str, position: int, name: str) -> str:
        try:
            services = json.loads(tool_output)
        except ValueError:
            services = None
        if isinstance(services, list) and services and isinstance(services[0], dict):
            if services[0].get("name") == name:
                return describe(position, services[0])
        return NOT_FOUND.format(query=name[:50])

    async def aclose(self) -> None:
        return None


def _last_user_text(messages: Sequence[PromptMessage]) -> str:
    for m in reversed(messages):
        if m.role == "user":
            return m.content.strip()
    return ""
