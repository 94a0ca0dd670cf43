"""No call dangles: calls that never got media within `CALL_SETUP_TIMEOUT_SECONDS` FAIL,
and calls in progress whose instance stopped END after `CALL_STALE_SECONDS`.

A call placed and never joined stays RINGING, one whose caller offered nothing usable (or
vanished between offer and media) stays CONNECTING: nothing else would ever end them. A call
IN_PROGRESS is carried by the instance holding its AI peer, which keeps it alive (its
`updated_at`) every fifth of `CALL_STALE_SECONDS`; when that instance dies without hanging
up, the call stops being kept alive and is ENDED.
Like the session reaper, this runs on every instance; each call moves by a compare-and-set,
so exactly one instance ends it and runs its end listeners (closing a local AI peer).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Collection
from datetime import timedelta

from server.calls.service import CallService
from server.chat import clock

log = logging.getLogger(__name__)


async def expire_once(
    calls: CallService, timeout_seconds: float, stale_seconds: float | None = None
) -> int:
    now = clock.now()
    expired = await calls.expire_setups(now - timedelta(seconds=timeout_seconds))
    for call in expired:
        log.info("call setup timed out", extra={"call": call.id})
    if stale_seconds is not None:
        for call in await calls.expire_stale(now - timedelta(seconds=stale_seconds)):
            log.info("call no longer carried by any instance: ended", extra={"call": call.id})
            expired.append(call)
    return len(expired)


async def run_call_expiry(
    calls: CallService, timeout_seconds: float, interval: float, stale_seconds: float | None = None
) -> None:
    """Every `interval` seconds, forever; a failed pass (database down) is retried later."""
    while True:
        await asyncio.sleep(interval)
        try:
            await expire_once(calls, timeout_seconds, stale_seconds)
        except Exception:
            log.warning("call expiry pass failed", exc_info=True)


async def run_call_heartbeat(
    calls: CallService, live_call_ids: Callable[[], Collection[str]], interval: float
) -> None:
    """Keep this instance's calls in progress alive, every `interval` seconds."""
    while True:
        await asyncio.sleep(interval)
        try:
            await calls.keep_alive(live_call_ids())
        except Exception:
            log.warning("call heartbeat failed", exc_info=True)
