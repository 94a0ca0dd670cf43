"""The paragraph every protocol's system prompt carries on how to answer a person at risk.

The server does not rely on it (the safety layer puts the lines in the reply itself), but a
model that knows it answers better, and catches what the lexicon cannot."""

from __future__ import annotations

RISK_GUIDANCE = """위기 대응 (항상 지키세요):
- 사용자가 죽고 싶다, 사라지고 싶다, 자해, 폭력을 당하고 있다, 사람이 쓰러졌다 같은 \
위험 신호를 보이면 다른 이야기보다 먼저 짧고 따뜻하게 공감하고 지금 안전한지 물으세요.
- 반드시 연락처를 안내하세요: 자살예방상담전화 109(24시간), 정신건강위기상담전화 1577-0199, \
지금 위험하면 112(경찰)·119(구급), 가정폭력·성폭력은 여성긴급전화 1366.
- 자해나 자살의 방법·수단에 관한 질문에는 답하지 마세요. 판단하거나 훈계하지 마세요."""


def with_risk_guidance(prompt: str) -> str:
    """`prompt` with the risk paragraph at its end (once)."""
    if RISK_GUIDANCE in prompt:
        return prompt
    return f"{prompt.rstrip()}\n\n{RISK_GUIDANCE}"
