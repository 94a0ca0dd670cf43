"""Calls (`calls` table): create, look up, and move through the status machine.

Every transition is a compare-and-set on the stored status, so two requests (or two
instances) racing on one call cannot both move it.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Awaitable, Callable, Collection, Iterable
from datetime import datetime
from typing import Any

from models import ChatSession
from models.calls import Call
from server.calls.errors import CallNotFound, IllegalTransition
from server.calls.phone import normalize_phone
from server.calls.status import FINAL, SETTING_UP, CallStatus, can_move
from server.chat import clock
from server.errors import InvalidField

log = logging.getLogger(__name__)

CallListener = Callable[[Call], Awaitable[None]]
_RACE_RETRIES = 3
_ID_LENGTH = 36
_SESSION_ID_LENGTH = 255


class CallService:
    def __init__(self) -> None:
        self._end_listeners: list[CallListener] = []

    def add_end_listener(self, listener: CallListener) -> None:
        """`listener(call)` runs after a call becomes ENDED or FAILED, whoever ended it
        (REST `/end`, a hang-up): the voice layer closes the call's AI peer there."""
        self._end_listeners.append(listener)

    async def create(
        self, caller_number: str, receiver_number: str | None = None, owner: str | None = None
    ) -> Call:
        """Place a call. Its session belongs to `owner` (the token's user with AUTH_SECRET),
        else to the caller's number, as before."""
        caller = normalize_phone(caller_number)
        if caller is None:
            raise InvalidField("callerNumber")
        receiver = None
        if receiver_number is not None and receiver_number != "":
            receiver = normalize_phone(receiver_number)
            if receiver is None:
                raise InvalidField("receiverNumber")
        now = clock.now()
        session_id = str(uuid.uuid4())
        # Placing the call is INITIATING -> RINGING at once: nothing happens in between, so
        # it is stored RINGING.
        call = await Call.create(
            session_id=session_id,
            caller_number=caller,
            receiver_number=receiver,
            status=CallStatus.RINGING.value,
            created_at=now,
            updated_at=now,
        )
        # The call's transcript lives in chat_messages under this session, so the session
        # exists too: the chat REST route serves the transcript.
        await ChatSession.create(
            user_id=owner or caller, session_id=session_id, is_active=True, last_activity=now
        )
        log.info("call placed", extra={"call": call.id, "session": session_id})
        return call

    async def get(self, call_id: str) -> Call:
        # a longer id names no call (and the ORM refuses to compare it)
        call = await Call.get_or_none(id=call_id) if len(call_id) <= _ID_LENGTH else None
        if call is None:
            raise CallNotFound()
        return call

    async def by_session(self, session_id: str) -> Call:
        found = len(session_id) <= _SESSION_ID_LENGTH
        call = await Call.get_or_none(session_id=session_id) if found else None
        if call is None:
            raise CallNotFound()
        return call

    async def connect(self, call_id: str) -> Call:
        """RINGING -> CONNECTING. Asking again once connecting or connected changes nothing
        (the documented call page calls `/connect` after its offer already did)."""
        return await self._move_unless_there(
            call_id, CallStatus.CONNECTING, already={CallStatus.CONNECTING, CallStatus.IN_PROGRESS}
        )

    async def media_flowing(self, call_id: str) -> Call:
        """-> IN_PROGRESS (through CONNECTING if the call was still RINGING); idempotent."""
        if (await self.get(call_id)).status == CallStatus.RINGING:
            await self.connect(call_id)
        return await self._move_unless_there(
            call_id,
            CallStatus.IN_PROGRESS,
            already={CallStatus.IN_PROGRESS},
            changes=lambda _, now: {"connected_at": now},
        )

    async def end(self, call_id: str) -> Call:
        """IN_PROGRESS -> ENDED, with `ended_at` and `duration` (seconds since connected)."""
        call = await self._move(call_id, CallStatus.ENDED, _ending)
        await self._ended(call)
        return call

    async def fail(self, call_id: str) -> Call:
        """-> FAILED, with `ended_at` and a `duration` of 0: no conversation took place."""
        call = await self._move(call_id, CallStatus.FAILED, _failing)
        await self._ended(call)
        return call

    async def hang_up(self, call_id: str) -> Call:
        """The caller left: ENDED if the conversation had started, FAILED if it never did,
        unchanged if the call is already over. Never refused."""
        for _ in range(_RACE_RETRIES):
            call = await self.get(call_id)
            if call.status in FINAL:
                return call
            try:
                return await self._finish(call)
            except IllegalTransition:
                continue  # moved by someone else meanwhile: look again
        return await self.get(call_id)

    async def end_by_request(self, call_id: str) -> Call:
        """`POST .../end` (the page's 통화 종료): ENDED if the conversation had started,
        FAILED if it never did. A live call is never refused; a call already over is
        (409), as the contract's status machine says."""
        for _ in range(_RACE_RETRIES):
            call = await self.get(call_id)
            if call.status in FINAL:
                raise IllegalTransition(CallStatus(call.status), CallStatus.ENDED)
            try:
                return await self._finish(call)
            except IllegalTransition:
                continue
        current = CallStatus((await self.get(call_id)).status)
        raise IllegalTransition(current, CallStatus.ENDED)

    async def expire_setups(self, older_than: datetime) -> list[Call]:
        """FAIL every call still being set up (INITIATING, RINGING, CONNECTING) whose status
        has not changed since `older_than`. Safe on many instances: each call is moved by a
        compare-and-set, so one instance wins and the others skip it."""
        stale = await Call.filter(
            status__in=[s.value for s in SETTING_UP], updated_at__lt=older_than
        ).values_list("id", flat=True)
        return await _each_moved(stale, self.fail)

    async def keep_alive(self, call_ids: Collection[str]) -> None:
        """This instance still carries these calls' media: their `updated_at` says so, so
        `expire_stale` leaves them alone."""
        if call_ids:
            await Call.filter(id__in=list(call_ids), status=CallStatus.IN_PROGRESS.value).update(
                updated_at=clock.now()
            )

    async def expire_stale(self, older_than: datetime) -> list[Call]:
        """END every call IN_PROGRESS that no instance has kept alive since `older_than`:
        the instance that carried its media stopped (a crash, a kill) without hanging up."""
        stale = await Call.filter(
            status=CallStatus.IN_PROGRESS.value, updated_at__lt=older_than
        ).values_list("id", flat=True)
        return await _each_moved(stale, self.end)

    async def touch(self, call_id: str) -> None:
        """A turn was spoken over REST (`conversation/process`) on a call still setting up:
        it is in use, so its set-up timeout starts again."""
        await Call.filter(id=call_id, status__in=[s.value for s in SETTING_UP]).update(
            updated_at=clock.now()
        )

    async def _finish(self, call: Call) -> Call:
        if call.status == CallStatus.IN_PROGRESS:
            return await self.end(call.id)
        return await self.fail(call.id)

    async def _move_unless_there(
        self,
        call_id: str,
        target: CallStatus,
        *,
        already: set[CallStatus],
        changes: Callable[[Call, datetime], dict[str, Any]] | None = None,
    ) -> Call:
        """`_move`, except that a call already in one of `already` is left as it is (also
        when a concurrent request got it there first)."""
        call = await self.get(call_id)
        if call.status in already:
            return call
        try:
            return await self._move(call_id, target, changes)
        except IllegalTransition as exc:
            if exc.current in already:
                return await self.get(call_id)
            raise

    async def _move(
        self,
        call_id: str,
        target: CallStatus,
        changes: Callable[[Call, datetime], dict[str, Any]] | None = None,
    ) -> Call:
        for _ in range(_RACE_RETRIES):
            call = await self.get(call_id)
            current = CallStatus(call.status)
            if not can_move(current, target):
                raise IllegalTransition(current, target)
            now = clock.now()
            values = {"status": target.value, "updated_at": now}
            if changes is not None:
                values.update(changes(call, now))
            if await Call.filter(id=call_id, status=current.value).update(**values):
                for field, value in values.items():
                    setattr(call, field, value)
                log.info("call status", extra={"call": call_id, "status": target.value})
                return call
        current = CallStatus((await self.get(call_id)).status)
        raise IllegalTransition(current, target)

    async def _ended(self, call: Call) -> None:
        for listener in self._end_listeners:
            try:
                await listener(call)
            except Exception:  # one listener's failure must not undo the hang-up
                log.exception("call end listener failed", extra={"call": call.id})


def _failing(call: Call, now: datetime) -> dict[str, Any]:
    return {"ended_at": now, "duration": 0}


def _ending(call: Call, now: datetime) -> dict[str, Any]:
    started = call.connected_at or call.created_at
    return {"ended_at": now, "duration": max(0, round((now - started).total_seconds()))}


async def _each_moved(
    call_ids: Iterable[object], move: Callable[[str], Awaitable[Call]]
) -> list[Call]:
    """`move` each call (`fail`, `end`); a call another instance moved meanwhile (connected,
    ended, expired: the compare-and-set refuses) is skipped."""
    moved: list[Call] = []
    for call_id in call_ids:
        try:
            moved.append(await move(str(call_id)))
        except (IllegalTransition, CallNotFound):
            continue
    return moved
