"""Spend limits of the calls API (MAX_CALLS_PER_HOUR, MAX_PROCESS_PER_MINUTE), counted per
user (the token's, with AUTH_SECRET) or else per client address, in Redis with REDIS_URL so
every instance counts together. Voice turns are limited per call where its AI peer runs
(`server.voice.pipeline`, MAX_VOICE_TURNS_PER_MINUTE)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass

from aiohttp import web

from server.conversation.ratelimit import Limiter, make_limiter
from server.errors import ChatError
from server.keys import REDIS, SETTINGS
from server.texts import RATE_LIMITED

HOUR = 3600.0


class SpendLimited(ChatError):
    """Over a spend limit: 429 with the contract's rate-limit text."""

    def __init__(self) -> None:
        super().__init__(RATE_LIMITED)


@dataclass(frozen=True, slots=True)
class SpendLimits:
    calls: Limiter  # calls placed, per user or address, per hour
    process: Limiter  # `conversation/process` requests, per user or address, per minute

    async def place_call(self, who: str) -> None:
        if not await self.calls.allow(who):
            raise SpendLimited()

    async def process_turn(self, who: str) -> None:
        if not await self.process.allow(who):
            raise SpendLimited()


def client_key(request: web.Request, user: str | None) -> str:
    """Whose spending a request is: the token's user, else the client's address."""
    return f"user:{user}" if user is not None else f"ip:{request.remote or '-'}"


SPEND_LIMITS = web.AppKey("spend_limits", SpendLimits)


async def spend_limits(app: web.Application) -> AsyncIterator[None]:
    """cleanup_ctx, after Redis: the limiters of the calls API."""
    settings = app[SETTINGS]
    redis = app.get(REDIS)
    app[SPEND_LIMITS] = SpendLimits(
        calls=make_limiter(redis, settings.max_calls_per_hour, "calls", HOUR),
        process=make_limiter(redis, settings.max_process_per_minute, "process"),
    )
    yield
