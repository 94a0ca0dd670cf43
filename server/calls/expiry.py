"""No call dangles: calls that never got media within `CALL_SETUP_TIMEOUT_SECONDS` FAIL.

A call placed and never joined stays RINGING, one whose caller offered nothing usable (or
vanished between offer and media) stays CONNECTING: nothing else would ever end them.
Like the session reaper, this runs on every instance; each call moves by a compare-and-set,
so exactly one instance fails it and runs its end listeners (closing a local AI peer).
"""

from __future__ import annotations

import asyncio
import logging
from datetime import timedelta

from server.calls.service import CallService
from server.chat import clock

log = logging.getLogger(__name__)


async def expire_once(calls: CallService, timeout_seconds: float) -> int:
    expired = await calls.expire_setups(clock.now() - timedelta(seconds=timeout_seconds))
    for call in expired:
        log.info("call setup timed out", extra={"call": call.id})
    return len(expired)


async def run_call_expiry(calls: CallService, timeout_seconds: float, interval: float) -> None:
    """Every `interval` seconds, forever; a failed pass (database down) is retried later."""
    while True:
        await asyncio.sleep(interval)
        try:
            await expire_once(calls, timeout_seconds)
        except Exception:
            log.warning("call expiry pass failed", exc_info=True)
