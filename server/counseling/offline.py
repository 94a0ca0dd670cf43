"""A short, honest counseling reply when no language model is configured.

The shared `local` provider is a welfare search helper: to a counseling client it would
answer every sentence with its introduction. This stand-in answers in the counselor's
voice instead, two or three sentences shaped by the emotion the client reported, and says
once per session that it is not an AI model.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator, Sequence

from server.ai.base import LLMEvent, PromptMessage, TextDelta, ToolSpec
from server.counseling.prompts import Emotion, emotion_of_prompt

OFFLINE_NOTE = "지금은 AI 모델에 연결되지 않은 오프라인 모드라 짧은 기본 응답만 드릴 수 있어요."
CRISIS_REPLY = (
    "그렇게까지 힘든 마음을 털어놓아 주셔서 고마워요. 당신은 혼자가 아니에요. "
    "지금 바로 자살예방상담전화 109에 전화하시면 24시간 언제든 이야기를 들어 줄 사람이 있어요."
)
_CRISIS = re.compile(r"(죽고\s*싶|자살|극단적|사라지고\s*싶|살고\s*싶지\s*않|목숨|자해)")
_CHUNK = re.compile(r"\S+\s*|\s+")

# Two replies per emotion, alternated so consecutive turns do not repeat word for word.
REPLIES: dict[Emotion, tuple[str, str]] = {
    "happy": (
        "좋은 일이 있으셨나 봐요, 저도 함께 기뻐요. 어떤 순간이 가장 기분 좋으셨는지 조금 더 "
        "들려주시겠어요?",
        "이야기하시는 목소리에서 기쁨이 느껴져요. 이 좋은 기분을 오늘 하루 어떻게 이어 가고 "
        "싶으신가요?",
    ),
    "sad": (
        "많이 속상하고 지치셨겠어요. 그런 마음이 드는 건 자연스러운 일이에요. 요즘 가장 마음을 "
        "무겁게 하는 일이 무엇인지 천천히 이야기해 주시겠어요?",
        "혼자 견디기 힘든 시간을 보내고 계시는 것 같아요. 이럴 때 조금이라도 기대고 싶은 "
        "사람이나 잠시 위로가 되는 일이 있으신가요?",
    ),
    "angry": (
        "정말 화가 나실 만한 상황이었네요. 그 감정은 충분히 이해할 수 있어요. 무엇이 가장 "
        "크게 마음을 건드렸는지 함께 짚어 볼까요?",
        "화가 나는 건 무언가 소중한 것이 지켜지지 않았다는 신호이기도 해요. 잠시 숨을 고른 뒤, "
        "그 상황에서 가장 바랐던 것이 무엇이었는지 말씀해 주시겠어요?",
    ),
    "anxious": (
        "걱정이 많아 마음이 편치 않으시겠어요. 잠시 숨을 천천히 들이쉬고 내쉬어 보세요. "
        "지금 가장 마음에 걸리는 일 한 가지를 함께 살펴볼까요?",
        "불안한 마음이 계속되면 정말 지치죠. 걱정되는 일 가운데 지금 당장 할 수 있는 작은 "
        "일이 하나 있다면 무엇일까요?",
    ),
    "neutral": (
        "이야기해 주셔서 고마워요. 그 일에 대해 지금 어떤 마음이 드시는지 조금 더 들려주시겠어요?",
        "말씀 잘 들었어요. 요즘 일상에서 가장 자주 떠오르는 생각은 무엇인가요?",
    ),
    "surprised": (
        "예상하지 못한 일이 있으셨나 봐요. 어떤 일이었는지, 그리고 그때 어떤 마음이 드셨는지 "
        "천천히 말씀해 주시겠어요?",
        "갑작스러운 일은 마음을 정리할 시간이 필요하죠. 그 일이 지금 어떤 감정으로 남아 "
        "있는지 함께 살펴볼까요?",
    ),
    "disgusted": (
        "많이 불쾌하셨겠어요. 그렇게 느끼시는 건 당연한 일이에요. 무엇이 가장 불편하셨는지 "
        "이야기해 주시겠어요?",
        "불편한 감정은 나를 지키고 싶다는 마음의 신호일 수 있어요. 그 상황에서 어디까지가 "
        "괜찮고 어디부터가 싫은지 함께 정리해 볼까요?",
    ),
    "fearful": (
        "많이 무섭고 겁이 나셨겠어요. 지금 이 대화는 안전한 곳이에요. 어떤 일이 가장 두렵게 "
        "느껴지는지 천천히 말씀해 주시겠어요?",
        "두려움이 클 때는 아주 작은 한 걸음부터 시작해도 괜찮아요. 지금 조금이라도 마음을 "
        "안정시켜 주는 것이 있다면 무엇일까요?",
    ),
}


class OfflineCounselor:
    """Implements the `LLM` interface; never calls tools."""

    name = "local"

    async def stream(
        self, messages: Sequence[PromptMessage], tools: Sequence[ToolSpec]
    ) -> AsyncIterator[LLMEvent]:
        for piece in _CHUNK.findall(reply_for(messages)):
            yield TextDelta(piece)

    async def aclose(self) -> None:
        return None


def reply_for(messages: Sequence[PromptMessage]) -> str:
    system = next((m.content for m in messages if m.role == "system"), "")
    emotion = emotion_of_prompt(system) or "neutral"
    earlier_replies = sum(1 for m in messages if m.role == "assistant")
    if _CRISIS.search(messages[-1].content):
        text = CRISIS_REPLY
    else:
        text = REPLIES[emotion][earlier_replies % 2]
    # said once per session: the first reply has no earlier reply in its context
    return f"{OFFLINE_NOTE} {text}" if earlier_replies == 0 else text
