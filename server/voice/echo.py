"""The echo guard: is the speech the VAD heard the caller, or the AI's own voice coming back?

A speakerphone, or a browser without echo cancellation, plays the AI's voice into the
caller's microphone. Unchecked, that echo holds and interrupts the AI and becomes an
utterance the AI answers. The server knows what it sent, so it checks (Geigel's double-talk
detector, on levels rather than samples):

    each 20 ms unit the track sends while the AI talks -> its level (RMS, dBFS of the
                                                           TTS PCM) and when it went out
    a caller chunk the VAD calls speech                  -> the caller's only if louder than
                                                           the loudest unit sent in the last
                                                           ECHO_PATH_SECONDS, minus the echo's
                                                           assumed loss (ECHO_RETURN_LOSS_DB)

Both levels are RMS in dBFS: the sent one of the TTS audio before Opus (48 kHz), the heard
one of the caller's chunk after Opus, resampling to 16 kHz and removing any DC offset. The
band above 8 kHz the caller's side loses makes the echo read a little softer, never louder.
Echo arrives after its path (the network both ways, two jitter buffers, the loudspeaker and
the microphone); a loudest-over-the-window test needs no estimate of that delay, only its
upper bound. When the AI has sent nothing for ECHO_PATH_SECONDS the guard passes every
chunk without a sum (a call is mostly that). Not caught: an echo that comes back louder than
the assumed loss (a loud speakerphone, or the browser's gain control raising it), or later
than the window; the caller speaking softer than that over the AI is taken for echo.
"""

from __future__ import annotations

import math

import numpy as np

from server.metrics import VOICE_TURN_EVENTS

ECHO_RETURN_LOSS_DB = 6.0  # the echo comes back at least this much softer than it went out
ECHO_PATH_SECONDS = 0.6  # the longest delay from a unit sent to its echo heard
# once a chunk was louder than any echo, the caller's speech that follows within this is the
# caller's too (their softer syllables under the AI's louder ones)
HANGOVER_SECONDS = 0.15
SILENT_DB = -120.0  # a unit of digital silence (the track held, or starved)
HISTORY_UNITS = 200  # 4 s of 20 ms units, far more than the echo path
_FULL_SCALE_POWER = 32768.0**2
_SILENT_POWER = 10 ** (SILENT_DB / 10)  # relative to full scale
_SUPPRESSED = VOICE_TURN_EVENTS.labels("echo_suppressed")


def unit_levels(pcm: bytes, unit_samples: int) -> list[float]:
    """The RMS level (dBFS) of each `unit_samples` of s16 mono PCM, in one numpy pass."""
    samples = np.frombuffer(pcm, dtype="<i2")
    usable = samples.size - samples.size % unit_samples
    units = samples[:usable].astype(np.float32).reshape(-1, unit_samples)
    power = np.einsum("ij,ij->i", units, units) / unit_samples
    return (10 * np.log10(np.maximum(power / _FULL_SCALE_POWER, _SILENT_POWER))).tolist()


def chunk_level(chunk: bytes) -> float:
    """The RMS level (dBFS) of s16 PCM, its DC offset removed."""
    samples = np.frombuffer(chunk, dtype="<i2").astype(np.float32)
    mean = float(samples.mean())
    power = float(np.dot(samples, samples)) / samples.size - mean * mean
    return 10 * math.log10(max(power / _FULL_SCALE_POWER, _SILENT_POWER))


class SentLevels:
    """What the AI's track sent, unit by unit, in a ring: the time and level of the last
    HISTORY_UNITS units. The track records only while it has clips to play."""

    def __init__(self) -> None:
        self._at = np.full(HISTORY_UNITS, -math.inf)
        self._level = np.full(HISTORY_UNITS, SILENT_DB)
        self._next = 0
        self.last_at = -math.inf  # monotonic: when the last unit was recorded

    def record(self, at: float, level: float) -> None:
        self._at[self._next] = at
        self._level[self._next] = level
        self._next = (self._next + 1) % HISTORY_UNITS
        self.last_at = at

    def loudest_since(self, since: float) -> float:
        """The loudest level (dBFS) sent at or after `since`; SILENT_DB if none."""
        recent = self._level[self._at >= since]
        return float(recent.max()) if recent.size else SILENT_DB


class EchoGuard:
    """Per caller chunk the VAD called speech: True when it is the AI's own echo."""

    def __init__(self, sent: SentLevels, return_loss_db: float = ECHO_RETURN_LOSS_DB) -> None:
        self._sent = sent
        self._return_loss = return_loss_db
        self._caller_until = -math.inf  # the hangover of the caller's last loud chunk

    def is_echo(self, chunk: bytes, now: float) -> bool:
        since = now - ECHO_PATH_SECONDS
        if self._sent.last_at < since:
            return False  # the AI has been quiet longer than any echo takes
        if chunk_level(chunk) > self._sent.loudest_since(since) - self._return_loss:
            self._caller_until = now + HANGOVER_SECONDS
            return False  # louder than the echo can be: the caller (over the echo, maybe)
        if now < self._caller_until:
            return False
        _SUPPRESSED.inc()
        return True
