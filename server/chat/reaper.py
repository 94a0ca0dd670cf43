"""The session reaper (§1.3): idle sessions end, and their sockets are told."""

from __future__ import annotations

import asyncio
import logging
from typing import Protocol

from server.chat.service import ChatService

log = logging.getLogger(__name__)


class SessionListeners(Protocol):
    async def evict_inactive(self) -> None: ...


async def reap_once(chat: ChatService, listeners: SessionListeners) -> int:
    ended = await chat.sessions.deactivate_idle()
    chat.limiter.forget_idle()
    if chat.caller_limiter is not None:
        chat.caller_limiter.forget_idle()
    await listeners.evict_inactive()
    return ended


async def run_reaper(chat: ChatService, listeners: SessionListeners, interval: float) -> None:
    """Every `interval` seconds, forever. Safe on many instances: the UPDATE is idempotent and
    each instance only tells its own sockets."""
    while True:
        await asyncio.sleep(interval)
        try:
            ended = await reap_once(chat, listeners)
            if ended:
                log.info("idle sessions ended", extra={"count": ended})
        except Exception:  # a DB outage must not kill the reaper
            log.warning("session reaper pass failed", exc_info=True)
