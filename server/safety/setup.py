"""The safety layer's life in the app: the analyser loaded off the event loop, the
detector built once, the webhook's workers started and stopped."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator

from aiohttp import web

from server import korean
from server.keys import SETTINGS
from server.safety.detector import default_detector
from server.safety.layer import SafetyLayer
from server.safety.notifier import SafetyNotifier

log = logging.getLogger(__name__)

SAFETY = web.AppKey("safety", SafetyLayer)  # the one layer every protocol's core calls


async def safety_layer(app: web.Application) -> AsyncIterator[None]:
    """cleanup_ctx: must run before any protocol's core is built."""
    await korean.warm_up()  # 1-3 s the first time in a process, in a worker thread
    detector = await asyncio.to_thread(default_detector)
    url = app[SETTINGS].safety_webhook_url
    notifier = SafetyNotifier(url) if url else None
    if notifier is not None:
        await notifier.start()
    app[SAFETY] = SafetyLayer(detector, notifier)
    log.info("safety layer ready", extra={"webhook": bool(notifier)})
    try:
        yield
    finally:
        if notifier is not None:
            await notifier.aclose()
