"""The emotion-aware counseling stream (CONTRACT §5): prompts, the exchange store, one turn."""

from server.counseling.offline import OfflineCounselor
from server.counseling.prompts import EMOTIONS, Emotion, as_emotion, system_prompt
from server.counseling.provider import counseling_llm
from server.counseling.service import (
    CounselingRequest,
    CounselingService,
    forget_idle_limits,
)
from server.counseling.store import ConversationStore, Exchange

__all__ = [
    "EMOTIONS",
    "ConversationStore",
    "CounselingRequest",
    "CounselingService",
    "Emotion",
    "Exchange",
    "OfflineCounselor",
    "as_emotion",
    "counseling_llm",
    "forget_idle_limits",
    "system_prompt",
]
