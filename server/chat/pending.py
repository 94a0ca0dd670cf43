"""Questions stored and acknowledged but not answered yet, held under a lease, so that an
answer being generated on an instance that dies (`kill -9`, a crashed host) is not lost.

With Redis (many instances) every accepted `/chat` message is registered here before it
is acknowledged: a sorted set of `<message id>:<session id>` scored by its lease's end, and
which instance holds it. The instance answering it renews the lease while it works and
removes the entry once the reply is stored (or the failure told). An entry whose lease ran
out was orphaned by a dead instance: another instance claims it (an atomic compare-and-set
in Redis, so exactly one does) from its periodic pass, or at once when a client resumes
that session (`join-chat` with `lastMessageId`), checks in the database that no reply
(`metadata.replyTo`) was stored meanwhile, and answers it.

Without Redis there is one instance and nobody to take over: `LocalPendingTurns` keeps no
state and claims nothing.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections.abc import Awaitable, Callable
from typing import Protocol

from redis.asyncio import Redis
from redis.exceptions import RedisError

log = logging.getLogger(__name__)

ZSET_KEY = "mobok-pending-turns"
OWNERS_KEY = "mobok-pending-turn-owners"
CLAIM_BATCH = 50  # orphaned turns taken over by one pass, at most

# Take over an entry only if its lease has run out; then it is ours.
_CLAIM = """
local deadline = redis.call('ZSCORE', KEYS[1], ARGV[1])
if deadline and tonumber(deadline) <= tonumber(ARGV[2]) then
  redis.call('ZADD', KEYS[1], ARGV[3], ARGV[1])
  redis.call('HSET', KEYS[2], ARGV[1], ARGV[4])
  return 1
end
return 0
"""
# Extend our own leases only (one that ran out and was taken over is not ours any more).
_RENEW = """
local renewed = 0
for i = 3, #ARGV do
  if redis.call('HGET', KEYS[2], ARGV[i]) == ARGV[2] then
    redis.call('ZADD', KEYS[1], 'XX', ARGV[1], ARGV[i])
    renewed = renewed + 1
  end
end
return renewed
"""


class PendingTurns(Protocol):
    lease_seconds: float

    async def add(self, session_id: str, message_id: str) -> None: ...

    async def done(self, session_id: str, message_id: str) -> None: ...

    async def renew(self) -> None: ...

    async def claim_orphans(self, session_id: str | None = None) -> list[tuple[str, str]]: ...


class LocalPendingTurns:
    """One instance: its turns die with it, and there is no other to answer them."""

    lease_seconds = 0.0

    async def add(self, session_id: str, message_id: str) -> None:
        return None

    async def done(self, session_id: str, message_id: str) -> None:
        return None

    async def renew(self) -> None:
        return None

    async def claim_orphans(self, session_id: str | None = None) -> list[tuple[str, str]]:
        return []


class RedisPendingTurns:
    def __init__(self, redis: Redis, lease_seconds: float) -> None:
        self.redis = redis
        self.lease_seconds = lease_seconds
        self.owner = uuid.uuid4().hex  # this instance
        self._held: set[str] = set()  # entries this instance is answering
        self._claim = redis.register_script(_CLAIM)
        self._renew = redis.register_script(_RENEW)

    def _deadline_ms(self) -> int:
        return int((time.time() + self.lease_seconds) * 1000)

    async def add(self, session_id: str, message_id: str) -> None:
        member = f"{message_id}:{session_id}"
        self._held.add(member)
        try:
            async with self.redis.pipeline(transaction=True) as pipe:
                pipe.zadd(ZSET_KEY, {member: self._deadline_ms()})
                pipe.hset(OWNERS_KEY, member, self.owner)
                await pipe.execute()
        except (RedisError, OSError) as exc:  # the message is stored: only a takeover is lost
            log.warning("cannot register a pending turn: %s", exc)

    async def done(self, session_id: str, message_id: str) -> None:
        member = f"{message_id}:{session_id}"
        self._held.discard(member)
        try:
            async with self.redis.pipeline(transaction=True) as pipe:
                pipe.zrem(ZSET_KEY, member)
                pipe.hdel(OWNERS_KEY, member)
                await pipe.execute()
        except (RedisError, OSError) as exc:  # another instance finds the reply stored
            log.warning("cannot clear a pending turn: %s", exc)

    async def renew(self) -> None:
        if self._held:
            keys = [ZSET_KEY, OWNERS_KEY]
            await self._renew(keys=keys, args=[self._deadline_ms(), self.owner, *self._held])

    async def claim_orphans(self, session_id: str | None = None) -> list[tuple[str, str]]:
        """Entries whose lease ran out (of `session_id`, or any), now held by this instance:
        (session id, message id) each."""
        now = int(time.time() * 1000)
        expired = await self.redis.zrangebyscore(ZSET_KEY, "-inf", now, start=0, num=CLAIM_BATCH)
        claimed: list[tuple[str, str]] = []
        for raw in expired:
            member = raw.decode() if isinstance(raw, bytes) else str(raw)
            message_id, _, owner_session = member.partition(":")
            if session_id is not None and owner_session != session_id:
                continue
            args: list[str | int] = [member, now, self._deadline_ms(), self.owner]
            if await self._claim(keys=[ZSET_KEY, OWNERS_KEY], args=args):
                self._held.add(member)
                claimed.append((owner_session, message_id))
        return claimed


def pending_turns(redis: Redis | None, lease_seconds: float) -> PendingTurns:
    return RedisPendingTurns(redis, lease_seconds) if redis is not None else LocalPendingTurns()


async def keep_leases(
    pending: PendingTurns, take_over: Callable[[list[tuple[str, str]]], Awaitable[None]]
) -> None:
    """Forever: renew this instance's leases, and take over turns orphaned by another."""
    if pending.lease_seconds <= 0:
        return
    while True:
        await asyncio.sleep(pending.lease_seconds / 3)
        try:
            await pending.renew()
            orphans = await pending.claim_orphans()
            if orphans:
                log.info("taking over orphaned turns", extra={"count": len(orphans)})
                await take_over(orphans)
        except (RedisError, OSError) as exc:  # Redis away: next pass
            log.warning("pending turns pass failed: %s", exc)
