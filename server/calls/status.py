"""The call status machine (CONTRACT §2.1).

    INITIATING -> RINGING -> CONNECTING -> IN_PROGRESS -> ENDED
    FAILED from INITIATING, RINGING or CONNECTING

Any other transition is refused. Followed strictly: a call that never reached IN_PROGRESS
cannot be ENDED, it FAILED (see `CallService.hang_up`).
"""

from __future__ import annotations

from enum import StrEnum


class CallStatus(StrEnum):
    INITIATING = "INITIATING"
    RINGING = "RINGING"
    CONNECTING = "CONNECTING"
    IN_PROGRESS = "IN_PROGRESS"
    ENDED = "ENDED"
    FAILED = "FAILED"


ALLOWED: dict[CallStatus, frozenset[CallStatus]] = {
    CallStatus.INITIATING: frozenset({CallStatus.RINGING, CallStatus.FAILED}),
    CallStatus.RINGING: frozenset({CallStatus.CONNECTING, CallStatus.FAILED}),
    CallStatus.CONNECTING: frozenset({CallStatus.IN_PROGRESS, CallStatus.FAILED}),
    CallStatus.IN_PROGRESS: frozenset({CallStatus.ENDED}),
    CallStatus.ENDED: frozenset(),
    CallStatus.FAILED: frozenset(),
}

FINAL = frozenset({CallStatus.ENDED, CallStatus.FAILED})


def can_move(current: CallStatus, target: CallStatus) -> bool:
    return target in ALLOWED[current]
