"""Barge-in: the caller speaking over the AI stops it.

    the caller's first speech frame while the AI talks -> hold: the track sends silence
                                                          from its next frame, queue kept
    speech confirmed (`barge_in_ms`, ~250 ms)           -> interrupt: queued audio dropped,
                                                          synthesis and model cancelled
    no confirmation within HOLD_SECONDS                 -> resume where it held (a cough, a
                                                          click, a door)

Holding at the onset is what lets the AI fall silent well within 200 ms of the caller's
first syllable while still asking for ~250 ms of speech before it gives up its turn.
The AI's own voice leaking back into the caller's microphone never gets here: the
browser's echo cancellation (on by default in `getUserMedia`) removes most of it, and the
echo guard (`server.voice.echo`, ECHO_GUARD) turns what is left into silence before the
turn detector sees it: speech no louder than the AI's own audio minus ECHO_RETURN_LOSS_DB
whose levels follow the AI's. The caller speaking over the AI at a normal level, or softly
with the echo cancelled, still barges in.
"""

from __future__ import annotations

from server.voice.outbound import SpeakerTrack

HOLD_SECONDS = 0.6  # longer than the confirmation: unconfirmed by then, it was not speech


class BargeIn:
    def __init__(self, track: SpeakerTrack, *, enabled: bool) -> None:
        self._track = track
        self._enabled = enabled
        self._held_until: float | None = None

    def onset(self, now: float, ai_talking: bool) -> None:
        if self._enabled and ai_talking:
            self._track.hold()
            self._held_until = now + HOLD_SECONDS

    def confirmed(self, ai_talking: bool) -> bool:
        """The caller is really talking: True when the AI must stop."""
        self._held_until = None
        if self._enabled and ai_talking:
            return True  # the speaker clears the track, which lifts the hold
        self._track.resume()
        return False

    def tick(self, now: float) -> None:
        """Every frame of the caller: give the AI its voice back after a false alarm."""
        if self._held_until is not None and now >= self._held_until:
            self._held_until = None
            self._track.resume()
