"""What a person at risk is told, whatever the model says or fails to say.

The replies are short, warm, and carry the lines for the category: 자살예방상담전화 109
(24 hours), 정신건강위기상담전화 1577-0199, 112 and 119 for danger now, 여성긴급전화 1366 for
violence. Each is a few plain sentences so a call can speak it and a stream can send it.
"""

from __future__ import annotations

from server.safety.lexicon import Category

CRISIS_REPLIES: dict[Category, str] = {
    "suicide": (
        "말씀해 주셔서 고맙습니다. 지금 많이 힘드시죠. 혼자 견디지 않으셔도 됩니다. "
        "자살예방상담전화 109(24시간)나 정신건강위기상담전화 1577-0199에 전화하시면 "
        "지금 바로 상담사와 이야기할 수 있어요. "
        "지금 위험한 상황이라면 112나 119에 바로 연락해 주세요."
    ),
    "self_harm": (
        "말씀해 주셔서 고맙습니다. 지금 많이 아프고 힘드시죠. "
        "다친 곳이 있거나 피가 멈추지 않으면 지금 바로 119에 전화해 주세요. "
        "자살예방상담전화 109(24시간)나 정신건강위기상담전화 1577-0199에서 "
        "지금 바로 이야기를 들어 드릴 수 있어요."
    ),
    "violence": (
        "지금 안전이 가장 중요합니다. 위험하면 바로 112에 신고해 주세요. "
        "여성긴급전화 1366은 24시간 가정폭력·성폭력 상담과 긴급 보호를 도와드립니다. "
        "아동학대도 112로 신고할 수 있어요. 할 수 있다면 먼저 안전한 곳으로 피하세요."
    ),
    "medical": (
        "지금 바로 119에 전화해 주세요. "
        "119 상담원이 구급차가 도착할 때까지 해야 할 일(심폐소생술 등)을 전화로 알려 드립니다. "
        "위험한 상황이면 112도 도와드립니다."
    ),
}

# The numbers a reply of each category must contain (the tests check them on every protocol).
REQUIRED_LINES: dict[Category, tuple[str, ...]] = {
    "suicide": ("109", "1577-0199", "112", "119"),
    "self_harm": ("109", "1577-0199", "119"),
    "violence": ("112", "1366"),
    "medical": ("119",),
}

# Appended to the system prompt of a turn that answers a message at risk (every protocol).
CRISIS_INSTRUCTION = (
    "[안전 안내] 사용자의 마지막 메시지에 생명이 위험할 수 있다는 신호({category})가 있습니다. "
    '서버가 당신의 답변 바로 앞에 다음 안내를 이미 붙였습니다: "{reply}" '
    "이 안내를 되풀이하지 말고 이어서 답하세요: 짧고 따뜻하게 공감하고, 지금 안전한지 묻고, "
    "안내한 번호({lines})로 지금 연락하도록 부드럽게 권하세요. 판단하거나 훈계하지 말고, "
    "방법이나 수단에 대한 질문에는 절대 답하지 마세요. "
    "복지 서비스 목록은 사용자가 원할 때만 안내하세요."
)


def crisis_reply(category: Category) -> str:
    return CRISIS_REPLIES[category]


def crisis_instruction(category: Category) -> str:
    return CRISIS_INSTRUCTION.format(
        category=category,
        reply=CRISIS_REPLIES[category],
        lines=", ".join(REQUIRED_LINES[category]),
    )
