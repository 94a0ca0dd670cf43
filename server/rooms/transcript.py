"""The room log as the model's context: who said what, ending with the question asked."""

from __future__ import annotations

from collections.abc import Sequence

from server.ai.base import PromptMessage
from server.ai.prompts import WELFARE_CHAT_SYSTEM_PROMPT
from server.rooms.frames import LLM_PARTICIPANT, spoken_text
from server.rooms.log import LogEntry

ROOM_SYSTEM_PROMPT = (
    WELFARE_CHAT_SYSTEM_PROMPT
    + "\n- 여러 참여자가 함께 쓰는 대화방입니다. 참여자의 메시지는 '참여자: 내용' 형식으로 "
    "전달됩니다. 마지막 메시지에 답하세요."
)


def context_entries(recent: Sequence[LogEntry], asking: LogEntry, limit: int) -> list[LogEntry]:
    """At most `limit` entries ending with `asking`.

    `recent` is the room's latest log, read when the turn starts: it may hold messages sent
    after the question (left out: the model answers what was asked, not what came later)
    and replies of earlier turns stored after it (kept: they answer earlier questions).
    """
    ids = [e.id for e in recent]
    position = ids.index(asking.id) if asking.id in ids else -1
    before = list(recent[:position]) if position >= 0 else []
    replies_since = [e for e in recent[position + 1 :] if e.participant == LLM_PARTICIPANT]
    earlier = [*before, *replies_since]
    return [*earlier[max(0, len(earlier) - limit + 1) :], asking]


def transcript(entries: Sequence[LogEntry], asking: LogEntry, question: str) -> list[PromptMessage]:
    """The model's entries as its own turns, everyone else's as `participant: text`."""
    messages = [PromptMessage("system", ROOM_SYSTEM_PROMPT)]
    for entry in entries:
        text = question if entry.id == asking.id else spoken_text(entry.body)
        if text is None:
            continue
        if entry.participant == LLM_PARTICIPANT:
            messages.append(PromptMessage("assistant", text))
        else:
            messages.append(PromptMessage("user", f"{entry.participant}: {text}"))
    return messages
