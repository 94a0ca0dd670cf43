"""RETENTION_DAYS: what is older is deleted, in small batches, by every instance.

Each pass, per table, reads the ids of at most RETENTION_BATCH_ROWS rows older than the
cutoff (a plain read, no locks) and deletes those rows by primary key, then the next batch,
until none is left. A batch locks only its own rows for one short statement, so chat turns
that write to the same tables never wait long on MySQL; instances that run the same pass at
once delete the same ids, which is harmless (the second delete finds nothing).

Deleted: chat messages, calls (with their sessions' messages), counseling exchanges, room
messages (database log), agent messages and delivered agent reports older than the cutoff,
and chat sessions idle since before it that have no message left.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import datetime, timedelta

from aiohttp import web
from tortoise.models import Model

from models import ChatMessage, ChatSession
from models.agents import AgentMessage, AgentReport
from models.calls import Call
from models.counseling import Conversation
from models.rooms import RoomMessage
from server.chat import clock
from server.keys import SETTINGS

log = logging.getLogger(__name__)

PAUSE_BETWEEN_BATCHES = 0.05  # seconds: other statements get the connection in between


@dataclass(frozen=True, slots=True)
class Table:
    name: str
    model: type[Model]
    time_field: str
    extra: dict[str, object] | None = None  # more conditions (delivered reports only)


TABLES = (
    Table("chatMessages", ChatMessage, "created_at"),
    Table("calls", Call, "created_at"),
    Table("counselingExchanges", Conversation, "created_at"),
    Table("roomMessages", RoomMessage, "created_at"),
    Table("agentMessages", AgentMessage, "created_at"),
    Table("agentReports", AgentReport, "created_at", {"delivered_at__isnull": False}),
    Table("chatSessions", ChatSession, "last_activity"),
)


async def purge_once(cutoff: datetime, batch_rows: int) -> dict[str, int]:
    """Delete what is older than `cutoff`; how many rows of each table went."""
    counts: dict[str, int] = {}
    for table in TABLES:
        counts[table.name] = await _purge_table(table, cutoff, batch_rows)
    return counts


async def _purge_table(table: Table, cutoff: datetime, batch_rows: int) -> int:
    if table.model is ChatSession:
        return await _purge_sessions(cutoff, batch_rows)
    deleted = 0
    while True:
        query = table.model.filter(**{f"{table.time_field}__lt": cutoff, **(table.extra or {})})
        if table.model is Call:  # a call takes its transcript along
            rows = await query.limit(batch_rows).values_list("id", "session_id")
            ids = [str(r[0]) for r in rows]
            if ids:
                await ChatMessage.filter(session_id__in=[str(r[1]) for r in rows]).delete()
        else:
            ids = [str(i) for i in await query.limit(batch_rows).values_list("id", flat=True)]
        if not ids:
            return deleted
        deleted += await table.model.filter(id__in=ids).delete()
        if len(ids) < batch_rows:
            return deleted
        await asyncio.sleep(PAUSE_BETWEEN_BATCHES)


async def _purge_sessions(cutoff: datetime, batch_rows: int) -> int:
    """Sessions idle since before `cutoff` whose messages are all gone (a session with newer
    messages stays), walked in `session_id` order."""
    deleted, after = 0, ""
    while True:
        ids = [
            str(s)
            for s in await ChatSession.filter(last_activity__lt=cutoff, session_id__gt=after)
            .order_by("session_id")
            .limit(batch_rows)
            .values_list("session_id", flat=True)
        ]
        if not ids:
            return deleted
        with_messages = set(
            await ChatMessage.filter(session_id__in=ids)
            .distinct()
            .values_list("session_id", flat=True)
        )
        empty = [s for s in ids if s not in with_messages]
        if empty:
            deleted += await ChatSession.filter(session_id__in=empty).delete()
        if len(ids) < batch_rows:
            return deleted
        after = ids[-1]
        await asyncio.sleep(PAUSE_BETWEEN_BATCHES)


async def run_retention(days: float, interval: float, batch_rows: int) -> None:
    """Every `interval` seconds (the first pass soon after start), forever."""
    await asyncio.sleep(min(interval, 5.0))
    while True:
        cutoff = clock.now() - timedelta(days=days)
        try:
            counts = await purge_once(cutoff, batch_rows)
            if any(counts.values()):
                log.info("retention: old data deleted", extra={"days": days, **counts})
        except Exception:  # a DB outage must not end the task
            log.warning("retention pass failed", exc_info=True)
        await asyncio.sleep(interval)


async def retention_task(app: web.Application) -> AsyncIterator[None]:
    """cleanup_ctx: the task when RETENTION_DAYS is set."""
    settings = app[SETTINGS]
    if settings.retention_days is None:
        log.info("retention: RETENTION_DAYS unset, everything is kept")
        yield
        return
    log.info(
        "retention: deleting data older than %s days, every %s minutes",
        settings.retention_days,
        settings.retention_interval_minutes,
    )
    task = asyncio.create_task(
        run_retention(
            settings.retention_days,
            settings.retention_interval_minutes * 60,
            settings.retention_batch_rows,
        )
    )
    try:
        yield
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
