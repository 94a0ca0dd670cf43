"""`search_welfare_services`, the tool the model calls (CONTRACT §6), and the §1.1 list format."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

from server.welfare.catalog import WelfareCatalog, WelfareService
from server.welfare.search import MAX_LIMIT

TOOL_NAME = "search_welfare_services"
TOOL_DESCRIPTION = (
    "한국 복지 서비스 목록에서 조건에 맞는 서비스를 검색합니다 "
    "(이름, 담당 기관, 연락처, 요약, 지원 대상, URL). "
    "Search the Korean welfare-service catalogue by keywords such as who needs help "
    "(노인, 장애인, 임산부, 청년) and what help (일자리, 돌봄, 의료비, 월세)."
)
DEFAULT_LIMIT = 5
SUMMARY_MAX_CHARS = 200  # operator exports can hold paragraphs; the model needs one sentence

# Plain JSON Schema that OpenAI and Gemini function declarations both accept.
TOOL_PARAMETERS: dict[str, Any] = {
    "type": "object",
    "properties": {
        "query": {
            "type": "string",
            "description": "찾는 도움, 한국어 키워드 (예: '노인 일자리', '임산부 의료비')",
        },
        "region": {
            "type": "string",
            "description": "사용자의 거주 지역 (예: '서울', '경기도', '해남군'); 모르면 생략",
        },
        "target": {
            "type": "string",
            "description": "지원 대상 (예: '노인', '장애인', '아동', '임산부', '청년')",
        },
        "limit": {
            "type": "integer",
            "description": f"돌려받을 최대 개수 (1~{MAX_LIMIT}, 기본 {DEFAULT_LIMIT})",
            "minimum": 1,
            "maximum": MAX_LIMIT,
        },
    },
    "required": ["query"],
}


def run_welfare_tool(
    catalog: WelfareCatalog, arguments: Mapping[str, Any] | str
) -> list[dict[str, str]]:
    """Search with a model's arguments, read leniently; a missing query raises ValueError."""
    if isinstance(arguments, str):  # a model's raw JSON text
        try:
            arguments = json.loads(arguments or "{}")
        except json.JSONDecodeError as exc:
            raise ValueError(f"{TOOL_NAME}: arguments are not valid JSON") from exc
    if not isinstance(arguments, Mapping):
        raise ValueError(f"{TOOL_NAME}: arguments must be an object")
    query = _optional_text(arguments.get("query"))
    if query is None:
        raise ValueError(f"{TOOL_NAME}: 'query' is required (what help is wanted, in Korean)")
    services = catalog.search(
        query,
        region=_optional_text(arguments.get("region")),
        target=_optional_text(arguments.get("target")),
        limit=_limit(arguments.get("limit")),
    )
    return [service_to_dict(s) for s in services]


def service_to_dict(service: WelfareService) -> dict[str, str]:
    """The contract's `{name, department, contact, summary, target, url?}`."""
    summary = service.summary
    if len(summary) > SUMMARY_MAX_CHARS:
        summary = summary[: SUMMARY_MAX_CHARS - 1].rstrip() + "…"
    result = {
        "name": service.name,
        "department": service.department,
        "contact": service.contact,
        "summary": summary,
        "target": service.target,
    }
    if service.url:
        result["url"] = service.url
    return result


def format_services(services: Sequence[Mapping[str, Any]]) -> str:
    """The §1.1 numbered list: name, then indented 담당 and 연락처, a blank line between items;
    then, when the catalogue has them, who it is for (지원대상) and where to apply (신청).

    A missing value leaves its line out rather than printing an empty one.
    """
    blocks = []
    for number, service in enumerate(services, start=1):
        lines = [f"{number}. {_optional_text(service.get('name')) or '(이름 없음)'}"]
        for label, key in _DETAIL_LINES:
            value = _optional_text(service.get(key))
            if value:
                lines.append(f"    - {label}: {_shorten(value) if key == 'target' else value}")
        blocks.append("\n".join(lines))
    return "\n\n".join(blocks)


_DETAIL_LINES = (
    ("담당", "department"),
    ("연락처", "contact"),
    ("지원대상", "target"),
    ("신청", "url"),
)
TARGET_MAX_CHARS = 80  # one line of who it is for; the full text stays in the tool's result


def _shorten(text: str) -> str:
    return text if len(text) <= TARGET_MAX_CHARS else text[: TARGET_MAX_CHARS - 1].rstrip() + "…"


def _optional_text(value: Any) -> str | None:
    if value is None or isinstance(value, (dict, list)):
        return None
    text = " ".join(str(value).split())
    return text or None


def _limit(value: Any) -> int:
    if isinstance(value, bool):  # bool is an int in Python, never a count a model meant
        return DEFAULT_LIMIT
    try:
        number = int(float(value)) if isinstance(value, (int, float, str)) else DEFAULT_LIMIT
    except (ValueError, OverflowError):  # 'five', 'nan', 'inf'
        return DEFAULT_LIMIT
    return max(1, min(MAX_LIMIT, number))
