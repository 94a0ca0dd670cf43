"""The one safety layer every protocol calls before its model answers a user's words.

`SafetyLayer.assess` runs the detector and, when a message signals a risk to life, counts
it on `/metrics`, logs it at WARNING (protocol, session, category; at most 50 characters of
the text) and queues the operator's webhook. The turn (`server.conversation.turn`) then puts
the crisis reply first in the answer and tells the model how to go on.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence

from server.ai.base import LLM, PromptMessage
from server.logs import preview
from server.safety.detector import CrisisDetector, SafetyFlag
from server.safety.metrics import SAFETY_FLAGS
from server.safety.notifier import SafetyNotifier, utc_timestamp
from server.safety.replies import crisis_instruction

log = logging.getLogger(__name__)

INLINE_CHARS = 300  # longer text is analysed in a worker thread (about 3 ms per 100 chars)
OFFLINE_PROVIDERS = frozenset({"local"})  # rule-based stand-ins: the crisis reply is the answer


class SafetyLayer:
    def __init__(self, detector: CrisisDetector, notifier: SafetyNotifier | None = None) -> None:
        self.detector = detector
        self.notifier = notifier

    async def assess(self, text: str, *, protocol: str, session_id: str) -> SafetyFlag | None:
        """The risk `text` signals, reported (metric, log, webhook) when there is one."""
        if len(text) <= INLINE_CHARS:
            flag = self.detector.check(text)
        else:
            flag = await asyncio.to_thread(self.detector.check, text)
        if flag is not None:
            self.report(flag, protocol=protocol, session_id=session_id, text=text)
        return flag

    def report(self, flag: SafetyFlag, *, protocol: str, session_id: str, text: str) -> None:
        SAFETY_FLAGS.labels(protocol, flag.category, flag.level).inc()
        log.warning(
            "message at risk",
            extra={
                "protocol": protocol,
                "session": session_id,
                "category": flag.category,
                "level": flag.level,
                "text": preview(text),
            },
        )
        if self.notifier is not None:
            self.notifier.notify(
                {
                    "protocol": protocol,
                    "sessionId": session_id,
                    "category": flag.category,
                    "level": flag.level,
                    "timestamp": utc_timestamp(),
                }
            )


def answers_offline(llm: LLM) -> bool:
    """A rule-based provider has nothing to add to the crisis reply."""
    return llm.name in OFFLINE_PROVIDERS


def with_crisis_instruction(
    messages: Sequence[PromptMessage], flag: SafetyFlag
) -> list[PromptMessage]:
    """The prompt with the crisis instruction added to its system message."""
    instruction = crisis_instruction(flag.category)
    if messages and messages[0].role == "system":
        first = messages[0]
        amended = PromptMessage("system", f"{first.content.rstrip()}\n\n{instruction}")
        return [amended, *messages[1:]]
    return [PromptMessage("system", instruction), *messages]
